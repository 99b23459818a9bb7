//! `process.capabilities`: the five capability sets, checked in the parent and applied by the init.
//!
//! [`plan`] runs before clone and does all the checking. The init then calls
//! [`CapPlan::drop_bounding`] while still root (PR_CAPBSET_DROP needs CAP_SETPCAP), sets PR_SET_KEEPCAPS
//! itself around setuid (or the uid change empties the permitted set), and calls [`CapPlan::apply`],
//! which sets inheritable, effective and permitted exactly as configured and rebuilds the ambient set.
//! Inheritable is never widened beyond the config — an empty config means empty (CVE-2022-29162 /
//! CVE-2022-27650: a non-empty inheritable set let file capabilities reach processes that should not get
//! them). Capabilities absent from the config are absent from the process; `capabilities` absent
//! altogether means every set empty, as with runc.

use std::collections::BTreeSet;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Capability as OciCap, LinuxCapabilities};

/// Where the kernel says how many capabilities it knows (the highest index).
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// A capability problem: a bad config (parent) or a failed syscall (init).
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// The configuration cannot be applied as written.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Reading the kernel's capability count failed.
    #[error("read `{CAP_LAST_CAP}`: {0}")]
    LastCap(String),
    /// A syscall that changes the capability sets failed.
    #[error("{op}: {reason}")]
    Apply { op: String, reason: String },
}

/// The capability sets to give the container process, resolved against the running kernel.
#[derive(Debug, Clone)]
pub struct CapPlan {
    /// Bounding-set indices to drop: every index the kernel knows that the config does not keep,
    /// including ones newer than the `caps` crate (so a future capability is never left behind).
    drop_bounding: Vec<u8>,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    /// Sorted, so the ambient raises happen in a stable order.
    ambient: Vec<Cap>,
    warnings: Vec<String>,
    /// Findings too common to warn of (every `runc spec` bundle has orphan ambient capabilities).
    notes: Vec<String>,
}

/// Resolves `process.capabilities` against the running kernel. Capabilities the kernel does not know
/// (above `cap_last_cap`, e.g. CAP_BPF on Linux < 5.8) are skipped with a warning, as the runtime-spec
/// asks ("SHOULD NOT fail … MUST be logged as a warning") and runc does; names no kernel knows were already
/// refused when config.json was parsed. Capabilities the runtime itself cannot hold (outside its own
/// bounding set: a host or an outer container that dropped CAP_SYS_RESOURCE, say) are skipped with a
/// warning too — config.md: runtimes "SHOULD NOT fail if the container configuration requests
/// capabilities that cannot be granted". The caller logs [`CapPlan::warnings`].
pub fn plan(spec: Option<&LinuxCapabilities>) -> Result<CapPlan, CapsError> {
    let text =
        crate::kernel_text::read(CAP_LAST_CAP).map_err(|e| CapsError::LastCap(e.to_string()))?;
    let last_cap = text
        .trim()
        .parse::<u8>()
        .map_err(|e| CapsError::LastCap(format!("{:?}: {e}", text.trim())))?;
    plan_for_kernel(spec, last_cap, own_bounding())
}

/// Our bounding set as a mask (`CapBnd` of /proc/self/status; every bit when it cannot be read,
/// so a capset failure then names the capability).
fn own_bounding() -> u64 {
    crate::kernel_text::read("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// [`plan`] with the kernel's `cap_last_cap` and the runtime's bounding set given (the pure part,
/// unit-tested).
fn plan_for_kernel(
    spec: Option<&LinuxCapabilities>,
    last_cap: u8,
    grantable: u64,
) -> Result<CapPlan, CapsError> {
    let mut warnings = Vec::new();
    let mut set = |field: &'static str, oci: Option<&Capabilities>| {
        let (known, unknown): (Vec<Cap>, Vec<Cap>) = oci
            .into_iter()
            .flatten()
            .map(|c| to_caps(*c))
            .partition(|c| c.index() <= last_cap);
        if !unknown.is_empty() {
            warnings.push(format!(
                "{field}: {} not known to this kernel (cap_last_cap {last_cap}), skipped",
                names(sorted(&unknown.into_iter().collect()).iter())
            ));
        }
        let (held, not_held): (Vec<Cap>, Vec<Cap>) = known
            .into_iter()
            .partition(|c| grantable & (1u64 << c.index()) != 0);
        if !not_held.is_empty() {
            warnings.push(format!(
                "{field}: {} cannot be granted (not in the runtime's own bounding set), skipped",
                names(sorted(&not_held.into_iter().collect()).iter())
            ));
        }
        held.into_iter().collect::<CapsHashSet>()
    };
    let bounding = set(
        "process.capabilities.bounding",
        spec.and_then(|s| s.bounding().as_ref()),
    );
    let effective = set(
        "process.capabilities.effective",
        spec.and_then(|s| s.effective().as_ref()),
    );
    let permitted = set(
        "process.capabilities.permitted",
        spec.and_then(|s| s.permitted().as_ref()),
    );
    let inheritable = set(
        "process.capabilities.inheritable",
        spec.and_then(|s| s.inheritable().as_ref()),
    );
    let ambient = set(
        "process.capabilities.ambient",
        spec.and_then(|s| s.ambient().as_ref()),
    );

    // capset(2) refuses an effective capability that is not permitted, and an inheritable one outside
    // the bounding set; say so now, naming the field, rather than fail with EPERM inside the init.
    not_within(
        "process.capabilities.effective",
        &effective,
        "permitted",
        &permitted,
    )?;
    not_within(
        "process.capabilities.inheritable",
        &inheritable,
        "bounding",
        &bounding,
    )?;

    // The kernel keeps a capability ambient only while it is permitted and inheritable. runc's own
    // `runc spec` writes ambient without inheritable, and runc warns and skips those (runc PR #4367),
    // so refusing them would break the most common hand-made bundle.
    let (ambient, orphans): (Vec<Cap>, Vec<Cap>) = sorted(&ambient)
        .into_iter()
        .partition(|c| permitted.contains(c) && inheritable.contains(c));
    let mut notes = Vec::new();
    if !orphans.is_empty() {
        notes.push(format!(
            "process.capabilities.ambient: {} not raised, an ambient capability must also be permitted and inheritable",
            names(orphans.iter())
        ));
    }

    let kept: BTreeSet<u8> = bounding.iter().map(Cap::index).collect();
    Ok(CapPlan {
        drop_bounding: (0..=last_cap).filter(|i| !kept.contains(i)).collect(),
        effective,
        permitted,
        inheritable,
        ambient,
        warnings,
        notes,
    })
}

fn not_within(
    field: &'static str,
    set: &CapsHashSet,
    other_name: &str,
    other: &CapsHashSet,
) -> Result<(), CapsError> {
    let outside: CapsHashSet = set.difference(other).copied().collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(CapsError::Invalid {
        field,
        reason: format!(
            "{} not in the {other_name} set",
            names(sorted(&outside).iter())
        ),
    })
}

fn names<'a>(caps: impl Iterator<Item = &'a Cap>) -> String {
    caps.map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl CapPlan {
    /// Drops from the bounding set every capability the config does not keep. Call it as root, before
    /// the uid change: PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set.
    pub fn drop_bounding(&self) -> Result<(), CapsError> {
        for &index in &self.drop_bounding {
            // SAFETY: PR_CAPBSET_DROP takes an integer capability index and touches no memory of ours;
            // arguments are passed at full width as the variadic prctl(2) expects.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAPBSET_DROP,
                    libc::c_ulong::from(index),
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if rc != 0 {
                let name = index_name(index);
                return Err(CapsError::Apply {
                    op: format!("drop {name} from the bounding set"),
                    reason: nix::errno::Errno::last().desc().into(),
                });
            }
        }
        Ok(())
    }

    /// Sets inheritable, effective and permitted to exactly the configured sets, then clears the ambient
    /// set and raises the configured ambient capabilities. Works as root or after setuid with
    /// PR_SET_KEEPCAPS (effective is empty then, permitted still full). The order matters: inheritable is
    /// set while permitted is still full (capset allows new inheritable ⊆ old permitted), effective before
    /// permitted shrinks (effective ⊆ permitted at every step), ambient last (it needs both).
    pub fn apply(&self) -> Result<(), CapsError> {
        let set = |which: CapSet, name: &str, value: &CapsHashSet| {
            caps::set(None, which, value).map_err(|e| CapsError::Apply {
                op: format!(
                    "set the {name} capabilities to [{}]",
                    names(sorted(value).iter())
                ),
                reason: e.to_string(),
            })
        };
        set(CapSet::Inheritable, "inheritable", &self.inheritable)?;
        set(CapSet::Effective, "effective", &self.effective)?;
        set(CapSet::Permitted, "permitted", &self.permitted)?;
        caps::clear(None, CapSet::Ambient).map_err(|e| CapsError::Apply {
            op: "clear the ambient capabilities".into(),
            reason: e.to_string(),
        })?;
        for cap in &self.ambient {
            caps::raise(None, CapSet::Ambient, *cap).map_err(|e| CapsError::Apply {
                op: format!("raise ambient {cap}"),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The same plan with `cap` also in effective and permitted (not inheritable, ambient or
    /// bounding): held by the init only until its last step, and gone at execve, which builds the
    /// new sets from inheritable, bounding and ambient alone.
    pub fn with_extra(&self, cap: Cap) -> CapPlan {
        let mut p = self.clone();
        p.effective.insert(cap);
        p.permitted.insert(cap);
        p
    }

    /// Non-fatal findings of [`plan`] (skipped capabilities), one line each, for the caller to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Findings for the `--debug` trace only (ambient capabilities the kernel would not keep).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// A set in kernel index order, so messages and raises are stable.
fn sorted(set: &CapsHashSet) -> Vec<Cap> {
    let mut v: Vec<Cap> = set.iter().copied().collect();
    v.sort_unstable_by_key(Cap::index);
    v
}

/// A bounding-set index by name (the caps crate does not know indices above its newest capability).
fn index_name(index: u8) -> String {
    caps::all()
        .into_iter()
        .find(|c| c.index() == index)
        .map_or_else(|| format!("capability {index}"), |c| c.to_string())
}

/// oci-spec's capability → the caps crate's (same kernel capability, two crates' enums).
fn to_caps(cap: OciCap) -> Cap {
    match cap {
        OciCap::AuditControl => Cap::CAP_AUDIT_CONTROL,
        OciCap::AuditRead => Cap::CAP_AUDIT_READ,
        OciCap::AuditWrite => Cap::CAP_AUDIT_WRITE,
        OciCap::BlockSuspend => Cap::CAP_BLOCK_SUSPEND,
        OciCap::Bpf => Cap::CAP_BPF,
        OciCap::CheckpointRestore => Cap::CAP_CHECKPOINT_RESTORE,
        OciCap::Chown => Cap::CAP_CHOWN,
        OciCap::DacOverride => Cap::CAP_DAC_OVERRIDE,
        OciCap::DacReadSearch => Cap::CAP_DAC_READ_SEARCH,
        OciCap::Fowner => Cap::CAP_FOWNER,
        OciCap::Fsetid => Cap::CAP_FSETID,
        OciCap::IpcLock => Cap::CAP_IPC_LOCK,
        OciCap::IpcOwner => Cap::CAP_IPC_OWNER,
        OciCap::Kill => Cap::CAP_KILL,
        OciCap::Lease => Cap::CAP_LEASE,
        OciCap::LinuxImmutable => Cap::CAP_LINUX_IMMUTABLE,
        OciCap::MacAdmin => Cap::CAP_MAC_ADMIN,
        OciCap::MacOverride => Cap::CAP_MAC_OVERRIDE,
        OciCap::Mknod => Cap::CAP_MKNOD,
        OciCap::NetAdmin => Cap::CAP_NET_ADMIN,
        OciCap::NetBindService => Cap::CAP_NET_BIND_SERVICE,
        OciCap::NetBroadcast => Cap::CAP_NET_BROADCAST,
        OciCap::NetRaw => Cap::CAP_NET_RAW,
        OciCap::Perfmon => Cap::CAP_PERFMON,
        OciCap::Setgid => Cap::CAP_SETGID,
        OciCap::Setfcap => Cap::CAP_SETFCAP,
        OciCap::Setpcap => Cap::CAP_SETPCAP,
        OciCap::Setuid => Cap::CAP_SETUID,
        OciCap::SysAdmin => Cap::CAP_SYS_ADMIN,
        OciCap::SysBoot => Cap::CAP_SYS_BOOT,
        OciCap::SysChroot => Cap::CAP_SYS_CHROOT,
        OciCap::SysModule => Cap::CAP_SYS_MODULE,
        OciCap::SysNice => Cap::CAP_SYS_NICE,
        OciCap::SysPacct => Cap::CAP_SYS_PACCT,
        OciCap::SysPtrace => Cap::CAP_SYS_PTRACE,
        OciCap::SysRawio => Cap::CAP_SYS_RAWIO,
        OciCap::SysResource => Cap::CAP_SYS_RESOURCE,
        OciCap::SysTime => Cap::CAP_SYS_TIME,
        OciCap::SysTtyConfig => Cap::CAP_SYS_TTY_CONFIG,
        OciCap::Syslog => Cap::CAP_SYSLOG,
        OciCap::WakeAlarm => Cap::CAP_WAKE_ALARM,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{Read, Write};

    fn spec(value: serde_json::Value) -> LinuxCapabilities {
        serde_json::from_value(value).expect("test capabilities parse")
    }

    fn mask(names: &[&str]) -> u64 {
        names
            .iter()
            .map(|n| n.parse::<Cap>().expect("known capability").bitmask())
            .fold(0, |a, b| a | b)
    }

    #[test]
    fn absent_means_everything_empty() {
        let plan = plan_for_kernel(None, 40, u64::MAX).expect("plan");
        assert_eq!(plan.drop_bounding, (0..=40).collect::<Vec<u8>>());
        assert!(
            plan.effective.is_empty() && plan.permitted.is_empty() && plan.inheritable.is_empty()
        );
        assert!(plan.ambient.is_empty() && plan.warnings.is_empty());
    }

    #[test]
    fn inconsistent_sets_are_refused_with_the_field() {
        let eff = spec(json!({"effective": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL"]}));
        let err = plan_for_kernel(Some(&eff), 40, u64::MAX)
            .expect_err("refused")
            .to_string();
        assert_eq!(
            err,
            "process.capabilities.effective: CAP_CHOWN not in the permitted set"
        );
        let inh =
            spec(json!({"bounding": ["CAP_KILL"], "inheritable": ["CAP_SYS_ADMIN", "CAP_KILL"]}));
        let err = plan_for_kernel(Some(&inh), 40, u64::MAX)
            .expect_err("refused")
            .to_string();
        assert_eq!(
            err,
            "process.capabilities.inheritable: CAP_SYS_ADMIN not in the bounding set"
        );
        // Names no kernel knows never get here: oci-spec refuses them while parsing.
        assert!(
            serde_json::from_value::<LinuxCapabilities>(json!({"bounding": ["CAP_FOO"]})).is_err()
        );
    }

    #[test]
    fn kernel_unknown_are_warnings_and_orphan_ambient_a_note() {
        let caps = spec(json!({
            "bounding": ["CAP_KILL", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"],
            "permitted": ["CAP_KILL"], "effective": ["CAP_KILL"],
            "ambient": ["CAP_KILL"],
        }));
        // A 5.7 kernel: cap_last_cap 37, no CAP_BPF (39) or CAP_CHECKPOINT_RESTORE (40).
        let plan = plan_for_kernel(Some(&caps), 37, u64::MAX).expect("plan");
        assert_eq!(
            plan.warnings,
            [
                "process.capabilities.bounding: CAP_BPF, CAP_CHECKPOINT_RESTORE not known to this kernel \
                 (cap_last_cap 37), skipped",
            ]
        );
        assert_eq!(
            plan.notes,
            [
                "process.capabilities.ambient: CAP_KILL not raised, an ambient capability must also be \
                 permitted and inheritable",
            ]
        );
        let kill = Cap::CAP_KILL.index();
        assert_eq!(
            plan.drop_bounding,
            (0..=37).filter(|i| *i != kill).collect::<Vec<u8>>()
        );
        assert!(plan.ambient.is_empty());
    }

    #[test]
    fn capabilities_the_runtime_lacks_are_warnings() {
        let caps = spec(json!({
            "bounding": ["CAP_KILL", "CAP_SYS_RESOURCE"],
            "permitted": ["CAP_KILL", "CAP_SYS_RESOURCE"], "effective": ["CAP_SYS_RESOURCE"],
        }));
        let without = !(1u64 << Cap::CAP_SYS_RESOURCE.index());
        let plan = plan_for_kernel(Some(&caps), 40, without).expect("plan");
        assert_eq!(plan.warnings.len(), 3, "{:?}", plan.warnings);
        assert!(plan.warnings[0]
            .starts_with("process.capabilities.bounding: CAP_SYS_RESOURCE cannot be granted"));
        assert!(plan.effective.is_empty());
        assert_eq!(plan.permitted, [Cap::CAP_KILL].into_iter().collect());
        assert!(plan.drop_bounding.contains(&Cap::CAP_SYS_RESOURCE.index()));
    }

    /// Sets in /proc/self/status of a forked child that ran the init's sequence.
    fn child_status(
        plan: &CapPlan,
        uid: Option<u32>,
        preset_inheritable: bool,
    ) -> Result<[u64; 5], String> {
        let (rd, wr) = nix::unistd::pipe().expect("pipe");
        // SAFETY: the child makes syscalls, writes to the pipe and _exits; it never returns into the harness.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                drop(rd);
                let mut out = std::fs::File::from(wr);
                let result = (|| -> Result<String, String> {
                    if preset_inheritable {
                        // What an inherited set looks like; apply must not keep it.
                        let sys_admin: CapsHashSet = [Cap::CAP_SYS_ADMIN].into_iter().collect();
                        caps::set(None, CapSet::Inheritable, &sys_admin)
                            .map_err(|e| e.to_string())?;
                    }
                    plan.drop_bounding().map_err(|e| e.to_string())?;
                    if let Some(uid) = uid {
                        nix::sys::prctl::set_keepcaps(true).map_err(|e| e.to_string())?;
                        let (u, g) = (
                            nix::unistd::Uid::from_raw(uid),
                            nix::unistd::Gid::from_raw(uid),
                        );
                        nix::unistd::setresgid(g, g, g).map_err(|e| e.to_string())?;
                        nix::unistd::setresuid(u, u, u).map_err(|e| e.to_string())?;
                        nix::sys::prctl::set_keepcaps(false).map_err(|e| e.to_string())?;
                    }
                    plan.apply().map_err(|e| e.to_string())?;
                    std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())
                })();
                let (code, text) = match result {
                    Ok(status) => (0, status),
                    Err(e) => (1, e),
                };
                let _ = out.write_all(text.as_bytes());
                // SAFETY: ends the child without running the harness's destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(wr);
                let mut text = String::new();
                std::fs::File::from(rd)
                    .read_to_string(&mut text)
                    .expect("read pipe");
                let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
                if status != nix::sys::wait::WaitStatus::Exited(child, 0) {
                    return Err(format!("{status:?}: {text}"));
                }
                let field = |key: &str| {
                    let line = text.lines().find_map(|l| l.strip_prefix(key)).unwrap_or("");
                    u64::from_str_radix(line.trim(), 16).unwrap_or(u64::MAX)
                };
                Ok(["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"].map(field))
            }
        }
    }

    fn root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            eprintln!("skipped: dropping the bounding set and changing uid needs root");
        }
        root
    }

    #[test]
    fn apply_after_setuid_matches_the_config() {
        if !root() {
            return;
        }
        let caps = spec(json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_NET_RAW"],
            "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        }));
        let plan = plan(Some(&caps)).expect("plan");
        let got = child_status(&plan, Some(1000), false).expect("child");
        let want = [
            mask(&["CAP_NET_BIND_SERVICE"]),
            mask(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            mask(&["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]),
            mask(&[
                "CAP_CHOWN",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE",
                "CAP_SETUID",
                "CAP_NET_RAW",
            ]),
            // CAP_KILL is not inheritable, so it cannot be ambient (and the plan warned).
            mask(&["CAP_NET_BIND_SERVICE"]),
        ];
        assert_eq!(got, want, "[Inh, Prm, Eff, Bnd, Amb]");
        assert_eq!(plan.notes().len(), 1);
    }

    #[test]
    fn runc_spec_default_leaves_inheritable_empty() {
        if !root() {
            return;
        }
        // `runc spec`'s default (no inheritable, ambient listed) in a process that had an inheritable bit.
        let three = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
        let caps = spec(
            json!({"bounding": three, "effective": three, "permitted": three, "ambient": three}),
        );
        let plan = plan(Some(&caps)).expect("plan");
        let got = child_status(&plan, Some(1000), true).expect("child");
        assert_eq!(
            got,
            [0, mask(&three), mask(&three), mask(&three), 0],
            "[Inh, Prm, Eff, Bnd, Amb]"
        );
    }

    #[test]
    fn absent_capabilities_drop_everything_for_root() {
        if !root() {
            return;
        }
        let plan = plan(None).expect("plan");
        let got = child_status(&plan, None, false).expect("child");
        assert_eq!(got, [0; 5], "[Inh, Prm, Eff, Bnd, Amb]");
    }
}
