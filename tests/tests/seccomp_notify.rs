//! Seccomp user notification (config-linux.md `SCMP_ACT_NOTIFY`, `listenerPath`, `listenerMetadata`):
//! a small agent in the test receives the container process state and the listener fd over its unix
//! socket and answers the container's `mkdir` calls — success without doing it, a chosen errno, or
//! "let the kernel do it" — for the init and for an `exec`'d process; and what is refused up front.

use carte_tests::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::io::IoSliceMut;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The errno the agent answers `mkdir …/deny` with: nothing on a tmpfs would fail this way by itself.
const CHOSEN_ERRNO: i32 = libc::EXDEV;

/// What the agent got on one connection: the JSON, how many fds came with it, and the connection.
struct Received {
    state: Value,
    fds: usize,
    conn: UnixStream,
}

impl Received {
    /// The runtime closed the connection after its one message (config-linux.md: "MUST be closed").
    fn closed(&self) -> bool {
        let _ = self.conn.set_read_timeout(Some(Duration::from_secs(20)));
        matches!((&self.conn).read(&mut [0u8; 16]), Ok(0))
    }
}

/// The seccomp agent: one thread polling its listening socket and every listener fd it was sent.
struct Agent {
    path: PathBuf,
    got: mpsc::Receiver<Received>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let path = dir.join("agent.sock");
        let sock = UnixListener::bind(&path).expect("bind agent socket");
        sock.set_nonblocking(true)
            .expect("nonblocking agent socket");
        let (tx, got) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || serve(sock, tx, flag));
        Agent {
            path,
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// The next container process state, waiting a bounded time.
    fn next(&self) -> Received {
        self.got
            .recv_timeout(Duration::from_secs(30))
            .expect("the runtime never sent the seccomp state")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: UnixListener, tx: mpsc::Sender<Received>, stop: Arc<AtomicBool>) {
    let mut listeners: Vec<OwnedFd> = vec![];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((conn, _)) = sock.accept() {
            conn.set_nonblocking(false).expect("blocking connection");
            let (state, fds) = read_state(&conn);
            let n = fds.len();
            listeners.extend(fds);
            let _ = tx.send(Received {
                state,
                fds: n,
                conn,
            });
        }
        let mut polled: Vec<nix::poll::PollFd> = listeners
            .iter()
            .map(|fd| nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN))
            .collect();
        let _ = nix::poll::poll(&mut polled, nix::poll::PollTimeout::from(50u16));
        let ready: Vec<usize> = polled
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.revents()
                    .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLIN))
            })
            .map(|(i, _)| i)
            .collect();
        drop(polled);
        for i in ready {
            answer(&listeners[i]);
        }
    }
}

/// Reads one connection until a whole JSON value has arrived (not until EOF: runc 1.1.5's `run` and
/// `exec` keep the connection open), and the fds that came with the first part.
fn read_state(conn: &UnixStream) -> (Value, Vec<OwnedFd>) {
    let mut data = vec![];
    let mut fds = vec![];
    loop {
        let mut buf = [0u8; 4096];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg from the runtime");
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(v) = c {
                // SAFETY: fresh fds the kernel just installed for us, owned by nobody else.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        let n = msg.bytes;
        data.extend_from_slice(&buf[..n]);
        if n == 0 || serde_json::from_slice::<Value>(&data).is_ok() {
            break;
        }
    }
    let state = serde_json::from_slice(&data).unwrap_or_else(|e| {
        panic!(
            "seccomp state is not JSON ({e}): {}",
            String::from_utf8_lossy(&data)
        )
    });
    (state, fds)
}

/// One notification: `mkdir` of a path ending in `fake` succeeds without doing anything, `deny` fails
/// with [`CHOSEN_ERRNO`], anything else is done by the kernel (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
fn answer(listener: &OwnedFd) {
    // SAFETY: all-zero is a valid seccomp_notif (plain integers); the kernel requires it zeroed.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `req`, which outlives the call.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req,
        )
    };
    if rc != 0 {
        // The process went away (ENOENT) or the filter is gone: nothing to answer.
        return;
    }
    let nr = i64::from(req.data.nr);
    let path_arg = if nr == libc::SYS_mkdirat {
        req.data.args[1]
    } else {
        req.data.args[0]
    };
    let path = read_path(req.pid, path_arg);
    // SAFETY: all-zero is a valid seccomp_notif_resp.
    let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    resp.id = req.id;
    if nr != libc::SYS_mkdir && nr != libc::SYS_mkdirat {
        resp.error = -libc::ENOSYS;
    } else if path.ends_with("fake") {
        resp.val = 0;
    } else if path.ends_with("deny") {
        resp.error = -CHOSEN_ERRNO;
    } else {
        resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
    }
    // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`, which outlives the call.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    };
}

/// The NUL-terminated path at `addr` in process `pid` (the agent runs as root on the host).
fn read_path(pid: u32, addr: u64) -> String {
    use std::os::unix::fs::FileExt;
    let Ok(mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return String::new();
    };
    let mut buf = [0u8; 256];
    let n = mem.read_at(&mut buf, addr).unwrap_or(0);
    let end = buf[..n].iter().position(|b| *b == 0).unwrap_or(n);
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Allow-by-default profile whose `mkdir`/`mkdirat` go to the agent at `listener`.
fn notify_profile(listener: &Path, metadata: &str) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener,
        "listenerMetadata": metadata,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    })
}

/// The script both the init and the exec'd process run in the tmpfs at /w.
const MKDIRS: &str = "cd /w; rm -rf fake deny real; \
    mkdir fake && echo fake-ok; test -d fake || echo fake-absent; \
    mkdir deny 2>/dev/null || echo deny-failed; \
    mkdir real && test -d real && echo real-made";

/// The agent's answers as the script reports them.
fn assert_answered(out: &str) {
    for want in ["fake-ok", "fake-absent", "deny-failed", "real-made"] {
        assert!(out.lines().any(|l| l == want), "no {want:?} in {out:?}");
    }
}

/// The container process state's common shape (config-linux.md, "The Container Process State").
fn assert_state(got: &Received, id: &str, bundle: &str, status: &str) {
    let s = &got.state;
    assert_eq!(got.fds, 1, "{s}");
    assert_eq!(s["fds"], json!(["seccompFd"]), "{s}");
    assert!(s["ociVersion"].is_string(), "{s}");
    assert!(s["pid"].as_i64().is_some_and(|p| p > 0), "{s}");
    assert_eq!(s["metadata"], "agent-meta", "{s}");
    assert_eq!(s["state"]["id"], id, "{s}");
    assert_eq!(s["state"]["status"], status, "{s}");
    assert_eq!(s["state"]["bundle"], bundle, "{s}");
    if is_carte() {
        assert!(got.closed(), "the runtime kept the agent's connection open");
    }
    // else: runc 1.1.5 leaves its connection open for as long as `run`/`exec` lives (the dup that
    // conn.File() makes is never closed), so only `create`'s is closed; not asserted for runc.
}

#[test]
fn agent_answers_mkdir_for_init_and_exec() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = Agent::start(&ctx.tempdir());
    let mut b = ctx.bundle();
    b.mount(json!({"destination": "/w", "type": "tmpfs", "source": "tmpfs"}));
    b.set("/linux/seccomp", notify_profile(&agent.path, "agent-meta"));
    b.sh(&format!("{MKDIRS}; sleep 60"));
    let id = ctx.id("notify");
    ctx.rt.create(&id, &b, &[]).ok();
    let created = agent.next();
    // runc's shape: during create, "creating", `pid` = the init, as in the state.
    assert_state(&created, &id, b.path_str(), "creating");
    let init = ctx.rt.state(&id)["pid"].as_i64().expect("init pid");
    assert_eq!(created.state["pid"], init, "{}", created.state);
    assert_eq!(created.state["state"]["pid"], init, "{}", created.state);
    ctx.rt.start(&id).ok();
    // The init's answers, seen from the host through its /proc root.
    let w = PathBuf::from(format!("/proc/{init}/root/w"));
    assert!(
        poll_until(Duration::from_secs(20), || w.join("real").is_dir()),
        "the init never got past its mkdirs"
    );
    assert!(!w.join("fake").exists() && !w.join("deny").exists());

    // An exec'd process is under the same profile; its own connection says "running".
    let out = ctx.rt.cmd(&["exec", &id, "sh", "-c", MKDIRS]).ok();
    assert_answered(&out.stdout);
    let exec = agent.next();
    assert_state(&exec, &id, b.path_str(), "running");
    assert_eq!(exec.state["state"]["pid"], init, "{}", exec.state);
    assert_ne!(exec.state["pid"], init, "{}", exec.state);
    ctx.rt.kill(&id, "KILL").ok();
}

#[test]
fn run_reports_the_answers() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = Agent::start(&ctx.tempdir());
    // Without no_new_privs (the filter then needs CAP_SYS_ADMIN), and inside a user namespace.
    for userns in [false, true] {
        let mut b = ctx.bundle();
        b.mount(json!({"destination": "/w", "type": "tmpfs", "source": "tmpfs"}));
        b.set("/linux/seccomp", notify_profile(&agent.path, "agent-meta"));
        b.set("/process/noNewPrivileges", json!(false));
        if userns {
            user_namespace(&mut b);
            // The rootfs belongs to host root, which the namespace does not map.
            std::fs::create_dir_all(b.rootfs().join("w")).ok();
        }
        b.sh(MKDIRS);
        let id = ctx.id(if userns { "notifyus" } else { "notifyrun" });
        let out = ctx.rt.run(&id, &b, &[]).ok();
        assert_answered(&out.stdout);
        assert_state(&agent.next(), &id, b.path_str(), "creating");
    }
}

/// Root mapped to host 100000; /sys bound (a fresh sysfs needs the network namespace's owner).
fn user_namespace(b: &mut Bundle) {
    b.namespace("user", None);
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.set("/linux/uidMappings", map.clone());
    b.set("/linux/gidMappings", map);
    b.remove_mount("/sys/fs/cgroup");
    b.remove_mount("/sys");
    b.mount(
        json!({"destination": "/sys", "type": "bind", "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
    );
}

#[test]
fn notify_refusals() {
    let Some(ctx) = Ctx::new() else { return };
    let dir = ctx.tempdir();
    let cases = [
        // No agent: nobody would ever answer.
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        ),
        // runc: the hand-over itself would wait for the agent.
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": dir.join("a.sock"),
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "write",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": dir.join("a.sock")}),
            "default",
        ),
        // Nothing listens there: sending fails, and the spec says that is an error.
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": dir.join("nobody.sock"),
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "nobody.sock",
        ),
    ];
    for (i, (profile, word)) in cases.into_iter().enumerate() {
        let mut b = ctx.bundle();
        b.set("/linux/seccomp", profile);
        let id = ctx.id(&format!("notifybad{i}"));
        let out = ctx.rt.create(&id, &b, &[]);
        assert!(!out.success(), "case {i} was accepted: {out}");
        assert!(
            out.stderr.contains(word),
            "case {i}: {word:?} not named: {out}"
        );
        ctx.rt.delete_force(&id);
        ctx.assert_no_leaks(&id);
    }
}

#[test]
fn features_list_notify() {
    let Some(ctx) = Ctx::new() else { return };
    let f = ctx.rt.cmd(&["features"]).ok().json();
    let actions = &f["linux"]["seccomp"]["actions"];
    let has = actions
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "SCMP_ACT_NOTIFY"));
    assert!(has, "{actions}");
}
