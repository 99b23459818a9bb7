//! `carte events`: runc's event stream — `{"type":"stats","id":…,"data":{…}}` every interval (or
//! once with --stats), and `{"type":"oom",…}` when the memory controller counts a new OOM kill.
//! The stats shape is runc's `types/events.go`, mapped from libcgroups' stats.

use crate::cli::{Cli, EventsArgs};
use crate::error::{Error, Result};
use crate::state::{self, ContainerDir, State, Status};
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub fn run(cli: &Cli, a: &EventsArgs) -> Result<i32> {
    let interval = parse_duration(&a.interval)?;
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    drop(dir);
    let mgr = crate::cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
    let mut ooms = oom_kills(&st);
    loop {
        let status = state::status(&cli.root.join(&st.id), &st);
        if status == Status::Stopped && !a.stats {
            return Ok(0);
        }
        let stats = crate::cgroups::stats(&mgr, &st.cgroup_path, st.systemd_cgroup)?;
        if !super::out(json!({"type": "stats", "id": st.id, "data": runc_stats(&stats)})) || a.stats
        {
            return Ok(0);
        }
        let now = oom_kills(&st);
        if now > ooms {
            if !super::out(json!({"type": "oom", "id": st.id})) {
                return Ok(0);
            }
            ooms = now;
        }
        std::thread::sleep(interval);
    }
}

/// `5s`, `500ms`, `1m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::Usage(format!("invalid --interval {s:?}: use e.g. 5s, 500ms, 1m"));
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// OOM kills so far: v1 `memory.oom_control`'s oom_kill, v2 `memory.events`' oom_kill.
fn oom_kills(st: &State) -> u64 {
    for d in
        crate::cgroups::cgroup_dirs(&crate::cgroups::fs_path(&st.cgroup_path, st.systemd_cgroup))
    {
        for f in ["memory.oom_control", "memory.events"] {
            if let Ok(s) = std::fs::read_to_string(d.join(f)) {
                if let Some(n) = s.lines().find_map(|l| l.strip_prefix("oom_kill ")) {
                    return n.trim().parse().unwrap_or(0);
                }
            }
        }
    }
    0
}

fn mem(m: &MemoryData) -> Value {
    json!({"limit": m.limit, "usage": m.usage, "max": m.max_usage, "failcnt": m.fail_count})
}

fn blkio(v: &[BlkioDeviceStat]) -> Value {
    v.iter()
        .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op_type.clone().unwrap_or_default(), "value": e.value}))
        .collect()
}

/// runc's `types.Stats` JSON from libcgroups' `Stats`.
pub fn runc_stats(s: &Stats) -> Value {
    let u = &s.cpu.usage;
    let mut hugetlb = Map::new();
    for (k, h) in &s.hugetlb {
        hugetlb.insert(
            k.clone(),
            json!({"usage": h.usage, "max": h.max_usage, "failcnt": h.fail_count}),
        );
    }
    json!({
        "cpu": {
            "usage": {
                "total": u.usage_total, "percpu": u.per_core_usage_total,
                "percpu_kernel": u.per_core_usage_kernel, "percpu_user": u.per_core_usage_user,
                "kernel": u.usage_kernel, "user": u.usage_user
            },
            "throttling": {
                "periods": s.cpu.throttling.periods,
                "throttled_periods": s.cpu.throttling.throttled_periods,
                "throttled_time": s.cpu.throttling.throttled_time
            }
        },
        "memory": {
            "cache": s.memory.cache,
            "usage": mem(&s.memory.memory),
            "swap": mem(&s.memory.memswap),
            "kernel": mem(&s.memory.kernel),
            "kernelTCP": mem(&s.memory.kernel_tcp),
            "raw": s.memory.stats
        },
        "pids": {"current": s.pids.current, "limit": s.pids.limit},
        "blkio": {
            "ioServiceBytesRecursive": blkio(&s.blkio.service_bytes),
            "ioServicedRecursive": blkio(&s.blkio.serviced),
            "ioQueuedRecursive": blkio(&s.blkio.queued),
            "ioServiceTimeRecursive": blkio(&s.blkio.service_time),
            "ioWaitTimeRecursive": blkio(&s.blkio.wait_time),
            "ioMergedRecursive": blkio(&s.blkio.merged),
            "ioTimeRecursive": blkio(&s.blkio.time),
            "sectorsRecursive": blkio(&s.blkio.sectors)
        },
        "hugetlb": hugetlb
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        for bad in ["", "0s", "-1s", "5x", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stats_have_runc_keys() {
        let v = runc_stats(&Stats::default());
        for k in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["cpu"]["usage"].get("total").is_some());
        assert!(v["memory"]["usage"].get("limit").is_some());
    }
}
