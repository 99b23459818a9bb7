//! Running criu for a restore: the rootfs bound where criu wants its `root`, and the criu
//! process placed in the new container's cgroup before it is asked to restore, so that what it
//! restores is born there whatever the cgroup mode (runc applies its cgroup manager to criu's pid).

use super::rpc::ReqType;
use super::swrk::{Notice, Swrk};
use super::Command;
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::state::State;
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

/// Where a restore binds the rootfs for criu's `--root`: criu wants a mount point whose parent is
/// not overmounted (runc's `criu-root`). In the state directory, so it names the container.
pub const CRIU_ROOT: &str = "criu-root";

/// A restore killed while criu ran leaves the rootfs bound at `ROOT/ID/criu-root`: detach it
/// before the state directory is removed, recursively, which through the mount would delete the
/// rootfs's files. False when it is still there (the caller must then keep the directory).
pub fn detach_stale_root(state_dir: &Path) -> bool {
    let p = state_dir.join(CRIU_ROOT);
    if std::fs::symlink_metadata(&p).is_err() {
        return true;
    }
    log::debug!("detach {} left by an interrupted restore", p.display());
    let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    std::fs::remove_dir(&p).is_ok()
}

/// The rootfs bound at `ROOT/ID/criu-root` for as long as criu runs; unbound (and the empty
/// directory removed, never recursively: it is the rootfs while mounted) on drop.
pub struct RootBind(PathBuf);

impl RootBind {
    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn new(target: &Path, rootfs: &Path) -> Result<RootBind> {
        let target = target.to_path_buf();
        std::fs::create_dir(&target).ctx("create", target.display())?;
        let bind = RootBind(target);
        nix::mount::mount(
            Some(rootfs),
            &bind.0,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx("bind rootfs for criu on", bind.0.display())?;
        Ok(bind)
    }
}

impl Drop for RootBind {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_dir(&self.0) {
            log::warn!("remove {}: {e}", self.0.display());
        }
    }
}

/// Start `criu swrk`, place it in the container's cgroup with the limits applied (so what criu
/// forks is born there even with `--manage-cgroups-mode ignore`, as runc applies its cgroup
/// manager to criu's pid), give it its cgroups as `cgroup-root`s (the restored tree lands in the
/// new container's cgroup, whatever the old id), and have it restore. The restored init's pid.
pub fn restore_in_cgroup(
    mut cmd: Command,
    st: &State,
    res: Option<&LinuxResources>,
    ns_files: &[(std::fs::File, i32)],
    on_notify: impl FnMut(Notice) -> Result<()>,
) -> Result<i32> {
    let mgr = cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
    let criu = Swrk::spawn(ns_files)?;
    let child = criu.pid();
    let placed = cgroups::join_and_apply(&mgr, &st.cgroup_path, child, res)
        .and_then(|()| cgroups::apply_device_filter(&mgr, &st.cgroup_path, res))
        .and_then(|()| cgroup_roots(child));
    let roots = match placed {
        Ok(r) => r,
        Err(e) => {
            // criu waits for a request: without one (our end closed) it exits.
            let _ = criu.abandon();
            return Err(e);
        }
    };
    cmd.rpc.cg_root = roots;
    cmd.rpc.notify_scripts = true;
    // The restored init made our child (CLONE_PARENT), not criu's.
    cmd.rpc.rst_sibling = true;
    cmd.rpc.orphan_pts_master = true;
    let resp = criu.run(
        &cmd,
        ReqType::Restore,
        &format!("restore {}", st.id),
        on_notify,
    )?;
    resp.restored_pid
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Other(format!("restore {}: criu named no restored pid", st.id)))
}

/// After a failed restore: the tasks criu had forked into the container's cgroup outlive it for
/// a moment (orphans still dying of criu's SIGKILL); wait for them (bounded, 2 s; killed again)
/// so the teardown finds the cgroup empty rather than retrying on EBUSY.
pub fn settle(st: &State) {
    for _ in 0..200 {
        let left = cgroups::pids(&st.cgroup_path);
        if left.is_empty() {
            return;
        }
        for pid in left {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `CONTROLLERS:PATH` for each v1 hierarchy `pid` is in, and `PATH` for the cgroup2 one, from
/// /proc/PID/cgroup (runc's `criuApplyCgroups`).
fn cgroup_roots(pid: i32) -> Result<Vec<(Option<String>, String)>> {
    let path = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&path).ctx("read", &path)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, p) = (f.next()?, f.next()?, f.next()?);
            let ctrl = (!ctrls.is_empty()).then(|| ctrls.to_string());
            Some((ctrl, p.to_string()))
        })
        .collect())
}
