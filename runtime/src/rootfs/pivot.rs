//! Switching the init's root to the rootfs: `pivot_root` (the default), or for `--no-pivot` a
//! move-mount plus chroot (for rootfs on ramfs, where pivot_root is not possible).

use crate::error::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

/// pivot_root(".", ".") stacks the old root on top of the new one at `/`; after we detach it,
/// nothing of the host's tree is reachable from the container. The old root is made a slave
/// first so the detach cannot propagate back to the host's mounts.
pub fn pivot(rootfs: &Path) -> Result<()> {
    log::debug!("pivot_root into {}", rootfs.display());
    let dir = std::fs::File::open(rootfs).ctx("open", rootfs.display())?;
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&dir)).ctx("fchdir", rootfs.display())?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root", rootfs.display())?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("make old root rslave", "/")?;
    umount2(".", MntFlags::MNT_DETACH).ctx("detach old root", "/")?;
    nix::unistd::chdir("/").ctx("chdir", "/")
}

pub fn move_root(rootfs: &Path) -> Result<()> {
    log::debug!("move {} to / and chroot (--no-pivot)", rootfs.display());
    nix::unistd::chdir(rootfs).ctx("chdir", rootfs.display())?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .ctx("move mount", rootfs.display())?;
    nix::unistd::chroot(".").ctx("chroot", rootfs.display())?;
    nix::unistd::chdir("/").ctx("chdir", "/")
}
