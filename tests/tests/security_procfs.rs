//! No fresh, unmasked procfs for the container (issue 14). The kernel lets a process mount procfs or
//! sysfs only where a full one is already visible in its mount namespace without anything mounted
//! over part of it; the container's own /proc has its masked paths mounted over, so it never
//! qualifies. These tests cover the ways around that: the host's procfs left reachable under a
//! `--no-pivot` chroot, and a `/proc` that is a symlink in the image. Each runs against carte and runc.

use carte_tests::*;

/// runc's `tests/integration/no_pivot.bats`: with `--no-pivot` the host's procfs stays in the
/// container's mount namespace (outside the chroot), and a nested user namespace could mount a
/// fresh procfs on the strength of it, without the masked paths. The runtime must hide the host's
/// full procfs and sysfs mounts before the chroot, so the mount is refused.
#[test]
fn no_pivot_does_not_let_a_nested_user_namespace_mount_procfs() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    // Mapping uid 0 in the nested user namespace needs CAP_SETFCAP (Linux ≥ 5.12).
    for set in ["bounding", "permitted", "effective"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SETFCAP"),
        );
    }
    b.args(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc 2>/dev/null && echo mounted || echo refused; \
         mount -t sysfs none /sys 2>/dev/null && echo mounted || echo refused",
    ]);
    let id = ctx.id("nopivproc");
    let out = ctx.rt.run(&id, &b, &["--no-pivot"]).ok();
    assert_eq!(
        out.stdout, "refused\nrefused\n",
        "a nested user namespace mounted procfs or sysfs: {out}"
    );
    ctx.assert_no_leaks(&id);
}

/// The same nested mount, without `--no-pivot`, is refused as well (the container's /proc is
/// partly covered by its masked paths): the control for the test above.
#[test]
fn pivot_root_does_not_let_a_nested_user_namespace_mount_procfs() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    for set in ["bounding", "permitted", "effective"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SETFCAP"),
        );
    }
    b.args(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc 2>/dev/null && echo mounted || echo refused",
    ]);
    let id = ctx.id("pivproc");
    let out = ctx.rt.run(&id, &b, &[]).ok();
    assert_eq!(out.stdout, "refused\n", "{out}");
    ctx.assert_no_leaks(&id);
}

/// An image whose `/proc` (or `/sys`) is a symlink must not get procfs mounted where the link
/// points, where the masked paths would not be applied: refused, as runc refuses since its fix
/// ("must be mounted on ordinary directory").
#[test]
fn proc_or_sys_as_a_symlink_in_the_image_is_refused() {
    let Some(ctx) = Ctx::new() else { return };
    for (dir, typ) in [("proc", "proc"), ("sys", "sysfs")] {
        let mut b = ctx.bundle();
        let root = b.rootfs();
        std::fs::create_dir_all(root.join("elsewhere")).expect("mkdir");
        let _ = std::fs::remove_dir(root.join(dir));
        std::os::unix::fs::symlink("/elsewhere", root.join(dir)).expect("symlink");
        b.args(&["true"]);
        let id = ctx.id(&format!("{dir}link"));
        let out = ctx.rt.create(&id, &b, &[]).fails();
        if is_carte() {
            assert!(
                out.stderr.contains(&format!("/{dir}")) && out.stderr.contains(typ),
                "{out}"
            );
        }
        let inside: Vec<_> = std::fs::read_dir(root.join("elsewhere"))
            .expect("read")
            .collect();
        assert!(inside.is_empty(), "{typ} was mounted through the symlink");
        ctx.assert_no_leaks(&id);
    }
}

/// A bind mount over a file below /proc (here: another process's oom_score_adj over the sysctl the
/// config sets) is refused, as runc's `checkProcMount` does: only the files lxcfs emulates may be
/// mounted over.
#[test]
fn a_bind_over_a_proc_file_is_refused() {
    let Some(ctx) = Ctx::new() else { return };
    let helper = Helper::start();
    let before = helper.oom_score_adj();
    let mut b = ctx.bundle();
    b.set("/linux/sysctl", json!({"kernel.domainname": "500"}));
    b.mount(
        json!({"destination": "/proc/sys/kernel/domainname", "type": "bind",
                   "source": format!("/proc/{}/oom_score_adj", helper.pid()), "options": ["bind"]}),
    );
    b.args(&["true"]);
    let id = ctx.id("procbind");
    ctx.rt.create(&id, &b, &[]).fails();
    assert_eq!(
        helper.oom_score_adj(),
        before,
        "the redirected write landed"
    );
    ctx.assert_no_leaks(&id);
}

/// CVE-2025-52881: the runtime's own write to `/proc/sys/...` (or `/proc/self/attr/...`) is
/// redirected, mid-create, to another procfs file by something with a hand in the container's
/// mount namespace (in the advisory a second container through a shared mount; here a
/// createContainer hook, which runs in the container's mount namespace after its mounts and
/// before the sysctls are written). A check that the opened file is on procfs passes, because the
/// redirect target is a real procfs file. The runtime must write through a private procfs, so the
/// value reaches the container's own sysctl and nothing else.
#[test]
fn a_sysctl_write_cannot_be_redirected_to_another_procfs_file() {
    let Some(ctx) = Ctx::new() else { return };
    let helper = Helper::start();
    let before = helper.oom_score_adj();
    assert_ne!(before, "500");
    let mut b = ctx.bundle();
    let target = b.rootfs().join("proc/sys/kernel/domainname");
    b.set("/linux/sysctl", json!({"kernel.domainname": "500"}));
    b.remove("/linux/readonlyPaths");
    b.hook(
        "createContainer",
        json!({"path": "/bin/busybox", "args": ["busybox", "mount", "--bind",
               format!("/proc/{}/oom_score_adj", helper.pid()), target.display().to_string()]}),
    );
    b.args(&["true"]);
    let id = ctx.id("procredir");
    let out = ctx.rt.run(&id, &b, &[]);
    assert_eq!(
        helper.oom_score_adj(),
        before,
        "the sysctl write was redirected to another process's oom_score_adj: {out}"
    );
    out.ok();
    ctx.assert_no_leaks(&id);
}

/// CVE-2025-52565: `/dev/console` made a symlink to a procfs file (here by a createContainer hook, as a
/// racing container could) before the runtime binds the pty there. The bind must never land on the
/// procfs file: carte refuses a console target that is not a file of the container's own /dev (before,
/// it bound the pty over the container's /proc/sysrq-trigger).
#[test]
fn the_console_is_never_bound_through_a_dev_console_symlink() {
    use carte_tests::console::ConsoleSocket;
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let link = b.rootfs().join("dev/console");
    b.set("/process/terminal", json!(true));
    b.hook(
        "createContainer",
        json!({"path": "/bin/busybox", "args": ["busybox", "ln", "-sf", "/proc/sysrq-trigger",
               link.display().to_string()]}),
    );
    b.sh("stat -c %F /proc/sysrq-trigger");
    let sock_dir = ctx.tempdir();
    let sock =
        ConsoleSocket::listen(&sock_dir, runtime::TIMEOUT).unwrap_or_else(|e| panic!("{e:#}"));
    let id = ctx.id("consolelink");
    let out = ctx
        .rt
        .create(&id, &b, &["--console-socket", &sock.path_str()])
        .fails();
    // runc 1.1.5 fails too ("open /dev/console: no such file or directory").
    if is_carte() {
        assert!(out.stderr.contains("/dev/console"), "{out}");
    }
    ctx.assert_no_leaks(&id);
}

/// A process of the test's own whose procfs files the attacks aim at; killed on drop.
struct Helper(std::process::Child);

impl Helper {
    fn start() -> Helper {
        match std::process::Command::new("/bin/busybox")
            .args(["sleep", "1000"])
            .spawn()
        {
            Ok(c) => Helper(c),
            Err(e) => panic!("start busybox sleep: {e}"),
        }
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn oom_score_adj(&self) -> String {
        let p = format!("/proc/{}/oom_score_adj", self.pid());
        std::fs::read_to_string(&p)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| panic!("read {p}: {e}"))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
