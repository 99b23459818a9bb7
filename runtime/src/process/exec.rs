//! `exec`'s spawn, as one story: open the init's namespaces, enter the pid and time namespaces
//! from the parent (they apply to children), clone, move the child into the container's cgroup,
//! and let it join the rest and become the process. Same protocol steps as `create`, fewer of them:
//!
//! ```text
//!  carte exec (parent)                      exec'd process (child)
//!  setns(pid, time) for children
//!  clone ─────────────────────────────────▶ PDEATHSIG, non-dumpable, wait
//!  cgroup: join the container's (and
//!  the --cgroup sub-cgroups)
//!  Go ────────────────────────────────────▶ setns user, others, mount last; setsid;
//!                                           console, rlimits, caps, user, cwd;
//!                                           clear PDEATHSIG (detached)
//!  [send state + fd to listenerPath ◀───── SeccompListener + fd]    SCMP_ACT_NOTIFY filter
//!  ◀─────────────────────────────────────── Ready (or Failed{msg})
//!  pid file; wait or exit                   close fds, seccomp, execve
//! ```

use super::identity;
use super::plan::ProcPlan;
use super::sync::{self, Msg};
use crate::error::{Context, Error, Result};
use crate::state::{self, State};
use crate::sys::{self, Forked};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

pub struct ExecOpts<'a> {
    /// Who gets the pty master when the process has a terminal; none for a detached exec
    /// without `--console-socket`, which is refused then.
    pub console: Option<crate::tty::Console<'a>>,
    pub preserve_fds: u32,
    pub detach: bool,
    /// `exec --cgroup`: sub-cgroup directories (resolved, checked) to move the process into.
    pub sub_cgroups: Vec<std::path::PathBuf>,
}

struct NsFd {
    name: &'static str,
    nstype: libc::c_int,
    fd: OwnedFd,
}

/// The init's namespaces of every type the config lists, except those that are already ours
/// (setns into one's own user namespace is an error).
fn open_namespaces(spec: &Spec, pid: i32) -> Result<Vec<NsFd>> {
    let mut out = vec![];
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.as_slice())
        .unwrap_or_default()
    {
        let name = crate::namespaces::proc_name(ns.typ());
        let theirs = format!("/proc/{pid}/ns/{name}");
        let their_ino = std::fs::metadata(&theirs).ctx("stat", &theirs)?.ino();
        let our_ino = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .map(|m| m.ino())
            .unwrap_or(0);
        if their_ino == our_ino {
            continue;
        }
        let fd = std::fs::File::open(&theirs).ctx("open", &theirs)?;
        out.push(NsFd {
            name,
            nstype: crate::namespaces::clone_flag(ns.typ()),
            fd: fd.into(),
        });
    }
    // user first (the others are owned by it), mount last (it moves our root).
    out.sort_by_key(|n| match n.nstype {
        libc::CLONE_NEWUSER => 0,
        libc::CLONE_NEWNS => 2,
        _ => 1,
    });
    Ok(out)
}

/// The process started by `spawn`.
pub struct Spawned {
    pub pid: i32,
    /// The pty master, when the terminal was asked for with `Console::Proxy`.
    pub master: Option<OwnedFd>,
}

/// Start the process inside the container; returns once it is about to execve.
pub fn spawn(st: &State, spec: &Spec, plan: &ProcPlan, o: &ExecOpts) -> Result<Spawned> {
    let init = st
        .pid
        .filter(|_| state::init_alive(st))
        .ok_or_else(|| Error::WrongStatus {
            id: st.id.clone(),
            status: "stopped".into(),
            verb: "exec in",
        })?;
    let nss = open_namespaces(spec, init)?;
    let root = chroot_of(spec, init)?;
    crate::tty::require_console(plan.terminal, o.console)?;
    let (console, proxy) = super::connect_console(plan.terminal, o.console)?;
    // Unprivileged, we hold no capability over the container's pid and time namespaces (its
    // user namespace owns them): the child joins the user namespace first, then those two, and
    // forks the process (a bridge, as runc's nsexec stages). We reap what the bridge leaves.
    let bridge = crate::rootless::euid_rootless()
        && nss.iter().any(|n| n.nstype == libc::CLONE_NEWUSER)
        && nss.iter().any(|n| is_for_children(n.nstype));
    if bridge && !o.detach {
        nix::sys::prctl::set_child_subreaper(true).ctx("prctl", "PR_SET_CHILD_SUBREAPER")?;
    }
    // pid and time namespaces apply to our children: enter them here, so one clone suffices.
    for n in nss.iter().filter(|n| !bridge && is_for_children(n.nstype)) {
        sys::setns(n.fd.as_fd(), n.nstype)
            .ctx("setns", format!("{} namespace of pid {init}", n.name))?;
    }
    if let Some(cpus) = &plan.exec_cpus_initial {
        // Ours, inherited by the child until it is in the container's cgroup (runtime-spec
        // execCPUAffinity.initial: keeps the join off CPUs busy with the container's work).
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), cpus)
            .ctx("sched_setaffinity", "execCPUAffinity.initial")?;
    }
    let (parent, child) = sync::pair()?;
    // The process is born in the container's cgroup2 directory and joins the v1 hierarchies by
    // itself, as the init did: moving it from here would take the kernel's threadgroup lock, an
    // RCU grace period of 7 to 20 ms on this host (see `cgroups::self_join_dirs`), after a
    // ~1.5 ms libcgroups v1 manager. With `--cgroup`, this process places it, sub-cgroups last.
    let mut self_join = match o.sub_cgroups.is_empty() {
        true => crate::cgroups::exec_join_dirs(&st.cgroup_path, st.systemd_cgroup),
        false => None,
    };
    log::debug!("clone the exec process for container {}", st.id);
    match super::clone_self_joining(0, &mut self_join, "exec process")? {
        Forked::Child => {
            drop(parent);
            drop(proxy);
            let res = child_story(
                self_join.as_deref(),
                &nss,
                bridge,
                root.as_ref(),
                plan,
                console.as_ref(),
                &child,
                o,
                st,
            );
            let msg = match res {
                Ok(e) => format!("exec {}: {e}", plan.args[0]),
                Err(e) => e.to_string(),
            };
            if child.send(&Msg::Failed(msg.clone())).is_err() {
                log::error!("{msg}");
            }
            sys::exit_now(127)
        }
        Forked::Parent(pid) => {
            drop(child);
            drop(console);
            // A rootless container without a cgroup (see `cgroups::skip_rootless`) has none to join.
            if !st.cgroup_path.as_os_str().is_empty() && self_join.is_none() {
                let mgr = crate::cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
                crate::cgroups::join_and_apply(&mgr, &st.cgroup_path, pid, None)?;
            }
            let placed =
                crate::subcgroup::join(&o.sub_cgroups, pid).and_then(|()| oom_score_adj(spec, pid));
            if let Err(e) = placed {
                // Still waiting for Go: it never ran anything of the caller's.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(e);
            }
            parent.send(&Msg::Go(Box::new(st.clone())))?;
            let mut reply = parent.recv_fds()?;
            let mut pid = pid;
            // Rootless, `pid` was a bridge that joined the user namespace and forked the process.
            if let (Some(Msg::InitPid(p)), _) = reply {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                pid = p;
                reply = parent.recv_fds()?;
            }
            if let (Some(Msg::SeccompListener), fds) = reply {
                // runc's setns shape: the state is the running container's, `pid` the new process.
                let res =
                    super::listener::forward(plan, fds, pid, st.oci_value(state::Status::Running));
                if let Err(e) = res {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::SIGKILL,
                    );
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                    return Err(e);
                }
                reply = parent.recv_fds()?;
            }
            match reply.0 {
                Some(Msg::Ready) => Ok(Spawned {
                    pid,
                    // The child sent the master before it said Ready.
                    master: proxy
                        .as_ref()
                        .map(crate::tty::proxy::receive_master)
                        .transpose()?,
                }),
                Some(Msg::Failed(m)) => {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                    Err(Error::Other(m))
                }
                _ => {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                    Err(Error::Other("exec process exited during setup".into()))
                }
            }
        }
    }
}

/// The container's `process.oomScoreAdj` (its config's, as for the init) on the exec'd process: runc's
/// nsexec gets it from the container's config for every process it starts, exec'd ones included. Without
/// it they keep the caller's score; under containerd that is the shim's (containerd's + 1), so an exec in
/// a BestEffort pod (kubelet: 1000) would be among the last the OOM killer picks rather than the first.
fn oom_score_adj(spec: &Spec, pid: i32) -> Result<()> {
    match spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        Some(adj) => crate::procfs::write(
            crate::procfs::Base::Pid(pid),
            std::path::Path::new("oom_score_adj"),
            adj.to_string().as_bytes(),
        ),
        None => Ok(()),
    }
}

/// A container without a mount namespace of its own runs chrooted in its rootfs (see
/// `rootfs::pivot::chroot`): the exec'd process gets the same root, the init's, opened here.
fn chroot_of(spec: &Spec, init: i32) -> Result<Option<std::fs::File>> {
    let has_mount_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|v| v.iter().any(|n| n.typ() == LinuxNamespaceType::Mount));
    if has_mount_ns {
        return Ok(None);
    }
    let p = format!("/proc/{init}/root");
    std::fs::File::open(&p).ctx("open", &p).map(Some)
}

fn is_for_children(nstype: libc::c_int) -> bool {
    nstype == libc::CLONE_NEWPID || nstype == libc::CLONE_NEWTIME
}

#[allow(clippy::too_many_arguments)]
fn child_story(
    self_join: Option<&[std::path::PathBuf]>,
    nss: &[NsFd],
    bridge: bool,
    root: Option<&std::fs::File>,
    plan: &ProcPlan,
    console: Option<&OwnedFd>,
    chan: &sync::Channel,
    o: &ExecOpts,
    st: &State,
) -> Result<nix::errno::Errno> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .ctx("prctl", "PR_SET_PDEATHSIG")?;
    // Non-dumpable while we hold host fds inside the container (CVE-2016-9962).
    nix::sys::prctl::set_dumpable(false).ctx("prctl", "PR_SET_DUMPABLE")?;
    match chan.recv()? {
        Some(Msg::Go(_)) => {}
        _ => sys::exit_now(1),
    }
    if let Some(dirs) = self_join {
        crate::cgroups::join_self(dirs)?;
    }
    // Now in the container's cgroup, whose cpuset the kernel may have applied.
    if let Some(cpus) = &plan.exec_cpus_final {
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), cpus)
            .ctx("sched_setaffinity", "execCPUAffinity.final")?;
    }
    if bridge {
        for n in nss
            .iter()
            .filter(|n| n.nstype == libc::CLONE_NEWUSER || is_for_children(n.nstype))
        {
            log::debug!("exec bridge: join {} namespace", n.name);
            sys::setns(n.fd.as_fd(), n.nstype).ctx("setns", format!("{} namespace", n.name))?;
        }
        match sys::clone_fork(0).ctx("fork", "exec process")? {
            // The bridge's death signal is not ours (fork clears it), and we outlive the
            // bridge by design; a vanished `carte exec` shows as a failed send below.
            Forked::Child => {}
            Forked::Parent(pid) => {
                let _ = chan.send(&Msg::InitPid(pid));
                sys::exit_now(0)
            }
        }
    }
    for n in nss
        .iter()
        .filter(|n| !(is_for_children(n.nstype) || bridge && n.nstype == libc::CLONE_NEWUSER))
    {
        log::debug!("exec: join {} namespace", n.name);
        sys::setns(n.fd.as_fd(), n.nstype).ctx("setns", format!("{} namespace", n.name))?;
    }
    if let Some(r) = root {
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(r)).ctx("fchdir", "container root")?;
        nix::unistd::chroot(".").ctx("chroot", "container root")?;
        nix::unistd::chdir("/").ctx("chdir", "/")?;
    }
    if !st.no_new_keyring {
        // runc's setns init: the container's keyring, found by name (the init opened it to search).
        crate::keyring::join(&st.id, None)?;
    }
    nix::unistd::setsid().ctx("setsid", "exec process")?;
    // runc's setns init: the pty is not bound on /dev/console (that is the init's).
    identity::console(plan, console, false)?;
    let (exe, envp) = identity::assume(plan)?;
    if o.detach {
        // A detached exec outlives `carte exec`, which exits as soon as it reads Ready: clear the
        // death signal before sending it.
        nix::sys::prctl::set_pdeathsig(None).ctx("prctl", "PR_SET_PDEATHSIG")?;
    }
    super::listener::hand_over(plan, chan)?;
    chan.send(&Msg::Ready)?;
    crate::signals::reset_defaults()?;
    let listen = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    crate::proc_attrs::keep_fds(3, o.preserve_fds + listen)?;
    sys::close_range_cloexec(3 + o.preserve_fds + listen).ctx("close_range", "fds above stdio")?;
    // Last: after the filter nothing but execve (see `identity::install_seccomp`).
    identity::install_seccomp(plan)?;
    Ok(sys::execve(&exe, &plan.argv, &envp))
}
