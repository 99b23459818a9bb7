//! Every path the layer code touches is resolved here, inside the rootfs, never outside it.
//!
//! Directories are opened with `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative) planted
//! by a layer are resolved as if the rootfs were `/` — the kernel's version of securejoin, as umoci does.
//! The last component of a path is always acted on with an `*at` call that does not follow it.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::sys;

/// Directory handle flags: `O_PATH` is enough for `*at` calls and needs no read permission.
const DIR_FLAGS: OFlag = OFlag::O_PATH.union(OFlag::O_DIRECTORY);

/// Symlinks followed while creating one path (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// An open rootfs directory.
pub struct Root {
    fd: OwnedFd,
}

/// A cleaned, relative path inside the rootfs: its components, none of them empty, `.` or `..`.
pub type Components<'a> = Vec<&'a [u8]>;

/// Split an entry name into components, dropping `.` and empty parts and any leading `/`
/// (absolute names are taken relative to the rootfs, as GNU tar does). `..` is refused: `None`.
pub fn components(name: &[u8]) -> Option<Components<'_>> {
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Join components into a relative path.
pub fn join(comps: &[&[u8]]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in comps {
        p.push(OsStr::from_bytes(c));
    }
    p
}

/// The `/proc/self/fd/N/name` path of `name` in directory `dir`, for calls that have no `*at` form.
/// The magic link resolves to the already-confined directory; `name` is one component.
pub fn proc_path(dir: RawFd, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{dir}"));
    p.push(name);
    p
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = sys::openat(libc::AT_FDCWD, path.as_os_str(), DIR_FLAGS, Mode::empty())?;
        Ok(Root { fd })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Open directory `rel` (following symlinks, confined to the rootfs).
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        sys::open_in_root(self.raw(), rel, DIR_FLAGS)
    }

    /// Open directory `comps`, creating missing components (mode 0755, root-owned, as umoci and tar do).
    /// A symlink on the way is followed inside the rootfs and the directories it names are created
    /// there too (securejoin + MkdirAll, as umoci and moby do), so a dangling `d -> /x` makes `/x`.
    pub fn mkdir_all(&self, comps: &[&[u8]]) -> io::Result<OwnedFd> {
        match self.open_dir(&join(comps)) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        let mut todo: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        // `cur` never holds a symlink: each component was checked (or created) as a directory.
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    // `..` at the rootfs root stays there, as under RESOLVE_IN_ROOT.
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let dir = self.open_dir(&join_owned(&cur))?;
            let name = OsStr::from_bytes(&c);
            match lstat_kind(dir.as_raw_fd(), name)? {
                None => match mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
                {
                    Ok(()) | Err(Errno::EEXIST) => cur.push(c),
                    Err(e) => return Err(e.into()),
                },
                Some(SFlag::S_IFDIR) => cur.push(c),
                Some(SFlag::S_IFLNK) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(Errno::ELOOP.into());
                    }
                    let target = readlinkat(Some(dir.as_raw_fd()), name)?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        cur.clear();
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        todo.push_front(part.to_vec());
                    }
                }
                Some(_) => return Err(Errno::ENOTDIR.into()),
            }
        }
        self.open_dir(&join_owned(&cur))
    }
}

fn join_owned(comps: &[Vec<u8>]) -> PathBuf {
    let v: Vec<&[u8]> = comps.iter().map(|c| c.as_slice()).collect();
    join(&v)
}

/// What is at `name` in `dir`, without following it; `None` if nothing.
pub fn lstat_kind(dir: RawFd, name: &OsStr) -> io::Result<Option<SFlag>> {
    match fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Remove `name` in `dir` whatever it is (a directory recursively), without following symlinks.
/// Returns whether something was removed.
pub fn remove_all(dir: RawFd, name: &OsStr) -> io::Result<bool> {
    match lstat_kind(dir, name)? {
        None => Ok(false),
        Some(SFlag::S_IFDIR) => {
            // std's remove_dir_all opens each level with O_NOFOLLOW and recurses with *at calls
            // (hardened for CVE-2022-21658), so a symlink inside cannot redirect it.
            std::fs::remove_dir_all(proc_path(dir, name))?;
            Ok(true)
        }
        Some(_) => {
            unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir)?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_rules() {
        assert_eq!(components(b"./usr//bin/"), Some(vec![&b"usr"[..], b"bin"]));
        assert_eq!(
            components(b"/etc/passwd"),
            Some(vec![&b"etc"[..], b"passwd"])
        );
        assert_eq!(components(b"a/../../etc"), None);
        assert_eq!(components(b"./"), Some(vec![]));
    }

    #[test]
    fn symlinks_stay_inside() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let rootfs = tmp.path().join("rootfs");
        std::fs::create_dir(&rootfs)?;
        std::os::unix::fs::symlink("/", rootfs.join("up"))?;
        std::os::unix::fs::symlink("../../../..", rootfs.join("rel"))?;
        let root = Root::open(&rootfs)?;
        for link in ["up", "rel"] {
            let d = root.mkdir_all(&[link.as_bytes(), b"etc"])?;
            std::fs::write(proc_path(d.as_raw_fd(), OsStr::new("x")), b"1")?;
        }
        assert!(rootfs.join("etc/x").is_file());
        // A dangling link: the directories it names are made inside the rootfs.
        std::os::unix::fs::symlink("/made/by/link", rootfs.join("dangling"))?;
        root.mkdir_all(&[b"dangling", b"deeper"])?;
        assert!(rootfs.join("made/by/link/deeper").is_dir());
        std::os::unix::fs::symlink("loop", rootfs.join("loop"))?;
        assert!(root.mkdir_all(&[b"loop", b"x"]).is_err());
        assert!(!tmp.path().join("etc").exists());
        Ok(())
    }
}
