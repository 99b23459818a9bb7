//! `carte kill`: a signal to the init (through a pidfd, so never to a recycled pid), or with
//! `--all` to every process of the container's cgroup (without one, rootless: of its pid
//! namespace). Signal 0 is the liveness probe, as for runc: success while the init lives, an
//! error once the container is stopped.

use crate::cli::{Cli, KillArgs};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, Status};

pub fn run(cli: &Cli, a: &KillArgs) -> Result<i32> {
    let sig = crate::signals::parse(&a.signal)?;
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    let status = state::status(&dir.path, &st);
    if a.all {
        let pids = match st.cgroup_path.as_os_str().is_empty() {
            // Without a cgroup (rootless), a pid is ours to signal only while the init lives.
            true if !state::init_alive(&st) => vec![],
            _ => crate::rootless::container_pids(
                &crate::cgroups::fs_path(&st.cgroup_path, st.systemd_cgroup),
                st.pid,
            ),
        };
        for pid in pids {
            // Through a pidfd: nix's `kill` takes only the signals of its enum, and sent signal 0
            // (nothing) for real-time ones. A process that exited meanwhile is not an error
            // (runc logs and goes on).
            let sent =
                crate::sys::pidfd_open(pid).and_then(|fd| crate::sys::pidfd_send_signal(&fd, sig));
            if let Err(e) = sent {
                log::debug!("signal {sig} to pid {pid}: {e}");
            }
        }
        // A frozen process cannot act on the signal: let SIGKILL through as runc does.
        if status == Status::Paused && sig == libc::SIGKILL {
            let mgr = crate::cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
            crate::cgroups::freeze(&mgr, &st.cgroup_path, false)?;
        }
        return Ok(0);
    }
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(Error::WrongStatus {
            id: a.id.clone(),
            status: status.as_str().into(),
            verb: "kill",
        });
    }
    let pid = st.pid.unwrap_or(0);
    let fd = crate::sys::pidfd_open(pid).ctx("pidfd_open", pid)?;
    if !state::init_alive(&st) {
        return Err(Error::WrongStatus {
            id: a.id.clone(),
            status: "stopped".into(),
            verb: "kill",
        });
    }
    log::debug!("send signal {sig} to pid {pid}");
    crate::sys::pidfd_send_signal(&fd, sig).ctx("kill", pid)?;
    Ok(0)
}
