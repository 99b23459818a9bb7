//! `SCMP_ACT_NOTIFY`: which rules may notify, the filter that does it, and the agent it reports to.
//!
//! seccompiler 0.5 has no USER_NOTIF action (only its unreleased main does), so the notify filter is
//! compiled with a placeholder match action and every `RET placeholder` is rewritten to
//! `SECCOMP_RET_USER_NOTIF` (shared/research/seccomp.md §2). The filter holds only the notify rules
//! and allows everything else; the other filters of the stack allow the notify syscalls, so the
//! kernel's precedence makes USER_NOTIF the answer unless a stricter rule of the profile matches too.

use super::{bpf, build, Chains, SeccompError};
use oci_spec::runtime::{LinuxSeccomp, LinuxSyscall};
use seccompiler::{SeccompAction, TargetArch};

/// The placeholder: the filter's only other actions are ALLOW and the arch check's KILL_PROCESS,
/// so this return word cannot be confused with one the profile meant.
const PLACEHOLDER: SeccompAction = SeccompAction::Trace(0xffff);

/// Syscalls a notify rule must not catch. `write`: runc refuses it, the init's hand-over could wait
/// for an agent that has no fd yet. `sendmsg`: the same for carte, whose init sends the listener fd
/// to the runtime with it. `seccomp`: the init installs the rest of the stack after this filter.
const REFUSED: &[&str] = &["write", "sendmsg", "seccomp"];

/// Checks one `SCMP_ACT_NOTIFY` entry: no errno (runtime-spec: an errno on an action that takes none
/// MUST be an error) and none of the syscalls the hand-over needs.
pub(super) fn check_entry(entry: &LinuxSyscall, field: &str) -> Result<(), SeccompError> {
    if entry.errno_ret().is_some() {
        return Err(SeccompError::Invalid {
            field: format!("{field}.errnoRet"),
            reason: "SCMP_ACT_NOTIFY takes no errno".into(),
        });
    }
    if let Some(name) = entry.names().iter().find(|n| REFUSED.contains(&n.as_str())) {
        return Err(SeccompError::Unsupported {
            field: format!("{field}.names"),
            reason: format!(
                "SCMP_ACT_NOTIFY on `{name}` (the runtime needs it to hand the listener to the agent)"
            ),
        });
    }
    Ok(())
}

/// `listenerPath`/`listenerMetadata` checked against the use of `SCMP_ACT_NOTIFY` (`used`).
pub(super) fn listener(
    spec: &LinuxSeccomp,
    used: bool,
    notes: &mut Vec<String>,
) -> Result<Option<super::Listener>, SeccompError> {
    let path = spec.listener_path().clone();
    // config-linux.md: listenerMetadata "MUST NOT be set if listenerPath is not set".
    if spec.listener_metadata().is_some() && path.is_none() {
        return Err(SeccompError::Invalid {
            field: "linux.seccomp.listenerMetadata".into(),
            reason: "set without listenerPath".into(),
        });
    }
    match (used, path) {
        (true, Some(path)) if path.is_absolute() => Ok(Some(super::Listener {
            path,
            metadata: spec.listener_metadata().clone(),
        })),
        (true, Some(path)) => Err(SeccompError::Invalid {
            field: "linux.seccomp.listenerPath".into(),
            reason: format!("{} is not an absolute path", path.display()),
        }),
        // runc: "seccomp listenerPath is not set" — nobody would ever answer the notifications.
        (true, None) => Err(SeccompError::Invalid {
            field: "linux.seccomp.listenerPath".into(),
            reason: "required by the SCMP_ACT_NOTIFY rules".into(),
        }),
        (false, Some(_)) => {
            notes.push("linux.seccomp.listenerPath: ignored, no rule uses SCMP_ACT_NOTIFY".into());
            Ok(None)
        }
        (false, None) => Ok(None),
    }
}

/// The notify filter: USER_NOTIF for the notify rules, ALLOW otherwise.
pub(super) fn program(
    chains: Chains,
    target: TargetArch,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let compiled = build(chains, SeccompAction::Allow, PLACEHOLDER, target, "notify")?;
    let placeholder = u32::from(PLACEHOLDER);
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut program = bpf::to_libc(compiled);
    for insn in program
        .iter_mut()
        .filter(|i| i.code == ret && i.k == placeholder)
    {
        insn.k = libc::SECCOMP_RET_USER_NOTIF;
    }
    Ok(program)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic
    use super::super::compile;
    use serde_json::json;

    #[test]
    fn notify_rules_get_their_own_listener_filter() {
        let spec = serde_json::from_value(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["read", "execve"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}))
        .unwrap();
        let c = compile(&spec).expect("compiles");
        let program = c.notify.as_ref().expect("a notify filter");
        let rets: Vec<u32> = program
            .iter()
            .filter(|i| i.code == (libc::BPF_RET | libc::BPF_K) as u16)
            .map(|i| i.k)
            .collect();
        assert!(rets.contains(&libc::SECCOMP_RET_USER_NOTIF), "{rets:x?}");
        assert!(rets.contains(&libc::SECCOMP_RET_ALLOW), "{rets:x?}");
        assert!(!rets.contains(&u32::from(super::PLACEHOLDER)), "{rets:x?}");
        assert_eq!(
            c.wait_killable,
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        );
        let l = c.listener().expect("listener");
        assert_eq!(l.path, std::path::Path::new("/run/agent.sock"));
        assert_eq!(l.metadata.as_deref(), Some("m"));
        // Only the base filter besides: the notify syscalls are allowed there.
        assert_eq!(c.instruction_counts().len(), 1);
    }
}
