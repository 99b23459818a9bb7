//! Safe wrappers for the syscalls nix 0.29 lacks or exposes only through raw fds. All of the
//! runtime's `unsafe` lives here (and in `seccomp`), each block with the reason it is sound.

use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

mod bpf;
mod entry;
pub mod remap;
pub use bpf::{
    bpf_attach_device_prog, bpf_detach_device_prog, bpf_device_progs, bpf_load_device_prog,
};

fn cstr(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)
}

/// What `clone` returned: the child's pid in the parent, or `Child` inside the new process.
pub enum Forked {
    Parent(i32),
    Child,
}

/// `clone(2)` with fork semantics (no new stack: the child continues on a copy of ours), so the
/// container init can be created with its new namespaces in one step, without re-executing carte.
/// The caller must be single-threaded (carte never starts threads).
pub fn clone_fork(flags: libc::c_int) -> Result<Forked, Errno> {
    // SAFETY: a NULL stack makes clone behave like fork: the child gets a private copy of the
    // address space. carte is single-threaded (it starts no threads), so no lock can be held by a
    // thread that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// `clone3(2)` with fork semantics, like [`clone_fork`], the child born in the cgroup v2 directory
/// `cgroup` (CLONE_INTO_CGROUP, Linux 5.7+; ENOSYS or E2BIG before). Being born there takes only
/// the read side of the kernel's threadgroup lock; moving a process in later takes its write side,
/// whose first taker waits a full RCU grace period.
pub fn clone_fork_into(flags: libc::c_int, cgroup: BorrowedFd) -> Result<Forked, Errno> {
    /// `struct clone_args` of linux/sched.h (CLONE_ARGS_SIZE_VER2, 88 bytes).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        // Through u32: the flags are bits, never a negative number to sign-extend.
        flags: u64::from(flags as u32) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size we pass and outlives the call. A zero
    // stack and stack size give fork semantics (the child runs on a copy of our stack), which is
    // sound for the same reason as in `clone_fork`: carte is single-threaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// A pidfd: signals and waits aimed at exactly this process, never at a recycled pid.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; the returned fd is owned by us alone.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments and a NULL siginfo, as the man page allows.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Close (or mark close-on-exec) every fd from `first` up: the CVE-2024-21626 defence, run just
/// before execve so no runtime fd reaches the container process.
pub fn close_range_cloexec(first: u32) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: integer arguments; marking fds close-on-exec cannot break memory safety.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    Errno::result(ret).map(drop)
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)`: resolve `path` as if `dirfd` were `/`, so `..` and absolute symlinks planted in
/// an image can never lead outside the rootfs (CVE-2021-30465 and its successors).
pub fn openat2(dirfd: BorrowedFd, path: &Path, flags: i32, resolve: u64) -> Result<OwnedFd, Errno> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    loop {
        // SAFETY: `c` and `how` outlive the call; the size argument matches the struct.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            // SAFETY: a fresh fd from the kernel, owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
        // EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry.
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Borrow a raw fd we know is open for the duration of the call (stdio, an inherited fd).
pub fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: callers only pass fds that stay open for the life of the process (stdio, the log
    // fd, fds handed to us by the caller of carte); the borrow never closes them.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Take ownership of an fd that came out of a raw syscall or was inherited.
pub fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass fds they alone own (fresh from the kernel or received over SCM_RIGHTS).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The container's domain name; nix has only sethostname.
pub fn setdomainname(name: &str) -> Result<(), Errno> {
    // SAFETY: pointer and length describe `name`'s bytes, which outlive the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// `setns(2)` on an fd, with the namespace type checked by the kernel.
pub fn setns(fd: BorrowedFd, nstype: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    Errno::result(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

pub fn unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments; carte is single-threaded, as CLONE_NEWUSER requires.
    Errno::result(unsafe { libc::unshare(flags) }).map(drop)
}

/// Exit now without running atexit handlers or flushing stdio buffers shared with the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// `execve(2)` with prepared C strings; returns only on failure.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> Errno {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point into CStrings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    Errno::last()
}

/// Write all bytes to a raw fd we do not own (the log fd); short writes are retried.
pub fn write_all_raw(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(borrow(fd), buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `ioctl(TIOCSCTTY)`: make the pty slave on stdin our controlling terminal.
pub fn set_controlling_tty(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// `ioctl(TIOCSWINSZ)` for `process.consoleSize`.
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid winsize for the duration of the call.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// `ioctl(TIOCGPTPEER)`: open the slave of a pty master without a path lookup, so a hostile
/// `/dev/pts` cannot substitute another file (CVE-2025-52565 class).
pub fn pty_peer(master: BorrowedFd) -> Result<OwnedFd, Errno> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: integer arguments; the result is a fresh fd.
    let ret = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER as _,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    Errno::result(ret).map(own)
}

/// `ioctl(TIOCSPTLCK, 0)`: unlock the pty slave (grantpt/unlockpt without glibc's path games).
pub fn unlockpt(master: BorrowedFd) -> Result<(), Errno> {
    let zero: libc::c_int = 0;
    // SAFETY: `zero` is valid for the duration of the call.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) }).map(drop)
}

pub fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is valid for the call; the resource number is checked by the kernel.
    Errno::result(unsafe { libc::setrlimit(resource as _, &lim) }).map(drop)
}

pub fn umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Put a signal back to its default disposition (execve keeps "ignored", and Rust's runtime
/// ignores SIGPIPE).
pub fn reset_signal(sig: nix::sys::signal::Signal) -> Result<(), Errno> {
    // SAFETY: SIG_DFL installs no handler, so no Rust code can run in signal context.
    unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) }.map(drop)
}

/// Ignore SIGPIPE, as Rust's own start-up does (carte starts without it, see main.rs): a hook or
/// console peer that went away must give EPIPE, not kill `create` halfway.
pub fn ignore_sigpipe() -> Result<(), Errno> {
    // SAFETY: SIG_IGN installs no handler, so no Rust code can run in signal context.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    }
    .map(drop)
}

/// `personality(2)`: the execution domain (PER_LINUX32 for `linux.personality` LINUX32).
pub fn personality(persona: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: integer argument.
    Errno::result(unsafe { libc::personality(persona) }).map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)` for `process.ioPriority`.
pub fn ioprio_set(class: i64, level: i64) -> Result<(), Errno> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    let prio = (class << 13) | level;
    // SAFETY: integer arguments.
    Errno::result(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) })
        .map(drop)
}

/// `struct sched_attr` of sched_setattr(2).
#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// `sched_setattr(0, attr, 0)` for `process.scheduler`.
pub fn sched_setattr(attr: &SchedAttr) -> Result<(), Errno> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a valid sched_attr whose size field matches its layout.
    Errno::result(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) })
        .map(drop)
}

/// `open_tree(2)` with `OPEN_TREE_CLONE`: a detached bind mount of `path` (here: our own binary),
/// reachable only through the returned fd, so it never appears in any mount table.
pub fn open_tree_clone(path: &Path) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    let c = cstr(path)?;
    // SAFETY: `c` outlives the call; the other arguments are integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC,
        )
    };
    Errno::result(ret).map(|fd| own(fd as RawFd))
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// The atime mode is a 3-bit field: setting one of these needs the whole field in `attr_clr`.
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set})`: change the flags of the mount `fd` names
/// (a detached one from `open_tree_clone`).
pub fn mount_setattr(fd: BorrowedFd, attr_set: u64) -> Result<(), Errno> {
    mount_setattr_set_clr(fd, attr_set, 0, false)
}

/// `fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW)` (Linux 6.6): the mode of `name` itself,
/// never of what a symlink there points to, in one syscall (glibc's `fchmodat` emulates the flag
/// with an O_PATH open, a stat and a chmod through /proc/self/fd). ENOSYS on older kernels.
pub fn fchmodat_nofollow(dir: BorrowedFd, name: &std::ffi::OsStr, mode: u32) -> Result<(), Errno> {
    // Numbers from 424 on are the same on every architecture (libc lacks this one for some).
    const SYS_FCHMODAT2: libc::c_long = 452;
    let c = cstr(Path::new(name))?;
    // SAFETY: `c` outlives the call; the other arguments are integers.
    let ret = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            dir.as_raw_fd(),
            c.as_ptr(),
            mode as libc::c_uint,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Errno::result(ret).map(drop)
}

/// `memfd_create(2)`; `exec` asks for MFD_EXEC (kernels with vm.memfd_noexec want it said).
pub fn memfd_create(name: &std::ffi::CStr, exec: bool) -> Result<OwnedFd, Errno> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    if exec {
        flags |= MFD_EXEC;
    }
    // SAFETY: `name` outlives the call; the flags are integers.
    let ret = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    Errno::result(ret).map(own)
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: run the program `fd` refers to (an O_PATH fd
/// of a detached mount, or a memfd); returns only on failure.
pub fn execveat_fd(fd: BorrowedFd, argv: &[CString], envp: &[CString]) -> Errno {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point into CStrings that outlive the call; the
    // path is a static empty C string.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::last()
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH [| AT_RECURSIVE])`: a detached copy of the
/// mount (tree) at an fd, for binding it elsewhere with `move_mount` — no path, no procfs.
pub fn open_tree_clone_fd(fd: BorrowedFd, recursive: bool) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the empty C string is static; the other arguments are integers.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    Errno::result(ret).map(|fd| own(fd as RawFd))
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {attr_set})` on the mount at `fd`.
pub fn mount_setattr_fd(fd: BorrowedFd, attr_set: u64, recursive: bool) -> Result<(), Errno> {
    mount_setattr_set_clr(fd, attr_set, 0, recursive)
}

/// `mount_setattr` that also clears attributes (`attr_clr`), e.g. for the recursive `rrw`.
pub fn mount_setattr_set_clr(
    fd: BorrowedFd,
    attr_set: u64,
    attr_clr: u64,
    recursive: bool,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr_raw(fd, &attr, recursive)
}

/// Give the detached mount `fd` (and with `recursive` every mount below it) the id mapping of the
/// user namespace `userns` (mount_setattr(2) `MOUNT_ATTR_IDMAP`, Linux 5.12). The kernel takes it
/// only on a detached mount of a filesystem that supports idmapping (EINVAL otherwise), from a
/// caller privileged over both the namespace and the filesystem.
pub fn mount_setattr_idmap(
    fd: BorrowedFd,
    userns: BorrowedFd,
    recursive: bool,
) -> Result<(), Errno> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr_raw(fd, &attr, recursive)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`.
fn mount_setattr_raw(fd: BorrowedFd, attr: &MountAttr, recursive: bool) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the empty C string and `attr` outlive the call; the size matches the struct; the
    // kernel only reads `attr`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attach the detached mount `from`
/// on top of what the fd `to` names. Both ends are fds, so no path (and no /proc) is involved.
pub fn move_mount_fd(from: BorrowedFd, to: BorrowedFd) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: static empty C strings; integer fds and flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// A new, detached filesystem instance with no options (`fsopen` + `FSCONFIG_CMD_CREATE` +
/// `fsmount`), e.g. the empty tmpfs that masks a directory; attach it with `move_mount_fd`.
pub fn fsmount_new(fstype: &std::ffi::CStr, attrs: u64) -> Result<OwnedFd, Errno> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: `fstype` outlives the call; the flag is an integer.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    let fs = own(Errno::result(fs)? as RawFd);
    // SAFETY: NULL key and value are what FSCONFIG_CMD_CREATE takes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(ret)?;
    // SAFETY: integer arguments.
    let mnt = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    Errno::result(mnt).map(|fd| own(fd as RawFd))
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: join the session keyring called `name`, creating
/// it when none by that name is searchable; returns its serial.
pub fn join_session_keyring(name: &std::ffi::CStr) -> Result<i32, Errno> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_ulong = 1;
    // SAFETY: `name` outlives the call; the kernel only reads it.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    Errno::result(ret).map(|id| id as i32)
}

/// `keyctl(KEYCTL_DESCRIBE, id)`: `type;uid;gid;perm;description` of a key.
pub fn keyctl_describe(id: i32) -> Result<String, Errno> {
    const KEYCTL_DESCRIBE: libc::c_ulong = 6;
    let mut buf = vec![0u8; 512];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            libc::c_long::from(id),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let n = Errno::result(ret)? as usize;
    // The returned length counts the terminating NUL; a longer description was cut short.
    buf.truncate(n.min(buf.len()).saturating_sub(1));
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `keyctl(KEYCTL_SETPERM, id, perm)`.
pub fn keyctl_setperm(id: i32, perm: u32) -> Result<(), Errno> {
    const KEYCTL_SETPERM: libc::c_ulong = 5;
    // SAFETY: integer arguments only, passed at full register width.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SETPERM,
            libc::c_long::from(id),
            libc::c_ulong::from(perm),
        )
    };
    Errno::result(ret).map(drop)
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE [| AT_RECURSIVE])`: a detached copy of the mount
/// (tree) at `path`, resolved with the caller's credentials, for `move_mount` elsewhere.
pub fn open_tree_clone_path(path: &Path, recursive: bool) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let c = cstr(path)?;
    // SAFETY: `c` outlives the call; the other arguments are integers.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    Errno::result(ret).map(|fd| own(fd as RawFd))
}
