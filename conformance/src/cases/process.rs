//! Newer process and Linux fields (spec 1.0.2–1.2.0): personality, ioPriority, scheduler, execCPUAffinity.
//! Each is skipped for a runtime whose `spec:` version predates the field.

use super::{case_since, Section};
use crate::bundle;
use crate::case::{Case, Ctx, Outcome};
use anyhow::{ensure, Result};
use serde_json::json;

const S: Section = (
    "process",
    "config.md + config-linux.md: newer process fields",
);

pub fn cases() -> Vec<Case> {
    vec![
        case_since(
            S,
            "personality",
            "linux.personality domain LINUX32 MUST set the execution domain",
            "1.0.2",
            personality,
        ),
        case_since(
            S,
            "ioPriority",
            "process.ioPriority MUST set the I/O scheduling class and priority",
            "1.1.0",
            io_priority,
        ),
        case_since(
            S,
            "scheduler",
            "process.scheduler MUST set the policy and nice value",
            "1.1.0",
            scheduler,
        ),
        case_since(
            S,
            "execCPUAffinity",
            "execCPUAffinity.final MUST be an exec'd process's CPU affinity",
            "1.2.0",
            exec_cpu_affinity,
        ),
    ]
}

fn personality(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32"})
    })?;
    // PER_LINUX32 is 0x0008 in the low byte (the execution domain).
    let p = r["sched"]["personality"].as_i64().unwrap_or(-1);
    ensure!(
        p & 0xff == 0x0008,
        "personality is {p:#x}, want domain PER_LINUX32 (0x8)"
    );
    Ok(Outcome::Pass)
}

fn io_priority(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 3})
    })?;
    // ioprio = class << 13 | level; IOPRIO_CLASS_BE = 2.
    let want = (2 << 13) | 3;
    ensure!(
        r["sched"]["ioprio"] == want,
        "ioprio is {}, want {want} (BE, level 3)",
        r["sched"]["ioprio"]
    );
    Ok(Outcome::Pass)
}

fn scheduler(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5})
    })?;
    ensure!(
        r["sched"]["policy"] == libc::SCHED_BATCH,
        "policy is {}, want SCHED_BATCH ({})",
        r["sched"]["policy"],
        libc::SCHED_BATCH
    );
    ensure!(
        r["sched"]["nice"] == 5,
        "nice is {}, want 5",
        r["sched"]["nice"]
    );
    Ok(Outcome::Pass)
}

/// The spec says execCPUAffinity does not apply to the init: set it on an `exec`'d probe.
fn exec_cpu_affinity(ctx: &Ctx) -> Result<Outcome> {
    let mut config = bundle::base_config(&[bundle::PROBE, "sleep", "600"]);
    let bundle = ctx.bundle(&config)?;
    let c = ctx.create(&bundle)?;
    c.start()?;
    config["process"]["args"] = json!(bundle::probe_args(&[]));
    config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "0"});
    let process = bundle.dir.join("process.json");
    std::fs::write(&process, serde_json::to_vec(&config["process"])?)?;
    let out = c.verb("exec", &["--process", &process.to_string_lossy()])?;
    ensure!(out.success, "exec failed: {}", out.error_line());
    let line = out.stdout.lines().rev().find(|l| l.starts_with('{'));
    let r: serde_json::Value = serde_json::from_str(line.unwrap_or("{}"))?;
    ensure!(
        r["status"]["Cpus_allowed_list"] == "0",
        "Cpus_allowed_list is {}, want 0",
        r["status"]["Cpus_allowed_list"]
    );
    Ok(Outcome::Pass)
}
