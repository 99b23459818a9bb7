//! Rootless: the runtime run by an unprivileged user (a test user made for each test, with its own /etc/subuid and
//! /etc/subgid ranges), on a bundle made by the runtime's own `spec --rootless` and a busybox rootfs the user owns.
//! No `--root` is given: the state must go to `$XDG_RUNTIME_DIR/<runtime>` (runc's rule), and be empty after.
//! This host is cgroup v1 hybrid, where nothing is delegated to users: the container runs without a cgroup of its
//! own (runc's rootless cgroup manager ignores the permission error; carte says so in a warning).
//!
//! Run against runc too: `CARTE_BIN=/usr/sbin/runc cargo test -p carte-tests --test rootless`.

use carte_tests::rootless::User;
use carte_tests::{is_carte, json, runtime_bin, Bundle, Ctx, Out, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The runtime's short name: its state goes to `$XDG_RUNTIME_DIR/<name>`.
fn rt_name() -> &'static str {
    if is_carte() {
        "carte"
    } else {
        "runc"
    }
}

/// A user, and a bundle in its home: busybox rootfs owned by it, config.json from `<runtime> spec --rootless` run
/// as the user, with `terminal: false` and `args`.
struct World {
    user: User,
    bundle: PathBuf,
    bin: PathBuf,
    _ctx: Ctx,
}

impl World {
    fn new(ctx: Ctx, args: &[&str]) -> World {
        let user = User::new(&ctx.tempdir());
        let bundle = user.home.join("bundle");
        if let Err(e) = std::fs::create_dir(&bundle) {
            panic!("mkdir {}: {e}", bundle.display());
        }
        // The busybox rootfs of the harness; its config is replaced by the runtime's own.
        if let Err(e) = Bundle::new(&bundle) {
            panic!("busybox rootfs in {}: {e:#}", bundle.display());
        }
        user.chown(&user.home);
        let bin = runtime_bin();
        user.run(&bundle, &bin, &["spec", "--rootless"]).ok();
        let w = World {
            user,
            bundle,
            bin,
            _ctx: ctx,
        };
        w.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(args);
        });
        w
    }

    fn config(&self) -> Value {
        let text = std::fs::read_to_string(self.bundle.join("config.json")).unwrap_or_default();
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => panic!("config.json of `spec --rootless`: {e}: {text}"),
        }
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        let path = self.bundle.join("config.json");
        if let Err(e) = std::fs::write(&path, c.to_string()) {
            panic!("write {}: {e}", path.display());
        }
    }

    /// The runtime, as the user, in the bundle, without `--root`.
    #[track_caller]
    fn rt(&self, args: &[&str]) -> Out {
        self.user.run(&self.bundle, &self.bin, args)
    }

    fn state_root(&self) -> PathBuf {
        self.user.xdg.join(rt_name())
    }

    /// Nothing of the container is left: no state entry, no process of the user or of its subordinate ids.
    #[track_caller]
    fn assert_nothing_left(&self, id: &str) {
        let entry = self.state_root().join(id);
        assert!(!entry.exists(), "state entry {} left", entry.display());
        let left = self.user.processes(carte_tests::AUDIT_GRACE);
        assert!(left.is_empty(), "processes left: {left:?}");
        let list = self.rt(&["list", "-q"]).ok();
        assert!(!list.stdout.contains(id), "{list}");
    }

    /// `kill ID KILL`, wait until it is stopped, `delete ID`.
    #[track_caller]
    fn kill_and_delete(&self, id: &str) {
        self.rt(&["kill", id, "KILL"]).ok();
        assert!(
            carte_tests::poll_until(Duration::from_secs(10), || state_of(self, id) == "stopped"),
            "still {}",
            state_of(self, id)
        );
        self.rt(&["delete", id]).ok();
    }
}

fn world(args: &[&str]) -> Option<World> {
    let ctx = Ctx::new()?;
    Some(World::new(ctx, args))
}

fn state_of(w: &World, id: &str) -> String {
    let out = w.rt(&["state", id]);
    if !out.success() {
        return "gone".into();
    }
    out.json()["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `spec --rootless`: a user namespace mapping the caller's uid and gid to 0, no network namespace, /sys bound
/// from the host, no `gid=`/`uid=` mount option (gid 5 is not mapped), no resources (runc's ToRootless).
#[test]
fn spec_rootless_is_runcs_to_rootless() {
    let Some(w) = world(&["true"]) else { return };
    let c = w.config();
    let nss: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["type"].as_str()).collect())
        .unwrap_or_default();
    assert!(nss.contains(&"user"), "{nss:?}");
    assert!(!nss.contains(&"network"), "{nss:?}");
    assert_eq!(
        c["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": w.user.uid, "size": 1}])
    );
    assert_eq!(
        c["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": w.user.gid, "size": 1}])
    );
    assert!(c["linux"]["resources"].is_null(), "{}", c["linux"]);
    let mounts = c["mounts"].as_array().cloned().unwrap_or_default();
    let sys = mounts.iter().find(|m| m["destination"] == "/sys");
    assert_eq!(
        sys.map(|m| (m["type"].clone(), m["source"].clone())),
        Some((json!("none"), json!("/sys"))),
        "{mounts:?}"
    );
    assert!(sys.is_some_and(|m| m["options"]
        .as_array()
        .is_some_and(|o| o.contains(&json!("rbind")))));
    for m in &mounts {
        for o in m["options"].as_array().cloned().unwrap_or_default() {
            let o = o.as_str().unwrap_or_default();
            assert!(!o.starts_with("gid=") && !o.starts_with("uid="), "{m}");
        }
    }
    // runc's ToRootless keeps the mqueue and cgroup mounts.
    for dest in ["/dev/mqueue", "/sys/fs/cgroup", "/dev/pts"] {
        assert!(
            mounts.iter().any(|m| m["destination"] == dest),
            "{dest} missing: {mounts:?}"
        );
    }
}

/// `run` as the user: the process is root in its user namespace, mapped to the user; the state is under
/// `$XDG_RUNTIME_DIR/<runtime>` (made 0700 with the sticky bit), empty after.
#[test]
fn run_as_user_keeps_state_under_xdg_runtime_dir() {
    let Some(w) = world(&[
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ls /dev/pts/ptmx /dev/null",
    ]) else {
        return;
    };
    let id = carte_tests::unique_id("rl-run");
    let out = w.rt(&["run", &id]).ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(map, ["0", &w.user.uid.to_string(), "1"], "{out}");
    let root = w.state_root();
    let mode = std::fs::metadata(&root).map(|m| m.permissions().mode() & 0o7777);
    assert_eq!(mode.ok(), Some(0o1700), "{}", root.display());
    if is_carte() {
        // carte says why the container has no cgroup (runc 1.1.5 ignores the permission error silently).
        assert!(out.stderr.contains("no cgroup"), "{out}");
    }
    w.assert_nothing_left(&id);
}

/// Without `$XDG_RUNTIME_DIR` the default root is the system one, which the user cannot write: an error naming
/// it, nothing made.
#[test]
fn without_xdg_runtime_dir_the_system_root_is_refused() {
    let Some(w) = world(&["true"]) else { return };
    let id = carte_tests::unique_id("rl-noxdg");
    let mut cmd = w
        .user
        .command(&w.bundle, &[], Path::new("env"), &["-u", "XDG_RUNTIME_DIR"]);
    cmd.arg(&w.bin).args(["run", &id]);
    let out = carte_tests::engines::run(cmd).fails();
    assert!(out.stderr.contains(&format!("/run/{}", rt_name())), "{out}");
    assert!(!Path::new("/run").join(rt_name()).join(&id).exists());
    w.assert_nothing_left(&id);
}

/// `run -d`, `exec` (a process in the container's namespaces, root there), `kill`, `delete`: the lifecycle an
/// engine drives, as the user.
#[test]
fn detached_exec_kill_delete_as_user() {
    let Some(w) = world(&["sleep", "300"]) else {
        return;
    };
    let id = carte_tests::unique_id("rl-life");
    w.rt(&["run", "-d", &id]).ok();
    assert_eq!(state_of(&w, &id), "running");
    assert!(w.state_root().join(&id).is_dir());
    let out = w
        .rt(&[
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/uid_map",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "{out}");
    assert_eq!(
        lines.get(1).map(|l| l.trim()),
        Some("sleep 300"),
        "exec must see the container's pid 1: {out}"
    );
    let code = w.rt(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(code.code(), 7, "{code}");
    w.kill_and_delete(&id);
    w.assert_nothing_left(&id);
}

/// Subordinate ids: a map beyond the caller's own id (its /etc/subuid range) is written by `newuidmap` and
/// `newgidmap`; the process runs as a subordinate id.
#[test]
fn subordinate_ids_map_through_newuidmap() {
    let Some(w) = world(&[
        "sh",
        "-c",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
    ]) else {
        return;
    };
    let (su, sg) = (w.user.subuid, w.user.subgid);
    let (uid, gid) = (w.user.uid, w.user.gid);
    w.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": uid, "size": 1},
            {"containerID": 1, "hostID": su.0, "size": su.1},
        ]);
        c["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": gid, "size": 1},
            {"containerID": 1, "hostID": sg.0, "size": sg.1},
        ]);
    });
    let id = carte_tests::unique_id("rl-sub");
    let out = w.rt(&["run", &id]).ok();
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    let (u, s, n) = (w.user.uid.to_string(), su.0.to_string(), su.1.to_string());
    let (g, gs, gn) = (w.user.gid.to_string(), sg.0.to_string(), sg.1.to_string());
    let want = [
        "1000", "1000", "0", &u, "1", "1", &s, &n, "0", &g, "1", "1", &gs, &gn,
    ];
    assert_eq!(words, want, "{out}");
    w.assert_nothing_left(&id);
}

/// A limit needs a cgroup; without one (v1: nothing delegated) the create fails, naming the limit, and leaves
/// nothing.
#[test]
fn limits_without_a_cgroup_are_refused() {
    let Some(w) = world(&["true"]) else { return };
    w.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 33554432}}));
    let id = carte_tests::unique_id("rl-limit");
    let out = w.rt(&["run", &id]).fails();
    // carte names the limit; runc 1.1.5 does on v1 ("cannot set memory limit"), and on v2 says "rootless needs
    // no limits + no cgrouppath when no permission is granted for cgroups".
    let named = out.stderr.contains("memory")
        || (!is_carte() && out.stderr.contains("rootless needs no limits"));
    assert!(named, "{out}");
    w.assert_nothing_left(&id);
}

/// Verbs that need the cgroup, on a container without one: `pause` and `update` fail for both runtimes. carte
/// finds the processes of `ps` and `kill --all` in the init's pid namespace instead; runc 1.1.5 has no cgroup
/// path to list ("lstat : no such file or directory") and fails both, leaving the container running.
#[test]
fn verbs_without_a_cgroup() {
    let Some(w) = world(&["sh", "-c", "sleep 301 & exec sleep 302"]) else {
        return;
    };
    let id = carte_tests::unique_id("rl-nocg");
    w.rt(&["run", "-d", &id]).ok();
    w.rt(&["pause", &id]).fails();
    w.rt(&["update", "--pids-limit", "10", &id]).fails();
    assert_eq!(state_of(&w, &id), "running");
    let ps = w.rt(&["ps", "--format", "json", &id]);
    let kill = w.rt(&["kill", "--all", &id, "KILL"]);
    if is_carte() {
        let n = ps.ok().json().as_array().map(Vec::len);
        assert_eq!(n, Some(2), "both sleeps");
        kill.ok();
        assert!(
            carte_tests::poll_until(Duration::from_secs(10), || state_of(&w, &id) == "stopped"),
            "still {}",
            state_of(&w, &id)
        );
    } else {
        ps.fails();
        kill.fails();
        assert_eq!(state_of(&w, &id), "running");
    }
    w.rt(&["delete", "--force", &id]).ok();
    w.assert_nothing_left(&id);
}

/// A subtree delegated to the user on a cgroup v2 host: D = `/sys/fs/cgroup/<user>-deleg`, its directory and
/// `cgroup.procs`, `cgroup.subtree_control`, `cgroup.threads` chowned (as systemd's `Delegate=yes` does), and
/// `D/launch`, the user's, where the runtime starts: moving the init from elsewhere would need write access to
/// the common ancestor's `cgroup.procs`. `None` (after saying so) on v1 and hybrid hosts, which delegate nothing.
struct Delegated {
    dir: PathBuf,
    launch: PathBuf,
}

impl Delegated {
    fn new(w: &World) -> Option<Delegated> {
        if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            eprintln!("skipped: needs a cgroup v2 host (tests/vm/run.sh rootless)");
            return None;
        }
        let dir = Path::new("/sys/fs/cgroup").join(format!("{}-deleg", w.user.name));
        let launch = dir.join("launch");
        for d in [&dir, &launch] {
            if let Err(e) = std::fs::create_dir(d) {
                panic!("mkdir {}: {e}", d.display());
            }
        }
        let owner = Some(nix::unistd::Uid::from_raw(w.user.uid));
        let group = Some(nix::unistd::Gid::from_raw(w.user.gid));
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            let p = dir.join(f);
            if let Err(e) = nix::unistd::chown(&p, owner, group) {
                panic!("chown {}: {e}", p.display());
            }
        }
        w.user.chown(&launch);
        Some(Delegated { dir, launch })
    }

    /// D's path below the hierarchy's root, as `/proc/PID/cgroup` shows it.
    fn cgroup(&self) -> String {
        let rel = self.dir.strip_prefix("/sys/fs/cgroup").unwrap_or(&self.dir);
        format!("/{}", rel.display())
    }

    /// The runtime as the user with `args`, started from `launch` by a shell that moves itself there first.
    #[track_caller]
    fn rt(&self, w: &World, args: &[&str]) -> Out {
        let argv = w.user.argv(&[], &w.bin, args);
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
            .arg(&self.launch)
            .args(&argv)
            .current_dir(&w.bundle);
        carte_tests::engines::run(cmd)
    }

    /// The container's cgroup `D/<id>` is gone; then `launch` and D are removed.
    #[track_caller]
    fn remove(self, id: &str) {
        let gone =
            carte_tests::poll_until(carte_tests::AUDIT_GRACE, || !self.dir.join(id).exists());
        assert!(gone, "{} left", self.dir.join(id).display());
        for d in [&self.launch, &self.dir] {
            let removed = carte_tests::poll_until(carte_tests::AUDIT_GRACE, || {
                std::fs::remove_dir(d).is_ok() || !d.exists()
            });
            assert!(removed, "rmdir {}", d.display());
        }
    }
}

/// On a cgroup v2 host, a subtree delegated to the user is used: the container's cgroup is made at its
/// `cgroupsPath` below it, with its limits, and the container sees it as its root.
/// Runs in the v2 guest (`tests/vm/run.sh rootless`); v1 and hybrid hosts have no delegation and skip it.
#[test]
fn delegated_v2_subtree_gets_limits() {
    let Some(w) = world(&["sh", "-c", "cat /sys/fs/cgroup/pids.max /proc/self/cgroup"]) else {
        return;
    };
    let Some(d) = Delegated::new(&w) else { return };
    let id = carte_tests::unique_id("rl-v2");
    w.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("{}/{id}", d.cgroup()));
        c["linux"]["resources"] = json!({"pids": {"limit": 20}});
    });
    let out = d.rt(&w, &["run", &id]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["20", "0::/"], "{out}");
    d.remove(&id);
    w.assert_nothing_left(&id);
}

/// runc's rule for a rootless runtime on cgroup v2 (opencontainers/cgroups `fs2/defaultpath.go`): a relative
/// `cgroupsPath` goes below the parent of the runtime's own cgroup — started in `D/launch`, the container is in
/// `D/<path>`, which the user may create and limit; `kill` and `delete` find it there, and `delete` removes it.
/// (Without a `cgroupsPath` the id is the relative path: rootless podman's case, tests/tests/rootless_podman.rs.)
#[test]
fn delegated_v2_relative_path_follows_runcs_rule() {
    let Some(w) = world(&["sleep", "300"]) else {
        return;
    };
    let Some(d) = Delegated::new(&w) else { return };
    let id = carte_tests::unique_id("rl-rel");
    w.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(id);
        c["linux"]["resources"] = json!({"pids": {"limit": 20}});
    });
    d.rt(&w, &["run", "-d", &id]).ok();
    let pid = w.rt(&["state", &id]).ok().json()["pid"]
        .as_i64()
        .unwrap_or(-1);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert_eq!(
        cg.trim(),
        format!("0::{}/{id}", d.cgroup()),
        "cgroup of the init (pid {pid})"
    );
    let max = std::fs::read_to_string(d.dir.join(&id).join("pids.max")).unwrap_or_default();
    assert_eq!(max.trim(), "20");
    w.kill_and_delete(&id);
    d.remove(&id);
    w.assert_nothing_left(&id);
}
