//! Reliability under faults (issue 9): a soak of many lifecycles, `carte` SIGKILLed at every moment of a call,
//! one id raced by many calls, a corrupt `state.json`, and garbage configs and command lines. After each scenario
//! the leak audit (mountinfo, every cgroup hierarchy, the state root, processes, fds held into the root) must
//! find nothing.
//!
//! CI runs small counts; `make soak` sets `CARTE_SOAK=1` for the full ones (1,000 lifecycles, 200 kills of
//! `create` and 60 each of `run -d`, `start`, `exec -d` and `delete --force`, 10 race rounds, 2,000 garbage
//! configs) and `--nocapture` prints the figures.

use carte_tests::faults::{self, Rng};
use carte_tests::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// `ci` normally, `full` under `make soak`.
fn count(ci: usize, full: usize) -> usize {
    if std::env::var_os("CARTE_SOAK").is_some_and(|v| !v.is_empty()) {
        full
    } else {
        ci
    }
}

/// Everything `id` left: the per-id audit, given up to the audit grace to settle, plus what only a fault can
/// leave (a half-claimed state dir, an fd held on the state root).
fn leftovers(ctx: &Ctx, id: &str) -> Vec<String> {
    let mut found = Vec::new();
    poll_until(AUDIT_GRACE, || {
        found = ctx.leaks_now(id);
        found.extend(faults::stray_root_entries(ctx.rt.root(), id));
        found.extend(faults::fds_into(ctx.rt.root()));
        found.is_empty()
    });
    found
}

/// A container that holds every kind of resource: a cgroup at a given path with a memory limit, and extra tmpfs
/// and bind mounts (which must live only in the container's mount namespace).
fn heavy_bundle(ctx: &Ctx, args: &[&str]) -> Bundle {
    let mut b = ctx.bundle();
    let src = ctx.tempdir();
    b.args(args);
    b.resource("memory", json!({"limit": 64 * 1024 * 1024}));
    b.mount(
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    b.mount(
        json!({"destination": "/home/user", "type": "bind", "source": src.display().to_string(),
        "options": ["rbind", "ro"]}),
    );
    b
}

fn with_cgroup(b: &mut Bundle, id: &str) {
    b.cgroups_path(&format!("/carte-test/{id}"));
    if let Err(e) = b.write() {
        panic!("{e:#}");
    }
}

/// What a kill sweep does before the call it kills, and the call itself.
#[derive(Clone, Copy, Debug)]
enum Victim {
    Create,
    RunDetached,
    Start,
    ExecDetached,
    DeleteForce,
}

impl Victim {
    /// Brings `id` to the state the call expects (nothing, created, or running).
    fn prepare(self, ctx: &Ctx, b: &mut Bundle, id: &str) {
        with_cgroup(b, id);
        match self {
            Victim::Create | Victim::RunDetached => {}
            Victim::Start => {
                ctx.rt.cmd(&["create", id, "--bundle", b.path_str()]).ok();
            }
            Victim::DeleteForce | Victim::ExecDetached => {
                ctx.rt
                    .cmd(&["run", "-d", id, "--bundle", b.path_str()])
                    .ok();
            }
        }
    }

    fn args<'a>(self, id: &'a str, b: &'a Bundle) -> Vec<&'a str> {
        match self {
            Victim::Create => vec!["create", id, "--bundle", b.path_str()],
            Victim::RunDetached => vec!["run", "-d", id, "--bundle", b.path_str()],
            Victim::Start => vec!["start", id],
            // The id as the shell's $0 puts it in the process's cmdline, where the audit looks.
            Victim::ExecDetached => vec!["exec", "-d", id, "sh", "-c", "sleep 1000; :", id],
            Victim::DeleteForce => vec!["delete", "--force", id],
        }
    }
}

/// Kills `victim` at `n` moments spread over the median duration of an unkilled call, then requires that
/// `delete --force` succeeds and leaves nothing; prints how many tries left something and asserts none did.
fn kill_sweep(victim: Victim, n: usize) {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = heavy_bundle(&ctx, &["sleep", "1000"]);
    let mut durations = Vec::new();
    for _ in 0..3 {
        let id = ctx.id("measure");
        victim.prepare(&ctx, &mut b, &id);
        let (out, took) = match faults::timed(&ctx.rt, &victim.args(&id, &b)) {
            Ok(r) => r,
            Err(e) => panic!("{e:#}"),
        };
        out.ok();
        durations.push(took);
        ctx.rt.delete_force(&id).ok();
    }
    let whole = faults::median(durations);
    let mut leaked = Vec::new();
    let mut killed = 0;
    for (i, delay) in faults::spread(whole, n).into_iter().enumerate() {
        let id = ctx.id("kill");
        victim.prepare(&ctx, &mut b, &id);
        let out = match faults::kill_after(&ctx.rt, &victim.args(&id, &b), delay) {
            Ok(o) => o,
            Err(e) => panic!("kill {victim:?} after {delay:?}: {e:#}"),
        };
        if out.code() == 137 {
            killed += 1;
        } else {
            assert!(!faults::crashed(&out), "{out}");
        }
        let del = ctx.rt.delete_force(&id);
        assert!(
            del.success(),
            "{victim:?} killed after {delay:?} (try {i}): delete --force failed: {del}"
        );
        let left = leftovers(&ctx, &id);
        if !left.is_empty() {
            leaked.push(format!("after {delay:?}: {}", left.join("; ")));
        }
    }
    eprintln!(
        "kill sweep {victim:?}: {n} tries over {whole:?} ({killed} killed mid-call), {} left something",
        leaked.len()
    );
    assert!(
        leaked.is_empty(),
        "{} of {n} kills of {victim:?} left something:\n{}",
        leaked.len(),
        leaked.join("\n")
    );
}

#[test]
fn sigkill_create_at_any_moment_leaves_nothing() {
    kill_sweep(Victim::Create, count(40, 200));
}

#[test]
fn sigkill_run_detached_at_any_moment_leaves_nothing() {
    kill_sweep(Victim::RunDetached, count(12, 60));
}

#[test]
fn sigkill_start_at_any_moment_leaves_nothing() {
    kill_sweep(Victim::Start, count(8, 60));
}

#[test]
fn sigkill_exec_detached_at_any_moment_leaves_nothing() {
    kill_sweep(Victim::ExecDetached, count(12, 60));
}

#[test]
fn sigkill_delete_at_any_moment_leaves_nothing() {
    kill_sweep(Victim::DeleteForce, count(12, 60));
}

/// Kills the parked hook (its pid is in the file) on drop, so the test never leaves it behind.
struct HookPid(std::path::PathBuf);

impl Drop for HookPid {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(&self.0).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The init dies with `create` until create has handed it over: killed while its cgroup and mounts exist
/// (parked in a createRuntime hook), `create` leaves no live init even before anyone runs `delete`, and the state
/// already records the init and the cgroup.
#[test]
fn an_init_dies_with_a_killed_create_before_any_delete() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        eprintln!("skipped: carte's state.json layout");
        return;
    }
    let id = ctx.id("orphan");
    let flag = ctx.tempdir().join("hook.pid");
    let _hook = HookPid(flag.clone());
    let mut b = heavy_bundle(&ctx, &["sleep", "1000"]);
    b.hook(
        "createRuntime",
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 1000", flag.display())]}),
    );
    with_cgroup(&mut b, &id);
    let call = match ctx.rt.spawn(
        &["create", &id, "--bundle", b.path_str()],
        Default::default(),
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    };
    let parked = poll_until(runtime::TIMEOUT, || {
        std::fs::read_to_string(&flag).is_ok_and(|s| s.ends_with('\n'))
    });
    assert!(parked, "the createRuntime hook never ran");
    let recorded: Value = std::fs::read(ctx.rt.root().join(&id).join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let pid = recorded["pid"].as_i64().unwrap_or(0);
    assert!(
        pid > 0 && alive(pid),
        "state.json does not record the live init: {recorded}"
    );
    assert_eq!(
        recorded["cgroupPath"],
        format!("/carte-test/{id}"),
        "{recorded}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(call.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(call.wait().code(), 137);
    assert!(
        poll_until(AUDIT_GRACE, || !alive(pid)),
        "init {pid} outlived the create that was killed"
    );
    drop(_hook);
    ctx.rt.delete_force(&id).ok();
    assert!(leftovers(&ctx, &id).is_empty());
}

/// A `create` killed between claiming its temporary state dir and renaming it into place leaves a `.new-*`
/// directory whose owner is dead; `delete --force` of that id removes it.
#[test]
fn a_dead_creates_half_claimed_state_dir_is_removed_by_delete_force() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        eprintln!("skipped: carte's state-root layout");
        return;
    }
    let id = ctx.id("halfclaim");
    // A pid that cannot be alive: above the kernel's pid_max limit (4,194,304).
    let stale = ctx.rt.root().join(format!(".new-{id}-4999999"));
    if let Err(e) = std::fs::create_dir_all(&stale) {
        panic!("mkdir {}: {e}", stale.display());
    }
    let _ = std::fs::write(stale.join("state.json"), "{}");
    ctx.rt.delete_force(&id).ok();
    assert!(
        !stale.exists(),
        "{} survived delete --force",
        stale.display()
    );
    assert!(leftovers(&ctx, &id).is_empty());
}

#[test]
fn soak_lifecycles_leave_nothing() {
    let Some(ctx) = Ctx::new() else { return };
    let n = count(100, 1000);
    let prefix = unique_id("soak");
    let mut quick = ctx.bundle();
    quick.args(&["true"]);
    quick.write().ok();
    let mut sleeper = ctx.bundle();
    sleeper.args(&["sleep", "1000"]);
    sleeper.write().ok();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let calls = AtomicUsize::new(0);
    let rt = &ctx.rt;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let id = format!("{prefix}-{i}");
                let fail = |out: Out| {
                    if let Ok(mut f) = failures.lock() {
                        f.push(out.to_string());
                    }
                };
                let call = |args: &[&str]| -> Option<Out> {
                    calls.fetch_add(1, Ordering::Relaxed);
                    match rt.try_cmd(args) {
                        Ok(o) if o.success() => Some(o),
                        Ok(o) => {
                            fail(o);
                            None
                        }
                        Err(e) => {
                            if let Ok(mut f) = failures.lock() {
                                f.push(format!("{e:#}"));
                            }
                            None
                        }
                    }
                };
                if call(&["create", &id, "--bundle", quick.path_str()]).is_some()
                    && call(&["start", &id]).is_some()
                {
                    let stopped = poll_until(runtime::TIMEOUT, || {
                        rt.try_cmd(&["state", &id])
                            .is_ok_and(|o| o.success() && o.stdout.contains("\"stopped\""))
                    });
                    if !stopped {
                        if let Ok(mut f) = failures.lock() {
                            f.push(format!("{id} never stopped"));
                        }
                    }
                    call(&["delete", &id]);
                }
                if i % 10 == 0 {
                    let bg = format!("{id}-bg");
                    if call(&["run", "-d", &bg, "--bundle", sleeper.path_str()]).is_some() {
                        call(&["delete", "--force", &bg]);
                    }
                }
            });
        }
    });
    let took = t.elapsed();
    let failures = failures.into_inner().unwrap_or_default();
    let mut left = Vec::new();
    poll_until(AUDIT_GRACE, || {
        left = faults::leaks_with_prefix(ctx.rt.root(), &prefix);
        left.is_empty()
    });
    eprintln!(
        "soak: {n} lifecycles (+{} detached sleeps), 4 in parallel, {} calls in {took:.1?}: {:.1} lifecycles/s, \
         {} failed calls, {} leftovers",
        n.div_ceil(10),
        calls.load(Ordering::Relaxed),
        n as f64 / took.as_secs_f64(),
        failures.len(),
        left.len()
    );
    if !left.is_empty() {
        for i in 0..n {
            audit::scrub(&format!("{prefix}-{i}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed calls, first: {}",
        failures.len(),
        failures[0]
    );
    assert!(left.is_empty(), "soak left: {}", left.join("; "));
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
}

fn out_or_panic(r: anyhow::Result<Out>) -> Out {
    match r {
        Ok(o) => o,
        Err(e) => panic!("{e:#}"),
    }
}

/// `kill` and `state` beside a race: they succeed or fail with a clear one-line status error, never crash.
fn check_bystander(out: &Out) {
    assert!(!faults::crashed(out), "{out}");
    if !out.success() && is_carte() {
        assert!(faults::one_line_error(out), "{out}");
        assert!(
            out.stderr.contains("does not exist") || out.stderr.contains("cannot kill"),
            "not a status error: {out}"
        );
    }
}

#[test]
fn concurrent_creates_of_one_id_have_exactly_one_winner() {
    let Some(ctx) = Ctx::new() else { return };
    let rounds = count(3, 10);
    let mut doubles = 0;
    for round in 0..rounds {
        let id = ctx.id("race");
        let mut b = heavy_bundle(&ctx, &["sleep", "1000"]);
        with_cgroup(&mut b, &id);
        let mut calls: Vec<Vec<String>> = (0..20)
            .map(|_| {
                vec![
                    "create".into(),
                    id.clone(),
                    "--bundle".into(),
                    b.path_str().into(),
                ]
            })
            .collect();
        for _ in 0..3 {
            calls.push(vec!["state".into(), id.clone()]);
            calls.push(vec!["kill".into(), id.clone(), "CONT".into()]);
        }
        let outs: Vec<Out> = faults::concurrently(&ctx.rt, &calls)
            .into_iter()
            .map(out_or_panic)
            .collect();
        let (creates, others) = outs.split_at(20);
        let winners = creates.iter().filter(|o| o.success()).count();
        if winners > 1 {
            doubles += 1;
        }
        assert_eq!(winners, 1, "round {round}: {winners} creates won");
        for o in creates.iter().filter(|o| !o.success()) {
            assert!(!faults::crashed(o), "{o}");
            if is_carte() {
                assert!(faults::one_line_error(o), "{o}");
                assert!(o.stderr.contains("already exists"), "{o}");
            }
        }
        for o in others {
            check_bystander(o);
        }
        // The losers touched nothing of the winner's: it is intact, findable and in its cgroup.
        let st = ctx.rt.state(&id);
        assert_eq!(st["status"], "created", "{st}");
        let pid = st["pid"].as_i64().unwrap_or(0);
        assert_eq!(
            cgroups::path_of(pid, "memory").as_deref(),
            Some(format!("/carte-test/{id}").as_str()),
            "the winner's init {pid} is not in its cgroup"
        );
        assert!(faults::stray_root_entries(ctx.rt.root(), &id).is_empty());
        ctx.rt.start(&id).ok();
        ctx.rt.delete_force(&id).ok();
        let left = leftovers(&ctx, &id);
        assert!(left.is_empty(), "round {round}: {}", left.join("; "));
    }
    eprintln!("create race: {rounds} rounds of 20, {doubles} with more than one winner");
}

#[test]
fn concurrent_force_deletes_all_succeed_and_leave_nothing() {
    let Some(ctx) = Ctx::new() else { return };
    let rounds = count(3, 10);
    for round in 0..rounds {
        let id = ctx.id("delrace");
        let mut b = heavy_bundle(&ctx, &["sleep", "1000"]);
        with_cgroup(&mut b, &id);
        ctx.rt
            .cmd(&["run", "-d", &id, "--bundle", b.path_str()])
            .ok();
        let mut calls: Vec<Vec<String>> = (0..20)
            .map(|_| vec!["delete".into(), "--force".into(), id.clone()])
            .collect();
        for _ in 0..4 {
            calls.push(vec!["state".into(), id.clone()]);
            calls.push(vec!["kill".into(), id.clone(), "TERM".into()]);
        }
        let outs: Vec<Out> = faults::concurrently(&ctx.rt, &calls)
            .into_iter()
            .map(out_or_panic)
            .collect();
        let (deletes, others) = outs.split_at(20);
        for o in deletes {
            assert!(!faults::crashed(o), "{o}");
            assert!(
                o.success() || o.stderr.contains("does not exist"),
                "round {round}: {o}"
            );
        }
        for o in others {
            check_bystander(o);
        }
        let left = leftovers(&ctx, &id);
        assert!(left.is_empty(), "round {round}: {}", left.join("; "));
    }
    eprintln!("delete race: {rounds} rounds of 20 delete --force + 8 kill/state, all clean");
}

#[test]
fn corrupt_state_file_is_reported_and_delete_force_still_cleans_up() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        eprintln!("skipped: runc 1.1.5 cannot delete a container with a corrupt state.json");
        return;
    }
    let healthy = ctx.id("healthy");
    let mut hb = ctx.bundle();
    hb.args(&["sleep", "1000"]);
    hb.write().ok();
    ctx.rt
        .cmd(&["run", "-d", &healthy, "--bundle", hb.path_str()])
        .ok();
    let mut cases = 0;
    for kind in faults::CORRUPTIONS {
        for custom_cgroup in [false, true] {
            let id = ctx.id(kind);
            let mut b = heavy_bundle(&ctx, &["sleep", "1000"]);
            if custom_cgroup {
                with_cgroup(&mut b, &id);
            } else {
                b.write().ok();
            }
            ctx.rt
                .cmd(&["run", "-d", &id, "--bundle", b.path_str()])
                .ok();
            let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
            let file = ctx.rt.root().join(&id).join("state.json");
            let bytes = std::fs::read(&file).unwrap_or_default();
            if let Err(e) = std::fs::write(&file, faults::corrupt(kind, &bytes)) {
                panic!("corrupt {}: {e}", file.display());
            }
            let what = format!("{kind} state.json (custom cgroup: {custom_cgroup})");
            let st = ctx.rt.cmd(&["state", &id]).fails();
            assert!(st.stderr.contains(&id), "{what}: {st}");
            let list = ctx.rt.cmd(&["list", "-f", "json"]).ok();
            assert!(
                list.stderr.contains(&id),
                "{what}: list says nothing of it: {list}"
            );
            let ids: Vec<String> = match list.json() {
                Value::Array(v) => v
                    .iter()
                    .filter_map(|e| e["id"].as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            assert!(
                ids.contains(&healthy),
                "{what}: list lost the healthy container: {list}"
            );
            assert!(!ids.contains(&id), "{what}: {list}");
            let kill = ctx.rt.cmd(&["kill", &id, "TERM"]).fails();
            assert!(kill.stderr.contains(&id), "{what}: {kill}");
            let del = ctx.rt.delete_force(&id);
            assert!(del.success(), "{what}: {del}");
            assert!(
                poll_until(AUDIT_GRACE, || !alive(pid)),
                "{what}: init {pid} survived delete --force"
            );
            let left = leftovers(&ctx, &id);
            assert!(left.is_empty(), "{what}: {}", left.join("; "));
            cases += 1;
        }
    }
    assert_eq!(ctx.rt.status(&healthy), "running");
    eprintln!("corrupt state: {cases} cases, all reported and cleaned up");
}

#[test]
fn garbage_configs_never_crash_and_leave_nothing() {
    let Some(ctx) = Ctx::new() else { return };
    let n = count(120, 2000);
    let mut base = bundle::default_config();
    base["process"]["args"] = json!(["true"]);
    let b = ctx.bundle();
    let (mut accepted, mut rejected) = (0, 0);
    let mut bad = Vec::new();
    for seed in 0..n as u64 {
        let id = ctx.id("garbage");
        let (bytes, what) = faults::garbage_config(&base, seed, &id);
        if let Err(e) = std::fs::write(b.path().join("config.json"), &bytes) {
            panic!("write config: {e}");
        }
        let out = out_or_panic(ctx.rt.try_cmd(&["create", &id, "--bundle", b.path_str()]));
        if faults::crashed(&out) {
            bad.push(format!("seed {seed} ({what}) crashed: {out}"));
        } else if out.success() {
            accepted += 1;
            let start = out_or_panic(ctx.rt.try_cmd(&["start", &id]));
            if faults::crashed(&start) {
                bad.push(format!("seed {seed} ({what}) start crashed: {start}"));
            }
        } else {
            rejected += 1;
            if is_carte() && !faults::one_line_error(&out) {
                bad.push(format!("seed {seed} ({what}) error is not one line: {out}"));
            }
        }
        let del = out_or_panic(ctx.rt.try_cmd(&["delete", "--force", &id]));
        if !del.success() || faults::crashed(&del) {
            bad.push(format!("seed {seed} ({what}) delete --force: {del}"));
        }
        let left = leftovers(&ctx, &id);
        if !left.is_empty() {
            bad.push(format!("seed {seed} ({what}) left: {}", left.join("; ")));
        }
    }
    eprintln!(
        "garbage configs: {n} cases, {accepted} accepted, {rejected} rejected, {} bad",
        bad.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Hostile command lines to every verb: none may panic or die by a signal.
#[test]
fn garbage_command_lines_never_crash() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("argv");
    let long = "a".repeat(5000);
    let b = ctx.bundle();
    b.write().ok();
    let bp = b.path_str();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--root"],
        vec!["--log-format", "xml", "list"],
        vec!["--log", "/nonexistent/dir/log", "list"],
        vec!["state", ""],
        vec!["state", ".."],
        vec!["state", "a/b"],
        vec!["state", &long],
        vec!["delete", &long],
        vec!["delete", "--force", "."],
        vec!["kill", &id, "SIGFOO"],
        vec!["kill", &id, "99999"],
        vec!["kill", &id, "-1"],
        vec!["kill", &id, ""],
        vec!["start", &id],
        vec!["pause", &id],
        vec!["resume", &id],
        vec!["ps", &id],
        vec!["events", &id],
        vec!["update", &id],
        vec!["exec", &id, "true"],
        vec!["list", "-f", "yaml"],
        vec!["spec", "--bundle", "/nonexistent"],
        vec!["create", &id, "--bundle", "/nonexistent"],
        vec!["create", &id, "--bundle", "/dev/null"],
        vec![
            "create",
            &id,
            "--bundle",
            bp,
            "--pid-file",
            "/proc/nonexistent/pid",
        ],
        vec![
            "create",
            &id,
            "--bundle",
            bp,
            "--console-socket",
            "/nonexistent.sock",
        ],
        vec![
            "create",
            &id,
            "--bundle",
            bp,
            "--preserve-fds",
            "4294967295",
        ],
        vec!["run", "-d", "--bundle", bp, "--pid-file", "", &id],
        vec!["create", "", "--bundle", bp],
        vec!["create", &long, "--bundle", bp],
        vec!["nosuchverb", &id],
    ];
    for args in &cases {
        let out = ctx.rt.cmd(args);
        assert!(!faults::crashed(&out), "{out}");
        let _ = ctx.rt.try_cmd(&["delete", "--force", &id]);
    }
    // A non-UTF-8 id, which the harness's &str calls cannot carry.
    use std::os::unix::ffi::OsStrExt;
    let raw = std::ffi::OsStr::from_bytes(b"ct-\xff\xfe");
    for verb in ["state", "delete", "kill", "start"] {
        let out = std::process::Command::new(ctx.rt.bin())
            .arg("--root")
            .arg(ctx.rt.root())
            .arg(verb)
            .arg(raw)
            .output();
        match out {
            Ok(o) => {
                use std::os::unix::process::ExitStatusExt;
                let text = String::from_utf8_lossy(&o.stderr);
                assert!(
                    o.status.code() != Some(101)
                        && o.status.signal().is_none()
                        && !text.contains("panicked"),
                    "{verb} with a non-UTF-8 id crashed: {text}"
                );
            }
            Err(e) => panic!("spawn {}: {e}", ctx.rt.bin().display()),
        }
    }
    assert!(leftovers(&ctx, &id).is_empty());
}

/// The generator is deterministic (a failing seed reproduces) and covers the byte-level kinds.
#[test]
fn garbage_generator_is_deterministic_and_varied() {
    let base = bundle::default_config();
    let a = faults::garbage_config(&base, 7, "x");
    let b = faults::garbage_config(&base, 7, "x");
    assert_eq!(a, b);
    let mut kinds = std::collections::BTreeSet::new();
    let mut rng = Rng::new(1);
    for _ in 0..300 {
        let (bytes, what) = faults::garbage_config(&base, rng.next_u64(), "x");
        kinds.insert(match serde_json::from_slice::<Value>(&bytes) {
            Ok(_) => "json",
            Err(_) if what.contains("nested") => "deep",
            Err(_) => "broken",
        });
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}
