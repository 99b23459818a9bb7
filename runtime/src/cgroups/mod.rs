//! The cgroup adapter over libcgroups: pick the manager (v1, v2, hybrid hosts like ours, or
//! systemd), place a process and apply `linux.resources`, freeze, list pids, and destroy with a
//! bounded, logged retry — the seed project's "release with retry" promise.

pub mod hierarchy;
pub mod limits;
mod placement;
mod remove;
mod stats;
mod unit_path;

pub use placement::{path_for, rootless_base};
pub use unit_path::fs_path;

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

/// Why an unprivileged runtime goes without a cgroup for this container (a warning to log), if it does: it cannot create
/// the cgroup at `path` (cgroup v1 is never delegated to users; on v2 a path outside the user's
/// delegated subtree). Then it says so, and refuses limits it could not enforce — runc's rootless
/// cgroupfs manager does the same (fs.go: permission errors ignored without limits; "cannot set
/// … limit: container could not join or create cgroup" with them).
pub fn skip_rootless(
    rootless: bool,
    path: &Path,
    systemd: bool,
    res: Option<&LinuxResources>,
) -> Result<Option<String>> {
    if systemd || !rootless || check_path(path, false).is_err() {
        return Ok(None);
    }
    if crate::rootless::cgroup_writable(&cgroup_dirs(path)) {
        return Ok(None);
    }
    if let Some(field) = res.and_then(crate::rootless::first_limit) {
        return Err(cg_err(
            "use",
            path,
            format!("{field} needs a cgroup, and this user cannot create one here (rootless without cgroup delegation)"),
        ));
    }
    Ok(Some(format!(
        "rootless: no cgroup for this container: this user cannot create {} ({}); it runs in the caller's cgroup, without limits",
        path.display(),
        if hierarchy::unified() { "not in a subtree delegated to it" } else { "cgroup v1 is not delegated to users" }
    )))
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
    if path.as_os_str().is_empty() && !systemd {
        // runc: "cgroups not configured for container".
        return Err(cg_err(
            "use",
            Path::new("(none)"),
            "this container has no cgroup (created rootless, without cgroup delegation)",
        ));
    }
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
    join(mgr, path, pid)?;
    apply_limits(mgr, path, res)
}

/// Create the cgroup and move `pid` into it from outside (add_task makes the directories).
pub fn join(mgr: &AnyCgroupManager, path: &Path, pid: i32) -> Result<()> {
    // A concurrent delete may remove a parent it empties (`/carte`, see `remove_default_parent`)
    // between our mkdir of it and of our own directory; one retry recreates both.
    if mgr.add_task(Pid::from_raw(pid)).is_err() {
        mgr.add_task(Pid::from_raw(pid))
            .map_err(|e| cg_err("join", path, e))?;
    }
    if matches!(mgr, AnyCgroupManager::V1(_)) {
        join_others(path, pid)?;
    }
    Ok(())
}

/// The directories a container's init can join by itself, cheaply: one per hierarchy it
/// belongs in, on a cgroup v1 or hybrid host. `None` where the init must be placed from outside
/// (cgroup v2 or systemd, or a user namespace, whose root cannot write the host's cgroupfs).
///
/// Why: moving another process (a pid written to `cgroup.procs`, libcgroups' `add_task`) takes
/// the kernel's global threadgroup lock for writing, whose first taker waits a full RCU grace
/// period — 7 to 20 ms here, most of a `carte run`. A thread that writes `0` to `tasks` moves
/// only itself, and the kernel skips that lock (Linux 6.0+; older kernels take it, and are
/// merely as slow as before). The init is single-threaded, so its one thread is all of it.
pub fn self_join_dirs(path: &Path, systemd: bool, userns: bool) -> Option<Vec<PathBuf>> {
    if userns || systemd || path.as_os_str().is_empty() || hierarchy::unified() {
        return None;
    }
    joined_dirs(path)
}

/// The directories a process `exec` forks joins by itself: those of the container's cgroup,
/// which exists since `create`, with the cgroupfs driver and a runtime that is root on the host
/// (the process joins before it enters the container's user namespace). On cgroup v2 (and the
/// cgroup2 part of a hybrid host) it is born there instead (`clone_into`). Either way, no
/// libcgroups manager is built, and no one moves another process, which takes the kernel's
/// threadgroup lock (see `self_join_dirs`); runc, too, writes the exec'd pid into the
/// container's cgroup directories without its manager's setup.
pub fn exec_join_dirs(path: &Path, systemd: bool) -> Option<Vec<PathBuf>> {
    if systemd || path.as_os_str().is_empty() || crate::rootless::euid_rootless() {
        return None;
    }
    joined_dirs(path)
}

fn joined_dirs(path: &Path) -> Option<Vec<PathBuf>> {
    // Every hierarchy the container belongs in (one directory each: `cpu,cpuacct` is one):
    // libcgroups' controllers, and also `name=systemd` and the hybrid cgroup2 one, where runc
    // places its init too. Found in the mount table read once (libcgroups' own lookup reads
    // mountinfo through a fresh verified procfs handle per controller, a few hundred syscalls).
    let dirs: Vec<PathBuf> = hierarchy::all()
        .iter()
        .filter(|h| h.joined())
        .map(|h| h.dir(path))
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

/// Of the directories the init joins, the cgroup2 one of a hybrid host, made and opened for
/// `clone_fork_into`: writing a pid (even `0`) into a cgroup2 `cgroup.procs` takes the kernel's
/// threadgroup lock for writing, ~13 ms here, where being born in the cgroup does not.
pub fn clone_into(dirs: &[PathBuf]) -> Result<Option<(PathBuf, std::os::fd::OwnedFd)>> {
    use std::os::unix::fs::OpenOptionsExt;
    let v2 = hierarchy::all().iter().filter(|h| h.v2);
    let Some(dir) = dirs
        .iter()
        .find(|d| v2.clone().any(|h| d.starts_with(&h.mount_point)))
    else {
        return Ok(None);
    };
    // One retry, as in `make_self_join_dirs`: a concurrent delete may remove the shared parent.
    if std::fs::create_dir_all(dir).is_err() {
        std::fs::create_dir_all(dir).map_err(|e| cg_err("create", dir, e))?;
    }
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| cg_err("open", dir, e))?;
    Ok(Some((dir.clone(), fd.into())))
}

/// After libcgroups' v1 `add_task`: the hierarchies it does not know (`name=systemd`, the
/// hybrid cgroup2 one), which runc joins too.
fn join_others(path: &Path, pid: i32) -> Result<()> {
    for h in hierarchy::all()
        .iter()
        .filter(|h| h.joined() && !h.holds(&V1_CONTROLLERS))
    {
        let d = h.dir(path);
        std::fs::create_dir_all(&d).map_err(|e| cg_err("create", &d, e))?;
        let procs = d.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(|e| cg_err("join", &procs, e))?;
    }
    Ok(())
}

/// What `add_task` would have done but the move: the directories, each new cpuset level given
/// its parent's CPUs and memory nodes (the kernel refuses tasks in an empty cpuset). No
/// libcgroups manager is needed for it: the limits come later (`apply_limits`).
pub fn make_self_join_dirs(path: &Path, dirs: &[PathBuf]) -> Result<()> {
    // Which directory is the cpuset one comes from the mount table the parent read before the
    // clone (cached, copied into this init): no stat of `cpuset.cpus` in every hierarchy.
    let cpuset = hierarchy::for_controller("cpuset")
        .filter(|h| !h.v2)
        .map(|h| h.dir(path));
    for d in dirs {
        // One retry: a concurrent delete may remove a parent it empties between the two mkdirs,
        // as in `join`.
        if std::fs::create_dir_all(d).is_err() {
            std::fs::create_dir_all(d).map_err(|e| cg_err("create", d, e))?;
        }
        if cpuset.as_ref() == Some(d) {
            fill_cpuset(d, path)?;
        }
    }
    Ok(())
}

/// Walk from the hierarchy's root down to `dir`, giving every level where `cpuset.cpus` or
/// `cpuset.mems` is empty the value of the level above: each file of each level read once.
fn fill_cpuset(dir: &Path, path: &Path) -> Result<()> {
    let depth = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let levels: Vec<&Path> = dir.ancestors().take(depth + 1).collect();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut above = String::new();
        for level in levels.iter().rev() {
            let f = level.join(file);
            let mine = crate::kernel_text::read_trimmed(&f).map_err(|e| cg_err("read", &f, e))?;
            if mine.is_empty() && !above.is_empty() {
                std::fs::write(&f, &above).map_err(|e| cg_err("write", &f, e))?;
            } else {
                above = mine;
            }
        }
    }
    Ok(())
}

/// In the init, before anything else: move our own (only) thread into each directory. The
/// hybrid cgroup2 hierarchy has no `tasks`: there the whole process moves (`cgroup.procs`).
pub fn join_self(dirs: &[PathBuf]) -> Result<()> {
    use std::io::Write;
    // Without O_CREAT: a missing file must say ENOENT (cgroupfs answers EACCES to a create).
    let write0 = |f: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .and_then(|mut f| f.write_all(b"0"))
    };
    for d in dirs {
        let tasks = d.join("tasks");
        match write0(&tasks) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let procs = d.join("cgroup.procs");
                write0(&procs).map_err(|e| cg_err("join (write 0 to cgroup.procs)", &procs, e))?;
            }
            r => r.map_err(|e| cg_err("join (write 0 to tasks)", &tasks, e))?,
        }
    }
    Ok(())
}

/// Write `linux.resources` into the container's cgroup.
pub fn apply_limits(
    mgr: &AnyCgroupManager,
    path: &Path,
    res: Option<&LinuxResources>,
) -> Result<()> {
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
        apply(mgr, path, &opt, "apply limits to")?;
    }
    Ok(())
}

/// libcgroups' apply, with what runc does around it that libcgroups does not (`limits`).
pub fn apply(mgr: &AnyCgroupManager, path: &Path, opt: &ControllerOpt, op: &str) -> Result<()> {
    limits::before_apply(mgr, path, opt.resources)?;
    mgr.apply(opt).map_err(|e| cg_err(op, path, e))?;
    limits::after_apply(mgr, path, opt.resources)
}

/// Before anything of a container exists: refuse resources this host cannot take, and a cgroup
/// that is frozen — the init would sit in the refrigerator and `create` wait for it forever.
/// runc refuses the same (factory_linux.go: "container's cgroup unexpectedly frozen").
pub fn preflight(path: &Path, systemd: bool, res: Option<&LinuxResources>) -> Result<()> {
    if let Some(res) = res {
        limits::check(res, limits::Source::Config)?;
        limits::check_host(res, limits::Source::Config)?;
    }
    if !systemd && check_path(path, false).is_ok() && frozen_from_above(path) {
        return Err(cg_err(
            "use",
            path,
            "container's cgroup unexpectedly frozen",
        ));
    }
    Ok(())
}

/// Whether a task placed in `path` would be frozen: the deepest existing directory of it, or of
/// its ancestors, says so (a v1 child of a frozen cgroup is born frozen; v2 `cgroup.events`
/// shows the effective state).
fn frozen_from_above(path: &Path) -> bool {
    let Some(h) = hierarchy::for_controller("freezer") else {
        return false;
    };
    let dir = h.dir(path);
    let Some(d) = dir
        .ancestors()
        .take_while(|d| *d != h.mount_point)
        .find(|d| d.exists())
    else {
        return false;
    };
    if h.v2 {
        let ev = crate::kernel_text::read(d.join("cgroup.events")).unwrap_or_default();
        ev.lines().any(|l| l.trim() == "frozen 1")
    } else {
        let st = crate::kernel_text::read(d.join("freezer.state")).unwrap_or_default();
        matches!(st.trim(), "FROZEN" | "FREEZING")
    }
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
    let Some(dir) = hierarchy::all().iter().find(|h| h.v2).map(|h| h.dir(path)) else {
        return Ok(());
    };
    let spec = res.and_then(|r| r.devices().as_deref()).unwrap_or(&[]);
    crate::devfilter::apply(&dir, spec)
}

/// The cgroup's statistics (`events`): libcgroups', or on a unified host where it fails on a controller the
/// cgroup does not have (a systemd scope has no hugetlb), those of the controllers it has, as runc reports.
pub fn stats(
    mgr: &AnyCgroupManager,
    path: &Path,
    systemd: bool,
) -> Result<libcgroups::stats::Stats> {
    let err = match mgr.stats() {
        Ok(s) => return Ok(s),
        Err(e) => cg_err("read stats of", path, e),
    };
    let rel = fs_path(path, systemd);
    let dir = Path::new(CGROUP_ROOT).join(rel.strip_prefix("/").unwrap_or(&rel));
    if !hierarchy::unified() || !dir.join("cgroup.controllers").exists() {
        return Err(err);
    }
    Ok(stats::v2_enabled_only(&dir))
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

/// Every pid in the cgroup at cgroupfs path `path` (see `fs_path`) and its sub-cgroups (empty when
/// the cgroup is gone), from the first hierarchy that has it, as runc's GetAllPids walks one.
pub fn pids(path: &Path) -> Vec<i32> {
    // Never list (and so never kill) the processes of the root or of a cgroup outside the path.
    if check_path(path, false).is_err() {
        return vec![];
    }
    cgroup_dirs(path)
        .iter()
        .find(|d| d.exists())
        .map(|d| remove::pids_below(d))
        .unwrap_or_default()
}

/// The directories this cgroup path has on this host: one per mounted hierarchy.
pub fn cgroup_dirs(path: &Path) -> Vec<PathBuf> {
    hierarchy::all().iter().map(|h| h.dir(path)).collect()
}

pub fn is_frozen(path: &Path) -> bool {
    let Some(h) = hierarchy::for_controller("freezer") else {
        return false;
    };
    let (file, frozen) = if h.v2 {
        ("cgroup.freeze", "1")
    } else {
        ("freezer.state", "FROZEN")
    };
    matches!(std::fs::read_to_string(h.dir(path).join(file)), Ok(s) if s.trim() == frozen)
}

/// Kill what is left, then remove the cgroup and every sub-cgroup in it, in every hierarchy,
/// retrying while the kernel still says EBUSY (a dying task keeps the directory busy for a
/// moment). Each failed round is logged.
pub fn destroy(path: &Path, systemd: bool, id: &str) -> Result<()> {
    // A path create refused was never made: nothing to remove.
    if check_path(path, systemd).is_err() {
        return Ok(());
    }
    // On a v1 or hybrid host libcgroups ignores the systemd driver and uses the path as a
    // directory name, so the directories are removed as any others.
    if systemd && hierarchy::unified() {
        return destroy_systemd(path, id);
    }
    // No stat first: the rmdir of a directory already gone counts as done.
    remove::tree(&cgroup_dirs(path)).map_err(|e| cg_err("remove", path, e))?;
    remove_default_parent(path);
    Ok(())
}

/// systemd owns the unit's cgroup: libcgroups stops the unit, retried while it is busy.
fn destroy_systemd(path: &Path, id: &str) -> Result<()> {
    let mgr = manager(path, true, id)?;
    // A frozen task cannot die: thaw first so SIGKILL is delivered.
    if is_frozen(&fs_path(path, true)) {
        let _ = mgr.freeze(FreezerState::Thawed);
    }
    let delays = [5u64, 10, 20, 50, 100, 200, 400];
    let mut last = None;
    for (i, d) in delays.iter().enumerate() {
        match mgr.remove() {
            Ok(()) => return Ok(()),
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

/// `/carte` held the default cgroups of earlier builds (`/carte/<id>`; now `/carte-<id>`, with no
/// parent): it is carte's own, so it goes when the last such container left it empty and nothing
/// of carte stays in the cgroup tree. rmdir fails harmlessly while it has children.
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
}
