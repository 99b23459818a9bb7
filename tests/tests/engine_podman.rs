//! The runtime as a drop-in under podman (through conmon, cgroupfs, file events, no network), each scenario once
//! with runc (`<scenario>::runc`, the reference) and once with carte (`<scenario>::carte`). Podman passes no
//! `--root`, so the audit looks for state in the runtime's default root. Each test ends with the per-container
//! leak audit; the last one to finish checks the world's mounts and cgroup parents.

use carte_tests::engines::podman::Pm;
use carte_tests::engines::{
    container_leaks_now, freezer_state, host_memory_limit, images, run_in_pty, Needle, Rt,
};
use carte_tests::per_runtime;

per_runtime!(
    audit_sees_live_container,
    info_version,
    load_and_run,
    run_rm,
    exec,
    top,
    pause_unpause,
    stats,
    stop_term_trapped,
    rm,
    memory,
    run_it,
    checkpoint_restore,
    checkpoint_restore_tty,
);

/// The names `podman load` printed (`Loaded image: NAME` or `Loaded image(s): A,B`).
fn loaded(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| k.starts_with("Loaded image"))
        })
        .flat_map(|(_, names)| names.split(',').map(|n| n.trim().to_string()))
        .collect()
}

/// The leak audit is able to fail: a running container shows up in every category it checks.
fn audit_sees_live_container(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("auditlive");
    t.run_detached(&name, &[], &["sleep", "1000"]);
    let cid = t.cid(&name);
    assert_eq!(cid.len(), 64, "cidfile of {name}");
    let leaks = container_leaks_now(Needle::Anywhere(&cid), &t.state_dir(&cid));
    for what in ["process", "cgroup", "runtime state", "mount"] {
        assert!(
            leaks.iter().any(|l| l.starts_with(what)),
            "no {what} in {leaks:?}"
        );
    }
}

/// `podman info` reports the runtime by what its `--version` prints (`<name> version <v>` first).
fn info_version(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let out = t
        .podman(&["info", "--format", "{{.Host.OCIRuntime.Version}}"])
        .ok();
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{} version ", rt.name())),
        "{out}"
    );
}

/// `podman load` of the docker-archive and the oci-archive, then a container from each loaded image.
fn load_and_run(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    for archive in ["busybox-docker.tar", "busybox-oci.tar"] {
        let path = images().join(archive).display().to_string();
        let out = t.podman(&["load", "-i", &path]).ok();
        let names = loaded(&out.stdout);
        assert!(!names.is_empty(), "{out}");
        let name = t.name("load");
        let out = t.run_image(&name, &["--rm"], &names[0], &["echo", "from", archive]);
        assert_eq!(out.ok().stdout.trim(), format!("from {archive}"));
    }
}

/// `podman run --rm`: stdout, stderr and the exit code come back; the container is gone afterwards.
fn run_rm(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("runrm");
    let out = t
        .run(
            &name,
            &["--rm"],
            &["sh", "-c", "echo out-$((6*7)); echo err >&2"],
        )
        .ok();
    assert_eq!(out.stdout.trim(), "out-42", "{out}");
    assert!(out.stderr.contains("err"), "{out}");
    assert!(!t.podman(&["container", "exists", &name]).success());
    let leaks = t.remove_and_audit(&name);
    assert!(leaks.is_empty(), "{leaks:?}");
    let name = t.name("runrm3");
    let out = t.run(&name, &["--rm"], &["sh", "-c", "exit 3"]);
    assert_eq!(out.code(), 3, "{out}");
}

/// `podman exec` into a detached container: plain, with user/workdir/env, and with `-t` (conmon's `exec --tty
/// --console-socket`).
fn exec(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("exec");
    t.run_detached(&name, &[], &["sleep", "1000"]);
    let out = t.podman(&["exec", &name, "sh", "-c", "echo ex-$((2+3)); exit 5"]);
    assert_eq!((out.code(), out.stdout.trim()), (5, "ex-5"), "{out}");
    let script = "echo $(id -u) $(pwd) $CARTE_X";
    let out = t.podman(&[
        "exec",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "-e",
        "CARTE_X=y",
        &name,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.ok().stdout.trim(), "1000 /tmp y");
    let out = t.podman(&[
        "exec",
        "-t",
        &name,
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo TTY-OK; exit 6",
    ]);
    assert_eq!(out.code(), 6, "{out}");
    assert!(out.stdout.contains("TTY-OK"), "{out}");
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "running");
}

/// `podman top` lists the init and a process added with `podman exec -d`.
fn top(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("top");
    t.run_detached(&name, &[], &["sleep", "1000"]);
    t.podman(&["exec", "-d", &name, "sleep", "777"]).ok();
    let mut last = String::new();
    let seen = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        last = t.podman(&["top", &name, "args"]).ok().stdout;
        last.contains("sleep 1000") && last.contains("sleep 777")
    });
    assert!(seen, "podman top:\n{last}");
}

/// `podman pause`/`unpause`: the status and the host's freezer state follow, and the container works after.
fn pause_unpause(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("pause");
    let pid = t.run_detached(&name, &[], &["sleep", "1000"]);
    t.podman(&["pause", &name]).ok();
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "paused");
    assert_eq!(freezer_state(pid), "FROZEN");
    t.podman(&["unpause", &name]).ok();
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "running");
    assert_eq!(freezer_state(pid), "THAWED");
    assert_eq!(
        t.podman(&["exec", &name, "echo", "alive"])
            .ok()
            .stdout
            .trim(),
        "alive"
    );
}

/// `podman stats --no-stream`: podman reads the container's cgroup, which the runtime must have created.
fn stats(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("stats");
    t.run_detached(&name, &[], &["sh", "-c", "sleep 1000 & sleep 1000"]);
    let out = t
        .podman(&["stats", "--no-stream", "--format", "json", &name])
        .ok();
    let v: serde_json::Value = match serde_json::from_str(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("stats are not JSON ({e}): {out}"),
    };
    let entry = &v[0];
    assert_eq!(entry["name"].as_str(), Some(name.as_str()), "{v}");
    let pids: u64 = entry["pids"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(pids >= 2, "{v}");
    let mem = entry["mem_usage"].as_str().unwrap_or_default();
    assert!(!mem.is_empty() && !mem.starts_with("0B"), "{v}");
}

/// `podman stop` sends SIGTERM (runtime `kill ID 15`); the trap's exit code is what podman records.
fn stop_term_trapped(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("stop");
    let script = "trap 'exit 42' TERM; while true; do sleep 0.1; done";
    t.run_detached(&name, &[], &["sh", "-c", script]);
    t.podman(&["stop", "-t", "30", &name]).ok();
    t.wait_status(&name, "exited");
    assert_eq!(t.inspect(&name, "{{.State.ExitCode}}"), "42");
}

/// `podman rm` of an exited container (runtime `delete`) and `podman rm -f` of a running one (`kill`, then
/// `delete --force`): both leave nothing.
fn rm(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let done = t.name("rmdone");
    t.run(&done, &["-d"], &["true"]).ok();
    t.wait_status(&done, "exited");
    t.podman(&["rm", &done]).ok();
    let leaks = t.remove_and_audit(&done);
    assert!(leaks.is_empty(), "{leaks:?}");
    let live = t.name("rmlive");
    t.run_detached(&live, &[], &["sleep", "1000"]);
    t.podman(&["rm", "-f", "-t", "0", &live]).ok();
    let leaks = t.remove_and_audit(&live);
    assert!(leaks.is_empty(), "{leaks:?}");
}

/// `podman run --memory 64m`: the limit is in the container's cgroup on the host and seen inside.
fn memory(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("mem");
    let pid = t.run_detached(&name, &["--memory", "64m"], &["sleep", "1000"]);
    assert_eq!(host_memory_limit(pid), "67108864");
    let inside = t.name("meminside");
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
    let out = t
        .run(&inside, &["--rm", "--memory", "64m"], &["sh", "-c", script])
        .ok();
    assert_eq!(out.stdout.trim(), "67108864", "{out}");
}

/// `podman run -it`: a terminal inside (conmon's console socket), stdin held open, the exit code comes back.
fn run_it(rt: Rt) {
    let Some(t) = Pm::new(rt) else { return };
    let name = t.name("it");
    let args = t.run_args(
        &name,
        &["--rm", "-it"],
        carte_tests::engines::podman::IMAGE,
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
}

/// `podman container checkpoint` then `restore` (conmon runs the runtime's `restore --detach --pid-file …`): a
/// counter in the container's memory goes on from where it was. Skipped where criu cannot run on this kernel
/// (tests/criu.sh provides one that can).
fn checkpoint_restore(rt: Rt) {
    counts_on_after_restore(rt, &[]);
}

/// The same with a terminal (`podman run -t`): conmon gives `restore` a `--console-socket` and gets the new pty's
/// master, and what the container writes after the restore reaches `podman logs` through it.
fn checkpoint_restore_tty(rt: Rt) {
    counts_on_after_restore(rt, &["-t"]);
}

fn counts_on_after_restore(rt: Rt, opts: &[&str]) {
    let Some(t) = Pm::new(rt) else { return };
    if !std::process::Command::new("criu")
        .arg("check")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: `criu check` fails here");
        return;
    }
    let name = t.name("cr");
    let script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo n$i; sleep 0.1; done";
    t.run_detached(&name, opts, &["sh", "-c", script]);
    // None when the exec itself failed (right after a restore it can, with runc as with carte).
    let read = || -> Option<u64> {
        let out = t.podman(&["exec", &name, "cat", "/tmp/count"]);
        out.stdout.trim().parse().ok()
    };
    let count = || read().unwrap_or(0);
    // Far enough (2 s of counting) that a counter restarted from 1 could not pass it unnoticed.
    let ok = carte_tests::poll_until(std::time::Duration::from_secs(20), || count() >= 20);
    assert!(ok, "{name} does not count");
    let before = count();
    t.podman(&["container", "checkpoint", &name]).ok();
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "exited");
    t.podman(&["container", "restore", &name]).ok();
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "running");
    // The file lives in the container's writable layer; the number in memory continues from it, not from 1.
    let mut first = None;
    carte_tests::poll_until(std::time::Duration::from_secs(10), || {
        first = read();
        first.is_some()
    });
    let first = first.unwrap_or_else(|| panic!("{name}: exec fails after the restore"));
    assert!(
        first >= before,
        "{name} restarted its count: {first} after {before}"
    );
    let ok = carte_tests::poll_until(std::time::Duration::from_secs(20), || count() > first);
    assert!(ok, "{name} does not count after restore");
    // What it writes after the restore reaches conmon (through the new pty with -t).
    let later = format!("n{}", first + 2);
    let ok = carte_tests::poll_until(std::time::Duration::from_secs(20), || {
        t.podman(&["logs", &name])
            .stdout
            .lines()
            .any(|l| l.trim() == later)
    });
    assert!(ok, "{later} never reached podman logs after the restore");
}
