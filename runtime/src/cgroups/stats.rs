//! `events` statistics of a cgroup v2 directory where not every controller is enabled. libcgroups' v2 (and
//! so systemd) manager reads every controller's files and fails on the first missing one; systemd never
//! enables `hugetlb` for a scope (it manages cpu, io, memory and pids), so `events --stats` of a container
//! under `--systemd-cgroup` failed on `hugetlb.2MB.events`. runc's fs2 `Stat` skips what does not exist; so
//! does this, for the controllers the directory's `cgroup.controllers` lists.

use libcgroups::stats::{parse_single_value, pid_stats, MemoryData, Stats};
use std::collections::HashMap;
use std::path::Path;

/// The controllers enabled in `dir`.
fn enabled(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A flat-keyed file (`key value` lines, as `cpu.stat` and `memory.stat`); empty when unreadable.
fn flat(file: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `memory.*` or `memory.swap.*`: usage, limit, peak (0 before Linux 5.19) and the failure count event.
fn memory_data(dir: &Path, prefix: &str, fail_event: &str) -> MemoryData {
    let value = |f: &str| parse_single_value(&dir.join(format!("{prefix}.{f}"))).unwrap_or(0);
    MemoryData {
        usage: value("current"),
        limit: value("max"),
        max_usage: value("peak"),
        fail_count: flat(&dir.join(format!("{prefix}.events")))
            .get(fail_event)
            .copied()
            .unwrap_or(0),
    }
}

/// The statistics of the controllers enabled in `dir`, in libcgroups' shape (cpu times in µs, as its v2
/// manager reports them); the others stay zero, as in runc.
pub fn v2_enabled_only(dir: &Path) -> Stats {
    let mut s = Stats::default();
    let on = enabled(dir);
    let has = |c: &str| on.iter().any(|x| x == c);
    // cpu.stat's usage lines exist without the cpu controller too (core accounting).
    let cpu = flat(&dir.join("cpu.stat"));
    let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
    s.cpu.usage.usage_total = get("usage_usec");
    s.cpu.usage.usage_user = get("user_usec");
    s.cpu.usage.usage_kernel = get("system_usec");
    s.cpu.throttling.periods = get("nr_periods");
    s.cpu.throttling.throttled_periods = get("nr_throttled");
    s.cpu.throttling.throttled_time = get("throttled_usec");
    if has("memory") {
        s.memory.memory = memory_data(dir, "memory", "oom");
        s.memory.memswap = memory_data(dir, "memory.swap", "fail");
        s.memory.hierarchy = true;
        s.memory.stats = flat(&dir.join("memory.stat"));
    }
    if has("pids") {
        if let Ok(p) = pid_stats(dir) {
            s.pids = p;
        }
    }
    s
}
