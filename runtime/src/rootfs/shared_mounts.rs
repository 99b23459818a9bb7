//! The mounts of a container that has no mount namespace of its own. The spec lets it share the
//! runtime's; its `mounts` then land in that (the host's) mount table, below the rootfs, and
//! runtime.md says "deleting a container MUST delete the resources that were created during the
//! create step" (runc leaves them, even after a failed create). So `create` records the mount
//! points below the rootfs before the init exists, and teardown detaches whatever was added since,
//! topmost and deepest first, once the container's processes are gone.

use crate::error::Result;
use std::path::{Path, PathBuf};

/// The mount points strictly below `rootfs` now, one entry per mount.
pub fn below(rootfs: &Path) -> Result<Vec<PathBuf>> {
    Ok(crate::mountinfo::read_self()?
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(rootfs) && p != rootfs)
        .collect())
}

/// Detach every mount below `rootfs` beyond those in `before` (as many at each point as were
/// added there). Errors are collected: one stuck mount must not keep the others.
pub fn undo(rootfs: &Path, before: &[PathBuf]) -> Result<()> {
    let mut added = below(rootfs)?;
    for p in before {
        if let Some(i) = added.iter().position(|a| a == p) {
            added.remove(i);
        }
    }
    // Deepest first; at one point, each detach takes the topmost mount.
    added.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut failed = vec![];
    for p in &added {
        log::debug!(
            "detach {} (made by create in the shared mount namespace)",
            p.display()
        );
        match nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => failed.push(format!("{}: {e}", p.display())),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::Other(format!(
            "detach the container's mounts: {}",
            failed.join(", ")
        )))
    }
}
