//! Waiting for a container process we started (`run`, foreground `exec`): reap it and every
//! orphan we adopted as subreaper, forward the signals a supervisor sends us, and turn its end
//! into an exit code. Below the verbs and the terminal proxy, which both use it.

use crate::error::{Error, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Wait for `init` (our child) to exit, forwarding the signals in `sigs` to it; its exit status,
/// or 128 + the signal that killed it.
pub fn wait_forwarding(init: i32, sigs: &nix::sys::signal::SigSet) -> Result<i32> {
    loop {
        // Reap first: the child may have exited before we got here.
        if let Some(code) = reap(init)? {
            return Ok(code);
        }
        let sig = sigs
            .wait()
            .map_err(|e| Error::sys("sigwait", "forwarded signals", e))?;
        if sig != Signal::SIGCHLD {
            log::debug!("forward {sig} to pid {init}");
            let _ = nix::sys::signal::kill(Pid::from_raw(init), sig);
        }
    }
}

/// Reap every exited child without blocking (others are orphans we adopted as subreaper); the
/// exit status of `init` if it was among them, or 128 + the signal that killed it.
pub fn reap(init: i32) -> Result<Option<i32>> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => return Ok(Some(c)),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => {
                return Ok(Some(128 + s as i32))
            }
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", init, e)),
        }
    }
}
