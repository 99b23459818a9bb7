//! Global flags (`--version`, `--log`, `--log-format`, `--debug`) and the `spec` verb.

use carte_tests::*;

#[test]
fn version_names_runtime_and_spec() {
    let Some(ctx) = Ctx::new() else { return };
    let out = ctx.rt.cmd(&["--version"]).ok();
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(first.contains(" version "), "{out}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with("spec: 1.")),
        "{out}"
    );
    if is_carte() {
        let v = first.strip_prefix("carte version ").unwrap_or_default();
        let parts: Vec<&str> = v.split('.').collect();
        assert_eq!(parts.len(), 3, "not X.Y.Z: {first}");
        assert!(
            parts.iter().all(|p| p.parse::<u32>().is_ok()),
            "not X.Y.Z: {first}"
        );
    }
}

/// RFC 3339 shape check: `YYYY-MM-DDTHH:MM:SS` then fraction and a zone.
fn looks_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && (t.ends_with('Z') || t.ends_with('z') || t[19..].contains(['+', '-']))
}

#[test]
fn json_log_ends_with_the_error() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("jsonlog");
    let log = ctx.tempdir().join("log.json");
    let log_s = log.display().to_string();
    let opts = runtime::CallOpts {
        global: vec!["--log".into(), log_s, "--log-format".into(), "json".into()],
        ..Default::default()
    };
    let out = ctx.rt.cmd_opts(&["state", &id], opts);
    assert!(!out.success(), "{out}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let last = text.lines().last().unwrap_or_default();
    let v: Value = match serde_json::from_str(last) {
        Ok(v) => v,
        Err(e) => panic!("last log line is not JSON ({e}): {text:?}"),
    };
    assert_eq!(v["level"], "error", "{last}");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{last}");
    assert!(v["time"].as_str().is_some_and(looks_rfc3339), "{last}");
    if is_carte() {
        assert!(
            v["msg"]
                .as_str()
                .unwrap_or_default()
                .contains("does not exist"),
            "{last}"
        );
        for line in text.lines() {
            assert!(
                serde_json::from_str::<Value>(line).is_ok(),
                "not JSON: {line}"
            );
        }
    }
}

#[test]
fn debug_narrates_create_on_the_log() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("debug");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.write().ok();
    let log = ctx.tempdir().join("debug.log");
    let opts = runtime::CallOpts {
        global: vec![
            "--debug".into(),
            "--log".into(),
            log.display().to_string(),
            "--log-format".into(),
            "json".into(),
        ],
        ..Default::default()
    };
    ctx.rt
        .cmd_opts(&["create", &id, "--bundle", b.path_str()], opts)
        .ok();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "debug"),
        "no debug lines: {text:?}"
    );
    if is_carte() {
        assert_eq!(
            lines.len(),
            text.lines().count(),
            "non-JSON lines: {text:?}"
        );
        assert!(lines.iter().all(|l| l["level"] != "error"), "{text:?}");
    }
}

#[test]
fn text_log_without_debug_stays_quiet_on_success() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("quiet");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.write().ok();
    let log = ctx.tempdir().join("text.log");
    let opts = runtime::CallOpts {
        global: vec!["--log".into(), log.display().to_string()],
        ..Default::default()
    };
    ctx.rt
        .cmd_opts(&["run", &id, "--bundle", b.path_str()], opts)
        .ok();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("level=debug") && !text.contains("error"),
        "{text:?}"
    );
}

#[test]
fn spec_writes_the_default_config() {
    let Some(ctx) = Ctx::new() else { return };
    let dir = ctx.tempdir();
    ctx.rt.spec(&dir, false).ok();
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(v["process"]["terminal"], true, "{text}");
    assert_eq!(v["process"]["args"], json!(["sh"]), "{text}");
    assert_eq!(v["root"]["path"], "rootfs", "{text}");
    let kinds: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for k in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(kinds.contains(&k), "{k} missing: {text}");
    }
    // A second spec must not clobber an existing config.json.
    std::fs::write(dir.join("config.json"), "{\"mine\": true}").ok();
    ctx.rt.spec(&dir, false).fails();
    let kept = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    assert_eq!(kept, "{\"mine\": true}");
}

#[test]
fn spec_rootless_adds_a_user_namespace() {
    let Some(ctx) = Ctx::new() else { return };
    let dir = ctx.tempdir();
    ctx.rt.spec(&dir, true).ok();
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    let has_user = v["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["type"] == "user");
    assert!(has_user, "{text}");
    assert!(
        v["linux"]["uidMappings"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    assert!(
        v["linux"]["gidMappings"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{text}"
    );
}

/// `--trace-file` (carte's own; runc has no such flag): every step of a `run` as a Chrome trace event, the
/// runtime and the container's init on their own timelines, in a JSON array Perfetto opens (its closing
/// bracket may be left off). `--debug` lines carry the time since start.
#[test]
fn trace_file_shows_the_steps_of_each_process() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        eprintln!("skipped: --trace-file and elapsed= are carte's own");
        return;
    }
    let dir = ctx.tempdir();
    let trace = dir.join("trace.json");
    let log = dir.join("debug.log");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.write().expect("write config.json");
    let id = ctx.id("trace");
    let (t, l) = (trace.display().to_string(), log.display().to_string());
    ctx.rt
        .cmd(&[
            "--debug",
            "--log",
            &l,
            "--trace-file",
            &t,
            "run",
            &id,
            "--bundle",
            b.path_str(),
        ])
        .ok();
    let text = std::fs::read_to_string(&trace).expect("read trace");
    let closed = format!("{}]", text.trim_end().trim_end_matches(','));
    let events: Vec<Value> = serde_json::from_str(&closed).expect("trace is a JSON array");
    let steps: Vec<&Value> = events.iter().filter(|e| e["ph"] == "i").collect();
    let pids: std::collections::BTreeSet<i64> =
        steps.iter().filter_map(|e| e["pid"].as_i64()).collect();
    assert!(
        pids.len() >= 2,
        "the runtime and the init have their own timelines: {pids:?}"
    );
    let names: Vec<&str> = steps.iter().filter_map(|e| e["name"].as_str()).collect();
    for want in ["clone the container init", "pivot_root into", "created"] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no step {want:?} in {names:?}"
        );
    }
    let ts: Vec<f64> = steps.iter().filter_map(|e| e["ts"].as_f64()).collect();
    assert_eq!(ts.len(), steps.len(), "every step has a timestamp");
    let named = events
        .iter()
        .filter(|e| e["name"] == "process_name")
        .count();
    assert_eq!(named, pids.len(), "each process names its timeline once");
    let debug = std::fs::read_to_string(&log).expect("read log");
    assert!(
        debug
            .lines()
            .filter(|l| l.contains("level=debug"))
            .all(|l| l.contains(" elapsed=")),
        "{debug}"
    );
    ctx.assert_no_leaks(&id);
}

/// The global flags go before the verb, as with runc (urfave/cli: "flag provided but not defined"); after it
/// they are refused with a non-zero exit, and nothing is done with the container named.
#[test]
fn global_flags_after_the_verb_are_refused() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("late-flag");
    let mut b = ctx.bundle();
    b.args(&["sleep", "100"]);
    ctx.rt.create(&id, &b, &[]).ok();
    let root = ctx.rt.root().display().to_string();
    for flag in [["--root", root.as_str()], ["--log", "/dev/null"]] {
        let out = std::process::Command::new(ctx.rt.bin())
            .args(["state", flag[0], flag[1], &id])
            .output()
            .expect("run the runtime");
        assert!(
            !out.status.success(),
            "state {} accepted after the verb",
            flag[0]
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&flag[0][2..]), "{err}");
    }
    assert_eq!(ctx.rt.status(&id), "created");
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}
