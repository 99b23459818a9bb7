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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_enabled_controllers_are_read() {
        let dir = std::env::temp_dir().join(format!("carte-stats-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.as_path();
        let write = |f: &str, t: &str| std::fs::write(d.join(f), t).unwrap();
        // A systemd scope: memory and pids, no hugetlb files at all.
        write("cgroup.controllers", "memory pids\n");
        write(
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        );
        write("memory.current", "4096\n");
        write("memory.max", "67108864\n");
        write("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n");
        write("memory.swap.current", "0\n");
        write("memory.swap.max", "max\n");
        write("memory.stat", "anon 1024\nfile 2048\n");
        write("pids.current", "2\n");
        write("pids.max", "42\n");
        let s = v2_enabled_only(d);
        assert_eq!(s.cpu.usage.usage_total, 1500);
        assert_eq!(s.memory.memory.usage, 4096);
        assert_eq!(s.memory.memory.limit, 67108864);
        assert_eq!(s.memory.memory.fail_count, 2);
        assert_eq!(s.memory.memswap.limit, u64::MAX);
        assert_eq!(s.memory.stats.get("file"), Some(&2048));
        assert_eq!((s.pids.current, s.pids.limit), (2, 42));
        assert!(s.hugetlb.is_empty());
        // Without the memory controller its files are not read, even where they exist.
        write("cgroup.controllers", "pids\n");
        assert_eq!(v2_enabled_only(d).memory.memory.limit, 0);
        std::fs::remove_dir_all(d).unwrap();
    }
}
