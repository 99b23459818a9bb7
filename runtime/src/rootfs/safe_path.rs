//! Paths inside the container's rootfs, handled as file descriptors: every lookup is
//! `openat2(RESOLVE_IN_ROOT)` from the rootfs fd, so `..` and symlinks planted by an image
//! resolve inside the rootfs and never on the host (CVE-2021-30465, CVE-2024-45310,
//! CVE-2026-41579). Mounts then target `/proc/self/fd/N` of the opened fd, not a path string
//! that could be swapped between check and use.

use crate::error::{Context, Result};
use crate::sys;
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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
    if let Ok(fd) = open_in_root(root, path) {
        return Ok(fd);
    }
    let comps: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut cur: OwnedFd =
        open_in_root(root, Path::new("/")).ctx("open rootfs", shown.display())?;
    let mut sofar = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        sofar.push(c);
        let last = i + 1 == comps.len();
        match open_in_root(root, &sofar) {
            Ok(fd) => cur = fd,
            Err(nix::errno::Errno::ENOENT) => {
                // Create relative to the resolved parent fd: never through a path string.
                let dirfd = sys::openat2(
                    root,
                    &rel(sofar.parent().unwrap_or(Path::new("/"))),
                    libc::O_DIRECTORY,
                    RESOLVE,
                )
                .ctx("open", shown.display())?;
                if last && file {
                    let f = nix::fcntl::openat(
                        Some(dirfd.as_raw_fd()),
                        c.as_os_str(),
                        nix::fcntl::OFlag::O_CREAT
                            | nix::fcntl::OFlag::O_WRONLY
                            | nix::fcntl::OFlag::O_CLOEXEC
                            | nix::fcntl::OFlag::O_NOFOLLOW,
                        Mode::from_bits_truncate(0o644),
                    );
                    match f {
                        Ok(raw) => drop(sys::own(raw)),
                        Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(crate::error::Error::sys(
                                "create mount point",
                                shown.display(),
                                e,
                            ))
                        }
                    }
                } else {
                    match nix::sys::stat::mkdirat(
                        Some(dirfd.as_raw_fd()),
                        c.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(crate::error::Error::sys("mkdir", shown.display(), e))
                        }
                    }
                }
                cur = open_in_root(root, &sofar).ctx("open", shown.display())?;
            }
            Err(e) => return Err(crate::error::Error::sys("open", shown.display(), e)),
        }
    }
    let _ = cur.as_fd();
    Ok(cur)
}

/// The magic-link path that names an open fd, for mount(2) targets and sources.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::remove_dir_all(&d).unwrap();
    }
}
