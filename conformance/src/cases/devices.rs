//! config-linux.md "Devices" and "Default Devices" beyond their existence (usable under a deny-all device
//! cgroup, /dev/ptmx, block and fifo entries, paths outside /dev, conflicts), and "Rootfs Mount Propagation".

use super::{case, case_since, op, probe_config, run_probe, HostMounts, Section};
use crate::case::{Bundle, Case, Ctx, Outcome};
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

const S: Section = (
    "linux",
    "config-linux.md: namespaces, devices, paths, sysctl, seccomp",
);

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "devices.default-usable", "the runtime MUST supply the default devices: usable (null, zero, full, random, urandom, ptmx) under a deny-all device list", default_usable),
        case(S, "devices.ptmx", "/dev/ptmx MUST be a bind mount or symlink of the container's /dev/pts/ptmx", ptmx),
        case(S, "devices.block", "a `b` device entry MUST be available as a block device with its major/minor", block),
        case(S, "devices.fifo", "a `p` device entry (no major/minor) MUST be available as a FIFO", fifo),
        case_since(S, "devices.outside-dev", "a device path MAY be anywhere in the container filesystem, notably outside of /dev", "1.1.0", outside_dev),
        case_since(S, "devices.conflict", "a file already at a device's `path` that does not match it MUST make the runtime generate an error", "1.1.0", conflict),
        case(S, "rootfsPropagation.private", "rootfsPropagation `private`: the rootfs mount MUST NOT be in any peer group (no shared/master)", |c| propagation(c, "private")),
        case(S, "rootfsPropagation.shared", "rootfsPropagation `shared`: the rootfs mount MUST belong to a (new) peer group", |c| propagation(c, "shared")),
        case(S, "rootfsPropagation.slave", "rootfsPropagation `slave`: the rootfs mount MUST receive propagation from the host (master:N), not send", |c| propagation(c, "slave")),
        case(S, "rootfsPropagation.unbindable", "rootfsPropagation `unbindable`: the rootfs mount MUST be unbindable", |c| propagation(c, "unbindable")),
    ]
}

const ENOSPC: i64 = 28;

fn default_usable(ctx: &Ctx) -> Result<Outcome> {
    let names = ["null", "zero", "full", "random", "urandom"];
    let ops: Vec<String> = names
        .iter()
        .map(|n| format!("open:/dev/{n}"))
        .chain(["openonly:/dev/ptmx".to_string()])
        .collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    // The base config's device list is the deny-all rule alone: only what the runtime itself allows is usable.
    let r = ctx.probe_with(&ops, |_| {})?;
    for n in names {
        let o = op(&r, &format!("open:/dev/{n}"));
        ensure!(o["ok"] == true, "/dev/{n} cannot be opened: {o}");
        ensure!(o["writable"] == true, "/dev/{n} is not writable: {o}");
    }
    let ptmx = op(&r, "openonly:/dev/ptmx");
    ensure!(ptmx["ok"] == true, "/dev/ptmx cannot be opened: {ptmx}");
    let zero = &op(&r, "open:/dev/zero")["read"];
    ensure!(
        zero["bytes"]
            .as_array()
            .is_some_and(|b| !b.is_empty() && b.iter().all(|x| x == 0)),
        "reading /dev/zero gave {zero}"
    );
    let full = &op(&r, "open:/dev/full")["write"];
    ensure!(
        full["errno"] == ENOSPC,
        "writing /dev/full gave {full} (want ENOSPC)"
    );
    let urandom = &op(&r, "open:/dev/urandom")["read"];
    ensure!(
        urandom["bytes"].as_array().is_some_and(|b| b.len() == 16),
        "reading /dev/urandom gave {urandom}"
    );
    Ok(Outcome::Pass)
}

fn ptmx(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["stat:/dev/ptmx", "stat:/dev/pts/ptmx"], |_| {})?;
    let (dev, pts) = (op(&r, "stat:/dev/ptmx"), op(&r, "stat:/dev/pts/ptmx"));
    ensure!(pts["ok"] == true, "/dev/pts/ptmx missing: {pts}");
    let link = dev["link"].as_str().unwrap_or("");
    let symlink = dev["type"] == "l" && (link == "pts/ptmx" || link == "/dev/pts/ptmx");
    let bind = dev["type"] == "c" && dev["dev"] == pts["dev"] && dev["ino"] == pts["ino"];
    ensure!(
        symlink || bind,
        "/dev/ptmx is neither a symlink to pts/ptmx nor /dev/pts/ptmx itself: {dev} vs {pts}"
    );
    Ok(Outcome::Pass)
}

fn block(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["stat:/dev/carte-blk"], |c| {
        c["linux"]["devices"] = json!([{"path": "/dev/carte-blk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600}]);
    })?;
    let s = op(&r, "stat:/dev/carte-blk");
    ensure!(
        s["type"] == "b" && s["major"] == 7 && s["minor"] == 200,
        "/dev/carte-blk: {s}"
    );
    Ok(Outcome::Pass)
}

fn fifo(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["stat:/dev/carte-fifo"], |c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/carte-fifo", "type": "p", "fileMode": 0o600}]);
    })?;
    let s = op(&r, "stat:/dev/carte-fifo");
    ensure!(s["type"] == "p", "/dev/carte-fifo: {s}");
    Ok(Outcome::Pass)
}

fn outside_dev(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["stat:/carte-devs/null", "open:/carte-devs/null"], |c| {
        c["linux"]["devices"] = json!([{"path": "/carte-devs/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]);
        if let Some(list) = c["linux"]["resources"]["devices"].as_array_mut() {
            list.push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        }
    })?;
    let s = op(&r, "stat:/carte-devs/null");
    ensure!(
        s["type"] == "c" && s["major"] == 1 && s["minor"] == 3,
        "/carte-devs/null: {s}"
    );
    ensure!(
        op(&r, "open:/carte-devs/null")["ok"] == true,
        "/carte-devs/null cannot be opened: {}",
        op(&r, "open:/carte-devs/null")
    );
    Ok(Outcome::Pass)
}

fn conflict(ctx: &Ctx) -> Result<Outcome> {
    let mut config = probe_config(&[]);
    config["linux"]["devices"] = json!([{"path": "/carte-conflict", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]);
    let b = ctx.bundle(&config)?;
    std::fs::write(b.rootfs.join("carte-conflict"), "a regular file")?;
    let id = ctx.new_id();
    let out = ctx.try_create(&id, &b)?;
    let _ = ctx.cmd(&["delete", "--force", &id]);
    ensure!(
        !out.success,
        "create succeeded although a regular file is at the device path"
    );
    Ok(Outcome::Pass)
}

/// The container's `/` in its mountinfo: the optional fields say shared:N / master:N / unbindable.
fn root_optional(r: &Value) -> Result<Vec<String>> {
    let m = r["mounts"]
        .as_array()
        .and_then(|a| a.iter().rev().find(|m| m["target"] == "/"))
        .context("no `/` in the container's mountinfo")?;
    Ok(m["optional"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The bundle lives below a shared host mount, so the rootfs has a peer group to inherit: without one,
/// `private` and `slave` could not be told apart from doing nothing.
fn propagation(ctx: &Ctx, mode: &str) -> Result<Outcome> {
    let host = HostMounts::new(&ctx.dir.join("shared-bundle"))?;
    let dir = host.dir.display().to_string();
    // Link the rootfs first: hard links cannot cross into the bind mount made next (EXDEV).
    let rootfs = ctx.template.bundle(&host.dir)?;
    let b = Bundle {
        dir: host.dir.clone(),
        rootfs,
    };
    host.mount(&["--bind", &dir, &dir])?;
    host.mount(&["--make-shared", &dir])?;
    let mut config = probe_config(&[]);
    config["linux"]["rootfsPropagation"] = json!(mode);
    b.write_config(&config)?;
    let r = run_probe(ctx, &b)?;
    let opt = root_optional(&r)?;
    let has = |p: &str| opt.iter().any(|o| o.starts_with(p));
    let ok = match mode {
        "private" => !has("shared:") && !has("master:") && !has("unbindable"),
        "shared" => has("shared:"),
        "slave" => has("master:") && !has("shared:"),
        "unbindable" => has("unbindable"),
        _ => bail!("unknown propagation mode {mode}"),
    };
    ensure!(ok, "rootfsPropagation `{mode}`: `/` has {opt:?}");
    Ok(Outcome::Pass)
}
