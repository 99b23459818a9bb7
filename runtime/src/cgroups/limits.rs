//! What runc does around writing `linux.resources` that libcgroups 0.7 does not: refuse what the
//! kernel or the host cannot take, with the field named, before anything is made; write cgroup v1
//! CPU bandwidth in an order the kernel accepts; write `blockIO.weightDevice`. libcgroups still
//! writes everything else.

use super::{cg_err, hierarchy};
use crate::error::{Error, Result};
use libcgroups::common::AnyCgroupManager;
use oci_spec::runtime::LinuxResources;
use std::path::Path;

/// Where the resources come from, to name a bad field the way the user wrote it.
#[derive(Clone, Copy)]
pub enum Source {
    /// `linux.resources` of config.json.
    Config,
    /// `carte update` (`--resources FILE` and the flags).
    Update,
}

impl Source {
    fn err(self, field: &str, reason: impl Into<String>) -> Error {
        match self {
            Source::Config => Error::spec(format!("linux.resources.{field}"), reason),
            Source::Update => Error::InvalidSpec {
                file: "resources".into(),
                field: field.into(),
                reason: reason.into(),
            },
        }
    }
}

/// Pure checks. A device rule's access is what the kernel parses (devcgroup_update_access):
/// `r`, `w` and `m`, each at most once; anything else makes `devices.allow` fail with EINVAL.
pub fn check(res: &LinuxResources, src: Source) -> Result<()> {
    for (i, d) in res.devices().iter().flatten().enumerate() {
        let Some(access) = d.access() else { continue };
        let mut seen = String::new();
        for c in access.chars() {
            if !"rwm".contains(c) || seen.contains(c) {
                return Err(src.err(
                    &format!("devices[{i}].access"),
                    format!("{access:?} is not a combination of r, w and m"),
                ));
            }
            seen.push(c);
        }
        if seen.is_empty() {
            // runc: "device access at %d field cannot be empty".
            return Err(src.err(&format!("devices[{i}].access"), "empty"));
        }
    }
    Ok(())
}

/// Checks against this host: `unified` holds cgroup v2 files, which a v1 host does not have;
/// runc refuses it there ("cannot use unified on cgroup v1") rather than drop the limits.
pub fn check_host(res: &LinuxResources, src: Source) -> Result<()> {
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) && !hierarchy::unified() {
        return Err(src.err(
            "unified",
            "cgroup v2 settings cannot be applied on this cgroup v1 host",
        ));
    }
    Ok(())
}

/// cgroup v1 only, before libcgroups writes `cpu.cfs_period_us` then `cpu.cfs_quota_us`: a new
/// period can make old_quota/new_period exceed the parent's limit, and the kernel refuses it
/// with EINVAL. As runc's CpuGroup.Set: write the period; on EINVAL write the quota first, then
/// the period. libcgroups then rewrites the same values, which now pass.
pub fn before_apply(mgr: &AnyCgroupManager, path: &Path, res: &LinuxResources) -> Result<()> {
    let Some(cpu) = res.cpu().as_ref() else {
        return Ok(());
    };
    let (Some(period), Some(quota)) = (cpu.period().filter(|p| *p != 0), cpu.quota()) else {
        return Ok(());
    };
    if quota == 0 || !matches!(mgr, AnyCgroupManager::V1(_)) {
        return Ok(());
    }
    let Some(dir) = hierarchy::for_controller("cpu").map(|h| h.dir(path)) else {
        return Ok(());
    };
    let (pf, qf) = (dir.join("cpu.cfs_period_us"), dir.join("cpu.cfs_quota_us"));
    match std::fs::write(&pf, period.to_string()) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            log::debug!("{}: EINVAL, writing the quota first", pf.display());
            std::fs::write(&qf, quota.to_string()).map_err(|e| cg_err("write", &qf, e))?;
            std::fs::write(&pf, period.to_string()).map_err(|e| cg_err("write", &pf, e))
        }
        // Any other failure is libcgroups' to report, on the same write.
        _ => Ok(()),
    }
}

/// After libcgroups: what it leaves out or gets wrong, on either version.
pub fn after_apply(mgr: &AnyCgroupManager, path: &Path, res: &LinuxResources) -> Result<()> {
    match mgr {
        AnyCgroupManager::V1(_) => weight_device(path, res),
        AnyCgroupManager::V2(_) => no_swap(path, res),
        _ => Ok(()),
    }
}

/// cgroup v1: `blockIO.weightDevice`, which libcgroups never writes. As runc's BlkioGroup:
/// `blkio.weight_device` (CFQ) if the kernel has it, else BFQ's `blkio.bfq.weight_device`; a host
/// with neither fails here as it does in runc.
fn weight_device(path: &Path, res: &LinuxResources) -> Result<()> {
    let Some(devs) = res
        .block_io()
        .as_ref()
        .and_then(|b| b.weight_device().clone())
    else {
        return Ok(());
    };
    let Some(dir) = hierarchy::for_controller("blkio").map(|h| h.dir(path)) else {
        return Ok(());
    };
    let cfq = dir.join("blkio.weight_device");
    let file = if cfq.exists() {
        cfq
    } else {
        dir.join("blkio.bfq.weight_device")
    };
    for d in devs {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            let line = format!("{}:{} {w}", d.major(), d.minor());
            std::fs::write(&file, &line).map_err(|e| cg_err("write", &file, e))?;
        }
    }
    Ok(())
}

/// cgroup v2: `memory.swap` equal to `memory.limit` means no swap (v1's memsw counts memory plus
/// swap), so `memory.swap.max` must become `swap - limit` = 0, as runc writes it. libcgroups 0.7
/// skips writing any value of 0 there, which left swap unlimited (found in the v2 guest of tests/vm/).
fn no_swap(path: &Path, res: &LinuxResources) -> Result<()> {
    let Some(mem) = res.memory().as_ref() else {
        return Ok(());
    };
    let (Some(limit), Some(swap)) = (mem.limit(), mem.swap()) else {
        return Ok(());
    };
    if limit <= 0 || swap != limit {
        return Ok(());
    }
    let Some(file) = hierarchy::all()
        .iter()
        .find(|h| h.v2)
        .map(|h| h.dir(path).join("memory.swap.max"))
    else {
        return Ok(());
    };
    match std::fs::write(&file, "0") {
        Ok(()) => Ok(()),
        // A kernel without swap accounting has no such file: there is no swap to limit.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(cg_err("write", &file, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn device_access_is_r_w_m_once_each() {
        for ok in ["rwm", "r", "mw", "wrm"] {
            let r = res(&format!(
                r#"{{"devices":[{{"allow":true,"access":"{ok}"}}]}}"#
            ));
            check(&r, Source::Config).unwrap();
        }
        check(&res(r#"{"devices":[{"allow":false}]}"#), Source::Config).unwrap();
        for bad in ["rwx", "rr", "", "RWM", "rw m"] {
            let r = res(&format!(
                r#"{{"devices":[{{"allow":false,"access":"rwm"}},{{"allow":true,"access":"{bad}"}}]}}"#
            ));
            let e = check(&r, Source::Config).unwrap_err().to_string();
            assert!(
                e.starts_with("config.json: linux.resources.devices[1].access:"),
                "{e}"
            );
            let e = check(&r, Source::Update).unwrap_err().to_string();
            assert!(e.starts_with("resources: devices[1].access:"), "{e}");
        }
    }
}
