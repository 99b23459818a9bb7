//! `carte stop ID [-t SECONDS]`: the image's stop signal (annotation
//! `org.opencontainers.image.stopSignal`, which carte-bundle records), a grace period, then
//! SIGKILL; prints which signal ended the container. runc has no such verb; engines do this
//! themselves, people running bundles by hand should not have to. Stopping a stopped container
//! succeeds. Signals go through a pidfd, so a recycled pid is never hit.

use crate::cli::Cli;
use crate::error::{Context, Result};
use crate::state::{self, ContainerDir, Status};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    pub id: String,
    /// Grace period in seconds before SIGKILL
    #[arg(short, long, default_value_t = 10)]
    pub time: u64,
}

pub const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";

/// How long we wait for the kernel to finish a SIGKILLed init (it may be in D state on I/O).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The signal to stop with: the annotation when it names a signal, else SIGTERM.
pub fn stop_signal(annotations: &std::collections::BTreeMap<String, String>) -> (i32, String) {
    match annotations.get(STOP_SIGNAL_ANNOTATION) {
        // Signal 0 (kill's liveness probe) stops nothing: it falls back to SIGTERM too.
        Some(s) => match crate::signals::parse(s).and_then(crate::signals::nonzero) {
            Ok(n) => (n, signal_name(n)),
            Err(e) => {
                log::warn!("annotation {STOP_SIGNAL_ANNOTATION}: {e}; using SIGTERM");
                (libc::SIGTERM, "SIGTERM".into())
            }
        },
        None => (libc::SIGTERM, "SIGTERM".into()),
    }
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {n}"))
}

pub fn run(cli: &Cli, a: &StopArgs) -> Result<i32> {
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    let status = state::status(&dir.path, &st);
    if matches!(status, Status::Stopped | Status::Creating) && !state::init_alive(&st) {
        println!("{}: already stopped", a.id);
        return Ok(0);
    }
    let pid = st.pid.unwrap_or(0);
    let pidfd = crate::sys::pidfd_open(pid).ctx("pidfd_open", pid)?;
    // Re-check through the pidfd's process: the pid may have been recycled since `status`.
    if !state::init_alive(&st) {
        println!("{}: already stopped", a.id);
        return Ok(0);
    }
    // Don't hold the container's lock through the grace period: kill, state and delete by
    // others must not wait for us.
    drop(dir);
    let (sig, name) = if a.time == 0 {
        (libc::SIGKILL, "SIGKILL".to_string())
    } else {
        stop_signal(&st.annotations)
    };
    log::debug!("stop {}: send {name} to pid {pid}", a.id);
    send(&pidfd, sig, pid)?;
    if status == Status::Paused {
        // A frozen process cannot act on a signal: thaw it so it can stop (docker does the same).
        let mgr = crate::cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
        crate::cgroups::freeze(&mgr, &st.cgroup_path, false)?;
    }
    if sig == libc::SIGKILL || wait_exit(&pidfd, Duration::from_secs(a.time)) {
        if !wait_exit(&pidfd, KILL_WAIT) {
            return Err(crate::error::Error::Other(format!(
                "stop {}: pid {pid} still alive {} s after {name}",
                a.id,
                KILL_WAIT.as_secs()
            )));
        }
        println!("{}: stopped by {name}", a.id);
        return Ok(0);
    }
    log::debug!("stop {}: no exit within {} s, send SIGKILL", a.id, a.time);
    send(&pidfd, libc::SIGKILL, pid)?;
    if !wait_exit(&pidfd, KILL_WAIT) {
        return Err(crate::error::Error::Other(format!(
            "stop {}: pid {pid} still alive {} s after SIGKILL",
            a.id,
            KILL_WAIT.as_secs()
        )));
    }
    println!(
        "{}: stopped by SIGKILL ({name} ignored for {} s)",
        a.id, a.time
    );
    Ok(0)
}

fn send(pidfd: &OwnedFd, sig: i32, pid: i32) -> Result<()> {
    match crate::sys::pidfd_send_signal(pidfd, sig) {
        // ESRCH: it exited between our check and the signal — what we wanted anyway.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(crate::error::Error::sys("kill", pid, e)),
    }
}

/// Wait until the process behind `pidfd` has exited (a pidfd polls readable then), up to `max`.
fn wait_exit(pidfd: &OwnedFd, max: Duration) -> bool {
    let deadline = std::time::Instant::now() + max;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
        ) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_chooses_the_signal_and_sigterm_is_the_fallback() {
        let mut a = std::collections::BTreeMap::new();
        assert_eq!(stop_signal(&a), (libc::SIGTERM, "SIGTERM".to_string()));
        a.insert(STOP_SIGNAL_ANNOTATION.to_string(), "SIGQUIT".to_string());
        assert_eq!(stop_signal(&a), (libc::SIGQUIT, "SIGQUIT".to_string()));
        a.insert(STOP_SIGNAL_ANNOTATION.to_string(), "9".to_string());
        assert_eq!(stop_signal(&a), (libc::SIGKILL, "SIGKILL".to_string()));
        a.insert(STOP_SIGNAL_ANNOTATION.to_string(), "NOPE".to_string());
        assert_eq!(stop_signal(&a), (libc::SIGTERM, "SIGTERM".to_string()));
    }
}
