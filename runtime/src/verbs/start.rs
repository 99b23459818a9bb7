//! `carte start`: release a created container's init from the exec fifo, then poststart hooks
//! (whose failures are warnings, as runtime.md says).

use crate::cli::{Cli, IdArg};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, State, Status};
use nix::poll::{PollFd, PollFlags};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

pub fn run(cli: &Cli, a: &IdArg) -> Result<i32> {
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    start(&dir, &st)?;
    Ok(0)
}

pub fn start(dir: &ContainerDir, st: &State) -> Result<()> {
    let status = state::status(&dir.path, st);
    if status != Status::Created {
        return Err(Error::WrongStatus {
            id: st.id.clone(),
            status: status.as_str().into(),
            verb: "start",
        });
    }
    let pid = st.pid.unwrap_or(0);
    let pidfd = crate::sys::pidfd_open(pid).ctx("pidfd_open", pid)?;
    let fifo_path = dir.fifo();
    // Non-blocking open: a reader never waits for a writer; the poll below waits for the init's
    // byte or its death, whichever comes first — a dead init can never hang `start`.
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo_path)
        .ctx("open", fifo_path.display())?;
    log::debug!(
        "release the init of {} through {}",
        st.id,
        fifo_path.display()
    );
    loop {
        let (ready, init_gone) = wait(fifo.as_fd(), pidfd.as_fd(), &fifo_path)?;
        if ready.contains(PollFlags::POLLIN) {
            let mut b = [0u8; 1];
            match fifo.read(&mut b) {
                Ok(1) => break,
                Ok(_) => {
                    return Err(Error::Other(format!(
                        "container {}: init closed the exec fifo without starting",
                        st.id
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(Error::io("read", &fifo_path, e)),
            }
        }
        if init_gone {
            return Err(Error::Other(format!(
                "container {}: init died before it could start",
                st.id
            )));
        }
        if ready.contains(PollFlags::POLLHUP) {
            // No byte, no writer, yet the init lives: its open of the fifo is under way. The
            // kernel counts a new writer in two steps that poll reads without the pipe's lock,
            // so a reader can see a hang-up between them (1 `run` in 15,000 failed on it, when we
            // had opened first). Give the init a moment to write, or to die, and look again.
            let mut init = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let _ = nix::poll::poll(&mut init, nix::poll::PollTimeout::from(1u8));
        }
    }
    // The init holds its end until execve: wait for the hang-up (or its death).
    loop {
        let (ready, init_gone) = wait(fifo.as_fd(), pidfd.as_fd(), &fifo_path)?;
        if ready.contains(PollFlags::POLLHUP) || init_gone {
            break;
        }
        if ready.contains(PollFlags::POLLIN) {
            let mut b = [0u8; 16];
            if matches!(fifo.read(&mut b), Ok(0)) {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    let hooks = dir.hooks();
    // runtime.md: a failed poststart hook is a warning; the other hooks and the container go on.
    // (runc 1.1 fails and kills the container instead; crun follows the spec, as we do.)
    crate::hooks::run_all_warning(
        "poststart",
        hooks.as_ref().and_then(|h| h.poststart().as_ref()),
        &st.oci_json(Status::Running),
    );
    Ok(())
}

/// One wait for the fifo or the init, whichever speaks first (EINTR waits again): what the fifo
/// reports, and whether the init's pidfd says it is gone.
fn wait(fifo: BorrowedFd, init: BorrowedFd, path: &std::path::Path) -> Result<(PollFlags, bool)> {
    loop {
        let mut fds = [
            PollFd::new(fifo, PollFlags::POLLIN),
            PollFd::new(init, PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", path.display(), e)),
            Ok(_) => {
                let fifo = fds[0].revents().unwrap_or(PollFlags::empty());
                return Ok((fifo, fds[1].revents().is_some_and(|r| !r.is_empty())));
            }
        }
    }
}
