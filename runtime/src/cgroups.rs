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
    apply_limits(mgr, path, res)
}

/// The cgroup v1 directories a container's init can join by itself, cheaply: one per
/// hierarchy libcgroups' v1 manager uses. `None` where the init must be placed from outside
/// (cgroup v2 or systemd, or a user namespace, whose root cannot write the host's cgroupfs).
///
/// Why: moving another process (a pid written to `cgroup.procs`, libcgroups' `add_task`) takes
/// the kernel's global threadgroup lock for writing, whose first taker waits a full RCU grace
/// period — 7 to 20 ms here, most of a `carte run`. A thread that writes `0` to `tasks` moves
/// only itself, and the kernel skips that lock (Linux 6.0+; older kernels take it, and are
/// merely as slow as before). The init is single-threaded, so its one thread is all of it.
pub fn self_join_dirs(mgr: &AnyCgroupManager, path: &Path, userns: bool) -> Option<Vec<PathBuf>> {
    if userns || !matches!(mgr, AnyCgroupManager::V1(_)) {
        return None;
    }
    // The hierarchies (one directory each: `cpu,cpuacct` is one) holding a controller of
    // libcgroups' v1 manager, found with one readdir (libcgroups' own lookup reads mountinfo
    // through a fresh verified procfs handle per controller, a few hundred syscalls).
    let dirs: Vec<PathBuf> = cgroup_dirs(path)
        .into_iter()
        .filter(|d| {
            let hierarchy = d
                .strip_prefix(CGROUP_ROOT)
                .ok()
                .and_then(|r| r.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            hierarchy.split(',').any(|c| V1_CONTROLLERS.contains(&c))
        })
        .collect();
    (!dirs.is_empty()).then_some(dirs)
}

/// The controllers libcgroups' v1 manager places a task in (its `CONTROLLERS`, not exported).
const V1_CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// What `add_task` would have done but the move: the directories, each new cpuset level given
/// its parent's CPUs and memory nodes (the kernel refuses tasks in an empty cpuset); then the
/// limits, before the init joins and runs anything.
pub fn prepare_self_join(
    mgr: &AnyCgroupManager,
    path: &Path,
    dirs: &[PathBuf],
    res: Option<&LinuxResources>,
) -> Result<()> {
    for d in dirs {
        // One retry: a concurrent delete may remove the shared default parent (/carte) between
        // the two mkdirs, as in `join_and_apply`.
        if std::fs::create_dir_all(d).is_err() {
            std::fs::create_dir_all(d).map_err(|e| cg_err("create", d, e))?;
        }
        if d.join("cpuset.cpus").exists() {
            fill_cpuset(d, path)?;
        }
    }
    apply_limits(mgr, path, res)
}

/// Walk from the hierarchy's root down to `dir`, copying `cpuset.cpus` and `cpuset.mems` into
/// every level where they are empty.
fn fill_cpuset(dir: &Path, path: &Path) -> Result<()> {
    let depth = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let levels: Vec<&Path> = dir.ancestors().take(depth + 1).collect();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        for pair in levels.windows(2).rev() {
            let (child, parent) = (pair[0].join(file), pair[1].join(file));
            let mine = std::fs::read_to_string(&child).map_err(|e| cg_err("read", &child, e))?;
            if mine.trim().is_empty() {
                let theirs =
                    std::fs::read_to_string(&parent).map_err(|e| cg_err("read", &parent, e))?;
                std::fs::write(&child, theirs.trim()).map_err(|e| cg_err("write", &child, e))?;
            }
        }
    }
    Ok(())
}

/// In the init, before anything else: move our own (only) thread into each directory.
pub fn join_self(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        let tasks = d.join("tasks");
        std::fs::write(&tasks, "0").map_err(|e| cg_err("join (write 0 to tasks)", &tasks, e))?;
    }
    Ok(())
}

/// Write `linux.resources` into the container's cgroup.
fn apply_limits(mgr: &AnyCgroupManager, path: &Path, res: Option<&LinuxResources>) -> Result<()> {
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
        no_swap_on_v2(mgr, path, res)?;
    }
    Ok(())
}

/// On cgroup v2 (cgroupfs driver), the container's device rules as an eBPF program on its cgroup
/// (`devfilter`), always: with no `linux.resources.devices` the default allow list alone applies, as
/// libcgroups' v1 devices controller does. Only at create: `update` does not change device rules.
pub fn apply_device_filter(
    mgr: &AnyCgroupManager,
    path: &Path,
    res: Option<&LinuxResources>,
) -> Result<()> {
    if !matches!(mgr, AnyCgroupManager::V2(_)) {
        return Ok(());
    }
    let spec = res.and_then(|r| r.devices().as_deref()).unwrap_or(&[]);
    let dir = Path::new(CGROUP_ROOT).join(path.strip_prefix("/").unwrap_or(path));
    crate::devfilter::apply(&dir, spec)
}

/// `memory.swap` equal to `memory.limit` means no swap (v1's memsw counts memory plus swap), so v2's
/// `memory.swap.max` must become `swap - limit` = 0, as runc writes it. libcgroups 0.7 skips writing any
/// value of 0 there, which left swap unlimited (found in the cgroup v2 guest of tests/vm/).
pub fn no_swap_on_v2(mgr: &AnyCgroupManager, path: &Path, res: &LinuxResources) -> Result<()> {
    let Some(mem) = res.memory().as_ref() else {
        return Ok(());
    };
    let (Some(limit), Some(swap)) = (mem.limit(), mem.swap()) else {
        return Ok(());
    };
    if !matches!(mgr, AnyCgroupManager::V2(_)) || limit <= 0 || swap != limit {
        return Ok(());
    }
    let file = Path::new(CGROUP_ROOT)
        .join(path.strip_prefix("/").unwrap_or(path))
        .join("memory.swap.max");
    match std::fs::write(&file, "0") {
        Ok(()) => Ok(()),
        // A kernel without swap accounting has no such file: there is no swap to limit.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(cg_err("write memory.swap.max of", path, e)),
    }
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
        if dir.join("cgroup.procs").exists() {
            let mut out = vec![];
            for d in subtree(&dir) {
                if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
            return out;
        }
    }
    vec![]
}

/// `dir` and every cgroup below it, deepest first: the container may have made sub-cgroups (a nested
/// runtime, systemd, `exec --cgroup`, a delegated v2 subtree), and their processes are the container's
/// too (runc's GetAllPids), and rmdir must take them children first (runc's RemovePath).
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(subtree(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
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
    if !systemd {
        let dirs = cgroup_dirs(path);
        if dirs.iter().all(|d| !d.exists()) {
            return Ok(());
        }
        // The common case, a cgroup whose processes are gone and that has no sub-cgroups: rmdir
        // is all there is to do, without building a libcgroups manager (a few hundred syscalls).
        if pids(path).is_empty() && remove_empty(&dirs) {
            remove_default_parent(path);
            return Ok(());
        }
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
        // Sub-cgroups first, or libcgroups' rmdir of the container's own fails (EBUSY) for good.
        if !systemd {
            remove_empty(&cgroup_dirs(path));
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

/// rmdir the cgroup's directory in every hierarchy (`dirs`), sub-cgroups first; false when one
/// remains (it still has tasks), which libcgroups' remove then deals with.
fn remove_empty(dirs: &[PathBuf]) -> bool {
    dirs.iter().all(|top| {
        subtree(top).iter().all(|d| match std::fs::remove_dir(d) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        })
    })
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
