//! config.md "POSIX-platform Hooks" and runtime.md lifecycle steps: order, the state on stdin, args/env,
//! the namespace each kind runs in, and what a failing or hanging hook must do to the operation.

use super::{case, host_ns, sh_config, Section};
use crate::bundle::PROBE;
use crate::case::{Bundle, Case, Ctx, Outcome};
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const S: Section = ("hooks", "config.md: hooks (+ runtime.md lifecycle)");

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "order", "prestart, createRuntime, createContainer on create; startContainer, poststart on start; poststop on delete — in that order", order),
        case(S, "state", "each hook MUST get the container state on stdin (id, bundle, pid once it exists)", state_on_stdin),
        case(S, "args-env", "hook args (args[0] included) and env MUST be passed as configured", args_env),
        case(S, "namespaces", "createRuntime runs in the runtime namespace; createContainer and startContainer in the container's", namespaces),
        case(S, "createRuntime.fails", "a failing createRuntime hook MUST fail create and the user program MUST NOT run", create_runtime_fails),
        case(S, "startContainer.fails", "a failing startContainer hook MUST generate an error and stop the container; the user program MUST NOT run", start_container_fails),
        case(S, "poststop.fails", "a failing poststop hook: the runtime MUST warn and the delete MUST go on", poststop_fails),
        case(S, "order-within-kind", "hooks of one kind MUST run in the order they are listed", order_within_kind),
        case(S, "timeout", "a hook running past its `timeout` MUST be stopped and fail the operation", timeout),
    ]
}

/// A hook that records itself into `log` (a host path unless `inside`) and fails when `name` ends in `-fail`.
pub(super) fn hook(ctx: &Ctx, log: &str, name: &str, inside: bool) -> Value {
    let path = if inside {
        PROBE.to_string()
    } else {
        ctx.template.host_probe.display().to_string()
    };
    json!({"path": path, "args": ["carte-probe", "hook", log, name], "env": [format!("CARTE_HOOK={name}")]})
}

/// Config whose six hooks all append to `<rootfs>/hooks.log`; `fail` names a hook kind that must fail.
pub(super) fn hooked(ctx: &Ctx, b: &Bundle, script: &str, fail: Option<&str>) -> Value {
    let host_log = b.rootfs.join("hooks.log").display().to_string();
    let mut config = sh_config(script);
    let name = |kind: &str| {
        if Some(kind) == fail {
            format!("{kind}-fail")
        } else {
            kind.to_string()
        }
    };
    let mut hooks = serde_json::Map::new();
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        hooks.insert(
            kind.into(),
            json!([hook(ctx, &host_log, &name(kind), false)]),
        );
    }
    // startContainer's path resolves inside the container, so it logs through the container's view of the rootfs.
    hooks.insert(
        "startContainer".into(),
        json!([hook(ctx, "/hooks.log", &name("startContainer"), true)]),
    );
    config["hooks"] = Value::Object(hooks);
    config
}

pub(super) fn entries(b: &Bundle) -> Vec<Value> {
    std::fs::read_to_string(b.rootfs.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub(super) fn names(b: &Bundle) -> Vec<String> {
    entries(b)
        .iter()
        .filter_map(|e| e["hook"].as_str().map(str::to_string))
        .collect()
}

/// A bundle whose config.json is written by `make` once the bundle's paths are known.
pub(super) fn bundle_with(ctx: &Ctx, make: impl FnOnce(&Bundle) -> Value) -> Result<Bundle> {
    let b = ctx.bundle(&json!({}))?;
    b.write_config(&make(&b))?;
    Ok(b)
}

pub(super) fn wait_for(b: &Bundle, ctx: &Ctx, name: &str) -> Result<()> {
    while !names(b).iter().any(|n| n == name) {
        ensure!(
            !ctx.past_deadline(),
            "hook {name} never ran; log has {:?}",
            names(b)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn order(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| hooked(ctx, b, "touch /user-ran; sleep 600", None))?;
    let c = ctx.create(&b)?;
    let after_create = names(&b);
    ensure!(
        after_create == ["prestart", "createRuntime", "createContainer"],
        "after create the hooks were {after_create:?}"
    );
    ensure!(
        !b.rootfs.join("user-ran").exists(),
        "user program ran before start"
    );
    c.start()?;
    wait_for(&b, ctx, "poststart")?;
    let after_start = names(&b);
    ensure!(
        after_start[3..] == ["startContainer", "poststart"],
        "after start the hooks were {after_start:?}"
    );
    let out = c.verb("delete", &["--force"])?;
    ensure!(out.success, "delete --force failed: {}", out.error_line());
    let all = names(&b);
    ensure!(
        all.len() == 6 && all[5] == "poststop",
        "after delete the hooks were {all:?}"
    );
    Ok(Outcome::Pass)
}

fn state_on_stdin(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| hooked(ctx, b, "sleep 600", None))?;
    let c = ctx.create(&b)?;
    c.start()?;
    wait_for(&b, ctx, "poststart")?;
    let pid = c.pid()?;
    let out = c.verb("delete", &["--force"])?;
    ensure!(out.success, "delete --force failed: {}", out.error_line());
    let bundle = std::fs::canonicalize(&b.dir)?;
    for e in entries(&b) {
        let (name, s) = (e["hook"].as_str().unwrap_or("?"), &e["state"]);
        ensure!(s.is_object(), "hook {name} got no state JSON on stdin: {s}");
        ensure!(
            s["id"] == json!(c.id),
            "hook {name}: state id {} is not {}",
            s["id"],
            c.id
        );
        ensure!(
            s["ociVersion"].is_string(),
            "hook {name}: state has no ociVersion"
        );
        let sb = s["bundle"].as_str().unwrap_or("");
        ensure!(
            std::fs::canonicalize(sb).ok() == Some(bundle.clone()),
            "hook {name}: state bundle `{sb}`"
        );
        let status = s["status"].as_str().unwrap_or("");
        ensure!(
            ["creating", "created", "running", "stopped"].contains(&status),
            "hook {name}: status `{status}`"
        );
        // state.pid is REQUIRED only once the status is created or running; when a hook in the runtime
        // namespace gets one, it must be the host's view. (runc gives in-container hooks the pid as the
        // container sees it, 1; the spec does not say which view applies inside.)
        let p = s["pid"].as_i64().unwrap_or(0);
        if matches!(status, "created" | "running") {
            ensure!(
                p > 0,
                "hook {name}: status {status} but no positive pid ({})",
                s["pid"]
            );
        }
        if matches!(name, "prestart" | "createRuntime" | "poststart") && p > 0 {
            ensure!(
                p == i64::from(pid),
                "hook {name}: state pid {p} is not the container's {pid}"
            );
        }
    }
    Ok(Outcome::Pass)
}

fn args_env(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| hooked(ctx, b, "true", None))?;
    let _c = ctx.create(&b)?;
    let log = b.rootfs.join("hooks.log").display().to_string();
    let e = entries(&b)
        .into_iter()
        .find(|e| e["hook"] == "createRuntime")
        .context("createRuntime hook did not run")?;
    ensure!(
        e["argv"] == json!(["carte-probe", "hook", log, "createRuntime"]),
        "argv was {}",
        e["argv"]
    );
    ensure!(
        e["env"] == json!(["CARTE_HOOK=createRuntime"]),
        "env was {} (expected exactly the configured env)",
        e["env"]
    );
    Ok(Outcome::Pass)
}

fn namespaces(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| hooked(ctx, b, "sleep 600", None))?;
    let c = ctx.create(&b)?;
    c.start()?;
    wait_for(&b, ctx, "startContainer")?;
    let pid = c.pid()?;
    let container_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))?
        .display()
        .to_string();
    let host_mnt = host_ns("mnt").context("read own mount namespace")?;
    let runtime_mnt = if ctx.rt.mask_cgroup2.is_some() {
        None
    } else {
        Some(host_mnt)
    };
    for e in entries(&b) {
        let name = e["hook"].as_str().unwrap_or("?");
        let mnt = e["mntns"].as_str().unwrap_or("");
        match name {
            "createContainer" | "startContainer" => {
                ensure!(
                    mnt == container_mnt,
                    "{name} ran in mount ns {mnt}, not the container's {container_mnt}"
                )
            }
            "createRuntime" => {
                ensure!(
                    mnt != container_mnt,
                    "createRuntime ran in the container's mount namespace"
                );
                if let Some(host) = &runtime_mnt {
                    ensure!(
                        mnt == host,
                        "createRuntime ran in mount ns {mnt}, not the runtime's {host}"
                    );
                }
            }
            _ => {}
        }
    }
    Ok(Outcome::Pass)
}

fn create_runtime_fails(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| {
        hooked(ctx, b, "touch /user-ran; sleep 600", Some("createRuntime"))
    })?;
    let id = ctx.new_id();
    let out = ctx.try_create(&id, &b)?;
    let start = if out.success {
        Some(ctx.cmd(&["start", &id])?)
    } else {
        None
    };
    std::thread::sleep(Duration::from_millis(200));
    let ran = b.rootfs.join("user-ran").exists();
    let _ = ctx.cmd(&["delete", "--force", &id]);
    ensure!(
        !out.success,
        "create succeeded although createRuntime failed"
    );
    ensure!(start.is_none() && !ran, "the user program ran");
    Ok(Outcome::Pass)
}

fn start_container_fails(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| {
        hooked(ctx, b, "touch /user-ran; sleep 600", Some("startContainer"))
    })?;
    let c = ctx.create(&b)?;
    let out = c.verb("start", &[])?;
    // startContainer runs in the container after `start` released it, so runc reports the failure on the
    // container's stderr rather than in start's exit status; either counts as "generate an error".
    if out.success {
        c.wait_status("stopped")?;
        ensure!(
            c.stderr_tail() != "(empty)",
            "start succeeded and nothing reported the startContainer failure"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    ensure!(!b.rootfs.join("user-ran").exists(), "the user program ran");
    ensure!(
        c.status()? == "stopped",
        "the container was not stopped after startContainer failed"
    );
    Ok(Outcome::Pass)
}

fn poststop_fails(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| hooked(ctx, b, "true", Some("poststop")))?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("stopped")?;
    let out = c.verb("delete", &[])?;
    ensure!(
        names(&b).iter().any(|n| n == "poststop-fail"),
        "poststop hook did not run"
    );
    ensure!(
        out.success,
        "delete failed because of the poststop hook: {}",
        out.error_line()
    );
    ensure!(
        !c.verb("state", &[])?.success,
        "container still exists after delete"
    );
    Ok(Outcome::Pass)
}

fn timeout(ctx: &Ctx) -> Result<Outcome> {
    let probe = ctx.template.host_probe.display().to_string();
    let mut config = sh_config("touch /user-ran; sleep 600");
    config["hooks"] = json!({"createRuntime": [{"path": probe, "args": ["carte-probe", "sleep", "60"], "timeout": 1}]});
    let b = ctx.bundle(&config)?;
    let id = ctx.new_id();
    let began = Instant::now();
    let out = ctx.try_create(&id, &b);
    let took = began.elapsed();
    let _ = ctx.cmd(&["delete", "--force", &id]);
    let out = out?;
    if out.success {
        bail!("create succeeded although the createRuntime hook outlived its 1s timeout");
    }
    ensure!(
        took < Duration::from_secs(15),
        "create took {}s with a 1s hook timeout",
        took.as_secs()
    );
    Ok(Outcome::Pass)
}

fn order_within_kind(ctx: &Ctx) -> Result<Outcome> {
    let b = bundle_with(ctx, |b| {
        let log = b.rootfs.join("hooks.log").display().to_string();
        let mut config = sh_config("true");
        let list: Vec<Value> = ["first", "second", "third"]
            .iter()
            .map(|n| hook(ctx, &log, n, false))
            .collect();
        config["hooks"] = json!({"createRuntime": list});
        config
    })?;
    let _c = ctx.create(&b)?;
    let got = names(&b);
    ensure!(
        got == ["first", "second", "third"],
        "createRuntime hooks ran as {got:?}"
    );
    Ok(Outcome::Pass)
}
