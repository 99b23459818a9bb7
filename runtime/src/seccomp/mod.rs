//! `linux.seccomp`: compile the OCI profile into stacked BPF programs in the parent, install them in the init.
//!
//! seccompiler emits one match action per filter, so a profile that mixes actions (Docker's and podman's mix
//! ALLOW with ERRNO(EPERM), ERRNO(ENOSYS), ERRNO(EINVAL)) becomes a stack: one *base* filter that allows
//! everything the profile names and answers the default action otherwise, plus one filter per distinct
//! non-allow action that answers that action for its syscalls and allows everything else. The kernel runs
//! every filter and keeps the most restrictive answer (seccomp(2): KILL_PROCESS > KILL_THREAD > TRAP > ERRNO >
//! USER_NOTIF > TRACE > LOG > ALLOW; for equal precedence the filter installed last wins), which gives
//! libseccomp's answer for every profile whose entries do not overlap with different actions. See
//! `shared/research/seccomp.md` §3. Everything fallible happens in [`compile`]; the init only calls
//! [`Compiled::install_notify`] and [`Compiled::install`], which make `seccomp(2)` calls and nothing else.
//!
//! `SCMP_ACT_NOTIFY` rules get a filter of their own, installed with `SECCOMP_FILTER_FLAG_NEW_LISTENER`
//! (seccompiler 0.5 has no USER_NOTIF action: see `notify.rs`); the kernel allows one listener per stack.

mod bpf;
mod notify;

#[cfg(target_arch = "aarch64")]
mod table_aarch64;
#[cfg(target_arch = "x86_64")]
mod table_x86_64;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

#[cfg(target_arch = "aarch64")]
use table_aarch64::SYSCALLS;
#[cfg(target_arch = "x86_64")]
use table_x86_64::SYSCALLS;
/// No table: `compile` refuses every profile on such a host (seccompiler has no backend there either).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYSCALLS: &[(&str, u32)] = &[];

#[cfg(target_arch = "aarch64")]
const NATIVE: Option<(TargetArch, Arch)> = Some((TargetArch::aarch64, Arch::ScmpArchAarch64));
#[cfg(target_arch = "x86_64")]
const NATIVE: Option<(TargetArch, Arch)> = Some((TargetArch::x86_64, Arch::ScmpArchX86_64));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NATIVE: Option<(TargetArch, Arch)> = None;

/// The kernel caps an errno answer at MAX_ERRNO; a larger `errnoRet` would silently become 4095.
const MAX_ERRNO: u32 = 4095;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// A problem with `linux.seccomp`, found before the container process exists.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A field holds a value the runtime-spec or the kernel does not allow.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A valid value this runtime does not implement (yet).
    #[error("{field}: {reason} is not supported")]
    Unsupported { field: String, reason: String },
    /// seccompiler refused to generate a program (e.g. more than 4096 instructions).
    #[error("linux.seccomp: compile the {filter} filter: {reason}")]
    Compile { filter: String, reason: String },
}

/// The finished BPF programs and the `seccomp(2)` flags, ready to be installed by the init.
///
/// Plain owned data (`Send`), built before clone so the child never allocates or fails on input.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// In install order (see `compile`): x32 guard or non-allow groups, base filter, the group naming `seccomp`.
    programs: Vec<Vec<libc::sock_filter>>,
    /// `SECCOMP_FILTER_FLAG_*` bits passed with every program.
    flags: libc::c_ulong,
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` when asked for: the kernel takes it only with a listener.
    wait_killable: libc::c_ulong,
    /// The filter of the `SCMP_ACT_NOTIFY` rules (USER_NOTIF for them, ALLOW for the rest), installed
    /// with NEW_LISTENER before the others; `None` without such rules.
    notify: Option<Vec<libc::sock_filter>>,
    /// Where the listener fd goes (`listenerPath`, `listenerMetadata`); `Some` exactly when `notify` is.
    listener: Option<Listener>,
    /// Things a user may want to know but that do not stop the container (unknown syscall names,
    /// ignored flags, architectures we kill rather than filter). The caller logs them at debug level.
    notes: Vec<String>,
}

/// The seccomp agent of `SCMP_ACT_NOTIFY` rules: the runtime sends it the container process state and
/// the listener fd (config-linux.md, "listenerPath").
#[derive(Debug, Clone)]
pub struct Listener {
    pub path: PathBuf,
    pub metadata: Option<String>,
}

// `libc::sock_filter` is plain integers; the assertion keeps `Compiled` movable into the child.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Compiled>();
};

impl Compiled {
    /// Loads every program with `seccomp(SECCOMP_SET_MODE_FILTER, flags)`, in the order `compile` chose.
    ///
    /// Never sets no_new_privs: without it the caller must hold CAP_SYS_ADMIN in its user namespace
    /// (EACCES otherwise), which is why the init installs before dropping capabilities when
    /// `noNewPrivileges` is false, as runc does. No allocation happens here. A failure after the first
    /// program leaves the earlier ones installed; the init must then exit, as it does on any error.
    pub fn install(&self) -> Result<(), nix::errno::Errno> {
        for program in &self.programs {
            bpf::install(program, self.flags)?;
        }
        Ok(())
    }

    /// Loads the `SCMP_ACT_NOTIFY` filter with NEW_LISTENER and returns its listener fd (close-on-exec);
    /// `Ok(None)` without notify rules. Same privilege rule as [`Compiled::install`].
    pub fn install_notify(&self) -> Result<Option<OwnedFd>, nix::errno::Errno> {
        let Some(program) = &self.notify else {
            return Ok(None);
        };
        // TSYNC and NEW_LISTENER together need TSYNC_ESRCH; the init is single-threaded anyway.
        let flags = (self.flags & !libc::SECCOMP_FILTER_FLAG_TSYNC)
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            | self.wait_killable;
        bpf::install_listener(program, flags).map(Some)
    }

    /// Where the listener fd is to be sent, when the profile has `SCMP_ACT_NOTIFY` rules.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// Number of BPF instructions of each program, in install order (for `--debug` and tests).
    pub fn instruction_counts(&self) -> Vec<usize> {
        self.programs.iter().map(Vec::len).collect()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits every program is installed with.
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// Non-fatal remarks made while compiling, one line each, for the caller to log.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// One syscall's rules inside one filter: `None` = the syscall matches whatever its arguments.
type Chains = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// Turns `linux.seccomp` into the programs [`Compiled::install`] loads; every error names its field.
pub fn compile(spec: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    let Some((target, native)) = NATIVE else {
        return Err(SeccompError::Unsupported {
            field: "linux.seccomp".into(),
            reason: format!("seccomp on {}", std::env::consts::ARCH),
        });
    };
    let mut notes = Vec::new();
    if spec.default_action() == Act::ScmpActNotify {
        // runc: every syscall would wait for an agent that has no fd yet, the runtime's own included.
        return Err(SeccompError::Unsupported {
            field: "linux.seccomp.defaultAction".into(),
            reason: "SCMP_ACT_NOTIFY as the default action".into(),
        });
    }
    let default = action(
        spec.default_action(),
        spec.default_errno_ret(),
        "linux.seccomp.default",
    )?;
    let (flags, wait_killable) = flags(spec.flags().as_deref());
    architectures(spec.architectures().as_deref(), native, &mut notes);

    let mut rules = collect(spec, &default, &mut notes)?;
    let listener = notify::listener(spec, !rules.notify.is_empty(), &mut notes)?;
    if wait_killable != 0 && listener.is_none() {
        notes.push(
            "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored, it only applies to \
             SCMP_ACT_NOTIFY"
                .into(),
        );
    }
    let notify = match std::mem::take(&mut rules.notify) {
        n if n.is_empty() => None,
        chains => Some(notify::program(chains, target)?),
    };
    let programs = stack(rules, default, spec.default_action(), target)?;
    let all: Vec<_> = programs.iter().chain(notify.iter()).cloned().collect();
    bpf::check_sizes(&all).map_err(|reason| SeccompError::Compile {
        filter: "stacked".into(),
        reason,
    })?;
    Ok(Compiled {
        programs,
        flags,
        wait_killable,
        notify,
        listener,
        notes,
    })
}

/// What the profile asks for, sorted into the filters of the stack.
struct Sorted {
    /// Every syscall named with a non-default action, with its conditions: the base filter allows these.
    base: Chains,
    /// One rule set per distinct non-allow answer, keyed by the kernel's return word so ERRNO(1) and
    /// ERRNO(38) stay apart.
    groups: BTreeMap<u32, (SeccompAction, Chains)>,
    /// The highest syscall number the profile names (runc's bound for ENOSYS).
    highest: Option<u32>,
    /// The `SCMP_ACT_NOTIFY` syscalls: their own filter, with the listener.
    notify: Chains,
}

/// Validates every `syscalls[]` entry and sorts it into the base filter and the action groups.
fn collect(
    spec: &LinuxSeccomp,
    default: &SeccompAction,
    notes: &mut Vec<String>,
) -> Result<Sorted, SeccompError> {
    let mut sorted = Sorted {
        base: Chains::new(),
        groups: BTreeMap::new(),
        highest: None,
        notify: Chains::new(),
    };
    for (i, entry) in spec.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let rules = rules(entry, &field)?;
        let numbers = resolve(entry, &field, notes);
        sorted.highest = numbers.iter().copied().chain(sorted.highest).max();
        if entry.action() == Act::ScmpActNotify {
            notify::check_entry(entry, &field)?;
            for nr in numbers {
                // The base filter must let the call through for the notify filter's answer to count.
                merge(&mut sorted.base, nr, rules.clone());
                merge(&mut sorted.notify, nr, rules.clone());
            }
            continue;
        }
        let act = action(entry.action(), entry.errno_ret(), &field)?;
        // A rule that repeats the default changes nothing (libseccomp even rejects it); runc and youki
        // skip it too. Its names still count for the ENOSYS bound: the profile knows those syscalls.
        if act == *default {
            continue;
        }
        for nr in numbers {
            merge(&mut sorted.base, nr, rules.clone());
            if act != SeccompAction::Allow {
                let (_, chains) = sorted
                    .groups
                    .entry(u32::from(act.clone()))
                    .or_insert_with(|| (act.clone(), Chains::new()));
                merge(chains, nr, rules.clone());
            }
        }
    }
    Ok(sorted)
}

/// Compiles the filters in install order. Once a filter is in place it also judges the next
/// seccomp(2) calls, so every filter that may refuse `seccomp` itself comes after the others: first
/// the groups not naming it (they allow it), then the base filter (it allows `seccomp` only if the
/// profile names it), then the at most one group that names it.
fn stack(
    sorted: Sorted,
    default: SeccompAction,
    default_act: Act,
    target: TargetArch,
) -> Result<Vec<Vec<libc::sock_filter>>, SeccompError> {
    let seccomp_nr = SYSCALLS
        .binary_search_by(|(n, _)| n.cmp(&"seccomp"))
        .map(|at| i64::from(SYSCALLS[at].1))
        .ok();
    let (last, first): (Vec<_>, Vec<_>) = sorted
        .groups
        .into_values()
        .partition(|(_, chains)| seccomp_nr.is_some_and(|nr| chains.contains_key(&nr)));
    if last.len() > 1 {
        return Err(SeccompError::Unsupported {
            field: "linux.seccomp.syscalls".into(),
            reason: "giving `seccomp` itself more than one non-allow action".into(),
        });
    }
    let mut programs = Vec::new();
    if default == SeccompAction::Allow {
        // Deny-list profile: nothing answers "not in the profile", but x32 calls would slip past every
        // rule (their numbers carry bit 30), so a small guard filter answers them ENOSYS.
        programs.extend(bpf::x32_guard_filter(target));
    }
    for (action, chains) in first {
        programs.push(group(action, chains, target)?);
    }
    if default != SeccompAction::Allow {
        // Like runc's patchbpf: no ENOSYS bound under a permissive default (a LOG or TRACE profile
        // watches new syscalls rather than refusing them) or when the default already is ENOSYS.
        let permissive = matches!(default_act, Act::ScmpActLog | Act::ScmpActTrace);
        let bound = sorted
            .highest
            .filter(|_| !permissive && default != SeccompAction::Errno(ENOSYS));
        let program = build(
            sorted.base,
            default.clone(),
            SeccompAction::Allow,
            target,
            "base",
        )?;
        let guarded = bpf::with_guards(program, target, u32::from(default), bound);
        programs.push(guarded.map_err(|reason| SeccompError::Compile {
            filter: "base".into(),
            reason,
        })?);
    }
    for (action, chains) in last {
        programs.push(group(action, chains, target)?);
    }
    Ok(programs)
}

/// OCI action (+ errno) → seccompiler action; `what` is the field prefix for errors.
fn action(act: Act, errno_ret: Option<u32>, what: &str) -> Result<SeccompAction, SeccompError> {
    let errno_field = if what.ends_with(".default") {
        "linux.seccomp.defaultErrnoRet".to_string()
    } else {
        format!("{what}.errnoRet")
    };
    let invalid = |reason: String| SeccompError::Invalid {
        field: errno_field.clone(),
        reason,
    };
    // runtime-spec: an errno on an action that takes none MUST be an error.
    if errno_ret.is_some() && !matches!(act, Act::ScmpActErrno | Act::ScmpActTrace) {
        return Err(invalid(format!("{act} takes no errno")));
    }
    let data = errno_ret.unwrap_or(libc::EPERM as u32);
    Ok(match act {
        // SCMP_ACT_KILL is the historic name of kill-thread (runc and youki map it the same way).
        Act::ScmpActKill | Act::ScmpActKillThread => SeccompAction::KillThread,
        Act::ScmpActKillProcess => SeccompAction::KillProcess,
        Act::ScmpActTrap => SeccompAction::Trap,
        Act::ScmpActLog => SeccompAction::Log,
        Act::ScmpActAllow => SeccompAction::Allow,
        Act::ScmpActErrno if data > MAX_ERRNO => {
            return Err(invalid(format!(
                "{data} is above the kernel's MAX_ERRNO ({MAX_ERRNO})"
            )));
        }
        Act::ScmpActErrno => SeccompAction::Errno(data),
        Act::ScmpActTrace if data > 0xffff => {
            return Err(invalid(format!(
                "{data} does not fit the 16-bit trace data"
            )));
        }
        // The tracer receives the errnoRet as the event message, as with runc.
        Act::ScmpActTrace => SeccompAction::Trace(data),
        // Sorted out before: `compile` refuses it as the default, `collect` gives it its own filter.
        Act::ScmpActNotify => {
            return Err(SeccompError::Unsupported {
                field: format!("{what}.action"),
                reason: "SCMP_ACT_NOTIFY here".into(),
            });
        }
    })
}

/// `flags` → `SECCOMP_FILTER_FLAG_*`. Absent means SPEC_ALLOW, as runc ≥ 1.2 and crun do: without it
/// the kernel turns on the speculative-store-bypass mitigation for the container, a measurable slowdown.
/// The second value is WAIT_KILLABLE_RECV, kept apart: the kernel accepts it only with NEW_LISTENER.
fn flags(list: Option<&[Flag]>) -> (libc::c_ulong, libc::c_ulong) {
    let Some(list) = list else {
        return (libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW, 0);
    };
    let mut bits = 0;
    let mut wait_killable = 0;
    for flag in list {
        bits |= match flag {
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // The init is single-threaded when it installs, so TSYNC changes nothing, but it is valid.
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagWaitKillableRecv => {
                wait_killable = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
                0
            }
        };
    }
    (bits, wait_killable)
}

/// Records what `architectures` means here: the native ABI is filtered; other ABIs are killed by the
/// arch check every program starts with (libseccomp would filter them with their own numbers).
fn architectures(list: Option<&[Arch]>, native: Arch, notes: &mut Vec<String>) {
    for arch in list.into_iter().flatten() {
        match arch {
            a if *a == native || *a == Arch::ScmpArchNative => {}
            Arch::ScmpArchX32 => notes.push(
                "linux.seccomp.architectures: SCMP_ARCH_X32 calls get the default action (ENOSYS when \
                 it is ALLOW), not the x86_64 rules"
                    .into(),
            ),
            other => notes.push(format!(
                "linux.seccomp.architectures: {other} calls are killed, not filtered"
            )),
        }
    }
}

/// The entry's argument conditions as seccompiler rules; `None` = no conditions.
fn rules(entry: &LinuxSyscall, field: &str) -> Result<Option<Vec<SeccompRule>>, SeccompError> {
    let args = entry.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        return Ok(None);
    }
    let conditions = args
        .iter()
        .enumerate()
        .map(|(j, arg)| condition(arg, &format!("{field}.args[{j}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
    indexes.sort_unstable();
    indexes.dedup();
    let rule = |conds| {
        SeccompRule::new(conds).map_err(|e| SeccompError::Invalid {
            field: format!("{field}.args"),
            reason: e.to_string(),
        })
    };
    if indexes.len() < args.len() {
        // Two conditions on one argument: libseccomp refuses them in one rule, so runc and youki add
        // every condition as a rule of its own (OR). seccompiler would AND them; split to keep runc's meaning.
        conditions
            .into_iter()
            .map(|c| rule(vec![c]))
            .collect::<Result<_, _>>()
            .map(Some)
    } else {
        Ok(Some(vec![rule(conditions)?]))
    }
}

/// One OCI argument condition; compares all 64 bits as libseccomp does on 64-bit ABIs.
fn condition(arg: &LinuxSeccompArg, field: &str) -> Result<SeccompCondition, SeccompError> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| SeccompError::Invalid {
            field: format!("{field}.index"),
            reason: format!("{} is not a syscall argument (0-5)", arg.index()),
        })?;
    let (op, value) = match arg.op() {
        Op::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        Op::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        Op::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        Op::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        Op::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        Op::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        // OCI: `value` is the mask and `valueTwo` the expected result (absent = 0, as runc).
        Op::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(|e| {
        SeccompError::Invalid {
            field: field.into(),
            reason: e.to_string(),
        }
    })
}

/// Syscall numbers of the entry's names; names the table does not know are skipped, as libseccomp does
/// (profiles list every ABI's names: `_llseek`, `socketcall`, `*_time64`, …).
fn resolve(entry: &LinuxSyscall, field: &str, notes: &mut Vec<String>) -> Vec<u32> {
    let mut numbers = Vec::with_capacity(entry.names().len());
    for name in entry.names() {
        match SYSCALLS.binary_search_by(|(n, _)| n.cmp(&name.as_str())) {
            Ok(at) => numbers.push(SYSCALLS[at].1),
            Err(_) => notes.push(format!(
                "{field}.names: {name} is not a syscall here, skipped"
            )),
        }
    }
    numbers
}

/// Adds one entry's rules for `nr`: an unconditional entry wins over conditional ones (it already
/// matches every call); conditional entries are OR-ed.
fn merge(chains: &mut Chains, nr: u32, rules: Option<Vec<SeccompRule>>) {
    let slot = chains
        .entry(i64::from(nr))
        .or_insert_with(|| Some(Vec::new()));
    match (slot.as_mut(), rules) {
        (Some(existing), Some(mut more)) => existing.append(&mut more),
        (Some(_), None) => *slot = None,
        (None, _) => {}
    }
}

/// The filter of one non-allow action: its syscalls get the action, everything else is allowed.
fn group(
    action: SeccompAction,
    chains: Chains,
    target: TargetArch,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let name = format!("{action:?}");
    build(chains, SeccompAction::Allow, action, target, &name).map(bpf::to_libc)
}

/// Runs seccompiler on one filter's rules.
fn build(
    chains: Chains,
    mismatch: SeccompAction,
    matched: SeccompAction,
    target: TargetArch,
    name: &str,
) -> Result<seccompiler::BpfProgram, SeccompError> {
    let rules = chains
        .into_iter()
        .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
        .collect();
    let compile_error = |e: seccompiler::BackendError| SeccompError::Compile {
        filter: name.into(),
        reason: e.to_string(),
    };
    let filter = SeccompFilter::new(rules, mismatch, matched, target).map_err(compile_error)?;
    seccompiler::BpfProgram::try_from(filter).map_err(compile_error)
}
