//! Moving this process's own image onto other backing without changing a byte of it: the
//! mappings of carte's binary re-made from a read-only view of the same file, or, for the pages
//! the start-up relocated, from anonymous memory; then `/proc/self/exe` pointed at the view.
//! `selfexe` uses it to protect carte from its containers without re-executing (CVE-2019-5736).
//! The kernel checks the result: `PR_SET_MM_EXE_FILE` fails with EBUSY while any mapping of the
//! old file's path is left.

use nix::errno::Errno;
use std::os::fd::{AsRawFd, BorrowedFd};

/// One mapping of `/proc/self/maps`: its address range, protection and offset in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    pub prot: libc::c_int,
    pub offset: u64,
}

/// The address ranges of this binary's writable `PT_LOAD` segments (its relocated data, `.data`
/// and `.bss`), from the program headers the kernel passed in the auxiliary vector.
pub fn writable_segments() -> Result<Vec<(usize, usize)>, Errno> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    let headers = program_headers(phdr, phnum).ok_or(Errno::ENOEXEC)?;
    let (_, bias) = load_bias(headers).ok_or(Errno::ENOEXEC)?;
    Ok(headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W != 0)
        .map(|h| {
            let start = bias.wrapping_add(h.p_vaddr as usize);
            (start, start + h.p_memsz as usize)
        })
        .collect())
}

/// The program header table the kernel loaded with this binary, from its address and count in the
/// auxiliary vector (AT_PHDR, AT_PHNUM); None if they cannot be one. Plain arithmetic, as
/// `load_bias`: `selfexe::early` calls both before glibc's start-up.
pub fn program_headers(phdr: usize, phnum: usize) -> Option<&'static [libc::Elf64_Phdr]> {
    if phdr == 0 || phnum == 0 || phdr % std::mem::align_of::<libc::Elf64_Phdr>() != 0 {
        return None;
    }
    // SAFETY: AT_PHDR and AT_PHNUM describe the program header table the kernel loaded with the
    // binary; it stays mapped, with these bytes, for the life of the process.
    Some(unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) })
}

/// The table's own entry (PT_PHDR) and the bias a position-independent binary is loaded at:
/// where the table landed minus the address it names.
pub fn load_bias(headers: &[libc::Elf64_Phdr]) -> Option<(&libc::Elf64_Phdr, usize)> {
    let table = headers.iter().find(|h| h.p_type == libc::PT_PHDR)?;
    Some((
        table,
        (headers.as_ptr() as usize).wrapping_sub(table.p_vaddr as usize),
    ))
}

/// `mmap(MAP_FIXED)` of `fd` over mapping `m`, which maps the same bytes of a file with the same
/// contents (the same inode through another mount): every address keeps its contents, the code
/// that makes this call included, but the pages now come from `fd`. The caller must make sure
/// `m` is a private mapping of that file that the process never wrote to.
pub fn remap_from(m: &Mapping, fd: BorrowedFd) -> Result<(), Errno> {
    let offset = libc::off_t::try_from(m.offset).map_err(|_| Errno::EOVERFLOW)?;
    // SAFETY: MAP_FIXED replaces [start, end) atomically with a mapping of the same bytes (the
    // caller's contract above): nothing that reads or runs from the range sees a change, and no
    // reference into it is invalidated.
    let ret = unsafe {
        libc::mmap(
            m.start as *mut libc::c_void,
            m.end - m.start,
            m.prot,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if ret == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    Ok(())
}

/// Replaces mapping `m` (readable, not executable) with anonymous memory holding the same bytes:
/// a copy is made elsewhere and moved over it with `mremap(MREMAP_FIXED)`, which swaps the range
/// in one step. For the pages the start-up relocated, which must keep their contents but not
/// their file. Nothing may write to `m` while this runs: carte calls it single-threaded, and it
/// allocates nothing between the copy and the move.
pub fn make_anonymous(m: &Mapping) -> Result<(), Errno> {
    if m.prot & libc::PROT_READ == 0 || m.prot & libc::PROT_EXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let len = m.end - m.start;
    // SAFETY: a fresh anonymous mapping at an address the kernel chooses; nothing else refers
    // to it.
    let copy = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            // Populated: the kernel allocates the pages in one go, cheaper than a fault for each
            // page the copy writes (on the VM of bench/README.md, 1.3 against 1.8 µs a page).
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if copy == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: [start, end) is a readable mapping of this process (from /proc/self/maps) and `copy`
    // a writable one of the same length; they do not overlap. mremap then moves `copy` onto
    // [start, end), replacing the old mapping in one step, with the bytes it held at the copy
    // (nothing writes to it in between: single-threaded, no allocation), so every reference into
    // the range stays valid. On failure the copy is unmapped and the original left as it was.
    unsafe {
        std::ptr::copy_nonoverlapping(m.start as *const u8, copy as *mut u8, len);
        if libc::mprotect(copy, len, m.prot) != 0 {
            let e = Errno::last();
            libc::munmap(copy, len);
            return Err(e);
        }
        let moved = libc::mremap(
            copy,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            m.start as *mut libc::c_void,
        );
        if moved == libc::MAP_FAILED {
            let e = Errno::last();
            libc::munmap(copy, len);
            return Err(e);
        }
    }
    Ok(())
}

/// `prctl(PR_SET_MM, PR_SET_MM_EXE_FILE, fd)`: what `/proc/self/exe` (and every child's) names
/// from now on. Needs CAP_SYS_RESOURCE; fails with EBUSY while a mapping of the old file remains.
pub fn set_exe_file(fd: BorrowedFd) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_EXE_FILE,
            fd.as_raw_fd() as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    Errno::result(ret).map(drop)
}

/// The address-space layout `PR_SET_MM_MAP` sets as a whole, as `/proc/self/stat` shows it
/// (fields 26–28 and 45–51) and `brk(0)` for the current break.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MmLayout {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// `set_exe_file` through `prctl(PR_SET_MM, PR_SET_MM_MAP)`, which needs CAP_CHECKPOINT_RESTORE
/// or CAP_SYS_ADMIN instead of CAP_SYS_RESOURCE (which some hosts withhold even from root). It
/// sets the whole layout with the exe link, so `layout` must be this process's own, unchanged:
/// the kernel keeps the saved auxiliary vector (size 0) and the break is read here.
pub fn set_exe_file_with_layout(fd: BorrowedFd, layout: &MmLayout) -> Result<(), Errno> {
    /// `struct prctl_mm_map` of linux/prctl.h.
    #[repr(C)]
    struct PrctlMmMap {
        start_code: u64,
        end_code: u64,
        start_data: u64,
        end_data: u64,
        start_brk: u64,
        brk: u64,
        start_stack: u64,
        arg_start: u64,
        arg_end: u64,
        env_start: u64,
        env_end: u64,
        auxv: u64,
        auxv_size: u32,
        exe_fd: u32,
    }
    const PR_SET_MM_MAP: libc::c_ulong = 14;
    // SAFETY: brk(0) changes nothing and returns the current break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as u64;
    let map = PrctlMmMap {
        start_code: layout.start_code,
        end_code: layout.end_code,
        start_data: layout.start_data,
        end_data: layout.end_data,
        start_brk: layout.start_brk,
        brk,
        start_stack: layout.start_stack,
        arg_start: layout.arg_start,
        arg_end: layout.arg_end,
        env_start: layout.env_start,
        env_end: layout.env_end,
        auxv: 0,
        auxv_size: 0,
        exe_fd: fd.as_raw_fd() as u32,
    };
    // SAFETY: `map` is a valid prctl_mm_map of the size passed and outlives the call; its values
    // are the process's own (the caller's contract), so the kernel changes nothing but the link.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            PR_SET_MM_MAP,
            &map as *const PrctlMmMap as libc::c_ulong,
            std::mem::size_of::<PrctlMmMap>() as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    Errno::result(ret).map(drop)
}
