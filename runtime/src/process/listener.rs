//! Seccomp user notification's hand-over: the process installs the `SCMP_ACT_NOTIFY` filter and
//! passes its listener fd to the runtime over the sync socket; the runtime sends the container
//! process state and the fd to the agent at `listenerPath` (config-linux.md, "listenerPath" and
//! "The Container Process State"), as runc does.
//!
//! The notify filter goes in before `Ready`, while the runtime that talks to the agent (`create`,
//! `exec`) still waits for us — runc installs its whole filter at that point too. It answers USER_NOTIF
//! only for the notify syscalls and allows everything else, so the rest of the stack still comes last,
//! right before execve. The fd travels with SCM_RIGHTS (runc 1.1 takes it with pidfd_getfd instead
//! and needs an extra round trip to keep the child from exec'ing before the copy).

use super::plan::ProcPlan;
use super::sync::{Channel, Msg};
use crate::error::{Context, Error, Result};
use crate::seccomp::Listener;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::os::fd::{AsRawFd, OwnedFd};

/// Child side, before `Ready`: install the notify filter, if any, and send its listener.
pub fn hand_over(p: &ProcPlan, chan: &Channel) -> Result<()> {
    let Some(seccomp) = &p.seccomp else {
        return Ok(());
    };
    let Some(fd) = seccomp
        .install_notify()
        .ctx("seccomp", "install the SCMP_ACT_NOTIFY filter")?
    else {
        return Ok(());
    };
    // The fd in flight keeps the listener alive; ours must not reach the container (a process
    // holding its own listener could answer its own notifications).
    chan.send_fds(&Msg::SeccompListener, &[fd.as_raw_fd()])
}

/// Parent side: the listener fd that came with `Msg::SeccompListener`, sent to the agent.
/// `pid` is the process's pid as the runtime sees it; `state` the container's OCI state.
pub fn forward(p: &ProcPlan, fds: Vec<OwnedFd>, pid: i32, state: serde_json::Value) -> Result<()> {
    let listener = p
        .seccomp
        .as_ref()
        .and_then(|s| s.listener())
        .ok_or_else(|| Error::Other("sync: a seccomp listener without SCMP_ACT_NOTIFY".into()))?;
    let [fd] = <[OwnedFd; 1]>::try_from(fds).map_err(|fds| {
        Error::Other(format!(
            "sync: seccomp listener message with {} fds",
            fds.len()
        ))
    })?;
    log::debug!(
        "send the seccomp listener of pid {pid} to {}",
        listener.path.display()
    );
    send(listener, &fd, pid, state)
}

/// One connection, one message, then closed (config-linux.md: "exactly one container process
/// state per connection"); a failure is the container's error ("MUST generate an error").
fn send(l: &Listener, fd: &OwnedFd, pid: i32, state: serde_json::Value) -> Result<()> {
    let shown = format!("listenerPath {}", l.path.display());
    let sock = std::os::unix::net::UnixStream::connect(&l.path).ctx("connect to", &shown)?;
    let mut msg = serde_json::json!({
        "ociVersion": crate::verbs::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = &l.metadata {
        msg["metadata"] = m.clone().into();
    }
    let data = msg.to_string();
    let raw = [fd.as_raw_fd()];
    let mut sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(data.as_bytes())],
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx("send the seccomp state to", &shown)?;
    // A stream socket may take part of it; the fds went with the first call, as the spec requires.
    while sent < data.len() {
        sent += sendmsg::<()>(
            sock.as_raw_fd(),
            &[std::io::IoSlice::new(&data.as_bytes()[sent..])],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .ctx("send the seccomp state to", &shown)?;
    }
    Ok(())
}
