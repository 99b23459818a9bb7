//! features.md: the optional `features` verb — when a runtime offers it, its JSON must have the spec's shape
//! and must not deny what the runtime demonstrably does.

use super::{case, skip, Section};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{ensure, Context, Result};
use serde_json::Value;

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
}
