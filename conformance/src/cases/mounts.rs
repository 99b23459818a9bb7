//! config.md "Mounts" beyond the basics: bind sources relative to the bundle, file binds, writes through a
//! bind, listed order on one destination, per-mount flags on binds, relative destinations, recursive
//! read-only, and `rshared` propagation both ways.

use super::{
    case, case_since, op, op_errno, probe_config, push_mount, run_probe, sh_config, HostMounts,
    Section,
};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;

const S: Section = ("config", "config.md: root, mounts, process, hostname");

const EROFS: i64 = 30;
const EACCES: i64 = 13;

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "mounts.bind-relative-source", "a relative bind `source` MUST be relative to the bundle", bind_relative_source),
        case(S, "mounts.bind-file", "a bind mount of a single file MUST show that file at the destination", bind_file),
        case(S, "mounts.bind-rw", "a read-write bind MUST be the source itself: writes inside reach the host", bind_rw),
        case(S, "mounts.same-destination", "entries MUST be mounted in the listed order: the last of two mounts on one destination is visible", same_destination),
        case(S, "mounts.bind-flags", "nosuid, nodev and noexec (MUST options) MUST apply to a bind mount; exec there fails", bind_flags),
        case(S, "mounts.tmpfs-ro", "`ro` (MUST option) on a tmpfs MUST make it read-only", tmpfs_ro),
        case_since(S, "mounts.relative-destination", "a relative destination MUST be interpreted as relative to \"/\"", "1.2.0", relative_destination),
        case_since(S, "mounts.rro", "`rro` (SHOULD option) MUST make the bind and every submount read-only", "1.1.0", rro),
        case(S, "mounts.rshared", "an `rbind,rshared` bind (rootfsPropagation shared) MUST propagate mounts both ways between host and container", rshared),
    ]
}

fn find_mount<'v>(r: &'v Value, target: &str) -> Option<&'v Value> {
    r["mounts"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["target"] == target)
}

fn bind_relative_source(ctx: &Ctx) -> Result<Outcome> {
    let mut config = probe_config(&["read:/mnt/rel/data"]);
    push_mount(
        &mut config,
        json!({"destination": "/mnt/rel", "type": "bind", "source": "relsrc", "options": ["rbind"]}),
    );
    let b = ctx.bundle(&config)?;
    std::fs::create_dir(b.dir.join("relsrc"))?;
    std::fs::write(b.dir.join("relsrc/data"), "bundle-relative")?;
    let r = run_probe(ctx, &b)?;
    ensure!(
        op(&r, "read:/mnt/rel/data")["value"] == "bundle-relative",
        "the relative source was not resolved against the bundle: {}",
        op(&r, "read:/mnt/rel/data")
    );
    Ok(Outcome::Pass)
}

fn bind_file(ctx: &Ctx) -> Result<Outcome> {
    let src = ctx.dir.join("bind-file");
    std::fs::write(&src, "one file")?;
    let source = src.display().to_string();
    let r = ctx.probe_with(&["read:/etc/bound", "stat:/etc/bound"], |c| {
        push_mount(
            c,
            json!({"destination": "/etc/bound", "type": "bind", "source": source, "options": ["bind"]}),
        )
    })?;
    ensure!(
        op(&r, "stat:/etc/bound")["type"] == "f",
        "/etc/bound is not a file: {}",
        op(&r, "stat:/etc/bound")
    );
    ensure!(
        op(&r, "read:/etc/bound")["value"] == "one file",
        "/etc/bound: {}",
        op(&r, "read:/etc/bound")
    );
    Ok(Outcome::Pass)
}

fn bind_rw(ctx: &Ctx) -> Result<Outcome> {
    let src = ctx.dir.join("bind-rw");
    std::fs::create_dir_all(&src)?;
    let source = src.display().to_string();
    let r = ctx.probe_with(&["touch:/mnt/rw/from-container"], |c| {
        push_mount(
            c,
            json!({"destination": "/mnt/rw", "type": "bind", "source": source, "options": ["rbind", "rw"]}),
        )
    })?;
    ensure!(
        op(&r, "touch:/mnt/rw/from-container")["ok"] == true,
        "write into the rw bind: {}",
        op(&r, "touch:/mnt/rw/from-container")
    );
    ensure!(
        src.join("from-container").exists(),
        "the file written in the container is not in the host source"
    );
    Ok(Outcome::Pass)
}

fn same_destination(ctx: &Ctx) -> Result<Outcome> {
    let src = ctx.dir.join("second");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("which"), "second")?;
    let source = src.display().to_string();
    let r = ctx.probe_with(&["read:/mnt/same/which"], |c| {
        push_mount(
            c,
            json!({"destination": "/mnt/same", "type": "tmpfs", "source": "first", "options": ["size=1m"]}),
        );
        push_mount(
            c,
            json!({"destination": "/mnt/same", "type": "bind", "source": source, "options": ["rbind"]}),
        );
    })?;
    ensure!(
        op(&r, "read:/mnt/same/which")["value"] == "second",
        "the later mount is not the visible one: {}",
        op(&r, "read:/mnt/same/which")
    );
    Ok(Outcome::Pass)
}

fn bind_flags(ctx: &Ctx) -> Result<Outcome> {
    let src = ctx.dir.join("bind-flags");
    std::fs::create_dir_all(&src)?;
    std::fs::copy(&ctx.template.host_probe, src.join("probe"))?;
    let source = src.display().to_string();
    let r = ctx.probe_with(&["exec:/mnt/flags/probe"], |c| {
        push_mount(
            c,
            json!({"destination": "/mnt/flags", "type": "bind", "source": source,
                   "options": ["rbind", "nosuid", "nodev", "noexec"]}),
        )
    })?;
    let m = find_mount(&r, "/mnt/flags").context("no mount at /mnt/flags")?;
    for o in ["nosuid", "nodev", "noexec"] {
        ensure!(
            m["options"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == o)),
            "/mnt/flags lacks `{o}`: {}",
            m["options"]
        );
    }
    ensure!(
        op_errno(&r, "exec:/mnt/flags/probe") == Some(EACCES),
        "exec on the noexec bind: {}",
        op(&r, "exec:/mnt/flags/probe")
    );
    Ok(Outcome::Pass)
}

fn tmpfs_ro(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["touch:/mnt/ro/x"], |c| {
        push_mount(
            c,
            json!({"destination": "/mnt/ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "size=1m"]}),
        )
    })?;
    ensure!(
        op_errno(&r, "touch:/mnt/ro/x") == Some(EROFS),
        "write into the ro tmpfs: {}",
        op(&r, "touch:/mnt/ro/x")
    );
    Ok(Outcome::Pass)
}

fn relative_destination(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["stat:/mnt/reldest"], |c| {
        push_mount(
            c,
            json!({"destination": "mnt/reldest", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        )
    })?;
    let m = find_mount(&r, "/mnt/reldest");
    ensure!(
        m.is_some_and(|m| m["fstype"] == "tmpfs"),
        "no tmpfs at /mnt/reldest for destination `mnt/reldest`"
    );
    Ok(Outcome::Pass)
}

fn rro(ctx: &Ctx) -> Result<Outcome> {
    let host = HostMounts::new(&ctx.dir.join("rro-src"))?;
    std::fs::create_dir_all(host.dir.join("sub"))?;
    let sub = host.dir.join("sub").display().to_string();
    host.mount(&["-t", "tmpfs", "-o", "size=1m", "rro-sub", &sub])?;
    let source = host.dir.display().to_string();
    let r = ctx.probe_with(&["touch:/mnt/rro/top", "touch:/mnt/rro/sub/inner"], |c| {
        push_mount(
            c,
            json!({"destination": "/mnt/rro", "type": "bind", "source": source, "options": ["rbind", "rro"]}),
        )
    })?;
    for key in ["touch:/mnt/rro/top", "touch:/mnt/rro/sub/inner"] {
        ensure!(
            op_errno(&r, key) == Some(EROFS),
            "{key} under rro: {}",
            op(&r, key)
        );
    }
    Ok(Outcome::Pass)
}

fn wait_file(ctx: &Ctx, path: &std::path::Path, what: &str) -> Result<()> {
    while !path.exists() {
        ensure!(!ctx.past_deadline(), "{what} never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn rshared(ctx: &Ctx) -> Result<Outcome> {
    let host = HostMounts::new(&ctx.dir.join("shared-src"))?;
    let dir = host.dir.display().to_string();
    // The source must itself be in a peer group for propagation to have anything to join.
    host.mount(&["--bind", &dir, &dir])?;
    host.mount(&["--make-shared", &dir])?;
    std::fs::create_dir_all(host.dir.join("in"))?;
    std::fs::create_dir_all(host.dir.join("out"))?;
    let mut config = sh_config(
        "mount -t tmpfs inner /mnt/p/in && touch /mnt/p/in/from-container; touch /mnt/p/ready; \
         while [ ! -e /mnt/p/out/marker ]; do sleep 0.05; done; touch /mnt/p/saw-host-mount; sleep 600",
    );
    // A bidirectional volume needs a rootfs in a peer group too (what Kubernetes sets for Bidirectional
    // mounts): with the default (slave) rootfs the bind would only receive.
    config["linux"]["rootfsPropagation"] = json!("shared");
    let caps = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
    config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    push_mount(
        &mut config,
        json!({"destination": "/mnt/p", "type": "bind", "source": dir, "options": ["rbind", "rshared"]}),
    );
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    c.start()?;
    wait_file(ctx, &host.dir.join("ready"), "the container's mount")?;
    let inner = host.dir.join("in").display().to_string();
    ensure!(
        host.below().contains(&inner),
        "a mount made in the container at /mnt/p/in did not propagate to the host ({inner}); host has {:?}",
        host.below()
    );
    let out = host.dir.join("out").display().to_string();
    host.mount(&["-t", "tmpfs", "-o", "size=1m", "host-side", &out])?;
    std::fs::write(host.dir.join("out/marker"), "x")?;
    let saw = host.dir.join("saw-host-mount");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !saw.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    ensure!(
        saw.exists(),
        "a mount made on the host at {out} did not propagate into the container"
    );
    drop(c);
    Ok(Outcome::Pass)
}
