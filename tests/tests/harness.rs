//! Checks on the harness itself: the leak audit and the call timeout must be able to fail.

use carte_tests::*;
use std::time::Duration;

#[test]
fn audit_sees_a_live_container_and_then_nothing() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("auditlive");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    ctx.rt.create(&id, &b, &[]).ok();
    let leaks = ctx.leaks_now(&id);
    let has = |what: &str| leaks.iter().any(|l| l.starts_with(what));
    assert!(has("state entry"), "{leaks:?}");
    assert!(has("process"), "{leaks:?}");
    assert!(has("cgroup"), "{leaks:?}");
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn audit_sees_and_detaches_a_mount_under_a_test_dir() {
    let Some(ctx) = Ctx::new() else { return };
    let dir = ctx.tempdir();
    let target = dir.join("m");
    std::fs::create_dir(&target).ok();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount tmpfs");
    let dirs = vec![dir.clone()];
    assert_eq!(audit::mounts_under(&dirs), [target.display().to_string()]);
    assert_eq!(audit::detach_mounts_under(&dirs).len(), 1);
    assert!(audit::mounts_under(&dirs).is_empty());
}

#[test]
fn a_hung_call_is_killed_at_its_timeout() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("hung");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.write().ok();
    let opts = runtime::CallOpts {
        timeout: Some(Duration::from_millis(1500)),
        ..Default::default()
    };
    let mut call = match ctx.rt.spawn(&["run", &id, "--bundle", b.path_str()], opts) {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    };
    let pid = call.pid();
    let err = match call.finish() {
        Ok(out) => panic!("a foreground run of sleep 1000 returned: {out}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("timed out"), "{err}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "runtime {pid} still alive"
    );
    // The container itself is still there; the Ctx teardown force-deletes and audits it.
}

#[test]
fn scrub_kills_and_removes_a_leaked_container() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("scrub");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    ctx.rt.run(&id, &b, &["-d"]).ok();
    // Pretend the runtime lost track of it: scrub must still find the process and the cgroups by id.
    audit::scrub(&id);
    assert!(audit::processes(&id).is_empty());
    assert!(cgroups::dirs_matching(&id).is_empty());
    ctx.rt.cmd(&["delete", "--force", &id]);
    ctx.assert_no_leaks(&id);
}
