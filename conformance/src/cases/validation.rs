//! What a runtime MUST accept or refuse in config.json: unknown properties are ignored (config.md
//! "Extensibility"), invalid or unsupported values are errors at create and leave no container behind.

use super::{case, case_since, Section};
use crate::bundle::{base_config, probe_args};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{bail, ensure, Context, Result};
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
            "capability.not-grantable",
            "runtimes SHOULD NOT fail if the config requests capabilities that cannot be granted (the runtime lacks them)",
            not_grantable,
        ),
        case(
            S,
            "cwd.relative",
            "a relative process.cwd MUST be an error (it MUST be absolute)",
            |c| refused(c, |cfg| cfg["process"]["cwd"] = json!("tmp")),
        ),
        case(S, "args.empty", "process.args with no entry MUST be an error (at least one entry is REQUIRED)", |c| {
            refused_or_start_fails(c, |cfg| cfg["process"]["args"] = json!([]))
        }),
        case(S, "namespace.path-missing", "a namespace `path` that does not exist cannot be joined: create MUST fail", |c| {
            refused(c, |cfg| {
                if let Some(list) = cfg["linux"]["namespaces"].as_array_mut() {
                    list.retain(|n| n["type"] != "network");
                    list.push(json!({"type": "network", "path": "/proc/self/ns/no-such-ns"}));
                }
            })
        }),
        case(S, "rlimits.soft-above-hard", "an rlimit whose soft value exceeds its hard value cannot be applied: create MUST fail", |c| {
            refused_or_start_fails(c, |cfg| cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]))
        }),
        case(S, "devices.bad-type", "a device `type` other than c, b, u or p MUST make create fail", |c| {
            refused(c, |cfg| cfg["linux"]["devices"] = json!([{"path": "/dev/carte-x", "type": "x", "major": 1, "minor": 3}]))
        }),
        case(S, "seccomp.unknown-action", "a seccomp action that is not a libseccomp constant MUST make create fail", |c| {
            refused(c, |cfg| cfg["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NO_SUCH", "syscalls": []}))
        }),
        case_since(S, "seccomp.errnoRet-without-errno", "errnoRet on an action that has no errno (SCMP_ACT_KILL) MUST print an error and fail", "1.1.0", |c| {
            refused(c, |cfg| cfg["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}))
        }),
        case(S, "sysctl.unknown", "a sysctl the kernel does not have cannot be applied: create MUST fail", |c| {
            refused_or_start_fails(c, |cfg| cfg["linux"]["sysctl"] = json!({"kernel.carte_no_such_sysctl": "1"}))
        }),
        case(S, "mounts.unknown-type", "a mount whose filesystem type the kernel lacks cannot be applied: create MUST fail", |c| {
            refused(c, |cfg| {
                if let Some(m) = cfg["mounts"].as_array_mut() {
                    m.push(json!({"destination": "/mnt/x", "type": "carte-no-such-fs", "source": "none"}));
                }
            })
        }),
        case_since(S, "personality.bad-domain", "a personality domain other than LINUX/LINUX32 MUST make create fail", "1.0.2", |c| {
            refused(c, |cfg| cfg["linux"]["personality"] = json!({"domain": "NO_SUCH_DOMAIN"}))
        }),
        case_since(S, "mounts.idmap-without-userns", "`idmap` without mappings and without a user namespace: an error MUST be returned", "1.2.0", |c| {
            refused(c, |cfg| {
                if let Some(m) = cfg["mounts"].as_array_mut() {
                    m.push(json!({"destination": "/mnt/x", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}));
                }
            })
        }),
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

fn not_grantable(ctx: &Ctx) -> Result<Outcome> {
    let own = super::own_caps();
    let Some(missing) = (0..super::CAPS.len()).find(|b| own & (1 << b) == 0) else {
        return super::skip("this harness holds every capability: none is ungrantable here");
    };
    let caps = json!(["CAP_KILL", super::CAPS[missing]]);
    let r = ctx
        .probe_with(&[], |c| {
            c["process"]["capabilities"] =
                json!({"bounding": caps, "effective": caps, "permitted": caps});
        })
        .with_context(|| {
            format!(
                "a config asking for {} (not held by the runtime)",
                super::CAPS[missing]
            )
        })?;
    ensure!(
        r["status"]["CapEff"] == "0000000000000020",
        "CapEff is {}, want only CAP_KILL",
        r["status"]["CapEff"]
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

/// Like [`refused`], for settings a runtime may only meet in the container process: the error MUST come at
/// create or at start, and the user program MUST NOT run.
fn refused_or_start_fails(ctx: &Ctx, edit: impl FnOnce(&mut Value)) -> Result<Outcome> {
    let mut config = super::sh_config("touch /user-ran");
    edit(&mut config);
    let b = ctx.bundle(&config)?;
    let id = ctx.new_id();
    let out = ctx.try_create(&id, &b)?;
    let started = if out.success {
        Some(ctx.cmd(&["start", &id])?)
    } else {
        None
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = ctx.cmd(&["delete", "--force", &id]);
    let ran = b.rootfs.join("user-ran").exists();
    ensure!(!ran, "the user program ran with the invalid config");
    if let Some(s) = started {
        ensure!(
            !s.success,
            "create and start both accepted the invalid config"
        );
    }
    Ok(Outcome::Pass)
}
