//! cgroup behaviour that engines and other projects' suites rely on, compared with runc: removing a
//! container's whole cgroup subtree, refusing a frozen cgroup, joining every mounted hierarchy, finding
//! hierarchies in the mount table, `update`'s corner cases and the container's read-only view of cgroupfs.
//!
//! Every container gets an explicit cgroupsPath under `/carte-test`, so the host files checked here sit at the
//! same place for carte and for runc.

use carte_tests::*;
use std::path::{Path, PathBuf};

/// The explicit cgroup of container `id`.
fn cgroup_of(id: &str) -> String {
    format!("/{}/{id}", cgroups::TEST_PARENT)
}

/// A created-and-started container whose init sleeps; returns its init's host pid.
fn running(ctx: &Ctx, id: &str, b: &mut Bundle) -> i64 {
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cgroup_of(id));
    ctx.rt.run(id, b, &["--detach"]).ok();
    match ctx.rt.state(id)["pid"].as_i64() {
        Some(p) if p > 0 => p,
        _ => panic!("{id} has no pid"),
    }
}

/// The cgroup v1 controller hierarchies (not named ones), or `None` on a cgroup v2 host.
fn v1_controller_hierarchies() -> Option<Vec<cgroups::Hierarchy>> {
    let all = cgroups::hierarchies();
    if all
        .iter()
        .any(|h| h.v2 && h.mount == Path::new("/sys/fs/cgroup"))
    {
        return None;
    }
    Some(
        all.into_iter()
            .filter(|h| !h.v2 && h.controllers.iter().all(|c| !c.starts_with("name=")))
            .collect(),
    )
}

/// Whether hierarchy `h` holds one of `ctrls` (a controller or `name=…`).
fn holds(h: &cgroups::Hierarchy, ctrls: &[&str]) -> bool {
    h.controllers.iter().any(|c| ctrls.contains(&c.as_str()))
}

/// Whether `pid` is in cgroup `cg` of hierarchy `h` (by its `cgroup.procs`).
fn member(h: &cgroups::Hierarchy, cg: &str, pid: i64) -> bool {
    std::fs::read_to_string(
        h.mount
            .join(cg.trim_start_matches('/'))
            .join("cgroup.procs"),
    )
    .is_ok_and(|s| s.lines().any(|l| l.trim() == pid.to_string()))
}

#[track_caller]
fn assert_gone(ctx: &Ctx, id: &str) {
    let st = ctx.rt.cmd(&["state", id]);
    assert!(!st.success(), "{id} is still in state after delete: {st}");
    assert!(
        poll_until(AUDIT_GRACE, || cgroups::dirs_matching(id).is_empty()),
        "cgroups left after delete: {:?}",
        cgroups::dirs_matching(id)
    );
}

// ------------------------------------------------------------------------------------------- delete --force

/// The container's own processes make sub-cgroups through a writable cgroupfs and move a process into the
/// deepest one: `delete --force` kills it and removes the whole subtree in every hierarchy.
#[test]
fn delete_force_removes_sub_cgroups_the_container_made() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(hs) = v1_controller_hierarchies() else {
        eprintln!("skipped: a cgroup v1 test (this host is cgroup v2)");
        return;
    };
    let names: Vec<String> = hs
        .iter()
        .filter(|h| holds(h, &["pids", "memory", "freezer", "cpu"]))
        .filter_map(|h| Some(h.mount.file_name()?.to_string_lossy().into_owned()))
        .collect();
    assert!(!names.is_empty(), "no pids/memory/freezer/cpu hierarchy");
    let id = ctx.id("subcg-in");
    let mut b = ctx.bundle();
    b.cgroups_path(&cgroup_of(&id));
    b.remove_mount("/sys/fs/cgroup");
    b.mount(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                   "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]}),
    );
    let list = names.join(" ");
    b.sh(&format!(
        "for c in {list}; do mkdir -p /sys/fs/cgroup/$c/sub/deeper || exit 1; done
         sleep 1000 & p=$!
         for c in {list}; do echo $p > /sys/fs/cgroup/$c/sub/deeper/cgroup.procs || exit 1; done
         wait"
    ));
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let deeper = format!("{}/sub/deeper", cgroup_of(&id));
    let Some(h) = hs
        .iter()
        .find(|h| holds(h, &["pids", "memory", "freezer", "cpu"]))
    else {
        unreachable!("checked above")
    };
    let moved = poll_until(AUDIT_GRACE, || {
        std::fs::read_to_string(
            h.mount
                .join(deeper.trim_start_matches('/'))
                .join("cgroup.procs"),
        )
        .is_ok_and(|s| !s.trim().is_empty())
    });
    assert!(moved, "the container never moved a process into {deeper}");
    let out = ctx.rt.delete_force(&id);
    assert!(out.success(), "delete --force: {out}");
    assert_gone(&ctx, &id);
}

/// The host makes sub-cgroups inside the container's cgroup, moves the init there and freezes the middle
/// level: `delete --force` thaws, kills and removes the subtree in every hierarchy.
#[test]
fn delete_force_removes_a_frozen_sub_cgroup_the_host_made() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(hs) = v1_controller_hierarchies() else {
        eprintln!("skipped: a cgroup v1 test (this host is cgroup v2)");
        return;
    };
    for freeze in [false, true] {
        let id = ctx.id(if freeze { "subcg-frozen" } else { "subcg-host" });
        let mut b = ctx.bundle();
        let pid = running(&ctx, &id, &mut b);
        let cg = cgroup_of(&id);
        let deep = format!("{cg}/a/b");
        // Not cpuset: a new cpuset level has no CPUs until someone copies them in.
        for h in hs
            .iter()
            .filter(|h| member(h, &cg, pid) && !holds(h, &["cpuset"]))
        {
            let dir = h.mount.join(deep.trim_start_matches('/'));
            if let Err(e) = std::fs::create_dir_all(&dir) {
                panic!("mkdir {}: {e}", dir.display());
            }
            if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                panic!("move {pid} into {}: {e}", dir.display());
            }
        }
        let freezer = hs.iter().find(|h| holds(h, &["freezer"]));
        if freeze {
            let Some(f) = freezer else {
                eprintln!("skipped: no freezer hierarchy");
                continue;
            };
            let state = f
                .mount
                .join(format!("{cg}/a").trim_start_matches('/'))
                .join("freezer.state");
            if let Err(e) = std::fs::write(&state, "FROZEN") {
                panic!("freeze {}: {e}", state.display());
            }
        }
        let out = ctx.rt.delete_force(&id);
        if freeze && !is_carte() {
            // runc 1.1.5 kills the init but does not thaw a sub-cgroup: the task cannot die, the rmdir
            // retries run out and delete fails. Thaw it here so the test cleans up after runc.
            assert!(!out.success(), "runc removed a frozen subtree: {out}");
            if let Some(f) = freezer {
                let state = f
                    .mount
                    .join(format!("{cg}/a").trim_start_matches('/'))
                    .join("freezer.state");
                let _ = std::fs::write(state, "THAWED");
            }
            ctx.rt.delete_force(&id).ok();
        } else {
            assert!(out.success(), "delete --force: {out}");
        }
        assert_gone(&ctx, &id);
    }
}

// ------------------------------------------------------------------------------------------ frozen cgroup

/// A cgroupsPath naming an existing frozen cgroup: `run -d` and `create` refuse at once (the init would sit in
/// the refrigerator and the call wait forever) and leave nothing; the frozen cgroup is the test's and stays.
#[test]
fn a_frozen_cgroup_is_refused_by_run_and_create() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(f) = cgroups::hierarchy_for("freezer") else {
        eprintln!("skipped: no freezer");
        return;
    };
    let id = ctx.id("frozen");
    let cg = cgroup_of(&id);
    let dir = f.mount.join(cg.trim_start_matches('/'));
    let (file, frozen, thawed) = if f.v2 {
        ("cgroup.freeze", "1", "0")
    } else {
        ("freezer.state", "FROZEN", "THAWED")
    };
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join(file), frozen))
    {
        panic!("make frozen cgroup {}: {e}", dir.display());
    }
    // Remove the test's cgroup however the test ends.
    struct Cleanup(PathBuf, &'static str, &'static str);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join(self.1), self.2);
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone(), file, thawed);
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cg);
    for verb in ["run", "create"] {
        let out = if verb == "run" {
            ctx.rt.run(&id, &b, &["--detach"])
        } else {
            ctx.rt.create(&id, &b, &[])
        };
        assert!(!out.success(), "{verb} into a frozen cgroup: {out}");
        assert!(
            out.stderr
                .contains("container's cgroup unexpectedly frozen"),
            "{verb}: {}",
            out.stderr
        );
        if is_carte() {
            assert!(faults::one_line_error(&out), "{verb}: {}", out.stderr);
        }
        assert!(
            !ctx.rt.cmd(&["state", &id]).success(),
            "{verb} left a state"
        );
        assert!(dir.exists(), "{verb} removed the test's own cgroup");
        let others: Vec<PathBuf> = cgroups::dirs_matching(&id)
            .into_iter()
            .filter(|d| *d != dir)
            .collect();
        assert!(others.is_empty(), "{verb} left cgroups {others:?}");
        assert!(audit::processes(&id).is_empty(), "{verb} left processes");
    }
}

// --------------------------------------------------------------------------------------- every hierarchy

/// On a hybrid host the init (and an exec'd process) is placed in the cgroup2 hierarchy (`0::/…`) and in the
/// named `name=systemd` one, as runc does, and those directories go with the container.
#[test]
fn init_joins_the_cgroup2_and_name_systemd_hierarchies() {
    let Some(ctx) = Ctx::new() else { return };
    let all = cgroups::hierarchies();
    let hybrid = all
        .iter()
        .any(|h| h.v2 && h.mount != Path::new("/sys/fs/cgroup"));
    let systemd = all.iter().find(|h| holds(h, &["name=systemd"]));
    if !hybrid && systemd.is_none() {
        eprintln!("skipped: no hybrid cgroup2 and no name=systemd hierarchy on this host");
        return;
    }
    let id = ctx.id("allhier");
    let mut b = ctx.bundle();
    let pid = running(&ctx, &id, &mut b);
    let cg = cgroup_of(&id);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let exec = ctx
        .rt
        .cmd(&["exec", &id, "cat", "/proc/self/cgroup"])
        .ok()
        .stdout;
    for (who, text) in [("init", &own), ("exec", &exec)] {
        if hybrid {
            assert!(
                text.lines().any(|l| l == format!("0::{cg}")),
                "{who}: no `0::{cg}` in\n{text}"
            );
        }
        if systemd.is_some() {
            assert!(
                text.lines()
                    .any(|l| l.ends_with(&format!(":name=systemd:{cg}"))),
                "{who}: no `N:name=systemd:{cg}` in\n{text}"
            );
        }
    }
    ctx.rt.delete_force(&id).ok();
    assert_gone(&ctx, &id);
}

// ---------------------------------------------------------------------------------- hierarchies by mount

/// A plain directory on the `/sys/fs/cgroup` tmpfs (some tools make `hugetlb/` or `net_cls/` there) is not a
/// hierarchy: nothing is written into it and delete succeeds.
#[test]
fn a_plain_directory_in_the_cgroup_root_is_not_a_hierarchy() {
    let Some(ctx) = Ctx::new() else { return };
    let root = Path::new("/sys/fs/cgroup");
    if cgroups::hierarchies().iter().any(|h| h.mount == root) {
        eprintln!("skipped: /sys/fs/cgroup is itself a cgroup hierarchy here (a directory there is a cgroup)");
        return;
    }
    // Named like a controller this host has not mounted, as the tools that do this name them.
    let Some(plain) = [
        "hugetlb",
        "net_cls",
        "net_prio",
        "perf_event",
        "rdma",
        "misc",
    ]
    .iter()
    .map(|n| root.join(n))
    .find(|p| !p.exists()) else {
        eprintln!("skipped: every controller name is taken in /sys/fs/cgroup");
        return;
    };
    if let Err(e) = std::fs::create_dir(&plain) {
        panic!("mkdir {}: {e}", plain.display());
    }
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(plain.clone());
    let id = ctx.id("plaindir");
    let mut b = ctx.bundle();
    running(&ctx, &id, &mut b);
    ctx.rt.cmd(&["exec", &id, "true"]).ok();
    // Only what names this container counts: other runtimes on the host may use the directory meanwhile.
    let mut ours = vec![];
    let mut todo = vec![plain.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
            if audit::contains_token(&e.path().to_string_lossy(), &id) {
                ours.push(e.path());
            }
        }
    }
    assert!(
        ours.is_empty(),
        "the runtime wrote into a plain directory: {ours:?}"
    );
    ctx.rt.delete_force(&id).ok();
    assert_gone(&ctx, &id);
}

// ------------------------------------------------------------------------------------------------- update

/// `update ID` with `json` as `--resources -`.
fn update_from_stdin(ctx: &Ctx, id: &str, json: &Value) -> Out {
    let mut file = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => panic!("create stdin file: {e}"),
    };
    use std::io::{Seek, Write};
    if let Err(e) = file
        .write_all(json.to_string().as_bytes())
        .and_then(|_| file.rewind())
    {
        panic!("write stdin file: {e}");
    }
    let opts = runtime::CallOpts {
        stdin: Some(file),
        ..Default::default()
    };
    ctx.rt.cmd_opts(&["update", "--resources", "-", id], opts)
}

/// A limit file of cgroup `cg` in the v1 hierarchy holding `ctrl`.
fn v1_file(ctrl: &str, cg: &str, file: &str) -> String {
    match cgroups::read_limit(ctrl, cg, file, file) {
        Some((false, v)) => v,
        other => panic!("read {ctrl} {file} of {cg}: {other:?}"),
    }
}

/// `-1` is a value of `--memory-swap` and `--cpu-quota` (unlimited), as in runc, not an unknown flag.
#[test]
fn update_takes_minus_one_as_a_value() {
    let Some(ctx) = Ctx::new() else { return };
    if v1_controller_hierarchies().is_none() {
        eprintln!("skipped: a cgroup v1 test (this host is cgroup v2)");
        return;
    }
    let id = ctx.id("upd-minus1");
    let mut b = ctx.bundle();
    b.resource("memory", json!({"limit": 64 << 20, "swap": 128 << 20}));
    b.resource("cpu", json!({"quota": 50000, "period": 100000}));
    running(&ctx, &id, &mut b);
    let cg = cgroup_of(&id);
    assert_eq!(v1_file("cpu", &cg, "cpu.cfs_quota_us"), "50000");
    let memsw = "memory.memsw.limit_in_bytes";
    let swap_accounting = cgroups::read_limit("memory", &cg, memsw, memsw).is_some();
    if swap_accounting {
        assert_eq!(v1_file("memory", &cg, memsw), (128u64 << 20).to_string());
    }
    let out = ctx
        .rt
        .cmd(&["update", "--memory-swap", "-1", "--cpu-quota", "-1", &id]);
    assert!(out.success(), "{out}");
    assert_eq!(v1_file("cpu", &cg, "cpu.cfs_quota_us"), "-1");
    if swap_accounting {
        // The kernel shows "unlimited" as the largest page-aligned value.
        let v: u64 = v1_file("memory", &cg, memsw).parse().unwrap_or(0);
        assert!(v > 1 << 60, "{memsw} is {v} after --memory-swap -1");
    } else {
        eprintln!("not checked: swap accounting is off here (no {memsw})");
    }
}

/// Shrinking the period under a parent with a CPU limit: writing the period first would make
/// old_quota/new_period exceed the parent's share (EINVAL); runc then writes the quota first, and so must we.
#[test]
fn update_cpu_period_and_quota_under_a_limited_parent() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(cpu) = cgroups::hierarchy_for("cpu").filter(|h| !h.v2) else {
        eprintln!("skipped: no cgroup v1 cpu hierarchy");
        return;
    };
    let id = ctx.id("cpuorder");
    let parent = cgroup_of(&id);
    let pdir = cpu.mount.join(parent.trim_start_matches('/'));
    if let Err(e) = std::fs::create_dir_all(&pdir)
        .and_then(|_| std::fs::write(pdir.join("cpu.cfs_period_us"), "100000"))
        .and_then(|_| std::fs::write(pdir.join("cpu.cfs_quota_us"), "40000"))
    {
        panic!("limit parent {}: {e}", pdir.display());
    }
    let cg = format!("{parent}/ctr");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cg);
    b.resource("cpu", json!({"quota": 5000, "period": 100000}));
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let out = ctx.rt.cmd(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        &id,
    ]);
    assert!(out.success(), "{out}");
    assert_eq!(v1_file("cpu", &cg, "cpu.cfs_period_us"), "10000");
    assert_eq!(v1_file("cpu", &cg, "cpu.cfs_quota_us"), "3000");
    ctx.rt.delete_force(&id).ok();
    // The parent is the test's: remove it from every hierarchy the runtime made it in.
    for h in cgroups::hierarchies() {
        let _ = std::fs::remove_dir(h.mount.join(parent.trim_start_matches('/')));
    }
    assert_gone(&ctx, &id);
}

/// A device rule whose access has a letter the kernel rejects: create refuses it (carte before anything
/// exists, naming the field) and leaves nothing; carte's update refuses it too.
#[test]
fn device_access_letters_are_checked() {
    let Some(ctx) = Ctx::new() else { return };
    let bad = json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwx"});
    let id = ctx.id("devaccess");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.cgroups_path(&cgroup_of(&id));
    b.push("/linux/resources/devices", bad.clone());
    let out = ctx.rt.create(&id, &b, &[]);
    if is_carte() {
        assert!(!out.success(), "create with access rwx: {out}");
        assert!(faults::one_line_error(&out), "{}", out.stderr);
        assert!(
            out.stderr.contains("linux.resources.devices[1].access"),
            "{}",
            out.stderr
        );
        ctx.assert_no_leaks(&id);
    } else if let Some(devices) = cgroups::hierarchy_for("devices").filter(|h| !h.v2) {
        // runc 1.1.5 passes rules through its device emulator, which keeps the letters it knows as a set
        // (devices.Permissions.Union): `rwx` silently becomes `rw`. carte refuses instead of guessing.
        assert!(out.success(), "{out}");
        let list = devices
            .mount
            .join(cgroup_of(&id).trim_start_matches('/'))
            .join("devices.list");
        let text = std::fs::read_to_string(&list).unwrap_or_default();
        assert!(
            text.lines().any(|l| l == "c 1:11 rw"),
            "{}: {text}",
            list.display()
        );
        ctx.rt.delete_force(&id).ok();
    }

    let id = ctx.id("devaccess-upd");
    let mut b = ctx.bundle();
    running(&ctx, &id, &mut b);
    let out = update_from_stdin(&ctx, &id, &json!({"devices": [bad]}));
    if is_carte() {
        assert!(!out.success(), "update with access rwx: {out}");
        assert!(out.stderr.contains("devices[0].access"), "{}", out.stderr);
    } else {
        // runc 1.1.5's update never applies `devices` (update.go copies only the other fields), so it
        // cannot fail on them.
        assert!(out.success(), "{out}");
    }
    assert_eq!(ctx.rt.status(&id), "running");
}

/// `linux.resources.unified` holds cgroup v2 files: on a v1 host runc refuses it rather than drop the
/// limits, at create and at update.
#[test]
fn unified_resources_are_refused_on_cgroup_v1() {
    let Some(ctx) = Ctx::new() else { return };
    if v1_controller_hierarchies().is_none() {
        eprintln!("skipped: a cgroup v1 test (this host is cgroup v2)");
        return;
    }
    let unified = json!({"memory.high": "max"});
    let id = ctx.id("unified-v1");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.cgroups_path(&cgroup_of(&id));
    b.resource("unified", unified.clone());
    let out = ctx.rt.create(&id, &b, &[]);
    assert!(!out.success(), "create with unified on v1: {out}");
    if is_carte() {
        assert!(faults::one_line_error(&out), "{}", out.stderr);
        assert!(
            out.stderr.contains("linux.resources.unified"),
            "{}",
            out.stderr
        );
    } else {
        assert!(
            out.stderr.contains("cannot use unified on cgroup v1"),
            "{}",
            out.stderr
        );
    }
    ctx.assert_no_leaks(&id);

    let id = ctx.id("unified-v1-upd");
    let mut b = ctx.bundle();
    running(&ctx, &id, &mut b);
    let out = update_from_stdin(&ctx, &id, &json!({"unified": unified}));
    assert!(!out.success(), "update with unified on v1: {out}");
    if is_carte() {
        assert!(out.stderr.contains("unified"), "{}", out.stderr);
    }
    assert_eq!(ctx.rt.status(&id), "running");
}

/// The `major:minor` of a real disk of this machine.
fn a_disk() -> Option<String> {
    let rd = std::fs::read_dir("/sys/block").ok()?;
    rd.flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !["loop", "ram", "zram", "dm-", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .find_map(|e| {
            Some(
                std::fs::read_to_string(e.path().join("dev"))
                    .ok()?
                    .trim()
                    .to_string(),
            )
        })
}

/// `blockIO.weightDevice` goes to `blkio.weight_device` where the kernel has it (CFQ), else to BFQ's
/// `blkio.bfq.weight_device`, as runc writes it; where neither exists the create fails, as runc's does.
#[test]
fn blkio_weight_device_is_written() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(blkio) = cgroups::hierarchy_for("blkio").filter(|h| !h.v2) else {
        eprintln!("skipped: no cgroup v1 blkio hierarchy");
        return;
    };
    let Some(dev) = a_disk() else {
        eprintln!("skipped: no disk in /sys/block");
        return;
    };
    let (major, minor) = dev.split_once(':').unwrap_or(("0", "0"));
    let (major, minor): (i64, i64) = (major.parse().unwrap_or(0), minor.parse().unwrap_or(0));
    let file = ["blkio.weight_device", "blkio.bfq.weight_device"]
        .into_iter()
        .find(|f| blkio.mount.join(f).exists());
    let id = ctx.id("weightdev");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cgroup_of(&id));
    b.resource(
        "blockIO",
        json!({"weightDevice": [{"major": major, "minor": minor, "weight": 300}]}),
    );
    let out = ctx.rt.create(&id, &b, &[]);
    match file {
        Some(f) => {
            assert!(out.success(), "{out}");
            let text = v1_file("blkio", &cgroup_of(&id), f);
            assert!(text.contains(&format!("{dev} 300")), "{f}: {text}");
        }
        None => {
            eprintln!(
                "not checked: the kernel has neither blkio.weight_device nor blkio.bfq.weight_device \
                 (no CFQ, BFQ group scheduling off), so only the failure is tested"
            );
            assert!(
                !out.success(),
                "create with weightDevice and no file for it: {out}"
            );
            assert!(
                out.stderr.contains("blkio.bfq.weight_device"),
                "{}",
                out.stderr
            );
            ctx.assert_no_leaks(&id);
        }
    }
}

// ---------------------------------------------------------------------------------- cgroupfs inside

/// A host mount below the container's cgroup (here a file bound over `notify_on_release`) is not part of the
/// container's read-only cgroupfs: only the container's own cgroup directory of each hierarchy is bound.
#[test]
fn host_mounts_below_the_cgroup_do_not_show_inside() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(pids) = cgroups::hierarchy_for("pids").filter(|h| !h.v2) else {
        eprintln!("skipped: no cgroup v1 pids hierarchy");
        return;
    };
    let name = pids
        .mount
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let secret = ctx.tempdir().join("secret");
    if let Err(e) = std::fs::write(&secret, "host-secret\n") {
        panic!("write {}: {e}", secret.display());
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    for cgroupns in [false, true] {
        let id = ctx.id(if cgroupns { "cgfs-sub-ns" } else { "cgfs-sub" });
        let cg = cgroup_of(&id);
        let dir = pids.mount.join(cg.trim_start_matches('/'));
        let target = dir.join("notify_on_release");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("mkdir {}: {e}", dir.display());
        }
        let none: Option<&str> = None;
        if let Err(e) = nix::mount::mount(
            Some(&secret),
            &target,
            none,
            nix::mount::MsFlags::MS_BIND,
            none,
        ) {
            panic!("bind {} over {}: {e}", secret.display(), target.display());
        }
        let bound = Unmount(target);
        let mut b = ctx.bundle();
        if cgroupns {
            b.namespace("cgroup", None);
        }
        running(&ctx, &id, &mut b);
        let f = format!("/sys/fs/cgroup/{name}/notify_on_release");
        let out = ctx.rt.cmd(&[
            "exec",
            &id,
            "sh",
            "-c",
            &format!("cat {f}; echo 1 > {f} && echo WRITABLE"),
        ]);
        drop(bound);
        ctx.rt.delete_force(&id).ok();
        if is_carte() || cgroupns {
            assert!(
                !out.stdout.contains("host-secret"),
                "cgroupns {cgroupns}: host mount visible: {out}"
            );
            assert!(
                !out.stdout.contains("WRITABLE"),
                "cgroupns {cgroupns}: writable: {out}"
            );
        } else {
            // runc 1.1.5 binds each hierarchy's cgroup with MS_REC when there is no cgroup namespace
            // (rootfs_linux.go getCgroupMounts), and its read-only remount does not reach the submount.
            assert!(out.stdout.contains("host-secret"), "{out}");
        }
        assert_gone(&ctx, &id);
    }
}

/// A limit the kernel refuses only when it is written (a cpuset naming a CPU this host lacks; nothing checks it
/// before) fails create while the init waits at its mounts (`process/sync.rs`): the init is killed with everything
/// else, and nothing is left.
#[test]
fn a_limit_the_kernel_refuses_fails_create_and_leaves_nothing() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("badcpus");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.cgroups_path(&cgroup_of(&id));
    b.resource("cpu", json!({"cpus": "1023"}));
    let out = ctx.rt.create(&id, &b, &[]);
    assert!(!out.success(), "create with cpus 1023: {out}");
    if is_carte() {
        assert!(faults::one_line_error(&out), "{}", out.stderr);
        assert!(out.stderr.contains("cpuset.cpus"), "{}", out.stderr);
    }
    ctx.assert_no_leaks(&id);
}
