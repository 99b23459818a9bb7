//! `carte pause` / `carte resume`: the cgroup freezer (freezer.state on v1, cgroup.freeze on v2).

use crate::cli::{Cli, IdArg};
use crate::error::{Error, Result};
use crate::state::{self, ContainerDir, Status};

pub fn run(cli: &Cli, a: &IdArg, pause: bool) -> Result<i32> {
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    let status = state::status(&dir.path, &st);
    let (want, verb) = if pause {
        (Status::Running, "pause")
    } else {
        (Status::Paused, "resume")
    };
    if status != want {
        return Err(Error::WrongStatus {
            id: a.id.clone(),
            status: status.as_str().into(),
            verb,
        });
    }
    let mgr = crate::cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
    log::debug!(
        "{verb} container {} (cgroup {})",
        a.id,
        st.cgroup_path.display()
    );
    crate::cgroups::freeze(&mgr, &st.cgroup_path, pause)?;
    Ok(0)
}
