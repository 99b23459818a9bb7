//! Mounts that would put something other than the container's own procfs where procfs belongs.
//! runc's rules (`rootfs_linux.go`: the "ordinary directory" check and `checkProcMount`):
//!
//! * `proc` and `sysfs` are mounted only on a real directory of the rootfs. An image whose `/proc`
//!   is a symlink would otherwise have procfs mounted wherever the link points (inside the rootfs,
//!   since paths resolve in it, but not where the masked paths are applied).
//! * Nothing but a procfs is mounted on `/proc`, and nothing at all below it except the files
//!   lxcfs emulates: a bind of a host directory or of another procfs file there is how a config
//!   redirects the runtime's own writes to `/proc/sys` or `/proc/self/attr` (CVE-2019-16884,
//!   CVE-2025-52881), and hides what the masked paths must cover.

use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The files below /proc that may be bind-mounted over (lxcfs's emulated ones, runc's list).
const LXCFS_FILES: &[&str] = &[
    "cpuinfo",
    "diskstats",
    "meminfo",
    "stat",
    "swaps",
    "uptime",
    "loadavg",
    "slabinfo",
    "net/dev",
    "sys/kernel/ns_last_pid",
];

/// Before a `proc` or `sysfs` mount: its destination, if it exists, must be a directory, not a
/// symlink (the last component is not followed) or a file.
pub fn ordinary_directory(root: BorrowedFd, dest: &Path, typ: &str) -> Result<()> {
    let rel: PathBuf = dest
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let flags = libc::O_PATH | libc::O_NOFOLLOW;
    match sys::openat2(root, &rel, flags, sys::RESOLVE_IN_ROOT) {
        Ok(fd) => {
            let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))
                .map_err(|e| Error::sys("stat", dest.display(), e))?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(Error::spec(
                    "mounts",
                    format!(
                        "{}: {typ} must be mounted on an ordinary directory, and the rootfs has a {} there",
                        dest.display(),
                        if st.st_mode & libc::S_IFMT == libc::S_IFLNK { "symlink" } else { "file" }
                    ),
                ));
            }
            Ok(())
        }
        // Created as a directory when mounted.
        Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::sys("open", dest.display(), e)),
    }
}

/// After the destination `target` is resolved (and created) in the rootfs: refuse a mount that
/// is not procfs on `/proc`, and any below `/proc` but lxcfs's files. `typ` is the mount's type;
/// `source` the source of a bind mount (None for other types). Not called for the types runc lets
/// through without this check (proc, sysfs, tmpfs, mqueue, cgroup).
pub fn not_over_proc(
    root: BorrowedFd,
    target: &OwnedFd,
    dest: &Path,
    typ: &str,
    source: Option<&Path>,
) -> Result<()> {
    let Some(under) = below_proc(root, target) else {
        return Ok(());
    };
    let refuse = |why: &str| Error::spec("mounts", format!("{}: {why}", dest.display()));
    if under.as_os_str().is_empty() {
        // On /proc itself: only a procfs, or a bind of one.
        let is_proc = match source {
            None => typ == "proc",
            Some(s) => nix::sys::statfs::statfs(s)
                .map(|f| f.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
                .map_err(|e| Error::sys("statfs", s.display(), e))?,
        };
        return if is_proc {
            Ok(())
        } else {
            Err(refuse("only procfs can be mounted on /proc"))
        };
    }
    if LXCFS_FILES.iter().any(|f| under == Path::new(f)) {
        return Ok(());
    }
    Err(refuse(&format!(
        "cannot be mounted inside /proc (it resolves to /proc/{})",
        under.display()
    )))
}

/// Where `target` lies relative to the rootfs's `/proc`, if it is there or below it.
fn below_proc(root: BorrowedFd, target: &OwnedFd) -> Option<PathBuf> {
    let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
    let root_path = link(std::os::fd::AsRawFd::as_raw_fd(&root))?;
    let target_path = link(std::os::fd::AsRawFd::as_raw_fd(target))?;
    let rel = target_path.strip_prefix(&root_path).ok()?;
    rel.strip_prefix("proc").ok().map(Path::to_path_buf)
}
