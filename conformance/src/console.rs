//! The receiving end of `--console-socket`: a unix listener that accepts the runtime's connection and takes the
//! pty master it sends with SCM_RIGHTS (runc's protocol, also used by crun, youki and containerd).

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> Result<Self> {
        let listener = UnixListener::bind(path)
            .with_context(|| format!("bind console socket `{}`", path.display()))?;
        listener
            .set_nonblocking(true)
            .context("set console socket non-blocking")?;
        Ok(ConsoleSocket {
            path: path.to_path_buf(),
            listener,
        })
    }

    /// Accept one connection before `deadline` (or until `cancel` is set) and receive the one fd it carries.
    pub fn receive(&self, deadline: Instant, cancel: &AtomicBool) -> Result<OwnedFd> {
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline || cancel.load(Ordering::Relaxed) {
                        bail!("no runtime connected to the console socket");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).context("accept on the console socket"),
            }
        };
        stream
            .set_nonblocking(false)
            .context("set console stream blocking")?;
        stream.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100)),
        ))?;
        recv_fd(stream.as_raw_fd())
    }
}

fn recv_fd(sock: i32) -> Result<OwnedFd> {
    // The runtime sends the pty's name as data and the master as ancillary data.
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at live buffers (`data`, `control`) of the lengths it states.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error())
            .context("receive the pty master from the console socket");
    }
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR only reads its control fields.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        bail!("receive the pty master: the message carried no file descriptor");
    }
    // SAFETY: `cmsg` is non-null and points into `control`, which recvmsg filled.
    let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    if level != libc::SOL_SOCKET || kind != libc::SCM_RIGHTS {
        bail!("receive the pty master: unexpected control message {level}/{kind}");
    }
    // SAFETY: an SCM_RIGHTS message holds at least one int; it may be unaligned, hence read_unaligned.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()) };
    // SAFETY: the kernel just installed `fd` in our table for us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read everything the container writes to the pty until its process `pid` is gone (EIO once the slave
/// closes) or `deadline` passes. Reads as it goes so a full pty buffer never blocks the container.
pub fn drain(master: OwnedFd, pid: i32, deadline: Instant) -> Result<String> {
    // SAFETY: fcntl on an fd we own, setting a status flag.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut file = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let mut idle_after_exit = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !crate::case::process_alive(pid) {
                    idle_after_exit += 1;
                    if idle_after_exit > 5 {
                        break;
                    }
                }
                if Instant::now() >= deadline {
                    bail!("the container's terminal stayed open until the case deadline");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // EIO: the last slave fd closed, i.e. the container process exited.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => return Err(e).context("read the container's terminal"),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
