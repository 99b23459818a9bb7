//! config-linux.md beyond the basics: joining pid and ipc namespaces by path, no mount namespace (inherit the
//! runtime's), several id-mapping ranges, namespaced sysctls (ipc, net) that MUST NOT reach the host, and the
//! seccomp actions' defaults (errno EPERM, SIGSYS for TRAP).

use super::linux::{add_ns, remove_ns, seccomp_profile};
use super::{
    case, case_since, host_ns, op, op_errno, probe_config, run_probe, skip, HostMounts, Section,
};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

const S: Section = (
    "linux",
    "config-linux.md: namespaces, devices, paths, sysctl, seccomp",
);

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "ns.join.pid", "a pid namespace `path` MUST be joined: the process is in that namespace (not pid 1 there)", |c| join(c, "pid", "pid")),
        case(S, "ns.join.ipc", "an ipc namespace `path` MUST be joined", |c| join(c, "ipc", "ipc")),
        case(S, "ns.inherit-mount", "without a `mount` entry the container MUST inherit the runtime's mount namespace; delete MUST undo the mounts create made there", inherit_mount),
        case(S, "ns.user.ranges", "several uidMappings/gidMappings ranges MUST all be mapped as configured", user_ranges),
        case(S, "sysctl.ipc", "ipc-namespaced sysctls (kernel.shm*, fs.mqueue.*) MUST be set in the container's ipc namespace", sysctl_ipc),
        case(S, "sysctl.net", "net-namespaced sysctls (net.core.somaxconn, net.ipv4.*) MUST be set in the container's network namespace", sysctl_net),
        case(S, "sysctl.host-unchanged", "a namespaced sysctl is set for the container only: the host's value MUST stay as it was", sysctl_host_unchanged),
        case_since(S, "seccomp.errno-default", "SCMP_ACT_ERRNO without errnoRet MUST return EPERM", "1.1.0", seccomp_errno_default),
        case(S, "seccomp.trap", "SCMP_ACT_TRAP MUST deliver SIGSYS at the filtered syscall (the probe dies there)", seccomp_trap),
    ]
}

fn join(ctx: &Ctx, kind: &str, proc_name: &str) -> Result<Outcome> {
    let holder = ctx.bundle(&crate::bundle::base_config(&["/bin/sleep", "600"]))?;
    let h = ctx.create(&holder)?;
    let pid = h.init_pid;
    let want = std::fs::read_link(format!("/proc/{pid}/ns/{proc_name}"))?
        .display()
        .to_string();
    let r = ctx.probe_with(&[], |c| {
        remove_ns(c, kind);
        add_ns(
            c,
            json!({"type": kind, "path": format!("/proc/{pid}/ns/{proc_name}")}),
        );
    })?;
    ensure!(
        r["namespaces"][proc_name] == json!(want),
        "the {kind} namespace is {}, want the joined {want}",
        r["namespaces"][proc_name]
    );
    if kind == "pid" {
        ensure!(
            r["pid"] != 1,
            "the process is pid 1: it got a new pid namespace"
        );
    }
    Ok(Outcome::Pass)
}

fn inherit_mount(ctx: &Ctx) -> Result<Outcome> {
    if ctx.rt.mask_cgroup2.is_some() {
        return skip(
            "under `masked:` the runtime runs in a private mount namespace of the harness",
        );
    }
    let host = host_ns("mnt").context("read own mount namespace")?;
    // Whatever the runtime mounts lands in this very namespace: keep it to /proc (the probe and runc need it),
    // and detach anything left below the case directory whatever happens.
    let guard = HostMounts::new(&ctx.dir)?;
    let mut config = probe_config(&[]);
    remove_ns(&mut config, "mount");
    config["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    config["linux"]["maskedPaths"] = json!([]);
    config["linux"]["readonlyPaths"] = json!([]);
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_exit()?;
    let r = c.report()?;
    ensure!(
        r["namespaces"]["mnt"] == json!(host),
        "the container's mount namespace is {}, not the runtime's {host}",
        r["namespaces"]["mnt"]
    );
    let out = c.verb("delete", &[])?;
    ensure!(out.success, "delete failed: {}", out.error_line());
    let left = guard.below();
    ensure!(
        left.is_empty(),
        "after delete the runtime's mount namespace still has the container's mounts: {left:?}"
    );
    Ok(Outcome::Pass)
}

fn user_ranges(ctx: &Ctx) -> Result<Outcome> {
    if host_ns("user").is_none() {
        return skip("kernel has no user namespaces");
    }
    let maps = json!([{"containerID": 0, "hostID": 200000, "size": 1000},
                      {"containerID": 1000, "hostID": 300000, "size": 1000}]);
    let r = ctx.probe_with(&[], |c| {
        add_ns(c, json!({"type": "user"}));
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = maps.clone();
        if let Some(m) = c["mounts"].as_array_mut() {
            m.retain(|m| m["type"] != "cgroup");
        }
    })?;
    for file in ["/proc/self/uid_map", "/proc/self/gid_map"] {
        let mut lines: Vec<Vec<String>> = r[file]
            .as_str()
            .unwrap_or("")
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        lines.sort();
        ensure!(
            lines == [["0", "200000", "1000"], ["1000", "300000", "1000"]],
            "{file} is {:?}",
            r[file]
        );
    }
    Ok(Outcome::Pass)
}

/// Probe with `sysctl` set; each key's value as the container reads it under /proc/sys.
fn sysctl_values(ctx: &Ctx, sysctl: &Value) -> Result<Vec<(String, String, String)>> {
    let obj = sysctl.as_object().context("sysctl is an object")?;
    let paths: Vec<String> = obj
        .keys()
        .map(|k| format!("read:/proc/sys/{}", k.replace('.', "/")))
        .collect();
    let ops: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut config = probe_config(&ops);
    config["linux"]["sysctl"] = sysctl.clone();
    let b = ctx.bundle(&config)?;
    let r = run_probe(ctx, &b)?;
    Ok(obj
        .iter()
        .zip(&paths)
        .map(|((k, v), p)| {
            let got = op(&r, p)["value"].as_str().unwrap_or("").trim();
            (
                k.clone(),
                v.as_str().unwrap_or("").to_string(),
                got.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect())
}

fn check_sysctl(ctx: &Ctx, sysctl: Value) -> Result<Outcome> {
    for (key, want, got) in sysctl_values(ctx, &sysctl)? {
        ensure!(
            got == want,
            "{key} is `{got}` in the container, want `{want}`"
        );
    }
    Ok(Outcome::Pass)
}

fn sysctl_ipc(ctx: &Ctx) -> Result<Outcome> {
    check_sysctl(
        ctx,
        json!({"kernel.shmmax": "68719476736", "kernel.shmmni": "1234", "fs.mqueue.msg_max": "42"}),
    )
}

fn sysctl_net(ctx: &Ctx) -> Result<Outcome> {
    check_sysctl(
        ctx,
        json!({"net.core.somaxconn": "333", "net.ipv4.ip_unprivileged_port_start": "222"}),
    )
}

fn host_sysctl(key: &str) -> Option<String> {
    crate::case::read_trim(std::path::Path::new(&format!(
        "/proc/sys/{}",
        key.replace('.', "/")
    )))
}

fn sysctl_host_unchanged(ctx: &Ctx) -> Result<Outcome> {
    let keys = ["kernel.msgmni", "net.ipv4.tcp_keepalive_time"];
    let before: Vec<Option<String>> = keys.iter().map(|k| host_sysctl(k)).collect();
    let values = sysctl_values(
        ctx,
        &json!({"kernel.msgmni": "4321", "net.ipv4.tcp_keepalive_time": "1234"}),
    )?;
    for (key, want, got) in &values {
        ensure!(
            got == want,
            "{key} is `{got}` in the container, want `{want}`"
        );
    }
    for (key, was) in keys.iter().zip(before) {
        let now = host_sysctl(key);
        ensure!(
            now == was,
            "the host's {key} changed from {was:?} to {now:?}"
        );
    }
    Ok(Outcome::Pass)
}

fn seccomp_errno_default(ctx: &Ctx) -> Result<Outcome> {
    if !cfg!(target_arch = "x86_64") {
        return skip("the seccomp cases name x86_64 syscalls");
    }
    let r = ctx.probe_with(&["mkdir:/tmp/blocked"], |c| {
        c["linux"]["seccomp"] =
            seccomp_profile(json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}));
    })?;
    ensure!(
        op_errno(&r, "mkdir:/tmp/blocked") == Some(1),
        "mkdir under an ERRNO rule without errnoRet: {} (want EPERM)",
        op(&r, "mkdir:/tmp/blocked")
    );
    Ok(Outcome::Pass)
}

fn seccomp_trap(ctx: &Ctx) -> Result<Outcome> {
    if !cfg!(target_arch = "x86_64") {
        return skip("the seccomp cases name x86_64 syscalls");
    }
    let mut config = probe_config(&["touch:/before-trap", "mkdir:/tmp/trapped"]);
    config["linux"]["seccomp"] =
        seccomp_profile(json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRAP"}));
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_exit()?;
    ensure!(b.rootfs.join("before-trap").exists(), "the probe never ran");
    ensure!(
        c.report().is_err(),
        "the probe survived the trapped mkdir and printed its report"
    );
    ensure!(
        !b.rootfs.join("tmp/trapped").exists(),
        "the trapped mkdir took effect"
    );
    Ok(Outcome::Pass)
}
