//! runtime.md: the state JSON, the operations (create/start/kill/delete/state) and their required errors,
//! driven through the runtime's command line only.

use super::{case, sh_config, Section};
use crate::bundle::{base_config, probe_args};
use crate::case::{process_alive, Case, Ctx, Outcome};
use anyhow::{ensure, Result};
use serde_json::json;
use std::time::Duration;

const S: Section = ("lifecycle", "runtime.md: state and operations");

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "state.created", "state of a created container: MUST carry ociVersion, id, status=created, pid, absolute bundle", state_created),
        case(S, "state.annotations", "state `annotations` MUST be the config's annotations", state_annotations),
        case(S, "create.not-started", "create MUST NOT run the user program; start MUST run it (exec fifo semantics)", not_started_before_start),
        case(S, "start.running", "after start, status MUST be running with the same pid", start_running),
        case(S, "start.twice", "start of a container that is not created MUST fail and have no effect", start_twice),
        case(S, "start.stopped", "start of a stopped container MUST fail", start_stopped),
        case(S, "state.stopped", "status MUST become stopped when the process exits", state_stopped),
        case(S, "create.duplicate-id", "create with an id already in use MUST fail and leave the first container intact", duplicate_id),
        case(S, "unknown-id", "state/start/kill/delete of an unknown id MUST fail", unknown_id),
        case(S, "create.bad-root", "create with a missing root.path MUST fail and leave no container behind", bad_root),
        case(S, "create.bad-args", "a process.args[0] that cannot be executed MUST fail create or start", bad_args),
        case(S, "create.config-frozen", "changes to config.json after create MUST NOT affect the container", config_frozen),
        case(S, "kill.signal", "kill MUST deliver the given signal to the container process", kill_signal),
        case(S, "kill.created", "kill of a created container is allowed and stops it", kill_created),
        case(S, "kill.stopped", "kill of a stopped container MUST fail", kill_stopped),
        case(S, "delete.running", "delete of a running container (no --force) MUST fail and have no effect", delete_running),
        case(S, "delete.created", "delete of a created (not stopped) container MUST fail and have no effect", delete_created),
        case(S, "delete.stopped", "delete of a stopped container MUST remove it (state then fails)", delete_stopped),
    ]
}

fn sleeper(ctx: &Ctx) -> Result<crate::case::Bundle> {
    ctx.bundle(&base_config(&["/bin/sleep", "600"]))
}

fn state_created(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    let s = c.state()?;
    ensure!(
        s["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "ociVersion missing: {s}"
    );
    ensure!(s["id"] == json!(c.id), "id is {} not {}", s["id"], c.id);
    ensure!(
        s["status"] == "created",
        "status is {} not created",
        s["status"]
    );
    let pid = s["pid"].as_i64().unwrap_or(0);
    ensure!(
        pid > 0 && process_alive(pid as i32),
        "pid {} is not a live process",
        s["pid"]
    );
    let bundle = s["bundle"].as_str().unwrap_or("");
    ensure!(bundle.starts_with('/'), "bundle `{bundle}` is not absolute");
    ensure!(
        std::fs::canonicalize(bundle).ok() == std::fs::canonicalize(&b.dir).ok(),
        "bundle `{bundle}` is not {}",
        b.dir.display()
    );
    Ok(Outcome::Pass)
}

fn state_annotations(ctx: &Ctx) -> Result<Outcome> {
    let mut config = base_config(&["/bin/sleep", "600"]);
    config["annotations"] = json!({"org.example.conformance": "yes", "org.example.two": "2"});
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    let s = c.state()?;
    ensure!(
        s["annotations"] == config["annotations"],
        "annotations are {} not {}",
        s["annotations"],
        config["annotations"]
    );
    Ok(Outcome::Pass)
}

fn not_started_before_start(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&sh_config("touch /started; exec sleep 600"))?;
    let c = ctx.create(&b)?;
    std::thread::sleep(Duration::from_millis(300));
    let marker = b.rootfs.join("started");
    ensure!(!marker.exists(), "the user program ran before start");
    ensure!(
        c.status()? == "created",
        "status is not created before start"
    );
    c.start()?;
    while !marker.exists() {
        ensure!(
            !ctx.past_deadline(),
            "the user program did not run after start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Outcome::Pass)
}

fn start_running(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    let before = c.pid()?;
    c.start()?;
    c.wait_status("running")?;
    let after = c.pid()?;
    ensure!(
        before == after,
        "pid changed from {before} to {after} across start"
    );
    Ok(Outcome::Pass)
}

fn start_twice(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("running")?;
    let pid = c.pid()?;
    let again = c.verb("start", &[])?;
    ensure!(!again.success, "second start succeeded");
    ensure!(
        c.status()? == "running" && c.pid()? == pid,
        "second start changed the container"
    );
    Ok(Outcome::Pass)
}

fn start_stopped(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&base_config(&["/bin/true"]))?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("stopped")?;
    let again = c.verb("start", &[])?;
    ensure!(!again.success, "start of a stopped container succeeded");
    Ok(Outcome::Pass)
}

fn state_stopped(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&base_config(&["/bin/true"]))?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("stopped")?;
    let s = c.state()?;
    ensure!(s["id"] == json!(c.id), "stopped state lost its id: {s}");
    Ok(Outcome::Pass)
}

fn duplicate_id(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    let pid = c.pid()?;
    let b2 = sleeper(ctx)?;
    let out = ctx.try_create(&c.id, &b2)?;
    ensure!(!out.success, "second create with id {} succeeded", c.id);
    let s = c.state()?;
    ensure!(
        s["status"] == "created" && s["pid"] == json!(pid),
        "first container changed: {s}"
    );
    ensure!(
        std::fs::canonicalize(s["bundle"].as_str().unwrap_or("")).ok()
            == std::fs::canonicalize(&b.dir).ok(),
        "bundle changed: {s}"
    );
    Ok(Outcome::Pass)
}

fn unknown_id(ctx: &Ctx) -> Result<Outcome> {
    let id = ctx.new_id();
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let out = ctx.cmd(&args)?;
        ensure!(!out.success, "`{}` of an unknown id succeeded", args[0]);
    }
    Ok(Outcome::Pass)
}

fn bad_root(ctx: &Ctx) -> Result<Outcome> {
    let mut config = base_config(&["/bin/true"]);
    config["root"]["path"] = json!("no-such-rootfs");
    let b = ctx.bundle(&config)?;
    let id = ctx.new_id();
    let out = ctx.try_create(&id, &b)?;
    if out.success {
        let _ = ctx.cmd(&["delete", "--force", &id]);
        anyhow::bail!("create with a missing rootfs succeeded");
    }
    let state = ctx.cmd(&["state", &id])?;
    ensure!(
        !state.success,
        "a failed create left container {id} behind: {}",
        state.stdout.trim()
    );
    Ok(Outcome::Pass)
}

fn bad_args(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&base_config(&["/no/such/program"]))?;
    let id = ctx.new_id();
    let created = ctx.try_create(&id, &b)?;
    let started = if created.success {
        Some(ctx.cmd(&["start", &id])?)
    } else {
        None
    };
    let _ = ctx.cmd(&["delete", "--force", &id]);
    match started {
        None => Ok(Outcome::Pass),
        Some(out) if !out.success => Ok(Outcome::Pass),
        Some(_) => anyhow::bail!("create and start both succeeded for a missing program"),
    }
}

fn kill_signal(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&sh_config(
        "trap 'touch /got-usr1; exit 0' USR1; touch /ready; while :; do sleep 0.1; done",
    ))?;
    let c = ctx.create(&b)?;
    c.start()?;
    while !b.rootfs.join("ready").exists() {
        ensure!(!ctx.past_deadline(), "container never became ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = c.kill("USR1")?;
    ensure!(out.success, "kill USR1 failed: {}", out.error_line());
    while !b.rootfs.join("got-usr1").exists() {
        ensure!(!ctx.past_deadline(), "the process never saw SIGUSR1");
        std::thread::sleep(Duration::from_millis(10));
    }
    c.wait_status("stopped")?;
    Ok(Outcome::Pass)
}

fn kill_created(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    let out = c.kill("KILL")?;
    ensure!(
        out.success,
        "kill KILL of a created container failed: {}",
        out.error_line()
    );
    c.wait_status("stopped")?;
    Ok(Outcome::Pass)
}

fn kill_stopped(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&base_config(&["/bin/true"]))?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("stopped")?;
    let out = c.kill("KILL")?;
    ensure!(!out.success, "kill of a stopped container succeeded");
    ensure!(c.status()? == "stopped", "kill changed a stopped container");
    Ok(Outcome::Pass)
}

fn delete_running(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_status("running")?;
    let out = c.verb("delete", &[])?;
    ensure!(!out.success, "delete of a running container succeeded");
    ensure!(
        c.status()? == "running",
        "delete without --force changed a running container"
    );
    let forced = c.verb("delete", &["--force"])?;
    ensure!(
        forced.success,
        "delete --force failed: {}",
        forced.error_line()
    );
    Ok(Outcome::Pass)
}

fn delete_created(ctx: &Ctx) -> Result<Outcome> {
    let b = sleeper(ctx)?;
    let c = ctx.create(&b)?;
    let out = c.verb("delete", &[])?;
    ensure!(
        !out.success,
        "delete (no --force) of a created container succeeded"
    );
    ensure!(
        c.status()? == "created",
        "delete without --force changed a created container"
    );
    Ok(Outcome::Pass)
}

fn delete_stopped(ctx: &Ctx) -> Result<Outcome> {
    let b = ctx.bundle(&base_config(
        &probe_args(&[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ))?;
    let c = ctx.create(&b)?;
    let pid = c.pid()?;
    let cgroups = own_cgroup_dirs(pid);
    c.start()?;
    c.wait_status("stopped")?;
    let out = c.verb("delete", &[])?;
    ensure!(
        out.success,
        "delete of a stopped container failed: {}",
        out.error_line()
    );
    ensure!(
        !c.verb("state", &[])?.success,
        "state still succeeds after delete"
    );
    ensure!(
        !process_alive(pid),
        "process {pid} still alive after delete"
    );
    // runtime.md delete: "MUST delete the resources that were created during the create step".
    for dir in cgroups {
        ensure!(
            !dir.exists(),
            "cgroup `{}` still exists after delete",
            dir.display()
        );
    }
    Ok(Outcome::Pass)
}

/// The v1 controller directories (and the v2 one) a process sits in, as host paths, skipping the root.
fn own_cgroup_dirs(pid: i32) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            if path == "/" {
                return None;
            }
            let base = match ctrls {
                "" => ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
                    .into_iter()
                    .find(|b| std::path::Path::new(b).join("cgroup.controllers").exists())?
                    .to_string(),
                c if c.starts_with("name=") => {
                    format!("/sys/fs/cgroup/{}", c.trim_start_matches("name="))
                }
                c => format!("/sys/fs/cgroup/{c}"),
            };
            let dir = std::path::PathBuf::from(format!("{base}{path}"));
            dir.exists().then_some(dir)
        })
        .collect()
}

fn config_frozen(ctx: &Ctx) -> Result<Outcome> {
    let args = probe_args(&[]);
    let mut config = base_config(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    // runtime.md create: changes to config.json after create MUST NOT affect the container.
    config["process"]["env"] = json!(["PATH=/bin", "CARTE_CHANGED_AFTER_CREATE=1"]);
    config["process"]["args"] = json!(["/bin/false"]);
    b.write_config(&config)?;
    c.start()?;
    c.wait_exit()?;
    let r = c.report()?;
    let env = r["env"].to_string();
    ensure!(
        !env.contains("CARTE_CHANGED_AFTER_CREATE"),
        "start used the edited config.json: env {env}"
    );
    Ok(Outcome::Pass)
}
