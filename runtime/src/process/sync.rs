//! The parent ↔ init protocol: one SOCK_SEQPACKET socketpair, one JSON message per packet
//! (length-capped), and the order below — the same step names appear in `process/mod.rs`
//! (parent), `process/init.rs` (child) and the `--debug` narration.
//!
//! ```text
//!  carte (parent)                              container init (child)
//!  claim ROOT/ID, write state.json
//!  clone(new namespaces) ───────────────────▶  PDEATHSIG, close lock fd, wait
//!   [bridge only: child unshares user ns]      MapsPlease ─┐
//!  write uid_map/gid_map  ◀────────────────────────────────┘
//!  MapsDone ─────────────────────────────────▶ [bridge: unshare rest, fork init]
//!  ◀────────────────────────────────────────── InitPid(host pid)   [bridge only]
//!  record pid + start time in state.json
//!  cgroup v2, systemd, user ns: create, join
//!  oom_score_adj
//!  [user ns: open bind sources in its mount ns]
//!  Sources(indices) + fds ───────────────────▶ [kept for the bind mounts]
//!  Go ───────────────────────────────────────▶ [cgroup v1: create and join it], namespaces,
//!  [cgroup v1: build libcgroups' manager]      cgroup ns, session keyring, mounts, devices
//!  cgroup limits, prestart + createRuntime ◀── Mounted (runc's procHooks)
//!   hooks
//!  Proceed ──────────────────────────────────▶ createContainer hooks, pivot_root, sysctl,
//!                                              console, paths, hostname, rlimits, user, caps
//!  [SCMP_ACT_NOTIFY: send the state + fd  ◀─── SeccompListener + fd]   notify filter installed
//!   to the agent at listenerPath]
//!  ◀────────────────────────────────────────── Ready (or Failed{msg} at any step)
//!  state.json
//!  Commit ───────────────────────────────────▶ clear PDEATHSIG
//!  pid file, exit 0 ◀──────────────────────── Committed [not to a foreground `run`, which
//!                                              outlives us]; then block on exec.fifo until
//!                                              `start`, startContainer hooks, fds, seccomp,
//!                                              execve
//! ```

use crate::error::{Context, Error, Result};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

/// The largest message: errors are truncated to fit, never split (runc#2530: never block the
/// init on a pipe nobody drains).
const MAX_MSG: usize = 16 * 1024;

#[derive(Serialize, Deserialize, Debug)]
pub enum Msg {
    MapsPlease,
    MapsDone,
    InitPid(i32),
    /// Carries the state, so the init can give createContainer/startContainer hooks theirs.
    Go(Box<crate::state::State>),
    /// The init's mounts and device nodes are made: time for the cgroup's limits and the
    /// prestart and createRuntime hooks (runc's procHooks).
    Mounted,
    Proceed,
    Ready,
    /// The container is on disk: the init stops dying with `create`. A `create` about to exit
    /// waits for `Committed` (else its exit could still kill the init); a foreground `run`
    /// stays, and does not.
    Commit,
    Committed,
    Failed(String),
    /// Bind-mount sources the parent opened in the container's mount namespace (user namespaces
    /// only): the `mounts` indices, in the order of the fds that travel with the message.
    Sources(Vec<usize>),
    /// The `SCMP_ACT_NOTIFY` filter's listener fd travels with it (see `listener.rs`).
    SeccompListener,
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx("socketpair", "sync")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<()> {
        let mut data =
            serde_json::to_vec(m).map_err(|e| Error::Other(format!("encode sync message: {e}")))?;
        if data.len() > MAX_MSG {
            if let Msg::Failed(s) = m {
                let cut: String = s.chars().take(MAX_MSG / 2).collect();
                data = serde_json::to_vec(&Msg::Failed(cut)).unwrap_or_default();
            }
        }
        loop {
            match send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("send", format!("sync message {m:?}"), e)),
            }
        }
    }

    /// Send `m` with `fds` attached (SCM_RIGHTS); the peer takes them with [`Channel::recv_fds`].
    pub fn send_fds(&self, m: &Msg, fds: &[std::os::fd::RawFd]) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage};
        let data =
            serde_json::to_vec(m).map_err(|e| Error::Other(format!("encode sync message: {e}")))?;
        let cmsg = [ControlMessage::ScmRights(fds)];
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[std::io::IoSlice::new(&data)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map(drop)
        .ctx("send", format!("sync message {m:?} with {} fds", fds.len()))
    }

    /// The next message and the fds that came with it.
    pub fn recv_fds(&self) -> Result<(Option<Msg>, Vec<OwnedFd>)> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned};
        let mut buf = vec![0u8; MAX_MSG + 64];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 64]);
        let (n, fds) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fds = vec![];
                    for c in r
                        .cmsgs()
                        .map_err(|e| Error::sys("recvmsg", "sync fds", e))?
                    {
                        if let ControlMessageOwned::ScmRights(v) = c {
                            fds.extend(v.into_iter().map(crate::sys::own));
                        }
                    }
                    break (r.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("recv", "sync message", e)),
            }
        };
        if n == 0 {
            return Ok((None, fds));
        }
        serde_json::from_slice(&buf[..n])
            .map(|m| (Some(m), fds))
            .map_err(|e| Error::Other(format!("decode sync message: {e}")))
    }

    /// The next message; `None` when the other side is gone (it died or exited).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; MAX_MSG + 64];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("recv", "sync message", e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::Other(format!("decode sync message: {e}")))
    }

    /// Receive and require exactly `want`; a `Failed` or a hang-up becomes the error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if std::mem::discriminant(&m) == std::mem::discriminant(&want) => Ok(()),
            Some(Msg::Failed(s)) => Err(Error::Init(s)),
            Some(m) => Err(Error::Other(format!("sync: expected {want:?}, got {m:?}"))),
            None => Err(Error::Other(format!(
                "sync: peer exited while we waited for {want:?}"
            ))),
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_and_eof_is_none() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::InitPid(42)).unwrap();
        assert!(matches!(b.recv().unwrap(), Some(Msg::InitPid(42))));
        b.send(&Msg::Failed("x".repeat(100_000))).unwrap();
        match a.recv().unwrap() {
            Some(Msg::Failed(s)) => assert!(s.len() <= MAX_MSG),
            other => panic!("{other:?}"),
        }
        drop(b);
        assert!(a.recv().unwrap().is_none());
    }
}
