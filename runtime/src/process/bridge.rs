//! The bridge process, for the namespace orders one clone cannot give (see `namespaces`): it
//! joins the namespaces to join, creates the user namespace (the parent writes its maps), creates
//! the rest, and forks the init into the new pid/time namespaces; then it reports the init's pid
//! and exits. Only the init returns from `enter_namespaces`.

use super::plan::Plan;
use super::sync::{Channel, Msg};
use crate::error::{Context, Result};
use crate::namespaces;
use crate::sys::{self, Forked};
use std::os::fd::AsFd;

/// Child side.
/// `by_user`: the runtime is unprivileged (decided by the parent, see `InitArgs::unprivileged`).
pub fn enter_namespaces(plan: &Plan, chan: &Channel, by_user: bool) -> Result<()> {
    let ns = &plan.ns;
    // Joins first, user namespace first among them: the rest must be entered from inside it,
    // and we must not lose our host privileges before joining host-owned namespaces.
    let mut joins: Vec<_> = ns.joins.iter().collect();
    joins.sort_by_key(|j| j.nstype != libc::CLONE_NEWUSER);
    for j in joins {
        log::debug!("join {:?} namespace {}", j.typ, j.path.display());
        sys::setns(j.fd.as_fd(), j.nstype).ctx("setns", j.path.display())?;
    }
    if ns.new_flags & libc::CLONE_NEWUSER != 0 {
        log::debug!("unshare user namespace; the parent writes its id maps");
        sys::unshare(libc::CLONE_NEWUSER).ctx("unshare", "user namespace")?;
        // Unprivileged, the parent opens our uid_map only while we are dumpable (see `idmap`).
        if by_user {
            nix::sys::prctl::set_dumpable(true).ctx("prctl", "PR_SET_DUMPABLE")?;
        }
        chan.send(&Msg::MapsPlease)?;
        chan.expect(Msg::MapsDone)?;
        if by_user {
            nix::sys::prctl::set_dumpable(false).ctx("prctl", "PR_SET_DUMPABLE")?;
        }
        nix::unistd::setresgid(0.into(), 0.into(), 0.into()).ctx("setresgid", 0)?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into()).ctx("setresuid", 0)?;
    }
    let rest = ns.new_flags & !libc::CLONE_NEWUSER;
    if rest != 0 {
        log::debug!("unshare namespaces {rest:#x}");
        sys::unshare(rest).ctx("unshare", format!("namespaces {rest:#x}"))?;
    }
    if let Some(offs) = &ns.time_offsets {
        // The bridge still sees the host's /proc (no container mount exists yet), and pathrs's
        // private handle refuses this file once we are in a new user namespace: a plain write.
        std::fs::write("/proc/self/timens_offsets", offs)
            .ctx("write", "/proc/self/timens_offsets")?;
    }
    match sys::clone_fork(0).ctx("fork", "container init")? {
        Forked::Child => Ok(()),
        Forked::Parent(pid) => {
            let _ = chan.send(&Msg::InitPid(pid));
            sys::exit_now(0)
        }
    }
}

/// Parent side: write maps when asked, learn the init's pid, reap the bridge.
pub fn serve(chan: &Channel, bridge: i32, plan: &Plan) -> Result<i32> {
    let res = loop {
        match chan.recv()? {
            Some(Msg::MapsPlease) => {
                namespaces::write_maps(bridge, &plan.ns)?;
                chan.send(&Msg::MapsDone)?;
            }
            Some(Msg::InitPid(pid)) => break Ok(pid),
            Some(Msg::Failed(m)) => break Err(crate::error::Error::Init(m)),
            other => {
                break Err(crate::error::Error::Other(format!(
                    "bridge: unexpected {other:?}"
                )))
            }
        }
    };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(bridge), None);
    res
}
