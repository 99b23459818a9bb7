//! config.md "Process" beyond the basics: execvp lookup of args[0], more rlimits (RLIM_INFINITY included),
//! what MUST NOT change when a field is unset (oom_score_adj, umask), empty capability sets, consoleSize
//! without a terminal.

use super::{case, Section};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

const S: Section = ("config", "config.md: root, mounts, process, hostname");

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "process.path-lookup", "args[0] without a slash MUST be found with execvp's *file* semantics (searched in the process PATH)", args_path_lookup),
        case(S, "process.rlimits.more", "rlim_cur/rlim_max MUST match for MEMLOCK, STACK, MSGQUEUE, SIGPENDING, LOCKS, FSIZE (RLIM_INFINITY included)", rlimits_more),
        case(S, "process.oomScoreAdj.unset", "if oomScoreAdj is not set, the runtime MUST NOT change oom_score_adj", oom_unset),
        case(S, "process.umask.unset", "if umask is unspecified, the umask SHOULD NOT be changed from the calling process' umask", umask_unset),
        case(S, "process.no-capabilities", "empty capability arrays MUST leave the process with no capabilities in every set", capabilities_empty),
        case(S, "process.consoleSize-ignored", "runtimes MUST ignore consoleSize if terminal is false", console_size_ignored),
    ]
}

fn args_path_lookup(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["process"]["args"] = json!(["carte-probe", "report"]);
        c["process"]["env"] = json!(["PATH=/no/such/dir:/"]);
    })?;
    ensure!(
        r["args"] == json!(["carte-probe", "report"]),
        "argv was {}",
        r["args"]
    );
    Ok(Outcome::Pass)
}

/// This harness's hard limit for a /proc/self/limits row (`u64::MAX` for unlimited).
fn own_hard(row: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let rest = text.lines().find_map(|l| l.strip_prefix(row))?;
    let hard = rest.split_whitespace().nth(1)?;
    if hard == "unlimited" {
        Some(u64::MAX)
    } else {
        hard.parse().ok()
    }
}

fn rlimits_more(ctx: &Ctx) -> Result<Outcome> {
    let inf = u64::MAX;
    // Raising a hard limit needs CAP_SYS_RESOURCE, which the runtime may lack (it inherits this harness's
    // limits and capabilities): cap every hard value at the harness's own. RLIM_INFINITY stays in where the
    // harness has it.
    let mut want = Vec::new();
    for (name, row, soft, hard) in [
        ("RLIMIT_MEMLOCK", "Max locked memory", 65_536, inf),
        ("RLIMIT_STACK", "Max stack size", 8_388_608, inf),
        ("RLIMIT_MSGQUEUE", "Max msgqueue size", 400_000, 800_000),
        ("RLIMIT_SIGPENDING", "Max pending signals", 4321, 4321),
        ("RLIMIT_LOCKS", "Max file locks", 99, 100),
        ("RLIMIT_FSIZE", "Max file size", inf, inf),
    ] {
        let hard = hard.min(own_hard(row).with_context(|| format!("read own {name}"))?);
        want.push(json!({"type": name, "soft": soft.min(hard), "hard": hard}));
    }
    let want = Value::Array(want);
    let r = ctx.probe_with(&[], |c| c["process"]["rlimits"] = want.clone())?;
    for w in want.as_array().into_iter().flatten() {
        let name = w["type"].as_str().unwrap_or("?");
        let got = &r["rlimits"][name];
        ensure!(
            got["soft"] == w["soft"] && got["hard"] == w["hard"],
            "{name} is {got}, want soft {} hard {}",
            w["soft"],
            w["hard"]
        );
    }
    Ok(Outcome::Pass)
}

/// The runtime inherits this harness's oom_score_adj; make it distinctive so a runtime that writes any
/// default of its own (0 included) is caught. Raising one's own value needs no privilege and is harmless.
fn oom_unset(ctx: &Ctx) -> Result<Outcome> {
    const MINE: &str = "17";
    std::fs::write("/proc/self/oom_score_adj", MINE).context("set own oom_score_adj")?;
    let r = ctx.probe_with(&[], |c| {
        c["process"]
            .as_object_mut()
            .map(|p| p.remove("oomScoreAdj"));
    })?;
    let got = r["/proc/self/oom_score_adj"].as_str().unwrap_or("").trim();
    ensure!(
        got == MINE,
        "oom_score_adj is `{got}`, the runtime's (inherited) is {MINE}"
    );
    Ok(Outcome::Pass)
}

fn own_umask() -> Option<String> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_string()))
}

fn umask_unset(ctx: &Ctx) -> Result<Outcome> {
    let mine = own_umask().context("read own umask")?;
    let r = ctx.probe_with(&[], |c| {
        c["process"]["user"]
            .as_object_mut()
            .map(|u| u.remove("umask"));
    })?;
    ensure!(
        r["status"]["Umask"] == json!(mine),
        "Umask is {}, the runtime's (inherited) is {mine}",
        r["status"]["Umask"]
    );
    Ok(Outcome::Pass)
}

fn capabilities_empty(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": []});
    })?;
    for field in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        ensure!(
            r["status"][field] == "0000000000000000",
            "{field} is {}",
            r["status"][field]
        );
    }
    Ok(Outcome::Pass)
}

fn console_size_ignored(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["consoleSize"] = json!({"height": 10, "width": 20});
    })?;
    ensure!(
        r["isatty"] == json!([false, false, false]) && r["winsize"] == Value::Null,
        "isatty {} winsize {}",
        r["isatty"],
        r["winsize"]
    );
    Ok(Outcome::Pass)
}
