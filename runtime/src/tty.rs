//! The console for `process.terminal`: a pty made in the container's own devpts, its master sent
//! to `--console-socket` with SCM_RIGHTS (how containerd and conmon receive it), its slave made
//! the init's stdio, controlling terminal and /dev/console. Without a socket, a foreground `run`
//! or `exec` receives the master itself and relays it to its own stdio (`proxy`).

pub mod proxy;

use crate::error::{Context, Error, Result};
use crate::rootfs::safe_path;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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
    send_master(sock, master.as_fd())?;
    drop(master);
    if dev_console {
        bind_console(&slave)?;
    }
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).ctx("dup2 pty to", fd)?;
    }
    crate::sys::set_controlling_tty(0).map_err(|e| Error::sys("ioctl TIOCSCTTY", "pty", e))
}

/// Send a pty master to the console socket's listener (SCM_RIGHTS, named as runc names it).
pub fn send_master(sock: &OwnedFd, master: BorrowedFd) -> Result<()> {
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
    .ctx("send pty master to", "console socket")
    .map(drop)
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

/// The pty slave bound on /dev/console, as runc and crun do — with fds only (CVE-2025-52565): the
/// source is our slave fd (never a `/dev/pts/N` path that could be swapped), cloned with
/// `open_tree`; the target is the file we resolved in the rootfs, checked to be a file of the
/// container's own `/dev` (an image or a racing process may have made `/dev/console` a symlink to
/// a procfs file such as `/proc/sysrq-trigger`); the two are joined with `move_mount`.
fn bind_console(slave: &OwnedFd) -> Result<()> {
    use nix::sys::stat::{fstat, SFlag};
    let root = std::fs::File::open("/").ctx("open", "/")?;
    let dev = safe_path::open_in_root(root.as_fd(), Path::new("/dev")).ctx("open", "/dev")?;
    let dev_st = fstat(dev.as_raw_fd()).ctx("stat", "/dev")?;
    let console = safe_path::ensure_in_root(
        root.as_fd(),
        Path::new("/dev/console"),
        true,
        Path::new("/dev/console"),
    )?;
    let st = fstat(console.as_raw_fd()).ctx("stat", "/dev/console")?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if !(kind == SFlag::S_IFREG || kind == SFlag::S_IFCHR) || st.st_dev != dev_st.st_dev {
        return Err(Error::Other(
            "/dev/console is not a file of the container's /dev (a symlink out of it?): refusing to mount the console there"
                .into(),
        ));
    }
    let tree = crate::sys::open_tree_clone_fd(slave.as_fd(), false).ctx("clone", "pty")?;
    crate::sys::move_mount_fd(tree.as_fd(), console.as_fd()).ctx("bind pty on", "/dev/console")
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
