//! A pure cgroup v2 host (issue 15): what a container sees through its cgroup namespace, `cgroup.freeze` for
//! pause, `memory.events` for OOM kills, `resources.unified`, device rules enforced by the eBPF device
//! program, and delegation of a subtree to the container through `cgroup.subtree_control`.
//!
//! These tests need a host with no cgroup v1 hierarchy at all; elsewhere (this repository's v1 hybrid CI VM)
//! they print why and return. `tests/vm/run.sh` boots such a host (Debian's kernel with `cgroup_no_v1=all` under
//! qemu) and runs them there against carte and against runc.

use carte_tests::*;
use std::path::PathBuf;

/// The unified hierarchy's mount, or `None` (after saying why) when the host is not v2-only.
fn v2_host() -> Option<PathBuf> {
    let mount = cgroups::v2_only();
    if mount.is_none() {
        eprintln!("skipped: not a cgroup v2-only host (tests/vm/run.sh runs these in one)");
    }
    mount
}

/// The host directory of the container's explicit cgroup `/carte-test/<id>`.
fn host_dir(mount: &std::path::Path, id: &str) -> PathBuf {
    mount.join(cgroups::TEST_PARENT).join(id)
}

/// A file of a cgroup directory, trimmed; panics naming it when unreadable.
#[track_caller]
fn read(dir: &std::path::Path, file: &str) -> String {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().to_string(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// The value of `key` in a flat-keyed cgroup file such as `memory.events` or `cgroup.events`.
#[track_caller]
fn keyed(dir: &std::path::Path, file: &str, key: &str) -> u64 {
    let text = read(dir, file);
    let value = text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    });
    match value {
        Some(v) => v,
        None => panic!("no {key} in {}/{file}: {text}", dir.display()),
    }
}

/// Adds `cap` to the bounding, effective and permitted sets of the bundle's process.
fn add_cap(b: &mut Bundle, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        b.push(&format!("/process/capabilities/{set}"), json!(cap));
    }
}

#[test]
fn cgroupns_shows_the_containers_own_limits() {
    let Some(_) = v2_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("v2-ns");
    let mut b = ctx.bundle();
    b.namespace("cgroup", None);
    b.cgroups_path(&format!("/carte-test/{id}"));
    b.resource("memory", json!({"limit": 64 * 1024 * 1024}));
    b.resource("pids", json!({"limit": 42}));
    b.resource("cpu", json!({"quota": 50000, "period": 100000}));
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "cd /sys/fs/cgroup && cat memory.max pids.max cpu.max /proc/self/cgroup",
    );
    // The namespace root is the container's own cgroup: its limits at the top, and `/` as its path.
    assert_eq!(out, "67108864\n42\n50000 100000\n0::/\n");
}

#[test]
fn pause_sets_cgroup_freeze() {
    let Some(mount) = v2_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("v2-freeze");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let dir = host_dir(&mount, &id);
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
    ctx.rt.cmd(&["pause", &id]).ok();
    assert_eq!(ctx.rt.status(&id), "paused");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    // pause returns once the kernel has frozen every task, not merely once it was asked to.
    assert_eq!(keyed(&dir, "cgroup.events", "frozen"), 1);
    ctx.rt.cmd(&["resume", &id]).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
    assert_eq!(keyed(&dir, "cgroup.events", "frozen"), 0);
    ctx.rt.delete_force(&id).ok();
}

#[test]
fn an_oom_kill_is_counted_in_memory_events() {
    let Some(mount) = v2_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let mib = 1024 * 1024;
    let id = ctx.id("v2-oom");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    // swap = limit: no swap to escape into (v2's memory.swap.max = swap − limit = 0).
    b.resource("memory", json!({"limit": 32 * mib, "swap": 32 * mib}));
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let dir = host_dir(&mount, &id);
    assert_eq!(read(&dir, "memory.swap.max"), "0");
    assert_eq!(keyed(&dir, "memory.events", "oom_kill"), 0);
    // tail keeps the last lines of a file with no newline in it: it grows until the kernel kills it.
    let hog = ctx.rt.cmd(&["exec", &id, "tail", "/dev/zero"]);
    assert_eq!(hog.code(), 128 + 9, "{hog}");
    assert!(keyed(&dir, "memory.events", "oom_kill") >= 1);
    // The init, which used almost nothing, survives the kill of the hog.
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.delete_force(&id).ok();
}

#[test]
fn unified_resources_reach_the_cgroup_files() {
    let Some(mount) = v2_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("v2-unified");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    b.resource(
        "unified",
        json!({"memory.high": "50331648", "pids.max": "23", "cpu.weight": "42"}),
    );
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let dir = host_dir(&mount, &id);
    assert_eq!(read(&dir, "memory.high"), "50331648");
    assert_eq!(read(&dir, "pids.max"), "23");
    assert_eq!(read(&dir, "cpu.weight"), "42");
    ctx.rt.delete_force(&id).ok();
}

/// Writes to a device node the container made itself (it has CAP_MKNOD): `/dev/null`'s numbers are in the
/// default allow list, `/dev/kmsg`'s (1:11) are not. On v2 the only thing between the container and a device
/// is the runtime's eBPF program on its cgroup, so the write is refused (EPERM) unless a rule allows it.
fn device_writes(ctx: &Ctx, tag: &str, allow_kmsg: bool) -> String {
    let id = ctx.id(tag);
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("/carte-test/{id}"));
    b.readonly_root(false);
    add_cap(&mut b, "CAP_MKNOD");
    if allow_kmsg {
        b.push(
            "/linux/resources/devices",
            json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}),
        );
    }
    ctx.rt.run_sh(
        &id,
        &mut b,
        "mknod /tmp/null c 1 3 && mknod /tmp/kmsg c 1 11 || exit 1; \
         echo x >/tmp/null && echo null-ok; \
         if echo carte-v2-device-test >/tmp/kmsg; then echo kmsg-ok; else echo kmsg-denied; fi",
    )
}

#[test]
fn device_rules_are_enforced_by_the_bpf_program() {
    let Some(_) = v2_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    assert_eq!(
        device_writes(&ctx, "v2-dev-deny", false),
        "null-ok\nkmsg-denied\n"
    );
    assert_eq!(
        device_writes(&ctx, "v2-dev-allow", true),
        "null-ok\nkmsg-ok\n"
    );
}

/// A container with its own cgroup namespace and a writable cgroup2 mount manages its subtree, as a nested
/// runtime or systemd inside it does: it moves itself into a leaf (v2's no-internal-process rule), enables
/// controllers for its children and limits a child. Delete then removes the whole subtree.
#[test]
fn the_container_can_delegate_its_subtree() {
    let Some(mount) = v2_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("v2-deleg");
    let mut b = ctx.bundle();
    b.namespace("cgroup", None);
    b.cgroups_path(&format!("/carte-test/{id}"));
    b.remove_mount("/sys/fs/cgroup");
    b.mount(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]}),
    );
    b.sh(
        "cd /sys/fs/cgroup && mkdir init child && echo $$ >init/cgroup.procs \
          && echo '+memory +pids' >cgroup.subtree_control && echo 5 >child/pids.max \
          && cat cgroup.subtree_control child/pids.max /proc/self/cgroup && sleep 1000",
    );
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let dir = host_dir(&mount, &id);
    let limited = poll_until(runtime::TIMEOUT, || {
        std::fs::read_to_string(dir.join("child/pids.max")).is_ok_and(|s| s.trim() == "5")
    });
    assert!(limited, "the container did not limit its child cgroup");
    let controllers = read(&dir, "cgroup.subtree_control");
    assert!(
        controllers.contains("memory") && controllers.contains("pids"),
        "{controllers}"
    );
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert_eq!(own.trim(), format!("0::/carte-test/{id}/init"));
    ctx.rt.delete_force(&id).ok();
    assert!(!dir.exists(), "{} left after delete", dir.display());
}
