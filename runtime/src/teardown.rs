//! Undo everything a container holds, from whatever its state records: kill its processes,
//! wait for them, remove its cgroup (with retry) and its state directory (never the pid file: runc keeps it).
//! Idempotent, so `delete --force` works after any crash, and used by a failed `create` too.

use crate::cgroups;
use crate::error::Result;
use crate::state::{self, ContainerDir, State};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

/// Kill the init (verified by start time, through a pidfd) and every process in the cgroup,
/// then wait up to `wait` for the init to be gone.
pub fn kill_all(st: &State, wait: Duration) {
    if state::init_alive(st) {
        if let Some(pid) = st.pid {
            if let Ok(fd) = crate::sys::pidfd_open(pid) {
                // Re-check after opening: the pidfd now pins exactly this process.
                if state::init_alive(st) {
                    let _ = crate::sys::pidfd_send_signal(&fd, libc::SIGKILL);
                    wait_pidfd(&fd, wait);
                }
            }
        }
    }
    for pid in cgroups::pids(&cgroups::fs_path(&st.cgroup_path, st.systemd_cgroup)) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

fn wait_pidfd(fd: &std::os::fd::OwnedFd, wait: Duration) {
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = nix::poll::PollTimeout::try_from(wait.as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(nix::poll::PollTimeout::MAX);
    let _ = nix::poll::poll(&mut fds, ms);
}

/// Remove everything but the state dir; errors are collected so one failure does not leave
/// the rest behind.
pub fn release(st: &State) -> Result<()> {
    kill_all(st, Duration::from_secs(5));
    let mounts = match &st.shared_mounts_before {
        Some(before) => crate::rootfs::shared_mounts::undo(&st.rootfs, before),
        None => Ok(()),
    };
    // The pid file stays: runc never removes it, and engines (conmon, shims) read it after the
    // container is gone.
    cgroups::destroy(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
    mounts
}

/// Full teardown of a container whose state dir we hold locked — runtime.md's steps 12 and 13,
/// for `delete` and for a `create` that failed (runc does the same): release what it holds, run
/// its poststop hooks (a failure is logged, not fatal), remove the state dir. When the release
/// fails the state dir stays, so a later `delete --force` can still find what is left.
pub fn destroy(dir: ContainerDir, st: &State) -> Result<()> {
    let hooks = dir.hooks();
    release(st)?;
    if !crate::criu::spawn::detach_stale_root(&dir.path) {
        return Err(crate::error::Error::Other(format!(
            "delete {}: the rootfs is still bound at {}/{}: state kept",
            st.id,
            dir.path.display(),
            crate::criu::spawn::CRIU_ROOT
        )));
    }
    crate::hooks::run_all_warning(
        "poststop",
        hooks.as_ref().and_then(|h| h.poststop().as_ref()),
        &st.oci_json(state::Status::Stopped),
    );
    dir.remove()
}

/// What survives of a container whose state.json is unreadable: the id alone gives the default
/// cgroup path, and the copied config.json may name another (`cgroup_base` as at create: a
/// rootless delete on v2 run from the cgroup create ran in finds the container's).
pub fn fallback_state(dir: &ContainerDir, systemd: bool, cgroup_base: Option<&Path>) -> State {
    let cfg: Option<oci_spec::runtime::Spec> = std::fs::read(dir.path.join(state::CONFIG_COPY))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    State {
        id: dir.id.clone(),
        cgroup_path: State::cgroup_path_for(cfg.as_ref(), &dir.id, systemd, cgroup_base),
        systemd_cgroup: systemd,
        ..State::default()
    }
}
