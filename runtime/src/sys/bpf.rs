//! bpf(2) for the cgroup v2 device filter (runtime/src/devfilter.rs).

use super::own;
use nix::errno::Errno;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

// The attribute structs are the leading fields of `union bpf_attr` (include/uapi/linux/bpf.h) for each
// command; the kernel zero-fills what a shorter struct leaves out.

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct BpfProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct BpfGetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a live, exclusively borrowed repr(C) prefix of `union bpf_attr` for `cmd`, whose
    // pointer fields (set by the callers) point into buffers that outlive the call; its size is passed.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    Errno::result(ret)
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program (`insns`: 8-byte instructions); returns its fd.
pub fn bpf_load_device_prog(insns: &[u8]) -> Result<OwnedFd, Errno> {
    let license = c"Apache";
    let mut attr = BpfProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len() / 8).map_err(|_| Errno::E2BIG)?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    Ok(own(RawFd::try_from(fd).map_err(|_| Errno::EBADF)?))
}

/// The ids of the device programs attached to cgroup `cg` (at most 64).
pub fn bpf_device_progs(cg: BorrowedFd) -> Result<Vec<u32>, Errno> {
    let mut ids = [0u32; 64];
    let mut attr = BpfProgQuery {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    Ok(ids[..(attr.prog_cnt as usize).min(ids.len())].to_vec())
}

/// Attaches device program `prog` to cgroup `cg`, beside any already there (BPF_F_ALLOW_MULTI).
pub fn bpf_attach_device_prog(cg: BorrowedFd, prog: BorrowedFd) -> Result<(), Errno> {
    let mut attr = BpfProgAttach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detaches the device program with id `id` from cgroup `cg`.
pub fn bpf_detach_device_prog(cg: BorrowedFd, id: u32) -> Result<(), Errno> {
    let mut get = BpfGetFdById {
        prog_id: id,
        ..Default::default()
    };
    let prog =
        own(RawFd::try_from(bpf(BPF_PROG_GET_FD_BY_ID, &mut get)?).map_err(|_| Errno::EBADF)?);
    let mut attr = BpfProgAttach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}
