//! The process's identity, applied by a container's init and by an `exec`'d process alike:
//! console, rlimits, scheduling, capabilities, user and groups, umask, cwd, no_new_privs, the
//! executable resolved in the container, and last of all the seccomp filter.

use super::plan::ProcPlan;
use crate::error::{Context, Error, Result};
use crate::sys;
use std::ffi::CString;
use std::os::fd::OwnedFd;

/// The pty of `process.terminal`, made in the container's devpts and owned by the process's
/// user; `dev_console`: also bound on /dev/console (see `tty::setup_console`).
pub fn console(p: &ProcPlan, sock: Option<&OwnedFd>, dev_console: bool) -> Result<()> {
    if !p.terminal {
        return Ok(());
    }
    let sock = sock.ok_or_else(|| {
        Error::Other("process.terminal is true but no console socket was given".into())
    })?;
    crate::tty::setup_console(sock, p.console_size, p.uid, dev_console)
}

/// Become the configured process; returns the executable and environment for execve. The seccomp
/// filter is left to the caller's very last step ([`install_seccomp`]).
pub fn assume(p: &ProcPlan) -> Result<(CString, Vec<CString>)> {
    crate::proc_attrs::set_rlimits(&p.rlimits)?;
    crate::proc_attrs::set_sched(p)?;
    p.caps
        .drop_bounding()
        .map_err(|e| Error::Other(format!("capabilities: {e}")))?;
    // runc's order: chdir while still root, so a cwd only root can enter works for any user; if
    // root may not (a directory only the user can reach), again after the user change.
    let entered = crate::proc_attrs::chdir_early(&p.cwd)?;
    nix::sys::prctl::set_keepcaps(true).ctx("prctl", "PR_SET_KEEPCAPS")?;
    log::debug!(
        "become uid {} gid {} groups {:?}",
        p.uid,
        p.gid,
        p.additional_gids
    );
    crate::proc_attrs::set_user(p.uid, p.gid, &p.additional_gids)?;
    nix::sys::prctl::set_keepcaps(false).ctx("prctl", "PR_SET_KEEPCAPS")?;
    if let Some(m) = p.umask {
        sys::umask(m);
    }
    crate::proc_attrs::enter_cwd(&p.cwd, !entered)?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: it stays in effective and
    // permitted until the filter is in. That changes nothing the program gets: execve computes
    // its sets from inheritable, bounding and ambient, never from the old permitted set.
    let caps = if !p.no_new_privs && p.seccomp.is_some() {
        p.caps.with_extra(caps::Capability::CAP_SYS_ADMIN)
    } else {
        p.caps.clone()
    };
    caps.apply()
        .map_err(|e| Error::Other(format!("capabilities: {e}")))?;
    if p.no_new_privs {
        nix::sys::prctl::set_no_new_privs().ctx("prctl", "PR_SET_NO_NEW_PRIVS")?;
    }
    let mut envp = p.envp.clone();
    if p.needs_home {
        envp.push(
            CString::new(format!("HOME={}", crate::proc_attrs::home_of(p.uid))).unwrap_or_default(),
        );
    }
    let exe = crate::proc_attrs::find_executable(&p.args[0], &p.env)?;
    crate::lsm::apply_on_exec(&p.labels)?;
    Ok((exe, envp))
}

/// The filter, as the last step before execve: everything the runtime still had to do (fifo,
/// hooks, signals, fds) is done, so a profile needs to allow only the program's own syscalls
/// plus execve. Nothing is logged here: after the filter even a write could be refused.
pub fn install_seccomp(p: &ProcPlan) -> Result<()> {
    match &p.seccomp {
        Some(s) => s.install().ctx("seccomp", "install filter"),
        None => Ok(()),
    }
}
