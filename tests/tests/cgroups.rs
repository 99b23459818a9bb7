//! Resources land in the host's cgroup files (v1, hybrid or v2), the default cgroup path, and cgroup removal.

use carte_tests::*;

/// cgroup v2 `cpu.weight` for v1 `cpu.shares` 512. runc 1.1.5 maps the ranges linearly
/// (`1 + (shares - 2) * 9999 / 262142`: 512 → 20, and the v1 default 1024 → 39); carte, through libcgroups, uses
/// the log-quadratic mapping that opencontainers/cgroups#20 and crun#1767 adopted so that 1024 → 100, v2's
/// default (`ceil(10^((l² + 125·l) / 612 − 7/34))` with `l = log2(shares)`: 512 → 59).
fn weight_for_512_shares() -> u64 {
    if is_carte() {
        59
    } else {
        20
    }
}

#[test]
fn resources_reach_the_host_cgroup_files() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("limits");
    let cg = format!("/carte-test/{id}");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cg);
    b.resource("memory", json!({"limit": 64 * 1024 * 1024}));
    b.resource(
        "cpu",
        json!({"shares": 512, "quota": 50000, "period": 100000}),
    );
    b.resource("pids", json!({"limit": 42}));
    ctx.rt.create(&id, &b, &[]).ok();

    let read = |ctrl: &str, v1: &str, v2: &str| match cgroups::read_limit(ctrl, &cg, v1, v2) {
        Some(v) => v,
        None => panic!("cannot read {ctrl} limit of {cg}"),
    };
    let (_, mem) = read("memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(mem, "67108864");
    let (v2, shares) = read("cpu", "cpu.shares", "cpu.weight");
    let want = if v2 { weight_for_512_shares() } else { 512 };
    assert_eq!(shares, want.to_string());
    let (v2, quota) = read("cpu", "cpu.cfs_quota_us", "cpu.max");
    if v2 {
        assert_eq!(quota, "50000 100000");
    } else {
        assert_eq!(quota, "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us", "cpu.max").1, "100000");
    }
    assert_eq!(read("pids", "pids.max", "pids.max").1, "42");

    // The init is a member of the container's cgroup in every hierarchy that holds a limited controller.
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    for ctrl in ["memory", "cpu", "pids"] {
        assert_eq!(
            cgroups::path_of(pid, ctrl).as_deref(),
            Some(cg.as_str()),
            "{ctrl}"
        );
    }
    ctx.rt.delete_force(&id).ok();
    assert!(
        cgroups::dirs_matching(&id).is_empty(),
        "cgroup left after delete"
    );
}

#[test]
fn pids_limit_is_enforced() {
    let Some(ctx) = Ctx::new() else { return };
    // Eight background sleeps need nine tasks: a limit of 20 allows them, a limit of 4 makes a fork fail
    // (busybox sh then exits with "can't fork").
    let script = "i=0; while [ $i -lt 8 ]; do sleep 5 & i=$((i+1)); done; echo forked-all";
    for (limit, fits) in [(20, true), (4, false)] {
        let id = ctx.id("pidsmax");
        let mut b = ctx.bundle();
        b.cgroups_path(&format!("/carte-test/{id}"));
        b.resource("pids", json!({ "limit": limit }));
        b.sh(script);
        let out = ctx.rt.run(&id, &b, &[]);
        if fits {
            assert_eq!(out.ok().stdout, "forked-all\n");
        } else {
            assert!(!out.success() && out.stderr.contains("fork"), "{out}");
        }
    }
}

/// The container's limits are written, and its init is in its cgroup, by the time the runtime's hooks run: runc sets
/// them when its init asks for the hooks (procHooks), after the init's mounts. A createRuntime hook (host
/// namespaces) and a createContainer hook (the container's, before pivot_root) copy the pids cgroup's limit and
/// member list.
#[test]
fn limits_are_in_place_when_the_hooks_run() {
    let Some(ctx) = Ctx::new() else { return };
    let Some(h) = cgroups::hierarchy_for("pids") else {
        eprintln!("skipped: no pids controller");
        return;
    };
    let id = ctx.id("hooklimits");
    let cg = format!("/carte-test/{id}");
    let dir = h.mount.join(cg.trim_start_matches('/'));
    let log = ctx.tempdir();
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cg);
    b.resource("pids", json!({"limit": 37}));
    for kind in ["createRuntime", "createContainer"] {
        let script = format!(
            "cat {d}/pids.max > {l}/{kind}.max; cat {d}/cgroup.procs > {l}/{kind}.procs",
            d = dir.display(),
            l = log.display()
        );
        b.hook(
            kind,
            json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/bin:/bin"]}),
        );
    }
    ctx.rt.create(&id, &b, &[]).ok();
    let host_pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0).to_string();
    // createContainer runs in the container's pid namespace, where the init is 1.
    for (kind, pid) in [
        ("createRuntime", host_pid.as_str()),
        ("createContainer", "1"),
    ] {
        let read = |ext: &str| {
            std::fs::read_to_string(log.join(format!("{kind}.{ext}"))).unwrap_or_default()
        };
        assert_eq!(read("max").trim(), "37", "{kind} hook saw no pids limit");
        assert!(
            read("procs").lines().any(|l| l == pid),
            "{kind} hook: init {pid} not in {}: {:?}",
            dir.display(),
            read("procs")
        );
    }
    ctx.rt.delete_force(&id).ok();
}

#[test]
fn default_cgroup_path_uses_the_id() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("cgdefault");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    ctx.rt.create(&id, &b, &[]).ok();
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    let path = cgroups::path_of(pid, "pids").unwrap_or_default();
    // carte's own prefix, at the hierarchy's root; runc's is the id below its own cgroup.
    let suffix = if is_carte() {
        format!("/carte-{id}")
    } else {
        format!("/{id}")
    };
    assert!(
        path.ends_with(&suffix),
        "cgroup {path:?} does not end with {suffix}"
    );
}

#[test]
fn cgroup_namespace_hides_the_host_path() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("cgns");
    let mut b = ctx.bundle();
    b.namespace("cgroup", None);
    b.cgroups_path(&format!("/carte-test/{id}"));
    let out = ctx.rt.run_sh(&id, &mut b, "cat /proc/self/cgroup");
    for line in out.lines() {
        assert!(
            line.ends_with(":/"),
            "cgroup path visible inside a cgroup namespace: {out}"
        );
    }
}

/// A nested cgroup path whose levels do not exist yet: the init is a member of it in every controller hierarchy
/// the runtime manages (cpuset included, whose new levels must be given CPUs before a task may join), and an
/// exec'd process joins the same cgroup.
#[test]
fn a_nested_new_cgroup_path_is_joined_in_every_hierarchy() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("nested");
    let cg = format!("/carte-test/{id}-top/mid/{id}");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&cg);
    ctx.rt.create(&id, &b, &[]).ok();
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    for ctrl in [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio",
    ] {
        // Skip what this host does not have; v2 has one path for all.
        if let Some(p) = cgroups::path_of(pid, ctrl) {
            assert_eq!(p, cg, "{ctrl} of the init");
        }
    }
    ctx.rt.start(&id).ok();
    let out = ctx.rt.cmd(&["exec", &id, "cat", "/proc/self/cgroup"]).ok();
    let memory_line = out
        .stdout
        .lines()
        .find(|l| l.contains(":memory:") || l.starts_with("0::"));
    assert!(
        memory_line.is_some_and(|l| l.ends_with(&cg)),
        "exec'd process not in {cg}: {out}"
    );
    ctx.rt.delete_force(&id).ok();
    // The container's own directory goes; the levels above it stay, as with runc: a parent may be
    // shared (a pod's cgroup), so it is its creator's to remove. The test made them: it removes them.
    let tops = cgroups::dirs_matching(&format!("{id}-top"));
    assert!(!tops.is_empty(), "no {id}-top directory found");
    for top in tops {
        let leaf = top.join("mid").join(&id);
        assert!(!leaf.exists(), "{} left after delete", leaf.display());
        let _ = std::fs::remove_dir(top.join("mid"));
        let _ = std::fs::remove_dir(&top);
    }
    assert!(
        cgroups::dirs_matching(&id).is_empty(),
        "cgroup left after delete"
    );
    ctx.assert_no_leaks(&id);
}
