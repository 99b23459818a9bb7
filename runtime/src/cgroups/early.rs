//! libcgroups' cgroup v1 manager, built on a second thread while `create` checks the bundle and
//! claims the state directory. Its `Manager::new` re-verifies pathrs' procfs handle and re-reads
//! mountinfo and /proc/self/cgroup once per v1 controller: about 550 syscalls and 1.5 ms on this
//! host, the largest single step of `carte run` on a v1 or hybrid host (bench/README.md, "Where
//! the time goes"), and nothing else `create` does before the clone depends on it. On cgroup v2
//! and with systemd the manager costs a handful of syscalls and is built in place: a thread would
//! only add its own cost there.
//!
//! The thread is always joined before the init is cloned (`finish`, or on drop): the init must be
//! forked from a single-threaded process, or it could inherit a lock that thread held.

use super::{hierarchy, manager};
use crate::error::{Error, Result};
use libcgroups::common::AnyCgroupManager;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

type Built = std::result::Result<AnyCgroupManager, String>;

/// A manager being built for one cgroup path, if it was worth a thread.
pub struct Early {
    job: Option<(PathBuf, JoinHandle<Built>)>,
}

impl Early {
    /// Starts building the manager of `path` when that is the slow v1 case: the cgroupfs driver
    /// on a host whose `/sys/fs/cgroup` is not cgroup2, for a runtime that can create cgroups.
    pub fn start(path: &Path, systemd: bool, id: &str, rootless: bool) -> Early {
        if systemd || rootless || hierarchy::unified() || path.as_os_str().is_empty() {
            return Early { job: None };
        }
        let (p, i) = (path.to_path_buf(), id.to_string());
        let job = std::thread::Builder::new()
            .name("cgroup-manager".into())
            // Manager::new's own needs are small; the default 2 MiB stack would only be mapped.
            .stack_size(256 * 1024)
            .spawn(move || manager(&p, false, &i).map_err(|e| e.to_string()))
            .ok();
        Early {
            job: job.map(|h| (path.to_path_buf(), h)),
        }
    }

    /// The manager of `path`: the one the thread built for it, or one built now.
    pub fn finish(mut self, path: &Path, systemd: bool, id: &str) -> Result<AnyCgroupManager> {
        match self.job.take() {
            Some((p, h)) if p == path && !systemd => match h.join() {
                Ok(built) => built.map_err(Error::Other),
                Err(_) => manager(path, systemd, id),
            },
            other => {
                drop(other.map(|(_, h)| h.join()));
                manager(path, systemd, id)
            }
        }
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some((_, h)) = self.job.take() {
            let _ = h.join();
        }
    }
}
