//! `carte run`: create + start, then (unless --detach) wait for the container, forwarding
//! signals to it, and return its exit status. SIGCHLD is blocked *before* the init is cloned and
//! reaped with WNOHANG after, so an init that exits at once can never be missed (youki's hang).
//! A foreground container with a terminal and no `--console-socket` gets its pty relayed to our
//! stdio (`tty::proxy`), as runc does.

use crate::cli::{Cli, RunArgs};
use crate::error::{Error, Result};
use crate::process;
use crate::state::ContainerDir;
use crate::tty::{proxy::Terminal, Console};
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
    let mut opts = super::create::opts(cli, &a.create);
    if opts.console.is_none() && !a.detach {
        opts.console = Some(Console::Proxy);
    }
    let mut c = process::create(&opts)?;
    // Attached before start, so the process sees its window size from the first instruction.
    let term = c.master.take().map(Terminal::attach).transpose();
    let started = term.and_then(|t| super::start::start(&c.dir, &c.state).map(|()| t));
    let term = match started {
        Ok(t) => t,
        Err(e) => {
            let _ = super::delete::delete(c.dir, &c.state);
            return Err(e);
        }
    };
    if a.detach {
        let _ = old.thread_set_mask();
        return Ok(0);
    }
    let pid = c.state.pid.unwrap_or(0);
    let id = c.state.id.clone();
    // Release the lock while we wait: `kill`, `pause` or `delete` from others must not block.
    drop(c.dir);
    let code = match &term {
        Some(t) => t.relay(pid, &sigs)?,
        None => wait_forwarding(pid, &sigs)?,
    };
    // Our terminal back to how it was before anything else is printed.
    drop(term);
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
