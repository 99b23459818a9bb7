//! The `--console-socket` receiving end: a unix socket that accepts one connection and takes the pty master
//! the runtime sends with SCM_RIGHTS.

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::io::{ErrorKind, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A listening console socket; the master is received on a background thread so that a runtime which waits
/// for the transfer cannot deadlock against the test.
pub struct ConsoleSocket {
    path: PathBuf,
    receiver: JoinHandle<Result<OwnedFd>>,
}

impl ConsoleSocket {
    /// Binds `dir/console.sock` and starts waiting (up to `timeout`) for the runtime to connect.
    pub fn listen(dir: &Path, timeout: Duration) -> Result<ConsoleSocket> {
        let path = dir.join("console.sock");
        let listener =
            UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let receiver = std::thread::spawn(move || receive(listener, timeout));
        Ok(ConsoleSocket { path, receiver })
    }

    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// The received pty master.
    pub fn master(self) -> Result<OwnedFd> {
        self.receiver
            .join()
            .map_err(|_| anyhow!("console receiver thread panicked"))?
    }
}

fn receive(listener: UnixListener, timeout: Duration) -> Result<OwnedFd> {
    let deadline = Instant::now() + timeout;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accept on console socket"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("recvmsg on console socket")?;
    for cmsg in msg.cmsgs().context("read control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us via SCM_RIGHTS; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    bail!("console socket message carried no file descriptor")
}

/// Reads everything the container writes to the pty until the slave side closes (EIO) or `timeout` passes.
pub fn read_until_closed(master: &OwnedFd, timeout: Duration) -> Result<String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "pty still open after {timeout:?}; read so far: {:?}",
                String::from_utf8_lossy(&out)
            );
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).context("poll pty master")?;
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("read pty master"),
        }
    }
    Ok(String::from_utf8_lossy(&out).to_string())
}
