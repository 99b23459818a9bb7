//! Paths inside the container's rootfs, handled as file descriptors: every lookup is
//! `openat2(RESOLVE_IN_ROOT)` from the rootfs fd, so `..` and symlinks planted by an image
//! resolve inside the rootfs and never on the host (CVE-2021-30465, CVE-2024-45310,
//! CVE-2026-41579). Mounts then target `/proc/self/fd/N` of the opened fd, not a path string
//! that could be swapped between check and use.

use crate::error::{Context, Error, Result};
use crate::sys;
use nix::errno::Errno;
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

const RESOLVE: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// Open an existing path inside `root` as an O_PATH fd.
pub fn open_in_root(
    root: BorrowedFd,
    path: &Path,
) -> std::result::Result<OwnedFd, nix::errno::Errno> {
    sys::openat2(root, &rel(path), libc::O_PATH, RESOLVE)
}

/// `a/b/c` relative form of an absolute container path (`/` becomes `.`).
fn rel(path: &Path) -> PathBuf {
    let r: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    }
}

/// Open `path` inside `root`, creating missing directories (and, when `file` is true, the last
/// component as an empty regular file) — the mount point for a mount or a device.
pub fn ensure_in_root(root: BorrowedFd, path: &Path, file: bool, shown: &Path) -> Result<OwnedFd> {
    ensure_depth(root, path, file, shown, 0)
}

/// Symlinks followed while creating a path, as the kernel's own limit (ELOOP beyond it).
const MAX_LINKS: u32 = 40;

fn ensure_depth(
    root: BorrowedFd,
    path: &Path,
    file: bool,
    shown: &Path,
    depth: u32,
) -> Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path) {
        return Ok(fd);
    }
    if depth > MAX_LINKS {
        return Err(Error::sys("resolve", shown.display(), Errno::ELOOP));
    }
    let comps: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut cur: OwnedFd =
        open_in_root(root, Path::new("/")).ctx("open rootfs", shown.display())?;
    let mut sofar = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        let parent = sofar.clone();
        sofar.push(c);
        let last = i + 1 == comps.len();
        match open_in_root(root, &sofar) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT) => {
                // Create relative to the resolved parent fd: never through a path string.
                let dirfd = sys::openat2(root, &rel(&parent), libc::O_DIRECTORY, RESOLVE)
                    .ctx("open", shown.display())?;
                create_at(&dirfd, c.as_os_str(), last && file, shown)?;
                cur = match open_in_root(root, &sofar) {
                    Ok(fd) => fd,
                    // Still missing: the name is a dangling symlink planted by the image (a /dev
                    // pointing at a host path, say). Create what it points to, resolved inside
                    // the rootfs exactly as RESOLVE_IN_ROOT will resolve it, then go on through it.
                    Err(Errno::ENOENT) => {
                        let target = nix::fcntl::readlinkat(Some(dirfd.as_raw_fd()), c.as_os_str())
                            .ctx("readlink", shown.display())?;
                        let inside = clamp(&parent.join(target));
                        ensure_depth(root, &inside, last && file, shown, depth + 1)?
                    }
                    Err(e) => return Err(Error::sys("open", shown.display(), e)),
                };
            }
            Err(e) => return Err(Error::sys("open", shown.display(), e)),
        }
    }
    Ok(cur)
}

/// mkdir (or create an empty file) `name` in `dir`; an existing entry is fine.
fn create_at(dir: &OwnedFd, name: &std::ffi::OsStr, file: bool, shown: &Path) -> Result<()> {
    let res = if file {
        nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o644),
        )
        .map(|raw| drop(sys::own(raw)))
    } else {
        nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
    };
    match res {
        // ELOOP: O_NOFOLLOW met a (dangling) symlink, which the caller resolves.
        Ok(()) | Err(Errno::EEXIST) | Err(Errno::ELOOP) => Ok(()),
        Err(e) => Err(Error::sys(
            if file { "create mount point" } else { "mkdir" },
            shown.display(),
            e,
        )),
    }
}

/// `..` resolved lexically and clamped at `/`, as RESOLVE_IN_ROOT treats the rootfs's top.
fn clamp(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The magic-link path that names an open fd, for mount(2) targets and sources.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = std::env::temp_dir().join(format!("carte-safe-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("etc")).unwrap();
        // An image's symlink to the host root must land inside the rootfs.
        std::os::unix::fs::symlink("/", d.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../..", d.join("up")).unwrap();
        let root = std::fs::File::open(&d).unwrap();
        let fd = ensure_in_root(
            root.as_fd(),
            Path::new("/escape/newdir/x"),
            false,
            Path::new("x"),
        )
        .unwrap();
        drop(fd);
        assert!(d.join("newdir/x").is_dir(), "created inside the rootfs");
        let fd =
            ensure_in_root(root.as_fd(), Path::new("/up/etc/f"), true, Path::new("f")).unwrap();
        drop(fd);
        assert!(d.join("etc/f").is_file());
        // A dangling symlink to a host path: its target is created inside the rootfs.
        std::os::unix::fs::symlink("/host/dev", d.join("dev")).unwrap();
        std::os::unix::fs::symlink("../../gone/deeper", d.join("etc/rel")).unwrap();
        drop(ensure_in_root(root.as_fd(), Path::new("/dev/pts"), false, Path::new("p")).unwrap());
        assert!(d.join("host/dev/pts").is_dir());
        drop(ensure_in_root(root.as_fd(), Path::new("/etc/rel/f"), true, Path::new("f")).unwrap());
        assert!(d.join("gone/deeper/f").is_file());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
