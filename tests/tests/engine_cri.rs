//! The runtime as a Kubernetes RuntimeClass handler: containerd's CRI plugin driven over CRI v1 with the calls the
//! kubelet makes, each scenario once with the `runc` handler (`<scenario>::runc`, the reference) and once with the
//! `carte` handler (`<scenario>::carte`). Every pod is stopped, removed and audited when its test ends
//! (processes, shims, cgroups, mounts, netns, IPAM lease, the handler's state); the last test to finish stops
//! containerd and checks that no veth, shim or mount is left. Images come from `ctr images import` (no
//! PullImage: there is no registry, as with the kubelet's `IfNotPresent` on a preloaded node).

use carte_tests::engines::cri::{spec, stream, Cri, SUBNET_PREFIX};
use carte_tests::engines::{host_memory_limit, Needle, Rt};
use carte_tests::per_runtime;
use k8s_cri::v1 as cri;
use nix::mount::MsFlags;

per_runtime!(
    audit_sees_live_pod,
    pod_network,
    exit_status,
    logs,
    exec_sync,
    update_resources,
    stats,
    stop_grace,
    security_context,
    privileged,
    host_namespaces,
    share_process_namespace,
    sysctls,
    etc_files,
    volumes,
    exec_stream,
    attach,
    port_forward,
    seccomp_runtime_default,
    exec_tty,
    container_config,
    restart_and_remove,
    attach_tty,
);

/// The pod audit is able to fail: a live pod's containers show up as processes, cgroups, mounts and state.
fn audit_sees_live_pod(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("auditlive"));
    let id = t.start(&pod, spec::sleeper("c"));
    let leaks = carte_tests::engines::container_leaks_now(Needle::Anywhere(&id), &t.state_dir(&id));
    for what in ["process", "cgroup", "runtime state", "mount"] {
        assert!(
            leaks.iter().any(|l| l.starts_with(what)),
            "no {what} in {leaks:?}"
        );
    }
    let leaks = t.remove_pod_and_audit(&pod.id);
    t.forget(&pod.id);
    assert!(leaks.is_empty(), "{leaks:?}");
}

/// RunPodSandbox with a pod network: the pod gets an IP on the bridge, two containers of one pod share it and
/// reach each other on localhost, and another pod reaches it by its IP.
fn pod_network(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let a = t.run_pod(t.pod_config("neta"));
    let ip = t.pod_ip(&a.id);
    assert!(ip.starts_with(SUBNET_PREFIX), "pod IP {ip:?}");
    let web = t.start(
        &a,
        spec::container(
            "web",
            &[
                "sh",
                "-c",
                "echo hello-from-a >/tmp/index.html; exec httpd -f -p 8080 -h /tmp",
            ],
        ),
    );
    let side = t.start(&a, spec::sleeper("side"));
    let addr = "ip -o -4 addr show eth0 | awk '{print $4}'";
    assert_eq!(t.sh(&web, addr), format!("{ip}/24"));
    assert_eq!(t.sh(&side, addr), format!("{ip}/24"));
    let get = |c: &str, host: &str| {
        let script = format!("for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O - http://{host}:8080/index.html && exit 0; sleep 0.3; done; exit 1");
        t.sh(c, &script)
    };
    assert_eq!(get(&side, "127.0.0.1"), "hello-from-a");
    let b = t.run_pod(t.pod_config("netb"));
    let ip_b = t.pod_ip(&b.id);
    assert!(
        ip_b.starts_with(SUBNET_PREFIX) && ip_b != ip,
        "{ip_b} vs {ip}"
    );
    let client = t.start(&b, spec::sleeper("client"));
    assert_eq!(get(&client, &ip), "hello-from-a");
}

/// ContainerStatus of exited containers: exit 0 is `Completed`, exit 3 is `Error` with code 3, a container
/// killed by the OOM killer under its memory limit is `OOMKilled` with 137.
fn exit_status(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("exit"));
    let ok = t.start(&pod, spec::container("ok", &["true"]));
    let bad = t.start(&pod, spec::container("bad", &["sh", "-c", "exit 3"]));
    let mut oom = spec::container("oom", &["sh", "-c", "tail /dev/zero"]);
    spec::resources(&mut oom).memory_limit_in_bytes = 32 << 20;
    let oom = t.start(&pod, oom);
    let st = t.wait_exited(&ok);
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (0, "Completed"),
        "{st:?}"
    );
    // Both set (not ordered: containerd stamps started_at after the start call returns, which a container
    // exiting at once can beat).
    assert!(st.started_at > 0 && st.finished_at > 0, "{st:?}");
    let st = t.wait_exited(&bad);
    assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"), "{st:?}");
    let st = t.wait_exited(&oom);
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (137, "OOMKilled"),
        "{st:?}"
    );
}

/// The container's stdout and stderr land in the CRI log file (`<log_directory>/<log_path>`) in the CRI format:
/// `<RFC3339 time> <stream> F <line>`.
fn logs(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("logs"));
    let id = t.start(
        &pod,
        spec::container("log", &["sh", "-c", "echo out-line; echo err-line >&2"]),
    );
    let st = t.wait_exited(&id);
    assert_eq!(st.exit_code, 0, "{st:?}");
    let path = std::path::Path::new(&pod.config.log_directory).join("log.log");
    assert_eq!(st.log_path, path.display().to_string());
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    for (stream, line) in [("stdout", "out-line"), ("stderr", "err-line")] {
        assert!(
            lines.iter().any(|f| f.len() == 4
                && f[1] == stream
                && f[2] == "F"
                && f[3] == line
                && f[0].ends_with('Z')),
            "no {stream} {line} in {path:?}:\n{text}"
        );
    }
}

/// ExecSync: stdout and stderr apart, the exit code, a user and working directory of the image's config.
fn exec_sync(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("exec"));
    let id = t.start(&pod, spec::sleeper("c"));
    let (code, out, err) = t.exec_sync(
        &id,
        &["sh", "-c", "echo ex-$((2+3)); echo oops >&2; exit 5"],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (5, "ex-5\n", "oops\n"));
    assert_eq!(t.sh(&id, "id -u; pwd"), "0\n/");
    // The exec joins the container: same pid namespace as its pid 1, same cgroup.
    assert_eq!(
        t.sh(&id, "cat /proc/1/cmdline | tr '\\0' ' '"),
        "sleep 100000"
    );
    let st = t.status(&id);
    assert_eq!(
        st.state,
        cri::ContainerState::ContainerRunning as i32,
        "{st:?}"
    );
}

/// UpdateContainerResources: the new memory limit and CPU quota land in the running container's cgroups.
fn update_resources(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("update"));
    let mut c = spec::sleeper("c");
    spec::resources(&mut c).memory_limit_in_bytes = 64 << 20;
    let id = t.start(&pod, c);
    let pid = t.pid(&id);
    assert!(pid > 0, "no pid for {id}");
    assert_eq!(host_memory_limit(pid), (64u64 << 20).to_string());
    let req = cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 128 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = t.d.block(
        "UpdateContainerResources",
        t.d.client().update_container_resources(req),
    );
    assert!(
        r.is_ok(),
        "UpdateContainerResources: {r:?}\n{}",
        t.d.log_tail()
    );
    assert_eq!(host_memory_limit(pid), (128u64 << 20).to_string());
    let cpu = carte_tests::cgroups::path_of(pid, "cpu").unwrap_or_default();
    let quota = carte_tests::cgroups::read_limit("cpu", &cpu, "cpu.cfs_quota_us", "cpu.max");
    assert!(
        quota.as_ref().is_some_and(|(_, q)| q.starts_with("50000")),
        "{quota:?}"
    );
    assert_eq!(t.sh(&id, "echo alive"), "alive");
}

/// ContainerStats and ListContainerStats: CPU and memory usage read from the container's cgroup.
fn stats(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("stats"));
    let id = t.start(
        &pod,
        spec::container(
            "c",
            &[
                "sh",
                "-c",
                "x=$(head -c 4000000 /dev/zero | tr '\\0' a); sleep 100000",
            ],
        ),
    );
    let mut last = None;
    let seen = carte_tests::poll_until(carte_tests::runtime::TIMEOUT, || {
        let req = cri::ContainerStatsRequest {
            container_id: id.clone(),
        };
        last =
            t.d.block("ContainerStats", t.d.client().container_stats(req))
                .ok()
                .and_then(|r| r.stats);
        last.as_ref().is_some_and(|s| {
            let mem = s.memory.as_ref().and_then(|m| m.working_set_bytes);
            let cpu = s.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds);
            mem.is_some_and(|m| m.value > 0) && cpu.is_some_and(|c| c.value > 0)
        })
    });
    assert!(seen, "ContainerStats {id}: {last:?}");
    let req = cri::ListContainerStatsRequest {
        filter: Some(cri::ContainerStatsFilter {
            pod_sandbox_id: pod.id.clone(),
            ..Default::default()
        }),
    };
    let list =
        t.d.block("ListContainerStats", t.d.client().list_container_stats(req))
            .map(|r| r.stats)
            .unwrap_or_default();
    assert!(
        list.iter()
            .any(|s| s.attributes.as_ref().is_some_and(|a| a.id == id)),
        "{list:?}"
    );
}

/// StopContainer with a grace period: a container that traps SIGTERM exits with the code it chose; one that
/// ignores it is killed when the grace period ends (137).
fn stop_grace(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("stop"));
    let trap = t.start(
        &pod,
        spec::container(
            "trap",
            &[
                "sh",
                "-c",
                "trap 'echo got-term; exit 42' TERM; while :; do sleep 0.1; done",
            ],
        ),
    );
    let deaf = t.start(
        &pod,
        spec::container(
            "deaf",
            &["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
        ),
    );
    // Both must have set their traps before the signal comes.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r = t.stop_container(&trap, 30);
    assert!(r.is_ok(), "{r:?}");
    let st = t.status(&trap);
    assert_eq!(
        (st.state, st.exit_code),
        (cri::ContainerState::ContainerExited as i32, 42),
        "{st:?}"
    );
    let r = t.stop_container(&deaf, 1);
    assert!(r.is_ok(), "{r:?}");
    let st = t.status(&deaf);
    assert_eq!(
        (st.state, st.exit_code),
        (cri::ContainerState::ContainerExited as i32, 137),
        "{st:?}"
    );
    let log = std::path::Path::new(&pod.config.log_directory).join("trap.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("got-term"), "{log:?}: {text}");
}

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
fn security_context(rt: Rt) {
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
fn privileged(rt: Rt) {
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

/// hostNetwork, hostPID and hostIPC: the container is in containerd's network namespace (the pods' "host"
/// here, see the harness) and in the host's pid and IPC namespaces; PodSandboxStatus reports them as NODE.
fn host_namespaces(rt: Rt) {
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
/// is the pause process; without it each container is its own pid 1.
fn share_process_namespace(rt: Rt) {
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
}

/// Namespaced sysctls of the pod (net.* in the pod's network namespace, kernel.shm* in its IPC namespace) are
/// set in the sandbox and its containers, and not on the host.
fn sysctls(rt: Rt) {
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
fn etc_files(rt: Rt) {
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

/// Host mounts the volumes test made (a shared bind of its dir, tmpfs under it), detached on drop.
struct HostMounts(Vec<std::path::PathBuf>);

impl HostMounts {
    #[track_caller]
    fn mount(
        &mut self,
        src: Option<&str>,
        target: &std::path::Path,
        fstype: Option<&str>,
        flags: MsFlags,
    ) {
        let r = nix::mount::mount(src, target, fstype, flags, None::<&str>);
        assert!(r.is_ok(), "mount {}: {r:?}", target.display());
        self.0.push(target.to_path_buf());
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Volumes with each mount propagation: `Private` sees no mount the host makes after the start,
/// `HostToContainer` sees it, and `Bidirectional` (privileged) makes a mount inside that appears on the host.
/// The CRI plugin requires the host path's mount to be shared (slave is enough for HostToContainer), as a
/// kubelet's /var/lib/kubelet is: this host's / is private, so the test makes its volume dir a shared bind
/// mount.
fn volumes(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let cfg = t.pod_config("vol");
    let uid = cfg.metadata.clone().unwrap_or_default().uid;
    let v = t.d.dir().join(format!("vol-{uid}"));
    for sub in ["priv/m", "h2c/m", "bidi/m"] {
        let r = std::fs::create_dir_all(v.join(sub));
        assert!(r.is_ok(), "{r:?}");
    }
    let mut host = HostMounts(Vec::new());
    let vs = v.display().to_string();
    host.mount(Some(vs.as_str()), &v, None, MsFlags::MS_BIND);
    let r = nix::mount::mount(
        None::<&str>,
        &v,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    );
    assert!(r.is_ok(), "make {vs} shared: {r:?}");
    let mut cfg = cfg;
    spec::pod_sc(&mut cfg).privileged = true;
    let pod = t.run_pod(cfg);
    let mut c = spec::sleeper("c");
    spec::sc(&mut c).privileged = true;
    let vol = |sub: &str, p: cri::MountPropagation| cri::Mount {
        container_path: format!("/{sub}"),
        host_path: v.join(sub).display().to_string(),
        propagation: p as i32,
        ..Default::default()
    };
    c.mounts = vec![
        vol("priv", cri::MountPropagation::PropagationPrivate),
        vol("h2c", cri::MountPropagation::PropagationHostToContainer),
        vol("bidi", cri::MountPropagation::PropagationBidirectional),
    ];
    let id = t.start(&pod, c);
    for sub in ["priv", "h2c"] {
        host.mount(
            Some("tmpfs"),
            &v.join(sub).join("m"),
            Some("tmpfs"),
            MsFlags::empty(),
        );
        let r = std::fs::write(v.join(sub).join("m/f"), "from-host");
        assert!(r.is_ok(), "{r:?}");
    }
    let seen = t.sh(&id, "cat /priv/m/f 2>/dev/null; echo /; cat /h2c/m/f");
    assert_eq!(
        seen, "/\nfrom-host",
        "Private must not see the host's new mount, HostToContainer must"
    );
    t.sh(
        &id,
        "mount -t tmpfs tmpfs /bidi/m && echo from-ctr >/bidi/m/f",
    );
    host.0.push(v.join("bidi/m"));
    let got = std::fs::read_to_string(v.join("bidi/m/f")).unwrap_or_default();
    assert_eq!(
        got.trim(),
        "from-ctr",
        "the container's mount did not reach the host"
    );
}

/// The final status of an exec/attach stream (channel 3): `Success`, or the exit code of `NonZeroExitCode`.
fn stream_exit(s: &stream::Session) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(&s.text(3)).ok()?;
    match v["status"].as_str()? {
        "Success" => Some(0),
        _ => v["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")?["message"]
            .as_str()?
            .parse()
            .ok(),
    }
}

/// Streaming Exec through containerd's streaming server (what `kubectl exec` reaches): stdout and stderr on
/// their channels and the exit code in the final status; with stdin, what is sent reaches the process.
fn exec_stream(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("execst"));
    let id = t.start(&pod, spec::sleeper("c"));
    let exec = |cmd: &[&str], stdin: bool| {
        let req = cri::ExecRequest {
            container_id: id.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            stdin,
            stdout: true,
            stderr: true,
            tty: false,
        };
        match t.d.block("Exec", t.d.client().exec(req)) {
            Ok(r) => r.url,
            Err(e) => panic!("Exec: {e}"),
        }
    };
    let url = exec(&["sh", "-c", "echo ex-out; echo ex-err >&2; exit 4"], false);
    let s = stream::session(t.d.pid(), &url, vec![], |_| false);
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.text(1).as_str(), s.text(2).as_str()),
        ("ex-out\n", "ex-err\n"),
        "{s:?}"
    );
    assert_eq!(stream_exit(&s), Some(4), "{s:?}");
    let url = exec(&["sh", "-c", "read l; echo got-$l"], true);
    let s = stream::session(t.d.pid(), &url, vec![(0, b"ping\n".to_vec())], |_| false);
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.text(1), "got-ping\n", "{s:?}");
    assert_eq!(stream_exit(&s), Some(0), "{s:?}");
}

/// Attach (what `kubectl attach -i` reaches) to a container started with stdin: a line sent reaches its
/// pid 1, its output comes back, and it exits with its own code.
fn attach(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("attach"));
    let mut c = spec::container(
        "c",
        &["sh", "-c", "echo ready; read l; echo got-$l; exit 7"],
    );
    c.stdin = true;
    c.stdin_once = true;
    let id = t.start(&pod, c);
    let req = cri::AttachRequest {
        container_id: id.clone(),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let url = match t.d.block("Attach", t.d.client().attach(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("Attach: {e}"),
    };
    let s = stream::session(t.d.pid(), &url, vec![(0, b"pong\n".to_vec())], |s| {
        s.text(1).contains("got-pong")
    });
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert!(s.text(1).contains("got-pong"), "{s:?}");
    let st = t.wait_exited(&id);
    assert_eq!(st.exit_code, 7, "{st:?}");
    let log = std::path::Path::new(&pod.config.log_directory).join("c.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("got-pong"), "{log:?}: {text}");
}

/// PortForward (what `kubectl port-forward` reaches): an HTTP request sent on the data channel reaches a
/// server listening on the pod's port and its answer comes back.
fn port_forward(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("portfwd"));
    let web = t.start(
        &pod,
        spec::container(
            "web",
            &[
                "sh",
                "-c",
                "echo forwarded-hello >/tmp/index.html; exec httpd -f -p 8080 -h /tmp",
            ],
        ),
    );
    // The server must listen before the stream dials it.
    t.sh(
        &web,
        "for i in $(seq 50); do netstat -ltn | grep -q ':8080 ' && exit 0; sleep 0.1; done; exit 1",
    );
    let req = cri::PortForwardRequest {
        pod_sandbox_id: pod.id.clone(),
        port: vec![8080],
    };
    let url = match t.d.block("PortForward", t.d.client().port_forward(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("PortForward: {e}"),
    };
    let http = b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n".to_vec();
    let s = stream::session(
        t.d.pid(),
        &format!("{url}?port=8080"),
        vec![(0, http)],
        |s| s.text(0).contains("forwarded-hello"),
    );
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    // Each channel opens with the port, little-endian.
    let data = s.channels.first().cloned().unwrap_or_default();
    assert_eq!(data.get(..2), Some(&8080u16.to_le_bytes()[..]), "{s:?}");
    assert!(s.text(0).contains("200 OK"), "{s:?}");
}

/// seccomp RuntimeDefault filters by syscall arguments: `clone`/`unshare` of a user namespace is refused without
/// CAP_SYS_ADMIN while a plain fork works; Unconfined allows both. Checked in pid 1 (through its log) and in an
/// exec'd process.
fn seccomp_runtime_default(rt: Rt) {
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

/// Streaming Exec with a terminal (`kubectl exec -it`): the process gets a pty from the runtime's console
/// socket, and a resize sent on channel 4 reaches it.
fn exec_tty(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("exectty"));
    let id = t.start(&pod, spec::sleeper("c"));
    let script =
        "test -t 0 && test -t 1 && echo is-a-tty; for i in $(seq 100); do s=$(stty size); \
                  [ \"$s\" = '30 100' ] && break; sleep 0.1; done; echo size=$s; exit 3";
    let req = cri::ExecRequest {
        container_id: id.clone(),
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let url = match t.d.block("Exec", t.d.client().exec(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("Exec: {e}"),
    };
    let resize = br#"{"Width":100,"Height":30}"#.to_vec();
    let s = stream::session(t.d.pid(), &url, vec![(4, resize)], |_| false);
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    let out = s.text(1);
    assert!(
        out.contains("is-a-tty") && out.contains("size=30 100"),
        "{s:?}"
    );
    assert_eq!(stream_exit(&s), Some(3), "{s:?}");
}

/// What CreateContainer passes through to the runtime's config: env, a working directory missing from the
/// image (created), command + args, a user by name from the image, a device from the host (with its device
/// cgroup rule), CPU shares and cpuset, and oom_score_adj (the kubelet's 1000 for a BestEffort pod; above
/// containerd's own, so `restrict_oom_score_adj` keeps it).
fn container_config(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("ccfg"));
    let mut c = spec::container("c", &["sh", "-c"]);
    c.args = vec!["sleep 100000".into()];
    c.working_dir = "/work/dir".into();
    c.envs = vec![cri::KeyValue {
        key: "GREETING".into(),
        value: "hello world".into(),
    }];
    c.devices = vec![cri::Device {
        container_path: "/dev/xnull".into(),
        host_path: "/dev/null".into(),
        permissions: "rwm".into(),
    }];
    spec::sc(&mut c).run_as_username = "user".into();
    let r = spec::resources(&mut c);
    r.cpu_shares = 512;
    r.cpuset_cpus = "0".into();
    r.oom_score_adj = 1000;
    let id = t.start(&pod, c);
    assert_eq!(
        t.sh(
            &id,
            "id -u; pwd; echo \"$GREETING\"; echo data >/dev/xnull && echo wrote"
        ),
        "1000\n/work/dir\nhello world\nwrote"
    );
    let pid = t.pid(&id);
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap_or_default();
    assert_eq!(adj.trim(), "1000");
    let limit = |ctrl: &str, v1: &str, v2: &str| {
        let path = carte_tests::cgroups::path_of(pid, ctrl).unwrap_or_default();
        carte_tests::cgroups::read_limit(ctrl, &path, v1, v2)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    // cpu.weight on v2 is the kernel's conversion of the shares; v1 keeps them.
    let shares = limit("cpu", "cpu.shares", "cpu.weight");
    assert!(shares == "512" || shares == "20", "cpu shares {shares}");
    assert_eq!(limit("cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
}

/// The kubelet's restart of an exited container in a live pod: a new container of the same name (attempt 1)
/// starts, and RemoveContainer of the old one leaves nothing of it (state, cgroup, mounts) while the pod lives.
fn restart_and_remove(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("restart"));
    let first = t.start(&pod, spec::container("c", &["sh", "-c", "exit 1"]));
    let st = t.wait_exited(&first);
    assert_eq!(st.exit_code, 1, "{st:?}");
    let mut again = spec::sleeper("c");
    again.metadata = Some(cri::ContainerMetadata {
        name: "c".into(),
        attempt: 1,
    });
    let second = t.start(&pod, again);
    assert_eq!(t.sh(&second, "echo up"), "up");
    let req = cri::RemoveContainerRequest {
        container_id: first.clone(),
    };
    let r =
        t.d.block("RemoveContainer", t.d.client().remove_container(req));
    assert!(r.is_ok(), "RemoveContainer: {r:?}");
    let leaks =
        carte_tests::engines::container_leaks(Needle::Anywhere(&first), &t.state_dir(&first));
    assert!(leaks.is_empty(), "{leaks:?}");
    assert_eq!(t.containers_of(&pod.id), vec![second]);
}

/// A container with a terminal (`kubectl run -it`): the runtime hands its pty to the shim through the console
/// socket; Attach with a terminal carries a line in and the answer out, and the exit code is the container's.
fn attach_tty(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("attachtty"));
    let mut c = spec::container(
        "c",
        &[
            "sh",
            "-c",
            "test -t 0 && echo is-a-tty; read l; echo got-$l; exit 9",
        ],
    );
    c.stdin = true;
    c.stdin_once = true;
    c.tty = true;
    let id = t.start(&pod, c);
    let req = cri::AttachRequest {
        container_id: id.clone(),
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let url = match t.d.block("Attach", t.d.client().attach(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("Attach: {e}"),
    };
    let s = stream::session(t.d.pid(), &url, vec![(0, b"tty-line\r".to_vec())], |s| {
        s.text(1).contains("got-tty-line")
    });
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert!(s.text(1).contains("got-tty-line"), "{s:?}");
    let st = t.wait_exited(&id);
    assert_eq!(st.exit_code, 9, "{st:?}");
    let log = std::path::Path::new(&pod.config.log_directory).join("c.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("is-a-tty"), "{log:?}: {text}");
}
