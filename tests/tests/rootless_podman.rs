//! `podman --runtime <rt>` run by an unprivileged user (rootless podman), beside the same with runc: a test user
//! with its /etc/subuid range, podman's storage (vfs driver: no fuse-overlayfs here), runroot, tmpdir and config
//! under the user's temp home, the busybox image loaded from `tests/images.sh`'s docker archive.
//!
//! Rootless podman maps the user's subordinate ids with `newuidmap` into a user namespace held by its pause
//! process, and runs conmon and the runtime there as that namespace's root: the runtime sees euid 0 inside a user
//! namespace, and no `--root` (its state goes to `$XDG_RUNTIME_DIR/<runtime>`, runc's rule). On this cgroup v1
//! host nothing is delegated: containers run without a cgroup of their own (`--cgroup-manager cgroupfs`).

use carte_tests::engines::{can_run, images, Rt};
use carte_tests::per_runtime;
use carte_tests::rootless::User;
use carte_tests::{Ctx, Out};
use std::path::{Path, PathBuf};

/// The name `podman load` gives the docker-archive of `tests/images.sh`.
const IMAGE: &str = "docker.io/library/busybox:latest";

struct Rootless {
    user: User,
    dir: PathBuf,
    rt: Rt,
    _ctx: Ctx,
}

impl Rootless {
    fn new(rt: Rt) -> Option<Rootless> {
        if !can_run(rt, &["podman", "conmon", "newuidmap", "newgidmap"]) {
            return None;
        }
        let ctx = Ctx::new()?;
        let user = User::new(&ctx.tempdir());
        let dir = user.home.join("podman");
        let archive = dir.join("busybox-docker.tar");
        let containers = format!(
            "[containers]\nnetns = \"none\"\nlog_driver = \"k8s-file\"\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\nevents_logfile_path = \"{}\"\nruntime_supports_json = [\"runc\", \"crun\", \"carte\"]\n\
             tmp_dir = \"{}\"\n",
            dir.join("events.log").display(),
            dir.join("tmp").display()
        );
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.join("root").display(),
            dir.join("runroot").display()
        );
        let made = std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(dir.join("containers.conf"), containers))
            .and_then(|()| std::fs::write(dir.join("storage.conf"), storage))
            .and_then(|()| std::fs::copy(images().join("busybox-docker.tar"), &archive));
        if let Err(e) = made {
            panic!("podman world in {}: {e}", dir.display());
        }
        user.chown(&user.home);
        let r = Rootless {
            user,
            dir,
            rt,
            _ctx: ctx,
        };
        r.podman(&["load", "-q", "-i", &archive.display().to_string()])
            .ok();
        Some(r)
    }

    #[track_caller]
    fn podman(&self, args: &[&str]) -> Out {
        let conf = self.dir.join("containers.conf");
        let storage = self.dir.join("storage.conf");
        let rt = self.rt.bin().display().to_string();
        let mut all = vec![
            "--runtime",
            &rt,
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ];
        all.extend_from_slice(args);
        let cmd = self.user.command(
            &self.user.home,
            &[
                ("CONTAINERS_CONF", conf.to_str().unwrap_or_default()),
                (
                    "CONTAINERS_STORAGE_CONF",
                    storage.to_str().unwrap_or_default(),
                ),
            ],
            Path::new("podman"),
            &all,
        );
        carte_tests::engines::run(cmd)
    }

    /// podman's pause process, which holds its user namespace between calls.
    fn pause_pid(&self) -> Option<i32> {
        let pid = std::fs::read_to_string(self.dir.join("tmp/pause.pid")).ok()?;
        pid.trim().parse().ok()
    }

    /// The runtime's state entry for container `cid` (podman passes no `--root`).
    fn state_entry(&self, cid: &str) -> PathBuf {
        self.user.xdg.join(self.rt.name()).join(cid)
    }
}

impl Drop for Rootless {
    /// podman must list nothing; then its pause process (which holds the user namespace and outlives every
    /// podman call by design) is stopped, so that the user's drop finds no process left.
    fn drop(&mut self) {
        let left = self.podman(&["ps", "-a", "-q"]);
        if let Some(pid) = self.pause_pid() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        if !std::thread::panicking() {
            assert!(left.success() && left.stdout.trim().is_empty(), "{left}");
        }
    }
}

/// `podman run --rm`: the process is root in podman's user namespace, which maps the user's uid to 0 and its
/// subordinate range above.
fn run_rm(rt: Rt) {
    let Some(r) = Rootless::new(rt) else { return };
    let out = r
        .podman(&[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map",
        ])
        .ok();
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    let (uid, su, sn) = (
        r.user.uid.to_string(),
        r.user.subuid.0.to_string(),
        r.user.subuid.1.to_string(),
    );
    assert_eq!(words, ["0", "0", &uid, "1", "1", &su, &sn], "{out}");
}

/// `run -d`, `exec`, `stop`, `rm`: the runtime keeps its state under the user's `$XDG_RUNTIME_DIR` while the
/// container lives, and nothing is left after `rm`.
fn detached_exec_stop_rm(rt: Rt) {
    let Some(r) = Rootless::new(rt) else { return };
    let name = carte_tests::unique_id("rlpm");
    let cid = r
        .podman(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(
        r.state_entry(&cid).is_dir(),
        "{}",
        r.state_entry(&cid).display()
    );
    let out = r
        .podman(&[
            "exec",
            &name,
            "sh",
            "-c",
            "echo in $(hostname); id -u; cat /proc/1/cmdline | tr '\\0' ' '",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.get(1), Some(&"0"), "{out}");
    assert_eq!(lines.get(2).map(|l| l.trim()), Some("sleep 300"), "{out}");
    // sleep as pid 1 ignores SIGTERM: podman sends SIGKILL after the timeout.
    r.podman(&["stop", "-t", "1", &name]).ok();
    let st = r
        .podman(&["inspect", "--format", "{{.State.Status}}", &name])
        .ok();
    assert_eq!(st.stdout.trim(), "exited", "{st}");
    r.podman(&["rm", &name]).ok();
    assert!(
        !r.state_entry(&cid).exists(),
        "{}",
        r.state_entry(&cid).display()
    );
    let ps = r.podman(&["ps", "-a", "-q"]).ok();
    assert!(ps.stdout.trim().is_empty(), "{ps}");
    // Only podman's pause process may remain (no conmon, no container process, no runtime).
    let pause = format!("{} ", r.pause_pid().unwrap_or(-1));
    let left: Vec<String> = r
        .user
        .processes(carte_tests::AUDIT_GRACE)
        .into_iter()
        .filter(|p| !p.starts_with(&pause))
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
}

per_runtime!(run_rm, detached_exec_stop_rm);
