//! The security context, privileged containers, host namespaces, shared pid namespace, sysctls, /etc files.

use carte_tests::engines::cri::{spec, Cri};
use carte_tests::engines::Rt;
use k8s_cri::v1 as cri;

/// A field of `/proc/<pid>/status` of the container's pid 1, read through ExecSync.
fn status_field(t: &Cri, id: &str, field: &str) -> String {
    t.sh(id, &format!("grep '^{field}:' /proc/1/status | cut -f2"))
}

/// Whether bit `cap` is set in a `/proc/*/status` capability mask.
fn has_cap(mask: &str, cap: u32) -> bool {
    u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & (1 << cap) != 0)
}

/// The kubelet's default masked and read-only paths (`securitycontext.defaultMaskedPaths` /
/// `defaultReadonlyPaths`), which it sends for every container whose procMount is Default.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

const READONLY: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The security context fields: runAsUser/runAsGroup/supplementalGroups, readOnlyRootFilesystem, capabilities
/// add/drop, allowPrivilegeEscalation false (no_new_privs), seccomp RuntimeDefault vs Unconfined, masked and
/// read-only paths.
pub fn security_context(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("secctx"));
    let mut c = spec::sleeper("user");
    let s = spec::sc(&mut c);
    s.run_as_user = Some(cri::Int64Value { value: 1000 });
    s.run_as_group = Some(cri::Int64Value { value: 2000 });
    s.supplemental_groups = vec![3000, 4000];
    s.readonly_rootfs = true;
    s.no_new_privs = true;
    s.seccomp = Some(spec::runtime_default());
    s.capabilities = Some(cri::Capability {
        add_capabilities: vec!["NET_ADMIN".into()],
        drop_capabilities: vec!["CHOWN".into()],
        ..Default::default()
    });
    s.masked_paths = MASKED.iter().map(|p| p.to_string()).collect();
    s.readonly_paths = READONLY.iter().map(|p| p.to_string()).collect();
    let user = t.start(&pod, c);
    assert_eq!(t.sh(&user, "id -u; id -g"), "1000\n2000");
    let groups = t.sh(&user, "id -G");
    for g in ["2000", "3000", "4000"] {
        assert!(groups.split_whitespace().any(|x| x == g), "{groups}");
    }
    let (code, _, _) = t.exec_sync(&user, &["touch", "/rootfs-write"]);
    assert_ne!(code, 0, "the root filesystem is writable");
    assert_eq!(status_field(&t, &user, "NoNewPrivs"), "1");
    assert_eq!(status_field(&t, &user, "Seccomp"), "2");
    // The exec'd process gets the container's user, no_new_privs, seccomp filter and bounding set too.
    let own = t.sh(
        &user,
        "id -u; grep -E '^(NoNewPrivs|Seccomp|CapBnd):' /proc/self/status | cut -f2",
    );
    let bnd1 = status_field(&t, &user, "CapBnd");
    assert_eq!(
        own,
        format!("1000\n{bnd1}\n1\n2"),
        "(uid, CapBnd, NoNewPrivs, Seccomp)"
    );
    // The effective set of uid 1000 is empty; the bounding set carries add/drop.
    let bnd = status_field(&t, &user, "CapBnd");
    assert!(has_cap(&bnd, 12) && !has_cap(&bnd, 0), "CapBnd {bnd}"); // NET_ADMIN, CHOWN
                                                                     // KILL, a default.
    assert!(has_cap(&bnd, 5), "CapBnd {bnd}");
    // Masked: a file is /dev/null, a directory an empty read-only tmpfs.
    // (/proc/timer_list is root-only; this kernel has no /proc/kcore.)
    let timers = t.exec_sync(&user, &["wc", "-c", "/proc/timer_list"]);
    assert_eq!(timers.1.split_whitespace().next(), Some("0"), "{timers:?}");
    let acpi = t.sh(
        &user,
        "awk '$2==\"/proc/acpi\" {print $3, $4}' /proc/mounts",
    );
    assert!(acpi.starts_with("tmpfs ro"), "/proc/acpi: {acpi:?}");
    let ro = t.sh(
        &user,
        "awk '$2==\"/proc/sys\" || $2==\"/proc/bus\" {print $4}' /proc/mounts",
    );
    assert!(
        !ro.is_empty() && ro.lines().all(|o| o.starts_with("ro")),
        "{ro}"
    );
    let (code, _, _) = t.exec_sync(&user, &["sh", "-c", "echo 1 >/proc/sysrq-trigger"]);
    assert_ne!(code, 0, "/proc/sysrq-trigger is writable");

    // Root with the default set: seccomp Unconfined is no filter, no_new_privs unset.
    let root = t.start(&pod, spec::sleeper("root"));
    assert_eq!(status_field(&t, &root, "Seccomp"), "0");
    assert_eq!(status_field(&t, &root, "NoNewPrivs"), "0");
    let eff = status_field(&t, &root, "CapEff");
    assert!(
        has_cap(&eff, 0) && !has_cap(&eff, 12) && !has_cap(&eff, 21),
        "CapEff {eff}"
    ); // CHOWN, NET_ADMIN, SYS_ADMIN
    assert_eq!(t.sh(&root, "touch /rootfs-write && echo ok"), "ok");
}

/// privileged: every capability containerd has, the host's devices, no seccomp, no masked paths.
pub fn privileged(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let mut cfg = t.pod_config("priv");
    spec::pod_sc(&mut cfg).privileged = true;
    let pod = t.run_pod(cfg);
    let mut c = spec::sleeper("priv");
    spec::sc(&mut c).privileged = true;
    let id = t.start(&pod, c);
    let own = std::fs::read_to_string(format!("/proc/{}/status", t.d.pid())).unwrap_or_default();
    let want = own
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or_default()
        .trim()
        .to_string();
    assert_eq!(status_field(&t, &id, "CapEff"), want);
    assert_eq!(status_field(&t, &id, "Seccomp"), "0");
    assert_eq!(t.sh(&id, "test -c /dev/kmsg && echo dev"), "dev");
    assert_ne!(t.sh(&id, "wc -c </proc/timer_list"), "0");
}

/// seccomp RuntimeDefault filters by syscall arguments: `clone`/`unshare` of a user namespace is refused without
/// CAP_SYS_ADMIN while a plain fork works; Unconfined allows both. Checked in pid 1 (through its log) and in an
/// exec'd process.
pub fn seccomp_runtime_default(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("seccomp"));
    let probe = "(true) && echo fork-ok; unshare -U true && echo userns-ok || echo userns-refused";
    let mut strict = spec::container("strict", &["sh", "-c", &format!("{probe}; sleep 100000")]);
    spec::sc(&mut strict).seccomp = Some(spec::runtime_default());
    let strict = t.start(&pod, strict);
    let open = t.start(
        &pod,
        spec::container("open", &["sh", "-c", &format!("{probe}; sleep 100000")]),
    );
    assert_eq!(t.sh(&strict, probe), "fork-ok\nuserns-refused");
    assert_eq!(t.sh(&open, probe), "fork-ok\nuserns-ok");
    let log = std::path::Path::new(&pod.config.log_directory).join("strict.log");
    let mut text = String::new();
    carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("userns-")
    });
    assert!(
        text.contains("fork-ok") && text.contains("userns-refused"),
        "{text}"
    );
}

/// hostNetwork, hostPID and hostIPC: the container is in containerd's network namespace (the pods' "host"
/// here, see the harness) and in the host's pid and IPC namespaces; PodSandboxStatus reports them as NODE.
pub fn host_namespaces(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let mut cfg = t.pod_config("hostns");
    // The kubelet sends no hostname for a hostNetwork pod (runtimes refuse one without a UTS namespace).
    cfg.hostname.clear();
    let node = cri::NamespaceMode::Node as i32;
    *spec::pod_ns(&mut cfg) = cri::NamespaceOption {
        network: node,
        pid: node,
        ipc: node,
        ..Default::default()
    };
    let pod = t.run_pod(cfg.clone());
    let mut c = spec::sleeper("c");
    *spec::ns(&mut c) = spec::pod_ns(&mut cfg).clone();
    let id = t.start(&pod, c);
    let pid = t.pid(&id);
    let ns = |pid: String, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok();
    assert_eq!(ns(pid.to_string(), "net"), ns(t.d.pid().to_string(), "net"));
    assert_eq!(ns(pid.to_string(), "pid"), ns("self".into(), "pid"));
    assert_eq!(ns(pid.to_string(), "ipc"), ns("self".into(), "ipc"));
    // The host's pid 1 is the container's pid 1.
    let init = std::fs::read("/proc/1/cmdline").unwrap_or_default();
    let init = String::from_utf8_lossy(&init).replace('\0', " ");
    assert_eq!(t.sh(&id, "tr '\\0' ' ' </proc/1/cmdline"), init.trim());
    let st = t.pod_status(&pod.id).status.unwrap_or_default();
    let opts = st
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .unwrap_or_default();
    assert_eq!(
        (opts.network, opts.pid, opts.ipc),
        (node, node, node),
        "{opts:?}"
    );
}

/// shareProcessNamespace (pid POD): the containers and the pause process share one pid namespace whose pid 1
/// is the pause process; a container's leftover processes die with its init.
pub fn share_process_namespace(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let mut cfg = t.pod_config("sharepid");
    spec::pod_ns(&mut cfg).pid = cri::NamespaceMode::Pod as i32;
    let pod = t.run_pod(cfg);
    let mut a = spec::container("a", &["sleep", "100001"]);
    spec::ns(&mut a).pid = cri::NamespaceMode::Pod as i32;
    let mut b = spec::container("b", &["sleep", "100002"]);
    spec::ns(&mut b).pid = cri::NamespaceMode::Pod as i32;
    let a = t.start(&pod, a);
    let b = t.start(&pod, b);
    let ps = t.sh(&b, "ps -o args");
    assert!(
        ps.contains("sleep 100001") && ps.contains("sleep 100002"),
        "{ps}"
    );
    assert!(
        t.sh(&a, "tr '\\0' ' ' </proc/1/cmdline").contains("trap"),
        "pid 1 is not the pause process"
    );
    let ns = |id: &str| std::fs::read_link(format!("/proc/{}/ns/pid", t.pid(id))).ok();
    assert_eq!(ns(&a), ns(&b));
    // Without a pid namespace of its own, a container's processes do not die with its init: the shim kills
    // what is left in its cgroup (the runtime's `kill --all`) when the init exits.
    let mut c = spec::container("c", &["sh", "-c", "sleep 100003 & echo started; exit 0"]);
    spec::ns(&mut c).pid = cri::NamespaceMode::Pod as i32;
    let c = t.start(&pod, c);
    let st = t.wait_exited(&c);
    assert_eq!(st.exit_code, 0, "{st:?}");
    let mut ps = String::new();
    let gone = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        ps = t.sh(&b, "ps -o args");
        !ps.contains("sleep 100003")
    });
    assert!(gone, "the exited container's child lives on:\n{ps}");
}

/// Namespaced sysctls of the pod (net.* in the pod's network namespace, kernel.shm* in its IPC namespace) are
/// set in the sandbox and its containers, and not on the host.
pub fn sysctls(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let mut cfg = t.pod_config("sysctl");
    spec::pod_linux(&mut cfg).sysctls = [
        ("net.ipv4.ip_local_port_range", "40000 50000"),
        ("kernel.shm_rmid_forced", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let pod = t.run_pod(cfg);
    let id = t.start(&pod, spec::sleeper("c"));
    let got = t.sh(
        &id,
        "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced",
    );
    assert_eq!(
        got.split_whitespace().collect::<Vec<_>>(),
        ["40000", "50000", "1"]
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap_or_default();
    assert_eq!(host.trim(), "0", "the pod's sysctl reached the host");
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf as the CRI plugin makes them from the pod config.
pub fn etc_files(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("etc"));
    let id = t.start(&pod, spec::sleeper("c"));
    assert_eq!(
        t.sh(&id, "hostname; cat /etc/hostname"),
        "carte-pod\ncarte-pod"
    );
    let resolv = t.sh(&id, "cat /etc/resolv.conf");
    for want in [
        "nameserver 10.96.0.10",
        "search default.svc.cluster.local svc.cluster.local",
        "options ndots:5",
    ] {
        assert!(resolv.lines().any(|l| l.trim() == want), "{resolv}");
    }
    assert!(t.sh(&id, "cat /etc/hosts").contains("localhost"));
    let mounted = t.sh(&id, "awk '{print $2}' /proc/mounts");
    for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
        assert!(
            mounted.lines().any(|m| m == f),
            "{f} not mounted: {mounted}"
        );
    }
}

/// Sysctls the pod may not set are refused by the runtime and reach nothing: a kernel-wide one
/// (`kernel.panic_on_oops`, in no namespace) and a net.* one in a hostNetwork pod (the host's network
/// namespace). The kubelet's allow-list normally stops these first; the runtime is the last line.
pub fn sysctls_refused(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let host = || std::fs::read_to_string("/proc/sys/kernel/panic_on_oops").unwrap_or_default();
    let before = host();
    let flipped = if before.trim() == "0" { "1" } else { "0" };
    let mut cfg = t.pod_config("sysctlno");
    spec::pod_linux(&mut cfg).sysctls =
        [("kernel.panic_on_oops".to_string(), flipped.to_string())].into();
    let r = t.try_run_pod(cfg);
    assert!(r.is_err(), "a kernel-wide sysctl was accepted: {r:?}");
    assert_eq!(host(), before);

    let mut cfg = t.pod_config("sysctlhostnet");
    cfg.hostname.clear();
    spec::pod_ns(&mut cfg).network = cri::NamespaceMode::Node as i32;
    spec::pod_linux(&mut cfg).sysctls = [(
        "net.ipv4.ip_local_port_range".to_string(),
        "40001 50001".to_string(),
    )]
    .into();
    // /proc/sys/net shows the reader's network namespace: read it in containerd's.
    let range = || {
        let mut cmd = std::process::Command::new("nsenter");
        cmd.args(["-t", &t.d.pid().to_string(), "-n", "cat"])
            .arg("/proc/sys/net/ipv4/ip_local_port_range");
        carte_tests::engines::run(cmd).ok().stdout
    };
    let before = range();
    assert!(!before.trim().is_empty());
    let r = t.try_run_pod(cfg);
    assert!(
        r.is_err(),
        "a net.* sysctl in the host's network namespace was accepted: {r:?}"
    );
    assert_eq!(range(), before);
}

/// The pod-level security context the kubelet passes for the sandbox: the pause process runs as the pod's
/// runAsUser/runAsGroup (containerd 1.6 gives it only the group, not the pod's supplemental groups).
pub fn sandbox_security(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let mut cfg = t.pod_config("sandboxsec");
    let s = spec::pod_sc(&mut cfg);
    s.run_as_user = Some(cri::Int64Value { value: 65535 });
    s.run_as_group = Some(cri::Int64Value { value: 65534 });
    s.supplemental_groups = vec![5000];
    let pod = t.run_pod(cfg);
    let info = t.pod_status(&pod.id).info;
    let pid = info
        .get("info")
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v["pid"].as_i64())
        .unwrap_or_default();
    assert!(pid > 0, "no pause pid in {info:?}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), "65535 65535 65535 65535", "{status}");
    assert_eq!(field("Gid:"), "65534 65534 65534 65534", "{status}");
    assert_eq!(field("Groups:"), "65534", "{status}");
}
