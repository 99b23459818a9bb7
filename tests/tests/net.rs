//! Networking through CNI (`carte net` as createRuntime/poststop hooks) and `carte stop`.
//! All traffic stays on this machine: the tests only reach the carte0 bridge and container addresses.

use carte_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const GATEWAY: &str = "10.89.0.1";
const IPAM_DIR: &str = "/run/carte-net/ipam/carte";
const PIN_DIR: &str = "/run/carte-net/netns";

/// The carte binary whose `net` verb the hooks run (also when the runtime under test is runc: hooks are
/// runtime-agnostic).
fn carte_bin() -> PathBuf {
    if is_carte() {
        return runtime_bin();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("/"))
        .join("target/release/carte")
}

fn net_hook(ctx: &Ctx, action: &str) -> Value {
    json!({
        "path": carte_bin(),
        "args": ["carte", "--root", ctx.rt.root(), "net", action],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "timeout": 120
    })
}

/// A bundle on carte's default network whose process sleeps; CAP_NET_RAW so busybox's ping works.
fn networked(ctx: &Ctx, args: &[&str]) -> Bundle {
    let mut b = ctx.bundle();
    b.args(args);
    b.hook("createRuntime", net_hook(ctx, "add"));
    b.hook("poststop", net_hook(ctx, "del"));
    for set in ["bounding", "effective", "permitted"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_NET_RAW"),
        );
    }
    b
}

fn sh(cmd: &str) -> (bool, String) {
    match Command::new("sh").arg("-c").arg(cmd).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => panic!("run {cmd}: {e}"),
    }
}

fn pid_of(ctx: &Ctx, id: &str) -> i64 {
    ctx.rt.state(id)["pid"].as_i64().unwrap_or(0)
}

/// Runs `cmd` inside every namespace of the container (its own busybox, its mounts, its network).
#[track_caller]
fn inside(ctx: &Ctx, id: &str, cmd: &str) -> String {
    let pid = pid_of(ctx, id);
    let (ok, out) = sh(&format!("nsenter -t {pid} -a {cmd}"));
    assert!(ok, "in {id}: {cmd}: {out}");
    out
}

/// The container's IPv4 address on eth0 (`10.89.0.N`), read inside it.
#[track_caller]
fn address(ctx: &Ctx, id: &str) -> String {
    let out = inside(ctx, id, "ip -4 -o addr show eth0");
    let addr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        addr.starts_with("10.89.0.") && addr.ends_with("/24"),
        "{out}"
    );
    addr.trim_end_matches("/24").to_string()
}

/// The CNI cache entry carte keeps for `id` under the test's state root.
fn cache(ctx: &Ctx, id: &str) -> Option<Value> {
    let p = ctx.rt.root().join(".net:cni").join(format!("{id}.json"));
    let text = std::fs::read_to_string(p).ok()?;
    serde_json::from_str(&text).ok()
}

/// The host end of the container's veth, from the bridge plugin's result.
#[track_caller]
fn host_veth(ctx: &Ctx, id: &str) -> String {
    let c = cache(ctx, id).unwrap_or_else(|| panic!("no CNI cache for {id}"));
    let ifaces = c["networks"][1]["result"]["interfaces"].clone();
    ifaces
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"].as_str().is_some_and(|n| n.starts_with("veth")))
        .and_then(|i| i["name"].as_str())
        .unwrap_or_else(|| panic!("no veth in {ifaces}"))
        .to_string()
}

/// Everything the network of `id` may leave on the host: the veth, the address file of host-local, the
/// masquerade chain's rules, the namespace pin and the cache.
fn net_leaks(ctx: &Ctx, id: &str, veth: &str, addr: &str) -> Vec<String> {
    let mut found = Vec::new();
    if sh(&format!("ip link show {veth}")).0 {
        found.push(format!("veth {veth}"));
    }
    if Path::new(IPAM_DIR).join(addr).exists() {
        found.push(format!("IP allocation {addr}"));
    }
    let (_, nat) = sh("iptables -t nat -S");
    let tag = format!("id: \\\"{id}\\\"");
    for line in nat.lines().filter(|l| l.contains(&tag)) {
        found.push(format!("nat rule `{line}`"));
    }
    if Path::new(PIN_DIR).join(id).exists() {
        found.push(format!("netns pin {PIN_DIR}/{id}"));
    }
    if cache(ctx, id).is_some() {
        found.push("CNI cache entry".into());
    }
    found
}

#[test]
fn two_containers_reach_each_other_and_the_gateway() {
    let Some(ctx) = Ctx::new() else { return };
    let (a, b) = (ctx.id("neta"), ctx.id("netb"));
    let ba = networked(&ctx, &["sleep", "1000"]);
    let bb = networked(&ctx, &["sleep", "1000"]);
    ctx.rt.run(&a, &ba, &["-d"]).ok();
    ctx.rt.run(&b, &bb, &["-d"]).ok();
    let (ia, ib) = (address(&ctx, &a), address(&ctx, &b));
    assert_ne!(ia, ib);
    inside(&ctx, &a, &format!("ping -c 1 -W 5 {ib}"));
    inside(&ctx, &b, &format!("ping -c 1 -W 5 {ia}"));
    inside(&ctx, &a, &format!("ping -c 1 -W 5 {GATEWAY}"));
    let route = inside(&ctx, &a, "ip route");
    assert!(
        route.contains(&format!("default via {GATEWAY} dev eth0")),
        "{route}"
    );
    // The host side: the veth is a port of carte0, which holds the gateway address.
    let veth = host_veth(&ctx, &a);
    let (ok, ports) = sh("ip -o link show master carte0");
    assert!(ok && ports.contains(&format!("{veth}@")), "{ports}");
    let (_, br) = sh("ip -4 -o addr show carte0");
    assert!(br.contains(&format!("{GATEWAY}/24")), "{br}");
    // `carte net check` asks the plugins and prints what the cache holds.
    if is_carte() {
        let out = ctx.rt.cmd(&["net", "check", "--id", &a]).ok();
        assert!(
            out.stdout
                .contains(&format!("carte eth0 {ia}/24 via {GATEWAY}: ok")),
            "{out}"
        );
    }
    ctx.rt.kill(&a, "KILL").ok();
    ctx.rt.kill(&b, "KILL").ok();
    ctx.rt.wait_status(&a, "stopped");
    ctx.rt.delete(&a).ok();
    assert_eq!(net_leaks(&ctx, &a, &veth, &ia), Vec::<String>::new());
    ctx.rt.delete(&b).ok();
}

#[test]
fn delete_force_of_a_sigkilled_container_releases_everything() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("netkill");
    let b = networked(&ctx, &["sleep", "1000"]);
    ctx.rt.run(&id, &b, &["-d"]).ok();
    let addr = address(&ctx, &id);
    let veth = host_veth(&ctx, &id);
    assert!(Path::new(IPAM_DIR).join(&addr).exists());
    let pid = pid_of(&ctx, &id);
    // Killed from outside the runtime: nobody tells carte, the namespace pin keeps the veth alive.
    assert!(sh(&format!("kill -9 {pid}")).0);
    ctx.rt.wait_status(&id, "stopped");
    ctx.rt.delete_force(&id).ok();
    assert_eq!(net_leaks(&ctx, &id, &veth, &addr), Vec::<String>::new());
}

#[test]
fn a_created_container_whose_start_failed_is_released_by_delete() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("netstart");
    let b = networked(&ctx, &["sleep", "1000"]);
    ctx.rt.create(&id, &b, &[]).ok();
    let addr = address(&ctx, &id);
    let veth = host_veth(&ctx, &id);
    // An init killed before `start` fails it. (A failing poststart hook no longer does: runtime.md makes it
    // a warning, see hooks.rs.)
    ctx.rt.kill(&id, "KILL").ok();
    let out = ctx.rt.start(&id);
    assert!(!out.success(), "{out}");
    ctx.rt.delete_force(&id).ok();
    assert_eq!(net_leaks(&ctx, &id, &veth, &addr), Vec::<String>::new());
}

#[test]
fn a_create_that_fails_after_the_network_was_added_leaves_nothing() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("netfail");
    let mut b = networked(&ctx, &["sleep", "1000"]);
    // Records the container's network while it exists, then fails create (createContainer runs after
    // createRuntime's `net add`).
    let seen = ctx.tempdir();
    b.hook(
        "createRuntime",
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("ls /run/carte-net/netns > {}/pins", seen.display())]}),
    );
    b.hook(
        "createContainer",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}),
    );
    let out = ctx.rt.create(&id, &b, &[]);
    assert!(!out.success(), "{out}");
    let pins = std::fs::read_to_string(seen.join("pins")).unwrap_or_default();
    assert!(pins.lines().any(|l| l == id), "net add never ran: {pins:?}");
    // runtime-spec: after a failed createContainer hook the runtime stops the container and runs the
    // poststop hooks, so `net del` must have released the network.
    let leaks = net_leaks(&ctx, &id, "no-such-veth", "no-such-address");
    let (_, ipam) = sh(&format!("grep -lx {id} {IPAM_DIR}/* 2>/dev/null"));
    assert!(
        leaks.is_empty() && ipam.trim().is_empty(),
        "{leaks:?} {ipam}"
    );
}

#[test]
fn twenty_concurrent_containers_get_twenty_distinct_addresses() {
    let Some(ctx) = Ctx::new() else { return };
    let ids: Vec<String> = (0..20).map(|i| ctx.id(&format!("net{i}"))).collect();
    let bundles: Vec<Bundle> = ids
        .iter()
        .map(|_| {
            let b = networked(&ctx, &["sleep", "1000"]);
            b.write().unwrap_or_else(|e| panic!("{e:#}"));
            b
        })
        .collect();
    let outs: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .zip(&bundles)
            .map(|(id, b)| {
                let rt = &ctx.rt;
                s.spawn(move || {
                    rt.cmd_opts(
                        &["create", id, "--bundle", b.path_str()],
                        runtime::CallOpts {
                            timeout: Some(std::time::Duration::from_secs(180)),
                            ..Default::default()
                        },
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("create thread panicked"))
            })
            .collect()
    });
    for o in outs {
        o.ok();
    }
    let mut addrs: Vec<String> = ids.iter().map(|id| address(&ctx, id)).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 20, "{addrs:?}");
    for id in &ids {
        ctx.rt.delete_force(id).ok();
    }
    for a in &addrs {
        assert!(!Path::new(IPAM_DIR).join(a).exists(), "{a} still allocated");
    }
}

#[test]
fn net_rejects_bad_input_with_one_line_and_del_is_idempotent() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        return;
    }
    // No state on stdin (the harness gives /dev/null).
    let out = ctx.rt.cmd(&["net", "add"]).fails();
    assert!(out.stderr.contains("stdin"), "{out}");
    let out = ctx
        .rt
        .cmd(&["net", "check", "--id", "never-networked"])
        .fails();
    assert!(out.stderr.contains("not attached"), "{out}");
    // DEL of something never added is CNI's no-op, twice.
    ctx.rt.cmd(&["net", "del", "--id", "never-networked"]).ok();
    ctx.rt.cmd(&["net", "del", "--id", "never-networked"]).ok();
    let out = ctx.rt.cmd(&["net", "add", "no-such-network"]).fails();
    assert!(out.code() > 0, "{out}");
    // `spec --net` with an unknown network writes nothing.
    let dir = ctx.tempdir();
    let d = dir.display().to_string();
    let out = ctx
        .rt
        .cmd(&["spec", "--bundle", &d, "--net", "no-such-network"])
        .fails();
    assert!(out.stderr.contains("no-such-network"), "{out}");
    assert!(!dir.join("config.json").exists());
    ctx.rt.cmd(&["spec", "--bundle", &d, "--net"]).ok();
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap_or_default())
            .unwrap_or(Value::Null);
    let root = ctx.rt.root().display().to_string();
    assert_eq!(
        spec["hooks"]["createRuntime"][0]["args"],
        json!(["carte", "--root", root, "net", "add", "carte"])
    );
    assert_eq!(spec["hooks"]["poststop"][0]["args"][4], "del");
}

// ---- carte stop ----

fn stop(ctx: &Ctx, args: &[&str]) -> Out {
    let mut all = vec!["stop"];
    all.extend_from_slice(args);
    ctx.rt.cmd(&all)
}

#[test]
fn stop_ends_a_container_that_traps_term_with_term() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        return;
    }
    let id = ctx.id("stopterm");
    let mut b = ctx.bundle();
    b.sh("trap 'exit 3' TERM; while true; do sleep 1; done");
    ctx.rt.run(&id, &b, &["-d"]).ok();
    let out = stop(&ctx, &[&id]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("{id}: stopped by SIGTERM"),
        "{out}"
    );
    assert_eq!(ctx.rt.status(&id), "stopped");
    ctx.rt.delete(&id).ok();
}

#[test]
fn stop_uses_the_images_stop_signal() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        return;
    }
    let id = ctx.id("stopusr1");
    let mut b = ctx.bundle();
    b.set(
        "/annotations",
        json!({"org.opencontainers.image.stopSignal": "SIGUSR1"}),
    );
    b.sh("trap 'exit 0' USR1; while true; do sleep 1; done");
    ctx.rt.run(&id, &b, &["-d"]).ok();
    let out = stop(&ctx, &[&id]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("{id}: stopped by SIGUSR1"),
        "{out}"
    );
    ctx.rt.delete(&id).ok();
}

#[test]
fn stop_kills_a_container_that_ignores_term_after_the_grace_period() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        return;
    }
    let id = ctx.id("stopkill");
    let mut b = ctx.bundle();
    // pid 1 of a pid namespace gets no signal it has no handler for: sleep ignores TERM.
    b.args(&["sleep", "1000"]);
    ctx.rt.run(&id, &b, &["-d"]).ok();
    let out = stop(&ctx, &["-t", "1", &id]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("{id}: stopped by SIGKILL (SIGTERM ignored for 1 s)"),
        "{out}"
    );
    assert_eq!(ctx.rt.status(&id), "stopped");
    ctx.rt.delete(&id).ok();
}

#[test]
fn stop_of_a_stopped_container_succeeds_and_of_an_unknown_one_fails() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        return;
    }
    let id = ctx.id("stopped");
    let mut b = ctx.bundle();
    b.args(&["true"]);
    ctx.rt.run(&id, &b, &["-d"]).ok();
    ctx.rt.wait_status(&id, "stopped");
    let out = stop(&ctx, &[&id]).ok();
    assert_eq!(out.stdout.trim(), format!("{id}: already stopped"), "{out}");
    ctx.rt.delete(&id).ok();
    let out = stop(&ctx, &[&id]).fails();
    assert!(out.stderr.contains("does not exist"), "{out}");
}
