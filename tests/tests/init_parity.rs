//! The container init behaving like runc on configs engines really send: seccomp as the very last
//! step, user-namespace bind sources and cwd, the pty's owner, read-only /dev, devices outside /dev,
//! no mount namespace, the session keyring and bidirectional mount propagation.

use carte_tests::console::{read_until_closed, ConsoleSocket};
use carte_tests::mountinfo;
use carte_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What static busybox `echo` and `true` call (strace of `busybox echo hi`), plus execve: the last
/// syscall a runtime may make under the filter.
const ECHO_SYSCALLS: &[&str] = &[
    "execve",
    "brk",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "readlink",
    "getrandom",
    "mprotect",
    "prctl",
    "getuid",
    "write",
    "exit_group",
    "exit",
];

/// An allow-list profile: `allowed` and nothing else (EPERM for the rest).
fn allow_only(allowed: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    })
}

/// A deny-list profile: everything but close_range.
fn deny_close_range() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

#[test]
fn seccomp_allowing_only_the_program_and_execve_runs_it() {
    let Some(ctx) = Ctx::new() else { return };
    for nnp in [true, false] {
        let mut b = ctx.bundle();
        b.args(&["echo", "under-seccomp"]);
        b.set("/process/noNewPrivileges", json!(nnp));
        b.set("/linux/seccomp", allow_only(ECHO_SYSCALLS));
        let id = ctx.id(if nnp { "scmpnnp" } else { "scmpcap" });
        let out = ctx.rt.run(&id, &b, &[]);
        if is_carte() {
            assert!(out.success(), "noNewPrivileges {nnp}: {out}");
            assert_eq!(
                out.stdout, "under-seccomp\n",
                "noNewPrivileges {nnp}: {out}"
            );
        } else {
            // runc 1.1.5 still works after loading the filter (the exec fifo, its Go runtime; without
            // noNewPrivileges the user and capability changes too), so this profile kills its init.
            assert!(
                !out.success(),
                "runc 1.1.5 with noNewPrivileges {nnp}: {out}"
            );
            assert!(!out.stdout.contains("under-seccomp"), "{out}");
        }
    }
}

#[test]
fn seccomp_denying_close_range_does_not_break_start() {
    let Some(ctx) = Ctx::new() else { return };
    for nnp in [true, false] {
        let mut b = ctx.bundle();
        let out_dir = ctx.tempdir();
        b.mount(
            json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["bind"]}),
        );
        b.sh("echo started > /out/log");
        b.set("/process/noNewPrivileges", json!(nnp));
        b.set("/linux/seccomp", deny_close_range());
        let id = ctx.id(if nnp { "crnnp" } else { "crcap" });
        ctx.rt.create(&id, &b, &[]).ok();
        ctx.rt.start(&id).ok();
        ctx.rt.wait_status(&id, "stopped");
        assert_eq!(
            std::fs::read_to_string(out_dir.join("log")).unwrap_or_default(),
            "started\n",
            "noNewPrivileges {nnp}: the process never ran"
        );
    }
}

#[test]
fn exec_under_a_profile_denying_close_range() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.args(&["sleep", "60"]);
    b.set("/linux/seccomp", deny_close_range());
    let id = ctx.id("crexec");
    ctx.rt.create(&id, &b, &[]).ok();
    ctx.rt.start(&id).ok();
    let out = ctx.rt.cmd(&["exec", &id, "echo", "exec-ran"]).ok();
    assert_eq!(out.stdout, "exec-ran\n");
    ctx.rt.kill(&id, "KILL").ok();
}

/// The user-namespace config the namespaces tests use: root mapped to 100000, and /sys bound
/// (a fresh sysfs needs the network namespace's owner).
fn userns(b: &mut Bundle) {
    b.namespace("user", None);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.remove_mount("/sys/fs/cgroup");
    b.remove_mount("/sys");
    b.mount(json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}));
}

#[test]
fn userns_bind_source_only_host_root_can_reach() {
    let Some(ctx) = Ctx::new() else { return };
    let locked = ctx.tempdir().join("locked");
    let src = locked.join("src");
    std::fs::create_dir_all(&src).ok();
    std::fs::write(src.join("file"), "behind-0700").ok();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).ok();
    let mut b = ctx.bundle();
    // The mount point exists: the rootfs belongs to host root, which the namespace does not map.
    std::fs::create_dir_all(b.rootfs().join("mnt/src")).ok();
    userns(&mut b);
    b.mount(json!({"destination": "/mnt/src", "type": "bind", "source": src, "options": ["rbind", "ro"]}));
    let id = ctx.id("usrcsrc");
    let out = ctx.rt.run_sh(&id, &mut b, "cat /mnt/src/file");
    assert_eq!(out, "behind-0700");
}

#[test]
fn cwd_only_root_can_enter_works_for_another_user() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let dir = b.rootfs().join("secret");
    std::fs::create_dir_all(&dir).ok();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok();
    b.set("/process/user", json!({"uid": 42, "gid": 42}));
    b.set("/process/cwd", json!("/secret"));
    let id = ctx.id("cwdroot");
    let out = ctx.rt.run_sh(&id, &mut b, "pwd; id -u");
    assert_eq!(out, "/secret\n42\n");
}

/// `stat` of the process's terminal, as `uid:gid`, read from the pty master the socket received.
const PTY_OWNER: &str = "stat -L -c %u:%g /proc/self/fd/0";

#[test]
fn pty_belongs_to_the_process_user_for_run_and_exec() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    b.set("/process/user", json!({"uid": 42, "gid": 42}));
    b.sh(&format!("{PTY_OWNER}; sleep 60"));
    let id = ctx.id("ptyown");
    let sock_dir = ctx.tempdir();
    let sock = match ConsoleSocket::listen(&sock_dir, runtime::TIMEOUT) {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
    let sock_path = sock.path_str();
    ctx.rt
        .run(&id, &b, &["-d", "--console-socket", &sock_path])
        .ok();
    let master = match sock.master() {
        Ok(m) => m,
        Err(e) => panic!("{e:#}"),
    };
    let first = read_line(&master);
    // devpts's gid=5 (tty) stays; the uid is the process's.
    assert_eq!(first, "42:5", "run: pty owner");
    let exec_dir = ctx.tempdir();
    let exec_sock = match ConsoleSocket::listen(&exec_dir, runtime::TIMEOUT) {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
    let exec_path = exec_sock.path_str();
    ctx.rt
        .cmd(&[
            "exec",
            "-d",
            "-t",
            "--console-socket",
            &exec_path,
            "--user",
            "43:43",
            &id,
            "sh",
            "-c",
            PTY_OWNER,
        ])
        .ok();
    let exec_master = match exec_sock.master() {
        Ok(m) => m,
        Err(e) => panic!("{e:#}"),
    };
    let text = read_until_closed(&exec_master, runtime::TIMEOUT).unwrap_or_default();
    assert_eq!(text.trim(), "43:5", "exec: pty owner");
    ctx.rt.kill(&id, "KILL").ok();
}

/// The first line the container writes on its pty.
fn read_line(master: &std::os::fd::OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    let mut got = Vec::new();
    let ok = poll_until(runtime::TIMEOUT, || {
        let mut buf = [0u8; 256];
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u16)).unwrap_or(0) > 0 {
            if let Ok(n) = nix::unistd::read(master.as_raw_fd(), &mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        got.contains(&b'\n')
    });
    assert!(
        ok,
        "no line on the pty: {:?}",
        String::from_utf8_lossy(&got)
    );
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_string()
}

#[test]
fn read_only_dev_gets_its_submounts_and_devices() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let mut mounts = b.config()["mounts"].clone();
    if let Some(dev) = mounts.as_array_mut().and_then(|m| m.get_mut(1)) {
        assert_eq!(dev["destination"], "/dev");
        dev["options"] = json!(["nosuid", "strictatime", "mode=755", "size=65536k", "ro"]);
    }
    b.set("/mounts", mounts);
    let id = ctx.id("rodev");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "touch /dev/x 2>/dev/null && echo wrote || echo denied; \
         test -e /dev/pts/ptmx && echo pts; echo x > /dev/null && echo null; \
         touch /dev/shm/x && echo shm; grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f6",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..4], ["denied", "pts", "null", "shm"], "{out}");
    assert!(
        lines
            .get(4)
            .is_some_and(|o| o.split(',').any(|w| w == "ro")),
        "/dev is not read-only: {out}"
    );
}

#[test]
fn device_outside_dev_is_created_in_the_rootfs() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.push(
        "/linux/devices",
        json!({"path": "/opt/devs/mynull", "type": "c", "major": 1, "minor": 3,
               "fileMode": 438, "uid": 0, "gid": 0}),
    );
    let id = ctx.id("devout");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "stat -c '%F %t:%T' /opt/devs/mynull; echo x > /opt/devs/mynull && echo wrote",
    );
    assert_eq!(out, "character special file 1:3\nwrote\n");
}

/// The host's mountinfo lines whose mount point is under `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo::parse(&text)
        .into_iter()
        .filter(|m| Path::new(&m.mount_point).starts_with(dir))
        .map(|m| m.mount_point)
        .collect()
}

/// The host's root mount line, which carries its propagation.
fn host_root_line() -> String {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .map(|l| l.split(" - ").next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// A config without a mount namespace (and so without masked or read-only paths, which runc
/// refuses then) running `echo`, with `mounts` as given.
fn no_mount_ns_bundle(ctx: &Ctx, mounts: Value) -> Bundle {
    let mut b = ctx.bundle();
    b.remove_namespace("mount");
    b.set("/mounts", mounts);
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    b.readonly_root(false);
    b.args(&["echo", "shared-mnt-ns"]);
    b
}

/// Unmounts what runc 1.1.5 leaves under `dir`, so the leak audit checks the rest.
fn unmount_under(dir: &Path) {
    for m in host_mounts_under(dir).iter().rev() {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn no_mount_namespace_runs_in_the_runtimes_mount_table() {
    let Some(ctx) = Ctx::new() else { return };
    let root_before = host_root_line();
    // Nothing to mount: carte chroots into the rootfs and runs it, changing no mount.
    let b = no_mount_ns_bundle(&ctx, json!([]));
    let id = ctx.id("nomntns");
    let out = ctx.rt.run(&id, &b, &[]);
    if is_carte() {
        assert_eq!(out.ok().stdout, "shared-mnt-ns\n");
        // An exec'd process gets the init's root too: a file only the rootfs has.
        let mut b2 = no_mount_ns_bundle(&ctx, json!([]));
        std::fs::write(b2.rootfs().join("only-in-rootfs"), "rootfs\n").ok();
        b2.args(&["sleep", "60"]);
        let sid = ctx.id("nomntexec");
        ctx.rt.run(&sid, &b2, &["-d"]).ok();
        let cat = ctx.rt.cmd(&["exec", &sid, "cat", "/only-in-rootfs"]).ok();
        assert_eq!(cat.stdout, "rootfs\n");
        ctx.rt.cmd(&["delete", "--force", &sid]).ok();
    } else {
        // runc 1.1.5 reads /proc/self/fd after its chroot: without a /proc mount its init fails.
        assert!(
            !out.success() && out.stderr.contains("/proc/self/fd"),
            "{out}"
        );
    }
    ctx.rt.cmd(&["delete", "--force", &id]);
    let left = host_mounts_under(b.path());
    unmount_under(b.path());
    if is_carte() {
        assert!(left.is_empty(), "mounts left on the host: {left:?}");
    } else {
        assert_eq!(left.len(), 1, "runc 1.1.5 leaves its rootfs bind: {left:?}");
    }
    // `mounts` go into the host's own table, below the rootfs: carte makes them and `delete` takes
    // them away (runtime.md: delete MUST undo what create made); runc 1.1.5 makes them (and binds the
    // rootfs on itself, prepareRoot) and never removes them.
    let b = no_mount_ns_bundle(
        &ctx,
        json!([{"destination": "/proc", "type": "proc", "source": "proc"}]),
    );
    let id = ctx.id("nomntproc");
    let out = ctx.rt.run(&id, &b, &[]);
    assert_eq!(out.ok().stdout, "shared-mnt-ns\n");
    ctx.rt.cmd(&["delete", "--force", &id]);
    let left = host_mounts_under(b.path());
    unmount_under(b.path());
    if is_carte() {
        assert!(left.is_empty(), "mounts left on the host: {left:?}");
        ctx.assert_no_leaks(&id);
    } else {
        assert_eq!(
            left.len(),
            2,
            "runc 1.1.5 leaves the rootfs and /proc: {left:?}"
        );
    }
    assert_eq!(host_root_line(), root_before, "the host's / changed");
}

/// `_ses.<id>` keyrings the process can see.
const KEYRING_PROBE: &str = "grep -c \"_ses.$CT_ID\\$\\|_ses.$CT_ID:\" /proc/keys || true";

#[test]
fn session_keyring_is_the_containers_own_unless_no_new_keyring() {
    let Some(ctx) = Ctx::new() else { return };
    for (flag, want) in [(None, "1"), (Some("--no-new-keyring"), "0")] {
        let mut b = ctx.bundle();
        // /proc/keys is masked by default: unmasked here to look at the keyrings.
        b.set(
            "/linux/maskedPaths",
            json!(["/proc/kcore", "/proc/timer_list", "/sys/firmware"]),
        );
        let id = ctx.id("keys");
        b.env(&format!("CT_ID={id}"));
        b.sh(KEYRING_PROBE);
        let extra: Vec<&str> = flag.into_iter().collect();
        let out = ctx.rt.run(&id, &b, &extra).ok();
        assert_eq!(out.stdout.trim(), want, "{flag:?}: {out}");
    }
}

/// A tmpfs mounted on the host and unmounted (with what is below it) on drop; declare it after
/// the `Ctx` so it goes before the leak audit.
struct HostMount(PathBuf);

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0.join("inner"), nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn rshared_volume_propagates_back_to_the_host() {
    let Some(ctx) = Ctx::new() else { return };
    let vol = ctx.tempdir().join("vol");
    std::fs::create_dir_all(&vol).ok();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&vol)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("mount")
            .arg("--make-shared")
            .arg(&vol)
            .status()
            .is_ok_and(|s| s.success());
    let _guard = HostMount(vol.clone());
    assert!(ok, "shared tmpfs on {}", vol.display());
    std::fs::create_dir_all(vol.join("inner")).ok();
    let mut b = ctx.bundle();
    // What containerd sends for a Kubernetes Bidirectional mount.
    b.set("/linux/rootfsPropagation", json!("rshared"));
    b.mount(json!({"destination": "/mnt/vol", "type": "bind", "source": vol, "options": ["rbind", "rshared"]}));
    let caps = json!(["CAP_SYS_ADMIN"]);
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), caps.clone());
    }
    let id = ctx.id("bidir");
    ctx.rt.run_sh(
        &id,
        &mut b,
        "mount -t tmpfs -o size=1m tmpfs /mnt/vol/inner && echo in > /mnt/vol/inner/marker",
    );
    let inner = vol.join("inner");
    let seen = host_mounts_under(&inner);
    assert_eq!(
        seen.len(),
        1,
        "the container's mount did not reach the host"
    );
    assert_eq!(
        std::fs::read_to_string(inner.join("marker")).unwrap_or_default(),
        "in\n"
    );
}
