//! One OCI `mounts` entry → syscalls: option words parsed into mount flags, propagation and
//! filesystem data, then the mount made onto an fd-resolved destination inside the rootfs.

use super::safe_path;
use crate::error::{Context, Error, Result};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags to clear (an explicit `rw`, `suid`, …) — recorded so `ro` then `rw` ends as rw.
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// Recursive attributes (`rro`, `rnosuid`, …): `MOUNT_ATTR_*` bits set and cleared with
    /// `mount_setattr(AT_RECURSIVE)` on the new mount and every mount below it.
    pub rec_set: u64,
    pub rec_clr: u64,
}

/// The recursive option words (runc's), as `(attributes set, attributes cleared)`.
pub fn recursive_attr(word: &str) -> Option<(u64, u64)> {
    use crate::sys::*;
    Some(match word {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        _ => return None,
    })
}

/// Parse the option words of a mount. Words that are not flags are filesystem data (`size=64m`).
pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: vec![],
        data: vec![],
        rec_set: 0,
        rec_clr: 0,
    };
    for w in opts {
        if let Some((set, clr)) = recursive_attr(w) {
            // Later words win, as for the plain flags.
            o.rec_set = (o.rec_set & !clr & !set) | set;
            o.rec_clr = (o.rec_clr & !set) | clr;
            continue;
        }
        let (set, clear): (MsFlags, MsFlags) = match w.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                o.propagation
                    .push(propagation(p).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            // containerd-only extension words carte does not act on.
            "tmpcopyup" => continue,
            // Not mount(2) flags or data (config.md): `idmap.rs` acts on them.
            "idmap" | "ridmap" => continue,
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
        o.clear.insert(clear);
    }
    o
}

pub fn propagation(word: &str) -> Option<MsFlags> {
    Some(match word {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// A tmpfs or /dev asked to be read-only is mounted writable and made read-only after the pivot
/// (`rootfs::finish`), as runc does: mount points, devices and the console are made in it first.
pub fn readonly_later(m: &Mount) -> bool {
    let o = parse_options(m.options().as_deref().unwrap_or_default());
    let dev = m.destination().components().collect::<PathBuf>() == Path::new("/dev");
    o.flags.contains(MsFlags::MS_RDONLY) && (m.typ().as_deref() == Some("tmpfs") || dev)
}

/// Mount one spec entry under the rootfs. `bundle` resolves relative bind sources; `src_fd` is
/// the source the parent opened for us (see `sources`), used instead of the path.
pub fn mount_one(
    rootfd: BorrowedFd,
    m: &Mount,
    bundle: &Path,
    hierarchies: &[super::cgroupfs::Hierarchy],
    src_fd: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let mut o = parse_options(m.options().as_deref().unwrap_or_default());
    if readonly_later(m) {
        o.flags.remove(MsFlags::MS_RDONLY);
    }
    let is_bind = o.flags.contains(MsFlags::MS_BIND) || typ == "bind";
    let source: Option<PathBuf> = m.source().as_ref().map(|s| {
        if is_bind && s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    });
    if typ == "cgroup" || typ == "cgroup2" {
        return super::cgroupfs::mount_cgroupfs(rootfd, hierarchies, dest, &o);
    }
    if typ == "proc" || typ == "sysfs" {
        super::proc_guard::ordinary_directory(rootfd, dest, typ)?;
    }
    // A bind of a file needs a file as its mount point; everything else a directory.
    let file = is_bind
        && match src_fd {
            Some(fd) => nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(fd))
                .map(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR)
                .unwrap_or(false),
            None => source.as_ref().map(|s| !s.is_dir()).unwrap_or(false),
        };
    let target = safe_path::ensure_in_root(rootfd, dest, file, dest)?;
    if is_bind || !matches!(typ, "proc" | "sysfs" | "tmpfs" | "mqueue") {
        let src = source.as_deref().filter(|_| is_bind);
        super::proc_guard::not_over_proc(rootfd, &target, dest, typ, src)?;
    }
    let tpath = safe_path::fd_path(&target);
    let data = o.data.join(",");
    let data_opt = if data.is_empty() {
        None
    } else {
        Some(data.as_str())
    };
    log::debug!(
        "mount {} on {} (type {typ}, options {:?})",
        source.as_deref().unwrap_or(Path::new(typ)).display(),
        dest.display(),
        m.options().as_deref().unwrap_or_default()
    );
    if is_bind {
        let src = source.ok_or_else(|| {
            Error::spec(
                "mounts",
                format!("bind mount on {} has no source", dest.display()),
            )
        })?;
        if super::idmap::wanted(m) {
            // The parent made the detached idmapped tree (only host root may); we attach it.
            let tree = src_fd.ok_or_else(|| {
                Error::spec(
                    "mounts",
                    format!(
                        "idmapped mount on {} needs a mount namespace of the container's own",
                        dest.display()
                    ),
                )
            })?;
            crate::sys::move_mount_fd(tree.as_fd(), target.as_fd()).ctx(
                &format!("move idmapped mount of {} onto", src.display()),
                dest.display(),
            )?;
        } else {
            let rec = o.flags & MsFlags::MS_REC;
            let by_fd = src_fd.map(safe_path::fd_path);
            let from = by_fd.as_deref().map(Path::new).unwrap_or(&src);
            mount(
                Some(from),
                tpath.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | rec,
                None::<&str>,
            )
            .ctx(&format!("bind mount {}", src.display()), dest.display())?;
        }
        // Flags other than bind/rec need a remount of the new bind mount to take effect.
        let extra = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            // `target` names the directory under the new mount: reopen to reach the mount.
            remount(
                &safe_path::open_in_root(rootfd, dest).ctx("open", dest.display())?,
                extra,
                dest,
            )?;
        }
    } else {
        let src = source
            .as_deref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.to_string());
        let res = mount(
            Some(src.as_str()),
            tpath.as_str(),
            Some(typ),
            o.flags,
            data_opt,
        );
        match res {
            // sysfs needs a network namespace of our own (and mqueue an ipc one); without it
            // the kernel says EPERM and the host's own tree, bind-mounted, is what runc gives.
            Err(nix::errno::Errno::EPERM) if typ == "sysfs" || typ == "mqueue" => {
                let host = if typ == "sysfs" {
                    "/sys"
                } else {
                    "/dev/mqueue"
                };
                mount(
                    Some(host),
                    tpath.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .ctx(&format!("bind mount {host}"), dest.display())?;
                remount(
                    &safe_path::open_in_root(rootfd, dest).ctx("open", dest.display())?,
                    o.flags,
                    dest,
                )?;
            }
            r => r.ctx(&format!("mount {typ}"), dest.display())?,
        }
    }
    if o.rec_set != 0 || o.rec_clr != 0 {
        // On the new mount (reopened: `target` names what lies under it) and all below it.
        let top = safe_path::open_in_root(rootfd, dest).ctx("open", dest.display())?;
        crate::sys::mount_setattr_set_clr(top.as_fd(), o.rec_set, o.rec_clr, true)
            .ctx("set recursive mount attributes on", dest.display())?;
    }
    if !o.propagation.is_empty() {
        // `target` names what lies under the new mount: reopen to reach the mount itself.
        let top = safe_path::open_in_root(rootfd, dest).ctx("open", dest.display())?;
        for p in &o.propagation {
            mount(
                None::<&str>,
                safe_path::fd_path(&top).as_str(),
                None::<&str>,
                *p,
                None::<&str>,
            )
            .ctx("set propagation of", dest.display())?;
        }
    }
    Ok(())
}

/// Remount a bind mount with `flags`, keeping the flags the kernel locked on it (nosuid, nodev,
/// noexec… inherited from a mount we do not own would make a plain remount fail with EPERM).
pub fn remount(target: &std::os::fd::OwnedFd, flags: MsFlags, shown: &Path) -> Result<()> {
    let tpath = safe_path::fd_path(target);
    let locked = nix::sys::statvfs::fstatvfs(target)
        .map(|s| statvfs_to_ms(s.flags()))
        .unwrap_or(MsFlags::empty());
    let all = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags | locked;
    mount(
        None::<&str>,
        tpath.as_str(),
        None::<&str>,
        all,
        None::<&str>,
    )
    .ctx("remount", shown.display())
}

fn statvfs_to_ms(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags as F;
    let mut m = MsFlags::empty();
    for (a, b) in [
        (F::ST_NOSUID, MsFlags::MS_NOSUID),
        (F::ST_NODEV, MsFlags::MS_NODEV),
        (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (F::ST_NOATIME, MsFlags::MS_NOATIME),
        (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (F::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(a) {
            m |= b;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    #[test]
    fn flags_propagation_and_data() {
        let o = parse_options(&words("nosuid,strictatime,mode=755,size=65536k,rslave"));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn recursive_words_are_attributes_not_data() {
        let o = parse_options(&words("rbind,rro,rnosuid,rnoatime"));
        use crate::sys::*;
        assert_eq!(
            o.rec_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_clr, MOUNT_ATTR__ATIME);
        assert!(o.data.is_empty());
        let o = parse_options(&words("rro,rrw"));
        assert_eq!((o.rec_set, o.rec_clr), (0, MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn later_words_win() {
        let o = parse_options(&words("ro,rw,rbind"));
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
    }
}
