//! The container's view of cgroupfs (a `cgroup` mount in config.json). On a v2 host: a cgroup2
//! mount, rooted at the container's cgroup by its cgroup namespace. On v1 and hybrid hosts: a
//! tmpfs holding one bind mount per hierarchy of the container's *own* cgroup directory, so a
//! container never sees (or, read-only by default, writes) the host's tree (CVE-2023-25809).

use super::mount::{remount, Options};
use super::safe_path;
use crate::error::{Context, Result};
use nix::mount::{mount, MsFlags};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// One hierarchy of the host: its mount point, the name it gets in the container, and our path.
pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub name: String,
    pub cgroup: String,
}

/// Read before the init unshares its cgroup namespace: afterwards /proc/self/cgroup says `/`.
pub fn own_hierarchies() -> Vec<Hierarchy> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    // Parsed afresh, not `hierarchy::all()` cached by the parent: the init may have joined
    // another mount namespace.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = vec![];
    for h in crate::cgroups::hierarchy::parse(&mi) {
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
            mount_point: h.mount_point,
            name,
            cgroup: path,
        });
    }
    out
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
    // Each hierarchy's directory is resolved inside the tmpfs just mounted, from its own root:
    // nothing but this init can have written there, and one component each is the whole walk
    // (from the rootfs it was a dozen syscalls per hierarchy, a tenth of a v1 `run`'s).
    let tmpfs = safe_path::open_in_root(rootfd, dest).ctx("open", dest.display())?;
    {
        for h in hierarchies {
            let sub = dest.join(&h.name);
            let t = safe_path::ensure_in_root(tmpfs.as_fd(), Path::new(&h.name), false, &sub)?;
            let src = h.mount_point.join(h.cgroup.trim_start_matches('/'));
            // Not MS_REC: whatever the host mounted below its cgroup (a bind over a cgroup
            // file, say) is not the container's, and a read-only remount would not reach it.
            mount(
                Some(&src),
                safe_path::fd_path(&t).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(&format!("bind mount {}", src.display()), sub.display())?;
            let top = safe_path::open_in_root(tmpfs.as_fd(), Path::new(&h.name))
                .ctx("open", sub.display())?;
            drop(t);
            remount(
                &top,
                o.flags & !MsFlags::MS_BIND & !MsFlags::MS_REC | base,
                &sub,
            )?;
        }
    }
    if o.flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            safe_path::fd_path(&tmpfs).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
            Some("mode=755"),
        )
        .ctx("remount read-only", dest.display())?;
    }
    Ok(())
}
