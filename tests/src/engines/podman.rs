//! A private podman world (storage, runroot, tmpdir, network config, events file and both config files under one
//! temp dir), shared by the tests of one binary, and `Pm`, one test's handle on it: podman calls with
//! `--runtime` pointing at the runtime under test, a cgroup parent per runtime, and the per-container leak audit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use super::{container_leaks, private_tempdir, report, run, shared, Names, Needle, Rt, TIMEOUT};
use crate::runtime::Out;

/// The name `podman load` gives the docker-archive of `tests/images.sh`.
pub const IMAGE: &str = "docker.io/library/busybox:latest";

/// One podman world: podman has no daemon, so this is its directories, its config and the loaded image.
pub struct Podman {
    dir: tempfile::TempDir,
    name: String,
}

static SHARED: Mutex<Weak<Podman>> = Mutex::new(Weak::new());

impl Podman {
    pub fn shared() -> Arc<Podman> {
        shared(&SHARED, Podman::start)
    }

    fn start() -> Podman {
        let pm = Podman {
            dir: private_tempdir("carte-eng-pm-"),
            name: super::instance_name(),
        };
        let d = pm.dir();
        // Root lacks CAP_SYS_RESOURCE here, so podman's default ulimits for root (nofile 1048576) would fail
        // for every runtime: use what this process may set.
        let nofile = hard_nofile();
        let containers = format!(
            r#"[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]
netns = "none"
log_driver = "k8s-file"
[network]
network_config_dir = "{net}"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
runtime_supports_json = ["runc", "crun", "carte"]
tmp_dir = "{tmp}"
volume_path = "{volumes}"
static_dir = "{static_dir}"
"#,
            net = d.join("networks").display(),
            events = d.join("events.log").display(),
            tmp = d.join("tmp").display(),
            volumes = d.join("volumes").display(),
            static_dir = d.join("static").display(),
        );
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            d.join("root").display(),
            d.join("runroot").display()
        );
        for (file, text) in [("containers.conf", containers), ("storage.conf", storage)] {
            if let Err(e) = std::fs::write(d.join(file), text) {
                panic!("write {file}: {e}");
            }
        }
        let archive = super::images().join("busybox-docker.tar");
        pm.podman(
            Rt::Runc,
            &["load", "-q", "-i", &archive.display().to_string()],
        )
        .ok();
        pm
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cgroup parent of `rt`'s containers (and of their conmons, in `<parent>/conmon`).
    pub fn cgroup_parent(&self, rt: Rt) -> String {
        format!("/{}-{}", self.name, rt.name())
    }

    /// `podman <global flags> <args>` with this world's config; the exit command conmon runs gets the same
    /// global flags from podman itself.
    pub fn command(&self, rt: Rt, args: &[&str]) -> Command {
        let d = self.dir();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--runtime")
            .arg(rt.bin())
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args);
        cmd
    }

    #[track_caller]
    pub fn podman(&self, rt: Rt, args: &[&str]) -> Out {
        run(self.command(rt, args))
    }
}

/// This process's hard RLIMIT_NOFILE, from /proc/self/limits ("Max open files  <soft>  <hard>  files").
fn hard_nofile() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(1024)
}

impl Drop for Podman {
    /// Every container must be gone already (each test removes its own); then no mount under our dir and no
    /// cgroup left under our parents but empty ones, which podman never removes and we do.
    fn drop(&mut self) {
        let mut leaks = Vec::new();
        let left = self.podman(Rt::Runc, &["ps", "-a", "-q", "--no-trunc"]);
        for cid in left.stdout.split_whitespace() {
            leaks.push(format!("podman still lists container {cid}"));
            let _ = self.podman(Rt::Runc, &["rm", "-f", "-t", "0", cid]);
        }
        leaks.extend(crate::audit::detach_mounts_under(&[self
            .dir()
            .to_path_buf()]));
        for rt in [Rt::Runc, Rt::Carte] {
            leaks.extend(super::remove_cgroup_tree(&self.cgroup_parent(rt)));
        }
        report(&format!("podman world {}", self.name), &leaks);
    }
}

/// One test's view of the podman world with one runtime; removes and audits its containers on drop.
pub struct Pm {
    pub pm: Arc<Podman>,
    pub rt: Rt,
    names: Names,
}

impl Pm {
    /// `None` (after saying why) when not root.
    pub fn new(rt: Rt) -> Option<Pm> {
        if !super::can_run(rt, &["podman", "conmon"]) {
            return None;
        }
        Some(Pm {
            pm: Podman::shared(),
            rt,
            names: Names::default(),
        })
    }

    /// A fresh container name that the teardown removes and audits.
    pub fn name(&self, tag: &str) -> String {
        let name = crate::unique_id(tag);
        self.names.borrow_mut().push(name.clone());
        name
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.pm.command(self.rt, args)
    }

    #[track_caller]
    pub fn podman(&self, args: &[&str]) -> Out {
        self.pm.podman(self.rt, args)
    }

    fn cidfile(&self, name: &str) -> PathBuf {
        self.pm.dir().join(format!("{name}.cid"))
    }

    /// The full id podman gave container `name` (from its `--cidfile`).
    pub fn cid(&self, name: &str) -> String {
        std::fs::read_to_string(self.cidfile(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// `podman run <our flags> <opts> IMAGE <cmd>` arguments: name, cidfile, `--network none`, cgroup parent.
    pub fn run_args(&self, name: &str, opts: &[&str], image: &str, cmd: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--name".into(),
            name.into(),
            "--cidfile".into(),
            self.cidfile(name).display().to_string(),
            "--network".into(),
            "none".into(),
            "--cgroup-parent".into(),
            self.pm.cgroup_parent(self.rt),
        ];
        args.extend(opts.iter().map(|s| s.to_string()));
        args.push(image.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    #[track_caller]
    pub fn run(&self, name: &str, opts: &[&str], cmd: &[&str]) -> Out {
        self.run_image(name, opts, IMAGE, cmd)
    }

    #[track_caller]
    pub fn run_image(&self, name: &str, opts: &[&str], image: &str, cmd: &[&str]) -> Out {
        let args = self.run_args(name, opts, image, cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.podman(&args)
    }

    /// `podman run -d`, which must succeed; returns the container's host pid.
    #[track_caller]
    pub fn run_detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> i64 {
        let mut all = vec!["-d"];
        all.extend_from_slice(opts);
        self.run(name, &all, cmd).ok();
        let status = self.inspect(name, "{{.State.Status}}");
        assert_eq!(status, "running", "{name} after run -d");
        self.inspect(name, "{{.State.Pid}}")
            .parse()
            .unwrap_or_default()
    }

    /// `podman inspect --format FORMAT name`, trimmed.
    #[track_caller]
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.podman(&["inspect", "--format", format, name])
            .ok()
            .stdout
            .trim()
            .to_string()
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

    /// Where the runtime keeps the container's state: podman passes no `--root`, so the runtime's default.
    pub fn state_dir(&self, cid: &str) -> PathBuf {
        self.rt.default_root().join(cid)
    }

    /// Removes `name` however far it got and returns what the audit then finds of it.
    pub fn remove_and_audit(&self, name: &str) -> Vec<String> {
        let cid = self.cid(name);
        let _ = self.podman(&["rm", "-f", "-t", "0", name]);
        let mut leaks = Vec::new();
        if self.podman(&["container", "exists", name]).success() {
            leaks.push(format!("podman still lists {name}"));
        }
        if !cid.is_empty() {
            leaks.extend(container_leaks(
                Needle::Anywhere(&cid),
                &self.state_dir(&cid),
            ));
        }
        leaks
    }
}

impl Drop for Pm {
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
