//! The console for `process.terminal`: a pty made in the container's own devpts, its master sent
//! to `--console-socket` with SCM_RIGHTS (how containerd and conmon receive it), its slave made
//! the init's stdio, controlling terminal and /dev/console. Without a socket, a foreground `run`
//! or `exec` receives the master itself and relays it to its own stdio (`proxy`).

pub mod proxy;

use crate::error::{Context, Error, Result};
use crate::rootfs::safe_path;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

pub fn setup_console(sock: &OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .ctx("open", "/dev/ptmx")?
        .into();
    crate::sys::unlockpt(master.as_fd()).ctx("unlockpt", "/dev/ptmx")?;
    // The slave by ioctl on the master, never by a /dev/pts/N path an image could swap.
    let slave = crate::sys::pty_peer(master.as_fd()).ctx("open pty peer", "/dev/ptmx")?;
    if let Some((rows, cols)) = size {
        crate::sys::set_winsize(master.as_raw_fd(), rows, cols)
            .ctx("set console size", "/dev/ptmx")?;
    }
    log::debug!("send the pty master to the console socket");
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let name = b"/dev/ptmx";
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(name)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .ctx("send pty master to", "console socket")?;
    drop(master);
    let root = std::fs::File::open("/").ctx("open", "/")?;
    let console = safe_path::ensure_in_root(
        root.as_fd(),
        Path::new("/dev/console"),
        true,
        Path::new("/dev/console"),
    )?;
    nix::mount::mount(
        Some(format!("/proc/self/fd/{}", slave.as_raw_fd()).as_str()),
        safe_path::fd_path(&console).as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx("bind pty on", "/dev/console")?;
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).ctx("dup2 pty to", fd)?;
    }
    crate::sys::set_controlling_tty(0).map_err(|e| Error::sys("ioctl TIOCSCTTY", "pty", e))
}

use std::os::unix::fs::OpenOptionsExt;

/// Who receives the pty master of a process with `terminal: true`.
#[derive(Clone, Copy, Debug)]
pub enum Console<'a> {
    /// `--console-socket PATH`: whoever listens there (containerd's shim, conmon).
    Socket(&'a Path),
    /// Carte itself, in the foreground, over a private socketpair (see `proxy`).
    Proxy,
}

/// A process with a terminal needs someone to hold the master: refused before anything is made
/// when nobody will (a detached `create`/`run`/`exec` without `--console-socket`).
pub fn require_console(terminal: bool, console: Option<Console>) -> Result<()> {
    if terminal && console.is_none() {
        return Err(Error::Usage(
            "process.terminal is true: a detached process needs --console-socket to hold its terminal"
                .into(),
        ));
    }
    Ok(())
}

/// Connect to `--console-socket` in the parent, before the pivot hides the host's paths.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .ctx("connect to console socket", path.display())?;
    Ok(s.into())
}
