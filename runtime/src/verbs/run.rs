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
    opts.outlives_init = !a.detach;
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
        None => crate::wait::wait_forwarding(pid, &sigs)?,
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
