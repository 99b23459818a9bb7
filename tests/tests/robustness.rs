//! The runtime dying half-way: a `create` killed with SIGKILL must leave a container that `delete --force`
//! removes completely.

use carte_tests::*;
use std::path::Path;

/// Kills the hook's sleeper (recorded in `pid`) on drop, so the test never leaves it behind.
struct HookSleeper<'a>(&'a Path);

impl Drop for HookSleeper<'_> {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.0).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn sigkill_during_create_then_delete_force_cleans_up() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        // runc 1.1.5 leaves the container's cgroup directories behind in this case.
        eprintln!("skipped: runc 1.1.5 leaks cgroups when killed during create");
        return;
    }
    let id = ctx.id("killcreate");
    let flag = ctx.tempdir();
    let pid_file = flag.join("hook.pid");
    let _sleeper = HookSleeper(&pid_file);
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    // The createRuntime hook parks create after namespaces and cgroup exist; it records its pid first.
    b.hook(
        "createRuntime",
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("echo $$ > {}; exec sleep 1000", pid_file.display())]}),
    );
    b.write().ok();
    let call = match ctx.rt.spawn(
        &["create", &id, "--bundle", b.path_str()],
        Default::default(),
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    };
    let parked = poll_until(runtime::TIMEOUT, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    assert!(parked, "createRuntime hook never ran");
    let runtime_pid = nix::unistd::Pid::from_raw(call.pid() as i32);
    let _ = nix::sys::signal::kill(runtime_pid, nix::sys::signal::Signal::SIGKILL);
    let out = call.wait();
    assert_eq!(out.code(), 137, "{out}");
    drop(_sleeper);
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// A non-reaping parent: `sh -c '<create>; exec sleep 1000'` made a child subreaper, so the container's init
/// is re-parented to the sleep when the runtime exits and stays a zombie after it exits. Killed on drop.
struct Unreaper(std::process::Child);

impl Drop for Unreaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn state_is_stopped_while_the_init_is_an_unreaped_zombie() {
    use std::os::unix::process::CommandExt;
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("zombie");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.write().ok();
    let created = ctx.tempdir().join("created");
    let script = r#""$0" --root "$1" create "$2" --bundle "$3" && touch "$4"; exec sleep 1000"#;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg(ctx.rt.bin())
        .arg(ctx.rt.root())
        .arg(&id)
        .arg(b.path())
        .arg(&created)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: runs between fork and exec and only calls prctl, which is async-signal-safe; the subreaper
    // attribute survives execve, so the final `sleep` adopts (and never reaps) the orphaned init.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let parent = match cmd.spawn() {
        Ok(c) => Unreaper(c),
        Err(e) => panic!("spawn the subreaper shell: {e}"),
    };
    assert!(
        poll_until(runtime::TIMEOUT, || created.exists()),
        "create did not finish"
    );
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    ctx.rt.start(&id).ok();
    let zombie = poll_until(runtime::TIMEOUT, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    });
    assert!(zombie, "init {pid} never became a zombie");
    assert_eq!(ctx.rt.status(&id), "stopped");
    ctx.rt.delete(&id).ok();
    drop(parent);
    ctx.assert_no_leaks(&id);
}
