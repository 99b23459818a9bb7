//! `carte delete`: remove a stopped (or, with --force, any) container and everything it holds,
//! then run its poststop hooks. Works from a corrupt state file too: what the id and the copied
//! config.json say is enough to find the cgroup and its processes.

use crate::cli::{Cli, DeleteArgs};
use crate::error::{Error, Result};
use crate::state::{self, ContainerDir, State, Status};

pub fn run(cli: &Cli, a: &DeleteArgs) -> Result<i32> {
    state::validate_id(&a.id)?;
    // What a create or delete killed between two steps left under a hidden name.
    state::sweep_stale(&cli.root, &a.id);
    let dir = match ContainerDir::open(&cli.root, &a.id) {
        Err(Error::NotFound { .. }) if a.force => return Ok(0),
        r => r?,
    };
    let st = match dir.load() {
        Ok(st) => st,
        Err(e) => {
            log::warn!("container {}: {e}; cleaning up from what survives", a.id);
            let rootless = crate::rootless::cgroups_rootless(cli.rootless_mode.as_deref());
            let base = crate::cgroups::rootless_base(rootless, cli.systemd_cgroup);
            crate::teardown::fallback_state(&dir, cli.systemd_cgroup, base.as_deref())
        }
    };
    let status = state::status(&dir.path, &st);
    let busy = matches!(status, Status::Running | Status::Paused)
        || (status == Status::Creating
            && !crate::cgroups::pids(&crate::cgroups::fs_path(&st.cgroup_path, st.systemd_cgroup))
                .is_empty());
    if busy && !a.force {
        return Err(Error::WrongStatus {
            id: a.id.clone(),
            status: status.as_str().into(),
            verb: "delete (use --force)",
        });
    }
    delete(dir, &st)?;
    Ok(0)
}

pub fn delete(dir: ContainerDir, st: &State) -> Result<()> {
    log::debug!("delete container {}", st.id);
    crate::teardown::destroy(dir, st)
}
