//! The verbs that act on a running container — exec, ps, pause/resume, update, events — and `features`, each
//! proved on the host side (namespace inodes, cgroup files, the freezer) as runc's exec/ps/pause/update/events
//! bats tests do.
//!
//! Every container gets an explicit cgroupsPath under `/carte-test`, so the host files checked here sit at the
//! same place for carte and for runc.

use carte_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The explicit cgroup of container `id`.
fn cgroup_of(id: &str) -> String {
    format!("/carte-test/{id}")
}

/// Runs a detached container whose init sleeps (after `edit` changed its bundle); returns its id, bundle and
/// init's host pid.
fn running(ctx: &Ctx, tag: &str, edit: impl FnOnce(&mut Bundle)) -> (String, Bundle, i64) {
    let id = ctx.id(tag);
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cgroup_of(&id));
    edit(&mut b);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let pid = init_pid(ctx, &id);
    (id, b, pid)
}

fn init_pid(ctx: &Ctx, id: &str) -> i64 {
    let s = ctx.rt.state(id);
    match s["pid"].as_i64() {
        Some(p) if p > 0 => p,
        _ => panic!("state of {id} has no pid: {s}"),
    }
}

/// A container whose process has already exited (state kept: it was created and started, not run).
fn stopped(ctx: &Ctx, tag: &str) -> String {
    let id = ctx.id(tag);
    let mut b = ctx.bundle();
    b.cgroups_path(&cgroup_of(&id));
    b.args(&["true"]);
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.start(&id).ok();
    ctx.rt.wait_status(&id, "stopped");
    id
}

/// Force-deletes `id` and proves nothing of it is left, including processes exec'd into it.
fn finish(ctx: &Ctx, id: &str, extra_pids: &[i64]) {
    ctx.rt.delete_force(id).ok();
    ctx.assert_no_leaks(id);
    for pid in extra_pids {
        let gone = poll_until(AUDIT_GRACE, || !alive(*pid));
        assert!(gone, "exec'd process {pid} of {id} survived delete --force");
    }
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state letter follows the parenthesised command name, which may itself contain spaces.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// The value of a `Key:` line of /proc/PID/status output, whitespace-normalised.
fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Whether capability number `bit` is set in a hex capability mask such as `CapEff`'s.
fn has_cap(mask: &str, bit: u32) -> bool {
    u64::from_str_radix(mask, 16).is_ok_and(|m| m & (1 << bit) != 0)
}

/// `CAP_SYS_ADMIN`'s bit: not in the default bundle's three capabilities.
const CAP_SYS_ADMIN: u32 = 21;

/// `readlink /proc/PID/ns/NAME`, e.g. `net:[4026532201]`.
fn ns(pid: i64, name: &str) -> String {
    match std::fs::read_link(format!("/proc/{pid}/ns/{name}")) {
        Ok(l) => l.display().to_string(),
        Err(e) => panic!("readlink /proc/{pid}/ns/{name}: {e}"),
    }
}

/// `/proc/PID/cgroup`: the process's cgroup in every hierarchy.
fn cgroups_of(pid: i64) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(t) => t,
        Err(e) => panic!("read /proc/{pid}/cgroup: {e}"),
    }
}

/// `exec -d --pid-file F <extra> ID <cmd>`; returns the host pid from F.
fn exec_detached(ctx: &Ctx, id: &str, extra: &[&str], cmd: &[&str]) -> i64 {
    let pid_file = ctx.tempdir().join("exec.pid");
    let pid_file = pid_file.display().to_string();
    let mut args = vec!["exec", "-d", "--pid-file", &pid_file];
    args.extend_from_slice(extra);
    args.push(id);
    args.extend_from_slice(cmd);
    ctx.rt.cmd(&args).ok();
    read_pid_file(Path::new(&pid_file))
}

fn read_pid_file(path: &Path) -> i64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match text.trim().parse() {
        Ok(p) if p > 0 => p,
        _ => panic!("pid file {} holds {text:?}", path.display()),
    }
}

/// A limit file of the container's cgroup (v1 name, v2 name), which must be readable.
#[track_caller]
fn limit(id: &str, ctrl: &str, v1: &str, v2: &str) -> String {
    match cgroups::read_limit(ctrl, &cgroup_of(id), v1, v2) {
        Some((_, v)) => v,
        None => panic!("cannot read {ctrl} file {v1}/{v2} of {}", cgroup_of(id)),
    }
}

fn memory_limit(id: &str) -> String {
    limit(id, "memory", "memory.limit_in_bytes", "memory.max")
}

fn pids_limit(id: &str) -> String {
    limit(id, "pids", "pids.max", "pids.max")
}

/// `update --resources - ID` with `json` on stdin.
fn update_from_stdin(ctx: &Ctx, id: &str, json: &str) -> Out {
    let mut file = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => panic!("create stdin file: {e}"),
    };
    use std::io::{Seek, Write};
    if let Err(e) = file.write_all(json.as_bytes()).and_then(|_| file.rewind()) {
        panic!("write stdin file: {e}");
    }
    let opts = runtime::CallOpts {
        stdin: Some(file),
        ..Default::default()
    };
    ctx.rt.cmd_opts(&["update", "--resources", "-", id], opts)
}

// ---------------------------------------------------------------------------------------------------- exec

#[test]
fn exec_returns_the_exit_status_and_stdout() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "exec-status", |_| {});
    let out = ctx.rt.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo from-exec; echo to-stderr >&2; exit 7",
    ]);
    assert_eq!(out.code(), 7, "{out}");
    assert_eq!(out.stdout, "from-exec\n", "{out}");
    assert!(out.stderr.contains("to-stderr"), "{out}");
    // A failing exec leaves the container running.
    assert_eq!(ctx.rt.status(&id), "running");
    assert_eq!(ctx.rt.cmd(&["exec", &id, "true"]).ok().stdout, "");
    finish(&ctx, &id, &[]);
}

/// An exec'd process gets the container's `process.oomScoreAdj`, not its caller's (runc's nsexec applies the
/// config's to every process it starts). Under containerd the caller is the shim, whose score is containerd's
/// + 1: an exec in a Kubernetes pod must get the pod's QoS score (found by the CRI tests, `container_config`).
#[test]
fn exec_gets_the_containers_oom_score_adj() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "exec-oom", |b| {
        b.set("/process/oomScoreAdj", json!(317));
    });
    let mine = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
    assert_ne!(mine.trim(), "317", "the test's own score must differ");
    let out = ctx
        .rt
        .cmd(&["exec", &id, "cat", "/proc/self/oom_score_adj"])
        .ok();
    assert_eq!(out.stdout, "317\n", "{out}");
    finish(&ctx, &id, &[]);
}

#[test]
fn exec_env_cwd_user_and_additional_gids() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "exec-user", |_| {});
    let out = ctx
        .rt
        .cmd(&[
            "exec",
            "--env",
            "CARTE_EXEC=a b",
            "--cwd",
            "/home/user",
            "--user",
            "1000:1000",
            "--additional-gids",
            "10",
            "--additional-gids",
            "20",
            &id,
            "sh",
            "-c",
            "echo \"$CARTE_EXEC\"; pwd; cat /proc/self/status",
        ])
        .ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("a b"), "{out}");
    assert_eq!(lines.next(), Some("/home/user"), "{out}");
    assert_ran_as_1000(&out);
    let mut groups: Vec<String> = status_field(&out.stdout, "Groups")
        .split(' ')
        .map(str::to_string)
        .collect();
    groups.sort();
    assert_eq!(groups, ["10", "20"], "{out}");
    // The container's own environment is the base the --env entries are added to.
    let path = ctx.rt.cmd(&["exec", &id, "sh", "-c", "echo $PATH"]).ok();
    assert_eq!(
        path.stdout,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    finish(&ctx, &id, &[]);
}

/// The real, effective, saved and filesystem ids in a printed /proc/self/status are all 1000.
fn assert_ran_as_1000(out: &Out) {
    for field in ["Uid", "Gid"] {
        assert_eq!(
            status_field(&out.stdout, field),
            "1000 1000 1000 1000",
            "{field}: {out}"
        );
    }
}

#[test]
fn exec_process_json_replaces_the_process() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "exec-pjson", |_| {});
    let process = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000},
        "args": ["sh", "-c", "echo \"$CARTE_P\"; pwd; cat /proc/self/status"],
        "env": ["PATH=/bin", "CARTE_P=from-process-json"],
        "cwd": "/tmp"
    });
    let file = ctx.tempdir().join("process.json");
    if let Err(e) = std::fs::write(&file, process.to_string()) {
        panic!("write {}: {e}", file.display());
    }
    let out = ctx
        .rt
        .cmd(&["exec", "--process", &file.display().to_string(), &id])
        .ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("from-process-json"), "{out}");
    assert_eq!(lines.next(), Some("/tmp"), "{out}");
    assert_ran_as_1000(&out);
    finish(&ctx, &id, &[]);
}

#[test]
fn detached_exec_is_in_the_containers_namespaces_and_cgroup() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, init) = running(&ctx, "exec-ns", |_| {});
    let pid = exec_detached(&ctx, &id, &[], &["sleep", "1000"]);
    assert!(alive(pid), "exec -d returned but pid {pid} is not running");
    assert_ne!(pid, init);
    for name in ["pid", "mnt", "uts", "net", "ipc"] {
        assert_eq!(ns(pid, name), ns(init, name), "{name} namespace");
        // The test runs in the host's namespaces (pid 1's are not readable on every host).
        let ours = ns(std::process::id().into(), name);
        assert_ne!(ns(pid, name), ours, "{name} namespace is the host's");
    }
    assert_eq!(cgroups_of(pid), cgroups_of(init));
    finish(&ctx, &id, &[pid]);
}

#[test]
fn exec_cap_adds_a_capability() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "exec-cap", |_| {});
    let plain = ctx.rt.cmd(&["exec", &id, "cat", "/proc/self/status"]).ok();
    let eff = status_field(&plain.stdout, "CapEff");
    assert!(!has_cap(&eff, CAP_SYS_ADMIN), "CapEff {eff} without --cap");
    let added = ctx
        .rt
        .cmd(&[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            &id,
            "cat",
            "/proc/self/status",
        ])
        .ok();
    let eff = status_field(&added.stdout, "CapEff");
    assert!(has_cap(&eff, CAP_SYS_ADMIN), "CapEff {eff} with --cap");
    assert!(has_cap(
        &status_field(&added.stdout, "CapBnd"),
        CAP_SYS_ADMIN
    ));
    finish(&ctx, &id, &[]);
}

#[test]
fn exec_no_new_privs_sets_the_flag() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "exec-nnp", |b| {
        b.set("/process/noNewPrivileges", json!(false));
    });
    let status = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend([id.as_str(), "cat", "/proc/self/status"]);
        status_field(&ctx.rt.cmd(&args).ok().stdout, "NoNewPrivs")
    };
    assert_eq!(status(&[]), "0");
    assert_eq!(status(&["--no-new-privs"]), "1");
    finish(&ctx, &id, &[]);
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let Some(ctx) = Ctx::new() else { return };
    let id = stopped(&ctx, "exec-stopped");
    let out = ctx.rt.cmd(&["exec", &id, "true"]).fails();
    assert!(out.stderr.contains("stopped"), "{out}");
    finish(&ctx, &id, &[]);
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, init) = running(&ctx, "exec-paused", |_| {});
    ctx.rt.cmd(&["pause", &id]).ok();
    let out = ctx.rt.cmd(&["exec", &id, "true"]).fails();
    assert!(out.stderr.contains("paused"), "{out}");
    // Accepted with --ignore-paused; the new process joins the frozen cgroup, so (as with runc) the call can
    // only report it started once the container is thawed.
    let pid_file = ctx.tempdir().join("exec.pid");
    let pid_arg = pid_file.display().to_string();
    let args = [
        "exec",
        "--ignore-paused",
        "-d",
        "--pid-file",
        &pid_arg,
        &id,
        "sleep",
        "1000",
    ];
    let call = match ctx.rt.spawn(&args, runtime::CallOpts::default()) {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    };
    assert_eq!(ctx.rt.status(&id), "paused");
    ctx.rt.cmd(&["resume", &id]).ok();
    call.wait().ok();
    let pid = read_pid_file(&pid_file);
    assert!(alive(pid), "exec'd pid {pid} is not running");
    assert_eq!(ns(pid, "pid"), ns(init, "pid"));
    assert_eq!(cgroups_of(pid), cgroups_of(init));
    finish(&ctx, &id, &[pid]);
}

// ---------------------------------------------------------------------------------------------------- ps

#[test]
fn ps_lists_the_init_and_exec_processes() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, init) = running(&ctx, "ps", |_| {});
    let pid = exec_detached(&ctx, &id, &[], &["sleep", "999"]);
    let listed = ctx.rt.cmd(&["ps", "-f", "json", &id]).ok().json();
    let pids: Vec<i64> = match listed.as_array() {
        Some(a) => a.iter().filter_map(Value::as_i64).collect(),
        None => panic!("ps -f json printed {listed}"),
    };
    assert!(pids.contains(&init), "{listed} lacks init {init}");
    assert!(pids.contains(&pid), "{listed} lacks exec'd {pid}");
    assert_eq!(pids.len(), 2, "{listed}");

    let table = ctx.rt.cmd(&["ps", &id]).ok().stdout;
    let mut rows = table.lines();
    let header: Vec<&str> = rows.next().unwrap_or_default().split_whitespace().collect();
    let col = match header.iter().position(|h| *h == "PID") {
        Some(c) => c,
        None => panic!("no PID column in ps output:\n{table}"),
    };
    let mut shown: Vec<i64> = rows
        .filter_map(|r| r.split_whitespace().nth(col)?.parse().ok())
        .collect();
    shown.sort_unstable();
    let mut want = vec![init, pid];
    want.sort_unstable();
    assert_eq!(shown, want, "{table}");
    finish(&ctx, &id, &[pid]);
}

// ---------------------------------------------------------------------------------------------------- pause

/// The freezer state of `pid`'s cgroup on the host: v1's `freezer.state`, or v2's `cgroup.events` as
/// `FROZEN`/`THAWED`.
fn freezer_state(pid: i64) -> String {
    match cgroups::freezer_state(pid) {
        Some(s) => s,
        None => panic!("no freezer state for pid {pid} (no freezer cgroup?)"),
    }
}

/// The counter the pause test's init keeps incrementing, as the host sees it (0 before the first write).
fn counter(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, b, init) = running(&ctx, "pause", |b| {
        b.readonly_root(false);
        // mv makes each new value appear whole, so the host never reads a half-written file.
        b.sh("i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/count; usleep 20000; done");
    });
    let count: PathBuf = b.rootfs().join("tmp/count");
    assert!(
        poll_until(runtime::TIMEOUT, || counter(&count) >= 2),
        "the counter never started"
    );
    assert_eq!(freezer_state(init), "THAWED");

    ctx.rt.cmd(&["pause", &id]).ok();
    assert_eq!(ctx.rt.status(&id), "paused");
    assert_eq!(freezer_state(init), "FROZEN");
    let frozen_at = counter(&count);
    // Long enough for a thawed loop to count several times over; a frozen one must not move at all.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        counter(&count),
        frozen_at,
        "a paused container made progress"
    );
    // Pausing twice is a state error, not a no-op.
    ctx.rt.cmd(&["pause", &id]).fails();

    ctx.rt.cmd(&["resume", &id]).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    assert_eq!(freezer_state(init), "THAWED");
    assert!(
        poll_until(runtime::TIMEOUT, || counter(&count) > frozen_at),
        "the counter did not continue after resume"
    );
    ctx.rt.cmd(&["resume", &id]).fails();
    finish(&ctx, &id, &[]);
}

#[test]
fn pause_and_resume_of_a_stopped_container_fail() {
    let Some(ctx) = Ctx::new() else { return };
    let id = stopped(&ctx, "pause-stopped");
    let out = ctx.rt.cmd(&["pause", &id]).fails();
    if is_carte() {
        assert!(out.stderr.contains("stopped"), "{out}");
    }
    ctx.rt.cmd(&["resume", &id]).fails();
    assert_eq!(ctx.rt.status(&id), "stopped");
    finish(&ctx, &id, &[]);
}

// ---------------------------------------------------------------------------------------------------- update

#[test]
fn update_memory_flag_changes_the_host_limit() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "upd-mem", |b| {
        b.resource("memory", json!({"limit": 128 * 1024 * 1024}));
    });
    assert_eq!(memory_limit(&id), (128u64 << 20).to_string());
    ctx.rt.cmd(&["update", "--memory", "64M", &id]).ok();
    assert_eq!(memory_limit(&id), (64u64 << 20).to_string());
    finish(&ctx, &id, &[]);
}

#[test]
fn update_resources_from_stdin() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "upd-stdin", |_| {});
    let resources = json!({
        "memory": {"limit": 48 * 1024 * 1024},
        "cpu": {"quota": 30000, "period": 100000},
        "pids": {"limit": 77}
    });
    update_from_stdin(&ctx, &id, &resources.to_string()).ok();
    assert_eq!(memory_limit(&id), (48u64 << 20).to_string());
    assert_eq!(pids_limit(&id), "77");
    let quota = limit(&id, "cpu", "cpu.cfs_quota_us", "cpu.max");
    if quota.contains(' ') {
        assert_eq!(quota, "30000 100000");
    } else {
        assert_eq!(quota, "30000");
        assert_eq!(limit(&id, "cpu", "cpu.cfs_period_us", "cpu.max"), "100000");
    }
    finish(&ctx, &id, &[]);
}

#[test]
fn update_single_value_flags() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "upd-flags", |_| {});
    ctx.rt
        .cmd(&[
            "update",
            "--pids-limit",
            "33",
            "--cpu-quota",
            "20000",
            "--cpu-period",
            "50000",
            // runc's spelling, which carte accepts besides its own `--cpu-shares`.
            "--cpu-share",
            "256",
            "--cpuset-cpus",
            "0",
            &id,
        ])
        .ok();
    assert_eq!(pids_limit(&id), "33");
    let quota = limit(&id, "cpu", "cpu.cfs_quota_us", "cpu.max");
    if quota.contains(' ') {
        assert_eq!(quota, "20000 50000");
    } else {
        assert_eq!(quota, "20000");
        assert_eq!(limit(&id, "cpu", "cpu.cfs_period_us", "cpu.max"), "50000");
        assert_eq!(limit(&id, "cpu", "cpu.shares", "cpu.weight"), "256");
    }
    assert_eq!(limit(&id, "cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    if is_carte() && !quota.contains(' ') {
        // carte's own spelling of the flag.
        ctx.rt.cmd(&["update", "--cpu-shares", "512", &id]).ok();
        assert_eq!(limit(&id, "cpu", "cpu.shares", "cpu.weight"), "512");
    }
    finish(&ctx, &id, &[]);
}

#[test]
fn update_with_malformed_resources_changes_nothing() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "upd-bad", |b| {
        b.resource("memory", json!({"limit": 32 * 1024 * 1024}));
        b.resource("pids", json!({"limit": 50}));
    });
    // Each document starts with a valid memory limit, so applying any prefix of it would show.
    for bad in [
        r#"{"memory": {"limit": 16777216}, "pids": {"limit": 7}"#,
        r#"{"memory": {"limit": 16777216}, "pids": {"limit": "seven"}}"#,
    ] {
        let out = update_from_stdin(&ctx, &id, bad).fails();
        assert!(!out.stderr.trim().is_empty(), "{out}");
        assert_eq!(memory_limit(&id), (32u64 << 20).to_string(), "after {bad}");
        assert_eq!(pids_limit(&id), "50", "after {bad}");
    }
    finish(&ctx, &id, &[]);
}

#[test]
fn update_of_a_stopped_container_fails() {
    let Some(ctx) = Ctx::new() else { return };
    let id = stopped(&ctx, "upd-stopped");
    ctx.rt.cmd(&["update", "--pids-limit", "10", &id]).fails();
    finish(&ctx, &id, &[]);
}

// ---------------------------------------------------------------------------------------------------- events

/// The JSON lines of an events stream; panics on a line that is not JSON.
fn event_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(v) => v,
            Err(e) => panic!("event line is not JSON ({e}): {l}"),
        })
        .collect()
}

/// Starts `events --interval 100ms ID` (flags before the id: runc stops parsing flags at the first argument).
fn stream_events(ctx: &Ctx, id: &str) -> runtime::Running {
    let opts = runtime::CallOpts {
        timeout: Some(Duration::from_secs(20)),
        ..Default::default()
    };
    match ctx.rt.spawn(&["events", "--interval", "100ms", id], opts) {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    }
}

/// Polls the running stream until some event satisfies `want`; panics (with the stream so far) otherwise.
#[track_caller]
fn wait_for_event(stream: &runtime::Running, what: &str, want: impl Fn(&Value) -> bool) {
    let mut seen = String::new();
    let found = poll_until(runtime::TIMEOUT, || {
        seen = stream.stdout_now().unwrap_or_default();
        // Only whole lines: the stream may be caught mid-write.
        let whole = seen.rsplit_once('\n').map_or("", |(done, _)| done);
        event_lines(whole).iter().any(&want)
    });
    assert!(found, "no {what} event in the stream:\n{seen}");
}

#[test]
fn events_stats_prints_one_stats_object() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _, _) = running(&ctx, "ev-stats", |_| {});
    let ev = ctx.rt.cmd(&["events", "--stats", &id]).ok().json();
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    let data = &ev["data"];
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    assert!(data["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{ev}");
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    finish(&ctx, &id, &[]);
}

#[test]
fn events_stream_ends_when_the_container_exits() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, b, _) = running(&ctx, "ev-stream", |b| {
        b.readonly_root(false);
        b.sh("while [ ! -e /tmp/stop ]; do usleep 20000; done");
    });
    let stream = stream_events(&ctx, &id);
    wait_for_event(&stream, "stats", |e| e["type"] == "stats");
    let stop = b.rootfs().join("tmp/stop");
    if let Err(e) = std::fs::write(&stop, "") {
        panic!("create {}: {e}", stop.display());
    }
    if !is_carte() {
        // runc 1.1 keeps streaming a stopped container's stats; its stream ends once the container is deleted.
        ctx.rt.wait_status(&id, "stopped");
        ctx.rt.delete(&id).ok();
    }
    let out = stream.wait().ok();
    let events = event_lines(&out.stdout);
    assert!(!events.is_empty(), "{out}");
    for e in &events {
        assert_eq!(e["type"], "stats", "{out}");
        assert_eq!(e["id"], id.as_str(), "{out}");
    }
    finish(&ctx, &id, &[]);
}

#[test]
fn events_report_an_oom_kill() {
    let Some(ctx) = Ctx::new() else { return };
    let mib = 1024 * 1024;
    // Room for the runtime's own exec helper while it joins the cgroup; no swap to escape into.
    let (id, _, _) = running(&ctx, "ev-oom", |b| {
        b.resource("memory", json!({"limit": 32 * mib, "swap": 32 * mib}));
    });
    let stream = stream_events(&ctx, &id);
    wait_for_event(&stream, "stats", |e| e["type"] == "stats");
    // tail keeps the last lines of a file with no newline in it: it grows until the kernel kills it.
    let hog = ctx.rt.cmd(&["exec", &id, "tail", "/dev/zero"]);
    assert_eq!(hog.code(), 128 + 9, "{hog}");
    wait_for_event(&stream, "oom", |e| {
        e["type"] == "oom" && e["id"] == id.as_str()
    });
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.kill(&id, "KILL").ok();
    if !is_carte() {
        // runc's stream only ends with the container's deletion (see events_stream_ends_when_the_container_exits).
        ctx.rt.wait_status(&id, "stopped");
        ctx.rt.delete(&id).ok();
    }
    stream.wait().ok();
    finish(&ctx, &id, &[]);
}

// ---------------------------------------------------------------------------------------------------- features

#[test]
fn features_describe_the_runtime() {
    let Some(ctx) = Ctx::new() else { return };
    let f = ctx.rt.cmd(&["features"]).ok().json();
    for key in ["ociVersionMin", "ociVersionMax"] {
        assert!(
            f[key].as_str().is_some_and(|v| v.starts_with("1.")),
            "{key}: {f}"
        );
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let hooks = strings(&f["hooks"]);
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|x| x == h), "hook {h}: {f}");
    }
    let opts = strings(&f["mountOptions"]);
    for o in ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec"] {
        assert!(opts.iter().any(|x| x == o), "mount option {o}: {f}");
    }
    let namespaces = strings(&f["linux"]["namespaces"]);
    // runc 1.1 predates time namespaces (runc 1.2), so only carte must list all eight.
    let mut want = vec!["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    if is_carte() {
        want.push("time");
    }
    for n in want {
        assert!(namespaces.iter().any(|x| x == n), "namespace {n}: {f}");
    }
    let caps = strings(&f["linux"]["capabilities"]);
    assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"), "{f}");
    assert!(caps.iter().all(|c| c.starts_with("CAP_")), "{f}");
    assert_eq!(f["linux"]["cgroup"]["v1"], true, "{f}");
}
