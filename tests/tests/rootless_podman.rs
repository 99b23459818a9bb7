//! `podman --runtime <rt>` run by an unprivileged user (rootless podman), beside the same with runc: a test user
//! with its /etc/subuid range, podman's storage (vfs driver: no fuse-overlayfs here), runroot, tmpdir and config
//! under the user's temp home, the busybox image loaded from `tests/images.sh`'s docker archive.
//!
//! Rootless podman maps the user's subordinate ids with `newuidmap` into a user namespace held by its pause
//! process, and runs conmon and the runtime there as that namespace's root: the runtime sees euid 0 inside a user
//! namespace, and no `--root` (its state goes to `$XDG_RUNTIME_DIR/<runtime>`, runc's rule). On this cgroup v1
//! host nothing is delegated: containers run without a cgroup of their own (`--cgroup-manager cgroupfs`). On a
//! cgroup v2 host (`tests/vm/run.sh --systemd rootless_podman`) the user is given a delegated subtree, podman
//! runs in it, and `--memory` works.

use carte_tests::engines::{can_run, images, Rt};
use carte_tests::per_runtime;
use carte_tests::rootless::User;
use carte_tests::{Ctx, Out};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The name `podman load` gives the docker-archive of `tests/images.sh`.
const IMAGE: &str = "docker.io/library/busybox:latest";

struct Rootless {
    user: User,
    /// The delegated cgroup v2 subtree every podman command starts in, if any; dropped after the user, whose
    /// drop waits for the user's processes (podman's pause process among them) to be gone.
    cgroup: Option<Delegated>,
    dir: PathBuf,
    rt: Rt,
    _ctx: Ctx,
}

impl Rootless {
    fn new(rt: Rt) -> Option<Rootless> {
        Self::with(rt, false)
    }

    /// The same world with podman started in a cgroup v2 subtree delegated to the user (see [`Delegated`]).
    fn delegated(rt: Rt) -> Option<Rootless> {
        Self::with(rt, true)
    }

    fn with(rt: Rt, delegate: bool) -> Option<Rootless> {
        if !can_run(rt, &["podman", "conmon", "newuidmap", "newgidmap"]) {
            return None;
        }
        let ctx = Ctx::new()?;
        let user = User::new(&ctx.tempdir());
        let cgroup = delegate.then(|| Delegated::new(&user));
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
            cgroup,
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
        let argv = self.user.argv(
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
        let mut cmd = match &self.cgroup {
            // As a login in a delegated session would: the shell (still root) moves itself into `launch`, then
            // becomes the user's podman there; conmon and the runtime it starts inherit that cgroup.
            Some(d) => {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
                    .arg(&d.launch)
                    .args(&argv);
                cmd
            }
            None => {
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]);
                cmd
            }
        };
        cmd.current_dir(&self.user.home);
        carte_tests::engines::run(cmd)
    }

    /// podman's pause process, which holds its user namespace between calls.
    fn pause_pid(&self) -> Option<i32> {
        let pid = std::fs::read_to_string(self.dir.join("tmp/pause.pid")).ok()?;
        pid.trim().parse().ok()
    }

    /// The runtime's state entry for container `cid` (podman passes no `--root`): `$XDG_RUNTIME_DIR/carte` or
    /// `…/runc`, by what the binary is — with `CARTE_BIN=/usr/sbin/runc`, `Rt::Carte` runs runc too.
    fn state_entry(&self, cid: &str) -> PathBuf {
        let name = match self.rt {
            Rt::Carte if !carte_tests::is_carte() => Rt::Runc.name(),
            rt => rt.name(),
        };
        self.user.xdg.join(name).join(cid)
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

/// A cgroup v2 subtree delegated to the test user, as systemd's `Delegate=yes` gives a user's manager
/// (cgroup-v2.rst "Model of Delegation"): `D` = `/sys/fs/cgroup/<user>-deleg` and its `cgroup.procs`,
/// `cgroup.subtree_control` and `cgroup.threads` owned by the user, memory and pids enabled by root for D's
/// children (podman reads them as the controllers it may use), and `D/launch`, the user's, where podman runs:
/// a cgroup with processes cannot give controllers to children ("no internal processes"), so the runtime puts
/// the container next to it, in `D/<id>`.
struct Delegated {
    dir: PathBuf,
    launch: PathBuf,
}

impl Delegated {
    fn new(user: &User) -> Delegated {
        let dir = Path::new("/sys/fs/cgroup").join(format!("{}-deleg", user.name));
        let launch = dir.join("launch");
        let d = Delegated { dir, launch };
        if let Err(e) = std::fs::create_dir(&d.dir) {
            panic!("mkdir {}: {e}", d.dir.display());
        }
        let ctl = d.dir.join("cgroup.subtree_control");
        if let Err(e) = std::fs::write(&ctl, "+memory +pids") {
            panic!("write +memory +pids to {}: {e}", ctl.display());
        }
        let owner = Some(nix::unistd::Uid::from_raw(user.uid));
        let group = Some(nix::unistd::Gid::from_raw(user.gid));
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            let p = d.dir.join(f);
            if let Err(e) = nix::unistd::chown(&p, owner, group) {
                panic!("chown {}: {e}", p.display());
            }
        }
        if let Err(e) = std::fs::create_dir(&d.launch) {
            panic!("mkdir {}: {e}", d.launch.display());
        }
        user.chown(&d.launch);
        d
    }

    /// The cgroups in D (by name).
    fn children(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Delegated {
    /// `launch` and then D, once the processes in them (podman's pause process, killed by `Rootless`'s drop) are
    /// gone; a container cgroup still in D is the test's failure (and stays, for a look).
    fn drop(&mut self) {
        for d in [&self.launch, &self.dir] {
            let removed = carte_tests::poll_until(carte_tests::AUDIT_GRACE, || {
                std::fs::remove_dir(d).is_ok() || !d.exists()
            });
            if !removed && !std::thread::panicking() {
                panic!("rmdir {}: {:?} in it", d.display(), self.children());
            }
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

/// On a cgroup v2 host, with podman started in a subtree delegated to the user, `--memory` works: rootless podman
/// with `--cgroup-manager cgroupfs` passes no `linux.cgroupsPath`, and the runtime puts the container below the
/// parent of its own cgroup (runc's fs2 rule): `D/<id>`, which the user may create and write limits into. The
/// container sees its own cgroup as `/` (podman's private cgroup namespace), `pause` freezes that cgroup, and `rm`
/// leaves only `launch` in D.
fn memory_limit_through_delegation(rt: Rt) {
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("skipped: needs a cgroup v2 host (tests/vm/run.sh --systemd rootless_podman)");
        return;
    }
    let Some(r) = Rootless::delegated(rt) else {
        return;
    };
    let Some(deleg) = r.cgroup.as_ref() else {
        unreachable!("Rootless::delegated has a cgroup")
    };
    let out = r
        .podman(&[
            "run",
            "--rm",
            "--memory",
            "64m",
            IMAGE,
            "cat",
            "/sys/fs/cgroup/memory.max",
            "/proc/self/cgroup",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["67108864", "0::/"], "{out}");
    assert_eq!(deleg.children(), ["launch"], "after run --rm");

    // Where the container is, seen from the host: its init's cgroup is D/<id>, with the limit.
    let name = carte_tests::unique_id("rlmem");
    let cid = r
        .podman(&[
            "run", "-d", "--name", &name, "--memory", "64m", IMAGE, "sleep", "300",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pid = r
        .podman(&["inspect", "--format", "{{.State.Pid}}", &name])
        .ok()
        .stdout
        .trim()
        .to_string();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let expect = format!(
        "0::/{}/{cid}",
        deleg
            .dir
            .strip_prefix("/sys/fs/cgroup")
            .unwrap_or(&deleg.dir)
            .display()
    );
    assert_eq!(
        cg.trim(),
        expect,
        "cgroup of the container's init (pid {pid})"
    );
    let max = std::fs::read_to_string(deleg.dir.join(&cid).join("memory.max")).unwrap_or_default();
    assert_eq!(
        max.trim(),
        "67108864",
        "memory.max of {}",
        deleg.dir.join(&cid).display()
    );
    // The later verbs find the cgroup create chose (it is in the runtime's state): pause freezes it.
    let freeze = deleg.dir.join(&cid).join("cgroup.freeze");
    r.podman(&["pause", &name]).ok();
    let frozen = std::fs::read_to_string(&freeze).unwrap_or_default();
    assert_eq!(frozen.trim(), "1", "{} after pause", freeze.display());
    r.podman(&["unpause", &name]).ok();
    let frozen = std::fs::read_to_string(&freeze).unwrap_or_default();
    assert_eq!(frozen.trim(), "0", "{} after unpause", freeze.display());
    r.podman(&["rm", "-f", "-t", "0", &name]).ok();
    let clean =
        carte_tests::poll_until(carte_tests::AUDIT_GRACE, || deleg.children() == ["launch"]);
    assert!(
        clean,
        "left in {}: {:?}",
        deleg.dir.display(),
        deleg.children()
    );
}

per_runtime!(
    run_rm,
    detached_exec_stop_rm,
    memory_limit_through_delegation
);
