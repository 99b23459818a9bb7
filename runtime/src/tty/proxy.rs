//! The terminal proxy of a foreground `run` or `exec` given `terminal: true` and no
//! `--console-socket`, as runc does it: carte stands in for the console socket with a private
//! socketpair, receives the pty master itself, and relays it to its own stdio until the process
//! has exited and the pty has drained.
//!
//! Why a socketpair rather than a pty opened here: the pty must be made in the container's own
//! devpts (the init opens it after the pivot and reaches the slave by TIOCGPTPEER, see `tty`), so
//! the master has to travel out exactly as it does to a real console socket. One code path for
//! both keeps the container side unaware of who listens.
//!
//! The relay is one poll loop on a signalfd (the forwarded signals are already blocked, so none
//! can slip between a check and the wait), the master and our stdin. Our stdin goes to the master
//! through a buffer and a non-blocking master, so a container that writes without reading can
//! never deadlock us against it. When our stdin is a terminal it is put in raw mode (the
//! container's pty does the line editing and echo) and restored on drop; its size is copied to the
//! pty at attach and on every SIGWINCH. When it is not (a pipe, /dev/null), termios is not touched
//! and its end of file is not passed on: like runc, the master stays open and the process decides
//! when to exit.

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags};
use nix::sys::socket::{SockFlag, SockType};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::Pid;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

const STDIN: RawFd = 0;
const STDOUT: RawFd = 1;

/// `(ours, theirs)`: `theirs` stands in for the console socket the container's process sends the
/// master over; `ours` receives it. Close-on-exec, so neither reaches a hook or the container.
pub fn channel() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx("socketpair", "terminal proxy")
}

/// Take the master the container's process sent on `ours`. Called once it has reported ready,
/// which it does only after sending: not finding the master then is an error, never a wait.
pub fn receive_master(ours: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        ours.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx("receive pty master from", "terminal proxy")?;
    let mut master = None;
    for cmsg in msg
        .cmsgs()
        .ctx("read control messages of", "terminal proxy")?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // Own every fd received, so extra ones are closed, not leaked.
                let owned = crate::sys::own(fd);
                if master.is_none() {
                    master = Some(owned);
                }
            }
        }
    }
    master.ok_or_else(|| Error::Other("terminal proxy: no pty master was received".into()))
}

/// The pty master being relayed, and our terminal's settings to restore.
pub struct Terminal {
    master: OwnedFd,
    saved: Option<Termios>,
}

impl Terminal {
    /// Take over `master`: when our stdin is a terminal, give the pty its size and put ours in
    /// raw mode (restored on drop). Call before `start`, so the process sees its size at once.
    pub fn attach(master: OwnedFd) -> Result<Terminal> {
        let mut t = Terminal {
            master,
            saved: None,
        };
        let stdin = crate::sys::borrow(STDIN);
        if termios::tcgetattr(stdin).is_ok() {
            t.copy_size()?;
            let saved = termios::tcgetattr(stdin).ctx("tcgetattr", "stdin")?;
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin, SetArg::TCSANOW, &raw).ctx("set raw mode on", "stdin")?;
            t.saved = Some(saved);
        }
        Ok(t)
    }

    /// Relay until the process `init` (our child, or grandchild with us as subreaper) has exited
    /// and the pty has drained (EIO: every slave fd is closed), forwarding `sigs` to it; its exit
    /// status, or 128 + the signal that killed it. `sigs` must be blocked in this thread.
    pub fn relay(&self, init: i32, sigs: &SigSet) -> Result<i32> {
        let sfd = SignalFd::with_flags(sigs, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .ctx("signalfd", "forwarded signals")?;
        set_nonblocking(self.master.as_fd())?;
        let mut r = Relay {
            init,
            exit: None,
            master_open: true,
            stdin_open: true,
            stdout_ok: true,
            pending: Vec::new(),
        };
        loop {
            if r.exit.is_none() {
                r.exit = crate::wait::reap(init)?;
            }
            if let (Some(code), false) = (r.exit, r.master_open) {
                return Ok(code);
            }
            let ready = r.wait(&sfd, self.master.as_fd())?;
            if ready.signals {
                self.on_signals(&sfd, &mut r)?;
            }
            if ready.master_in {
                r.read_master(self.master.as_fd())?;
            }
            if ready.master_out {
                r.write_master(self.master.as_fd())?;
            }
            if ready.stdin {
                r.read_stdin();
            }
        }
    }

    fn on_signals(&self, sfd: &SignalFd, r: &mut Relay) -> Result<()> {
        while let Some(info) = sfd.read_signal().ctx("read", "signalfd")? {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                // Reaped at the top of the loop.
                Signal::SIGCHLD => {}
                // The kernel signals the pty's foreground group itself when its size changes.
                Signal::SIGWINCH => self.copy_size()?,
                _ if r.exit.is_none() => {
                    log::debug!("forward {sig} to pid {}", r.init);
                    let _ = nix::sys::signal::kill(Pid::from_raw(r.init), sig);
                }
                // The process is gone and something (a background process of an `exec`) still
                // holds the pty: a signal meant for the process ends the wait for the drain.
                _ => r.master_open = false,
            }
        }
        Ok(())
    }

    /// Our stdin's window size onto the pty; nothing when stdin is not a terminal.
    fn copy_size(&self) -> Result<()> {
        match stdin_size() {
            Some((rows, cols)) => crate::sys::set_winsize(self.master.as_raw_fd(), rows, cols)
                .ctx("set the size of", "pty master"),
            None => Ok(()),
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            if let Err(e) = termios::tcsetattr(crate::sys::borrow(STDIN), SetArg::TCSANOW, saved) {
                log::warn!("restore the terminal settings of stdin: {e}");
            }
        }
    }
}

/// The relay's state between two polls.
struct Relay {
    init: i32,
    exit: Option<i32>,
    /// Until EIO: the last slave fd is closed and everything written to it has been read.
    master_open: bool,
    stdin_open: bool,
    /// False once writing to our stdout failed (a closed pipe): the rest is read and dropped,
    /// so the process is never blocked on a full pty.
    stdout_ok: bool,
    /// Read from stdin, not yet taken by the master.
    pending: Vec<u8>,
}

struct Ready {
    signals: bool,
    master_in: bool,
    master_out: bool,
    stdin: bool,
}

impl Relay {
    /// Block until a signal, pty output, room for pending input, or stdin input (only when
    /// nothing is pending, and only while the process lives: afterwards input has no reader).
    fn wait(&mut self, sfd: &SignalFd, master: BorrowedFd) -> Result<Ready> {
        let any_in = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let mut master_at = None;
        if self.master_open {
            let mut ev = PollFlags::POLLIN;
            if !self.pending.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            master_at = Some(fds.len());
            fds.push(PollFd::new(master, ev));
        }
        let mut stdin_at = None;
        if self.stdin_open && self.pending.is_empty() && self.exit.is_none() {
            stdin_at = Some(fds.len());
            fds.push(PollFd::new(crate::sys::borrow(STDIN), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll", "terminal proxy", e)),
        }
        let got = |i: Option<usize>, want: PollFlags| {
            i.and_then(|i| fds[i].revents())
                .is_some_and(|r| r.intersects(want))
        };
        let ready = Ready {
            signals: got(Some(0), PollFlags::POLLIN),
            master_in: got(master_at, any_in),
            master_out: got(master_at, PollFlags::POLLOUT),
            stdin: got(stdin_at, any_in),
        };
        // A closed stdin (POLLNVAL) would wake every poll: stop watching it.
        if got(stdin_at, PollFlags::POLLNVAL) {
            self.stdin_open = false;
        }
        Ok(ready)
    }

    fn read_master(&mut self, master: BorrowedFd) -> Result<()> {
        let mut buf = [0u8; 8192];
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) => self.master_open = false,
            Ok(n) => self.write_stdout(&buf[..n]),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("read", "pty master", e)),
        }
        Ok(())
    }

    fn write_stdout(&mut self, bytes: &[u8]) {
        if !self.stdout_ok {
            return;
        }
        if let Err(e) = crate::sys::write_all_raw(STDOUT, bytes) {
            log::debug!("terminal proxy: stdout: {e}; dropping the rest of the output");
            self.stdout_ok = false;
        }
    }

    fn write_master(&mut self, master: BorrowedFd) -> Result<()> {
        match nix::unistd::write(master, &self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            // Every slave is closed: nobody will ever read this input.
            Err(Errno::EIO) => self.pending.clear(),
            Err(e) => return Err(Error::sys("write", "pty master", e)),
        }
        Ok(())
    }

    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(STDIN, &mut buf) {
            Ok(0) => {
                log::debug!("terminal proxy: end of stdin; the pty stays open");
                self.stdin_open = false;
            }
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(e) => {
                log::debug!("terminal proxy: stdin: {e}; no more input");
                self.stdin_open = false;
            }
        }
    }
}

/// `(rows, cols)` of the terminal on our stdin; none when stdin is not a terminal.
pub fn stdin_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which outlives the call.
    let ok = unsafe { libc::ioctl(STDIN, libc::TIOCGWINSZ, &mut ws) } == 0;
    ok.then_some((ws.ws_row, ws.ws_col))
}

fn set_nonblocking(fd: BorrowedFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).ctx("fcntl F_GETFL", "pty master")?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).ctx("fcntl F_SETFL", "pty master")?;
    Ok(())
}
