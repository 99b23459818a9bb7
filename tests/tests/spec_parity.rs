//! Config fields whose meaning the runtime spec fixes, where carte once read them differently from
//! runc or from the spec: each test names the sentence it checks and runs against carte and runc.

use carte_tests::*;

/// config.md (1.1+): a relative mount destination "MUST be interpreted as relative to `/`"
/// (deprecated). runc 1.1.5 accepts it too.
#[test]
fn a_relative_mount_destination_is_relative_to_root() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.mount(
        json!({"destination": "mnt/reldest", "type": "tmpfs", "source": "tmpfs",
                   "options": ["size=1m"]}),
    );
    let id = ctx.id("reldest");
    let out = ctx
        .rt
        .run_sh(&id, &mut b, "grep -c ' /mnt/reldest ' /proc/self/mountinfo");
    assert_eq!(out.trim(), "1", "tmpfs not at /mnt/reldest");
    ctx.assert_no_leaks(&id);
}

/// config.md (1.2): "If the `idmap` option is specified ... and the container does not have a
/// user namespace ... an error MUST be returned". runc 1.1.5 predates idmapped mounts and passes
/// the word to the kernel as data, which a bind mount ignores: it runs the container.
#[test]
fn idmap_without_a_user_namespace_is_an_error() {
    let Some(ctx) = Ctx::new() else { return };
    let src = ctx.tempdir();
    let mut b = ctx.bundle();
    b.mount(json!({"destination": "/m", "type": "bind",
                   "source": src.display().to_string(), "options": ["rbind", "idmap"]}));
    b.args(&["true"]);
    let id = ctx.id("idmap");
    let out = ctx.rt.create(&id, &b, &[]);
    if is_carte() {
        let out = out.fails();
        assert!(
            out.stderr.contains("mounts[") && out.stderr.contains("idmap"),
            "{out}"
        );
    } else {
        out.ok();
        ctx.rt.delete_force(&id).ok();
    }
    ctx.assert_no_leaks(&id);
}

/// runtime.md, "State": `pid` is "the ID of the container process. For hooks executed in the runtime
/// namespace, it is the pid as seen by the runtime. For hooks executed in the container namespace, it
/// is the pid as seen by the container." createContainer and startContainer run in the container's
/// namespaces; prestart and createRuntime in the runtime's.
#[test]
fn hooks_see_the_pid_of_their_namespace() {
    let Some(ctx) = Ctx::new() else { return };
    let dir = ctx.tempdir();
    let mut b = ctx.bundle();
    let save = |to: String| json!({"path": "/bin/busybox", "args": ["busybox", "sh", "-c", format!("cat > {to}")]});
    b.hook(
        "createRuntime",
        save(dir.join("runtime.json").display().to_string()),
    );
    b.hook(
        "createContainer",
        save(dir.join("container.json").display().to_string()),
    );
    b.hook("startContainer", save("/tmp/start.json".into()));
    b.args(&["true"]);
    b.set("/root/readonly", json!(false));
    let id = ctx.id("hookpid");
    ctx.rt.create(&id, &b, &[]).ok();
    let host_pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    ctx.rt.start(&id).ok();
    ctx.rt.wait_status(&id, "stopped");
    let pid_in = |p: std::path::PathBuf| -> i64 {
        let text =
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", p.display()));
        v["pid"].as_i64().unwrap_or(-1)
    };
    assert_eq!(
        pid_in(dir.join("runtime.json")),
        host_pid,
        "createRuntime (runtime namespace)"
    );
    assert_eq!(
        pid_in(dir.join("container.json")),
        1,
        "createContainer (container namespace)"
    );
    assert_eq!(
        pid_in(b.rootfs().join("tmp/start.json")),
        1,
        "startContainer (container namespace)"
    );
    ctx.rt.delete(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// config.md: "Runtimes SHOULD NOT fail if the container configuration requests capabilities that cannot
/// be granted, for example, if the runtime operates in a restricted environment with a limited set of
/// capabilities." Here: one this host's root does not hold itself (this VM lacks CAP_SYS_RESOURCE).
/// carte runs the container without it and warns; runc 1.1.5 fails with "unable to apply caps".
#[test]
fn a_capability_the_runtime_lacks_is_skipped_with_a_warning() {
    let Some(ctx) = Ctx::new() else { return };
    let status = std::fs::read_to_string("/proc/self/status").expect("read status");
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    // CAP_SYS_RESOURCE is 24.
    if bnd & (1 << 24) != 0 {
        eprintln!(
            "skipped: this host's root holds CAP_SYS_RESOURCE, so every capability can be granted"
        );
        return;
    }
    let mut b = ctx.bundle();
    for set in ["bounding", "permitted", "effective"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SYS_RESOURCE"),
        );
    }
    let id = ctx.id("capnothere");
    b.sh("grep CapEff /proc/self/status");
    let out = ctx.rt.run(&id, &b, &[]);
    if is_carte() {
        let out = out.ok();
        assert!(
            out.stderr.contains("CAP_SYS_RESOURCE cannot be granted"),
            "{out}"
        );
        let eff = out.stdout.split_whitespace().nth(1).unwrap_or_default();
        let eff = u64::from_str_radix(eff, 16).unwrap_or(u64::MAX);
        assert_eq!(eff & (1 << 24), 0, "{out}");
        assert_ne!(eff, 0, "the other capabilities were granted: {out}");
    } else {
        out.fails();
    }
    ctx.assert_no_leaks(&id);
}

/// config-linux.md, "Devices": "If a file already exists at `path` that does not match the requested
/// device, the runtime MUST generate an error." Carte used to replace it; runc 1.1.5 keeps the file and
/// creates no device, without an error.
#[test]
fn a_device_path_holding_another_file_is_an_error() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    // Outside /dev, which is a fresh tmpfs: the image's own file stays where the device would go.
    std::fs::write(b.rootfs().join("carte-dev"), "not a device").expect("write");
    b.push(
        "/linux/devices",
        json!({"path": "/carte-dev", "type": "c", "major": 1, "minor": 3, "fileMode": 438}),
    );
    b.args(&["true"]);
    let id = ctx.id("devconflict");
    let out = ctx.rt.create(&id, &b, &[]);
    if is_carte() {
        let out = out.fails();
        assert!(out.stderr.contains("/carte-dev"), "{out}");
    } else {
        out.ok();
        ctx.rt.delete_force(&id).ok();
    }
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("carte-dev")).unwrap_or_default(),
        "not a device",
        "the image's file was replaced"
    );
    ctx.assert_no_leaks(&id);
}
