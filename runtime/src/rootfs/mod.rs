//! The container's root filesystem, as one story: propagation, the rootfs bind, every `mounts`
//! entry, devices and links (all before the pivot, in the init's own mount namespace, so nothing
//! of it ever appears in the host's mount table), then after the pivot the masked and read-only
//! paths and a read-only root.

pub mod cgroupfs;
pub mod devices;
pub mod idmap;
pub mod mount;
pub mod paths;
pub mod pivot;
pub mod proc_guard;
pub mod safe_path;
pub mod shared_mounts;
pub mod sources;

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
    /// Bind sources the parent opened for us (user namespaces): (mount index, O_PATH fd).
    pub sources: &'a [(usize, std::os::fd::OwnedFd)],
    /// The container has a mount namespace of its own. Without one (the spec allows it) it
    /// shares the runtime's: nothing is mounted (validate refuses `mounts`), only a chroot.
    pub mount_ns: bool,
}

/// Everything up to (not including) the pivot.
pub fn prepare(p: &Prepare) -> Result<()> {
    if p.mount_ns {
        bind_root(p)?;
    }
    let root = std::fs::File::open(p.rootfs).ctx("open rootfs", p.rootfs.display())?;
    for (i, m) in p
        .spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let src = p.sources.iter().find(|(at, _)| *at == i).map(|(_, fd)| fd);
        mount::mount_one(root.as_fd(), m, p.bundle, p.hierarchies, src)?;
    }
    let linux = p.spec.linux().as_ref();
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

/// The container's mount namespace: `rootfsPropagation` (default rslave) on everything, the
/// rootfs's parent mount private, and the rootfs bound on itself (pivot_root needs a mount point).
fn bind_root(p: &Prepare) -> Result<()> {
    let prop = match p
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
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
    // pivot_root refuses a shared parent mount. runc makes it private; we make it a slave, which
    // pivot_root accepts as well and which keeps the host as its master: the rootfs bound from it
    // is then a slave of the host's mount too, so rootfsPropagation `slave` (or `shared`, on top)
    // really receives the host's mount events, as the spec says it must. Either way nothing we
    // mount reaches the host. A parent that is already a slave (the default rslave) stays one.
    // After a recursive slave, private or unbindable no mount here is shared: the mount table
    // need not be read to know it.
    let none_shared = prop.contains(MsFlags::MS_REC)
        && prop.intersects(MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE | MsFlags::MS_UNBINDABLE);
    let parent = (!none_shared).then(|| parent_mount(p.rootfs));
    if let Some(parent) = parent.filter(|m| m.optional.iter().any(|o| o.starts_with("shared:"))) {
        nix::mount::mount(
            None::<&str>,
            parent.mount_point.as_path(),
            None::<&str>,
            MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .ctx("make slave", parent.mount_point.display())?;
    }
    // pivot_root needs the new root to be a mount point.
    nix::mount::mount(
        Some(p.rootfs),
        p.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("bind mount rootfs", p.rootfs.display())
}

/// The mount holding `path`: the topmost of the longest mount points that are a prefix of it.
fn parent_mount(path: &Path) -> crate::mountinfo::Entry {
    let mounts = crate::mountinfo::read_self().unwrap_or_default();
    let best = mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .map(|m| m.mount_point.as_os_str().len())
        .max()
        .unwrap_or(0);
    // mountinfo lists mounts in mount order: the last one at a point is the one on top.
    mounts
        .into_iter()
        .rfind(|m| path.starts_with(&m.mount_point) && m.mount_point.as_os_str().len() == best)
        .unwrap_or(crate::mountinfo::Entry {
            root: "/".into(),
            mount_point: "/".into(),
            optional: vec![],
            fs_type: String::new(),
            source: String::new(),
            dev: String::new(),
            super_options: String::new(),
        })
}

/// After createContainer hooks: the pivot, then `rootfsPropagation` on the new `/` alone. runc
/// applies it only before (to every mount, see `bind_root`), which leaves the rootfs's own mount
/// private whatever the value; the spec says the value is the rootfs's propagation, so it is set
/// on `/` too, never recursively: the container's mounts keep what the config gave them (an
/// `rshared` volume stays in the host's peer group). Without a mount namespace of its own the
/// container only gets a chroot, as with runc (a pivot would move the host's root).
pub fn enter(spec: &Spec, rootfs: &Path, no_pivot: bool, mount_ns: bool) -> Result<()> {
    if !mount_ns {
        return pivot::chroot(rootfs);
    }
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
        let flag = mount::propagation(w).unwrap_or(MsFlags::MS_SLAVE) - MsFlags::MS_REC;
        nix::mount::mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
            .ctx("set propagation of", "/")?;
    }
    Ok(())
}

/// After the pivot: masked and read-only paths, then the read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    // tmpfs mounts and /dev were mounted writable so their mount points, devices and the console
    // could be made in them; now the `ro` they asked for (runc's finalizeRootfs).
    let root = std::fs::File::open("/").ctx("open", "/")?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if mount::readonly_later(m) {
            let dest = m.destination();
            log::debug!("make {} read-only", dest.display());
            let fd = safe_path::open_in_root(root.as_fd(), dest).ctx("open", dest.display())?;
            crate::sys::mount_setattr_fd(fd.as_fd(), crate::sys::MOUNT_ATTR_RDONLY, false)
                .ctx("remount read-only", dest.display())?;
        }
    }
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
