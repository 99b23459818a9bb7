//! `checkpoint` and `restore` with what connects a container to its outside: a TCP connection over loopback in an
//! external network namespace (`--tcp-established`), stdio pipes handed over at restore, and stdio on the host's
//! /dev/null (which criu cannot dump, so the init reopens it inside). Helpers: carte_tests::criu.

use carte_tests::criu::*;
use carte_tests::*;
use std::process::Command;
use std::time::Duration;

/// A named network namespace (`ip netns add`) with its loopback up, removed on drop.
struct NetNs(String);

impl NetNs {
    fn add(name: &str) -> NetNs {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed (is iproute2 installed?)");
        let ns = NetNs(name.to_string());
        let up = Command::new("ip")
            .args(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(up, "bring lo up in {name}");
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// runc's "checkpoint and restore in external network namespace" with a connection: a server and a client in the
/// container talk over 127.0.0.1; the connection survives checkpoint and restore with `--tcp-established`. The
/// namespace is external (given by path), as an engine's is: criu neither dumps nor recreates it, and a
/// container-owned one comes back empty (runc's --empty-ns network, carte's too), without the loopback address.
#[test]
fn an_established_tcp_connection_survives() {
    let Some(ctx) = criu_ctx() else { return };
    let netns = NetNs::add(&unique_id("cr-ns"));
    let id = ctx.id("cr-tcp");
    let out = ctx.tempdir();
    let mut b = counter(&ctx, &id, &out);
    b.namespace("network", Some(&netns.path()));
    // The server writes what it receives to /out/count; the client sends 1, 2, 3… over one connection. The
    // server's stdin is a pipe that never ends, so it never closes its side.
    b.sh(
        "exec </dev/null >/dev/null 2>&1; sleep 100000 | nc -l -p 5000 > /out/count & \
          until cat /proc/net/tcp /proc/net/tcp6 | grep -q ':1388 [0-9A-F]*:0000 0A'; do sleep 0.05; done; \
          i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done | nc 127.0.0.1 5000",
    );
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    wait_count(&out, 3);
    let (images, work) = paths(&ctx);
    // Without --tcp-established criu refuses, and the container goes on.
    let refused = checkpoint(&ctx, &id, &images, &work, &[]).fails();
    assert!(!refused.stderr.is_empty(), "no reason given");
    assert_eq!(ctx.rt.status(&id), "running");
    checkpoint(&ctx, &id, &images, &work, &["--tcp-established"]).ok();
    assert!(
        !ctx.rt.cmd(&["state", &id]).success(),
        "{id} still exists after checkpoint"
    );
    let at_checkpoint = last(&out);
    restore(&ctx, &id, &b, &images, &work, &["--tcp-established"]).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    wait_count(&out, at_checkpoint + 3);
    assert_consecutive(&counts(&out));
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// Stdio that is the host's /dev/null (what an engine gives a detached container without stdin) is reopened on the
/// container's own /dev/null (runc's reOpenDevNull): an fd on a file of the host's mount namespace is one criu
/// cannot dump ("Can't lookup mount for fd"), which made `podman container checkpoint` fail.
#[test]
fn host_dev_null_stdio_is_reopened_inside() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("cr-null");
    let out = ctx.tempdir();
    let mut b = counter(&ctx, &id, &out);
    // Detached, fd 0 is the harness's /dev/null (a foreground runc gives its container pipes instead).
    b.sh("{ grep mnt_id /proc/self/fdinfo/0 | tr -dc 0-9; echo; grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f1; } \
          > /out/r.tmp; mv /out/r.tmp /out/r; sleep 100");
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let file = out.join("r");
    assert!(
        poll_until(Duration::from_secs(20), || file.exists()),
        "no result from {id}"
    );
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert!(!lines[0].is_empty(), "{text:?}");
    assert_eq!(
        lines[0], lines[1],
        "stdin is not on the container's /dev mount: {text:?}"
    );
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// runc's "checkpoint and restore" with pipes (`setup_pipes`): the container's stdio are pipes to the caller; at
/// restore the caller's new pipes replace them (descriptors.json, `--inherit-fd`), and the restored process reads
/// from and answers on those.
#[test]
fn stdio_pipes_are_handed_over() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-pipes");
    let mut b = ctx.bundle();
    b.sh("while read x; do echo ponG $x; done");
    b.cgroups_path(&cgroup_of(&id));
    b.write().expect("write config.json");
    let stdio = |input: &std::os::fd::OwnedFd, output: &std::os::fd::OwnedFd| runtime::CallOpts {
        fds: vec![
            (input.try_clone().expect("dup"), 0),
            (output.try_clone().expect("dup"), 1),
            (output.try_clone().expect("dup"), 2),
        ],
        ..Default::default()
    };
    let (in_r, in_w) = nix::unistd::pipe().expect("pipe");
    let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
    let bundle = b.path_str().to_string();
    ctx.rt
        .cmd_opts(
            &["run", "-d", "--bundle", &bundle, &id],
            stdio(&in_r, &out_w),
        )
        .ok();
    assert_eq!(ctx.rt.status(&id), "running");
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &[]).ok();
    let saved = std::fs::read_to_string(images.join("descriptors.json")).unwrap_or_default();
    assert!(saved.contains("pipe:"), "descriptors.json: {saved}");
    drop((in_r, in_w, out_r, out_w));

    let (in_r, in_w) = nix::unistd::pipe().expect("pipe");
    let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
    let (i, w) = (images.display().to_string(), work.display().to_string());
    ctx.rt
        .cmd_opts(
            &[
                "restore",
                "-d",
                "--image-path",
                &i,
                "--work-path",
                &w,
                "--bundle",
                &bundle,
                &id,
            ],
            stdio(&in_r, &out_w),
        )
        .ok();
    assert_eq!(ctx.rt.status(&id), "running");
    drop((in_r, out_w));
    let mut input = std::fs::File::from(in_w);
    std::io::Write::write_all(&mut input, b"Ping\n").expect("write to the container");
    drop(input);
    // The loop ends at EOF on its new stdin, and the container with it: its new stdout then closes.
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(out_r), &mut answer)
        .expect("read the container");
    assert_eq!(answer.trim(), "ponG Ping");
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// A container with a terminal (runc's "checkpoint and restore (with --console-socket)"): at restore criu makes a
/// new pty and hands its master to the runtime (criu's orphan-pts-master, an RPC notification), which sends it to
/// the restore's `--console-socket`. The shell on the terminal keeps its memory (it numbers the lines it reads)
/// and answers on the new master.
#[test]
fn a_terminal_container_gets_a_new_console() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-tty");
    let mut b = ctx.bundle();
    b.sh("i=0; while read l; do i=$((i+1)); echo \"got $l $i\"; done");
    b.set("/process/terminal", serde_json::json!(true));
    b.cgroups_path(&format!("/carte-test/{id}"));
    let sock = console::ConsoleSocket::listen(&ctx.tempdir(), Duration::from_secs(20))
        .expect("console socket");
    ctx.rt
        .run(&id, &b, &["--detach", "--console-socket", &sock.path_str()])
        .ok();
    let master = sock.master().expect("pty master");
    nix::unistd::write(&master, b"one\n").expect("write to the pty");
    console::read_until(&master, "got one 1", Duration::from_secs(20)).expect("the shell answers");
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &[]).ok();
    drop(master);
    let sock = console::ConsoleSocket::listen(&ctx.tempdir(), Duration::from_secs(20))
        .expect("console socket");
    restore(
        &ctx,
        &id,
        &b,
        &images,
        &work,
        &["--console-socket", &sock.path_str()],
    )
    .ok();
    let master = sock.master().expect("pty master after restore");
    assert_eq!(ctx.rt.status(&id), "running");
    nix::unistd::write(&master, b"two\n").expect("write to the new pty");
    console::read_until(&master, "got two 2", Duration::from_secs(20))
        .expect("the restored shell answers on the new pty, counting on");
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

/// Without `--console-socket` nobody would hold the new terminal: carte refuses before criu runs (runc 1.1.5
/// refuses a detached one too), in one line, and leaves nothing.
#[test]
fn a_terminal_restore_without_console_socket_is_refused() {
    let Some(ctx) = criu_ctx() else { return };
    let id = ctx.id("cr-tty-none");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.set("/process/terminal", serde_json::json!(true));
    b.cgroups_path(&format!("/carte-test/{id}"));
    let (images, work) = paths(&ctx);
    std::fs::create_dir_all(&images).expect("mkdir images");
    let out = restore(&ctx, &id, &b, &images, &work, &[]).fails();
    assert!(out.stderr.contains("console"), "{out}");
    assert!(
        !ctx.rt.cmd(&["state", &id]).success(),
        "{id} exists after a refused restore"
    );
    ctx.assert_no_leaks(&id);
}

/// A restore killed while criu ran leaves the rootfs bound in the container's state directory (`criu-root`, as
/// runc names it); `delete --force` detaches it before removing that directory, so the rootfs's files survive
/// and no mount is left. Carte only: runc 1.1.5 removes its state directory with os.RemoveAll, which walks
/// through such a mount into the rootfs.
#[test]
fn delete_after_an_interrupted_restore_spares_the_rootfs() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        return;
    }
    let id = ctx.id("cr-killed");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    b.cgroups_path(&format!("/carte-test/{id}"));
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    // What an interrupted restore leaves: the rootfs bound at ROOT/ID/criu-root.
    let bind = ctx.rt.root().join(&id).join("criu-root");
    std::fs::create_dir(&bind).expect("mkdir criu-root");
    let ok = Command::new("mount")
        .args([
            "--rbind",
            &b.rootfs().display().to_string(),
            &bind.display().to_string(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "bind the rootfs at {}", bind.display());
    ctx.rt.delete_force(&id).ok();
    assert!(
        b.rootfs().join("bin/busybox").exists(),
        "delete removed the rootfs's files through criu-root"
    );
    ctx.assert_no_leaks(&id);
}
