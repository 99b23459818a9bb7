//! features.md: the optional `features` verb — when a runtime offers it, its JSON must have the spec's shape
//! and must not deny what the runtime demonstrably does.

use super::{cap_mask, case, op_errno, own_caps, probe_config, run_probe, skip, Section};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

const S: Section = ("features", "features.md: the features document");

const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];
const NAMESPACES: [&str; 8] = [
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "shape", "ociVersionMin/Max MUST be SemVer strings; hooks, mountOptions and linux lists MUST hold known names", shape),
        case(S, "namespaces", "linux.namespaces, when present, MUST list the namespaces the runtime creates (pid, network, ipc, uts, mount)", namespaces),
        case(S, "version-order", "ociVersionMax MUST NOT be less than ociVersionMin", version_order),
        case(S, "ociVersionMin-accepted", "the runtime MUST accept ociVersionMin as config.json's ociVersion", |c| version_accepted(c, "ociVersionMin")),
        case(S, "ociVersionMax-accepted", "the runtime MUST accept ociVersionMax as config.json's ociVersion", |c| version_accepted(c, "ociVersionMax")),
        case(S, "no-unknown-properties", "the features document MUST NOT contain properties the spec does not define", no_unknown_properties),
        case(S, "types", "annotations MUST be a string map; linux cgroup/seccomp/apparmor/selinux fields MUST have their types and SCMP_ names", types),
        case(S, "hooks-run", "the runtime MUST support every hook listed in `hooks`: each one runs when configured", hooks_run),
        case(S, "capabilities-recognized", "the runtime MUST recognize every listed capability in process.capabilities", capabilities_recognized),
        case(S, "seccomp-actions-recognized", "the runtime MUST recognize every listed seccomp action (NOTIFY aside: it needs a listener)", seccomp_actions),
    ]
}

/// The features document, or `None` when the verb is missing (features.md makes it optional).
fn features(ctx: &Ctx) -> Result<Option<Value>> {
    let out = ctx.cmd(&["features"])?;
    if !out.success {
        return Ok(None);
    }
    let v = serde_json::from_str(&out.stdout).with_context(|| {
        format!(
            "`features` printed invalid JSON: {}",
            out.stdout.chars().take(120).collect::<String>()
        )
    })?;
    Ok(Some(v))
}

fn semver(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        let core = s.split(['-', '+']).next().unwrap_or("");
        let parts: Vec<&str> = core.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    })
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn shape(ctx: &Ctx) -> Result<Outcome> {
    let Some(f) = features(ctx)? else {
        return skip("no `features` verb (optional in features.md)");
    };
    ensure!(
        semver(&f["ociVersionMin"]),
        "ociVersionMin {} is not SemVer",
        f["ociVersionMin"]
    );
    ensure!(
        semver(&f["ociVersionMax"]),
        "ociVersionMax {} is not SemVer",
        f["ociVersionMax"]
    );
    for h in names(&f["hooks"]) {
        ensure!(
            HOOKS.contains(&h.as_str()),
            "unknown hook `{h}` in features.hooks"
        );
    }
    ensure!(
        f["mountOptions"].is_null()
            || f["mountOptions"]
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
        "mountOptions is not a list of strings"
    );
    for n in names(&f["linux"]["namespaces"]) {
        ensure!(
            NAMESPACES.contains(&n.as_str()),
            "unknown namespace `{n}` in features.linux.namespaces"
        );
    }
    for cap in names(&f["linux"]["capabilities"]) {
        ensure!(
            cap.starts_with("CAP_"),
            "capability `{cap}` lacks the CAP_ prefix"
        );
    }
    Ok(Outcome::Pass)
}

fn namespaces(ctx: &Ctx) -> Result<Outcome> {
    let Some(f) = features(ctx)? else {
        return skip("no `features` verb (optional in features.md)");
    };
    if f["linux"]["namespaces"].is_null() {
        return skip("features.linux.namespaces absent (it is optional)");
    }
    let listed = names(&f["linux"]["namespaces"]);
    for n in ["pid", "network", "ipc", "uts", "mount"] {
        ensure!(
            listed.iter().any(|l| l == n),
            "features.linux.namespaces {listed:?} lacks `{n}`"
        );
    }
    Ok(Outcome::Pass)
}

/// `features`, or the skip every case of this section gives when the verb is missing.
fn need(ctx: &Ctx) -> Result<std::result::Result<Value, Outcome>> {
    Ok(match features(ctx)? {
        Some(f) => Ok(f),
        None => Err(Outcome::Skip(
            "no `features` verb (optional in features.md)".into(),
        )),
    })
}

/// (major, minor, patch, release) of a SemVer string, pre-releases first.
fn version_key(v: &str) -> (u64, u64, u64, bool) {
    let (core, pre) = match v.split_once('-') {
        Some((c, _)) => (c, true),
        None => (v.split('+').next().unwrap_or(v), false),
    };
    let mut it = core.split('.').map(|p| p.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        !pre,
    )
}

fn version_order(ctx: &Ctx) -> Result<Outcome> {
    let f = match need(ctx)? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    let (min, max) = (
        f["ociVersionMin"].as_str().unwrap_or(""),
        f["ociVersionMax"].as_str().unwrap_or(""),
    );
    ensure!(
        version_key(max) >= version_key(min),
        "ociVersionMax {max} is less than ociVersionMin {min}"
    );
    Ok(Outcome::Pass)
}

fn version_accepted(ctx: &Ctx, key: &str) -> Result<Outcome> {
    let f = match need(ctx)? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    let v = f[key].as_str().context("no version string")?.to_string();
    let r = ctx
        .probe_with(&[], |c| c["ociVersion"] = json!(v))
        .with_context(|| format!("config with ociVersion {v} ({key})"))?;
    ensure!(r["pid"].is_number(), "the probe did not report");
    Ok(Outcome::Pass)
}

/// Every property features.md and features-linux.md define (any release), per object.
const KNOWN: [(&str, &[&str]); 10] = [
    (
        "",
        &[
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "linux",
            "annotations",
            "potentiallyUnsafeConfigAnnotations",
        ],
    ),
    (
        "linux",
        &[
            "namespaces",
            "capabilities",
            "cgroup",
            "seccomp",
            "apparmor",
            "selinux",
            "intelRdt",
            "mountExtensions",
            "netDevices",
            "memoryPolicy",
        ],
    ),
    (
        "linux.cgroup",
        &["v1", "v2", "systemd", "systemdUser", "rdma"],
    ),
    (
        "linux.seccomp",
        &[
            "enabled",
            "actions",
            "operators",
            "archs",
            "knownFlags",
            "supportedFlags",
        ],
    ),
    ("linux.apparmor", &["enabled"]),
    ("linux.selinux", &["enabled"]),
    ("linux.intelRdt", &["enabled", "schemata", "monitoring"]),
    ("linux.mountExtensions", &["idmap"]),
    ("linux.mountExtensions.idmap", &["enabled"]),
    ("linux.netDevices", &["enabled"]),
];

fn at<'v>(f: &'v Value, path: &str) -> &'v Value {
    path.split('.')
        .filter(|p| !p.is_empty())
        .fold(f, |v, k| &v[k])
}

fn no_unknown_properties(ctx: &Ctx) -> Result<Outcome> {
    let f = match need(ctx)? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    for (path, known) in KNOWN {
        if let Some(obj) = at(&f, path).as_object() {
            for k in obj.keys() {
                ensure!(
                    known.contains(&k.as_str()),
                    "features{}{} `{k}` is not defined by the spec",
                    if path.is_empty() { "" } else { "." },
                    path
                );
            }
        }
    }
    Ok(Outcome::Pass)
}

fn types(ctx: &Ctx) -> Result<Outcome> {
    let f = match need(ctx)? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    match &f["annotations"] {
        Value::Null => {}
        Value::Object(m) => ensure!(
            m.values().all(Value::is_string),
            "annotations has non-string values"
        ),
        other => anyhow::bail!("annotations is {other}, not a map"),
    }
    for path in [
        "linux.cgroup.v1",
        "linux.cgroup.v2",
        "linux.cgroup.systemd",
        "linux.cgroup.systemdUser",
        "linux.cgroup.rdma",
        "linux.seccomp.enabled",
        "linux.apparmor.enabled",
        "linux.selinux.enabled",
        "linux.intelRdt.enabled",
    ] {
        let v = at(&f, path);
        ensure!(v.is_null() || v.is_boolean(), "{path} is {v}, not a bool");
    }
    for (path, prefix) in [
        ("linux.seccomp.actions", "SCMP_ACT_"),
        ("linux.seccomp.operators", "SCMP_CMP_"),
        ("linux.seccomp.archs", "SCMP_ARCH_"),
        ("linux.seccomp.knownFlags", "SECCOMP_FILTER_FLAG_"),
        ("linux.seccomp.supportedFlags", "SECCOMP_FILTER_FLAG_"),
    ] {
        let v = at(&f, path);
        ensure!(
            v.is_null() || names(v).len() == v.as_array().map_or(0, Vec::len),
            "{path} is not a list of strings"
        );
        for n in names(v) {
            ensure!(n.starts_with(prefix), "{path} holds `{n}` (want {prefix}…)");
        }
    }
    Ok(Outcome::Pass)
}

fn hooks_run(ctx: &Ctx) -> Result<Outcome> {
    let f = match need(ctx)? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    let listed = names(&f["hooks"]);
    if listed.is_empty() {
        return skip("features.hooks absent or empty");
    }
    let b = super::hooks::bundle_with(ctx, |b| super::hooks::hooked(ctx, b, "sleep 600", None))?;
    let c = ctx.create(&b)?;
    c.start()?;
    super::hooks::wait_for(&b, ctx, "poststart")?;
    let out = c.verb("delete", &["--force"])?;
    ensure!(out.success, "delete --force failed: {}", out.error_line());
    let ran = super::hooks::names(&b);
    for h in listed {
        ensure!(
            ran.contains(&h),
            "listed hook `{h}` did not run; ran {ran:?}"
        );
    }
    Ok(Outcome::Pass)
}

fn capabilities_recognized(ctx: &Ctx) -> Result<Outcome> {
    let f = match need(ctx)? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    // Only those this harness (hence the runtime) holds can be granted; the others are the separate
    // "SHOULD NOT fail" rule (validation.capability.not-grantable).
    let own = own_caps();
    let caps: Vec<String> = names(&f["linux"]["capabilities"])
        .into_iter()
        .filter(|c| cap_mask(std::slice::from_ref(c)) & own != 0)
        .collect();
    if caps.is_empty() {
        return skip("features.linux.capabilities lists none this harness holds");
    }
    let r = ctx.probe_with(&[], |c| {
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
    })?;
    let want = format!("{:016x}", cap_mask(&caps));
    ensure!(
        r["status"]["CapEff"] == json!(want),
        "given every listed capability the runtime holds, CapEff is {} (want {want})",
        r["status"]["CapEff"]
    );
    Ok(Outcome::Pass)
}

/// Syscalls the probe never makes, one per action, so every rule can be installed without touching the run.
const UNUSED: [&str; 10] = [
    "acct",
    "add_key",
    "kexec_load",
    "lookup_dcookie",
    "quotactl",
    "swapon",
    "swapoff",
    "syslog",
    "vhangup",
    "request_key",
];

fn seccomp_actions(ctx: &Ctx) -> Result<Outcome> {
    if !cfg!(target_arch = "x86_64") {
        return skip("the seccomp cases name x86_64 syscalls");
    }
    let f = match need(ctx)? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    let actions: Vec<String> = names(&f["linux"]["seccomp"]["actions"])
        .into_iter()
        .filter(|a| a != "SCMP_ACT_NOTIFY")
        .collect();
    if actions.is_empty() {
        return skip("features.linux.seccomp.actions absent or empty");
    }
    ensure!(
        actions.len() <= UNUSED.len(),
        "more actions than spare syscalls"
    );
    let rules: Vec<Value> = actions
        .iter()
        .zip(UNUSED)
        .map(|(a, s)| json!({"names": [s], "action": a}))
        .collect();
    let mut config = probe_config(&["mkdir:/tmp/ok"]);
    config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules});
    let b = ctx.bundle(&config)?;
    let r = run_probe(ctx, &b).with_context(|| format!("a profile using {actions:?}"))?;
    ensure!(
        op_errno(&r, "mkdir:/tmp/ok").is_none(),
        "an unrelated syscall was filtered"
    );
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn semver_accepts_release_and_prerelease_only() {
        assert!(semver(&json!("1.0.2")));
        assert!(semver(&json!("1.0.2-dev")));
        assert!(!semver(&json!("1.0")));
        assert!(!semver(&json!(1)));
    }

    #[test]
    fn version_order_puts_prereleases_first() {
        assert!(version_key("1.0.2-dev") < version_key("1.0.2"));
        assert!(version_key("1.2.0") > version_key("1.0.2"));
        assert!(version_key("1.10.0") > version_key("1.9.9"));
    }
}
