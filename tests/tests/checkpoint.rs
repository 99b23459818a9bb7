//! `checkpoint` and `restore` with criu, the scenarios of runc's checkpoint.bats: a counting process goes on
//! counting from where it was, `--leave-running` keeps the original, a checkpoint restored under a new id (in its
//! own cgroup, with its bind mount taken from the new bundle), restore into another cgroup, a foreground restore,
//! `--pre-dump`/`--parent-path`, and the statuses that cannot be checkpointed. Network and stdio: checkpoint_io.rs.
//!
//! The container's stdio are redirected inside it to its own /dev/null: the harness gives a detached container
//! unlinked host files, which criu cannot dump (runc's bats tests use pipes or a console for the same reason).
//! Every test needs a `criu` that works on this kernel (tests/setup.sh installs one) and is skipped without.

use carte_tests::criu::*;
use carte_tests::*;
use std::path::Path;
use std::process::Command;

#[test]
fn a_restored_counter_counts_on() {
    let Some(ctx) = criu_ctx() else { return };
    let Checkpointed {
        id,
        out,
        b,
        images,
        work,
    } = checkpointed_counter(&ctx, "cr-count");
    // runc removes a checkpointed container: its id is free for the restore.
    assert!(
        !ctx.rt.cmd(&["state", &id]).success(),
        "{id} still exists after checkpoint"
    );
    assert!(
        images.join("descriptors.json").exists(),
        "no descriptors.json in the images"
    );
    let pid = restore_counts_on(&ctx, &id, &b, &out, &images, &work, &[]);
    assert!(
        cgroup_line(pid, "memory").ends_with(&cgroup_of(&id)),
        "restored init is not in {}: {}",
        cgroup_of(&id),
        cgroup_line(pid, "memory")
    );
    // kill and delete treat it as any container.
    ctx.rt.kill(&id, "KILL").ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn leave_running_then_restore_under_a_new_id() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-orig");
    let out = ctx.tempdir();
    let mut b = counter(&ctx, &id, &out);
    start_counter(&ctx, &id, &b, &out);
    let pid = init_pid(&ctx, &id);
    let before = last(&out);
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &["--leave-running"]).ok();
    let after = last(&out);
    // The original goes on: same init, still counting.
    assert_eq!(ctx.rt.status(&id), "running");
    assert_eq!(init_pid(&ctx, &id), pid);
    wait_count(&out, after + 3);
    ctx.rt.delete_force(&id).ok();
    let original = counts(&out);

    // The copy: a new id, its own cgroup, and its /out bound from another host directory (the restore's bundle
    // is the one that says where bind mounts come from).
    let copy = ctx.id("cr-copy");
    let out2 = ctx.tempdir();
    b.cgroups_path(&cgroup_of(&copy));
    b.remove_mount("/out");
    b.mount(serde_json::json!({
        "destination": "/out", "type": "bind", "source": out2.display().to_string(), "options": ["rbind", "rw"]
    }));
    restore(&ctx, &copy, &b, &images, &work, &[]).ok();
    assert_eq!(ctx.rt.status(&copy), "running");
    let pid2 = init_pid(&ctx, &copy);
    assert!(
        cgroup_line(pid2, "memory").ends_with(&cgroup_of(&copy)),
        "restored init is not in {}: {}",
        cgroup_of(&copy),
        cgroup_line(pid2, "memory")
    );
    wait_count(&out2, 1);
    let resumed = counts(&out2);
    // It counts on from the checkpoint, not from 1, and the original's file got nothing more.
    assert!(
        resumed[0] > before && resumed[0] <= after + 1,
        "the copy started at {} (checkpoint between {before} and {after})",
        resumed[0]
    );
    assert_consecutive(&resumed);
    assert_eq!(
        counts(&out),
        original,
        "the copy wrote into the original's directory"
    );
    ctx.rt.delete_force(&copy).ok();
    ctx.assert_no_leaks(&copy);
}

#[test]
fn only_a_running_container_is_checkpointed() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-created");
    let mut b = ctx.bundle();
    b.args(&["sleep", "100"]);
    b.cgroups_path(&cgroup_of(&id));
    ctx.rt.create(&id, &b, &[]).ok();
    let (images, work) = paths(&ctx);
    let out = checkpoint(&ctx, &id, &images, &work, &[]).fails();
    assert!(out.stderr.contains("created"), "{}", out.stderr);
    // Refused, and left as it was.
    assert_eq!(ctx.rt.status(&id), "created");
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// `features` says checkpoint works where it does: runc's annotation (set when it is built with criu support),
/// carte's when `criu check` passes, and carte's pre-dump one when criu finds dirty memory tracking.
#[test]
fn features_advertise_checkpoint() {
    let Some(ctx) = Ctx::new() else { return };
    let f = ctx.rt.cmd(&["features"]).ok().json();
    let key = if is_carte() {
        "org.opencontainers.carte.checkpoint.enabled"
    } else {
        "org.opencontainers.runc.checkpoint.enabled"
    };
    let ready = criu_ready();
    let want = if ready || !is_carte() {
        "true"
    } else {
        "false"
    };
    assert_eq!(f["annotations"][key], want, "{f}");
    // Carte also says whether `--pre-dump` can work: criu must find the kernel's dirty memory tracking (runc says
    // nothing of it).
    if is_carte() {
        let tracks = Command::new("criu")
            .args(["check", "--feature", "mem_dirty_track"])
            .output()
            .is_ok_and(|o| o.status.success());
        let want = (ready && tracks).to_string();
        assert_eq!(
            f["annotations"]["org.opencontainers.carte.checkpoint.preDump"], want,
            "{f}"
        );
    }
}

/// runc's "checkpoint then restore into a different cgroup (via --manage-cgroups-mode ignore)": the restore's
/// bundle names another cgroup; criu leaves cgroups alone, and the tree is born where the runtime put criu. The
/// old cgroup went with the checkpoint, the new one has the bundle's limits, and `--pid-file` names the init.
#[test]
fn restore_into_another_cgroup_with_ignore_mode() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-cg");
    let out = ctx.tempdir();
    let mut b = counter(&ctx, &id, &out);
    b.resource("pids", serde_json::json!({"limit": 20}));
    start_counter(&ctx, &id, &b, &out);
    let old = Path::new("/sys/fs/cgroup/pids").join(cgroup_of(&id).trim_start_matches('/'));
    assert!(old.is_dir(), "{} missing", old.display());
    let (images, work) = paths(&ctx);
    // runc 1.1.5 predates the "ignore" mode (runc 1.2 added it) and refuses the word: there the restore goes
    // into the other cgroup with criu's default mode (soft) and runc's cgroup root.
    let mode: &[&str] = if is_carte() {
        &["--manage-cgroups-mode", "ignore"]
    } else {
        let refused = checkpoint(
            &ctx,
            &id,
            &images,
            &work,
            &["--manage-cgroups-mode", "ignore"],
        )
        .fails();
        assert!(
            refused.stderr.contains("manage cgroups mode"),
            "{}",
            refused.stderr
        );
        &[]
    };
    checkpoint(&ctx, &id, &images, &work, mode).ok();
    assert!(!old.exists(), "{} left after checkpoint", old.display());

    let new_cg = format!("{}-moved", cgroup_of(&id));
    b.cgroups_path(&new_cg);
    let pid_file = ctx.tempdir().join("pid");
    let pf = pid_file.display().to_string();
    let mut extra = mode.to_vec();
    extra.extend(["--pid-file", pf.as_str()]);
    let pid = restore_counts_on(&ctx, &id, &b, &out, &images, &work, &extra);
    let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
    assert_eq!(written.trim(), pid.to_string(), "pid file");
    assert!(!old.exists(), "restore recreated {}", old.display());
    let new = Path::new("/sys/fs/cgroup/pids").join(new_cg.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(new.join("pids.max"))
            .unwrap_or_default()
            .trim(),
        "20"
    );
    assert!(
        cgroup_line(pid, "pids").ends_with(&new_cg),
        "{}",
        cgroup_line(pid, "pids")
    );
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
    assert!(!new.exists(), "{} left after delete", new.display());
}

/// Without `--detach`, restore stays with the container as `run` does: it returns the container's exit status
/// once the container is gone, and removes it.
#[test]
fn a_foreground_restore_waits_for_the_container() {
    let Some(ctx) = criu_ctx() else { return };
    let Checkpointed {
        id,
        out,
        b,
        images,
        work,
    } = checkpointed_counter(&ctx, "cr-fg");
    let at_checkpoint = last(&out);
    b.write().expect("write config.json");
    let (i, w) = (images.display().to_string(), work.display().to_string());
    let fg = ctx
        .rt
        .spawn(
            &[
                "restore",
                "--image-path",
                &i,
                "--work-path",
                &w,
                "--bundle",
                b.path_str(),
                &id,
            ],
            runtime::CallOpts::default(),
        )
        .expect("spawn restore");
    wait_count(&out, at_checkpoint + 3);
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.kill(&id, "KILL").ok();
    let done = fg.wait();
    assert_eq!(done.code(), 137, "{done}");
    assert!(
        !ctx.rt.cmd(&["state", &id]).success(),
        "{id} kept after its foreground restore ended"
    );
    ctx.assert_no_leaks(&id);
}

/// runc's "checkpoint --pre-dump (bad --parent-path)" and "checkpoint --pre-dump and restore". A pre-dump needs
/// the kernel's soft-dirty memory tracking: where criu says it has none, the pre-dump fails and the container goes
/// on untouched.
#[test]
fn pre_dump_and_parent_path() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-pre");
    let out = ctx.tempdir();
    let b = counter(&ctx, &id, &out);
    start_counter(&ctx, &id, &b, &out);
    let dir = ctx.tempdir();
    let (parent, images, work) = (dir.join("parent"), dir.join("images"), dir.join("work"));
    let abs = parent.display().to_string();
    for bad in [abs.as_str(), "../no-such-dir"] {
        let out = checkpoint(&ctx, &id, &images, &work, &["--parent-path", bad]).fails();
        assert!(out.stderr.contains("--parent-path"), "{}", out.stderr);
    }
    assert_eq!(ctx.rt.status(&id), "running");
    let tracks = Command::new("criu")
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .is_ok_and(|o| o.status.success());
    let pre = checkpoint(&ctx, &id, &parent, &work, &["--pre-dump"]);
    if !tracks {
        eprintln!("criu: no memory dirty tracking on this kernel: pre-dump must fail");
        pre.fails();
        let now = last(&out);
        wait_count(&out, now + 2);
        assert_eq!(ctx.rt.status(&id), "running");
        ctx.rt.delete_force(&id).ok();
        ctx.assert_no_leaks(&id);
        return;
    }
    pre.ok();
    assert_eq!(ctx.rt.status(&id), "running");
    checkpoint(&ctx, &id, &images, &work, &["--parent-path", "../parent"]).ok();
    assert!(
        images.join("parent").exists(),
        "criu did not link the parent images"
    );
    restore_counts_on(&ctx, &id, &b, &out, &images, &work, &[]);
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// A restore that cannot work leaves nothing: from a directory without images criu fails, and the container's
/// state, cgroup and the rootfs bind criu was given are gone again. An id in use is refused before criu runs.
#[test]
fn a_failed_restore_leaves_nothing() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-fail");
    let out = ctx.tempdir();
    let b = counter(&ctx, &id, &out);
    let (images, work) = paths(&ctx);
    std::fs::create_dir_all(&images).expect("mkdir images");
    let failed = restore(&ctx, &id, &b, &images, &work, &[]).fails();
    assert!(!failed.stderr.is_empty(), "{failed}");
    assert!(
        !ctx.rt.cmd(&["state", &id]).success(),
        "{id} exists after a failed restore"
    );
    ctx.assert_no_leaks(&id);

    // The id of a running container.
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    wait_count(&out, 2);
    let copy = ctx.id("cr-copy");
    let mut b2 = counter(&ctx, &copy, &ctx.tempdir());
    checkpoint(&ctx, &id, &images, &work, &["--leave-running"]).ok();
    let taken = restore(&ctx, &id, &b, &images, &work, &[]).fails();
    assert!(taken.stderr.contains("exists"), "{taken}");
    assert_eq!(ctx.rt.status(&id), "running");
    // The images themselves are good: under a free id they restore.
    b2.cgroups_path(&format!("/carte-test/{copy}"));
    restore(&ctx, &copy, &b2, &images, &work, &[]).ok();
    assert_eq!(ctx.rt.status(&copy), "running");
    ctx.rt.delete_force(&copy).ok();
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&copy);
    ctx.assert_no_leaks(&id);
}

/// A paused container can be checkpointed too (criu finds its freezer cgroup frozen); it is restored running.
#[test]
fn a_paused_container_is_checkpointed_and_restored_running() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-paused");
    let out = ctx.tempdir();
    let b = counter(&ctx, &id, &out);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    wait_count(&out, 2);
    ctx.rt.cmd(&["pause", &id]).ok();
    assert_eq!(ctx.rt.status(&id), "paused");
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &[]).ok();
    restore_counts_on(&ctx, &id, &b, &out, &images, &work, &[]);
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// runc restores through criu's RPC and runs the prestart and createRuntime hooks when criu says
/// `setup-namespaces`: the restored tree exists, in its namespaces, and none of it runs yet. Each hook gets the
/// container's state with the restored init's host pid; the counter has not moved when they run. (The spec says
/// nothing of restore; runc's criuNotifications is the reference. The in-container hooks, createContainer and
/// startContainer, cannot run: no process of the container is about to exec.)
#[test]
fn restore_runs_prestart_and_create_runtime_hooks() {
    let Some(ctx) = criu_ctx() else { return };
    let mut c = checkpointed_counter(&ctx, "cr-hooks");
    let at_checkpoint = last(&c.out);
    // Only the restore's bundle has the hooks: they record their state and the count when they run.
    let log = ctx.tempdir();
    for kind in ["prestart", "createRuntime"] {
        let script = format!(
            "cat > {dir}/{kind}.json; tail -n 1 {out}/count > {dir}/{kind}.count",
            dir = log.display(),
            out = c.out.display()
        );
        c.b.hook(
            kind,
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}),
        );
    }
    let pid = restore_counts_on(&ctx, &c.id, &c.b, &c.out, &c.images, &c.work, &[]);
    for kind in ["prestart", "createRuntime"] {
        let text = std::fs::read_to_string(log.join(format!("{kind}.json")))
            .unwrap_or_else(|e| panic!("the {kind} hook did not run at restore: {e}"));
        let s: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind}: {e}: {text}"));
        assert_eq!(s["id"], c.id.as_str(), "{kind}: {s}");
        assert_eq!(s["pid"], pid, "{kind}: {s}");
        assert_eq!(s["bundle"], c.b.path_str(), "{kind}: {s}");
        let count = std::fs::read_to_string(log.join(format!("{kind}.count"))).unwrap_or_default();
        assert_eq!(
            count.trim(),
            at_checkpoint.to_string(),
            "{kind}: the restored counter ran before the hook"
        );
        // runc 1.1.5 derives the status from an init it does not know yet and says "stopped"; carte says what
        // create says to these hooks: the container is being made.
        let want = if is_carte() { "creating" } else { "stopped" };
        assert_eq!(s["status"], want, "{kind}: {s}");
    }
    ctx.rt.delete_force(&c.id).ok();
    ctx.assert_no_leaks(&c.id);
}

/// A createRuntime hook that fails at restore fails the restore, as at create: criu is told the notification
/// failed and kills what it restored; the error names the hook, and nothing of the container is left.
#[test]
fn a_failing_hook_fails_the_restore() {
    let Some(ctx) = criu_ctx() else { return };
    let mut c = checkpointed_counter(&ctx, "cr-hookfail");
    let at_checkpoint = last(&c.out);
    c.b.hook(
        "createRuntime",
        serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}),
    );
    let failed = restore(&ctx, &c.id, &c.b, &c.images, &c.work, &[]).fails();
    if is_carte() {
        assert!(failed.stderr.contains("createRuntime"), "{failed}");
    }
    assert!(
        !ctx.rt.cmd(&["state", &c.id]).success(),
        "{} exists after a failed restore",
        c.id
    );
    // The restored tree was killed before it ran: the count did not move.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(last(&c.out), at_checkpoint, "the restored counter ran");
    ctx.assert_no_leaks(&c.id);
}

/// runc's `org.criu.config` annotation names a criu configuration file whose options override the runtime's: here
/// it renames criu's log (runc and carte ask for dump.log and restore.log), at checkpoint and at restore.
#[test]
fn the_criu_config_annotation_overrides_the_runtime() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-conf");
    let out = ctx.tempdir();
    let mut b = counter(&ctx, &id, &out);
    let conf = ctx.tempdir().join("criu.conf");
    std::fs::write(&conf, "# the test's\nlog-file custom.log\n").expect("write criu.conf");
    b.set(
        "/annotations",
        serde_json::json!({"org.criu.config": conf.display().to_string()}),
    );
    start_counter(&ctx, &id, &b, &out);
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &[]).ok();
    assert!(
        work.join("custom.log").exists(),
        "no custom.log after checkpoint"
    );
    assert!(!work.join("dump.log").exists(), "dump.log written");
    std::fs::remove_file(work.join("custom.log")).expect("remove custom.log");
    restore_counts_on(&ctx, &id, &b, &out, &images, &work, &[]);
    assert!(
        work.join("custom.log").exists(),
        "no custom.log after restore"
    );
    assert!(!work.join("restore.log").exists(), "restore.log written");
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}
