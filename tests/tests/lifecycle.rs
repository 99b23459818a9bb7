//! Core lifecycle verbs: create, start, state, kill, delete, run, list — and the transitions between them.

use carte_tests::*;

/// A bundle whose process lives until killed (`sleep` as pid 1 ignores TERM, so tests kill with KILL).
fn sleeper(ctx: &Ctx) -> Bundle {
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b
}

#[test]
fn state_moves_created_running_stopped_then_gone() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("life");
    let b = sleeper(&ctx);
    ctx.rt.create(&id, &b, &[]).ok();
    assert_eq!(ctx.rt.status(&id), "created");
    ctx.rt.start(&id).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.kill(&id, "KILL").ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    let out = ctx.rt.cmd(&["state", &id]).fails();
    if is_carte() {
        assert!(out.stderr.contains("does not exist"), "{out}");
    }
    ctx.assert_no_leaks(&id);
}

#[test]
fn state_reports_the_oci_fields() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("fields");
    let mut b = sleeper(&ctx);
    b.set("/annotations", json!({"org.carte.test": "yes"}));
    ctx.rt.create(&id, &b, &[]).ok();
    let s = ctx.rt.state(&id);
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["status"], "created");
    assert!(
        s["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{s}"
    );
    let pid = s["pid"].as_i64().unwrap_or(0);
    assert!(pid > 1, "{s}");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(s["bundle"], b.path_str());
    assert_eq!(s["rootfs"], b.rootfs().display().to_string());
    let created = s["created"].as_str().unwrap_or_default();
    assert!(
        created.len() >= 20 && created.as_bytes()[10] == b'T',
        "created is not RFC 3339: {s}"
    );
    assert!(s.get("owner").is_some(), "{s}");
    assert_eq!(s["annotations"]["org.carte.test"], "yes");
}

#[test]
fn pid_file_holds_the_init_host_pid() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("pidfile");
    let b = sleeper(&ctx);
    let pid_file = b.path().join("init.pid");
    ctx.rt
        .create(&id, &b, &["--pid-file", &pid_file.display().to_string()])
        .ok();
    let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let pid: i64 = text.trim().parse().unwrap_or(-1);
    assert_eq!(json!(pid), ctx.rt.state(&id)["pid"]);
    // The pid is a host pid: the process exists here, in a pid namespace other than ours.
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    assert!(ns(&pid.to_string()).is_some());
    assert_ne!(ns(&pid.to_string()), ns("self"));
}

#[test]
fn run_detached_then_kill_and_delete() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("detach");
    let b = sleeper(&ctx);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.kill(&id, "KILL").ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn foreground_run_returns_the_exit_status() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("exit7");
    let mut b = ctx.bundle();
    b.sh("echo out; echo err >&2; exit 7");
    let out = ctx.rt.run(&id, &b, &[]);
    assert_eq!(out.code(), 7, "{out}");
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.contains("err"), "{out}");
    // Without --keep a foreground run removes the container.
    ctx.rt.cmd(&["state", &id]).fails();
    ctx.assert_no_leaks(&id);
}

#[test]
fn foreground_run_killed_by_signal_exits_128_plus_n() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sig");
    let mut b = ctx.bundle();
    // Outside a pid namespace the shell is not an init, so it can SIGKILL itself.
    b.remove_namespace("pid");
    b.sh("kill -9 $$");
    let out = ctx.rt.run(&id, &b, &[]);
    assert_eq!(out.code(), 128 + 9, "{out}");
}

/// A foreground `run` of the sleeper, once its container runs (the bundle is returned: it must
/// outlive the container).
fn foreground_sleeper(ctx: &Ctx, id: &str) -> (Bundle, runtime::Running) {
    let b = sleeper(ctx);
    b.write().ok();
    let running = match ctx
        .rt
        .spawn(&["run", id, "--bundle", b.path_str()], Default::default())
    {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    };
    let up = poll_until(runtime::TIMEOUT, || {
        ctx.rt.cmd(&["state", id]).stdout.contains("\"running\"")
    });
    assert!(up, "container never ran");
    (b, running)
}

#[test]
fn foreground_run_killed_from_outside_exits_137() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("extkill");
    let (_bundle, running) = foreground_sleeper(&ctx, &id);
    ctx.rt.kill(&id, "KILL").ok();
    let out = running.wait();
    assert_eq!(out.code(), 137, "{out}");
}

/// A foreground `run` killed itself (SIGKILL: no handler, no cleanup) leaves its container running,
/// as runc's does: the init outlives the runtime once it is started, and `kill` + `delete` still
/// find and remove everything. (carte's `run` no longer waits for the init to confirm it dropped
/// its parent-death signal; the init drops it before it can be started.)
#[test]
fn a_killed_foreground_run_leaves_its_container_running() {
    use std::os::unix::process::ExitStatusExt;
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("runkilled");
    let (_bundle, running) = foreground_sleeper(&ctx, &id);
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or_default();
    let run_pid = i32::try_from(running.pid()).unwrap_or_default();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .ok();
    let out = running.wait();
    assert_eq!(out.status.signal(), Some(9), "{out}");
    // Long enough for a parent-death signal to have arrived, had there been one.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(ctx.rt.status(&id), "running");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('S')),
        "init {pid} is not the sleeping container process: {stat}"
    );
    ctx.rt.kill(&id, "KILL").ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("keep");
    let mut b = ctx.bundle();
    b.sh("exit 3");
    let out = ctx.rt.run(&id, &b, &["--keep"]);
    assert_eq!(out.code(), 3, "{out}");
    assert_eq!(ctx.rt.status(&id), "stopped");
    ctx.rt.delete(&id).ok();
}

#[test]
fn state_is_stopped_when_init_exited() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("exited");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.start(&id).ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
}

#[test]
fn start_twice_fails() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("start2");
    let b = sleeper(&ctx);
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.start(&id).ok();
    ctx.rt.start(&id).fails();
    assert_eq!(ctx.rt.status(&id), "running");
}

#[test]
fn kill_accepts_name_prefixed_name_and_number() {
    let Some(ctx) = Ctx::new() else { return };
    for sig in ["KILL", "SIGKILL", "9"] {
        let id = ctx.id("killform");
        let b = sleeper(&ctx);
        ctx.rt.run(&id, &b, &["-d"]).ok();
        ctx.rt.kill(&id, sig).ok();
        ctx.rt.wait_status(&id, "stopped");
        ctx.rt.delete(&id).ok();
    }
}

#[test]
fn kill_defaults_to_term() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("term");
    let flag = ctx.tempdir();
    let mut b = ctx.bundle();
    std::fs::create_dir_all(b.rootfs().join("flag")).ok();
    b.mount(json!({"destination": "/flag", "type": "bind", "source": flag, "options": ["bind"]}));
    // An init only receives signals it handles: install a TERM handler, say so through the bind mount (a TERM
    // sent before the trap exists would be dropped), and record the signal on the way out.
    b.sh(
        "trap 'touch /flag/got-term; exit 0' TERM; touch /flag/ready; while :; do sleep 0.05; done",
    );
    ctx.rt.run(&id, &b, &["-d"]).ok();
    assert!(
        poll_until(runtime::TIMEOUT, || flag.join("ready").exists()),
        "trap never installed"
    );
    ctx.rt.cmd(&["kill", &id]).ok();
    ctx.rt.wait_status(&id, "stopped");
    assert!(
        flag.join("got-term").exists(),
        "stopped without handling TERM"
    );
}

#[test]
fn kill_all_signals_every_process() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("killall");
    let mut b = ctx.bundle();
    b.sh("sleep 1000 & sleep 1000 & wait");
    let cg = format!("/carte-test/{id}");
    b.cgroups_path(&cg);
    ctx.rt.run(&id, &b, &["-d"]).ok();
    let procs = || {
        cgroups::read_limit("pids", &cg, "cgroup.procs", "cgroup.procs")
            .map(|(_, s)| s.lines().count())
    };
    assert!(
        poll_until(runtime::TIMEOUT, || procs() == Some(3)),
        "expected 3 processes, got {:?}",
        procs()
    );
    ctx.rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    ctx.rt.wait_status(&id, "stopped");
    assert!(
        poll_until(runtime::TIMEOUT, || procs().unwrap_or(0) == 0),
        "processes left: {:?}",
        procs()
    );
}

#[test]
fn delete_running_needs_force() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("delrun");
    let b = sleeper(&ctx);
    ctx.rt.run(&id, &b, &["-d"]).ok();
    ctx.rt.delete(&id).fails();
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn delete_force_removes_a_created_container() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("delcreated");
    let b = sleeper(&ctx);
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn list_json_table_and_quiet() {
    let Some(ctx) = Ctx::new() else { return };
    let a = ctx.id("lista");
    let b_id = ctx.id("listb");
    let ba = sleeper(&ctx);
    let bb = sleeper(&ctx);
    ctx.rt.create(&a, &ba, &[]).ok();
    ctx.rt.run(&b_id, &bb, &["-d"]).ok();

    let entries = ctx.rt.list_json();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let find = |id: &str| {
        entries
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(find(&a)["status"], "created");
    assert_eq!(find(&b_id)["status"], "running");
    assert_eq!(find(&a)["bundle"], ba.path_str());
    assert!(find(&b_id)["pid"].as_i64().unwrap_or(0) > 1);

    let table = ctx.rt.cmd(&["list"]).ok().stdout;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(
        rows.iter()
            .any(|r| r.first() == Some(&a.as_str()) && r.get(2) == Some(&"created")),
        "{table}"
    );
    assert!(
        rows.iter()
            .any(|r| r.first() == Some(&b_id.as_str()) && r.get(2) == Some(&"running")),
        "{table}"
    );

    let quiet = ctx.rt.cmd(&["list", "-q"]).ok().stdout;
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort_unstable();
    let mut want = vec![a.as_str(), b_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
}

#[test]
fn run_detached_with_pid_file_and_console_socket() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("runtty");
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    b.args(&["sleep", "1000"]);
    let dir = ctx.tempdir();
    let sock = match console::ConsoleSocket::listen(&dir, runtime::TIMEOUT) {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
    let pid_file = dir.join("pid").display().to_string();
    let sock_path = sock.path_str();
    ctx.rt
        .run(
            &id,
            &b,
            &[
                "-d",
                "--pid-file",
                &pid_file,
                "--console-socket",
                &sock_path,
            ],
        )
        .ok();
    // Held to the end: closing the pty master hangs up the container's session (SIGHUP kills
    // `sleep`), and a slow host (the v2 guest) then sees runc report the container stopped.
    let master = sock.master();
    assert!(master.is_ok());
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
    assert_eq!(
        json!(pid.trim().parse::<i64>().unwrap_or(-1)),
        ctx.rt.state(&id)["pid"]
    );
    assert_eq!(ctx.rt.status(&id), "running");
    drop(master);
}

#[test]
fn kill_of_a_stopped_container_fails() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("killstopped");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.start(&id).ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.kill(&id, "KILL").fails();
    ctx.rt.delete(&id).ok();
}
