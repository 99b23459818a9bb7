//! config-linux.md "Control groups": cgroupsPath and resource limits, read from the host side of the
//! container's cgroup (v1, hybrid or v2 — whichever hierarchy holds the controller), plus the device allow-list.

use super::{case, op, skip, Section};
use crate::bundle::base_config;
use crate::case::{read_trim, Case, Ctx, Outcome};
use anyhow::{ensure, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

const S: Section = ("cgroups", "config-linux.md: control groups");

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "cgroupsPath", "an absolute cgroupsPath MUST be the container's cgroup (relative to the hierarchy root)", cgroups_path),
        case(S, "memory.limit", "memory.limit MUST be applied", memory),
        case(S, "memory.reservation", "memory.reservation MUST be applied (v1 soft limit, v2 memory.low)", memory_reservation),
        case(S, "blockIO.weight", "blockIO.weight MUST be applied where the host's I/O controller has weights", blkio_weight),
        case(S, "pids.limit", "pids.limit MUST be applied", pids),
        case(S, "cpu", "cpu shares/quota/period MUST be applied", cpu),
        case(S, "cpuset", "cpu.cpus and cpu.mems MUST be applied", cpuset),
        case(S, "devices.deny", "a device not in the allow-list MUST NOT be openable (default deny-all rule)", devices_deny),
        case(S, "devices.allow", "a device allowed by linux.resources.devices MUST be openable", devices_allow),
    ]
}

/// Where a controller lives on this host for `pid`: the v1 hierarchy naming it, else the v2 tree if it offers it.
pub(super) fn controller_dir(pid: i32, controller: &str) -> Option<(PathBuf, bool)> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mounts: Vec<(String, String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let target = pre.split(' ').nth(4)?.to_string();
            let mut post = post.split(' ');
            Some((
                target,
                post.next()?.to_string(),
                post.nth(1).unwrap_or("").to_string(),
            ))
        })
        .collect();
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        if !ctrls.is_empty() && ctrls.split(',').any(|c| c == controller) {
            let (target, _, _) = mounts
                .iter()
                .find(|(_, fs, opts)| fs == "cgroup" && opts.split(',').any(|o| o == controller))?;
            return Some((PathBuf::from(format!("{target}{path}")), false));
        }
    }
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (target, _, _) = mounts.iter().find(|(t, fs, _)| {
        fs == "cgroup2"
            && read_trim(&PathBuf::from(format!("{t}/cgroup.controllers")))
                .is_some_and(|c| c.split(' ').any(|x| x == controller))
    })?;
    Some((PathBuf::from(format!("{target}{path}")), true))
}

/// Create a sleeper with `resources`, then compare each (controller, v1 file, v2 file, want) on the host.
pub(super) fn check_limits(
    ctx: &Ctx,
    resources: Value,
    checks: &[(&str, &str, &str, &str)],
) -> Result<Outcome> {
    let mut config = base_config(&["/bin/sleep", "600"]);
    if let Some(obj) = resources.as_object() {
        for (k, v) in obj {
            config["linux"]["resources"][k] = v.clone();
        }
    }
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    let pid = c.pid()?;
    for (controller, v1, v2, want) in checks {
        let Some((dir, is_v2)) = controller_dir(pid, controller) else {
            return skip(format!("no `{controller}` controller on this host"));
        };
        let file = dir.join(if is_v2 { v2 } else { v1 });
        if !file.exists() && optional_file(file.file_name()) {
            return skip(format!("host kernel has no `{}`", file.display()));
        }
        let got = read_trim(&file);
        ensure!(
            got.as_deref() == Some(*want),
            "`{}` is {got:?}, want `{want}`",
            file.display()
        );
    }
    Ok(Outcome::Pass)
}

fn cgroups_path(ctx: &Ctx) -> Result<Outcome> {
    let want = format!("/carte-conformance/{}", ctx.new_id());
    let mut config = base_config(&["/bin/sleep", "600"]);
    config["linux"]["cgroupsPath"] = json!(want);
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    let pid = c.pid()?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let mut seen = 0;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (ctrls, path) = (parts.nth(1).unwrap_or(""), parts.next().unwrap_or(""));
        if ctrls
            .split(',')
            .any(|c| ["memory", "pids", "cpu", "devices"].contains(&c))
            || (ctrls.is_empty() && path != "/")
        {
            ensure!(path == want, "cgroup line `{line}` is not at {want}");
            seen += 1;
        }
    }
    ensure!(
        seen > 0,
        "no controller of /proc/{pid}/cgroup names {want}: {text}"
    );
    Ok(Outcome::Pass)
}

/// Files whose absence is a property of the host (I/O scheduler without weights), not of the runtime.
fn optional_file(name: Option<&std::ffi::OsStr>) -> bool {
    name.is_some_and(|n| n == "blkio.weight" || n == "io.weight" || n == "io.bfq.weight")
}

fn memory_reservation(ctx: &Ctx) -> Result<Outcome> {
    check_limits(
        ctx,
        json!({"memory": {"limit": 134217728, "reservation": 33554432}}),
        &[(
            "memory",
            "memory.soft_limit_in_bytes",
            "memory.low",
            "33554432",
        )],
    )
}

fn blkio_weight(ctx: &Ctx) -> Result<Outcome> {
    // Without a weight-capable I/O scheduler (BFQ/CFQ) no runtime can apply the weight: crun then refuses the
    // config and runc ignores it, and the spec does not let us tell a correct refusal from a bug here.
    let roots = [
        "/sys/fs/cgroup/blkio/blkio.weight",
        "/sys/fs/cgroup/blkio/blkio.bfq.weight",
    ];
    if !roots.iter().any(|p| std::path::Path::new(p).exists()) {
        return skip(
            "the host's I/O scheduler has no weights (no blkio.weight in the blkio hierarchy)",
        );
    }
    check_limits(
        ctx,
        json!({"blockIO": {"weight": 500}}),
        &[("blkio", "blkio.weight", "io.bfq.weight", "500")],
    )
}

fn memory(ctx: &Ctx) -> Result<Outcome> {
    check_limits(
        ctx,
        json!({"memory": {"limit": 67108864}}),
        &[("memory", "memory.limit_in_bytes", "memory.max", "67108864")],
    )
}

fn pids(ctx: &Ctx) -> Result<Outcome> {
    check_limits(
        ctx,
        json!({"pids": {"limit": 77}}),
        &[("pids", "pids.max", "pids.max", "77")],
    )
}

fn cpu(ctx: &Ctx) -> Result<Outcome> {
    check_limits(
        ctx,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
        &[
            (
                "cpu",
                "cpu.shares",
                "cpu.weight",
                if is_v2_only() { "20" } else { "512" },
            ),
            (
                "cpu",
                "cpu.cfs_quota_us",
                "cpu.max",
                if is_v2_only() {
                    "50000 100000"
                } else {
                    "50000"
                },
            ),
        ],
    )
}

/// On a pure v2 host the v1 values are converted (shares 512 → weight 20 per the runc/crun formula).
pub(super) fn is_v2_only() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn cpuset(ctx: &Ctx) -> Result<Outcome> {
    check_limits(
        ctx,
        json!({"cpu": {"cpus": "0", "mems": "0"}}),
        &[
            ("cpuset", "cpuset.cpus", "cpuset.cpus", "0"),
            ("cpuset", "cpuset.mems", "cpuset.mems", "0"),
        ],
    )
}

/// /dev/loop-control (10:237) opens without capabilities and is in no runtime's default allow-list (runc 1.1
/// allows tun, 10:200, by default), so only the configured rules decide. The device cgroup check comes before
/// the driver's open, so a denial is EPERM even where the loop driver is absent.
fn device_open(ctx: &Ctx, allow: bool) -> Result<Value> {
    ctx.probe_with(&["read:/dev/carte-dev"], |c| {
        c["linux"]["devices"] = json!([{"path": "/dev/carte-dev", "type": "c", "major": 10, "minor": 237, "fileMode": 0o666}]);
        if allow {
            if let Some(list) = c["linux"]["resources"]["devices"].as_array_mut() {
                list.push(json!({"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rwm"}));
            }
        }
    })
}

const EPERM: i64 = 1;

fn devices_deny(ctx: &Ctx) -> Result<Outcome> {
    let r = device_open(ctx, false)?;
    let res = op(&r, "read:/dev/carte-dev");
    ensure!(
        res["errno"] == EPERM,
        "opening a denied device gave {res} (want EPERM)"
    );
    Ok(Outcome::Pass)
}

fn devices_allow(ctx: &Ctx) -> Result<Outcome> {
    let r = device_open(ctx, true)?;
    let res = op(&r, "read:/dev/carte-dev");
    // Opened, then reading loop-control fails (EINVAL): any errno but EPERM means the cgroup let it open.
    ensure!(
        res["errno"] != EPERM,
        "opening an allowed device gave {res}"
    );
    Ok(Outcome::Pass)
}
