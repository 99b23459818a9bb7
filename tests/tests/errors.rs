//! Bad input: every failure is a non-zero exit with an error on stderr, and a failed create leaves nothing behind.

use carte_tests::*;

/// `create` with whatever config.json the bundle holds now (no rewrite).
fn create_raw(ctx: &Ctx, id: &str, b: &Bundle) -> Out {
    ctx.rt.cmd(&["create", id, "--bundle", b.path_str()])
}

#[test]
fn malformed_config_json_is_rejected() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("badjson");
    let b = ctx.bundle();
    b.write_raw("{\"ociVersion\": \"1.0.2\", \"process\": ")
        .ok();
    let out = create_raw(&ctx, &id, &b).fails();
    if is_carte() {
        assert!(out.stderr.contains("config.json"), "{out}");
    }
    ctx.assert_no_leaks(&id);
}

#[test]
fn wrong_field_type_is_named() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("badtype");
    let mut b = ctx.bundle();
    b.set("/process/args", json!("sh -c true"));
    b.write().ok();
    let out = create_raw(&ctx, &id, &b).fails();
    if is_carte() {
        assert!(
            out.stderr.contains("config.json") && out.stderr.contains("process.args"),
            "{out}"
        );
    }
    ctx.assert_no_leaks(&id);
}

#[test]
fn missing_rootfs_is_rejected() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("norootfs");
    let mut b = ctx.bundle();
    b.set("/root/path", json!("no-such-rootfs"));
    let out = ctx.rt.create(&id, &b, &[]).fails();
    if is_carte() {
        assert!(out.stderr.contains("no-such-rootfs"), "{out}");
    }
    ctx.assert_no_leaks(&id);
}

#[test]
fn missing_bundle_is_rejected() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("nobundle");
    let dir = ctx.tempdir().join("absent");
    ctx.rt
        .cmd(&["create", &id, "--bundle", &dir.display().to_string()])
        .fails();
    ctx.assert_no_leaks(&id);
}

#[test]
fn missing_executable_fails_create() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("noexe");
    let mut b = ctx.bundle();
    b.args(&["/no/such/program"]);
    let out = ctx.rt.create(&id, &b, &[]).fails();
    if is_carte() {
        assert!(out.stderr.contains("/no/such/program"), "{out}");
    }
    ctx.assert_no_leaks(&id);
}

#[test]
fn invalid_id_is_rejected() {
    let Some(ctx) = Ctx::new() else { return };
    let b = ctx.bundle();
    b.write().ok();
    for id in ["../escape", "a/b", ".."] {
        ctx.rt
            .cmd(&["create", id, "--bundle", b.path_str()])
            .fails();
    }
    let left: Vec<_> = std::fs::read_dir(ctx.rt.root())
        .map(|d| d.flatten().count())
        .into_iter()
        .collect();
    assert_eq!(left, [0], "state root is not empty");
}

#[test]
fn unknown_id_fails_every_verb() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("ghost");
    for args in [
        vec!["state", id.as_str()],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let out = ctx.rt.cmd(&args).fails();
        if is_carte() {
            assert!(out.stderr.contains("does not exist"), "{out}");
        }
    }
}

#[test]
fn duplicate_id_is_rejected_and_first_survives() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("dup");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    ctx.rt.create(&id, &b, &[]).ok();
    let pid = ctx.rt.state(&id)["pid"].clone();
    let b2 = ctx.bundle();
    let out = ctx.rt.create(&id, &b2, &[]).fails();
    if is_carte() {
        assert!(out.stderr.contains("already exists"), "{out}");
    }
    let s = ctx.rt.state(&id);
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["bundle"], b.path_str());
}

#[test]
fn bad_signal_is_named_and_harmless() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("badsig");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    ctx.rt.run(&id, &b, &["-d"]).ok();
    for sig in ["SIGFOO", "NOTASIGNAL", "999"] {
        let out = ctx.rt.kill(&id, sig).fails();
        if is_carte() {
            assert!(out.stderr.contains(sig), "{out}");
        }
    }
    assert_eq!(ctx.rt.status(&id), "running");
}

#[test]
fn unknown_namespace_type_is_rejected() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("badns");
    let mut b = ctx.bundle();
    b.push("/linux/namespaces", json!({"type": "bogus"}));
    let out = ctx.rt.create(&id, &b, &[]).fails();
    if is_carte() {
        assert!(
            out.stderr.contains("config.json") && out.stderr.contains("bogus"),
            "{out}"
        );
    }
    ctx.assert_no_leaks(&id);
}
