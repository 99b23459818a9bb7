//! /dev inside the container: the default devices every runtime provides, `linux.devices`, the
//! /dev/fd and /dev/std* links and /dev/ptmx. Device nodes are made with mknod, or — inside a
//! user namespace, where mknod is not allowed — bind-mounted from the host's node.

use super::safe_path;
use crate::error::{Context, Error, Result};
use nix::sys::stat::{makedev, Mode, SFlag};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// From `linux.devices`: a file already at the path must be this very device (config-linux.md:
    /// "If a file already exists at path that does not match the requested device, the runtime
    /// MUST generate an error"). The defaults simply replace what the image has.
    pub must_match: bool,
}

/// runc's default set (config-linux.md "Default Devices").
pub fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, ma, mi)| Device {
        path: PathBuf::from("/dev").join(n),
        kind: SFlag::S_IFCHR,
        major: ma,
        minor: mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
        must_match: false,
    })
    .collect()
}

pub fn from_spec(d: &oci_spec::runtime::LinuxDevice, i: usize) -> Result<Device> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let kind = match d.typ() {
        T::C | T::U => SFlag::S_IFCHR,
        T::B => SFlag::S_IFBLK,
        T::P => SFlag::S_IFIFO,
        T::A => {
            return Err(Error::spec(
                format!("linux.devices[{i}].type"),
                "\"a\" is only valid in resources.devices",
            ))
        }
    };
    // runtime-spec 1.1 allows any path; it is still created inside the rootfs (`create`
    // resolves it with `safe_path`), so it only has to be absolute and name a file.
    if !d.path().is_absolute() || d.path().file_name().is_none() {
        return Err(Error::spec(
            format!("linux.devices[{i}].path"),
            format!("{} is not an absolute path to a file", d.path().display()),
        ));
    }
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
        must_match: true,
    })
}

/// Refuse a file at the device's path that is not the same device.
fn check_existing(dir: i32, name: &std::ffi::OsStr, d: &Device) -> Result<()> {
    let st =
        match nix::sys::stat::fstatat(Some(dir), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::sys("stat", d.path.display(), e)),
        };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let same =
        kind == d.kind && (kind == SFlag::S_IFIFO || st.st_rdev == makedev(d.major, d.minor));
    if same {
        return Ok(());
    }
    Err(Error::spec(
        "linux.devices",
        format!(
            "{}: a file that is not this device is already there (mode {:o})",
            d.path.display(),
            st.st_mode
        ),
    ))
}

/// Create one device under the rootfs; `bind` when mknod is not allowed (user namespace).
pub fn create(rootfd: BorrowedFd, d: &Device, bind: bool) -> Result<()> {
    let name = d
        .path
        .file_name()
        .ok_or_else(|| Error::spec("linux.devices", format!("bad path {}", d.path.display())))?;
    let parent = d.path.parent().unwrap_or(Path::new("/dev"));
    let pfd = safe_path::ensure_in_root(rootfd, parent, false, parent)?;
    // O_PATH fds cannot be used as a dirfd for mknodat: reopen the directory for real.
    let dir = crate::sys::openat2(
        pfd_borrow(&pfd),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    )
    .ctx("open", parent.display())?;
    if d.must_match {
        check_existing(dir.as_raw_fd(), name, d)?;
    }
    if bind {
        let t = safe_path::ensure_in_root(rootfd, &d.path, true, &d.path)?;
        return nix::mount::mount(
            Some(&d.path),
            safe_path::fd_path(&t).as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx("bind mount device", d.path.display());
    }
    let dev = makedev(d.major, d.minor);
    let mknod = || {
        nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            name,
            d.kind,
            Mode::from_bits_truncate(d.mode),
            dev,
        )
    };
    // The /dev carte mounted a moment ago is empty: make the node first, and remove an old one
    // (an image's /dev without a tmpfs over it) only when there is one.
    match mknod() {
        Err(nix::errno::Errno::EEXIST) => {
            nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .ctx("remove old device", d.path.display())?;
            mknod().ctx("mknod", d.path.display())?;
        }
        r => r.ctx("mknod", d.path.display())?,
    }
    // mknod honours the umask; the mode must be exactly the configured one. (EOPNOTSUPP: a
    // symlink is there, never followed; the chown below does not follow it either.)
    let chmod = match crate::sys::fchmodat_nofollow(pfd_borrow(&dir), name, d.mode) {
        Err(nix::errno::Errno::ENOSYS) => nix::sys::stat::fchmodat(
            Some(dir.as_raw_fd()),
            name,
            Mode::from_bits_truncate(d.mode),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        ),
        r => r,
    };
    match chmod {
        Ok(()) | Err(nix::errno::Errno::EOPNOTSUPP) => {}
        Err(e) => return Err(Error::sys("chmod", d.path.display(), e)),
    }
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(d.uid.into()),
        Some(d.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx("chown", d.path.display())
}

fn pfd_borrow(fd: &std::os::fd::OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// /dev/fd, /dev/stdin|stdout|stderr and /dev/ptmx (→ the container's own devpts).
pub fn links(rootfd: BorrowedFd) -> Result<()> {
    let devfd = safe_path::ensure_in_root(rootfd, Path::new("/dev"), false, Path::new("/dev"))?;
    let dir = crate::sys::openat2(
        pfd_borrow(&devfd),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    )
    .ctx("open", "/dev")?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        if name == "ptmx" {
            // A real /dev/ptmx node from the image would point at the host's pty instance.
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys("symlink", format!("/dev/{name}"), e)),
        }
    }
    Ok(())
}

/// After the pivot: stdio that is the host's null device (an engine's "no stdin", conmon's for one)
/// is reopened on the container's /dev/null, as runc's `reOpenDevNull` does, so no fd of the init
/// refers to a file of the host's mount namespace: criu cannot dump such an fd ("Can't lookup
/// mount for fd"). The container's node is opened beneath `/` without symlinks and must be char
/// 1:3 (an image could plant something else there, CVE-2025-31133); otherwise stdio stays.
pub fn reopen_null_stdio() -> Result<()> {
    use nix::sys::stat::{fstat, major, minor};
    let is_null = |fd: i32| {
        fstat(fd).is_ok_and(|st| {
            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
                && major(st.st_rdev) == 1
                && minor(st.st_rdev) == 3
        })
    };
    let targets: Vec<i32> = (0..3).filter(|fd| is_null(*fd)).collect();
    if targets.is_empty() {
        return Ok(());
    }
    let root = std::fs::File::open("/").ctx("open", "/")?;
    let null = match crate::sys::openat2(
        std::os::fd::AsFd::as_fd(&root),
        Path::new("dev/null"),
        libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        crate::sys::RESOLVE_IN_ROOT | crate::sys::RESOLVE_NO_SYMLINKS,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            log::debug!("keep stdio on the host's /dev/null: open /dev/null: {e}");
            return Ok(());
        }
    };
    if !is_null(null.as_raw_fd()) {
        log::debug!("keep stdio on the host's /dev/null: /dev/null is not the null device");
        return Ok(());
    }
    for fd in targets {
        nix::unistd::dup2(null.as_raw_fd(), fd).ctx("reopen /dev/null as fd", fd)?;
    }
    Ok(())
}
