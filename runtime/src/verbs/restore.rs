//! `carte restore`: bring a checkpointed container back from criu images, under any id, as a
//! container `state`, `kill` and `delete` treat like any other: its state directory is claimed
//! (state written before any side effect) and its cgroup made and limited as `create` does, then
//! criu — started inside that cgroup, as runc starts it — rebuilds the process tree into it, and
//! the restored init's pid is recorded. Without `--detach` carte waits for the container as `run`
//! does and removes it when it exits.

use crate::bundle::{self, Bundle};
use crate::cgroups;
use crate::cli::Cli;
use crate::criu::{self, external};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, State};
use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub id: String,
    /// Unix socket for the pty master (a terminal container cannot be restored by carte)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Directory of criu's image files (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's work files and log (default: the image directory)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// soft, full, strict or ignore (criu's default: soft)
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once the container is restored
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the restored init's host pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted for runc compatibility (criu sets up the root itself)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Create the namespace without restoring its properties (only "network")
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Restore memory lazily (not supported by carte)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// LSM profile for the restored processes, TYPE:NAME
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
}

/// Where criu writes the restored init's pid, in the state directory.
const CRIU_PIDFILE: &str = "criu.pid";

pub fn run(cli: &Cli, a: &RestoreArgs) -> Result<i32> {
    if a.lazy_pages {
        return Err(Error::Usage(
            "restore --lazy-pages: not supported by carte".into(),
        ));
    }
    let mode = criu::cgroup_mode(a.manage_cgroups_mode.as_deref())?;
    super::checkpoint::check_empty_ns(&a.empty_ns)?;
    state::validate_id(&a.id)?;
    let b = bundle::load(&a.bundle)?;
    crate::validate::check(&b.spec)?;
    if b.spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false))
    {
        return Err(Error::Other(format!(
            "restore {}: a container with a terminal cannot be restored by carte (criu's command line cannot hand back the pty master)",
            a.id
        )));
    }
    let images = image_dir(a.image_path.as_deref())?;
    if let Some(w) = &a.work_path {
        criu::make_dir(w)?;
    }
    cgroups::check_systemd(cli.systemd_cgroup)?;
    let sigs = crate::signals::forwarded();
    let old = sigs
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(|e| Error::sys("sigprocmask", "block", e))?;
    let mut st = new_state(cli, a, &b);
    let res = b.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    cgroups::preflight(&st.cgroup_path, st.systemd_cgroup, res)?;
    let dir = ContainerDir::claim(&cli.root, &st, &b.raw)?;
    // A restored container never waits for `start`: without its fifo its status is running.
    let _ = std::fs::remove_file(dir.fifo());
    if let Err(e) = restore(&dir, &mut st, &b, a, mode, &images) {
        if let Err(t) = crate::teardown::destroy(dir, &st) {
            log::warn!("clean up after failed restore: {t}");
        }
        return Err(e);
    }
    if a.detach {
        let _ = old.thread_set_mask();
        return Ok(0);
    }
    let pid = st.pid.unwrap_or(0);
    drop(dir);
    let code = crate::wait::wait_forwarding(pid, &sigs)?;
    match ContainerDir::open(&cli.root, &a.id) {
        Ok(dir) => {
            let st = dir.load().unwrap_or(st);
            super::delete::delete(dir, &st)?;
        }
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(code)
}

fn image_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match given {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir()
            .ctx("get", "current directory")?
            .join("checkpoint"),
    };
    std::fs::canonicalize(&dir).ctx("open image directory", dir.display())
}

/// The state `create` would record for this bundle under this id (the cgroup is the new id's).
fn new_state(cli: &Cli, a: &RestoreArgs, b: &Bundle) -> State {
    let mut st = State::for_bundle(&a.id, b, cli.systemd_cgroup);
    st.pid_file = a
        .pid_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    st
}

fn restore(
    dir: &ContainerDir,
    st: &mut State,
    b: &Bundle,
    a: &RestoreArgs,
    mode: Option<&str>,
    images: &Path,
) -> Result<()> {
    let state_dir = std::fs::canonicalize(&dir.path).ctx("resolve", dir.path.display())?;
    external::make_mountpoints(&b.spec, &b.dir, &b.rootfs)?;
    let root = criu::spawn::RootBind::new(&state_dir.join(criu::spawn::CRIU_ROOT), &b.rootfs)?;
    let pidfile = state_dir.join(CRIU_PIDFILE);
    let mut cmd = criu::Command::new("restore", images, a.work_path.as_deref(), criu::RESTORE_LOG);
    cmd.arg("--root")
        .arg(root.path())
        // Detached, and the restored init made our child (CLONE_PARENT), not criu's.
        .arg("--restore-detached")
        .arg("--restore-sibling")
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--evasive-devices")
        .flag(a.tcp_established, "--tcp-established")
        .flag(a.ext_unix_sk, "--ext-unix-sk")
        .flag(a.shell_job, "--shell-job")
        .flag(a.file_locks, "--file-locks")
        .flag(a.auto_dedup, "--auto-dedup")
        .arg("--empty-ns")
        .arg("net");
    cmd.arg(match mode {
        Some(m) => format!("--manage-cgroups={m}"),
        None => "--manage-cgroups".into(),
    });
    if let Some(p) = &a.lsm_profile {
        cmd.arg("--lsm-profile").arg(p);
    }
    if let Some(c) = &a.lsm_mount_context {
        cmd.arg("--lsm-mount-context").arg(c);
    }
    cmd.config_file(&st.annotations);
    cmd.ext_mounts(&external::restore_mounts(
        &b.spec,
        &b.dir,
        &b.rootfs,
        &st.cgroup_path,
    ));
    // Namespaces given by path: net and pid handed to criu as inherited fds under their keys,
    // placed at fixed numbers in the criu process; the others joined.
    let mut ns_files: Vec<(std::fs::File, i32)> = vec![];
    for ns in external::ns_paths(&b.spec)? {
        match external::ext_key(ns.criu_name) {
            Some(key) => {
                let f = std::fs::File::open(&ns.path).ctx("open namespace", ns.path.display())?;
                let target = 100 + ns_files.len() as i32;
                cmd.arg("--inherit-fd").arg(format!("fd[{target}]:{key}"));
                ns_files.push((f, target));
            }
            None => {
                let mut s = OsString::from(format!("{}:", ns.criu_name));
                s.push(&ns.path);
                cmd.arg("--join-ns").arg(s);
            }
        }
    }
    // The init's stdio pipes at dump time are replaced by ours (runc's descriptors.json).
    for (i, d) in descriptors(images).iter().enumerate() {
        if d.contains("pipe:") {
            cmd.arg("--inherit-fd").arg(format!("fd[{i}]:{d}"));
        }
    }
    let res = b.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    criu::spawn::restore_in_cgroup(cmd, st, res, &ns_files)?;
    let text = std::fs::read_to_string(&pidfile).ctx("read", pidfile.display())?;
    let _ = std::fs::remove_file(&pidfile);
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| Error::Other(format!("{}: not a pid: {text:?}", pidfile.display())))?;
    st.pid = Some(pid);
    st.pid_start_time = state::live_start_time(pid);
    dir.save(st)?;
    drop(root);
    if let Some(p) = &st.pid_file {
        state::write_atomic(p, pid.to_string().as_bytes())?;
    }
    log::debug!("container {} restored, init pid {pid}", st.id);
    Ok(())
}

fn descriptors(images: &Path) -> Vec<String> {
    std::fs::read(images.join(criu::DESCRIPTORS))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
