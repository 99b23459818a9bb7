//! The only module with `unsafe`: owning fds returned by nix, and the xattr calls nix does not wrap.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Take ownership of a fd a successful nix call just returned.
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was returned by a successful open-like syscall in this thread and is not owned
    // by anything else, so wrapping it (and closing it on drop) is sound.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `openat2(dirfd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: resolve `path` as if `dirfd` were `/`,
/// so neither `..` nor an absolute symlink planted by a layer can lead outside it.
pub fn open_in_root(dirfd: RawFd, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(dirfd, path, how)?;
    Ok(own(fd))
}

/// Plain `openat` returning an owned fd (callers pass `O_NOFOLLOW` where it matters).
pub fn openat(dirfd: RawFd, name: &OsStr, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(Some(dirfd), name, flags | OFlag::O_CLOEXEC, mode)?;
    Ok(own(fd))
}

/// `lsetxattr` (never follows a final symlink).
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())?;
    let n = CString::new(name)?;
    // SAFETY: both strings are NUL-terminated and live across the call; `value` is a valid slice
    // whose pointer and length are passed together.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// All extended attributes of `path` (not following a final symlink), sorted by name; for tests and checks.
pub fn lgetxattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let p = CString::new(path.as_os_str().as_bytes())?;
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: `p` is NUL-terminated; the buffer pointer and its length are passed together.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    names.truncate(usize::try_from(n).unwrap_or(0));
    let mut out = Vec::new();
    for raw in names.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = CString::new(raw)?;
        let mut val = vec![0u8; 64 * 1024];
        // SAFETY: as above; `name` is NUL-terminated and `val` is a buffer of the length passed.
        let m = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                name.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if m < 0 {
            return Err(io::Error::last_os_error());
        }
        val.truncate(usize::try_from(m).unwrap_or(0));
        out.push((String::from_utf8_lossy(raw).into_owned(), val));
    }
    out.sort();
    Ok(out)
}
