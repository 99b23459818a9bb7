//! Pod and container life: the pod network, exit status and reason, logs, ExecSync, resources, stats,
//! stop with a grace period, the container config, restarts.

use carte_tests::engines::cri::{spec, Cri, Pod, SUBNET_PREFIX};
use carte_tests::engines::{host_memory_limit, Needle, Rt};
use k8s_cri::v1 as cri;

/// The pod audit is able to fail: a live pod's containers show up as processes, cgroups, mounts and state, and
/// its veth in containerd's network namespace.
pub fn audit_sees_live_pod(rt: Rt) {
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
    let veths = t.host_veths(&pod.id);
    assert_eq!(veths.len(), 1, "{veths:?}");
    let links = t.d.links();
    assert!(
        links.iter().any(|l| l.contains(&format!(" {}@", veths[0]))),
        "{veths:?} not in {links:?}"
    );
    let leaks = t.remove_pod_and_audit(&pod.id);
    t.forget(&pod.id);
    assert!(leaks.is_empty(), "{leaks:?}");
}

/// RunPodSandbox with a pod network: the pod gets an IP on the bridge, two containers of one pod share it and
/// reach each other on localhost, and another pod reaches it by its IP.
pub fn pod_network(rt: Rt) {
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
pub fn exit_status(rt: Rt) {
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
pub fn logs(rt: Rt) {
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
pub fn exec_sync(rt: Rt) {
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
pub fn update_resources(rt: Rt) {
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
pub fn stats(rt: Rt) {
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
pub fn stop_grace(rt: Rt) {
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

/// What CreateContainer passes through to the runtime's config: env, a working directory missing from the
/// image (created), command + args, a user by name from the image, a device from the host (with its device
/// cgroup rule), CPU shares and cpuset, and oom_score_adj for the init and an exec (the kubelet's 1000 for a
/// BestEffort pod; above containerd's own, so `restrict_oom_score_adj` keeps it).
pub fn container_config(rt: Rt) {
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
    // ExecSync's process too, not the shim's score it was started from (a carte bug this found).
    assert_eq!(t.sh(&id, "cat /proc/self/oom_score_adj"), "1000");
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
pub fn restart_and_remove(rt: Rt) {
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

/// What a node does when a deployment scales up: several pods started at once (their cgroup parents created
/// side by side under one top), then several containers started at once in one pod; every one runs.
pub fn concurrent(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let configs: Vec<cri::PodSandboxConfig> =
        (0..4).map(|i| t.pod_config(&format!("conc{i}"))).collect();
    let reqs: Vec<_> = configs
        .iter()
        .map(|c| t.run_pod_request(c.clone()))
        .collect();
    let d = &t.d;
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = reqs
            .into_iter()
            .map(|req| {
                s.spawn(move || {
                    d.block("RunPodSandbox", d.client().run_pod_sandbox(req))
                        .map(|r| r.pod_sandbox_id)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    for id in results.iter().flatten() {
        t.adopt(id);
    }
    let pods: Vec<Pod> = results
        .into_iter()
        .zip(configs)
        .map(|(r, config)| match r {
            Ok(id) => Pod { id, config },
            Err(e) => panic!("concurrent RunPodSandbox: {e}\n{}", d.log_tail()),
        })
        .collect();
    let pod = &pods[0];
    let created: Vec<String> = (0..5)
        .map(|i| t.create(pod, spec::container(&format!("c{i}"), &["sleep", "100000"])))
        .collect();
    let started: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = created
            .iter()
            .map(|id| {
                s.spawn(move || {
                    let req = cri::StartContainerRequest {
                        container_id: id.clone(),
                    };
                    d.block("StartContainer", d.client().start_container(req))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    for (id, r) in created.iter().zip(started) {
        assert!(r.is_ok(), "StartContainer {id}: {r:?}\n{}", d.log_tail());
        assert_eq!(t.sh(id, "echo up"), "up");
    }
    for p in &pods[1..] {
        let id = t.start(p, spec::sleeper("c"));
        assert_eq!(t.sh(&id, "echo up"), "up");
    }
}

/// The pod's shim dies (SIGKILL, as the OOM killer may do): containerd runs the shim's cleanup, which has the
/// runtime `delete --force` the still-running containers; they are reported exited, none of their processes
/// is left, and the pod is then removed with nothing behind (the teardown audit).
pub fn shim_killed(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("shimkill"));
    let id = t.start(&pod, spec::sleeper("c"));
    let shims: Vec<i32> = carte_tests::engines::processes_mentioning(Needle::Anywhere(&pod.id))
        .iter()
        .filter(|p| p.contains("containerd-shim"))
        .filter_map(|p| p.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(shims.len(), 1, "one shim per pod expected: {shims:?}");
    let r = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0]),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(r.is_ok(), "{r:?}");
    let st = t.wait_exited(&id);
    assert_ne!(st.exit_code, 0, "{st:?}");
    let members = || carte_tests::engines::cgroup_members(Needle::Anywhere(&id));
    let gone = carte_tests::poll_until(carte_tests::AUDIT_GRACE, || members().is_empty());
    assert!(gone, "the container outlived its shim: {:?}", members());
    let state = t.state_dir(&id);
    let deleted = carte_tests::poll_until(carte_tests::AUDIT_GRACE, || !state.exists());
    assert!(deleted, "{} left", state.display());
}
