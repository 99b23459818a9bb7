//! `carte run`: create + start, then (unless --detach) wait for the container, forwarding
//! signals to it, and return its exit status. SIGCHLD is blocked *before* the init is cloned and
//! reaped with WNOHANG after, so an init that exits at once can never be missed (youki's hang).

use crate::cli::{Cli, RunArgs};
use crate::error::{Error, Result};
use crate::process;
use crate::state::ContainerDir;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub fn run(cli: &Cli, a: &RunArgs) -> Result<i32> {
    let sigs = crate::signals::forwarded();
    let old = sigs
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(|e| Error::sys("sigprocmask", "block", e))?;
    if !a.detach {
        // With a bridge the init is our grandchild: become its reaper so we can wait for it.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys("prctl", "PR_SET_CHILD_SUBREAPER", e))?;
    }
    let c = process::create(&super::create::opts(cli, &a.create))?;
    if let Err(e) = super::start::start(&c.dir, &c.state) {
        let _ = super::delete::delete(c.dir, &c.state);
        return Err(e);
    }
    if a.detach {
        let _ = old.thread_set_mask();
        return Ok(0);
    }
    let pid = c.state.pid.unwrap_or(0);
    let id = c.state.id.clone();
    // Release the lock while we wait: `kill`, `pause` or `delete` from others must not block.
    drop(c.dir);
    let code = wait_forwarding(pid, &sigs)?;
    if !a.keep {
        match ContainerDir::open(&cli.root, &id) {
            Ok(dir) => {
                let st = dir.load().unwrap_or(c.state);
                super::delete::delete(dir, &st)?;
            }
            // Someone deleted it for us (delete --force while we waited).
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(code)
}

/// Wait for `init` (our child) to exit, forwarding the signals in `sigs` to it; its exit status,
/// or 128 + the signal that killed it.
pub fn wait_forwarding(init: i32, sigs: &nix::sys::signal::SigSet) -> Result<i32> {
    loop {
        // Reap first: the child may have exited before we got here.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => return Ok(c),
                Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => {
                    return Ok(128 + s as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waitpid", init, e)),
            }
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
