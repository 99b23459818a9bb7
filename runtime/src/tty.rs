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

/// `uid` is the process's user, who must own the pty. `dev_console`: bind the pty on
/// /dev/console (a container's init with a mount namespace of its own; not for `exec`, as runc).
pub fn setup_console(
    sock: &OwnedFd,
    size: Option<(u16, u16)>,
    uid: u32,
    dev_console: bool,
) -> Result<()> {
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
    give_to_user(&slave, uid)?;
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
    if dev_console {
        bind_console(&slave)?;
    }
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).ctx("dup2 pty to", fd)?;
    }
    crate::sys::set_controlling_tty(0).map_err(|e| Error::sys("ioctl TIOCSCTTY", "pty", e))
}

/// The pty belongs to the process's user, as with runc (fixStdioPermissions): the uid changes,
/// the group stays the one devpts gave (`gid=5`, tty). Like runc, an owner or group the user
/// namespace cannot map (EINVAL, EPERM) or a read-only devpts (EROFS) leaves it as it is.
fn give_to_user(slave: &OwnedFd, uid: u32) -> Result<()> {
    let st = nix::sys::stat::fstat(slave.as_raw_fd()).ctx("stat", "pty")?;
    if st.st_uid == uid {
        return Ok(());
    }
    match nix::unistd::fchown(slave.as_raw_fd(), Some(uid.into()), None) {
        Ok(())
        | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM | nix::errno::Errno::EROFS) => {
            Ok(())
        }
        Err(e) => Err(Error::sys("chown pty to uid", uid, e)),
    }
}

/// The pty slave bound on /dev/console, as runc and crun do.
fn bind_console(slave: &OwnedFd) -> Result<()> {
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
    .ctx("bind pty on", "/dev/console")
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
