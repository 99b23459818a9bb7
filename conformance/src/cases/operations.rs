//! runtime.md, more of the state and the operations: the state's required fields in every status and their
//! JSON types (state-schema.json), the errors `create`/`start`/`kill`/`delete`/`state` MUST generate, and what
//! an error or a `delete` MUST leave of the environment.

use super::{case, linux::add_ns, skip, Section};
use crate::bundle::base_config;
use crate::case::{process_alive, Case, Ctx, Outcome};
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const S: Section = ("lifecycle", "runtime.md: state and operations");

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "state.running", "state of a running container: status=running and `pid` MUST be the container process as seen by the host", state_running),
        case(S, "state.stopped-fields", "state of a stopped container MUST still carry ociVersion, id, status, absolute bundle and annotations", state_stopped_fields),
        case(S, "state.schema", "state MUST follow state-schema.json in every status: string ociVersion/id/status/bundle, int pid, string-map annotations", state_schema),
        case(S, "state.no-annotations", "without config annotations, state `annotations` MAY be absent or an empty map (nothing else)", state_no_annotations),
        case(S, "missing-id", "create/start/state/kill/delete MUST generate an error when not given a container ID", missing_id),
        case(S, "create.invalid-id", "an ID that is not valid (`../x`, `a/b`) MUST fail create and no container MUST be created", invalid_id),
        case(S, "create.duplicate-stopped", "create with the ID of a stopped (not deleted) container MUST fail and leave it intact", duplicate_stopped),
        case(S, "create.error-leaves-nothing", "a failed create MUST leave the environment as if never attempted: no container, cgroup or host mount", error_leaves_nothing),
        case(S, "start.no-process", "start MUST generate an error if `process` was not set (and run nothing)", start_no_process),
        case(S, "kill.running", "kill KILL of a running container MUST send the signal: the process dies and status becomes stopped", kill_running),
        case(S, "kill.signal-zero", "kill with the POSIX null signal 0 of a running container MUST succeed and change nothing", kill_signal_zero),
        case(S, "delete.keeps-foreign", "delete MUST NOT delete resources not created by the container (bundle, bind source, cgroup parent, joined namespace)", delete_keeps_foreign),
    ]
}

fn sleeper(ctx: &Ctx) -> Result<crate::case::Bundle> {
    ctx.bundle(&base_config(&["/bin/sleep", "600"]))
}

fn same_dir(a: &str, b: &Path) -> bool {
    std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
}

fn state_running(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("running")?;
    let s = c.state()?;
    ensure!(s["id"] == json!(c.id), "id is {} not {}", s["id"], c.id);
    ensure!(
        s["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "ociVersion missing: {s}"
    );
    let bundle = s["bundle"].as_str().unwrap_or("");
    ensure!(
        bundle.starts_with('/') && same_dir(bundle, &b.dir),
        "bundle `{bundle}` is not the absolute bundle path"
    );
    let pid = s["pid"].as_i64().unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv: Vec<String> = cmdline
        .split(|c| *c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ensure!(
        argv == ["/bin/sleep", "600"],
        "state pid {pid} (host view) runs {argv:?}, not the user program"
    );
    Ok(Outcome::Pass)
}

fn state_stopped_fields(ctx: &Ctx) -> Result<Outcome> {
    let mut config = base_config(&["/bin/true"]);
    config["annotations"] = json!({"org.example.stopped": "kept"});
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("stopped")?;
    let s = c.state()?;
    ensure!(s["id"] == json!(c.id), "id is {}", s["id"]);
    ensure!(s["ociVersion"].is_string(), "ociVersion missing: {s}");
    let bundle = s["bundle"].as_str().unwrap_or("");
    ensure!(
        bundle.starts_with('/') && same_dir(bundle, &b.dir),
        "stopped state bundle is `{bundle}`"
    );
    ensure!(
        s["annotations"] == config["annotations"],
        "stopped state annotations are {}",
        s["annotations"]
    );
    Ok(Outcome::Pass)
}

/// state-schema.json: required ociVersion, id, status, bundle (strings); pid an integer; annotations a map of
/// strings; status one of the four the spec defines (runtimes MAY add states, but only for new states).
fn schema_errors(s: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for key in ["ociVersion", "id", "status", "bundle"] {
        if !s[key].is_string() {
            errs.push(format!("`{key}` is {} (want a string)", s[key]));
        }
    }
    if !s["pid"].is_null() && !s["pid"].is_i64() {
        errs.push(format!("`pid` is {} (want an integer)", s["pid"]));
    }
    match &s["annotations"] {
        Value::Null => {}
        Value::Object(m) if m.values().all(Value::is_string) => {}
        other => errs.push(format!("`annotations` is {other} (want a map of strings)")),
    }
    errs
}

fn state_schema(ctx: &Ctx) -> Result<Outcome> {
    let mut config = base_config(&["/bin/sleep", "600"]);
    config["annotations"] = json!({"org.example.a": "1"});
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    let check = |want: &str| -> Result<()> {
        let s = c.state()?;
        let errs = schema_errors(&s);
        ensure!(errs.is_empty(), "{want} state: {}", errs.join("; "));
        ensure!(s["status"] == want, "status is {} not {want}", s["status"]);
        if want != "stopped" {
            ensure!(
                s["pid"].as_i64().is_some_and(|p| p > 0),
                "{want} state has no pid (REQUIRED when created or running)"
            );
        }
        Ok(())
    };
    check("created")?;
    c.start()?;
    c.wait_status("running")?;
    check("running")?;
    let out = c.kill("KILL")?;
    ensure!(out.success, "kill failed: {}", out.error_line());
    c.wait_status("stopped")?;
    check("stopped")?;
    Ok(Outcome::Pass)
}

fn state_no_annotations(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    let s = c.state()?;
    match &s["annotations"] {
        Value::Null => Ok(Outcome::Pass),
        Value::Object(m) if m.is_empty() => Ok(Outcome::Pass),
        other => bail!("annotations without any configured: {other}"),
    }
}

fn missing_id(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let bundle = b.dir.display().to_string();
    for args in [
        vec!["create", "--bundle", &bundle],
        vec!["start"],
        vec!["state"],
        vec!["kill"],
        vec!["delete"],
    ] {
        let out = ctx.cmd(&args)?;
        ensure!(
            !out.success,
            "`{}` without a container ID succeeded",
            args[0]
        );
    }
    // Nothing may have been created under an empty or defaulted name.
    let list = ctx.cmd(&["list", "-q"])?;
    ensure!(
        list.stdout.trim().is_empty(),
        "containers appeared: {}",
        list.stdout.trim()
    );
    Ok(Outcome::Pass)
}

fn invalid_id(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let escape = format!("cc-escape-{}", std::process::id());
    for id in [format!("../{escape}"), "a/b".to_string()] {
        let out = ctx.try_create(&id, &b)?;
        let _ = ctx.cmd(&["delete", "--force", &id]);
        ensure!(!out.success, "create with the invalid ID `{id}` succeeded");
    }
    let outside = ctx.root.parent().map(|p| p.join(&escape));
    ensure!(
        !outside.as_ref().is_some_and(|p| p.exists()),
        "`../{escape}` created `{}` outside --root",
        outside.unwrap_or_default().display()
    );
    ensure!(
        !ctx.root.join("a").exists(),
        "`a/b` created a directory below --root"
    );
    Ok(Outcome::Pass)
}

fn duplicate_stopped(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&base_config(&["/bin/true"]))?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("stopped")?;
    let b2 = sleeper(ctx)?;
    let out = ctx.try_create(&c.id, &b2)?;
    ensure!(
        !out.success,
        "create reused the ID of stopped container {}",
        c.id
    );
    let s = c.state()?;
    ensure!(
        s["status"] == "stopped" && same_dir(s["bundle"].as_str().unwrap_or(""), &b.dir),
        "the stopped container changed: {s}"
    );
    Ok(Outcome::Pass)
}

/// Host mount points below `dir`, as this (the runtime's) mount namespace sees them.
fn host_mounts_below(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// The directories a cgroup path would have in each mounted hierarchy (v1 controllers and v2).
pub(super) fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(format!("{}{path}", pre.split(' ').nth(4).unwrap_or(""))))
        })
        .collect();
    dirs.dedup();
    dirs
}

fn error_leaves_nothing(ctx: &Ctx) -> Result<Outcome> {
    let id = ctx.new_id();
    let cgroup = format!("/carte-conformance/{id}");
    let mut config = base_config(&["/bin/true"]);
    config["linux"]["cgroupsPath"] = json!(cgroup);
    let missing = ctx.dir.join("no-such-source").display().to_string();
    if let Some(m) = config["mounts"].as_array_mut() {
        m.push(json!({"destination": "/mnt/x", "type": "bind", "source": missing, "options": ["rbind"]}));
    }
    let b = ctx.bundle(&config)?;
    let before = host_mounts_below(&ctx.dir);
    let out = ctx.try_create(&id, &b)?;
    let state = ctx.cmd(&["state", &id])?;
    let after = host_mounts_below(&ctx.dir);
    let left: Vec<PathBuf> = cgroup_dirs(&cgroup)
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    let _ = ctx.cmd(&["delete", "--force", &id]);
    ensure!(!out.success, "create with a missing bind source succeeded");
    ensure!(!state.success, "the failed create left container {id}");
    ensure!(
        before == after,
        "the failed create left host mounts: {:?}",
        after
            .iter()
            .filter(|m| !before.contains(m))
            .collect::<Vec<_>>()
    );
    ensure!(
        left.is_empty(),
        "the failed create left cgroups: {}",
        left.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Outcome::Pass)
}

fn start_no_process(ctx: &Ctx) -> Result<Outcome> {
    let mut config = base_config(&["/bin/true"]);
    config.as_object_mut().map(|o| o.remove("process"));
    let b = ctx.bundle(&config)?;
    let id = ctx.new_id();
    let created = ctx.try_create(&id, &b)?;
    let started = if created.success {
        Some(ctx.cmd(&["start", &id])?)
    } else {
        None
    };
    let _ = ctx.cmd(&["delete", "--force", &id]);
    // `process` is REQUIRED only when start is called, so refusing at create is also an error before any start.
    match started {
        Some(out) if out.success => bail!("start succeeded for a config without `process`"),
        _ => Ok(Outcome::Pass),
    }
}

fn kill_running(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("running")?;
    let out = c.kill("KILL")?;
    ensure!(out.success, "kill KILL failed: {}", out.error_line());
    c.wait_exit()?;
    c.wait_status("stopped")?;
    Ok(Outcome::Pass)
}

fn kill_signal_zero(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("running")?;
    let out = c.kill("0")?;
    ensure!(
        out.success,
        "kill with signal 0 failed: {}",
        out.error_line()
    );
    ensure!(
        process_alive(c.init_pid) && c.status()? == "running",
        "signal 0 changed the container"
    );
    Ok(Outcome::Pass)
}

fn delete_keeps_foreign(ctx: &Ctx) -> Result<Outcome> {
    // A cgroup parent we made, a namespace another container made, a bind source, the bundle itself.
    // Named after a container id so the suite's sweep removes it even if this case is interrupted. Not in
    // cpuset: a new cpuset cgroup starts with no CPUs, which is a different test.
    let parent = format!("/{}-keep", ctx.new_id());
    let parents: Vec<PathBuf> = cgroup_dirs(&parent)
        .into_iter()
        .filter(|d| {
            d.parent()
                .is_some_and(|p| p.exists() && !p.join("cpuset.cpus").exists())
        })
        .collect();
    for p in &parents {
        let _ = std::fs::create_dir(p);
    }
    let result = keeps_foreign(ctx, &parent, &parents);
    for p in &parents {
        let _ = std::fs::remove_dir(p);
    }
    result
}

fn keeps_foreign(ctx: &Ctx, parent: &str, parents: &[PathBuf]) -> Result<Outcome> {
    if parents.is_empty() {
        return skip("no cgroup hierarchy to make a parent cgroup in");
    }
    let holder = sleeper(ctx)?;
    let h = ctx.create(&holder)?;
    let src = ctx.dir.join("keep-src");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("data"), "host data")?;
    let mut config = base_config(&["/bin/true"]);
    config["linux"]["cgroupsPath"] = json!(format!("{parent}/{}", ctx.new_id()));
    if let Some(list) = config["linux"]["namespaces"].as_array_mut() {
        list.retain(|n| n["type"] != "network");
    }
    add_ns(
        &mut config,
        json!({"type": "network", "path": format!("/proc/{}/ns/net", h.init_pid)}),
    );
    if let Some(m) = config["mounts"].as_array_mut() {
        m.push(json!({"destination": "/mnt/keep", "type": "bind", "source": src.display().to_string(), "options": ["rbind"]}));
    }
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("stopped")?;
    let out = c.verb("delete", &[])?;
    ensure!(out.success, "delete failed: {}", out.error_line());
    for p in [
        b.dir.join("config.json"),
        b.rootfs.join("bin/busybox"),
        src.join("data"),
    ] {
        ensure!(p.exists(), "delete removed `{}`", p.display());
    }
    for p in parents {
        ensure!(
            p.exists(),
            "delete removed the cgroup parent `{}`",
            p.display()
        );
    }
    ensure!(
        h.status().context("state of the namespace holder")? == "created"
            && process_alive(h.init_pid),
        "delete disturbed the container whose network namespace it joined"
    );
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_accepts_the_spec_example_and_rejects_wrong_types() {
        let ok = json!({"ociVersion": "1.0.2", "id": "c", "status": "running", "pid": 4422,
                        "bundle": "/containers/redis", "annotations": {"myKey": "myValue"}});
        assert!(schema_errors(&ok).is_empty());
        let bad = json!({"ociVersion": "1.0.2", "id": "c", "status": "running", "pid": "4422",
                         "annotations": {"k": 1}});
        assert_eq!(schema_errors(&bad).len(), 3, "{:?}", schema_errors(&bad));
    }
}
