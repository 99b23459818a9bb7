//! The container's view of cgroupfs (a `cgroup` mount in config.json). On a v2 host: a cgroup2
//! mount, rooted at the container's cgroup by its cgroup namespace. On v1 and hybrid hosts: a
//! tmpfs holding one bind mount per hierarchy of the container's *own* cgroup directory, so a
//! container never sees (or, read-only by default, writes) the host's tree (CVE-2023-25809).

use super::mount::{remount, Options};
use super::safe_path;
use crate::error::{Context, Result};
use crate::sys;
use nix::fcntl::{openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mkdirat, Mode};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// One hierarchy of the host: its mount point, the name it gets in the container, and our path.
pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub name: String,
    pub cgroup: String,
}

/// Read before the init unshares its cgroup namespace: afterwards /proc/self/cgroup says `/`.
/// `same_mounts`: the init is in the mount namespace it was cloned with (new or the runtime's),
/// whose hierarchies are the ones the parent found; one it joined is read afresh.
pub fn own_hierarchies(same_mounts: bool) -> Vec<Hierarchy> {
    use crate::cgroups::hierarchy;
    let cg = crate::kernel_text::read("/proc/self/cgroup").unwrap_or_default();
    let read;
    let mounted: &[hierarchy::Hierarchy] = if same_mounts {
        hierarchy::all()
    } else {
        read = hierarchy::read();
        &read
    };
    let mut out = vec![];
    for h in mounted {
        let key = h.controllers.join(",");
        // /proc/self/cgroup: "ID:controllers:path"; v2 has an empty controller list.
        let path = cg.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, p) = (f.next()?, f.next()?, f.next()?);
            let same = if h.v2 {
                ctrls.is_empty()
            } else {
                set_eq(ctrls, &key)
            };
            same.then(|| p.to_string())
        });
        let Some(path) = path else { continue };
        let name = h
            .mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Hierarchy {
            mount_point: h.mount_point.clone(),
            name,
            cgroup: path,
        });
    }
    out
}

/// The `MOUNT_ATTR_*` of `mount_setattr` for the per-mount flags among `flags`.
fn mount_attrs(flags: MsFlags) -> u64 {
    [
        (MsFlags::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
    ]
    .iter()
    .filter(|(ms, _)| flags.contains(*ms))
    .fold(0, |acc, (_, attr)| acc | attr)
}

fn set_eq(a: &str, b: &str) -> bool {
    let mut x: Vec<&str> = a.split(',').collect();
    let mut y: Vec<&str> = b.split(',').collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

pub fn mount_cgroupfs(
    rootfd: BorrowedFd,
    hierarchies: &[Hierarchy],
    dest: &Path,
    o: &Options,
) -> Result<()> {
    let target = safe_path::ensure_in_root(rootfd, dest, false, dest)?;
    let tpath = safe_path::fd_path(&target);
    let base = o.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        log::debug!("mount cgroup2 on {}", dest.display());
        let mounted = mount(
            Some("cgroup2"),
            tpath.as_str(),
            Some("cgroup2"),
            o.flags,
            None::<&str>,
        );
        return match mounted {
            // Rootless, the kernel may refuse a cgroup2 mount from the container's user
            // namespace (EPERM, or EBUSY where the superblock's flags cannot change): bind our
            // own cgroup directory instead, as runc does (rootfs_linux.go mountCgroupV2).
            Err(e @ (nix::errno::Errno::EPERM | nix::errno::Errno::EBUSY)) => {
                let own = hierarchies
                    .iter()
                    .find(|h| h.mount_point == Path::new("/sys/fs/cgroup"))
                    .map(|h| h.mount_point.join(h.cgroup.trim_start_matches('/')));
                let Some(src) = own else {
                    return Err(e).ctx("mount cgroup2", dest.display());
                };
                log::debug!("mount cgroup2: {e}; bind {} instead", src.display());
                mount(
                    Some(&src),
                    tpath.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .ctx(&format!("bind mount {}", src.display()), dest.display())?;
                let top = safe_path::open_in_root(rootfd, dest).ctx("open", dest.display())?;
                drop(target);
                remount(
                    &top,
                    o.flags & !MsFlags::MS_BIND & !MsFlags::MS_REC | base,
                    dest,
                )
            }
            r => r.ctx("mount cgroup2", dest.display()),
        };
    }
    log::debug!(
        "mount tmpfs on {} with the container's own cgroup of each hierarchy",
        dest.display()
    );
    mount(
        Some("tmpfs"),
        tpath.as_str(),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .ctx("mount tmpfs", dest.display())?;
    // The tmpfs was mounted a moment ago by this init, before any process of the container runs:
    // nothing else can have written there, so each hierarchy's directory is one mkdirat on the
    // tmpfs fd, with no walk. Each bind is made detached (`open_tree`), given its flags while
    // detached (`mount_setattr` only adds: flags the kernel locked stay), then attached: five
    // syscalls a hierarchy, where a walk, a bind through /proc/self/fd and a remount took a dozen.
    let tmpfs = safe_path::open_in_root(rootfd, dest).ctx("open", dest.display())?;
    let attrs = mount_attrs(o.flags);
    for h in hierarchies {
        let sub = dest.join(&h.name);
        mkdirat(
            Some(tmpfs.as_raw_fd()),
            h.name.as_str(),
            Mode::from_bits_truncate(0o755),
        )
        .ctx("mkdir", sub.display())?;
        let dir = sys::own(
            openat(
                Some(tmpfs.as_raw_fd()),
                h.name.as_str(),
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx("open", sub.display())?,
        );
        let src = h.mount_point.join(h.cgroup.trim_start_matches('/'));
        // Not recursive: whatever the host mounted below its cgroup (a bind over a cgroup file,
        // say) is not the container's, and the read-only flag would not reach it.
        let tree = sys::open_tree_clone_path(&src, false).ctx("clone", src.display())?;
        sys::mount_setattr_fd(tree.as_fd(), attrs, false).ctx("set the flags of", sub.display())?;
        sys::move_mount_fd(tree.as_fd(), dir.as_fd())
            .ctx(&format!("bind mount {}", src.display()), sub.display())?;
    }
    if o.flags.contains(MsFlags::MS_RDONLY) {
        sys::mount_setattr_fd(tmpfs.as_fd(), sys::MOUNT_ATTR_RDONLY, false)
            .ctx("remount read-only", dest.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_mount_flags_become_mount_attrs() {
        // runc spec's cgroup mount: nosuid, noexec, nodev, relatime, ro. The atime mode is left
        // as the host's mount has it.
        let spec = MsFlags::MS_NOSUID
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NODEV
            | MsFlags::MS_RELATIME
            | MsFlags::MS_RDONLY;
        assert_eq!(
            mount_attrs(spec),
            sys::MOUNT_ATTR_RDONLY
                | sys::MOUNT_ATTR_NOSUID
                | sys::MOUNT_ATTR_NODEV
                | sys::MOUNT_ATTR_NOEXEC
        );
        // A writable view (`rw` in config.json) gets no read-only flag.
        assert_eq!(mount_attrs(MsFlags::MS_NOSUID), sys::MOUNT_ATTR_NOSUID);
        assert_eq!(mount_attrs(MsFlags::MS_BIND | MsFlags::MS_REC), 0);
    }
}
