//! The runtime as a drop-in under a real containerd (runc shim v2 with `--runc-binary`), each scenario once with
//! runc (`<scenario>::runc`, the reference) and once with carte (`<scenario>::carte`). Each test ends with the
//! per-container leak audit (processes, cgroups, mounts, the runtime's state under containerd's runc root); the
//! last test to finish stops containerd and checks that no shim is left.

use carte_tests::engines::containerd::Ctd;
use carte_tests::engines::{
    cgroup_members, container_leaks_now, freezer_state, host_memory_limit, run_in_pty, Needle, Rt,
};
use carte_tests::per_runtime;

per_runtime!(
    audit_sees_live_container,
    run_rm,
    exec,
    exec_detach_ps,
    pause_resume,
    metrics,
    kill_all,
    kill_term_trapped,
    memory_limit,
    tty_run,
);

/// The leak audit is able to fail: a running container shows up in every category it checks.
fn audit_sees_live_container(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("auditlive");
    t.run_detached(&id, &[], &["sleep", "1000"]);
    let leaks = container_leaks_now(Needle::Token(&id), &t.state_dir(&id));
    for what in ["process", "cgroup", "runtime state", "mount"] {
        assert!(
            leaks.iter().any(|l| l.starts_with(what)),
            "no {what} in {leaks:?}"
        );
    }
}

/// `ctr run --rm`: the container's stdout and stderr reach ctr, its exit code is ctr's, nothing is left.
fn run_rm(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("runrm");
    let out = t
        .run(
            &id,
            &["--rm"],
            &["sh", "-c", "echo out-$((6*7)); echo err >&2"],
        )
        .ok();
    assert_eq!(out.stdout.trim(), "out-42", "{out}");
    assert!(out.stderr.contains("err"), "{out}");
    let leaks = t.remove_and_audit(&id);
    assert!(leaks.is_empty(), "{leaks:?}");
    let id = t.id("runrm3");
    let out = t.run(&id, &["--rm"], &["sh", "-c", "exit 3"]);
    assert_eq!(out.code(), 3, "{out}");
    let leaks = t.remove_and_audit(&id);
    assert!(leaks.is_empty(), "{leaks:?}");
}

/// `ctr task exec` into a detached container, plain, as another user in another directory, and with `--tty`:
/// output and exit codes come back.
fn exec(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("exec");
    t.run_detached(&id, &[], &["sleep", "1000"]);
    let out = t.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo ex-$((2+3)); exit 5",
    ]);
    assert_eq!((out.code(), out.stdout.trim()), (5, "ex-5"), "{out}");
    // The process.json fields the shim fills from `--user` and `--cwd`.
    let out = t.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e3",
        "--user",
        "1000",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $(id -u) $(pwd)",
    ]);
    assert_eq!(out.ok().stdout.trim(), "1000 /tmp");
    let cmd = t.command(&[
        "task",
        "exec",
        "--tty",
        "--exec-id",
        "e2",
        &id,
        "sh",
        "-c",
        // The pause before exit: the shim closes the pty as soon as the process exits, and on a
        // loaded host ctr's copy of its output could lose that race (runc's and carte's alike).
        "test -t 0 && test -t 1 && echo TTY-OK; sleep 1; exit 6",
    ]);
    let out = run_in_pty(cmd);
    assert_eq!(out.code(), 6, "{out}");
    assert!(out.stdout.contains("TTY-OK"), "{out}");
    // The container is still fine after both execs.
    assert_eq!(t.task(&id).map(|(_, s)| s).as_deref(), Some("RUNNING"));
}

/// `ctr task exec --detach`, then `ctr task ps` (the runtime's `ps --format json`) lists the exec'd process.
fn exec_detach_ps(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("execps");
    let init = t.run_detached(&id, &[], &["sleep", "1000"]);
    t.ctr(&[
        "task",
        "exec",
        "--detach",
        "--exec-id",
        "bg1",
        &id,
        "sleep",
        "999",
    ])
    .ok();
    let mut last = String::new();
    let seen = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        last = t.ctr(&["task", "ps", &id]).ok().stdout;
        last.lines().any(|l| l.contains("bg1"))
    });
    assert!(seen, "exec bg1 not in task ps:\n{last}");
    let pids: Vec<i64> = last
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(pids.contains(&init), "init {init} not in task ps:\n{last}");
    let exec_pid = last
        .lines()
        .find(|l| l.contains("bg1"))
        .and_then(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{exec_pid}/cmdline")).unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&cmdline),
        "sleep\0999\0",
        "pid {exec_pid}"
    );
}

/// `ctr task pause`/`resume`: the task status and the host's freezer state follow, and the container works after.
fn pause_resume(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("pause");
    let pid = t.run_detached(&id, &[], &["sleep", "1000"]);
    t.ctr(&["task", "pause", &id]).ok();
    t.wait_status(&id, "PAUSED");
    assert_eq!(freezer_state(pid), "FROZEN");
    t.ctr(&["task", "resume", &id]).ok();
    t.wait_status(&id, "RUNNING");
    assert_eq!(freezer_state(pid), "THAWED");
    let out = t.ctr(&["task", "exec", "--exec-id", "alive", &id, "echo", "alive"]);
    assert_eq!(out.ok().stdout.trim(), "alive");
}

/// `ctr task metrics --format json`: the shim reads the container's cgroup, which the runtime must have put
/// where containerd expects it.
fn metrics(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("metrics");
    t.run_detached(&id, &[], &["sh", "-c", "sleep 1000 & sleep 1000"]);
    let out = t.ctr(&["task", "metrics", "--format", "json", &id]).ok();
    let m: serde_json::Value = match serde_json::from_str(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("metrics are not JSON ({e}): {out}"),
    };
    // Two sleeps, and the shell unless it exec'd the last one.
    assert!(m["pids"]["current"].as_u64().unwrap_or(0) >= 2, "{m}");
    assert!(m["memory"].is_object(), "{m}");
}

/// `ctr task kill --all -s SIGKILL`: every process of the container dies, the exec'd one included.
fn kill_all(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("killall");
    t.run_detached(&id, &[], &["sleep", "1000"]);
    t.ctr(&[
        "task",
        "exec",
        "--detach",
        "--exec-id",
        "extra",
        &id,
        "sleep",
        "998",
    ])
    .ok();
    t.ctr(&["task", "kill", "--all", "-s", "SIGKILL", &id]).ok();
    t.wait_status(&id, "STOPPED");
    let members = || cgroup_members(Needle::Token(&id));
    let gone = carte_tests::poll_until(carte_tests::AUDIT_GRACE, || members().is_empty());
    assert!(gone, "{:?}", members());
}

/// `ctr task kill` (SIGTERM) of a container that traps it: the foreground `ctr run` exits with the code the trap
/// chose.
fn kill_term_trapped(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("term");
    let script = "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done";
    let mut fg = t.run_bg(&id, &["--rm"], &["sh", "-c", script]);
    let up = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        t.task(&id).is_some_and(|(_, s)| s == "RUNNING") || !fg.running()
    });
    assert!(up && fg.running(), "task {id} did not start: {}", fg.wait());
    t.ctr(&["task", "kill", "-s", "SIGTERM", &id]).ok();
    let out = fg.wait();
    assert_eq!(out.code(), 42, "{out}");
    assert!(out.stdout.contains("got-term"), "{out}");
}

/// `ctr run --memory-limit`: the limit lands in the container's memory cgroup on the host.
fn memory_limit(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("mem");
    let pid = t.run_detached(&id, &["--memory-limit", "67108864"], &["sleep", "1000"]);
    assert_eq!(host_memory_limit(pid), "67108864");
}

/// `ctr run -t`: the container gets a terminal (through the runtime's console socket) and its exit code is ctr's.
fn tty_run(rt: Rt) {
    let Some(t) = Ctd::new(rt) else { return };
    let id = t.id("tty");
    let args = t.run_args(
        &id,
        &["--rm", "-t"],
        &[
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo TTY-OK; tty; exit 7",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_in_pty(t.command(&args));
    assert_eq!(out.code(), 7, "{out}");
    assert!(out.stdout.contains("TTY-OK"), "{out}");
    assert!(out.stdout.contains("/dev/"), "{out}");
}
