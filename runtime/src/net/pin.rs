//! Network namespace pins: a bind mount of `/proc/PID/ns/net` on `NET_DIR/netns/ID`, made at ADD
//! and removed at the end of DEL. The pin keeps the namespace (and the veth end inside it) alive
//! after the container's processes are gone, so DEL can always enter it: the bridge plugin
//! removes the veth and the masquerade rule only when it finds the interface in the namespace,
//! and otherwise releases the address alone. It is what engines do with `/run/netns/cni-*`.

use super::conf::NET_DIR;
use crate::error::{Context, Error, Result};
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(NET_DIR).join("netns")
}

/// Where the pin of container `id` lives.
pub fn path(id: &str) -> PathBuf {
    dir().join(id)
}

/// Whether `p` has a namespace mounted on it (its device differs from its directory's).
pub fn is_pinned(p: &Path) -> bool {
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(f), Some(Ok(d))) => f.dev() != d.dev(),
        _ => false,
    }
}

/// Make the pin directory a shared mount point, once, as `ip netns` does for /run/netns: mount
/// namespaces created later (other containers, other engines) receive copies of the pins, and a
/// shared peer group lets our unmount reach those copies instead of keeping the namespace alive.
fn make_shared(d: &Path) -> Result<()> {
    let shared = || {
        mount(
            None::<&str>,
            d,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // EINVAL: not a mount point yet; bind it on itself first.
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(d),
                d,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx("bind mount", d.display())?;
            shared().ctx("make shared", d.display())
        }
        Err(e) => Err(Error::sys("make shared", d.display(), e)),
    }
}

/// Pin the network namespace of `pid` for container `id`; returns the pin's path.
pub fn pin(pid: i32, id: &str) -> Result<PathBuf> {
    let d = dir();
    std::fs::create_dir_all(&d).ctx("create", d.display())?;
    // Concurrent `carte net add`s would otherwise both find the directory unmounted and stack
    // two bind mounts on it, hiding the first one's pins.
    let lock_path = Path::new(NET_DIR).join("netns.lock");
    let lock_file = std::fs::File::create(&lock_path).ctx("create", lock_path.display())?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::sys("lock", lock_path.display(), e))?;
    make_shared(&d)?;
    let p = path(id);
    if is_pinned(&p) {
        return Err(Error::Other(format!(
            "pin network namespace `{}`: container {id} is already on a network",
            p.display()
        )));
    }
    std::fs::File::create(&p).ctx("create", p.display())?;
    let src = format!("/proc/{pid}/ns/net");
    if let Err(e) = mount(
        Some(src.as_str()),
        &p,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(&p);
        return Err(Error::sys(
            "bind mount",
            format!("{src} on {}", p.display()),
            e,
        ));
    }
    Ok(p)
}

/// Unmount and remove the pin of `id`; nothing to do is success.
pub fn unpin(id: &str) -> Result<()> {
    let p = path(id);
    match umount2(&p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys("unmount", p.display(), e)),
    }
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &p, e)),
    }
}
