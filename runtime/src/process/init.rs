//! The container init's half of `create`, as one story from clone to execve. It only applies the
//! plan the parent computed; any failure is sent to the parent as `Failed` (never logged here:
//! the parent reports it once) and the init exits.

use super::plan::Plan;
use super::sync::{Channel, Msg};
use crate::error::{Context, Error, Result};
use crate::rootfs;
use crate::state::{State, Status};
use crate::sys;
use oci_spec::runtime::Spec;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

pub struct InitArgs<'a> {
    pub plan: &'a Plan,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    /// O_PATH fd of `exec.fifo`, opened by the parent: the init may be unable to walk the
    /// state dir's path (a user namespace), but can always reopen an fd it holds.
    pub fifo: std::fs::File,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub console: Option<OwnedFd>,
    /// The fds the parent holds that the init must drop at once (the state-dir lock above all:
    /// flock belongs to the open file, and our copy would keep `create`'s lock alive).
    pub close_first: Vec<i32>,
    /// The cgroup v1 directories to join by ourselves (`cgroups::self_join_dirs`), first thing
    /// after Go; none when the parent placed us.
    pub self_join: Option<Vec<std::path::PathBuf>>,
    /// `--no-new-keyring`: keep the runtime's session keyring instead of the container's own.
    pub no_new_keyring: bool,
    /// The runtime runs without root on the host, as the parent saw it before the clone. The
    /// child cannot ask geteuid(): inside a new user namespace it says 65534 until the parent
    /// writes the uid map and 0 after, so a slow child would decide on the wrong side.
    pub unprivileged: bool,
    /// The parent's `CreateOpts::outlives_init`: it lives on until we exit (a foreground `run`)
    /// and does not wait for `Committed`.
    pub outlives_init: bool,
}

/// Entry point in the child; never returns.
pub fn run(a: InitArgs, chan: Channel) -> ! {
    let committed = std::cell::Cell::new(false);
    match story(&a, &chan, &committed) {
        Ok(e) => {
            // execve returned: report it (the parent is gone by now; the log is all we have).
            log::error!("exec {}: {e}", a.plan.proc.args[0]);
            sys::exit_now(127)
        }
        Err(e) => {
            // After `create` has returned nobody listens on the socket: then the log is the
            // only place left to say why the container never ran. Before that, a vanished
            // parent reports its own error; ours would be a second, misleading line.
            if chan.send(&Msg::Failed(e.to_string())).is_err() && committed.get() {
                log::error!("container init: {e}");
            }
            sys::exit_now(1)
        }
    }
}

fn story(
    a: &InitArgs,
    chan: &Channel,
    committed: &std::cell::Cell<bool>,
) -> Result<nix::errno::Errno> {
    let plan = a.plan;
    // Die with `create` until it has committed the container (a killed create leaves nothing).
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .ctx("prctl", "PR_SET_PDEATHSIG")?;
    for fd in &a.close_first {
        let _ = nix::unistd::close(*fd);
    }
    // Not dumpable: the container cannot ptrace us or open our /proc/PID/* while we still hold
    // host fds (CVE-2016-9962); execve resets it for the user process.
    // Unprivileged, the parent (or newuidmap) can open our uid_map only while we are dumpable:
    // then we stay so until the maps are in, which `Go` tells (runc's nsexec does the same). No
    // container process exists before that.
    let stay_dumpable = !plan.ns.bridge && plan.ns.uid_map.is_some() && a.unprivileged;
    if !stay_dumpable {
        nix::sys::prctl::set_dumpable(false).ctx("prctl", "PR_SET_DUMPABLE")?;
    }
    nix::sys::prctl::set_name(c"carte:init").ctx("prctl", "PR_SET_NAME")?;
    if plan.ns.bridge {
        super::bridge::enter_namespaces(plan, chan, a.unprivileged)?;
    }
    // With a user namespace, the bind sources the parent opened for us may come first.
    let (mut msg, fds) = chan.recv_fds()?;
    let mut sources: Vec<(usize, OwnedFd)> = vec![];
    if let Some(Msg::Sources(idx)) = &msg {
        sources = idx.iter().copied().zip(fds).collect();
        msg = chan.recv()?;
    }
    let mut state: State = match msg {
        Some(Msg::Go(st)) => *st,
        Some(Msg::Failed(m)) => return Err(Error::Other(m)),
        _ => sys::exit_now(1),
    };
    if stay_dumpable {
        nix::sys::prctl::set_dumpable(false).ctx("prctl", "PR_SET_DUMPABLE")?;
    }
    // The hooks we run (createContainer, startContainer) are in the container's namespaces: their
    // state names our pid as the container sees it (runtime.md, "State").
    state.pid = Some(std::process::id() as i32);
    if let Some(dirs) = &a.self_join {
        // Made here, not by the parent: it builds libcgroups' manager meanwhile.
        crate::cgroups::make_self_join_dirs(&state.cgroup_path, dirs)?;
        crate::cgroups::join_self(dirs)?;
        log::debug!("joined cgroup {}", state.cgroup_path.display());
    }
    if !plan.ns.bridge && plan.ns.uid_map.is_some() {
        // Our maps are written: become the namespace's root, so what we create is owned by a
        // mapped id (an unmapped owner makes the kernel refuse with EOVERFLOW).
        nix::unistd::setresgid(0.into(), 0.into(), 0.into()).ctx("setresgid", 0)?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into()).ctx("setresuid", 0)?;
    }
    if !plan.ns.bridge {
        for j in &plan.ns.joins {
            log::debug!("join {:?} namespace {}", j.typ, j.path.display());
            sys::setns(std::os::fd::AsFd::as_fd(&j.fd), j.nstype).ctx("setns", j.path.display())?;
        }
    }
    // Our cgroup paths must be read before the cgroup namespace hides them.
    let joined_mounts = plan.ns.bridge || plan.ns.joins_ns(libc::CLONE_NEWNS);
    let hierarchies = rootfs::cgroupfs::own_hierarchies(!joined_mounts);
    if plan.ns.new_cgroup {
        log::debug!("unshare cgroup namespace (rooted at the container's cgroup)");
        sys::unshare(libc::CLONE_NEWCGROUP).ctx("unshare", "cgroup namespace")?;
    }
    let userns = plan.ns.uid_map.is_some() || plan.ns.joins_ns(libc::CLONE_NEWUSER);
    if !a.no_new_keyring {
        // runc's per-container session keyring: the container never shares the runtime's keys.
        crate::keyring::join(&state.id, Some(userns))?;
    }
    let mount_ns = plan.ns.mount_namespace();
    rootfs::prepare(&rootfs::Prepare {
        spec: a.spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        // In any user namespace, ours too (rootless podman runs us as its namespace's root),
        // device nodes cannot be made: they are bind-mounted (runc: RunningInUserNS).
        bind_devices: userns || crate::rootless::in_user_namespace(),
        hierarchies: &hierarchies,
        sources: &sources,
        mount_ns,
    })?;
    // runc's procHooks: the parent writes our cgroup's limits now, when our device nodes are
    // made (a devices cgroup half-written would refuse them), then runs the prestart and
    // createRuntime hooks; nothing of the container runs before.
    chan.send(&Msg::Mounted)?;
    chan.expect(Msg::Proceed)?;
    let hooks = a.spec.hooks().as_ref();
    crate::hooks::run_all_inheriting(
        "createContainer",
        hooks.and_then(|h| h.create_container().as_ref()),
        &state.oci_json(Status::Creating),
        crate::hooks::Inherit::Process(&plan.proc.envp),
    )?;
    // The fifo is reopened through our own fd directory, held from here: after the pivot (or the
    // chroot of a container without a mount namespace) the host's /proc is out of reach.
    let fd_dir = std::fs::File::open("/proc/self/fd").ctx("open", "/proc/self/fd")?;
    rootfs::enter(a.spec, a.rootfs, a.no_pivot, mount_ns)?;
    if mount_ns {
        rootfs::devices::reopen_null_stdio()?;
    }
    // Sysctls before /proc/sys becomes read-only.
    for (k, v) in &plan.sysctl {
        crate::proc_attrs::write_sysctl(k, v)?;
    }
    // The console before `finish`: its /dev/console mount point must be made while /dev is still
    // writable (runc sets up the console before it remounts tmpfs mounts and /dev read-only).
    nix::unistd::setsid().ctx("setsid", "init")?;
    super::identity::console(&plan.proc, a.console.as_ref(), mount_ns)?;
    rootfs::finish(a.spec)?;
    crate::proc_attrs::set_hostname(plan.hostname.as_deref(), plan.domainname.as_deref())?;
    let (exe, envp) = super::identity::assume(&plan.proc)?;
    super::listener::hand_over(&plan.proc, chan)?;
    chan.send(&Msg::Ready)?;
    chan.expect(Msg::Commit)?;
    nix::sys::prctl::set_pdeathsig(None).ctx("prctl", "PR_SET_PDEATHSIG")?;
    if !a.outlives_init {
        chan.send(&Msg::Committed)?;
    }
    committed.set(true);
    // Kept open (close-on-exec) until execve: `start` waits for it to close before it runs the
    // poststart hooks, so they always come after the startContainer hooks and the exec.
    let _started = wait_for_start(&fd_dir, &a.fifo)?;
    crate::hooks::run_all_inheriting(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        &state.oci_json(Status::Created),
        crate::hooks::Inherit::Process(&envp),
    )?;
    prepare_exec(a)?;
    // The very last step: after the filter we make no syscall but execve, so a profile needs to
    // allow only what the container's program does, plus execve.
    super::identity::install_seccomp(&plan.proc)?;
    Ok(sys::execve(&exe, &plan.proc.argv, &envp))
}

/// Block until `start` opens the fifo for reading, then tell it we go on. Reopened through our fd
/// directory (opened before the pivot) because the host path is no longer reachable.
fn wait_for_start(fd_dir: &std::fs::File, fifo: &std::fs::File) -> Result<std::fs::File> {
    let name = fifo.as_raw_fd().to_string();
    let shown = format!("/proc/self/fd/{name}");
    let w = nix::fcntl::openat(
        Some(fd_dir.as_raw_fd()),
        name.as_str(),
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map(|fd| std::fs::File::from(sys::own(fd)))
    .ctx("open exec fifo", &shown)?;
    nix::unistd::write(&w, b"0").ctx("write exec fifo", &shown)?;
    Ok(w)
}

/// The last steps before execve: signal state as a fresh process expects it, and no fd of ours
/// leaks into the container (CVE-2024-21626) except stdio and the preserved ones.
fn prepare_exec(a: &InitArgs) -> Result<()> {
    // Rust ignores SIGPIPE at start-up; ignored signals survive execve.
    crate::signals::reset_defaults()?;
    let listen = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let keep = a.preserve_fds + listen;
    crate::proc_attrs::keep_fds(3, keep)?;
    sys::close_range_cloexec(3 + keep).ctx("close_range", "fds above stdio")
}
