//! `maskedPaths`, `readonlyPaths` and `root.readonly`, applied after the pivot. A masked file gets
//! the container's /dev/null bound over it only after checking that it really is the null device
//! (char 1:3) — an image could make /dev/null a symlink to a procfs file (CVE-2025-31133).
//!
//! Everything here works on file descriptors with the new mount API (`open_tree`, `fsmount`,
//! `mount_setattr`, `move_mount`), never on `/proc/self/fd/N` strings: after the pivot, `/proc`
//! is the container's, and an image whose config mounts no procfs there could plant symlinks at
//! `/proc/self/fd/N` that redirect a mask or a read-only remount elsewhere.

use super::safe_path;
use crate::error::{Context, Error, Result};
use crate::sys;
use nix::sys::stat::{fstat, major, minor, SFlag};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

pub fn mask(paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let root = std::fs::File::open("/").ctx("open", "/")?;
    let null =
        safe_path::open_in_root(root.as_fd(), Path::new("/dev/null")).ctx("open", "/dev/null")?;
    let st = fstat(null.as_raw_fd()).ctx("stat", "/dev/null")?;
    let is_null = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
        && major(st.st_rdev) == 1
        && minor(st.st_rdev) == 3;
    if !is_null {
        return Err(Error::Other(
            "/dev/null in the container is not the null device: refusing to mask paths with it"
                .into(),
        ));
    }
    for p in paths {
        let fd = match safe_path::open_in_root(root.as_fd(), Path::new(p)) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(Error::sys("open masked path", p, e)),
        };
        let st = fstat(fd.as_raw_fd()).ctx("stat", p)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            // An empty read-only tmpfs over a directory.
            let empty =
                sys::fsmount_new(c"tmpfs", sys::MOUNT_ATTR_RDONLY).ctx("mask (new tmpfs)", p)?;
            sys::move_mount_fd(empty.as_fd(), fd.as_fd()).ctx("mask (tmpfs)", p)?;
        } else {
            let dev_null =
                sys::open_tree_clone_fd(null.as_fd(), false).ctx("mask (clone /dev/null)", p)?;
            sys::move_mount_fd(dev_null.as_fd(), fd.as_fd()).ctx("mask (bind /dev/null)", p)?;
        }
        log::debug!("masked {p}");
    }
    Ok(())
}

pub fn readonly(paths: &[String]) -> Result<()> {
    let root = std::fs::File::open("/").ctx("open", "/")?;
    for p in paths {
        let fd = match safe_path::open_in_root(root.as_fd(), Path::new(p)) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(Error::sys("open read-only path", p, e)),
        };
        // A recursive copy of the tree at the path, made read-only while still detached (flags
        // the kernel locked, like nosuid, are kept: mount_setattr only adds), bound over it.
        let tree = sys::open_tree_clone_fd(fd.as_fd(), true).ctx("clone read-only path", p)?;
        sys::mount_setattr_fd(tree.as_fd(), sys::MOUNT_ATTR_RDONLY, true)
            .ctx("make read-only", p)?;
        sys::move_mount_fd(tree.as_fd(), fd.as_fd()).ctx("bind read-only path", p)?;
        log::debug!("made {p} read-only");
    }
    Ok(())
}

pub fn readonly_root() -> Result<()> {
    let root = std::fs::File::open("/").ctx("open", "/")?;
    let fd = safe_path::open_in_root(root.as_fd(), Path::new("/")).ctx("open", "/")?;
    log::debug!("remount / read-only");
    // The root mount alone (not recursively): the mounts under it keep their own flags.
    sys::mount_setattr_fd(fd.as_fd(), sys::MOUNT_ATTR_RDONLY, false).ctx("remount read-only", "/")
}
