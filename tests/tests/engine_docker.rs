//! The runtime as a drop-in under Docker (dockerd 20.10 with `--add-runtime`, on its own containerd, cgroupfs,
//! overlay2, in a network namespace of its own), each scenario once with runc (`<scenario>::runc`, the reference)
//! and once with carte (`<scenario>::carte`). Each test ends with the per-container leak audit (processes — the
//! shim included —, cgroups, the runtime's state under dockerd's runtime root, the container's overlay and netns
//! mounts); the last one to finish stops dockerd and containerd and checks that nothing of theirs is left.

use carte_tests::engines::docker::Dk;
use carte_tests::engines::{freezer_state, host_memory_limit, run, run_in_pty, Rt};
use carte_tests::per_runtime;
use std::process::Command;

per_runtime!(
    audit_sees_live_container,
    run_rm,
    detached_exec_logs,
    memory,
    stop_term_trapped,
    pause_unpause,
    publish_port,
    rm_leaves_nothing,
);

/// The leak audit is able to fail: a running container shows up in every category it checks.
fn audit_sees_live_container(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("auditlive");
    let pid = t.run_detached(&name, &[], &["sleep", "1000"]);
    let cid = t.cid(&name);
    assert_eq!(cid.len(), 64, "cidfile of {name}");
    // The state is the runtime's own: its `state` verb reads it and agrees with docker on the pid.
    let mut cmd = Command::new(rt.bin());
    cmd.arg("--root")
        .arg(t.runtime_root())
        .args(["state", &cid]);
    let out = run(cmd).ok();
    let state: serde_json::Value = match serde_json::from_str(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("state is not JSON ({e}): {out}"),
    };
    assert_eq!(state["status"].as_str(), Some("running"), "{state}");
    assert_eq!(state["pid"].as_i64(), Some(pid), "{state}");
    let leaks = t.leaks_now(&name);
    for what in ["process", "cgroup", "runtime state", "mount"] {
        assert!(
            leaks.iter().any(|l| l.starts_with(what)),
            "no {what} in {leaks:?}"
        );
    }
}

/// `docker run --rm`: stdout, stderr and the exit code come back through the shim and dockerd; the container is
/// gone afterwards and left nothing.
fn run_rm(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("runrm");
    let out = t.run(
        &name,
        &["--rm"],
        &["sh", "-c", "echo hi; echo err-$((6*7)) >&2; exit 3"],
    );
    assert_eq!(out.code(), 3, "{out}");
    assert_eq!(out.stdout.trim(), "hi", "{out}");
    assert!(out.stderr.contains("err-42"), "{out}");
    let leaks = t.audit(&name);
    assert!(leaks.is_empty(), "{leaks:?}");
}

/// `docker run -d`, then `docker exec` (plain; with user, workdir and env; with `-t`, the runtime's `exec --tty
/// --console-socket`) and `docker logs` of what the init wrote.
fn detached_exec_logs(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("exec");
    let script = "echo started-$((40+2)); echo to-stderr >&2; exec sleep 1000";
    t.run_detached(&name, &[], &["sh", "-c", script]);
    let out = t.docker(&["exec", &name, "sh", "-c", "echo ex-$((2+3)); exit 5"]);
    assert_eq!((out.code(), out.stdout.trim()), (5, "ex-5"), "{out}");
    let script = "echo $(id -u) $(pwd) $CARTE_X";
    let out = t.docker(&[
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
    let script = "test -t 0 && test -t 1 && echo TTY-OK; exit 6";
    let out = run_in_pty(t.command(&["exec", "-it", &name, "sh", "-c", script]));
    assert_eq!(out.code(), 6, "{out}");
    assert!(out.stdout.contains("TTY-OK"), "{out}");
    let mut last = None;
    let logged = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        let out = t.docker(&["logs", &name]).ok();
        let done = out.stdout.contains("started-42") && out.stderr.contains("to-stderr");
        last = Some(out);
        done
    });
    assert!(logged, "docker logs: {last:?}");
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "running");
}

/// `docker run --memory 64m`: the limit is in the container's memory cgroup on the host and seen inside.
fn memory(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("mem");
    let pid = t.run_detached(&name, &["--memory", "64m"], &["sleep", "1000"]);
    assert_eq!(host_memory_limit(pid), "67108864");
    let file = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
    let out = t.docker(&["exec", &name, "cat", file]).ok();
    assert_eq!(out.stdout.trim(), "67108864", "{out}");
}

/// `docker stop` sends SIGTERM (runtime `kill ID 15` through the shim); the trap's exit code is what `docker wait`
/// and `docker inspect` report, and what the trap wrote is in the logs.
fn stop_term_trapped(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("stop");
    let script = "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done";
    t.run_detached(&name, &[], &["sh", "-c", script]);
    let ready = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        t.docker(&["logs", &name]).ok().stdout.contains("ready")
    });
    assert!(ready, "{name} never said ready");
    t.docker(&["stop", "-t", "30", &name]).ok();
    let out = t.docker(&["wait", &name]).ok();
    assert_eq!(out.stdout.trim(), "42", "{out}");
    assert_eq!(
        t.inspect(&name, "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 42"
    );
    let out = t.docker(&["logs", &name]).ok();
    assert!(out.stdout.contains("got-term"), "{out}");
}

/// `docker pause`/`unpause`: the status and the host's freezer state follow, and the container works after.
fn pause_unpause(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("pause");
    let pid = t.run_detached(&name, &[], &["sleep", "1000"]);
    t.docker(&["pause", &name]).ok();
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "paused");
    assert_eq!(freezer_state(pid), "FROZEN");
    t.docker(&["unpause", &name]).ok();
    assert_eq!(t.inspect(&name, "{{.State.Status}}"), "running");
    assert_eq!(freezer_state(pid), "THAWED");
    let out = t.docker(&["exec", &name, "echo", "alive"]).ok();
    assert_eq!(out.stdout.trim(), "alive");
}

/// `docker run -p 127.0.0.1::80` of busybox httpd: a client on 127.0.0.1 of dockerd's network namespace reaches
/// it on the published port (docker-proxy, DNAT, the container's veth set up by the runtime's prestart hook).
fn publish_port(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("port");
    let marker = format!("served-by-{}", rt.name());
    let script =
        format!("mkdir -p /www && echo {marker} > /www/index.html && exec httpd -f -p 80 -h /www");
    t.run_detached(&name, &["-p", "127.0.0.1::80"], &["sh", "-c", &script]);
    let out = t.docker(&["port", &name, "80/tcp"]).ok();
    let port: u16 = out
        .stdout
        .trim()
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("docker port: {out}"));
    // docker-proxy accepts at once and closes when the server is not listening yet: retry until it answers.
    let mut last = Err(String::new());
    let served = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        last = t.dk.http_get(port);
        last.as_ref().is_ok_and(|r| r.contains(&marker))
    });
    assert!(served, "GET 127.0.0.1:{port}: {last:?}");
    assert!(
        last.as_ref().is_ok_and(|r| r.starts_with("HTTP/1.")),
        "{last:?}"
    );
}

/// `docker run -d --rm` of a container that exits by itself: docker removes it, and everything the audit saw while
/// it ran (processes, cgroups, runtime state, overlay and netns mounts) is gone.
fn rm_leaves_nothing(rt: Rt) {
    let Some(t) = Dk::new(rt) else { return };
    let name = t.name("autorm");
    let script = "while [ ! -e /tmp/go ]; do sleep 0.1; done; echo done";
    t.run_detached(&name, &["--rm"], &["sh", "-c", script]);
    let live = t.leaks_now(&name);
    assert!(
        live.iter().any(|l| l.starts_with("mount")),
        "no mount seen while running: {live:?}"
    );
    t.docker(&["exec", &name, "touch", "/tmp/go"]).ok();
    let gone = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || !t.exists(&name));
    assert!(gone, "{name} was not removed after it exited");
    let leaks = t.audit(&name);
    assert!(leaks.is_empty(), "{leaks:?}");
}
