//! The container process: user, groups, umask, env, cwd, rlimits, oom_score_adj, hostname, domainname, sysctl,
//! preserved fds, and the console socket.

use carte_tests::console::{read_until_closed, ConsoleSocket};
use carte_tests::*;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The value of a `Key:` line of /proc/self/status output, whitespace-normalised.
fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[test]
fn user_groups_and_umask() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 23}),
    );
    let id = ctx.id("user");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "cat /proc/self/status; echo umask=$(umask); id -un",
    );
    assert_eq!(status_field(&out, "Uid"), "1000 1000 1000 1000", "{out}");
    assert_eq!(status_field(&out, "Gid"), "1000 1000 1000 1000", "{out}");
    let mut groups: Vec<String> = status_field(&out, "Groups")
        .split(' ')
        .map(str::to_string)
        .collect();
    groups.sort();
    assert_eq!(groups, ["10", "20"], "{out}");
    assert!(out.contains("umask=0027"), "{out}");
    assert_eq!(out.lines().last(), Some("user"), "{out}");
}

#[test]
fn env_and_cwd() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.env("CARTE_FOO=bar baz");
    b.env("EMPTY=");
    b.set("/process/cwd", json!("/home/user"));
    let id = ctx.id("envcwd");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "echo \"$CARTE_FOO\"; echo \"[$EMPTY]\"; pwd; echo $PATH",
    );
    assert_eq!(
        out,
        "bar baz\n[]\n/home/user\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[test]
fn missing_cwd_is_created() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.readonly_root(false);
    b.set("/process/cwd", json!("/does/not/exist/yet"));
    let id = ctx.id("newcwd");
    assert_eq!(ctx.rt.run_sh(&id, &mut b, "pwd"), "/does/not/exist/yet\n");
}

#[test]
fn rlimits_apply() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
            {"type": "RLIMIT_NPROC", "soft": 77, "hard": 88}
        ]),
    );
    let id = ctx.id("rlimits");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "ulimit -n; ulimit -Hn; grep -E 'open files|processes' /proc/self/limits",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("123"), "{out}");
    assert_eq!(lines.next(), Some("456"), "{out}");
    let limit = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l.split_whitespace()
                    .rev()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(limit("Max open files"), ["456", "123"], "{out}");
    assert_eq!(limit("Max processes"), ["88", "77"], "{out}");
}

#[test]
fn oom_score_adj_applies() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/process/oomScoreAdj", json!(523));
    let id = ctx.id("oom");
    assert_eq!(
        ctx.rt.run_sh(&id, &mut b, "cat /proc/self/oom_score_adj"),
        "523\n"
    );
}

#[test]
fn hostname_and_domainname() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/hostname", json!("carte-host"));
    b.set("/domainname", json!("carte.example"));
    let id = ctx.id("uts");
    let out = ctx
        .rt
        .run_sh(&id, &mut b, "hostname; cat /proc/sys/kernel/domainname");
    // runc 1.1.5 predates `domainname` support (added in runc 1.2) and leaves "(none)".
    let domain = if is_carte() {
        "carte.example"
    } else {
        "(none)"
    };
    assert_eq!(out, format!("carte-host\n{domain}\n"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_ne!(host.trim(), "carte-host");
}

#[test]
fn sysctl_applies_inside_only() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let want = if host_fwd.trim() == "1" { "0" } else { "1" };
    b.set(
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": want, "kernel.shm_rmid_forced": "1"}),
    );
    let id = ctx.id("sysctl");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced",
    );
    assert_eq!(out, format!("{want}\n1\n"));
    let after = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    assert_eq!(after, host_fwd, "the host's sysctl changed");
}

fn open_fd_with(ctx: &Ctx, text: &str) -> OwnedFd {
    let path = ctx.tempdir().join("preserved");
    std::fs::write(&path, text).ok();
    match std::fs::File::open(&path) {
        Ok(f) => f.into(),
        Err(e) => panic!("open {}: {e}", path.display()),
    }
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.sh("cat <&3; ls /proc/self/fd/4 2>/dev/null && echo fd4-open || echo fd4-closed");
    b.write().ok();
    let id = ctx.id("preserve");
    let opts = runtime::CallOpts {
        fds: vec![
            (open_fd_with(&ctx, "fd3-data\n"), 3),
            (open_fd_with(&ctx, "x"), 4),
        ],
        ..Default::default()
    };
    let out = ctx
        .rt
        .cmd_opts(
            &["run", &id, "--bundle", b.path_str(), "--preserve-fds", "1"],
            opts,
        )
        .ok();
    assert_eq!(out.stdout, "fd3-data\nfd4-closed\n");
}

#[test]
fn extra_fds_are_closed_without_preserve_fds() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.sh("ls /proc/self/fd/3 2>/dev/null && echo fd3-open || echo fd3-closed");
    b.write().ok();
    let id = ctx.id("nopreserve");
    let opts = runtime::CallOpts {
        fds: vec![(open_fd_with(&ctx, "x"), 3)],
        ..Default::default()
    };
    let out = ctx
        .rt
        .cmd_opts(&["run", &id, "--bundle", b.path_str()], opts)
        .ok();
    assert_eq!(out.stdout, "fd3-closed\n");
}

#[test]
fn console_socket_receives_the_pty_master() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    b.sh("echo hello-from-tty; [ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty");
    let sock = match ConsoleSocket::listen(&ctx.tempdir(), runtime::TIMEOUT) {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
    let id = ctx.id("console");
    ctx.rt
        .create(&id, &b, &["--console-socket", &sock.path_str()])
        .ok();
    let master = match sock.master() {
        Ok(m) => m,
        Err(e) => panic!("{e:#}"),
    };
    ctx.rt.start(&id).ok();
    let text = match read_until_closed(&master, Duration::from_secs(20)) {
        Ok(t) => t,
        Err(e) => panic!("{e:#}"),
    };
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines.first().copied(), Some("hello-from-tty"), "{text:?}");
    assert_eq!(lines.get(1).copied(), Some("is-a-tty"), "{text:?}");
    assert!(
        lines.get(2).is_some_and(|l| l.starts_with("/dev/pts/")),
        "{text:?}"
    );
    ctx.rt.wait_status(&id, "stopped");
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    let id = ctx.id("noconsole");
    ctx.rt.create(&id, &b, &[]).fails();
    ctx.assert_no_leaks(&id);
}

#[test]
fn no_new_keyring_is_accepted() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.sh("echo ok");
    let id = ctx.id("keyring");
    let out = ctx.rt.run(&id, &b, &["--no-new-keyring"]).ok();
    assert_eq!(out.stdout, "ok\n");
}

#[test]
fn only_stdio_is_open_in_the_container() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let id = ctx.id("fdleak");
    // The shell expands the glob itself; the only extra fd is the directory it is reading (3), closed again
    // afterwards. Anything more is a runtime fd leaked into the container (lock, fifo, sync socket, log, or
    // CVE-2024-21626's cgroup directory).
    let out = ctx.rt.run_sh(&id, &mut b, "cd /proc/self/fd && echo *");
    assert_eq!(out.trim(), "0 1 2 3", "{out}");
}
