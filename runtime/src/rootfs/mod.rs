//! The container's root filesystem, as one story: propagation, the rootfs bind, every `mounts`
//! entry, devices and links (all before the pivot, in the init's own mount namespace, so nothing
//! of it ever appears in the host's mount table), then after the pivot the masked and read-only
//! paths and a read-only root.

pub mod cgroupfs;
pub mod devices;
pub mod mount;
pub mod paths;
pub mod pivot;
pub mod proc_guard;
pub mod safe_path;

use crate::error::{Context, Error, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;
use std::os::fd::AsFd;
use std::path::Path;

pub struct Prepare<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// Inside a new user namespace mknod is refused: bind the host's device nodes instead.
    pub bind_devices: bool,
    pub hierarchies: &'a [cgroupfs::Hierarchy],
}

/// Everything up to (not including) the pivot.
pub fn prepare(p: &Prepare) -> Result<()> {
    let linux = p.spec.linux().as_ref();
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(w) if !w.is_empty() => mount::propagation(w).ok_or_else(|| {
            Error::spec(
                "linux.rootfsPropagation",
                format!("unknown propagation {w:?}"),
            )
        })?,
        // runc's default: receive the host's mount events, never send ours back.
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    log::debug!("make / {prop:?} in the container's mount namespace");
    nix::mount::mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
        .ctx("set propagation of", "/")?;
    // pivot_root refuses a shared parent mount; private also keeps our bind off the host.
    let parent = parent_mount(p.rootfs);
    nix::mount::mount(
        None::<&str>,
        parent.as_path(),
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx("make private", parent.display())?;
    // pivot_root needs the new root to be a mount point.
    nix::mount::mount(
        Some(p.rootfs),
        p.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("bind mount rootfs", p.rootfs.display())?;
    let root = std::fs::File::open(p.rootfs).ctx("open rootfs", p.rootfs.display())?;
    for m in p.spec.mounts().as_deref().unwrap_or_default() {
        mount::mount_one(root.as_fd(), m, p.bundle, p.hierarchies)?;
    }
    let mut devs = devices::defaults();
    for (i, d) in linux
        .and_then(|l| l.devices().as_ref())
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        devs.push(devices::from_spec(d, i)?);
    }
    log::debug!("create {} devices in /dev", devs.len());
    for d in &devs {
        devices::create(root.as_fd(), d, p.bind_devices)?;
    }
    devices::links(root.as_fd())?;
    // runc creates a missing process.cwd; so do we (as root, before the user change).
    if let Some(cwd) = p
        .spec
        .process()
        .as_ref()
        .map(|pr| pr.cwd())
        .filter(|c| c.is_absolute())
    {
        safe_path::ensure_in_root(root.as_fd(), cwd, false, cwd)?;
    }
    Ok(())
}

/// The mount point holding `path`: the longest mount point in our table that is a prefix of it.
fn parent_mount(path: &Path) -> std::path::PathBuf {
    crate::mountinfo::read_self()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
        .unwrap_or_else(|| "/".into())
}

/// After createContainer hooks: the pivot, then `rootfsPropagation` on the new `/` (applying
/// it before the pivot would reach the host's mounts when they are shared).
pub fn enter(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        pivot::move_root(rootfs)?;
    } else {
        pivot::pivot(rootfs)?;
    }
    if let Some(w) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|w| !w.is_empty())
    {
        let flag = mount::propagation(w).unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
        nix::mount::mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
            .ctx("set propagation of", "/")?;
    }
    Ok(())
}

/// After the pivot: masked and read-only paths, then the read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    paths::mask(
        linux
            .and_then(|l| l.masked_paths().as_deref())
            .unwrap_or_default(),
    )?;
    paths::readonly(
        linux
            .and_then(|l| l.readonly_paths().as_deref())
            .unwrap_or_default(),
    )?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        paths::readonly_root()?;
    }
    Ok(())
}
