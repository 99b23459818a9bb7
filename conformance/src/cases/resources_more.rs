//! config-linux.md "Control groups", more resources: memory swap, swappiness and disableOOMKiller, blockIO
//! throttling, and `unified` naming a controller the host's v2 hierarchy does not have.

use super::resources::{check_limits, controller_dir, is_v2_only};
use super::{case, case_since, skip, Section};
use crate::bundle::base_config;
use crate::case::{read_trim, Case, Ctx, Outcome};
use anyhow::{ensure, Result};
use serde_json::json;
use std::path::Path;

const S: Section = ("cgroups", "config-linux.md: control groups");

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "memory.swap", "memory.swap (memory+swap limit) MUST be applied", swap),
        case(S, "memory.swappiness", "memory.swappiness MUST be applied (cgroup v1)", swappiness),
        case(S, "memory.disableOOMKiller", "memory.disableOOMKiller MUST disable the OOM killer for the cgroup (cgroup v1)", disable_oom_killer),
        case(S, "blockIO.throttle", "blockIO.throttleReadBpsDevice MUST be applied to the given major:minor", throttle),
        case_since(S, "unified.absent-controller", "`unified` naming a controller the v2 hierarchy lacks MUST be an error (applied when present)", "1.1.0", unified_absent),
    ]
}

fn v1_memory_file(name: &str) -> bool {
    Path::new("/sys/fs/cgroup/memory").join(name).exists()
}

fn swap(ctx: &Ctx) -> Result<Outcome> {
    if !is_v2_only() && !v1_memory_file("memory.memsw.limit_in_bytes") {
        return skip("the host kernel has no swap accounting (no memory.memsw.limit_in_bytes)");
    }
    // v1 limits memory+swap together; v2's memory.swap.max is the swap part alone.
    let (v1, v2) = ("134217728", "67108864");
    check_limits(
        ctx,
        json!({"memory": {"limit": 67108864, "swap": 134217728}}),
        &[(
            "memory",
            "memory.memsw.limit_in_bytes",
            "memory.swap.max",
            if is_v2_only() { v2 } else { v1 },
        )],
    )
}

fn swappiness(ctx: &Ctx) -> Result<Outcome> {
    if is_v2_only() || !v1_memory_file("memory.swappiness") {
        return skip("swappiness is a cgroup v1 memory file and this host has none");
    }
    check_limits(
        ctx,
        json!({"memory": {"swappiness": 33}}),
        &[("memory", "memory.swappiness", "memory.swappiness", "33")],
    )
}

fn disable_oom_killer(ctx: &Ctx) -> Result<Outcome> {
    if is_v2_only() || !v1_memory_file("memory.oom_control") {
        return skip("oom_control is a cgroup v1 memory file and this host has none");
    }
    let mut config = base_config(&["/bin/sleep", "600"]);
    config["linux"]["resources"]["memory"] = json!({"limit": 67108864, "disableOOMKiller": true});
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    let Some((dir, _)) = controller_dir(c.init_pid, "memory") else {
        return skip("no memory controller for the container");
    };
    let text = read_trim(&dir.join("memory.oom_control")).unwrap_or_default();
    ensure!(
        text.lines().any(|l| l.trim() == "oom_kill_disable 1"),
        "`{}` says {text:?}",
        dir.join("memory.oom_control").display()
    );
    Ok(Outcome::Pass)
}

/// A real disk of this host (not loop, ram or zram) as (major, minor).
fn host_disk() -> Option<(u64, u64)> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    let dev = read_trim(&Path::new("/sys/block").join(names.first()?).join("dev"))?;
    let (major, minor) = dev.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn throttle(ctx: &Ctx) -> Result<Outcome> {
    let Some((major, minor)) = host_disk() else {
        return skip("no disk in /sys/block to throttle");
    };
    let v1 = format!("{major}:{minor} 1048576");
    let v2 = format!("{major}:{minor} rbps=1048576 wbps=max riops=max wiops=max");
    check_limits(
        ctx,
        json!({"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}}),
        &[(
            "blkio",
            "blkio.throttle.read_bps_device",
            "io.max",
            if is_v2_only() { &v2 } else { &v1 },
        )],
    )
}

/// The host's cgroup v2 mount and the controllers its root offers.
fn v2_controllers() -> Option<Vec<String>> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .find_map(|d| read_trim(&Path::new(d).join("cgroup.controllers")))
        .map(|c| c.split_whitespace().map(str::to_string).collect())
}

fn unified_absent(ctx: &Ctx) -> Result<Outcome> {
    let Some(offered) = v2_controllers() else {
        return skip("no cgroup v2 hierarchy on this host");
    };
    if offered.iter().any(|c| c == "memory") {
        // Pure v2: the value must simply be applied.
        return check_limits(
            ctx,
            json!({"unified": {"memory.max": "67108864"}}),
            &[("memory", "memory.limit_in_bytes", "memory.max", "67108864")],
        );
    }
    let mut config = base_config(&["/bin/true"]);
    config["linux"]["resources"]["unified"] = json!({"memory.max": "67108864"});
    let b = ctx.bundle(&config)?;
    let id = ctx.new_id();
    let out = ctx.try_create(&id, &b)?;
    let _ = ctx.cmd(&["delete", "--force", &id]);
    ensure!(
        !out.success,
        "create succeeded with unified memory.max although the v2 hierarchy has no memory controller ({offered:?})"
    );
    Ok(Outcome::Pass)
}
