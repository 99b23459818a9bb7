//! Raw BPF around seccompiler's output: the x32 and ENOSYS guards, size limits, and the `seccomp(2)` call.
//!
//! seccompiler's programs are plain `sock_filter` data and every jump in them is relative and forward,
//! so instructions can be spliced in right after its 3-instruction architecture check without
//! renumbering anything.

use nix::errno::Errno;
use seccompiler::TargetArch;

/// `struct seccomp_data` offsets (linux/seccomp.h): `int nr; __u32 arch; …`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (linux/audit.h).
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// x32 syscalls arrive with AUDIT_ARCH_X86_64 and this bit set in `nr` (__X32_SYSCALL_BIT).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Kernel limits: instructions per program (BPF_MAXINSNS) and along the whole stack, where each
/// attached filter costs 4 extra (MAX_INSNS_PER_PATH in kernel/seccomp.c).
const MAX_PROGRAM: usize = 4096;
const MAX_STACK: usize = 32768;
/// seccompiler's architecture check: load arch, jump over the kill if native, kill.
const ARCH_CHECK_LEN: usize = 3;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// "if A ≥/> k: fall through to the next instruction (a return), else skip it".
fn jump_into_next(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 1,
        k,
    }
}

/// seccompiler's instruction type → the kernel's (same fields, but a distinct Rust type).
pub(super) fn to_libc(program: seccompiler::BpfProgram) -> Vec<libc::sock_filter> {
    program
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect()
}

/// The base filter plus two guards right after its architecture check:
/// x32 calls (x86_64 only) → the default action, since none of the rules is meant for them; and
/// syscall numbers above the highest one the profile names → ENOSYS, so software probing for newer
/// syscalls (glibc's clone3, …) falls back instead of failing with the default errno (runc's patchbpf).
pub(super) fn with_guards(
    program: seccompiler::BpfProgram,
    target: TargetArch,
    default_ret: u32,
    highest: Option<u32>,
) -> Result<Vec<libc::sock_filter>, String> {
    let mut program = to_libc(program);
    let arch_check_ok = program.len() > ARCH_CHECK_LEN
        && program[0].code == LD_W_ABS
        && program[0].k == DATA_ARCH
        && program[ARCH_CHECK_LEN - 1].code == RET_K;
    if !arch_check_ok {
        return Err("seccompiler's program does not start with the expected arch check".into());
    }
    let mut guard = vec![stmt(LD_W_ABS, DATA_NR)];
    if target == TargetArch::x86_64 {
        guard.push(jump_into_next(JGE_K, X32_SYSCALL_BIT));
        guard.push(stmt(RET_K, default_ret));
    }
    if let Some(highest) = highest {
        guard.push(jump_into_next(JGT_K, highest));
        guard.push(stmt(RET_K, RET_ENOSYS));
    }
    if guard.len() > 1 {
        program.splice(ARCH_CHECK_LEN..ARCH_CHECK_LEN, guard);
    }
    Ok(program)
}

/// For allow-by-default profiles on x86_64: answer every x32 call with ENOSYS (as a kernel built
/// without x32 would), since the deny rules only match x86_64 numbers. `None` on other hosts.
pub(super) fn x32_guard_filter(target: TargetArch) -> Option<Vec<libc::sock_filter>> {
    (target == TargetArch::x86_64).then(|| {
        vec![
            stmt(LD_W_ABS, DATA_ARCH),
            libc::sock_filter {
                code: JEQ_K,
                jt: 1,
                jf: 0,
                k: AUDIT_ARCH_X86_64,
            },
            stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
            stmt(LD_W_ABS, DATA_NR),
            jump_into_next(JGE_K, X32_SYSCALL_BIT),
            stmt(RET_K, RET_ENOSYS),
            stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        ]
    })
}

/// Refuses at compile time what the kernel would refuse at install time.
pub(super) fn check_sizes(programs: &[Vec<libc::sock_filter>]) -> Result<(), String> {
    if let Some(big) = programs.iter().find(|p| p.len() > MAX_PROGRAM) {
        return Err(format!(
            "{} instructions, the kernel allows {MAX_PROGRAM}",
            big.len()
        ));
    }
    let stack: usize = programs.iter().map(|p| p.len() + 4).sum();
    if stack > MAX_STACK {
        return Err(format!(
            "{stack} instructions in the stack, the kernel allows {MAX_STACK}"
        ));
    }
    Ok(())
}

/// One `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)` call; allocation-free.
pub(super) fn install(program: &[libc::sock_filter], flags: libc::c_ulong) -> Result<(), Errno> {
    match set_mode_filter(program, flags)? {
        0 => Ok(()),
        // With TSYNC a positive return is the id of a thread that could not be synchronised.
        _ => Err(Errno::ESRCH),
    }
}

/// The same call with `SECCOMP_FILTER_FLAG_NEW_LISTENER` in `flags`: the kernel returns the
/// listener, a new close-on-exec fd (seccomp(2)).
pub(super) fn install_listener(
    program: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> Result<std::os::fd::OwnedFd, Errno> {
    let fd = set_mode_filter(program, flags | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    let fd = std::os::fd::RawFd::try_from(fd).map_err(|_| Errno::EBADF)?;
    Ok(crate::sys::own(fd))
}

/// The raw syscall; its non-negative return value.
fn set_mode_filter(program: &[libc::sock_filter], flags: libc::c_ulong) -> Result<i64, Errno> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` valid instructions borrowed for the duration of the call; the
    // kernel only reads (and copies) them. Every argument is passed at full register width, as the
    // variadic syscall(2) expects.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}
