//! The systemd cgroup driver (issue 15): `--systemd-cgroup` with `linux.cgroupsPath` `slice:prefix:name` asks
//! systemd (over D-Bus) for a transient scope unit `prefix-name.scope` in the slice, with the container's limits
//! as unit properties; `update` changes the unit, `pause`/`resume` freeze its cgroup, `delete` stops the unit.
//!
//! These need systemd as PID 1 on a pure cgroup v2 host; elsewhere (this repository's CI VM has no systemd)
//! they print why and return. `tests/vm/run.sh --systemd` boots such a guest (the host's own root and systemd
//! under qemu) and runs them there against carte and against runc.

use carte_tests::runtime::{CallOpts, TIMEOUT};
use carte_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unified hierarchy's mount, or `None` (after saying why) when systemd does not run on a v2-only host.
fn systemd_host() -> Option<PathBuf> {
    if !Path::new("/run/systemd/system").exists() {
        eprintln!(
            "skipped: systemd is not running here (tests/vm/run.sh --systemd runs these under it)"
        );
        return None;
    }
    let mount = cgroups::v2_only();
    if mount.is_none() {
        eprintln!(
            "skipped: not a cgroup v2-only host (tests/vm/run.sh --systemd runs these in one)"
        );
    }
    mount
}

/// `--systemd-cgroup` before the verb: a global flag, as containerd's shim passes it.
fn sd() -> CallOpts {
    CallOpts {
        global: vec!["--systemd-cgroup".into()],
        ..CallOpts::default()
    }
}

/// `--systemd-cgroup run --detach` of a `sleep` container with the bundle's config.
#[track_caller]
fn run_detached(ctx: &Ctx, id: &str, b: &mut Bundle) -> Out {
    b.args(&["sleep", "1000"]);
    if let Err(e) = b.write() {
        panic!("write config.json: {e:#}");
    }
    ctx.rt
        .cmd_opts(&["run", "--detach", "--bundle", b.path_str(), id], sd())
}

/// The scope unit's name for the runtime's default prefix when the config has no cgroupsPath (runc: `runc`).
fn default_prefix() -> &'static str {
    if is_carte() {
        "carte"
    } else {
        "runc"
    }
}

/// One property of a unit, as `systemctl show -p NAME --value UNIT` prints it.
#[track_caller]
fn prop(unit: &str, name: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", name, "--value", unit])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => panic!(
            "systemctl show {unit}: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("run systemctl: {e}"),
    }
}

/// Whether systemd still has the unit loaded (a stopped transient unit is unloaded: `not-found`).
fn unit_loaded(unit: &str) -> bool {
    prop(unit, "LoadState") == "loaded" && prop(unit, "ActiveState") != "inactive"
}

/// A file of a cgroup directory, trimmed; panics naming it when unreadable.
#[track_caller]
fn read(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().to_string(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// The container's init pid from `state`.
#[track_caller]
fn init_pid(ctx: &Ctx, id: &str) -> i64 {
    match ctx.rt.state(id)["pid"].as_i64() {
        Some(p) if p > 0 => p,
        _ => panic!("no init pid in the state of {id}"),
    }
}

/// The process's cgroup2 path (`0::PATH` of /proc/PID/cgroup).
#[track_caller]
fn cgroup_of(pid: i64) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    match text.lines().find_map(|l| l.strip_prefix("0::")) {
        Some(p) => p.to_string(),
        None => panic!("no cgroup2 line for {pid}: {text:?}"),
    }
}

/// After `delete`: systemd dropped the unit and the cgroup directory is gone.
#[track_caller]
fn assert_scope_gone(unit: &str, dir: &Path) {
    let gone = poll_until(TIMEOUT, || !unit_loaded(unit) && !dir.exists());
    assert!(
        gone,
        "{unit} still there after delete: LoadState={} ActiveState={}, {} exists: {}",
        prop(unit, "LoadState"),
        prop(unit, "ActiveState"),
        dir.display(),
        dir.exists()
    );
}

#[test]
fn the_scope_carries_the_limits_and_delete_stops_it() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-scope");
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("system.slice:carte:{id}"));
    b.resource("memory", json!({"limit": 64 * 1024 * 1024}));
    b.resource("pids", json!({"limit": 42}));
    b.resource("cpu", json!({"quota": 50000, "period": 100000}));
    run_detached(&ctx, &id, &mut b).ok();
    let unit = format!("carte-{id}.scope");
    let dir = mount.join("system.slice").join(&unit);

    // The unit: a running scope in system.slice, the limits as its properties.
    assert_eq!(prop(&unit, "ActiveState"), "active");
    assert_eq!(prop(&unit, "Slice"), "system.slice");
    assert_eq!(prop(&unit, "MemoryMax"), "67108864");
    assert_eq!(prop(&unit, "TasksMax"), "42");
    assert_eq!(prop(&unit, "CPUQuotaPerSecUSec"), "500ms");
    // Delegated, as runc asks (docs/systemd.md): systemd leaves the scope's subtree to the runtime.
    assert_eq!(prop(&unit, "Delegate"), "yes");
    // The cgroup: the init is in it, and the files say the same.
    let pid = init_pid(&ctx, &id);
    assert_eq!(cgroup_of(pid), format!("/system.slice/{unit}"));
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "pids.max"), "42");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");

    ctx.rt.delete_force(&id).ok();
    assert_scope_gone(&unit, &dir);
}

#[test]
fn without_a_cgroups_path_the_scope_is_in_system_slice() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-default");
    let mut b = ctx.bundle();
    b.remove("/linux/cgroupsPath");
    run_detached(&ctx, &id, &mut b).ok();
    // runc's rule: `system.slice:<runtime>:<id>`.
    let unit = format!("{}-{id}.scope", default_prefix());
    let dir = mount.join("system.slice").join(&unit);
    assert_eq!(prop(&unit, "ActiveState"), "active");
    assert_eq!(
        cgroup_of(init_pid(&ctx, &id)),
        format!("/system.slice/{unit}")
    );
    ctx.rt.delete_force(&id).ok();
    assert_scope_gone(&unit, &dir);
}

#[test]
fn update_changes_the_unit_and_the_files() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-update");
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("system.slice:carte:{id}"));
    b.resource("memory", json!({"limit": 64 * 1024 * 1024}));
    b.resource("pids", json!({"limit": 42}));
    run_detached(&ctx, &id, &mut b).ok();
    let unit = format!("carte-{id}.scope");
    let dir = mount.join("system.slice").join(&unit);

    ctx.rt
        .cmd(&[
            "update",
            "--memory",
            "134217728",
            "--pids-limit",
            "100",
            "--cpu-quota",
            "25000",
            "--cpu-period",
            "100000",
            &id,
        ])
        .ok();
    assert_eq!(prop(&unit, "MemoryMax"), "134217728");
    assert_eq!(prop(&unit, "TasksMax"), "100");
    assert_eq!(prop(&unit, "CPUQuotaPerSecUSec"), "250ms");
    assert_eq!(read(&dir, "memory.max"), "134217728");
    assert_eq!(read(&dir, "pids.max"), "100");
    assert_eq!(read(&dir, "cpu.max"), "25000 100000");
    ctx.rt.delete_force(&id).ok();
    assert_scope_gone(&unit, &dir);
}

#[test]
fn pause_and_resume_freeze_the_scope() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-pause");
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("system.slice:carte:{id}"));
    run_detached(&ctx, &id, &mut b).ok();
    let dir = mount.join("system.slice").join(format!("carte-{id}.scope"));

    ctx.rt.cmd(&["pause", &id]).ok();
    assert_eq!(ctx.rt.status(&id), "paused");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert!(read(&dir, "cgroup.events").lines().any(|l| l == "frozen 1"));
    ctx.rt.cmd(&["resume", &id]).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
    // A paused container is deleted too: thawed, killed, its scope stopped.
    ctx.rt.cmd(&["pause", &id]).ok();
    ctx.rt.delete_force(&id).ok();
    assert_scope_gone(&format!("carte-{id}.scope"), &dir);
}

#[test]
fn exec_joins_the_scope_and_ps_lists_it() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-exec");
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("system.slice:carte:{id}"));
    run_detached(&ctx, &id, &mut b).ok();
    let unit = format!("carte-{id}.scope");
    let out = ctx.rt.cmd(&["exec", &id, "cat", "/proc/self/cgroup"]).ok();
    assert_eq!(out.stdout, format!("0::/system.slice/{unit}\n"));
    let ps = ctx.rt.cmd(&["ps", "--format", "json", &id]).ok().json();
    let pid = init_pid(&ctx, &id);
    assert_eq!(ps, json!([pid]), "ps of {id}");
    ctx.rt.delete_force(&id).ok();
    assert_scope_gone(&unit, &mount.join("system.slice").join(&unit));
}

#[test]
fn kill_stops_the_container_and_delete_removes_the_scope() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-kill");
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("system.slice:carte:{id}"));
    run_detached(&ctx, &id, &mut b).ok();
    let unit = format!("carte-{id}.scope");
    let dir = mount.join("system.slice").join(&unit);
    ctx.rt.kill(&id, "KILL").ok();
    ctx.rt.wait_status(&id, "stopped");
    // The scope's last process died: systemd may already have stopped it; delete must succeed either way.
    ctx.rt.delete(&id).ok();
    assert_scope_gone(&unit, &dir);
}

#[test]
fn a_custom_slice_holds_the_scope() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-slice");
    let mut b = ctx.bundle();
    // `foo-bar.slice` is systemd's child of `foo.slice`: its cgroup is /foo.slice/foo-bar.slice.
    b.cgroups_path(&format!("foo-bar.slice:carte:{id}"));
    b.resource("memory", json!({"limit": 32 * 1024 * 1024}));
    run_detached(&ctx, &id, &mut b).ok();
    let unit = format!("carte-{id}.scope");
    let dir = mount.join("foo.slice/foo-bar.slice").join(&unit);
    assert_eq!(prop(&unit, "Slice"), "foo-bar.slice");
    assert_eq!(
        cgroup_of(init_pid(&ctx, &id)),
        format!("/foo.slice/foo-bar.slice/{unit}")
    );
    assert_eq!(read(&dir, "memory.max"), "33554432");
    ctx.rt.delete_force(&id).ok();
    assert_scope_gone(&unit, &dir);
}

#[test]
fn kill_all_and_events_stats_use_the_scope() {
    let Some(_) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-killall");
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("system.slice:carte:{id}"));
    b.resource("memory", json!({"limit": 64 * 1024 * 1024}));
    run_detached(&ctx, &id, &mut b).ok();
    // A second process in the scope, beside the init.
    ctx.rt.cmd(&["exec", "--detach", &id, "sleep", "1000"]).ok();
    let listed = || {
        let ps = ctx.rt.cmd(&["ps", "--format", "json", &id]).ok().json();
        ps.as_array().map_or(0, |a| a.len())
    };
    assert!(
        poll_until(TIMEOUT, || listed() == 2),
        "ps of {id}: {}",
        listed()
    );
    // The statistics are the scope's cgroup's: its memory limit, its two processes.
    let ev = ctx.rt.cmd(&["events", "--stats", &id]).ok().json();
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["data"]["pids"]["current"], 2, "{ev}");
    assert_eq!(
        ev["data"]["memory"]["usage"]["limit"],
        64 * 1024 * 1024,
        "{ev}"
    );
    // kill --all signals every process of the scope: the init dies, and so does the exec'd sleep.
    ctx.rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    ctx.rt.wait_status(&id, "stopped");
    let unit = format!("carte-{id}.scope");
    let dir = cgroups::v2_only()
        .unwrap_or_default()
        .join("system.slice")
        .join(&unit);
    let empty = poll_until(TIMEOUT, || {
        std::fs::read_to_string(dir.join("cgroup.procs")).map_or(true, |p| p.trim().is_empty())
    });
    assert!(empty, "processes left in {}", dir.display());
    ctx.rt.delete(&id).ok();
    assert_scope_gone(&unit, &dir);
}

/// A container whose process cannot be executed: `run` fails, and the scope it made is stopped with it.
#[test]
fn a_failed_run_leaves_no_scope() {
    let Some(mount) = systemd_host() else { return };
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("sd-fail");
    let mut b = ctx.bundle();
    b.cgroups_path(&format!("system.slice:carte:{id}"));
    b.args(&["/no/such/binary"]);
    if let Err(e) = b.write() {
        panic!("write config.json: {e:#}");
    }
    let out = ctx
        .rt
        .cmd_opts(&["run", "--detach", "--bundle", b.path_str(), &id], sd());
    assert!(!out.success(), "{out}");
    let unit = format!("carte-{id}.scope");
    assert_scope_gone(&unit, &mount.join("system.slice").join(&unit));
    ctx.assert_no_leaks(&id);
}

/// containerd with the systemd driver (`SystemdCgroup = true` in the runc shim's options; `ctr run
/// --runc-systemd-cgroup` sets the same option for one container): the shim passes `--systemd-cgroup` to the
/// runtime under test, which puts the container in the scope named by the `slice:prefix:name` cgroup path.
#[test]
fn containerd_runs_a_container_in_a_systemd_scope() {
    use carte_tests::engines::containerd::Ctd;
    use carte_tests::engines::Rt;
    let Some(mount) = systemd_host() else { return };
    // Rt::Carte is the runtime under test ($CARTE_BIN): carte, or runc when the suite runs against it.
    let Some(t) = Ctd::new(Rt::Carte) else { return };
    let id = t.id("sd-ctd");
    let cgroup = format!("system.slice:ctd:{id}");
    let opts = [
        "--runc-systemd-cgroup",
        "--cgroup",
        cgroup.as_str(),
        "--memory-limit",
        "50331648",
    ];
    let pid = t.run_detached(&id, &opts, &["sleep", "1000"]);
    let unit = format!("ctd-{id}.scope");
    let dir = mount.join("system.slice").join(&unit);
    assert_eq!(prop(&unit, "ActiveState"), "active");
    assert_eq!(prop(&unit, "MemoryMax"), "50331648");
    assert_eq!(cgroup_of(pid), format!("/system.slice/{unit}"));
    assert_eq!(read(&dir, "memory.max"), "50331648");
    let leaks = t.remove_and_audit(&id);
    assert!(leaks.is_empty(), "{leaks:?}");
    assert_scope_gone(&unit, &dir);
}
