//! `checkpoint` and `restore` with criu, the scenarios of runc's checkpoint.bats: a counting process goes on
//! counting from where it was, `--leave-running` keeps the original, a checkpoint restored under a new id (in its
//! own cgroup, with its bind mount taken from the new bundle), a TCP connection over loopback inside an external
//! network namespace (`--tcp-established`), and the statuses that cannot be checkpointed.
//!
//! The container's stdio are redirected inside it to its own /dev/null: the harness gives a detached container
//! unlinked host files, which criu cannot dump (runc's bats tests use pipes or a console for the same reason).
//! Every test needs a `criu` that works on this kernel (tests/setup.sh installs one) and is skipped without.

use carte_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Whether `criu check` passes here; says why not otherwise.
fn criu_ready() -> bool {
    let out = Command::new("criu").arg("check").output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: `criu check` fails on this kernel: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: no criu ({e}); tests/setup.sh installs it");
            false
        }
    }
}

fn cgroup_of(id: &str) -> String {
    format!("/carte-test/{id}")
}

/// A loop that appends 1, 2, 3… to /out/count every 0.1 s; /out is a bind mount of `out`.
fn counter(ctx: &Ctx, id: &str, out: &Path) -> Bundle {
    let mut b = ctx.bundle();
    b.sh("exec </dev/null >/dev/null 2>&1; i=0; while true; do i=$((i+1)); echo $i >> /out/count; sleep 0.1; done");
    b.cgroups_path(&cgroup_of(id));
    b.mount(serde_json::json!({
        "destination": "/out", "type": "bind", "source": out.display().to_string(), "options": ["rbind", "rw"]
    }));
    b
}

/// The numbers written so far (a line being written is left out).
fn counts(out: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(out.join("count")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn last(out: &Path) -> u64 {
    counts(out).last().copied().unwrap_or(0)
}

/// Waits until the counter in `out` has reached `n`.
#[track_caller]
fn wait_count(out: &Path, n: u64) {
    let ok = poll_until(Duration::from_secs(20), || last(out) >= n);
    assert!(
        ok,
        "the counter in {} did not reach {n}: {:?}",
        out.display(),
        counts(out)
    );
}

/// Each number is the previous one plus one: the process went on with its memory, it did not start again.
#[track_caller]
fn assert_consecutive(v: &[u64]) {
    for w in v.windows(2) {
        assert_eq!(w[1], w[0] + 1, "the count jumped or restarted: {v:?}");
    }
}

fn init_pid(ctx: &Ctx, id: &str) -> i64 {
    let s = ctx.rt.state(id);
    match s["pid"].as_i64() {
        Some(p) if p > 0 => p,
        _ => panic!("state of {id} has no pid: {s}"),
    }
}

fn cgroup_line(pid: i64, controller: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find(|l| l.split(':').nth(1) == Some(controller))
        .unwrap_or_default()
        .to_string()
}

fn paths(ctx: &Ctx) -> (PathBuf, PathBuf) {
    let d = ctx.tempdir();
    (d.join("images"), d.join("work"))
}

fn checkpoint(ctx: &Ctx, id: &str, images: &Path, work: &Path, extra: &[&str]) -> Out {
    let (i, w) = (images.display().to_string(), work.display().to_string());
    let mut args = vec!["checkpoint", "--image-path", &i, "--work-path", &w];
    args.extend_from_slice(extra);
    args.push(id);
    ctx.rt.cmd(&args)
}

fn restore(ctx: &Ctx, id: &str, b: &Bundle, images: &Path, work: &Path, extra: &[&str]) -> Out {
    b.write().expect("write config.json");
    let (i, w) = (images.display().to_string(), work.display().to_string());
    let mut args = vec![
        "restore",
        "-d",
        "--image-path",
        &i,
        "--work-path",
        &w,
        "--bundle",
        b.path_str(),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    ctx.rt.cmd(&args)
}

#[test]
fn a_restored_counter_counts_on() {
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
    let id = ctx.id("cr-count");
    let out = ctx.tempdir();
    let b = counter(&ctx, &id, &out);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    wait_count(&out, 3);
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &[]).ok();
    // runc removes a checkpointed container: its id is free for the restore.
    assert!(
        !ctx.rt.cmd(&["state", &id]).success(),
        "{id} still exists after checkpoint"
    );
    let at_checkpoint = last(&out);
    assert!(
        images.join("descriptors.json").exists(),
        "no descriptors.json in the images"
    );
    restore(&ctx, &id, &b, &images, &work, &[]).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    let pid = init_pid(&ctx, &id);
    assert!(
        cgroup_line(pid, "memory").ends_with(&cgroup_of(&id)),
        "restored init is not in {}: {}",
        cgroup_of(&id),
        cgroup_line(pid, "memory")
    );
    wait_count(&out, at_checkpoint + 3);
    assert_consecutive(&counts(&out));
    // kill and delete treat it as any container.
    ctx.rt.kill(&id, "KILL").ok();
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete(&id).ok();
    ctx.assert_no_leaks(&id);
}

#[test]
fn leave_running_then_restore_under_a_new_id() {
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
    let id = ctx.id("cr-orig");
    let out = ctx.tempdir();
    let mut b = counter(&ctx, &id, &out);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    let pid = init_pid(&ctx, &id);
    wait_count(&out, 3);
    let before = last(&out);
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &["--leave-running"]).ok();
    let after = last(&out);
    // The original goes on: same init, still counting.
    assert_eq!(ctx.rt.status(&id), "running");
    assert_eq!(init_pid(&ctx, &id), pid);
    wait_count(&out, after + 3);
    ctx.rt.delete_force(&id).ok();
    let original = counts(&out);

    // The copy: a new id, its own cgroup, and its /out bound from another host directory (the restore's bundle
    // is the one that says where bind mounts come from).
    let copy = ctx.id("cr-copy");
    let out2 = ctx.tempdir();
    b.cgroups_path(&cgroup_of(&copy));
    b.remove_mount("/out");
    b.mount(serde_json::json!({
        "destination": "/out", "type": "bind", "source": out2.display().to_string(), "options": ["rbind", "rw"]
    }));
    restore(&ctx, &copy, &b, &images, &work, &[]).ok();
    assert_eq!(ctx.rt.status(&copy), "running");
    let pid2 = init_pid(&ctx, &copy);
    assert!(
        cgroup_line(pid2, "memory").ends_with(&cgroup_of(&copy)),
        "restored init is not in {}: {}",
        cgroup_of(&copy),
        cgroup_line(pid2, "memory")
    );
    wait_count(&out2, 1);
    let resumed = counts(&out2);
    // It counts on from the checkpoint, not from 1, and the original's file got nothing more.
    assert!(
        resumed[0] > before && resumed[0] <= after + 1,
        "the copy started at {} (checkpoint between {before} and {after})",
        resumed[0]
    );
    assert_consecutive(&resumed);
    assert_eq!(
        counts(&out),
        original,
        "the copy wrote into the original's directory"
    );
    ctx.rt.delete_force(&copy).ok();
    ctx.assert_no_leaks(&copy);
}

#[test]
fn only_a_running_container_is_checkpointed() {
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
    let id = ctx.id("cr-created");
    let mut b = ctx.bundle();
    b.args(&["sleep", "100"]);
    b.cgroups_path(&cgroup_of(&id));
    ctx.rt.create(&id, &b, &[]).ok();
    let (images, work) = paths(&ctx);
    let out = checkpoint(&ctx, &id, &images, &work, &[]).fails();
    assert!(out.stderr.contains("created"), "{}", out.stderr);
    // Refused, and left as it was.
    assert_eq!(ctx.rt.status(&id), "created");
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
}

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
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
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

/// `features` says checkpoint works where it does: runc's annotation (set when it is built with criu support),
/// carte's when `criu check` passes.
#[test]
fn features_advertise_checkpoint() {
    let Some(ctx) = Ctx::new() else { return };
    let f = ctx.rt.cmd(&["features"]).ok().json();
    let key = if is_carte() {
        "org.opencontainers.carte.checkpoint.enabled"
    } else {
        "org.opencontainers.runc.checkpoint.enabled"
    };
    let ready = criu_ready();
    let want = if ready || !is_carte() {
        "true"
    } else {
        "false"
    };
    assert_eq!(f["annotations"][key], want, "{f}");
}

/// runc's "checkpoint then restore into a different cgroup (via --manage-cgroups-mode ignore)": the restore's
/// bundle names another cgroup; criu leaves cgroups alone, and the tree is born where the runtime put criu. The
/// old cgroup went with the checkpoint, the new one has the bundle's limits, and `--pid-file` names the init.
#[test]
fn restore_into_another_cgroup_with_ignore_mode() {
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
    let id = ctx.id("cr-cg");
    let out = ctx.tempdir();
    let mut b = counter(&ctx, &id, &out);
    b.resource("pids", serde_json::json!({"limit": 20}));
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    wait_count(&out, 3);
    let old = Path::new("/sys/fs/cgroup/pids").join(cgroup_of(&id).trim_start_matches('/'));
    assert!(old.is_dir(), "{} missing", old.display());
    let (images, work) = paths(&ctx);
    // runc 1.1.5 predates the "ignore" mode (runc 1.2 added it) and refuses the word: there the restore goes
    // into the other cgroup with criu's default mode (soft) and runc's cgroup root.
    let mode: &[&str] = if is_carte() {
        &["--manage-cgroups-mode", "ignore"]
    } else {
        let refused = checkpoint(
            &ctx,
            &id,
            &images,
            &work,
            &["--manage-cgroups-mode", "ignore"],
        )
        .fails();
        assert!(
            refused.stderr.contains("manage cgroups mode"),
            "{}",
            refused.stderr
        );
        &[]
    };
    checkpoint(&ctx, &id, &images, &work, mode).ok();
    assert!(!old.exists(), "{} left after checkpoint", old.display());
    let at_checkpoint = last(&out);

    let new_cg = format!("{}-moved", cgroup_of(&id));
    b.cgroups_path(&new_cg);
    let pid_file = ctx.tempdir().join("pid");
    let pf = pid_file.display().to_string();
    let mut extra = mode.to_vec();
    extra.extend(["--pid-file", pf.as_str()]);
    restore(&ctx, &id, &b, &images, &work, &extra).ok();
    assert_eq!(ctx.rt.status(&id), "running");
    let pid = init_pid(&ctx, &id);
    let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
    assert_eq!(written.trim(), pid.to_string(), "pid file");
    assert!(!old.exists(), "restore recreated {}", old.display());
    let new = Path::new("/sys/fs/cgroup/pids").join(new_cg.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(new.join("pids.max"))
            .unwrap_or_default()
            .trim(),
        "20"
    );
    assert!(
        cgroup_line(pid, "pids").ends_with(&new_cg),
        "{}",
        cgroup_line(pid, "pids")
    );
    wait_count(&out, at_checkpoint + 3);
    assert_consecutive(&counts(&out));
    ctx.rt.delete_force(&id).ok();
    ctx.assert_no_leaks(&id);
    assert!(!new.exists(), "{} left after delete", new.display());
}

/// Without `--detach`, restore stays with the container as `run` does: it returns the container's exit status
/// once the container is gone, and removes it.
#[test]
fn a_foreground_restore_waits_for_the_container() {
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
    let id = ctx.id("cr-fg");
    let out = ctx.tempdir();
    let b = counter(&ctx, &id, &out);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    wait_count(&out, 3);
    let (images, work) = paths(&ctx);
    checkpoint(&ctx, &id, &images, &work, &[]).ok();
    let at_checkpoint = last(&out);
    b.write().expect("write config.json");
    let (i, w) = (images.display().to_string(), work.display().to_string());
    let fg = ctx
        .rt
        .spawn(
            &[
                "restore",
                "--image-path",
                &i,
                "--work-path",
                &w,
                "--bundle",
                b.path_str(),
                &id,
            ],
            runtime::CallOpts::default(),
        )
        .expect("spawn restore");
    wait_count(&out, at_checkpoint + 3);
    assert_eq!(ctx.rt.status(&id), "running");
    ctx.rt.kill(&id, "KILL").ok();
    let done = fg.wait();
    assert_eq!(done.code(), 137, "{done}");
    assert!(
        !ctx.rt.cmd(&["state", &id]).success(),
        "{id} kept after its foreground restore ended"
    );
    ctx.assert_no_leaks(&id);
}

/// runc's "checkpoint --pre-dump (bad --parent-path)" and "checkpoint --pre-dump and restore". A pre-dump needs
/// the kernel's soft-dirty memory tracking: where criu says it has none, the pre-dump fails and the container goes
/// on untouched.
#[test]
fn pre_dump_and_parent_path() {
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
    let id = ctx.id("cr-pre");
    let out = ctx.tempdir();
    let b = counter(&ctx, &id, &out);
    ctx.rt.run(&id, &b, &["--detach"]).ok();
    wait_count(&out, 3);
    let dir = ctx.tempdir();
    let (parent, images, work) = (dir.join("parent"), dir.join("images"), dir.join("work"));
    let abs = parent.display().to_string();
    for bad in [abs.as_str(), "../no-such-dir"] {
        let out = checkpoint(&ctx, &id, &images, &work, &["--parent-path", bad]).fails();
        assert!(out.stderr.contains("--parent-path"), "{}", out.stderr);
    }
    assert_eq!(ctx.rt.status(&id), "running");
    let tracks = Command::new("criu")
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .is_ok_and(|o| o.status.success());
    let pre = checkpoint(&ctx, &id, &parent, &work, &["--pre-dump"]);
    if !tracks {
        eprintln!("criu: no memory dirty tracking on this kernel: pre-dump must fail");
        pre.fails();
        let now = last(&out);
        wait_count(&out, now + 2);
        assert_eq!(ctx.rt.status(&id), "running");
        ctx.rt.delete_force(&id).ok();
        ctx.assert_no_leaks(&id);
        return;
    }
    pre.ok();
    assert_eq!(ctx.rt.status(&id), "running");
    checkpoint(&ctx, &id, &images, &work, &["--parent-path", "../parent"]).ok();
    assert!(
        images.join("parent").exists(),
        "criu did not link the parent images"
    );
    let at_checkpoint = last(&out);
    restore(&ctx, &id, &b, &images, &work, &[]).ok();
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
    let Some(ctx) = Ctx::new() else { return };
    if !criu_ready() {
        return;
    }
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
