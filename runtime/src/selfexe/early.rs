//! The self-exec defence's re-mapping, done before glibc's start-up (x86-64, from `carte_entry`).
//!
//! `in_place` moves a running process onto the read-only view of its binary: after glibc's
//! start-up the writable segment holds 200 KB of relocated pointers, which must be copied into
//! anonymous memory, and every code page run so far faults in again from the view. At the ELF
//! entry point nothing has run yet: the writable segment still holds the file's own bytes, so
//! every segment can be mapped again from the view as the kernel mapped it from the file — a few
//! `mmap`s, no copy, and every fault after them is one the start-up pays anyway. What is left for
//! `selfexe::protect` is pointing `/proc/self/exe` at the view (`take` hands it the file).
//!
//! This runs before the static-pie relocation, before TLS and before glibc resolves its IFUNCs,
//! which sets the rules of this file: syscalls in inline assembly, no libc or std call, no panic,
//! no static that holds a pointer (not relocated yet), and no slice `==` or copy the compiler could
//! turn into `memcmp`/`memcpy`/`memset` (IFUNCs): loops, the writes volatile. It can only decline:
//! on any error it closes what it opened and returns, and `protect` does the whole move later.

// Only `carte_entry` (x86-64) calls into this file; elsewhere `take` finds nothing.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use crate::sys::remap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The readable fd of the view every segment was mapped from; -1 when the early move did not run
/// or its fd was taken.
static VIEW: AtomicI32 = AtomicI32::new(-1);

/// The file of the view the process was re-mapped from before start-up, once.
pub fn take() -> Option<OwnedFd> {
    let fd = VIEW.swap(-1, Ordering::Relaxed);
    // SAFETY: the fd was opened by `carte_early_protect` and nothing else owns it.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Called by `carte_entry` with the initial stack pointer (argc, argv…, NULL, envp…, NULL, auxv).
///
/// # Safety
/// Only from `carte_entry`, once, with the stack the kernel set up.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[no_mangle]
pub unsafe extern "C" fn carte_early_protect(sp: *const usize) {
    // SAFETY: the caller's contract: `sp` is the initial stack, laid out as the ELF ABI says.
    let (argv, env, auxv) = unsafe { initial_stack(sp) };
    // SAFETY: the kernel copied every argument and variable as a NUL-terminated string.
    let string = |p: &*const u8| unsafe { cstr(*p) };
    // A process re-executed from a view by `protect` already runs from one.
    if env.iter().map(string).any(is_marker) {
        return;
    }
    if !crate::cli::enters_container(argv.iter().map(string)) {
        return;
    }
    let Some(headers) = program_headers(auxv) else {
        return;
    };
    let Some((table, bias)) = remap::load_bias(headers) else {
        return;
    };
    let Some(file) = open_view() else { return };
    if holds_these_headers(file, headers, table.p_offset) && remap_segments(headers, bias, file) {
        VIEW.store(file as i32, Ordering::Relaxed);
    } else {
        sys::close(file);
    }
}

/// The argument and environment pointers and the auxiliary vector of the initial stack at `sp`.
///
/// # Safety
/// `sp` must be the initial stack of the process, untouched.
unsafe fn initial_stack(sp: *const usize) -> (&'static [*const u8], &'static [*const u8], Auxv) {
    // SAFETY: the caller's contract. argc words of argv follow argc, then a NULL; the environment
    // pointers up to their NULL; then the auxiliary vector, pairs up to AT_NULL. The stack above
    // the entry's frame is never freed.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        let env = argv.add(argc + 1);
        let mut n = 0;
        while !(*env.add(n)).is_null() {
            n += 1;
        }
        let auxv = env.add(n + 1) as *const usize;
        let mut pairs = 0;
        while *auxv.add(2 * pairs) != libc::AT_NULL as usize {
            pairs += 1;
        }
        (
            std::slice::from_raw_parts(argv, argc),
            std::slice::from_raw_parts(env, n),
            std::slice::from_raw_parts(auxv as *const [usize; 2], pairs),
        )
    }
}

type Auxv = &'static [[usize; 2]];

/// `_CARTE_SELFEXE_PROTECTED=…`, the marker `protect` sets before re-executing.
fn is_marker(var: &[u8]) -> bool {
    let name = super::REEXECUTED.as_bytes();
    var.len() > name.len() && var[name.len()] == b'=' && name.iter().zip(var).all(|(a, b)| a == b)
}

/// The NUL-terminated string at `p`, without its NUL (a volatile loop: not turned into `strlen`).
///
/// # Safety
/// `p` must point to a NUL-terminated string that is never freed or changed.
unsafe fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: the caller's contract: every byte up to the NUL is readable and stays.
    unsafe {
        while std::ptr::read_volatile(p.add(n)) != 0 {
            n += 1;
        }
        std::slice::from_raw_parts(p, n)
    }
}

/// This binary's program headers, from AT_PHDR and AT_PHNUM.
fn program_headers(auxv: Auxv) -> Option<&'static [libc::Elf64_Phdr]> {
    let (mut phdr, mut phnum) = (0, 0);
    for &[key, value] in auxv {
        match key as libc::c_ulong {
            libc::AT_PHDR => phdr = value,
            libc::AT_PHNUM => phnum = value,
            _ => {}
        }
    }
    remap::program_headers(phdr, phnum)
}

/// A readable fd of a read-only, detached bind mount of our binary (as `selfexe::readonly_view`
/// makes, then reopened through /proc/self/fd), if the binary is not protected already and the
/// view is the same file.
fn open_view() -> Option<usize> {
    let exe = sys::open(c"/proc/self/exe", libc::O_RDONLY | libc::O_CLOEXEC)?;
    let protected = sys::on_readonly_mount(exe) || sys::sealed_against_writes(exe);
    let exe_id = sys::file_id(exe);
    sys::close(exe);
    if protected || exe_id.is_none() {
        return None;
    }
    let view = sys::open_tree_clone(c"/proc/self/exe")?;
    let attrs = crate::sys::MOUNT_ATTR_RDONLY
        | crate::sys::MOUNT_ATTR_NOSUID
        | crate::sys::MOUNT_ATTR_NODEV;
    let file = if sys::mount_setattr(view, attrs) {
        let mut path = [0u8; 40];
        sys::fd_path(&mut path, view);
        std::ffi::CStr::from_bytes_until_nul(&path)
            .ok()
            .and_then(|p| sys::open(p, libc::O_RDONLY | libc::O_CLOEXEC))
    } else {
        None
    };
    sys::close(view);
    let file = file?;
    if sys::file_id(file) != exe_id {
        sys::close(file);
        return None;
    }
    Some(file)
}

/// Whether `file` holds, at `offset` (PT_PHDR's), the very program headers this process was
/// loaded with: the image in memory is this file's, and mapping its segments from it changes no
/// byte. (`/proc/self/exe` is another file when carte was started through the dynamic loader.)
fn holds_these_headers(file: usize, headers: &[libc::Elf64_Phdr], offset: u64) -> bool {
    // Not zeroed first: a 1 KB `memset` would be a call to glibc's, unresolved yet.
    let mut buf = std::mem::MaybeUninit::<[u8; 1024]>::uninit();
    let len = std::mem::size_of_val(headers);
    if len > 1024
        || sys::pread(file, buf.as_mut_ptr() as *mut u8, len, offset as usize) != Some(len)
    {
        return false;
    }
    let (ours, theirs) = (headers.as_ptr() as *const u8, buf.as_ptr() as *const u8);
    // SAFETY: both are `len` readable bytes: the headers in memory, and what pread wrote; read
    // one by one (volatile: not turned into `memcmp`).
    (0..len).all(|i| unsafe {
        std::ptr::read_volatile(ours.add(i)) == std::ptr::read_volatile(theirs.add(i))
    })
}

/// Maps every `PT_LOAD` segment again from `file`, where and as the kernel mapped it (at `bias`),
/// and zeroes the rest of the page after the writable segment's file bytes (the kernel zeroed it
/// for `.bss`; the file has other bytes there). False at the first failure: the segments done so
/// far hold the same bytes as before, from the view.
fn remap_segments(headers: &[libc::Elf64_Phdr], bias: usize, file: usize) -> bool {
    const PAGE: usize = 4096;
    for h in headers {
        if h.p_type != libc::PT_LOAD || h.p_filesz == 0 {
            continue;
        }
        let start = bias.wrapping_add(h.p_vaddr as usize);
        let page = start & !(PAGE - 1);
        let file_end = start + h.p_filesz as usize;
        let end = (file_end + PAGE - 1) & !(PAGE - 1);
        let offset = h.p_offset as usize - (start - page);
        let prot = flag(h.p_flags, libc::PF_R, libc::PROT_READ)
            | flag(h.p_flags, libc::PF_W, libc::PROT_WRITE)
            | flag(h.p_flags, libc::PF_X, libc::PROT_EXEC);
        // SAFETY: [page, end) is this segment as the kernel mapped it, and `file` the same file
        // through another mount: every byte keeps its value, the code running this included, and
        // nothing has written to the segment yet but the kernel's zeroes, written again below.
        if !unsafe { sys::mmap_fixed(page, end - page, prot, file, offset) } {
            return false;
        }
        if h.p_memsz > h.p_filesz && prot & libc::PROT_WRITE != 0 {
            let bss_end = (start + h.p_memsz as usize).min(end);
            for a in file_end..bss_end {
                // SAFETY: the rest of the segment's last file page: mapped writable just above,
                // `.bss` by the program headers, referred to by nothing yet.
                unsafe { std::ptr::write_volatile(a as *mut u8, 0) };
            }
        }
    }
    true
}

fn flag(flags: u32, bit: u32, prot: i32) -> i32 {
    if flags & bit != 0 {
        prot
    } else {
        0
    }
}

/// The few syscalls above, made directly (glibc's wrappers set `errno`, a TLS variable that does
/// not exist yet). Each returns what the caller needs, and nothing on an error.
mod sys {
    use std::arch::asm;
    use std::ffi::CStr;

    /// # Safety
    /// As the syscall `n` with arguments `a` is.
    unsafe fn syscall(n: libc::c_long, a: [usize; 6]) -> isize {
        let ret: isize;
        // SAFETY: the caller's contract; the kernel clobbers only rcx and r11 besides rax.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
                in("r10") a[3], in("r8") a[4], in("r9") a[5],
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    fn ok(ret: isize) -> Option<usize> {
        (ret >= 0).then_some(ret as usize)
    }

    pub fn open(path: &CStr, flags: i32) -> Option<usize> {
        let args = [
            libc::AT_FDCWD as usize,
            path.as_ptr() as usize,
            flags as usize,
            0,
            0,
            0,
        ];
        // SAFETY: a path that outlives the call; the rest are integers.
        ok(unsafe { syscall(libc::SYS_openat, args) })
    }

    pub fn close(fd: usize) {
        // SAFETY: an fd this file opened and nothing else uses.
        unsafe { syscall(libc::SYS_close, [fd, 0, 0, 0, 0, 0]) };
    }

    /// `pread(fd, buf, len, offset)`: how many bytes it read.
    pub fn pread(fd: usize, buf: *mut u8, len: usize, offset: usize) -> Option<usize> {
        let args = [fd, buf as usize, len, offset, 0, 0];
        // SAFETY: callers pass a buffer of at least `len` writable bytes that outlives the call.
        ok(unsafe { syscall(libc::SYS_pread64, args) })
    }

    /// The device and inode of `fd`.
    pub fn file_id(fd: usize) -> Option<(u64, u64)> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: the kernel writes a `struct stat` into `st`, which outlives the call.
        ok(unsafe { syscall(libc::SYS_fstat, [fd, st.as_mut_ptr() as usize, 0, 0, 0, 0]) })?;
        // SAFETY: fstat succeeded, so it filled `st`.
        let st = unsafe { st.assume_init_ref() };
        Some((st.st_dev, st.st_ino))
    }

    pub fn on_readonly_mount(fd: usize) -> bool {
        /// The kernel's `struct statfs` on 64-bit: ten words, `f_flags`, four spare.
        #[repr(C)]
        struct Statfs {
            head: [i64; 10],
            f_flags: i64,
            spare: [i64; 4],
        }
        let mut st = std::mem::MaybeUninit::<Statfs>::uninit();
        // SAFETY: the kernel writes a `struct statfs` into `st`, which outlives the call.
        let ret = unsafe {
            syscall(
                libc::SYS_fstatfs,
                [fd, st.as_mut_ptr() as usize, 0, 0, 0, 0],
            )
        };
        // SAFETY: read only after fstatfs succeeded and filled it.
        ret == 0 && unsafe { st.assume_init_ref() }.f_flags as u64 & libc::ST_RDONLY != 0
    }

    pub fn sealed_against_writes(fd: usize) -> bool {
        let args = [fd, libc::F_GET_SEALS as usize, 0, 0, 0, 0];
        // SAFETY: integer arguments only.
        ok(unsafe { syscall(libc::SYS_fcntl, args) })
            .is_some_and(|s| s & libc::F_SEAL_WRITE as usize != 0)
    }

    pub fn open_tree_clone(path: &CStr) -> Option<usize> {
        const OPEN_TREE_CLONE: usize = 1;
        let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as usize;
        let args = [
            libc::AT_FDCWD as usize,
            path.as_ptr() as usize,
            flags,
            0,
            0,
            0,
        ];
        // SAFETY: a path that outlives the call; the rest are integers.
        ok(unsafe { syscall(libc::SYS_open_tree, args) })
    }

    /// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set})`.
    pub fn mount_setattr(fd: usize, attr_set: u64) -> bool {
        // struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
        let attr = [attr_set, 0, 0, 0];
        let args = [
            fd,
            c"".as_ptr() as usize,
            libc::AT_EMPTY_PATH as usize,
            attr.as_ptr() as usize,
            std::mem::size_of_val(&attr),
            0,
        ];
        // SAFETY: the empty path and `attr` outlive the call; the rest are integers.
        ok(unsafe { syscall(libc::SYS_mount_setattr, args) }).is_some()
    }

    /// Writes `/proc/self/fd/<fd>` and a NUL into `buf` (long enough for any fd number).
    pub fn fd_path(buf: &mut [u8; 40], fd: usize) {
        let mut n = 0;
        let mut put = |c: u8| {
            if let Some(b) = buf.get_mut(n) {
                // SAFETY: a byte of `buf`; volatile so the loops are not turned into `memcpy`.
                unsafe { std::ptr::write_volatile(b, c) };
            }
            n += 1;
        };
        for &c in b"/proc/self/fd/" {
            put(c);
        }
        // The digits, least significant first into `digits`, then out the other way round.
        let (mut digits, mut count, mut v) = ([0u8; 20], 0, fd);
        loop {
            if let Some(d) = digits.get_mut(count) {
                // SAFETY: a byte of `digits`; volatile, as above.
                unsafe { std::ptr::write_volatile(d, b'0' + (v % 10) as u8) };
            }
            count += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in (0..count).rev() {
            put(digits.get(i).copied().unwrap_or(b'0'));
        }
        put(0);
    }

    /// `mmap(addr, len, prot, MAP_PRIVATE | MAP_FIXED, fd, offset)` that lands at `addr`.
    ///
    /// # Safety
    /// Whatever was mapped at [addr, addr + len) is replaced: the caller vouches that the new
    /// mapping holds what every user of the range expects there.
    pub unsafe fn mmap_fixed(addr: usize, len: usize, prot: i32, fd: usize, offset: usize) -> bool {
        let flags = (libc::MAP_PRIVATE | libc::MAP_FIXED) as usize;
        let args = [addr, len, prot as usize, flags, fd, offset];
        // SAFETY: the caller's contract.
        ok(unsafe { syscall(libc::SYS_mmap, args) }) == Some(addr)
    }
}
