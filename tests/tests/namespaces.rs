//! Namespaces as seen from inside: new ones differ from the host, omitted ones are shared, joined ones match the
//! path, and user/time namespaces carry their mappings and offsets.

use carte_tests::*;
use std::process::Command;

const KINDS: [(&str, &str); 6] = [
    ("pid", "pid"),
    ("network", "net"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("mount", "mnt"),
    ("cgroup", "cgroup"),
];

/// Reads `/proc/self/ns/<name>` for each kind inside the container, one `name=link` per line.
fn inside_ns(ctx: &Ctx, b: &mut Bundle, tag: &str) -> Vec<(String, String)> {
    let id = ctx.id(tag);
    let script =
        "for n in pid net ipc uts mnt cgroup user; do echo $n=$(readlink /proc/self/ns/$n); done";
    let out = ctx.rt.run_sh(&id, b, script);
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn lookup<'a>(list: &'a [(String, String)], name: &str) -> &'a str {
    list.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn requested_namespaces_are_new() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.namespace("cgroup", None);
    let inside = inside_ns(&ctx, &mut b, "nsnew");
    for (_, name) in KINDS {
        let v = lookup(&inside, name);
        assert!(v.starts_with(&format!("{name}:[")), "{name}: {inside:?}");
        assert_ne!(v, host_ns(name), "{name} namespace is the host's");
    }
    assert_eq!(lookup(&inside, "user"), host_ns("user"));
}

#[test]
fn omitted_namespaces_are_the_hosts() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    for kind in ["network", "ipc", "uts"] {
        b.remove_namespace(kind);
    }
    // Without a uts namespace the runtime must not set the host's hostname.
    b.remove("/hostname");
    let inside = inside_ns(&ctx, &mut b, "nsshared");
    for name in ["net", "ipc", "uts"] {
        assert_eq!(lookup(&inside, name), host_ns(name), "{name}");
    }
    for name in ["pid", "mnt"] {
        assert_ne!(lookup(&inside, name), host_ns(name), "{name}");
    }
}

/// A named network namespace made with `ip netns add`, removed on drop.
struct NetNs(String);

impl NetNs {
    fn add(name: &str) -> NetNs {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed (is iproute2 installed?)");
        NetNs(name.to_string())
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

#[test]
fn joins_a_network_namespace_by_path() {
    let Some(ctx) = Ctx::new() else { return };
    let netns = NetNs::add(&unique_id("netns"));
    let ino = std::fs::metadata(netns.path())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0);
    let mut b = ctx.bundle();
    b.namespace("network", Some(&netns.path()));
    let inside = inside_ns(&ctx, &mut b, "nsjoin");
    assert_eq!(lookup(&inside, "net"), format!("net:[{ino}]"));
    assert_ne!(lookup(&inside, "net"), host_ns("net"));
}

#[test]
fn joins_the_namespaces_of_another_container() {
    let Some(ctx) = Ctx::new() else { return };
    let first = ctx.id("nsowner");
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    ctx.rt.run(&first, &b, &["-d"]).ok();
    let pid = ctx.rt.state(&first)["pid"].as_i64().unwrap_or(0);
    let theirs = |n: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut b2 = ctx.bundle();
    b2.namespace("ipc", Some(&format!("/proc/{pid}/ns/ipc")));
    b2.namespace("uts", Some(&format!("/proc/{pid}/ns/uts")));
    b2.remove("/hostname");
    let inside = inside_ns(&ctx, &mut b2, "nsguest");
    assert_eq!(lookup(&inside, "ipc"), theirs("ipc"));
    assert_eq!(lookup(&inside, "uts"), theirs("uts"));
    assert_ne!(lookup(&inside, "net"), theirs("net"));
}

#[test]
fn user_namespace_maps_ids() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("userns");
    let mut b = ctx.bundle();
    b.namespace("user", None);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
    );
    // sysfs and cgroupfs cannot be mounted fresh by a user namespace that does not own the network namespace's
    // parent; the default mounts keep working without them.
    b.remove_mount("/sys/fs/cgroup");
    b.remove_mount("/sys");
    b.mount(json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}));
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user",
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.first(), Some(&vec!["0", "100000", "65536"]), "{out}");
    assert_eq!(lines.get(1), Some(&vec!["0", "200000", "65536"]), "{out}");
    assert_eq!(lines.get(2), Some(&vec!["0"]), "{out}");
    assert_ne!(
        lines.get(3).and_then(|l| l.first()).copied(),
        Some(host_ns("user").as_str())
    );
}

#[test]
fn time_namespace_applies_offsets() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        eprintln!("skipped: runc 1.1.5 has no time namespace support");
        return;
    }
    let id = ctx.id("timens");
    let mut b = ctx.bundle();
    b.namespace("time", None);
    b.set(
        "/linux/timeOffsets",
        json!({"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 31536000, "nanosecs": 0}}),
    );
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime",
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["monotonic", "86400", "0"]),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["boottime", "31536000", "0"]),
        "{out}"
    );
    let uptime: u64 = out
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        uptime >= 31536000,
        "uptime inside {uptime} lacks the boottime offset"
    );
}
