//! Switching the init's root to the rootfs: `pivot_root` (the default), or for `--no-pivot` a
//! move-mount plus chroot (for rootfs on ramfs, where pivot_root is not possible).

use crate::error::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::fd::AsRawFd;
use std::path::Path;

/// pivot_root(".", ".") stacks the old root on top of the new one at `/`; after we detach it,
/// nothing of the host's tree is reachable from the container. Before the detach the old root
/// (and only it: we stand in it, through the fd opened before the pivot, as runc does) is made
/// rslave, so the unmount cannot propagate back to the host's mounts. Making "." rslave while
/// standing in the new root instead would turn every container mount into a slave, and an
/// `rshared` volume would leave the host's peer group.
pub fn pivot(rootfs: &Path) -> Result<()> {
    log::debug!("pivot_root into {}", rootfs.display());
    let old = std::fs::File::open("/").ctx("open", "/")?;
    let dir = std::fs::File::open(rootfs).ctx("open", rootfs.display())?;
    nix::unistd::fchdir(dir.as_raw_fd()).ctx("fchdir", rootfs.display())?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root", rootfs.display())?;
    nix::unistd::fchdir(old.as_raw_fd()).ctx("fchdir", "old root")?;
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

/// A container without a mount namespace of its own shares the runtime's: it only gets a chroot
/// into the rootfs (runc's `chroot()`), since a pivot or a move would change the host's tree.
pub fn chroot(rootfs: &Path) -> Result<()> {
    log::debug!("chroot into {} (no mount namespace)", rootfs.display());
    nix::unistd::chdir(rootfs).ctx("chdir", rootfs.display())?;
    nix::unistd::chroot(".").ctx("chroot", rootfs.display())?;
    nix::unistd::chdir("/").ctx("chdir", "/")
}

/// `--no-pivot`: the host's tree stays in our mount namespace under the chroot. The kernel lets a
/// process mount a fresh procfs or sysfs only where a full one is already visible in its mount
/// namespace, so a container that makes a nested user namespace could mount an unmasked /proc
/// through the host's (runc's `tests/integration/no_pivot.bats`). Detach every full procfs and
/// sysfs outside the rootfs first, or cover it with a tmpfs where it cannot be detached, as runc
/// does in `msMoveRoot`.
pub fn move_root(rootfs: &Path) -> Result<()> {
    log::debug!("move {} to / and chroot (--no-pivot)", rootfs.display());
    hide_host_pseudo_filesystems(rootfs)?;
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

fn hide_host_pseudo_filesystems(rootfs: &Path) -> Result<()> {
    let mut full: Vec<_> = crate::mountinfo::read_self()?
        .into_iter()
        .filter(|m| {
            (m.fs_type == "proc" || m.fs_type == "sysfs")
                && m.root == Path::new("/")
                && !m.mount_point.starts_with(rootfs)
        })
        .map(|m| m.mount_point)
        .collect();
    // Deepest first, so a parent's detach does not take a child's path away before we see it.
    full.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in full {
        // Slave first: our detach must not propagate to the host's mount table.
        match mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            // Already gone with a parent we detached.
            Err(nix::errno::Errno::ENOENT) => continue,
            r => r.ctx("make rslave", p.display())?,
        }
        log::debug!("hide host {} before the chroot", p.display());
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            // Locked under a user namespace: cover it instead.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => mount(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .ctx("cover with tmpfs", p.display())?,
            Err(e) => return Err(crate::error::Error::sys("detach", p.display(), e)),
        }
    }
    Ok(())
}
