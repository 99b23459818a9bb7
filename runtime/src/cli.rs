//! The command line: runc's global flags and verbs, with runc's names and defaults, so containerd's
//! go-runc and podman's conmon can call carte exactly as they call runc. The global flags come
//! before the verb, as runc's (`runc state --root x` is "flag provided but not defined"): clap's
//! `global = true` would copy each of them into all twenty verbs at every start, a sixth of the
//! page faults of a `carte state`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "carte",
    disable_version_flag = true,
    about = "An OCI container runtime"
)]
pub struct Cli {
    /// Directory for container state (runc's --root; `$XDG_RUNTIME_DIR/carte` when rootless)
    #[arg(long, default_value_os_t = crate::rootless::default_root())]
    pub root: PathBuf,
    /// Log file (default: stderr)
    #[arg(long)]
    pub log: Option<String>,
    /// Log format: text or json
    #[arg(long = "log-format", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Narrate every step of container creation on the log, with the time since start
    #[arg(long)]
    pub debug: bool,
    /// Write every step as a Chrome trace event to FILE (open it in Perfetto or chrome://tracing)
    #[arg(long = "trace-file", value_name = "FILE")]
    pub trace_file: Option<String>,
    /// Manage cgroups through systemd (cgroupsPath is slice:prefix:name)
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (true|false|auto); given before the verb, as go-runc does
    #[arg(long = "rootless", hide = true)]
    pub rootless_mode: Option<String>,
    /// Print version information
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub verb: Option<Verb>,
}

/// `defer`: a verb's flags are built only when that verb is invoked (or its help is shown); building
/// all twenty verbs' flags was a fifth of `carte --version`'s instructions (bench/README.md).
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Verb {
    /// Write a default config.json into the bundle
    Spec(SpecArgs),
    /// Create a container (its process waits for `start`)
    Create(CreateArgs),
    /// Start the user process of a created container
    Start(IdArg),
    /// Print the state of a container as JSON
    State(IdArg),
    /// Send a signal to the container's init process
    Kill(KillArgs),
    /// Delete a container and everything it holds
    Delete(DeleteArgs),
    /// Create and start a container; wait for it unless --detach
    Run(RunArgs),
    /// List containers
    List(ListArgs),
    /// Run a process in a running container
    Exec(ExecArgs),
    /// List the processes of a container
    Ps(PsArgs),
    /// Freeze every process of a container
    Pause(IdArg),
    /// Thaw a paused container
    Resume(IdArg),
    /// Change a container's resource limits
    Update(UpdateArgs),
    /// Stream a container's events or print its stats
    Events(EventsArgs),
    /// Print what this runtime supports (runtime-spec features.md)
    Features,
    /// Stop a container: its stop signal, a grace period, then SIGKILL
    Stop(crate::verbs::stop::StopArgs),
    /// Network a container through CNI plugins (for use as OCI hooks)
    Net(crate::verbs::net::NetArgs),
    /// Checkpoint a running container with criu
    Checkpoint(crate::verbs::checkpoint::CheckpointArgs),
    /// Restore a container from a criu checkpoint
    Restore(crate::verbs::restore::RestoreArgs),
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub id: String,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Bundle directory to write config.json into
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write a spec for a rootless container
    #[arg(long)]
    pub rootless: bool,
    /// Add `carte net` hooks (createRuntime add, poststop del) for network NAME (default: carte)
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "carte")]
    pub net: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to when process.terminal is true
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container init's host pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use a chroot-style move of the rootfs instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    pub id: String,
    /// Signal name (with or without SIG) or number
    #[arg(default_value = "TERM")]
    pub signal: String,
    /// Signal every process in the container
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub id: String,
    /// Kill the container first if it is still running
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container has started
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format: table or json
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the container ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (unless --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process.json (runtime-spec Process) describing what to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids", value_delimiter = ',')]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the process's bounding, effective and permitted sets
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec into a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// AppArmor profile for the process (refused where AppArmor is off)
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process (refused where SELinux is off)
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Run in a sub-cgroup of the container's cgroup: PATH, or CONTROLLER[,CONTROLLER]:PATH (repeatable)
    #[arg(long)]
    pub cgroup: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    pub id: String,
    /// table or json (a JSON array of host pids)
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Arguments for ps(1) in table format
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// A LinuxResources JSON file, or - for stdin
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    // `-1` (unlimited) is a value here, as in runc, not a flag.
    #[arg(long, allow_negative_numbers = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_negative_numbers = true)]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU shares; runc spells the flag `--cpu-share`, kept as an alias so scripts written for runc work
    #[arg(long = "cpu-shares", visible_alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    pub id: String,
    /// Print one stats event and exit
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats events (e.g. 5s, 500ms)
    #[arg(long, default_value = "5s")]
    pub interval: String,
}

/// Whether a command line (`argv`, program name first) plainly names `create`, `run` or `exec`:
/// its first word that is neither a global flag nor such a flag's value. Only a hint, read before
/// anything else (`selfexe::early`, before glibc's start-up; `selfexe::protect_early`, before
/// clap); the parsed verb decides. Written for the first of them: no slice `==` (see `same`).
pub fn enters_container<'a, I: IntoIterator<Item = &'a [u8]>>(argv: I) -> bool {
    let mut words = argv.into_iter().skip(1);
    while let Some(w) = words.next() {
        // The global flags that take their value as the next word.
        if same(w, b"--root")
            || same(w, b"--log")
            || same(w, b"--log-format")
            || same(w, b"--trace-file")
            || same(w, b"--rootless")
        {
            words.next();
        } else if w.first() != Some(&b'-') {
            return same(w, b"create") || same(w, b"run") || same(w, b"exec");
        }
    }
    false
}

/// Byte-wise equality as a loop, and the literals above written out one by one: before glibc's
/// start-up `==` on slices may call `memcmp` (an IFUNC glibc has not resolved yet), and a table of
/// string references would hold pointers the start-up has not relocated yet.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::enters_container;

    fn words(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    #[test]
    fn the_verb_is_found_past_global_flags_and_their_values() {
        for yes in [
            "carte run x",
            "carte --root /run/create --log-format json create -b . x",
            "carte --debug --systemd-cgroup --log run.log exec x sh",
            "carte --rootless true run x",
        ] {
            assert!(enters_container(words(yes)), "{yes}");
        }
        for no in [
            "carte",
            "carte --version",
            "carte --root run state x",
            "carte --log exec delete run",
            "carte state run",
        ] {
            assert!(!enters_container(words(no)), "{no}");
        }
    }
}
