//! `carte update`: new resource limits for a running container, from `--resources FILE|-` (a
//! runtime-spec LinuxResources JSON, what containerd sends on stdin) and runc's single-value flags.

use crate::cli::{Cli, UpdateArgs};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, Status};
use oci_spec::runtime::LinuxResources;
use std::io::Read;

pub fn run(cli: &Cli, a: &UpdateArgs) -> Result<i32> {
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    let status = state::status(&dir.path, &st);
    if status == Status::Stopped {
        return Err(Error::WrongStatus {
            id: a.id.clone(),
            status: status.as_str().into(),
            verb: "update",
        });
    }
    let mut v = match &a.resources {
        Some(p) => {
            let mut raw = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut raw)
                    .ctx("read", "stdin")?;
            } else {
                raw = std::fs::read(p).ctx("read", p.display())?;
            }
            serde_json::from_slice::<serde_json::Value>(&raw).map_err(|e| Error::InvalidSpec {
                file: p.display().to_string(),
                field: "(document)".into(),
                reason: e.to_string(),
            })?
        }
        None => serde_json::json!({}),
    };
    apply_flags(&mut v, a)?;
    let res: LinuxResources =
        serde_path_to_error::deserialize(v).map_err(|e| Error::InvalidSpec {
            file: "resources".into(),
            field: e.path().to_string(),
            reason: e.into_inner().to_string(),
        })?;
    let mgr = crate::cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
    log::debug!("update limits of {}", st.cgroup_path.display());
    let opt = libcgroups::common::ControllerOpt {
        resources: &res,
        disable_oom_killer: false,
        oom_score_adj: None,
        freezer_state: None,
    };
    libcgroups::common::CgroupManager::apply(&mgr, &opt).map_err(|e| Error::Cgroup {
        op: "update limits of".into(),
        path: st.cgroup_path.display().to_string(),
        reason: e.to_string(),
    })?;
    crate::cgroups::no_swap_on_v2(&mgr, &st.cgroup_path, &res)?;
    Ok(0)
}

fn set(v: &mut serde_json::Value, group: &str, key: &str, val: serde_json::Value) {
    if !v[group].is_object() {
        v[group] = serde_json::json!({});
    }
    v[group][key] = val;
}

fn apply_flags(v: &mut serde_json::Value, a: &UpdateArgs) -> Result<()> {
    use serde_json::Value as V;
    if let Some(m) = &a.memory {
        set(v, "memory", "limit", V::from(parse_size(m, "--memory")?));
    }
    if let Some(m) = &a.memory_reservation {
        set(
            v,
            "memory",
            "reservation",
            V::from(parse_size(m, "--memory-reservation")?),
        );
    }
    if let Some(m) = &a.memory_swap {
        set(
            v,
            "memory",
            "swap",
            V::from(parse_size(m, "--memory-swap")?),
        );
    }
    if let Some(q) = a.cpu_quota {
        set(v, "cpu", "quota", V::from(q));
    }
    if let Some(p) = a.cpu_period {
        set(v, "cpu", "period", V::from(p));
    }
    if let Some(s) = a.cpu_shares {
        set(v, "cpu", "shares", V::from(s));
    }
    if let Some(p) = a.cpu_rt_period {
        set(v, "cpu", "realtimePeriod", V::from(p));
    }
    if let Some(r) = a.cpu_rt_runtime {
        set(v, "cpu", "realtimeRuntime", V::from(r));
    }
    if let Some(c) = &a.cpuset_cpus {
        set(v, "cpu", "cpus", V::from(c.clone()));
    }
    if let Some(m) = &a.cpuset_mems {
        set(v, "cpu", "mems", V::from(m.clone()));
    }
    if let Some(p) = a.pids_limit {
        set(v, "pids", "limit", V::from(p));
    }
    if let Some(w) = a.blkio_weight {
        set(v, "blockIO", "weight", V::from(w));
    }
    Ok(())
}

/// `64m`, `1g`, `512k`, `1024`, `-1` (unlimited) → bytes, as runc's RAMInBytes.
pub fn parse_size(s: &str, flag: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| Error::Usage(format!("invalid {flag} {s:?}: use e.g. 64m, 1g, 524288")))?;
    n.checked_mul(mult)
        .filter(|b| *b >= 0)
        .ok_or_else(|| Error::Usage(format!("invalid {flag} {s:?}: out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m", "--memory").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G", "--memory").unwrap(), 1 << 30);
        assert_eq!(parse_size("512kb", "--memory").unwrap(), 512 << 10);
        assert_eq!(parse_size("1000", "--memory").unwrap(), 1000);
        assert_eq!(parse_size("-1", "--memory").unwrap(), -1);
        for bad in ["", "m", "1x", "-5", "99999999999t"] {
            assert!(parse_size(bad, "--memory").is_err(), "{bad:?}");
        }
    }
}
