//! The case registry: every case of every spec section, in table order, plus small helpers the cases share.

mod config;
mod devices;
mod features;
mod hook_steps;
mod hooks;
mod lifecycle;
mod linux;
mod linux_ns;
mod mounts;
mod operations;
mod process;
mod process_more;
mod resources;
mod resources_more;
mod validation;

use crate::case::{Case, Ctx, Outcome};
use anyhow::Result;
use serde_json::Value;

/// (id prefix, table heading naming the spec file and section).
pub type Section = (&'static str, &'static str);

/// Every case, grouped by section.
pub fn all() -> Vec<Case> {
    let mut v = lifecycle::cases();
    v.extend(operations::cases());
    v.extend(hooks::cases());
    v.extend(hook_steps::cases());
    v.extend(config::cases());
    v.extend(mounts::cases());
    v.extend(process_more::cases());
    v.extend(process::cases());
    v.extend(linux::cases());
    v.extend(linux_ns::cases());
    v.extend(devices::cases());
    v.extend(resources::cases());
    v.extend(resources_more::cases());
    v.extend(validation::cases());
    v.extend(features::cases());
    v
}

pub fn case(
    section: Section,
    name: &str,
    what: &'static str,
    run: fn(&Ctx) -> Result<Outcome>,
) -> Case {
    Case {
        id: format!("{}.{name}", section.0),
        section: section.1,
        what,
        min_spec: None,
        run,
    }
}

/// A case that needs a spec version the runtime may predate.
pub fn case_since(
    section: Section,
    name: &str,
    what: &'static str,
    since: &'static str,
    run: fn(&Ctx) -> Result<Outcome>,
) -> Case {
    Case {
        min_spec: Some(since),
        ..case(section, name, what, run)
    }
}

/// The base config running a busybox shell script.
pub fn sh_config(script: &str) -> Value {
    crate::bundle::base_config(&["/bin/sh", "-c", script])
}

/// The result of probe operation `key` (e.g. `read:/etc/hostname`) in a report.
pub fn op<'v>(report: &'v Value, key: &str) -> &'v Value {
    &report["ops"][key]
}

/// A probe operation that must have failed: its errno.
pub fn op_errno(report: &Value, key: &str) -> Option<i64> {
    let r = op(report, key);
    if r["ok"] == Value::Bool(false) {
        r["errno"].as_i64()
    } else {
        None
    }
}

/// Skip when the host lacks something the case needs.
pub fn skip(reason: impl Into<String>) -> Result<Outcome> {
    Ok(Outcome::Skip(reason.into()))
}

/// The namespace link (`net:[4026531840]`) of this harness process: the runtime's namespaces.
pub fn host_ns(kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .ok()
        .map(|p| p.display().to_string())
}

/// The base config running the probe with `report OPS...`.
pub fn probe_config(ops: &[&str]) -> Value {
    let args = crate::bundle::probe_args(ops);
    crate::bundle::base_config(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Create, start and wait for a prepared bundle running the probe; its report.
pub fn run_probe(ctx: &Ctx, b: &crate::case::Bundle) -> Result<Value> {
    let c = ctx.create(b)?;
    c.start()?;
    c.wait_exit()?;
    c.report()
}

/// Append a mount to a config's `mounts`.
pub fn push_mount(config: &mut Value, mount: Value) {
    if let Some(m) = config["mounts"].as_array_mut() {
        m.push(mount);
    }
}

/// Host mounts a case made (or a runtime left) below a directory of the case, in this harness's mount
/// namespace; dropping it detaches every one of them, deepest first, by path (`umount -l`), so a failing case
/// leaves no mount on the host.
pub struct HostMounts {
    pub dir: std::path::PathBuf,
}

impl HostMounts {
    pub fn new(dir: &std::path::Path) -> Result<HostMounts> {
        std::fs::create_dir_all(dir)?;
        Ok(HostMounts {
            dir: std::fs::canonicalize(dir)?,
        })
    }

    /// `mount ARGS...` on the host; an error names the command.
    pub fn mount(&self, args: &[&str]) -> Result<()> {
        let out = std::process::Command::new("mount").args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "mount {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Mount points at or below the directory, in this mount namespace.
    pub fn below(&self) -> Vec<String> {
        mounts_below(&self.dir)
    }
}

/// Mount points at or below `dir` in this harness's mount namespace (the runtime's, unless `masked:`).
pub fn mounts_below(dir: &std::path::Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| *t == prefix || t.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect()
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        let mut left = self.below();
        left.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in left {
            let _ = std::process::Command::new("umount")
                .args(["-l", &t])
                .output();
        }
    }
}

/// capabilities(7) names in bit order (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40).
pub const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// This harness's effective capability mask: the runtime it starts can grant no more.
pub fn own_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The /proc/self/status mask of the named capabilities (unknown names add nothing).
pub fn cap_mask(names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|n| CAPS.iter().position(|c| c == n))
        .fold(0, |m, bit| m | 1 << bit)
}
