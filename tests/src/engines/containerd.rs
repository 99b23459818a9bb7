//! A private containerd (root, state, socket and config under one temp dir, no CRI plugin), shared by the tests
//! of one binary, and `Ctd`, one test's handle on it: a containerd namespace per runtime, `ctr` calls with
//! `--runc-binary`/`--runc-root` pointing at the runtime under test, and the per-container leak audit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{
    container_leaks, private_tempdir, report, run, shared, Bg, Names, Needle, Rt, TIMEOUT,
};
use crate::runtime::Out;

/// The image `tests/images.sh` names in its oci-archive, as `ctr image import` stores it.
pub const IMAGE: &str = "busybox:latest";

/// One containerd daemon we started.
pub struct Containerd {
    dir: tempfile::TempDir,
    name: String,
    child: Mutex<Option<Child>>,
    /// Namespaces the busybox image was imported into.
    imported: Mutex<Vec<String>>,
}

static SHARED: Mutex<Weak<Containerd>> = Mutex::new(Weak::new());

impl Containerd {
    /// The running shared instance, started if no test holds one.
    pub fn shared() -> Arc<Containerd> {
        shared(&SHARED, Containerd::start)
    }

    fn start() -> Containerd {
        let name = super::instance_name();
        let dir = private_tempdir("carte-eng-ctd-");
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
# No CRI: ctr talks to the tasks service directly, and the CRI plugin would want CNI and more.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            opt = d.join("opt").display(),
        );
        let cfg = d.join("config.toml");
        if let Err(e) = std::fs::write(&cfg, config) {
            panic!("write {}: {e}", cfg.display());
        }
        let log = match std::fs::File::create(d.join("containerd.log")) {
            Ok(f) => f,
            Err(e) => panic!("create containerd.log: {e}"),
        };
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&cfg).stdin(Stdio::null());
        match log.try_clone() {
            Ok(l) => cmd.stdout(l).stderr(log),
            Err(e) => panic!("dup containerd.log: {e}"),
        };
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("spawn containerd: {e}"),
        };
        let ctd = Containerd {
            dir,
            name,
            child: Mutex::new(Some(child)),
            imported: Mutex::new(Vec::new()),
        };
        let up = crate::poll_until(Duration::from_secs(30), || {
            ctd.sock().exists() && ctd.ctr("default", &["version"]).success()
        });
        assert!(up, "containerd did not come up: {}", ctd.log_tail());
        ctd
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn sock(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    /// `--runc-root` for `rt`: the shim appends the namespace, so a container's state is `<this>/<ns>/<id>`.
    pub fn runc_root(&self, rt: Rt) -> PathBuf {
        self.dir().join("runc").join(rt.name())
    }

    /// The namespace (and cgroup parent, `/<ns>/<id>` being ctr's default) of `rt`'s containers.
    pub fn namespace(&self, rt: Rt) -> String {
        format!("{}-{}", self.name, rt.name())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn ctr_command(&self, ns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a").arg(self.sock()).args(["-n", ns]).args(args);
        cmd
    }

    #[track_caller]
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Out {
        run(self.ctr_command(ns, args))
    }

    /// Imports the busybox oci-archive into `ns` once.
    fn import(&self, ns: &str) {
        let mut done = match self.imported.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if done.iter().any(|n| n == ns) {
            return;
        }
        let archive = super::images().join("busybox-oci.tar");
        let archive = archive.display().to_string();
        self.ctr(ns, &["image", "import", &archive]).ok();
        done.push(ns.to_string());
    }
}

impl Drop for Containerd {
    /// Stops the daemon we started, then audits: no shim of ours left (a leftover one is killed by its pid),
    /// no mount under our dir, no cgroup parent of our namespaces.
    fn drop(&mut self) {
        let mut leaks = Vec::new();
        let mine = self.dir().display().to_string();
        if let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let stopped = crate::poll_until(Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = child.kill();
                leaks.push("containerd ignored SIGTERM".to_string());
            }
            let _ = child.wait();
        }
        // Shims are started with `-address <our socket>`; they outlive containerd by design, so any still
        // running held a container nobody deleted.
        leaks.extend(super::kill_stragglers(&mine));
        leaks.extend(crate::audit::detach_mounts_under(&[self
            .dir()
            .to_path_buf()]));
        for rt in [Rt::Runc, Rt::Carte] {
            let state = self.runc_root(rt).join(self.namespace(rt));
            for e in std::fs::read_dir(&state).into_iter().flatten().flatten() {
                leaks.push(format!("runtime state {}", e.path().display()));
            }
            leaks.extend(super::remove_cgroup_tree(&self.namespace(rt)));
        }
        report(&format!("containerd {}", self.name), &leaks);
    }
}

/// One test's view of the shared containerd with one runtime; deletes and audits its containers on drop.
pub struct Ctd {
    pub ctd: Arc<Containerd>,
    pub rt: Rt,
    pub ns: String,
    ids: Names,
}

impl Ctd {
    /// `None` (after saying why) when not root.
    pub fn new(rt: Rt) -> Option<Ctd> {
        if !super::can_run(rt, &["containerd", "ctr", "containerd-shim-runc-v2"]) {
            return None;
        }
        let ctd = Containerd::shared();
        let ns = ctd.namespace(rt);
        ctd.import(&ns);
        Some(Ctd {
            ctd,
            rt,
            ns,
            ids: Names::default(),
        })
    }

    /// A fresh container id that the teardown deletes and audits.
    pub fn id(&self, tag: &str) -> String {
        let id = crate::unique_id(tag);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `ctr -a SOCK -n NS <args>`; `run` and `task exec` also get `--fifo-dir` under our temp dir, since ctr
    /// otherwise leaves the stdio fifos of detached processes in /run/containerd/fifo.
    pub fn command(&self, args: &[&str]) -> Command {
        let fifo = self.ctd.dir().join("fifo").display().to_string();
        let at = match args {
            ["run", ..] => 1,
            ["task", "exec", ..] => 2,
            _ => 0,
        };
        let mut all: Vec<&str> = args.to_vec();
        if at > 0 {
            all.splice(at..at, ["--fifo-dir", fifo.as_str()]);
        }
        self.ctd.ctr_command(&self.ns, &all)
    }

    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> Out {
        run(self.command(args))
    }

    /// `ctr run` arguments for container `id` with the runtime under test: `run <runtime opts> <opts> IMAGE id
    /// <cmd>`.
    pub fn run_args(&self, id: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--runc-binary".into(),
            self.rt.bin().display().to_string(),
            "--runc-root".into(),
            self.ctd.runc_root(self.rt).display().to_string(),
        ];
        args.extend(opts.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.push(id.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    /// `ctr run` to completion.
    #[track_caller]
    pub fn run(&self, id: &str, opts: &[&str], cmd: &[&str]) -> Out {
        let args = self.run_args(id, opts, cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr(&args)
    }

    /// A foreground `ctr run` left running in the background.
    #[track_caller]
    pub fn run_bg(&self, id: &str, opts: &[&str], cmd: &[&str]) -> Bg {
        let args = self.run_args(id, opts, cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match Bg::spawn(self.command(&args), TIMEOUT) {
            Ok(b) => b,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// `ctr run -d` of a long sleep (or `cmd`), which must succeed and reach RUNNING; returns the task's pid.
    #[track_caller]
    pub fn run_detached(&self, id: &str, opts: &[&str], cmd: &[&str]) -> i64 {
        let mut all = vec!["-d"];
        all.extend_from_slice(opts);
        self.run(id, &all, cmd).ok();
        self.wait_status(id, "RUNNING");
        self.task(id).map(|(pid, _)| pid).unwrap_or_default()
    }

    /// The task's `(pid, status)` from `ctr task ls`, if it has a task.
    #[track_caller]
    pub fn task(&self, id: &str) -> Option<(i64, String)> {
        let out = self.ctr(&["task", "ls"]).ok();
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[0] == id)
                .then(|| (f[1].parse().unwrap_or_default(), f[2].to_string()))
        })
    }

    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = None;
        let ok = crate::poll_until(TIMEOUT, || {
            last = self.task(id);
            last.as_ref().is_some_and(|(_, s)| s == want)
        });
        assert!(ok, "task {id} never reached {want} (last {last:?})");
    }

    /// Where the runtime keeps `id`'s state: containerd passes `--root <runc root>/<ns>`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.ctd.runc_root(self.rt).join(&self.ns).join(id)
    }

    /// Deletes `id` however far it got (SIGKILL to every process, task and container removal) and returns what
    /// the audit then finds of it.
    pub fn remove_and_audit(&self, id: &str) -> Vec<String> {
        if self.task(id).is_some() {
            let _ = self.ctr(&["task", "kill", "--all", "-s", "SIGKILL", id]);
            crate::poll_until(TIMEOUT, || {
                self.task(id).is_none_or(|(_, s)| s == "STOPPED")
            });
            let _ = self.ctr(&["task", "delete", "--force", id]);
        }
        let _ = self.ctr(&["container", "delete", id]);
        let mut leaks = container_leaks(Needle::Token(id), &self.state_dir(id));
        let listed = self.ctr(&["container", "ls", "-q"]).ok();
        if listed.stdout.lines().any(|l| l.trim() == id) {
            leaks.push(format!("containerd still lists container {id}"));
        }
        leaks
    }
}

impl Drop for Ctd {
    fn drop(&mut self) {
        let ids = self.ids.borrow().clone();
        let mut leaks = Vec::new();
        for id in &ids {
            leaks.extend(self.remove_and_audit(id));
        }
        report(&format!("{} containers", self.rt.name()), &leaks);
    }
}
