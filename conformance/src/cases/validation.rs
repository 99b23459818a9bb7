//! What a runtime MUST accept or refuse in config.json: unknown properties are ignored (config.md
//! "Extensibility"), invalid or unsupported values are errors at create and leave no container behind.

use super::{case, Section};
use crate::bundle::{base_config, probe_args};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{bail, ensure, Result};
use serde_json::{json, Value};

const S: Section = (
    "validation",
    "config.md + config-linux.md: accept or refuse",
);

pub fn cases() -> Vec<Case> {
    vec![
        case(
            S,
            "unknown-properties",
            "unknown properties MUST be ignored, not be an error",
            unknown_properties,
        ),
        case(
            S,
            "namespace.unknown-type",
            "an unknown namespace type MUST make create fail",
            |c| refused(c, |cfg| add_ns(cfg, json!({"type": "no-such-namespace"}))),
        ),
        case(
            S,
            "namespace.duplicate",
            "a namespace type listed twice MUST make create fail",
            |c| refused(c, |cfg| add_ns(cfg, json!({"type": "pid"}))),
        ),
        case(
            S,
            "namespace.path-wrong-type",
            "a namespace path of another type MUST make create fail",
            |c| {
                refused(c, |cfg| {
                    if let Some(list) = cfg["linux"]["namespaces"].as_array_mut() {
                        list.retain(|n| n["type"] != "network");
                        list.push(json!({"type": "network", "path": "/proc/self/ns/uts"}));
                    }
                })
            },
        ),
        case(
            S,
            "rlimits.unknown-type",
            "an rlimit type getrlimit(3) does not know MUST be an error",
            |c| {
                refused(c, |cfg| {
                    cfg["process"]["rlimits"] =
                        json!([{"type": "RLIMIT_NO_SUCH", "soft": 1, "hard": 1}])
                })
            },
        ),
        case(
            S,
            "rlimits.duplicate",
            "an rlimit type listed twice MUST be an error",
            |c| {
                refused(c, |cfg| {
                    cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
                                                   {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}])
                })
            },
        ),
        case(
            S,
            "capability.unknown",
            "an unknown capability MUST be logged as a warning and SHOULD NOT fail the container (spec PR #1094)",
            unknown_capability,
        ),
        case(
            S,
            "cwd.relative",
            "a relative process.cwd MUST be an error (it MUST be absolute)",
            |c| refused(c, |cfg| cfg["process"]["cwd"] = json!("tmp")),
        ),
    ]
}

fn add_ns(config: &mut Value, entry: Value) {
    if let Some(list) = config["linux"]["namespaces"].as_array_mut() {
        list.push(entry);
    }
}

fn unknown_properties(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["org.example.unknown"] = json!({"nested": [1, 2, 3]});
        c["process"]["org.example.unknown"] = json!(true);
        c["linux"]["org.example.unknown"] = json!("x");
    })?;
    ensure!(r["pid"].is_number(), "the probe did not report");
    Ok(Outcome::Pass)
}

fn unknown_capability(ctx: &Ctx) -> Result<Outcome> {
    let caps = json!(["CAP_KILL", "CAP_NO_SUCH_THING"]);
    let r = ctx.probe_with(&[], |c| {
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
    })?;
    // Only CAP_KILL (bit 5) can be granted; the unknown name must simply be dropped.
    ensure!(
        r["status"]["CapBnd"] == "0000000000000020",
        "CapBnd is {}, want only CAP_KILL",
        r["status"]["CapBnd"]
    );
    Ok(Outcome::Pass)
}

/// `create` with the edited config MUST fail, and no container may be left under the id.
fn refused(ctx: &Ctx, edit: impl FnOnce(&mut Value)) -> Result<Outcome> {
    let args = probe_args(&[]);
    let mut config = base_config(&args.iter().map(String::as_str).collect::<Vec<_>>());
    edit(&mut config);
    let b = ctx.bundle(&config)?;
    let id = ctx.new_id();
    let out = ctx.try_create(&id, &b)?;
    let state = ctx.cmd(&["state", &id])?;
    let _ = ctx.cmd(&["delete", "--force", &id]);
    if out.success {
        bail!("create accepted the invalid config");
    }
    ensure!(
        !state.success,
        "the failed create left container {id} behind"
    );
    Ok(Outcome::Pass)
}
