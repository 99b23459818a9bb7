//! Verbs given the flags and inputs engines and other suites really send, compared with runc 1.1.5: `--pid-file`
//! (kept after delete, safe under concurrent creates), `exec` (`--cgroup`, `--apparmor`, `--process-label`,
//! `--env`, `--cap`, a process.json without `user`), `kill` (signal 0, real-time signals with `--all`), and the
//! defaults `carte-bundle` writes against `carte spec`'s.

use carte_tests::*;
use std::path::{Path, PathBuf};

/// A detached container whose init sleeps, in an explicit cgroup under the test parent (same place for carte
/// and runc); returns its id, bundle and init's host pid.
fn running(ctx: &Ctx, tag: &str, edit: impl FnOnce(&mut Bundle)) -> (String, Bundle, i64) {
    let id = ctx.id(tag);
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    edit(&mut b);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(-1);
    assert!(pid > 0, "{id} has no pid");
    (id, b, pid)
}

fn read_pid(path: &Path) -> i64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match text.trim().parse() {
        Ok(p) if p > 0 => p,
        _ => panic!("pid file {} holds {text:?}", path.display()),
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---- --pid-file ----

/// runc writes the pid file and never removes it: engines read it after the container is gone.
#[test]
fn pid_file_outlives_delete_and_a_foreground_run() {
    let Some(ctx) = Ctx::new() else { return };
    let dir = ctx.tempdir();
    let id = ctx.id("pidkeep");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    let pid_file = dir.join("init.pid");
    let pf = pid_file.display().to_string();
    ctx.rt.create(&id, &b, &["--pid-file", &pf]).ok();
    let pid = read_pid(&pid_file);
    assert_eq!(json!(pid), ctx.rt.state(&id)["pid"]);
    ctx.rt.delete_force(&id).ok();
    assert_eq!(read_pid(&pid_file), pid, "the pid file changed or went");

    let id = ctx.id("pidrun");
    let run_file = dir.join("run.pid");
    b.args(&["true"]);
    ctx.rt
        .run(&id, &b, &["--pid-file", &run_file.display().to_string()])
        .ok();
    assert!(read_pid(&run_file) > 0);
    // Nothing but the two pid files: no temporary left next to them.
    assert_eq!(names_in(&dir), ["init.pid", "run.pid"]);
}

/// Concurrent creates whose pid files share a directory (`pid.1`, `pid.2`…) each get their own, holding their
/// own init's pid. They used to share one temporary `pid.tmp`, and one create failed with `rename: ENOENT`.
#[test]
fn concurrent_creates_write_their_own_pid_files() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.write().unwrap_or_else(|e| panic!("write config: {e:#}"));
    let bp = b.path_str().to_string();
    for round in 0..3 {
        let dir = ctx.tempdir();
        let ids: Vec<String> = (0..8).map(|_| ctx.id("pidpar")).collect();
        let calls: Vec<Vec<String>> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let pf = dir.join(format!("pid.{n}")).display().to_string();
                ["create", "--bundle", &bp, "--pid-file", &pf, id]
                    .map(String::from)
                    .to_vec()
            })
            .collect();
        for r in faults::concurrently(&ctx.rt, &calls) {
            match r {
                Ok(out) => {
                    out.ok();
                }
                Err(e) => panic!("round {round}: {e:#}"),
            }
        }
        for (n, id) in ids.iter().enumerate() {
            let pid = read_pid(&dir.join(format!("pid.{n}")));
            assert_eq!(json!(pid), ctx.rt.state(id)["pid"], "round {round}, {id}");
        }
        let want: Vec<String> = (0..8).map(|n| format!("pid.{n}")).collect();
        assert_eq!(names_in(&dir), want, "round {round}");
        for id in &ids {
            ctx.rt.delete_force(id).ok();
        }
    }
}

// ---- kill ----

/// Signal 0 is the liveness probe: success while the container runs, an error once it is stopped.
#[test]
fn kill_zero_probes_liveness() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _b, _pid) = running(&ctx, "kill0", |_| {});
    ctx.rt.kill(&id, "0").ok();
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.kill(&id, "KILL").ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.kill(&id, "0").fails();
}

/// A real-time signal reaches the process, with `--all` too (it used to become signal 0 there). The init is a
/// shell trapping SIGRTMIN+3 (37 with glibc, which keeps 32 and 33) to write a file.
#[test]
fn kill_all_delivers_real_time_signals() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, b, _pid) = running(&ctx, "killrt", |b| {
        b.readonly_root(false);
        b.sh("trap 'echo $((n=n+1)) > /tmp/got' 37; : > /tmp/ready; while :; do sleep 0.05; done");
    });
    let got = b.rootfs().join("tmp/got");
    assert!(
        poll_until(runtime::TIMEOUT, || b.rootfs().join("tmp/ready").exists()),
        "the trap was never set"
    );
    let count = || {
        std::fs::read_to_string(&got)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    ctx.rt.cmd(&["kill", "--all", &id, "37"]).ok();
    assert!(
        poll_until(runtime::TIMEOUT, || count() >= 1),
        "signal 37 with --all never arrived"
    );
    ctx.rt.cmd(&["kill", &id, "37"]).ok();
    assert!(
        poll_until(runtime::TIMEOUT, || count() >= 2),
        "signal 37 to the init never arrived"
    );
    // Names: runc 1.1.5 knows only the classic signal names and refuses these ("unknown signal").
    // One at a time: the shell runs its trap once for every signal pending when it gets to it, so
    // two sent before it ran (a slow, emulated host) would count as one.
    for (name, want) in [("RTMIN+3", 3), ("SIGRTMIN+3", 4)] {
        let out = ctx.rt.cmd(&["kill", "--all", &id, name]);
        if is_carte() {
            out.ok();
            assert!(
                poll_until(runtime::TIMEOUT, || count() >= want),
                "{name} by name never arrived"
            );
        } else {
            assert!(out.fails().stderr.contains("unknown signal"));
        }
    }
    assert_eq!(ctx.rt.status(&id), "running");
}

// ---- exec ----

/// `exec --cgroup CONTROLLER:PATH` runs the process in that sub-cgroup of the container's cgroup (the other
/// hierarchies keep the container's); paths leaving the container's cgroup, missing sub-cgroups, unknown
/// controllers and a bare PATH that some hierarchy lacks are refused, as runc refuses them.
#[test]
fn exec_cgroup_joins_a_sub_cgroup() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(mem) = cgroups::hierarchy_for("memory").filter(|h| !h.v2) else {
        eprintln!("skipped: needs a cgroup v1 memory hierarchy");
        return;
    };
    let (id, _b, _pid) = running(&ctx, "execcg", |_| {});
    let cg = format!("/carte-test/{id}");
    let sub: PathBuf = mem.mount.join(cg.trim_start_matches('/')).join("sub");
    std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("mkdir {}: {e}", sub.display()));
    let dir = ctx.tempdir();
    let pf = dir.join("exec.pid").display().to_string();
    ctx.rt
        .cmd(&[
            "exec",
            "-d",
            "--pid-file",
            &pf,
            "--cgroup",
            "memory:sub",
            &id,
            "sleep",
            "1000",
        ])
        .ok();
    let pid = read_pid(Path::new(&pf));
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let line = |ctrl: &str| {
        cgroups
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == ctrl))
            })
            .map(|l| l.rsplit(':').next().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(line("memory"), format!("{cg}/sub"), "{cgroups}");
    assert_eq!(line("pids"), cg, "{cgroups}");
    for bad in ["memory:../x", "memory:nosuch", "nope:sub", "sub"] {
        let out = ctx.rt.cmd(&["exec", "--cgroup", bad, &id, "true"]).fails();
        if is_carte() {
            assert!(out.stderr.contains("--cgroup"), "{bad}: {out}");
        }
    }
    // The sub-cgroup is the test's: empty it and remove it before the container goes.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(
        poll_until(AUDIT_GRACE, || std::fs::remove_dir(&sub).is_ok()),
        "rmdir {}",
        sub.display()
    );
}

/// `--apparmor` and `--process-label` are applied where the module is on; on a host without it the exec is
/// refused naming the flag. runc 1.1.5 refuses too: the label with "selinux … disabled", the profile only
/// when its write to /proc/self/attr/exec fails (EINVAL).
#[test]
fn exec_security_labels_are_refused_without_the_module() {
    let Some(ctx) = Ctx::new() else { return };
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let (id, _b, _pid) = running(&ctx, "execlsm", |_| {});
    if !apparmor {
        let out = ctx
            .rt
            .cmd(&["exec", "--apparmor", "carte-test-profile", &id, "true"])
            .fails();
        if is_carte() {
            assert!(
                out.stderr.contains("--apparmor") && out.stderr.contains("AppArmor"),
                "{out}"
            );
        } else {
            assert!(out.stderr.contains("apparmor"), "{out}");
        }
    }
    if !selinux {
        let out = ctx
            .rt
            .cmd(&[
                "exec",
                "--process-label",
                "system_u:system_r:container_t:s0",
                &id,
                "true",
            ])
            .fails();
        if is_carte() {
            assert!(out.stderr.contains("--process-label"), "{out}");
        }
        assert!(out.stderr.to_lowercase().contains("selinux"), "{out}");
    }
    if apparmor && selinux {
        eprintln!("skipped: both modules are on; the refusals cannot be shown here");
    }
    assert_eq!(ctx.rt.status(&id), "running");
}

/// `--env NAME=v` for a NAME the process has replaces it (runc's init sets each entry, so the last wins); an
/// unknown `--cap` is a warning, as in config.json; a process.json without `user` runs as uid 0.
#[test]
fn exec_env_caps_and_process_json_as_runc() {
    let Some(ctx) = Ctx::new() else { return };
    let (id, _b, _pid) = running(&ctx, "execenv", |b| {
        b.env("FOO=old");
    });
    let out = ctx
        .rt
        .cmd(&[
            "exec",
            "--env",
            "FOO=new",
            "--env",
            "BAR=1",
            &id,
            "sh",
            "-c",
            "echo $FOO $BAR; env | grep -c '^FOO='",
        ])
        .ok();
    assert_eq!(out.stdout, "new 1\n1\n");

    let out = ctx.rt.cmd(&["exec", "--cap", "CAP_NOPE", &id, "true"]).ok();
    assert!(out.stderr.contains("CAP_NOPE"), "no warning: {out}");

    let dir = ctx.tempdir();
    let p = dir.join("process.json");
    let doc = json!({"args": ["id", "-u"], "cwd": "/", "env": ["PATH=/bin"]});
    std::fs::write(&p, doc.to_string()).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    let out = ctx
        .rt
        .cmd(&["exec", "--process", &p.display().to_string(), &id])
        .ok();
    assert_eq!(out.stdout, "0\n");
}

// ---- defaults ----

/// carte-bundle's config.json equals `carte spec`'s in everything an image does not decide (one copy of the
/// defaults, `common/default_spec.rs`). Against runc, `runc spec` differs only where carte chose to: its OCI
/// version and the cgroup namespace.
#[test]
fn bundle_tool_defaults_match_spec() {
    let Some(ctx) = Ctx::new() else { return };
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let tool = ws.join("target/release/carte-bundle");
    let image = ws.join("target/images/busybox-oci.tar");
    assert!(
        tool.exists(),
        "{} missing: build carte-bundle",
        tool.display()
    );
    assert!(
        image.exists(),
        "{} missing: run tests/images.sh target/images",
        image.display()
    );
    let dir = ctx.tempdir();
    let bundle = dir.join("unpacked");
    let out = std::process::Command::new(&tool)
        .args(["-q", "unpack"])
        .arg(&image)
        .arg(&bundle)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec_dir = dir.join("spec");
    std::fs::create_dir(&spec_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    ctx.rt.spec(&spec_dir, false).ok();
    let read = |p: PathBuf| -> Value {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let mut tool_cfg = read(bundle.join("config.json"));
    let mut spec_cfg = read(spec_dir.join("config.json"));
    // What the image decides, and the two choices carte-bundle makes on purpose (no terminal, writable root).
    for v in [&mut tool_cfg, &mut spec_cfg] {
        for field in ["args", "env", "cwd", "user", "terminal"] {
            v["process"][field] = Value::Null;
        }
        v["root"]["readonly"] = Value::Null;
        v["annotations"] = Value::Null;
    }
    if !is_carte() {
        // runc 1.1.5's `runc spec`: OCI version 1.0.2-dev and no cgroup namespace; carte's is 1.2.0 with one.
        assert_eq!(spec_cfg["ociVersion"], "1.0.2-dev");
        spec_cfg["ociVersion"] = tool_cfg["ociVersion"].clone();
        if let Some(ns) = tool_cfg["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "cgroup");
        }
        spec_cfg["hostname"] = tool_cfg["hostname"].clone();
    }
    assert_eq!(tool_cfg, spec_cfg);
    // Not a vacuous comparison: the shared parts are there.
    assert_eq!(
        spec_cfg["linux"]["maskedPaths"].as_array().map(Vec::len),
        Some(10)
    );
    let devpts = spec_cfg["mounts"][2]["options"].to_string();
    assert!(devpts.contains("gid=5"), "{devpts}");
}
