//! Namespaced sysctls are never written to the host (issue 14). A config's `linux.sysctl` is
//! written by the container's init through the `/proc/sys` of the namespaces it is in: without its
//! own ipc, network or uts namespace that is the host's. runc 1.1.5 refuses such a config
//! (`libcontainer/configs/validate/validator.go`); so must carte, with one line naming the key, and
//! the host's value must be unchanged. Every case is run against carte and runc.

use carte_tests::*;

/// The host's value of a sysctl, by its dotted name.
fn host_value(key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    match std::fs::read_to_string(&path) {
        Ok(v) => v,
        Err(e) => panic!("read {path}: {e}"),
    }
}

/// A value different from the host's (so a write to the host would show).
fn other_value(key: &str) -> String {
    let now = host_value(key);
    match key {
        "net.ipv4.ping_group_range" if now.trim() == "1\t0" => "0 0".into(),
        "net.ipv4.ping_group_range" => "1 0".into(),
        "kernel.domainname" => "carte-test-domain".into(),
        _ => match now.trim().parse::<u64>() {
            Ok(n) if n > 10 => (n - 1).to_string(),
            Ok(n) => (n + 1).to_string(),
            Err(_) => panic!("{key} = {now:?} is not a number"),
        },
    }
}

/// Creates a container setting `key` after `edit` changed its namespaces; asserts it is refused with
/// a line naming the key, nothing is left, and the host's value did not change.
fn refused(tag: &str, key: &str, edit: impl FnOnce(&mut Bundle)) {
    let Some(ctx) = Ctx::new() else { return };
    let before = host_value(key);
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.set("/linux/sysctl", json!({ key: other_value(key) }));
    edit(&mut b);
    let id = ctx.id(tag);
    let out = ctx.rt.create(&id, &b, &[]).fails();
    assert!(out.stderr.contains(key), "error does not name {key}: {out}");
    assert_eq!(host_value(key), before, "{key} changed on the host");
    ctx.assert_no_leaks(&id);
}

#[test]
fn mqueue_sysctl_without_an_ipc_namespace_is_refused() {
    refused("mq", "fs.mqueue.queues_max", |b| {
        b.remove_namespace("ipc");
    });
}

#[test]
fn sysv_ipc_sysctl_without_an_ipc_namespace_is_refused() {
    refused("msgmax", "kernel.msgmax", |b| {
        b.remove_namespace("ipc");
    });
}

#[test]
fn net_sysctl_without_a_network_namespace_is_refused() {
    refused("pinggrp", "net.ipv4.ping_group_range", |b| {
        b.remove_namespace("network");
    });
}

/// Joining the runtime's own network namespace by path is the host's namespace too.
#[test]
fn net_sysctl_in_the_host_network_namespace_joined_by_path_is_refused() {
    let host_ns = format!("/proc/{}/ns/net", std::process::id());
    refused("pinghost", "net.ipv4.ping_group_range", |b| {
        b.remove_namespace("network");
        b.namespace("network", Some(&host_ns));
    });
}

#[test]
fn domainname_sysctl_without_a_uts_namespace_is_refused() {
    refused("domain", "kernel.domainname", |b| {
        b.remove_namespace("uts");
        b.remove("/hostname");
    });
}

/// Not namespaced at all: refused whatever namespaces the container has.
#[test]
fn a_sysctl_in_no_namespace_is_refused() {
    refused("pidmax", "kernel.pid_max", |_| {});
}

/// A namespaced sysctl whose value the kernel refuses fails in the init, after its mounts and
/// the cgroup's limits: create fails with the kernel's reason (one line naming the sysctl) and
/// leaves nothing.
#[test]
fn a_sysctl_value_the_kernel_refuses_fails_create_with_its_reason() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.set(
        "/linux/sysctl",
        json!({ "net.ipv4.ip_local_port_range": "70000 10" }),
    );
    b.resource("pids", json!({"limit": 64}));
    let id = ctx.id("badval");
    let out = ctx.rt.create(&id, &b, &[]).fails();
    assert!(
        out.stderr.contains("ip_local_port_range"),
        "error does not name the sysctl: {out}"
    );
    if is_carte() {
        assert!(faults::one_line_error(&out), "{}", out.stderr);
    }
    ctx.assert_no_leaks(&id);
}

/// `kernel.hostname` says what the `hostname` field says: runc refuses it even with a uts
/// namespace, and so does carte.
#[test]
fn hostname_sysctl_is_refused_for_the_hostname_field() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.args(&["true"]);
    b.set("/linux/sysctl", json!({"kernel.hostname": "sysctl-name"}));
    let id = ctx.id("hostsysctl");
    let out = ctx.rt.create(&id, &b, &[]).fails();
    assert!(out.stderr.contains("kernel.hostname"), "{out}");
    ctx.assert_no_leaks(&id);
}

/// An ipc namespace joined by path that is the runtime's own is the host's: runc 1.1.5 only
/// checks that an ipc namespace is listed, so it writes the host's value (not run against it).
#[test]
fn ipc_sysctl_in_the_host_ipc_namespace_joined_by_path_is_refused() {
    if !is_carte() {
        eprintln!("skipped for runc 1.1.5: it accepts the host's ipc namespace by path and writes the host");
        return;
    }
    let host_ns = format!("/proc/{}/ns/ipc", std::process::id());
    refused("mqhost", "fs.mqueue.queues_max", |b| {
        b.remove_namespace("ipc");
        b.namespace("ipc", Some(&host_ns));
    });
}

/// With their own namespaces, the same sysctls are set inside the container and only there, in
/// both spellings the spec allows (dots, or slashes for names that contain a dot).
#[test]
fn namespaced_sysctls_are_set_inside_only() {
    let Some(ctx) = Ctx::new() else { return };
    let keys = [
        "fs.mqueue.queues_max",
        "kernel.msgmax",
        "net.ipv4.ping_group_range",
    ];
    let before: Vec<String> = keys.iter().map(|k| host_value(k)).collect();
    let want: Vec<String> = keys.iter().map(|k| other_value(k)).collect();
    let mut b = ctx.bundle();
    b.set(
        "/linux/sysctl",
        json!({
            "fs/mqueue/queues_max": want[0],
            "kernel.msgmax": want[1],
            "net.ipv4.ping_group_range": want[2],
        }),
    );
    b.remove("/linux/readonlyPaths");
    let id = ctx.id("nssysctl");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "cat /proc/sys/fs/mqueue/queues_max /proc/sys/kernel/msgmax /proc/sys/net/ipv4/ping_group_range",
    );
    let inside: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(inside, want, "values inside the container");
    for (k, b) in keys.iter().zip(&before) {
        assert_eq!(&host_value(k), b, "{k} changed on the host");
    }
    ctx.assert_no_leaks(&id);
}
