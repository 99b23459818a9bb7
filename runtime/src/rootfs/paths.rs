//! `maskedPaths`, `readonlyPaths` and `root.readonly`, applied after the pivot. A masked file gets
//! the container's /dev/null bound over it only after checking that it really is the null device
//! (char 1:3) — an image could make /dev/null a symlink to a procfs file (CVE-2025-31133).

use super::mount::remount;
use super::safe_path;
use crate::error::{Context, Error, Result};
use nix::mount::{mount, MsFlags};
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
        let t = safe_path::fd_path(&fd);
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            mount(
                Some("tmpfs"),
                t.as_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .ctx("mask (tmpfs)", p)?;
        } else {
            mount(
                Some(safe_path::fd_path(&null).as_str()),
                t.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx("mask (bind /dev/null)", p)?;
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
        let t = safe_path::fd_path(&fd);
        mount(
            Some(t.as_str()),
            t.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx("bind read-only path", p)?;
        // The bind made a new mount on top: reopen so the remount hits it, not the one below.
        let top = safe_path::open_in_root(root.as_fd(), Path::new(p)).ctx("open", p)?;
        remount(&top, MsFlags::MS_RDONLY, Path::new(p))?;
        log::debug!("made {p} read-only");
    }
    Ok(())
}

pub fn readonly_root() -> Result<()> {
    let root = std::fs::File::open("/").ctx("open", "/")?;
    let fd = safe_path::open_in_root(root.as_fd(), Path::new("/")).ctx("open", "/")?;
    log::debug!("remount / read-only");
    remount(&fd, MsFlags::MS_RDONLY, Path::new("/"))
}
