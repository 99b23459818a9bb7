//! The process's identity, applied by a container's init and by an `exec`'d process alike:
//! console, rlimits, scheduling, seccomp (when it must precede the capability drop), capabilities,
//! user and groups, umask, cwd, no_new_privs, and the executable resolved in the container.

use super::plan::ProcPlan;
use crate::error::{Context, Error, Result};
use crate::sys;
use std::ffi::CString;
use std::os::fd::OwnedFd;

/// Become the configured process; returns the executable and environment for execve. With
/// no_new_privs the seccomp filter is left to the caller, to install as late as possible.
pub fn assume(p: &ProcPlan, console: Option<&OwnedFd>) -> Result<(CString, Vec<CString>)> {
    if p.terminal {
        let sock = console.ok_or_else(|| {
            Error::Other("process.terminal is true but no console socket was given".into())
        })?;
        crate::tty::setup_console(sock, p.console_size)?;
    }
    crate::proc_attrs::set_rlimits(&p.rlimits)?;
    crate::proc_attrs::set_sched(p)?;
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we have it.
    if !p.no_new_privs {
        if let Some(s) = &p.seccomp {
            log::debug!("install seccomp filters");
            s.install().ctx("seccomp", "install filter")?;
        }
    }
    p.caps
        .drop_bounding()
        .map_err(|e| Error::Other(format!("capabilities: {e}")))?;
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
    crate::proc_attrs::enter_cwd(&p.cwd)?;
    p.caps
        .apply()
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
