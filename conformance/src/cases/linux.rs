//! config-linux.md: namespaces (new, absent, joined by path, user with mappings), devices, maskedPaths,
//! readonlyPaths, sysctl, seccomp; plus the runtime's fd hygiene toward the container process.

use super::{case, case_since, host_ns, op, op_errno, skip, Section};
use crate::bundle::{base_config, probe_args};
use crate::case::{Case, Ctx, Outcome};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

const S: Section = (
    "linux",
    "config-linux.md: namespaces, devices, paths, sysctl, seccomp",
);

pub fn cases() -> Vec<Case> {
    vec![
        case(S, "ns.pid", "a `pid` namespace entry MUST give a new pid namespace (process is pid 1); absent MUST share the runtime's", |c| ns(c, "pid", "pid")),
        case(S, "ns.network", "`network`: new when listed, the runtime's when absent", |c| ns(c, "network", "net")),
        case(S, "ns.ipc", "`ipc`: new when listed, the runtime's when absent", |c| ns(c, "ipc", "ipc")),
        case(S, "ns.uts", "`uts`: new when listed, the runtime's when absent", |c| ns(c, "uts", "uts")),
        case(S, "ns.cgroup", "`cgroup`: new when listed, the runtime's when absent", |c| ns(c, "cgroup", "cgroup")),
        case(S, "ns.mount", "`mount`: the container MUST get a new mount namespace", ns_mount),
        case(S, "ns.path", "a namespace `path` MUST be joined", ns_path),
        case_since(S, "ns.time", "`time` with timeOffsets MUST give a time namespace with those offsets", "1.1.0", ns_time),
        case(S, "ns.user", "`user` with uidMappings/gidMappings MUST map ids as configured", ns_user),
        case(S, "devices.default", "default devices /dev/{null,zero,full,random,urandom,tty,ptmx} MUST exist", default_devices),
        case(S, "devices.symlinks", "/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr MUST link to /proc/self/fd", dev_symlinks),
        case(S, "devices.custom", "a `devices` entry MUST be created with its type, major/minor, fileMode, uid and gid", custom_device),
        case(S, "maskedPaths", "maskedPaths MUST be masked so the container cannot read them", masked_paths),
        case(S, "readonlyPaths", "readonlyPaths MUST be read-only inside the container", readonly_paths),
        case(S, "sysctl", "each `sysctl` MUST be set in the container's namespaces", sysctl),
        case(S, "seccomp.errno", "a seccomp rule MUST apply its action; errnoRet MUST be the returned errno", seccomp_errno),
        case(S, "seccomp.args", "seccomp `args` conditions MUST restrict when a rule applies", seccomp_args),
        case(S, "seccomp.kill", "SCMP_ACT_KILL MUST kill the process at the filtered syscall", seccomp_kill),
        case(S, "fds.stdio-only", "(hygiene, not a spec rule) the process gets only stdio, no runtime fds", fds_stdio_only),
    ]
}

/// Listed → a namespace of its own; not listed → the same as the runtime (this harness's).
fn ns(ctx: &Ctx, kind: &str, proc_name: &str) -> Result<Outcome> {
    let Some(host) = host_ns(proc_name) else {
        return skip(format!("kernel has no {kind} namespace"));
    };
    // The base config lists every kind but cgroup (as `runc spec` 1.1 does); add it for its own case.
    let with = if kind == "cgroup" {
        ctx.probe_with(&[], |c| add_ns(c, json!({"type": "cgroup"})))?
    } else {
        ctx.probe_with(&[], |_| {})?
    };
    let got = with["namespaces"][proc_name]
        .as_str()
        .unwrap_or("")
        .to_string();
    ensure!(
        !got.is_empty() && got != host,
        "listed `{kind}` namespace is {got}, the runtime's is {host}"
    );
    if kind == "pid" {
        ensure!(
            with["pid"] == 1,
            "process is pid {} in its new pid namespace, not 1",
            with["pid"]
        );
    }
    let without = ctx.probe_with(&[], |c| remove_ns(c, kind))?;
    let got = without["namespaces"][proc_name].as_str().unwrap_or("");
    ensure!(
        got == host,
        "without a `{kind}` entry the namespace is {got}, not the runtime's {host}"
    );
    Ok(Outcome::Pass)
}

pub(super) fn add_ns(config: &mut Value, entry: Value) {
    if let Some(list) = config["linux"]["namespaces"].as_array_mut() {
        list.push(entry);
    }
}

pub(super) fn remove_ns(config: &mut Value, kind: &str) {
    if let Some(list) = config["linux"]["namespaces"].as_array_mut() {
        list.retain(|n| n["type"] != kind);
    }
    // config.md: a hostname without a new UTS namespace is an error, so it goes with the entry.
    if kind == "uts" {
        config.as_object_mut().map(|o| o.remove("hostname"));
    }
}

fn ns_mount(ctx: &Ctx) -> Result<Outcome> {
    let host = host_ns("mnt").context("read own mount namespace")?;
    let r = ctx.probe_with(&[], |_| {})?;
    let got = r["namespaces"]["mnt"].as_str().unwrap_or("");
    ensure!(
        !got.is_empty() && got != host,
        "mount namespace {got} is the runtime's"
    );
    Ok(Outcome::Pass)
}

fn ns_path(ctx: &Ctx) -> Result<Outcome> {
    // The namespace to join belongs to another container: no host helper process needed.
    let holder = ctx.bundle(&base_config(&["/bin/sleep", "600"]))?;
    let h = ctx.create(&holder)?;
    let pid = h.pid()?;
    let want = std::fs::read_link(format!("/proc/{pid}/ns/net"))?
        .display()
        .to_string();
    let want_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts"))?
        .display()
        .to_string();
    let r = ctx.probe_with(&[], |c| {
        remove_ns(c, "network");
        remove_ns(c, "uts");
        add_ns(
            c,
            json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}),
        );
        add_ns(
            c,
            json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}),
        );
    })?;
    ensure!(
        r["namespaces"]["net"] == json!(want),
        "joined net ns is {}, want {want}",
        r["namespaces"]["net"]
    );
    ensure!(
        r["namespaces"]["uts"] == json!(want_uts),
        "joined uts ns is {}, want {want_uts}",
        r["namespaces"]["uts"]
    );
    Ok(Outcome::Pass)
}

fn ns_user(ctx: &Ctx) -> Result<Outcome> {
    if !std::path::Path::new("/proc/self/ns/user").exists() {
        return skip("kernel has no user namespaces");
    }
    let host = host_ns("user").context("read own user namespace")?;
    let r = ctx.probe_with(&[], |c| {
        add_ns(c, json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        // sysfs and cgroup mounts need privileges over the host's objects; keep the userns case about ids.
        if let Some(m) = c["mounts"].as_array_mut() {
            m.retain(|m| m["type"] != "cgroup");
        }
    })?;
    let got = r["namespaces"]["user"].as_str().unwrap_or("");
    ensure!(
        !got.is_empty() && got != host,
        "user namespace {got} is the runtime's"
    );
    let words = |k: &str| {
        r[k].as_str()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    ensure!(
        words("/proc/self/uid_map") == ["0", "200000", "65536"],
        "uid_map is {:?}",
        r["/proc/self/uid_map"]
    );
    ensure!(
        words("/proc/self/gid_map") == ["0", "200000", "65536"],
        "gid_map is {:?}",
        r["/proc/self/gid_map"]
    );
    ensure!(r["ids"]["uid"] == 0, "uid inside is {}", r["ids"]["uid"]);
    // config-linux.md: "The runtime SHOULD NOT modify the ownership of referenced filesystems".
    for entry in std::fs::read_dir(&ctx.dir)?.flatten() {
        let rootfs = entry.path().join("rootfs");
        for p in [
            rootfs.clone(),
            rootfs.join("carte-probe"),
            rootfs.join("etc/passwd"),
        ] {
            if let Ok(m) = std::fs::metadata(&p) {
                use std::os::unix::fs::MetadataExt;
                ensure!(
                    m.uid() == 0 && m.gid() == 0,
                    "`{}` was chowned to {}:{}",
                    p.display(),
                    m.uid(),
                    m.gid()
                );
            }
        }
    }
    Ok(Outcome::Pass)
}

fn ns_time(ctx: &Ctx) -> Result<Outcome> {
    let Some(host) = host_ns("time") else {
        return skip("kernel has no time namespace");
    };
    let r = ctx.probe_with(&["read:/proc/self/timens_offsets"], |c| {
        add_ns(c, json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 3600, "nanosecs": 0}});
    })?;
    let got = r["namespaces"]["time"].as_str().unwrap_or("");
    ensure!(
        !got.is_empty() && got != host,
        "time namespace {got} is the runtime's"
    );
    let offsets = op(&r, "read:/proc/self/timens_offsets")["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let words: Vec<Vec<&str>> = offsets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(
        words
            .iter()
            .any(|w| w.as_slice() == ["monotonic", "86400", "0"]),
        "timens_offsets: {offsets:?}"
    );
    ensure!(
        words
            .iter()
            .any(|w| w.as_slice() == ["boottime", "3600", "0"]),
        "timens_offsets: {offsets:?}"
    );
    Ok(Outcome::Pass)
}

fn default_devices(ctx: &Ctx) -> Result<Outcome> {
    let devs = [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ];
    let ops: Vec<String> = devs
        .iter()
        .map(|(n, _, _)| format!("stat:/dev/{n}"))
        .chain(["stat:/dev/ptmx".into()])
        .collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let r = ctx.probe_with(&ops, |_| {})?;
    for (name, major, minor) in devs {
        let s = op(&r, &format!("stat:/dev/{name}"));
        ensure!(
            s["type"] == "c" && s["major"] == major && s["minor"] == minor,
            "/dev/{name}: {s}"
        );
    }
    let ptmx = op(&r, "stat:/dev/ptmx");
    ensure!(ptmx["ok"] == true, "/dev/ptmx missing: {ptmx}");
    Ok(Outcome::Pass)
}

fn dev_symlinks(ctx: &Ctx) -> Result<Outcome> {
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    let ops: Vec<String> = links
        .iter()
        .map(|(n, _)| format!("stat:/dev/{n}"))
        .collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let r = ctx.probe_with(&ops, |_| {})?;
    for (name, target) in links {
        let s = op(&r, &format!("stat:/dev/{name}"));
        ensure!(s["type"] == "l" && s["link"] == target, "/dev/{name}: {s}");
    }
    Ok(Outcome::Pass)
}

fn custom_device(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["stat:/dev/carte-null"], |c| {
        c["linux"]["devices"] = json!([{"path": "/dev/carte-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1000}]);
    })?;
    let s = op(&r, "stat:/dev/carte-null");
    ensure!(
        s["type"] == "c" && s["major"] == 1 && s["minor"] == 3,
        "/dev/carte-null: {s}"
    );
    ensure!(
        s["mode"] == 0o640,
        "/dev/carte-null mode is {:o}",
        s["mode"].as_u64().unwrap_or(0)
    );
    ensure!(
        s["uid"] == 1000 && s["gid"] == 1000,
        "/dev/carte-null owner {}:{}",
        s["uid"],
        s["gid"]
    );
    Ok(Outcome::Pass)
}

fn masked_paths(ctx: &Ctx) -> Result<Outcome> {
    let args = probe_args(&["read:/masked-file", "ls:/masked-dir", "read:/visible"]);
    let mut config = base_config(&args.iter().map(String::as_str).collect::<Vec<_>>());
    config["linux"]["maskedPaths"] = json!(["/masked-file", "/masked-dir", "/proc/kcore"]);
    let b = ctx.bundle(&config)?;
    std::fs::write(b.rootfs.join("masked-file"), "secret")?;
    std::fs::write(b.rootfs.join("visible"), "public")?;
    std::fs::create_dir(b.rootfs.join("masked-dir"))?;
    std::fs::write(b.rootfs.join("masked-dir/inside"), "secret")?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_exit()?;
    let r = c.report()?;
    let file = op(&r, "read:/masked-file");
    ensure!(
        file["ok"] == false || file["value"] == "",
        "masked file readable: {file}"
    );
    let dir = op(&r, "ls:/masked-dir");
    ensure!(
        dir["ok"] == false || dir["value"] == json!([]),
        "masked dir listable: {dir}"
    );
    ensure!(
        op(&r, "read:/visible")["value"] == "public",
        "an unmasked file was hidden"
    );
    Ok(Outcome::Pass)
}

fn readonly_paths(ctx: &Ctx) -> Result<Outcome> {
    let args = probe_args(&["touch:/ro-dir/new", "write:/ro-file", "touch:/rw-dir/new"]);
    let mut config = base_config(&args.iter().map(String::as_str).collect::<Vec<_>>());
    config["linux"]["readonlyPaths"] = json!(["/ro-dir", "/ro-file", "/proc/sys"]);
    let b = ctx.bundle(&config)?;
    std::fs::create_dir(b.rootfs.join("ro-dir"))?;
    std::fs::create_dir(b.rootfs.join("rw-dir"))?;
    std::fs::write(b.rootfs.join("ro-file"), "x")?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_exit()?;
    let r = c.report()?;
    ensure!(
        op_errno(&r, "touch:/ro-dir/new") == Some(30),
        "create in /ro-dir: {}",
        op(&r, "touch:/ro-dir/new")
    );
    ensure!(
        op_errno(&r, "write:/ro-file") == Some(30),
        "write /ro-file: {}",
        op(&r, "write:/ro-file")
    );
    ensure!(
        op(&r, "touch:/rw-dir/new")["ok"] == true,
        "a path not listed became read-only: {}",
        op(&r, "touch:/rw-dir/new")
    );
    Ok(Outcome::Pass)
}

fn sysctl(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(
        &[
            "read:/proc/sys/net/ipv4/ip_forward",
            "read:/proc/sys/kernel/msgmax",
        ],
        |c| {
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"});
        },
    )?;
    let fwd = op(&r, "read:/proc/sys/net/ipv4/ip_forward")["value"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_string();
    ensure!(fwd == "1", "net.ipv4.ip_forward is `{fwd}`");
    let msg = op(&r, "read:/proc/sys/kernel/msgmax")["value"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_string();
    ensure!(msg == "12345", "kernel.msgmax is `{msg}`");
    Ok(Outcome::Pass)
}

pub(super) fn seccomp_profile(rule: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": [rule]})
}

fn seccomp_errno(ctx: &Ctx) -> Result<Outcome> {
    if !cfg!(target_arch = "x86_64") {
        return skip("the seccomp cases name x86_64 syscalls");
    }
    let r = ctx.probe_with(&["mkdir:/tmp/blocked", "touch:/tmp/allowed"], |c| {
        c["linux"]["seccomp"] = seccomp_profile(
            json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}),
        );
    })?;
    ensure!(
        r["status"]["Seccomp"] == "2",
        "Seccomp mode is {} (2 = filter)",
        r["status"]["Seccomp"]
    );
    ensure!(
        op_errno(&r, "mkdir:/tmp/blocked") == Some(95),
        "mkdir under the filter: {}",
        op(&r, "mkdir:/tmp/blocked")
    );
    ensure!(
        op(&r, "touch:/tmp/allowed")["ok"] == true,
        "an allowed syscall failed: {}",
        op(&r, "touch:/tmp/allowed")
    );
    Ok(Outcome::Pass)
}

fn seccomp_kill(ctx: &Ctx) -> Result<Outcome> {
    if !cfg!(target_arch = "x86_64") {
        return skip("the seccomp cases name x86_64 syscalls");
    }
    // The probe runs its operations in order: the marker proves it got that far, the missing report proves
    // mkdir killed it.
    let args = probe_args(&["touch:/before-kill", "mkdir:/tmp/killed"]);
    let mut config = base_config(&args.iter().map(String::as_str).collect::<Vec<_>>());
    config["linux"]["seccomp"] =
        seccomp_profile(json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}));
    let b = ctx.bundle(&config)?;
    let c = ctx.create(&b)?;
    c.start()?;
    c.wait_exit()?;
    ensure!(b.rootfs.join("before-kill").exists(), "the probe never ran");
    ensure!(
        c.report().is_err(),
        "the probe survived the filtered mkdir and printed its report"
    );
    ensure!(
        !b.rootfs.join("tmp/killed").exists(),
        "the filtered mkdir took effect"
    );
    Ok(Outcome::Pass)
}

fn seccomp_args(ctx: &Ctx) -> Result<Outcome> {
    if !cfg!(target_arch = "x86_64") {
        return skip("the seccomp cases name x86_64 syscalls");
    }
    // std's create_dir uses mode 0777: a rule on mode 0700 must not fire, one on 0777 must.
    let run = |mode: u32| {
        ctx.probe_with(&["mkdir:/tmp/d"], move |c| {
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95, "args": [{"index": 1, "value": mode, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95, "args": [{"index": 2, "value": mode, "op": "SCMP_CMP_EQ"}]}]});
        })
    };
    let hit = run(0o777)?;
    ensure!(
        op_errno(&hit, "mkdir:/tmp/d") == Some(95),
        "mode 0777 matches the rule, mkdir gave {}",
        op(&hit, "mkdir:/tmp/d")
    );
    let miss = run(0o700)?;
    ensure!(
        op(&miss, "mkdir:/tmp/d")["ok"] == true,
        "mode 0777 does not match a 0700 rule, mkdir gave {}",
        op(&miss, "mkdir:/tmp/d")
    );
    Ok(Outcome::Pass)
}

fn fds_stdio_only(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |_| {})?;
    let fds = r["fds"].as_object().context("no fd list")?;
    let extra: Vec<String> = fds
        .iter()
        .filter(|(k, _)| !["0", "1", "2"].contains(&k.as_str()))
        .map(|(k, v)| format!("{k}→{}", v.as_str().unwrap_or("?")))
        .collect();
    ensure!(
        extra.is_empty(),
        "extra fds leaked into the container: {}",
        extra.join(", ")
    );
    Ok(Outcome::Pass)
}
