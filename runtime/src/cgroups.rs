//! The cgroup adapter over libcgroups: pick the manager (v1, v2, hybrid hosts like ours, or
//! systemd), place a process and apply `linux.resources`, freeze, list pids, and destroy with a
//! bounded, logged retry — the seed project's "release with retry" promise.

use crate::error::{Error, Result};
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// runc's rule with carte's prefix: `linux.cgroupsPath` if given, else `/carte/<id>` for the fs
/// drivers and `system.slice:carte:<id>` for systemd.
pub fn path_for(spec_path: Option<&Path>, id: &str, systemd: bool) -> PathBuf {
    match spec_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ if systemd => PathBuf::from(format!("system.slice:carte:{id}")),
        _ => PathBuf::from(format!("/carte/{id}")),
    }
}

/// `--systemd-cgroup` needs a running systemd; say so plainly instead of failing deep in D-Bus.
pub fn check_systemd(systemd: bool) -> Result<()> {
    if systemd && !Path::new("/run/systemd/system").exists() {
        return Err(Error::Usage(
            "--systemd-cgroup: systemd is not running on this host (/run/systemd/system is missing); use the default cgroupfs driver".into(),
        ));
    }
    Ok(())
}

fn cg_err(op: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cgroup {
        op: op.into(),
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A cgroupfs path must name a cgroup of its own below the hierarchy's root: `/`, an empty path or
/// one with `.`/`..` components would make teardown kill and remove whatever that resolves to —
/// with `/`, every process on the host. systemd paths (`slice:prefix:name`) are checked by systemd.
pub fn check_path(path: &Path, systemd: bool) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if systemd {
        return Ok(());
    }
    // Split the raw bytes: Path::components() silently drops inner `.` components.
    let mut normal = 0;
    for seg in path.as_os_str().as_bytes().split(|b| *b == b'/') {
        match seg {
            b"" => {}
            b"." | b".." => {
                return Err(cg_err(
                    "use",
                    path,
                    "`.` and `..` are not allowed in linux.cgroupsPath",
                ))
            }
            _ => normal += 1,
        }
    }
    if normal == 0 {
        return Err(cg_err(
            "use",
            path,
            "the root cgroup cannot be a container's",
        ));
    }
    Ok(())
}

pub fn manager(path: &Path, systemd: bool, id: &str) -> Result<AnyCgroupManager> {
    check_path(path, systemd)?;
    create_cgroup_manager(CgroupConfig {
        cgroup_path: path.to_path_buf(),
        systemd_cgroup: systemd,
        container_name: id.to_string(),
    })
    .map_err(|e| cg_err("open", path, e))
}

/// Create the cgroup (add_task makes the directories) and write the limits.
pub fn join_and_apply(
    mgr: &AnyCgroupManager,
    path: &Path,
    pid: i32,
    res: Option<&LinuxResources>,
) -> Result<()> {
    // A concurrent delete may remove the shared default parent (/carte) between our mkdir of
    // it and of our own directory; one retry recreates both.
    if mgr.add_task(Pid::from_raw(pid)).is_err() {
        mgr.add_task(Pid::from_raw(pid))
            .map_err(|e| cg_err("join", path, e))?;
    }
    if let Some(res) = res {
        let opt = ControllerOpt {
            resources: res,
            disable_oom_killer: res
                .memory()
                .as_ref()
                .and_then(|m| m.disable_oom_killer())
                .unwrap_or(false),
            oom_score_adj: None,
            freezer_state: None,
        };
        mgr.apply(&opt)
            .map_err(|e| cg_err("apply limits to", path, e))?;
    }
    Ok(())
}

pub fn freeze(mgr: &AnyCgroupManager, path: &Path, frozen: bool) -> Result<()> {
    let st = if frozen {
        FreezerState::Frozen
    } else {
        FreezerState::Thawed
    };
    mgr.freeze(st)
        .map_err(|e| cg_err(if frozen { "freeze" } else { "thaw" }, path, e))
}

/// Every pid in the container's cgroup (empty when the cgroup is gone).
pub fn pids(path: &Path) -> Vec<i32> {
    // Never list (and so never kill) the processes of the root or of a cgroup outside the path.
    if check_path(path, false).is_err() {
        return vec![];
    }
    for dir in cgroup_dirs(path) {
        if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            return s.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    vec![]
}

/// The directories this cgroup path has on this host: one per v1 hierarchy, or the v2 one.
pub fn cgroup_dirs(path: &Path) -> Vec<PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(rel)];
    }
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path();
            // Skip the symlinks (cpu -> cpu,cpuacct) so a hierarchy is counted once.
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.push(p.join(rel));
            }
        }
    }
    out
}

pub fn is_frozen(path: &Path) -> bool {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let v1 = Path::new(CGROUP_ROOT)
        .join("freezer")
        .join(rel)
        .join("freezer.state");
    if let Ok(s) = std::fs::read_to_string(v1) {
        return s.trim() == "FROZEN";
    }
    let v2 = Path::new(CGROUP_ROOT).join(rel).join("cgroup.freeze");
    matches!(std::fs::read_to_string(v2), Ok(s) if s.trim() == "1")
}

/// Kill what is left, then remove the cgroup, retrying while the kernel still says EBUSY (a
/// dying task keeps the directory busy for a moment). Each failed attempt is logged.
pub fn destroy(path: &Path, systemd: bool, id: &str) -> Result<()> {
    // A path create refused was never made: nothing to remove.
    if check_path(path, systemd).is_err() {
        return Ok(());
    }
    if !systemd && cgroup_dirs(path).iter().all(|d| !d.exists()) {
        return Ok(());
    }
    let mgr = manager(path, systemd, id)?;
    // A frozen task cannot die: thaw first so SIGKILL is delivered.
    if is_frozen(path) {
        let _ = mgr.freeze(FreezerState::Thawed);
    }
    let delays = [5u64, 10, 20, 50, 100, 200, 400];
    let mut last = None;
    for (i, d) in delays.iter().enumerate() {
        for pid in pids(path) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        match mgr.remove() {
            Ok(()) => {
                remove_default_parent(path);
                return Ok(());
            }
            Err(e) => {
                log::warn!(
                    "remove cgroup {} (attempt {} of {}): {e}",
                    path.display(),
                    i + 1,
                    delays.len()
                );
                last = Some(e.to_string());
                std::thread::sleep(Duration::from_millis(*d));
            }
        }
    }
    Err(cg_err("remove", path, last.unwrap_or_default()))
}

/// The default parent `/carte` is ours: remove it when the last container left it empty, so
/// nothing of carte stays in the cgroup tree. rmdir fails harmlessly while it has children.
fn remove_default_parent(path: &Path) {
    if path.parent() == Some(Path::new("/carte")) {
        for d in cgroup_dirs(Path::new("/carte")) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_proper_subgroup_is_accepted() {
        for bad in ["/", "", "/..", "/a/../..", "a/./b", "/carte/../../x", "//"] {
            assert!(check_path(Path::new(bad), false).is_err(), "{bad:?}");
            assert!(pids(Path::new(bad)).is_empty(), "{bad:?}");
        }
        for ok in ["/carte/c1", "c1", "/a/b/c", "/a.b/..c"] {
            assert!(check_path(Path::new(ok), false).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn default_paths() {
        assert_eq!(path_for(None, "c1", false), PathBuf::from("/carte/c1"));
        assert_eq!(
            path_for(None, "c1", true),
            PathBuf::from("system.slice:carte:c1")
        );
        assert_eq!(
            path_for(Some(Path::new("/x/y")), "c1", false),
            PathBuf::from("/x/y")
        );
    }
}
