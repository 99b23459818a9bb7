//! A private Docker engine (Debian's docker.io, dockerd 20.10, started by hand without systemd), shared by the tests
//! of one binary, and `Dk`, one test's handle on it: `docker run --runtime <runc-ref|carte>`, a cgroup parent per
//! runtime, and the per-container leak audit.
//!
//! dockerd gets its `--data-root`, `--exec-root`, `--pidfile`, socket, config file and trust key
//! (`deprecated-key-path` in the config file, else it writes `/etc/docker/key.json`) in a directory named like the
//! instance under the temp dir of a private [`Containerd`], and is pointed at that containerd with `--containerd`
//! and a containerd namespace of the same name: it then starts no managed containerd, never picks up a host
//! containerd at `/run/containerd/containerd.sock` (which dockerd 20.10 uses when it exists), and an instance
//! starting while the previous one is torn down shares nothing with it but the containerd. Both runtimes are added
//! with `--add-runtime`, so they differ only by binary; cgroupfs, overlay2.
//!
//! Networking: dockerd runs in a network namespace of its own (`unshare --net`, loopback brought up), so its bridge
//! `docker0`, the veths, the iptables chains it creates (DOCKER, DOCKER-ISOLATION-STAGE-1/2, DOCKER-USER, the nat
//! rules), its `ip_forward` setting and the docker-proxy listeners all live in that namespace and vanish with it
//! when the last of dockerd and its docker-proxies exits. Nothing is added to the host's links or firewall, so there
//! is nothing to diff and remove (which would race with the CNI rules other tests add to the host). `-p` stays
//! testable: [`Docker::http_get`] connects to `127.0.0.1:<published port>` from a thread that joined dockerd's
//! namespace, through the docker-proxy that serves loopback clients, as a host client would. The mount namespace is the host's,
//! so the audits see every mount dockerd and the runtimes make.
//!
//! One thing dockerd 20.10 puts outside its directories whatever its flags: the plugin socket directory
//! `/run/docker/plugins` (hard-coded). The teardown removes it, and `/run/docker`, when it created them and they
//! are empty.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::containerd::Containerd;
use super::{
    container_leaks, container_leaks_now, report, run, shared, Names, Needle, Rt, TIMEOUT,
};
use crate::runtime::Out;

/// The docker.io CLI by full path: another `docker` may come first in PATH.
pub const DOCKER: &str = "/usr/bin/docker";

/// The name `docker load` gives the docker-archive of `tests/images.sh`.
pub const IMAGE: &str = "busybox:latest";

/// The plugin directory dockerd 20.10 creates whatever `--exec-root` says.
const PLUGINS: &str = "/run/docker/plugins";

/// One dockerd we started, with the containerd it uses.
pub struct Docker {
    dir: PathBuf,
    name: String,
    child: Mutex<Option<Child>>,
    /// dockerd's pid and the inode of its network namespace, for the teardown's check that nothing stays in it.
    pid: i32,
    netns: u64,
    /// The directories of [`PLUGINS`] that did not exist before this process started a dockerd.
    created: Vec<PathBuf>,
    // Released after `Drop::drop` has stopped dockerd; the last holder stops containerd and audits the shims.
    ctd: Arc<Containerd>,
}

static SHARED: Mutex<Weak<Docker>> = Mutex::new(Weak::new());

impl Docker {
    pub fn shared() -> Arc<Docker> {
        shared(&SHARED, Docker::start)
    }

    fn start() -> Docker {
        // The containerd may still be shared with an instance being torn down: each dockerd gets its own directory
        // and containerd namespace in it.
        let ctd = Containerd::shared();
        let name = super::instance_name();
        let dir = ctd.dir().join(&name);
        // Decided once per process: an instance starting while the previous one is still being torn down must
        // not take the previous dockerd's plugin directory for the host's.
        static CREATED: OnceLock<Vec<PathBuf>> = OnceLock::new();
        let created = CREATED
            .get_or_init(|| {
                [Path::new("/run/docker"), Path::new(PLUGINS)]
                    .into_iter()
                    .filter(|p| !p.exists())
                    .map(Path::to_path_buf)
                    .collect()
            })
            .clone();
        // From here on a panic drops `dk`, whose teardown undoes whatever was done.
        let mut dk = Docker {
            dir,
            name,
            child: Mutex::new(None),
            pid: 0,
            netns: 0,
            created,
            ctd,
        };
        let dir = dk.dir.clone();
        for sub in ["cid", "cli", "data"] {
            if let Err(e) = std::fs::create_dir_all(dir.join(sub)) {
                panic!("mkdir {}: {e}", dir.join(sub).display());
            }
        }
        share_data_root(&dir.join("data"));
        // The trust key's path can only be set in the config file (a hidden, deprecated option).
        let config = serde_json::json!({ "deprecated-key-path": dir.join("key.json") }).to_string();
        if let Err(e) = std::fs::write(dir.join("daemon.json"), config) {
            panic!("write daemon.json: {e}");
        }
        let log = match std::fs::File::create(dir.join("dockerd.log")) {
            Ok(f) => f,
            Err(e) => panic!("create dockerd.log: {e}"),
        };
        // `unshare` and then `sh` exec dockerd, so the child we hold is dockerd itself.
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sh",
        ])
        .arg("dockerd")
        .arg("--config-file")
        .arg(dir.join("daemon.json"))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dk.exec_root())
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("-H")
        .arg(dk.host())
        .arg("--containerd")
        .arg(dk.ctd.sock())
        .arg("--containerd-namespace")
        .arg(&dk.name)
        .arg("--containerd-plugins-namespace")
        .arg(format!("{}-plugins", dk.name))
        .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
        .args(["--storage-driver", "overlay2"])
        .arg("--cgroup-parent")
        .arg(format!("/{}", dk.name));
        for rt in [Rt::Runc, Rt::Carte] {
            cmd.arg("--add-runtime")
                .arg(format!("{}={}", runtime_name(rt), rt.bin().display()));
        }
        cmd.stdin(Stdio::null());
        match log.try_clone() {
            Ok(l) => cmd.stdout(l).stderr(log),
            Err(e) => panic!("dup dockerd.log: {e}"),
        };
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("spawn dockerd: {e}"),
        };
        dk.pid = child.id() as i32;
        *dk.child_slot() = Some(child);
        let mut exited = false;
        let up = crate::poll_until(Duration::from_secs(60), || {
            exited = dk.exited();
            exited || (dir.join("docker.sock").exists() && dk.docker(&["version"]).success())
        });
        assert!(up && !exited, "dockerd did not come up: {}", dk.log_tail());
        let ns = std::fs::metadata(format!("/proc/{}/ns/net", dk.pid));
        dk.netns = ns.map(|m| m.ino()).unwrap_or_default();
        let archive = super::images().join("busybox-docker.tar");
        let out = dk
            .docker(&["load", "-i", &archive.display().to_string()])
            .ok();
        assert!(
            out.stdout.contains(&format!("Loaded image: {IMAGE}")),
            "{out}"
        );
        dk
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn child_slot(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        match self.child.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn exited(&self) -> bool {
        let mut child = self.child_slot();
        child
            .as_mut()
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// dockerd's `-H` address.
    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// The containerd dockerd runs its containers on, in the namespace named like the instance.
    pub fn containerd(&self) -> &Containerd {
        &self.ctd
    }

    pub fn exec_root(&self) -> PathBuf {
        self.dir.join("exec")
    }

    /// The cgroup parent of `rt`'s containers.
    pub fn cgroup_parent(&self, rt: Rt) -> String {
        format!("/{}-{}", self.name, rt.name())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `docker -H unix://<our socket> <args>`, with the CLI's config dir under ours too.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.env("DOCKER_CONFIG", self.dir.join("cli"))
            .env_remove("DOCKER_CONTEXT")
            .arg("-H")
            .arg(self.host())
            .args(args);
        cmd
    }

    #[track_caller]
    pub fn docker(&self, args: &[&str]) -> Out {
        run(self.command(args))
    }

    /// `GET /` on `127.0.0.1:port` as seen from dockerd's network namespace: the whole response, or why none.
    pub fn http_get(&self, port: u16) -> Result<String, String> {
        let ns = format!("/proc/{}/ns/net", self.pid);
        let joined = std::thread::spawn(move || -> Result<String, String> {
            let f = std::fs::File::open(&ns).map_err(|e| format!("open {ns}: {e}"))?;
            // setns affects only this thread, which ends here.
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {ns}: {e}"))?;
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
                .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .map_err(|e| format!("send request: {e}"))?;
            let mut text = String::new();
            s.read_to_string(&mut text)
                .map_err(|e| format!("read response: {e}"))?;
            Ok(text)
        });
        joined
            .join()
            .unwrap_or_else(|_| Err("http thread panicked".into()))
    }

    /// Processes still in dockerd's network namespace (dockerd gone): a docker-proxy it did not stop.
    fn left_in_netns(&self) -> Vec<(i32, String)> {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let ino = std::fs::metadata(e.path().join("ns/net")).map(|m| m.ino());
            if self.netns != 0 && ino.is_ok_and(|i| i == self.netns) {
                let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                found.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
            }
        }
        found
    }
}

/// Makes dockerd's data root the shared bind mount on itself that dockerd would make, so that dockerd leaves it
/// alone and the teardown removes it. dockerd 20.10 unmounts its own such mount at shutdown only if it is still
/// shared by then, and anything that makes the host's `/` rslave meanwhile turns it private: seen on the shared
/// development machine while other suites ran, where dockerd then left it mounted.
fn share_data_root(data: &Path) {
    use nix::mount::{mount, MsFlags};
    let bind = mount(
        Some(data),
        data,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(e) = bind {
        panic!("bind mount {} on itself: {e}", data.display());
    }
    if let Err(e) = mount(
        None::<&str>,
        data,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    ) {
        let _ = nix::mount::umount(data);
        panic!("make {} shared: {e}", data.display());
    }
}

/// The name a runtime is registered under (`runc` itself is reserved for dockerd's built-in default).
pub fn runtime_name(rt: Rt) -> &'static str {
    match rt {
        Rt::Runc => "runc-ref",
        Rt::Carte => "carte",
    }
}

impl Drop for Docker {
    /// Every container must be gone already (each test removes its own). Then dockerd is stopped, nothing may stay
    /// in its network namespace, nothing mounted under its directories, no cgroup under our parents but empty ones
    /// (which dockerd never removes, and we do). Then our hold on containerd (a field) goes: its last holder stops
    /// it and checks that no shim is left.
    fn drop(&mut self) {
        let mut leaks = Vec::new();
        let left = self.docker(&["ps", "-a", "-q", "--no-trunc"]);
        for cid in left.stdout.split_whitespace() {
            leaks.push(format!("docker still lists container {cid}"));
            let _ = self.docker(&["rm", "-f", cid]);
        }
        let child = self.child_slot().take();
        if let Some(mut child) = child {
            let pid = nix::unistd::Pid::from_raw(self.pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let stopped = crate::poll_until(Duration::from_secs(30), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = child.kill();
                leaks.push(format!("dockerd ignored SIGTERM: {}", self.log_tail()));
            }
            let _ = child.wait();
        }
        crate::poll_until(crate::AUDIT_GRACE, || self.left_in_netns().is_empty());
        for (pid, cmdline) in self.left_in_netns() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            leaks.push(format!(
                "process {pid} `{cmdline}` in dockerd's network namespace"
            ));
        }
        // Ours (see `share_data_root`); it only unmounts once nothing is mounted below it any more.
        let _ = nix::mount::umount(&self.dir.join("data"));
        leaks.extend(crate::audit::detach_mounts_under(std::slice::from_ref(
            &self.dir,
        )));
        leaks.extend(super::remove_cgroup_tree(&self.name));
        for rt in [Rt::Runc, Rt::Carte] {
            leaks.extend(super::remove_cgroup_tree(&self.cgroup_parent(rt)));
        }
        for d in self.created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        report(&format!("dockerd {}", self.name), &leaks);
    }
}

/// One test's view of the shared dockerd with one runtime; removes and audits its containers on drop.
pub struct Dk {
    pub dk: Arc<Docker>,
    pub rt: Rt,
    names: Names,
    /// `(name, word)`: words other than the container id that name a container's host mounts (its overlay2 layer
    /// id, its sandbox's netns file), recorded while it ran.
    marks: RefCell<Vec<(String, String)>>,
}

impl Dk {
    /// `None` (after saying why) when not root.
    pub fn new(rt: Rt) -> Option<Dk> {
        let tools = [
            "dockerd",
            "docker-proxy",
            "containerd",
            "containerd-shim-runc-v2",
            "unshare",
            "ip",
        ];
        if !super::can_run(rt, &tools) {
            return None;
        }
        assert!(
            Path::new(DOCKER).is_file(),
            "{DOCKER} not found (tests/setup.sh installs docker.io)"
        );
        Some(Dk {
            dk: Docker::shared(),
            rt,
            names: Names::default(),
            marks: RefCell::default(),
        })
    }

    /// A fresh container name that the teardown removes and audits.
    pub fn name(&self, tag: &str) -> String {
        let name = crate::unique_id(tag);
        self.names.borrow_mut().push(name.clone());
        name
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.dk.command(args)
    }

    #[track_caller]
    pub fn docker(&self, args: &[&str]) -> Out {
        self.dk.docker(args)
    }

    fn cidfile(&self, name: &str) -> PathBuf {
        self.dk.dir().join("cid").join(format!("{name}.cid"))
    }

    /// The full id docker gave container `name` (from its `--cidfile`, which outlives `--rm`).
    pub fn cid(&self, name: &str) -> String {
        std::fs::read_to_string(self.cidfile(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// `docker run <our flags> <opts> IMAGE <cmd>` arguments: name, cidfile, runtime, cgroup parent.
    pub fn run_args(&self, name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--name".into(),
            name.into(),
            "--cidfile".into(),
            self.cidfile(name).display().to_string(),
            "--runtime".into(),
            runtime_name(self.rt).into(),
            "--cgroup-parent".into(),
            self.dk.cgroup_parent(self.rt),
        ];
        args.extend(opts.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    #[track_caller]
    pub fn run(&self, name: &str, opts: &[&str], cmd: &[&str]) -> Out {
        let args = self.run_args(name, opts, cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.docker(&args)
    }

    /// `docker run -d`, which must succeed and leave the container running; records its mount names for the
    /// audit and returns its host pid.
    #[track_caller]
    pub fn run_detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> i64 {
        let mut all = vec!["-d"];
        all.extend_from_slice(opts);
        self.run(name, &all, cmd).ok();
        let f = "{{.State.Status}} {{.State.Pid}} {{.GraphDriver.Data.MergedDir}} {{.NetworkSettings.SandboxKey}}";
        let info = self.inspect(name, f);
        let fields: Vec<&str> = info.split_whitespace().collect();
        assert!(
            fields.len() == 4 && fields[0] == "running",
            "{name} after run -d: {info}"
        );
        // .../overlay2/<layer>/merged and .../netns/<sandbox>.
        let layer = Path::new(fields[2]).parent().and_then(Path::file_name);
        let sandbox = Path::new(fields[3]).file_name();
        for word in [layer, sandbox].into_iter().flatten() {
            let word = word.to_string_lossy().to_string();
            self.marks.borrow_mut().push((name.to_string(), word));
        }
        fields[1].parse().unwrap_or_default()
    }

    /// `docker inspect --format FORMAT name`, trimmed.
    #[track_caller]
    pub fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.docker(&["inspect", "--format", format, name]).ok();
        out.stdout.trim().to_string()
    }

    /// Whether docker still knows container `name`.
    pub fn exists(&self, name: &str) -> bool {
        self.docker(&["container", "inspect", name]).success()
    }

    /// Polls `{{.State.Status}}` until it is `want`.
    #[track_caller]
    pub fn wait_status(&self, name: &str, want: &str) {
        let mut last = String::new();
        let ok = crate::poll_until(TIMEOUT, || {
            last = self.inspect(name, "{{.State.Status}}");
            last == want
        });
        assert!(ok, "{name} never reached {want} (last {last})");
    }

    /// Where the runtime keeps container `cid`'s state: dockerd 20.10 gives every runc-like runtime the root
    /// `<exec-root>/runtime-runc` (named after the default runtime, not the one in use), and the shim appends the
    /// containerd namespace (`moby` by default; the instance's name here).
    pub fn state_dir(&self, cid: &str) -> PathBuf {
        self.runtime_root().join(cid)
    }

    /// The `--root` the shim gives the runtime (see [`Dk::state_dir`]).
    pub fn runtime_root(&self) -> PathBuf {
        self.dk.exec_root().join("runtime-runc").join(&self.dk.name)
    }

    /// What container `name` holds on the host right now: processes, cgroups, runtime state, mounts.
    pub fn leaks_now(&self, name: &str) -> Vec<String> {
        let cid = self.cid(name);
        let mut found = container_leaks_now(Needle::Anywhere(&cid), &self.state_dir(&cid));
        found.extend(self.marked_mounts(name));
        found
    }

    fn marked_mounts(&self, name: &str) -> Vec<String> {
        let marks = self.marks.borrow();
        let words = marks.iter().filter(|(n, _)| n == name).map(|(_, w)| w);
        words
            .flat_map(|w| super::mounts_mentioning(Needle::Anywhere(w)))
            .collect()
    }

    /// What is left of `name` once docker has no container by that name (after waiting the audit grace).
    pub fn audit(&self, name: &str) -> Vec<String> {
        let cid = self.cid(name);
        let mut leaks = Vec::new();
        if self.exists(name) {
            leaks.push(format!("docker still lists {name}"));
        }
        if !cid.is_empty() {
            leaks.extend(container_leaks(
                Needle::Anywhere(&cid),
                &self.state_dir(&cid),
            ));
        }
        leaks.extend(self.marked_mounts(name));
        leaks
    }

    /// Removes `name` however far it got and returns what the audit then finds of it.
    pub fn remove_and_audit(&self, name: &str) -> Vec<String> {
        let _ = self.docker(&["rm", "-f", name]);
        self.audit(name)
    }
}

impl Drop for Dk {
    fn drop(&mut self) {
        let names = self.names.borrow().clone();
        let mut leaks = Vec::new();
        for name in &names {
            leaks.extend(self.remove_and_audit(name));
            let _ = std::fs::remove_file(self.cidfile(name));
        }
        report(&format!("{} containers", self.rt.name()), &leaks);
    }
}
