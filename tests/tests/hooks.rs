//! The six hook kinds: order, the container state on stdin, where each runs, and which failures are fatal.

use carte_tests::*;
use std::path::Path;

const HOST_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A hook that saves its stdin as `<dir>/<kind>.json` and appends `<kind>` to `<dir>/order`.
fn recorder(kind: &str, dir: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {dir}/{kind}.json && echo {kind} >> {dir}/order")],
        "env": [HOST_PATH]
    })
}

fn order(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn hook_state(dir: &Path, kind: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(format!("{kind}.json"))).unwrap_or_default();
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("{kind} hook got no JSON state on stdin ({e}): {text:?}"),
    }
}

#[test]
fn six_hooks_run_in_order_with_state_on_stdin() {
    let Some(ctx) = Ctx::new() else { return };
    let log = ctx.tempdir();
    let log_s = log.display().to_string();
    let mut b = ctx.bundle();
    std::fs::create_dir_all(b.rootfs().join("hooklog")).ok();
    // startContainer runs inside the container after pivot_root, so it writes through a bind mount of the log.
    b.mount(
        json!({"destination": "/hooklog", "type": "bind", "source": log_s, "options": ["bind"]}),
    );
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        b.hook(kind, recorder(kind, &log_s));
    }
    b.hook("startContainer", recorder("startContainer", "/hooklog"));
    b.args(&["true"]);
    let id = ctx.id("hooks");
    // runc 1.1.5 runs poststart hooks inside `create` (fixed in runc 1.2); the spec and carte run them in
    // `start`, after startContainer.
    let (at_create, at_start): (&[&str], &[&str]) = if is_carte() {
        (&[], &["startContainer", "poststart"])
    } else {
        (&["poststart"], &["startContainer"])
    };
    let mut want: Vec<&str> = vec!["prestart", "createRuntime", "createContainer"];
    want.extend_from_slice(at_create);
    ctx.rt.create(&id, &b, &[]).ok();
    assert_eq!(order(&log), want);
    let pid = ctx.rt.state(&id)["pid"].clone();
    ctx.rt.start(&id).ok();
    want.extend_from_slice(at_start);
    assert!(
        poll_until(runtime::TIMEOUT, || order(&log).len() >= want.len()),
        "{:?}",
        order(&log)
    );
    assert_eq!(order(&log), want);
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    want.push("poststop");
    assert_eq!(order(&log), want);
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let s = hook_state(&log, kind);
        assert_eq!(s["id"], id.as_str(), "{kind}: {s}");
        assert_eq!(s["bundle"], b.path_str(), "{kind}: {s}");
        assert!(s["ociVersion"].is_string(), "{kind}: {s}");
    }
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
    ] {
        let seen = hook_state(&log, kind)["pid"].clone();
        // runtime.md, "State": hooks in the runtime's namespaces see the pid as the runtime sees it, hooks
        // in the container's namespaces as the container does (1: the config has a pid namespace).
        let inside = matches!(kind, "createContainer" | "startContainer");
        if inside {
            assert_eq!(seen, 1, "{kind}");
        } else {
            assert_eq!(seen, pid, "{kind}");
        }
    }
    assert_eq!(hook_state(&log, "poststop")["status"], "stopped");
}

#[test]
fn host_hooks_run_in_host_namespaces_and_container_hooks_inside() {
    let Some(ctx) = Ctx::new() else { return };
    let log = ctx.tempdir();
    let log_s = log.display().to_string();
    let mut b = ctx.bundle();
    std::fs::create_dir_all(b.rootfs().join("hooklog")).ok();
    b.mount(
        json!({"destination": "/hooklog", "type": "bind", "source": log_s, "options": ["bind"]}),
    );
    let ns_hook = |dir: &str, kind: &str| {
        json!({"path": "/bin/sh", "env": [HOST_PATH],
               "args": ["sh", "-c", format!("readlink /proc/self/ns/uts > {dir}/{kind}.ns")]})
    };
    b.hook("createRuntime", ns_hook(&log_s, "createRuntime"));
    b.hook("createContainer", ns_hook(&log_s, "createContainer"));
    b.hook("startContainer", ns_hook("/hooklog", "startContainer"));
    b.args(&["true"]);
    let id = ctx.id("hookns");
    ctx.rt.create(&id, &b, &[]).ok();
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    let container_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    ctx.rt.start(&id).ok();
    ctx.rt.wait_status(&id, "stopped");
    let read = |k: &str| {
        std::fs::read_to_string(log.join(format!("{k}.ns")))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let host_uts = std::fs::read_link("/proc/self/ns/uts")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    assert_eq!(read("createRuntime"), host_uts);
    assert_eq!(read("createContainer"), container_uts);
    assert_eq!(read("startContainer"), container_uts);
}

#[test]
fn failing_poststop_is_not_fatal() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.hook(
        "poststop",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}),
    );
    b.args(&["true"]);
    let id = ctx.id("poststopfail");
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.start(&id).ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn failing_create_runtime_hook_fails_create_cleanly() {
    let Some(ctx) = Ctx::new() else { return };
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut b = ctx.bundle();
        b.hook(
            kind,
            json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]}),
        );
        b.args(&["sleep", "1000"]);
        let id = ctx.id("hookfail");
        ctx.rt.create(&id, &b, &[]).fails();
        ctx.assert_no_leaks(&id);
    }
}

/// runtime.md: poststart hooks are "called after the user-specified process is executed". `start` waits for the
/// exec fifo's hang-up, which the init's close-on-exec end gives only once execve is done (the kernel releases
/// the closed file on the way back to user space). A startContainer hook that sleeps keeps the init from its
/// exec for a while after it has told `start` to go on: a `start` that ran poststart then would let the hook
/// see carte's own init. Each poststart hook reads the command line at once, with busybox's static shell (no
/// dynamic loader to wait for), so a runtime that ran it inside execve would show an empty one. runc 1.1.5
/// runs poststart inside `create`, where the process is still `runc init`: there it must still be a whole
/// process.
#[test]
fn poststart_sees_the_process_after_exec() {
    let Some(ctx) = Ctx::new() else { return };
    let log = ctx.tempdir();
    let mut b = ctx.bundle();
    let script = format!(
        r#"read -r s; p=${{s#*'"pid":'}}; p=${{p%%,*}}; cat /proc/$p/cmdline > {}/$p"#,
        log.display()
    );
    b.hook(
        "poststart",
        json!({"path": "/bin/busybox", "args": ["sh", "-c", script]}),
    );
    b.hook(
        "startContainer",
        json!({"path": "/bin/sleep", "args": ["sleep", "0.05"]}),
    );
    b.args(&["sleep", "1000"]);
    for round in 0..20 {
        let id = ctx.id(&format!("poststartexec{round}"));
        ctx.rt.create(&id, &b, &[]).ok();
        let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
        ctx.rt.start(&id).ok();
        let seen = std::fs::read(log.join(pid.to_string()))
            .unwrap_or_else(|e| panic!("round {round}: no poststart record for pid {pid}: {e}"));
        let argv: Vec<String> = seen
            .split(|c| *c == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert!(
            !argv.is_empty(),
            "round {round}: at poststart the process had no command line (inside execve)"
        );
        if is_carte() {
            assert_eq!(argv, ["sleep", "1000"], "round {round}");
        }
        ctx.rt.delete_force(&id).ok();
    }
}

/// runtime.md, poststart: "If a hook fails, the runtime MUST log a warning, but the remaining hooks and
/// lifecycle continue as if the hook had succeeded." Carte follows the spec (as crun does): `start` succeeds,
/// the next poststart hook runs, the container keeps running. runc 1.1.5 gets this wrong: it runs poststart
/// inside `create`, fails the create on the first failing hook, runs none after it, and removes the container.
#[test]
fn failing_poststart_is_a_warning_and_the_rest_goes_on() {
    let Some(ctx) = Ctx::new() else { return };
    let log = ctx.tempdir();
    let log_s = log.display().to_string();
    let mut b = ctx.bundle();
    b.hook(
        "poststart",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 7"]}),
    );
    b.hook("poststart", recorder("poststart", &log_s));
    b.args(&["sleep", "1000"]);
    let id = ctx.id("poststartfail");
    if is_carte() {
        ctx.rt.create(&id, &b, &[]).ok();
        let out = ctx.rt.start(&id).ok();
        assert!(out.stderr.contains("poststart"), "no warning: {out}");
        assert_eq!(order(&log), ["poststart"]);
        assert_eq!(ctx.rt.status(&id), "running");
        ctx.rt.delete_force(&id).ok();
    } else {
        ctx.rt.create(&id, &b, &[]).fails();
        assert!(
            order(&log).is_empty(),
            "runc ran the hook after the failing one"
        );
        ctx.assert_no_leaks(&id);
    }
}

/// A hook whose config has no `env` gets what runc gives it (Go's exec.Cmd with a nil Env): the runtime's own
/// environment for the hooks the runtime runs, the container process's (process.env, and HOME before
/// startContainer) for those run in the container. `"env": []` is an empty environment.
#[test]
fn hooks_without_env_inherit_as_in_runc() {
    let Some(ctx) = Ctx::new() else { return };
    let log = ctx.tempdir();
    let log_s = log.display().to_string();
    let mut b = ctx.bundle();
    std::fs::create_dir_all(b.rootfs().join("hooklog")).ok();
    b.mount(
        json!({"destination": "/hooklog", "type": "bind", "source": log_s, "options": ["bind"]}),
    );
    b.env("CARTE_TEST_PROCESS_ENV=yes");
    let dump = |dir: &str, name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("env > {dir}/{name}.env")]});
    b.hook("createRuntime", dump(&log_s, "createRuntime"));
    let mut empty = dump(&log_s, "empty");
    empty["env"] = json!([]);
    b.hook("prestart", empty);
    b.hook("startContainer", dump("/hooklog", "startContainer"));
    b.args(&["true"]);
    let id = ctx.id("hookenv");
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.start(&id).ok();
    ctx.rt.wait_status(&id, "stopped");
    let env = |name: &str| -> Vec<String> {
        std::fs::read_to_string(log.join(format!("{name}.env")))
            .unwrap_or_else(|e| panic!("{name} hook wrote no env: {e}"))
            .lines()
            .map(str::to_string)
            .collect()
    };
    let our_path = format!("PATH={}", std::env::var("PATH").unwrap_or_default());
    let runtime_side = env("createRuntime");
    assert!(runtime_side.contains(&our_path), "{runtime_side:?}");
    assert!(!runtime_side
        .iter()
        .any(|l| l.starts_with("CARTE_TEST_PROCESS_ENV=")));
    // dash adds PWD by itself; nothing else.
    let empty = env("empty");
    assert!(empty.iter().all(|l| l.starts_with("PWD=")), "{empty:?}");
    let inside = env("startContainer");
    for want in ["CARTE_TEST_PROCESS_ENV=yes", "TERM=xterm", "HOME=/root"] {
        assert!(
            inside.iter().any(|l| l == want),
            "{want} missing: {inside:?}"
        );
    }
    ctx.rt.delete(&id).ok();
}
