//! A conversation with `criu swrk FD`, criu as our child speaking its RPC over a seqpacket socket
//! (runc's `criuSwrk`): one request, then criu's notifications, each answered, then its final
//! response. The notifications are what the command line lacks: `setup-namespaces` (the restored
//! init exists, nothing of it runs yet: the prestart and createRuntime hooks' moment) and
//! `orphan-pts-master` (the new pty master of a terminal container, passed with SCM_RIGHTS).

use super::rpc::{self, Opts, ReqType, Resp};
use super::Command;
use crate::error::{Context, Error, Result};
use crate::sys::{self, Forked};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// criu's largest message is a response with its error text; runc reads 10 pages.
const MAX_MSG: usize = 10 * 4096;

/// Where the socket lands in the criu process, above the namespace fds placed from 100.
const SOCK_MIN_FD: RawFd = 200;

/// A running `criu swrk` and our end of its socket.
pub struct Swrk {
    pid: i32,
    sock: OwnedFd,
}

/// A notification: the script's name, the restored init's pid (setup-namespaces,
/// post-restore) and the fd that came with it (orphan-pts-master).
pub struct Notice {
    pub script: String,
    pub pid: Option<i32>,
    pub fd: Option<OwnedFd>,
}

impl Swrk {
    /// Fork and exec `criu swrk`, with each of `ns_files` at its fd number in criu (the
    /// namespaces handed over with `inherit-fd`).
    pub fn spawn(ns_files: &[(std::fs::File, RawFd)]) -> Result<Swrk> {
        let bin = super::binary()?;
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .ctx("socketpair", "criu swrk")?;
        // Above every fd the child places, so no dup2 there overwrites it.
        let theirs = nix::fcntl::fcntl(
            theirs.as_raw_fd(),
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(SOCK_MIN_FD),
        )
        .map(sys::own)
        .ctx("dup", "criu swrk socket")?;
        match sys::clone_fork(0).ctx("fork", "criu")? {
            Forked::Child => exec_swrk(&bin, &theirs, ns_files),
            Forked::Parent(pid) => Ok(Swrk { pid, sock: ours }),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn send(&self, msg: &[u8]) -> Result<()> {
        socket::send(self.sock.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL)
            .map(drop)
            .ctx("send", "criu swrk request")
    }

    fn recv(&self) -> Result<(Resp, Option<OwnedFd>)> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned};
        let mut buf = vec![0u8; MAX_MSG];
        let mut space = nix::cmsg_space!([RawFd; 2]);
        loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fd = None;
                    for c in r
                        .cmsgs()
                        .map_err(|e| Error::sys("recvmsg", "criu fds", e))?
                    {
                        if let ControlMessageOwned::ScmRights(v) = c {
                            let mut v = v.into_iter().map(sys::own);
                            fd = v.next();
                        }
                    }
                    let n = r.bytes;
                    if n == 0 {
                        return Err(Error::Other("criu swrk: exited without a response".into()));
                    }
                    let resp = rpc::response(&buf[..n]).ok_or_else(|| {
                        Error::Other("criu swrk: a response that is not criu_resp".into())
                    })?;
                    return Ok((resp, fd));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("recvmsg", "criu swrk response", e)),
            }
        }
    }

    /// Write `cmd`'s configuration file, send the request, answer each notification with what
    /// `on_notify` says (a failure makes criu give up; it is the error returned), and wait for
    /// criu. The final response, when criu says it succeeded.
    pub fn run(
        self,
        cmd: &Command,
        typ: ReqType,
        what: &str,
        mut on_notify: impl FnMut(Notice) -> Result<()>,
    ) -> Result<Resp> {
        let images =
            std::fs::File::open(&cmd.images).ctx("open image directory", cmd.images.display())?;
        let conf = cmd.write_config()?;
        let mut opts = cmd.rpc.clone();
        opts.images_dir_fd = images.as_raw_fd();
        opts.log_level = 4;
        opts.log_file = cmd.log_name.to_string();
        opts.config_file = conf.to_string_lossy().into_owned();
        log::debug!("{what}: criu swrk {typ:?}, {opts:?}, {}", cmd.describe());
        let mut root = None;
        let talked = self.talk(typ, &opts, &mut root, &mut on_notify);
        let _ = std::fs::remove_file(&conf);
        let status = self.wait();
        let ok = matches!(&talked, Ok((r, None)) if r.success);
        if !ok && opts.rst_sibling {
            // The restored init is our child: criu killed it, we reap it, or its zombie keeps
            // the container's cgroup busy while the failed restore is cleaned up.
            let pid = talked.as_ref().ok().and_then(|(r, _)| r.restored_pid);
            if let Some(pid) = root.or(pid).filter(|p| *p > 0) {
                reap_killed(pid);
            }
        }
        // criu gone mid-conversation: its log says why.
        let (resp, failed_notice) = talked.map_err(|e| cmd.failed(what, e))?;
        if let Some(e) = failed_notice {
            return Err(e);
        }
        if resp.success {
            return Ok(resp);
        }
        // criu's log names the error better than cr_errmsg (its first error line, often the
        // harmless RLIMIT_NOFILE one): `failed` quotes the log, cr_errmsg is the fallback.
        let logged = cmd.failed(what, "failed");
        if super::first_error(&cmd.log).is_some() {
            return Err(logged);
        }
        let why = match (&resp.cr_errmsg, resp.cr_errno) {
            (Some(m), _) if !m.trim().is_empty() => format!("failed: {}", m.trim()),
            (_, Some(n)) if n != 0 => format!("failed: {}", nix::errno::Errno::from_raw(n)),
            _ => format!("failed (exit status {})", status.unwrap_or(-1)),
        };
        Err(cmd.failed(what, why))
    }

    fn talk(
        &self,
        typ: ReqType,
        opts: &Opts,
        root: &mut Option<i32>,
        on_notify: &mut impl FnMut(Notice) -> Result<()>,
    ) -> Result<(Resp, Option<Error>)> {
        self.send(&rpc::request(typ, opts))?;
        let mut failed = None;
        loop {
            let (resp, fd) = self.recv()?;
            let Some((script, pid)) = resp
                .notify
                .clone()
                .filter(|_| resp.typ == ReqType::Notify as u64)
            else {
                return Ok((resp, failed));
            };
            log::debug!("criu notifies {script} (pid {pid:?})");
            if pid.is_some() {
                *root = pid;
            }
            let ok = match on_notify(Notice { script, pid, fd }) {
                Ok(()) => true,
                Err(e) => {
                    failed.get_or_insert(e);
                    false
                }
            };
            self.send(&rpc::notify_reply(ok))?;
        }
    }

    /// Close our end (criu exits when it reads EOF, before or after a request) and reap criu;
    /// its exit status.
    pub fn abandon(self) -> Result<i32> {
        self.wait()
    }

    fn wait(self) -> Result<i32> {
        drop(self.sock);
        super::wait(self.pid)
    }
}

/// Reap `pid`, killed by criu, if it is our child; bounded (2 s), in case criu left it alive.
fn reap_killed(pid: i32) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let pid = nix::unistd::Pid::from_raw(pid);
    for _ in 0..200 {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Ok(_) | Err(_) => return,
        }
    }
    log::warn!("restored init {pid} not reaped after criu failed");
}

/// In the forked child: the namespace fds at their numbers, the socket inherited, then criu.
fn exec_swrk(bin: &std::path::Path, sock: &OwnedFd, ns_files: &[(std::fs::File, RawFd)]) -> ! {
    use std::os::unix::process::CommandExt;
    // The runtime blocks the signals it forwards; criu must not inherit that mask through exec.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    for (file, target) in ns_files {
        // dup2 clears close-on-exec on the copy: criu inherits it at `target`.
        if nix::unistd::dup2(file.as_raw_fd(), *target).is_err() {
            eprintln!("carte: criu: dup2 namespace fd to {target}");
            sys::exit_now(1);
        }
    }
    let fd = sock.as_raw_fd();
    if nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .is_err()
    {
        eprintln!("carte: criu: keep socket {fd} open");
        sys::exit_now(1);
    }
    let e = std::process::Command::new(bin)
        .arg("swrk")
        .arg(fd.to_string())
        .exec();
    eprintln!("carte: criu: exec {}: {e}", bin.display());
    sys::exit_now(127)
}
