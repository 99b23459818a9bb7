//! [`Cri`], one test's handle on the shared CRI daemon with one handler: the CRI calls the scenarios make, and
//! the removal and audit of its pods on drop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_cri::v1 as cri;

use super::{spec, CriDaemon, NS};
use crate::engines::{container_leaks, report, Names, Needle, Rt, TIMEOUT};

/// One pod as the test made it: its id and the config it was run with (CreateContainer needs it again).
#[derive(Clone)]
pub struct Pod {
    pub id: String,
    pub config: cri::PodSandboxConfig,
}

/// One test's handle on the shared CRI daemon with one handler; removes and audits its pods on drop.
pub struct Cri {
    pub d: Arc<CriDaemon>,
    pub rt: Rt,
    pods: Names,
}

impl Cri {
    /// `None` (after saying why) when not root, or when containerd is not installed outside CI (CI installs it
    /// with tests/setup.sh, so there a missing containerd fails).
    pub fn new(rt: Rt) -> Option<Cri> {
        if std::env::var_os("CI").is_none() && crate::engines::which("containerd").is_none() {
            eprintln!("skipped: containerd is not installed (tests/setup.sh installs it)");
            return None;
        }
        if !crate::engines::can_run(
            rt,
            &[
                "containerd",
                "ctr",
                "containerd-shim-runc-v2",
                "unshare",
                "nsenter",
            ],
        ) {
            return None;
        }
        let bridge = Path::new("/usr/lib/cni/bridge");
        assert!(
            bridge.exists(),
            "{} missing (tests/setup.sh installs containernetworking-plugins)",
            bridge.display()
        );
        Some(Cri {
            d: CriDaemon::shared(),
            rt,
            pods: Names::default(),
        })
    }

    pub fn handler(&self) -> &'static str {
        self.rt.name()
    }

    /// A pod config as the kubelet sends it: unique name and uid, hostname, log directory, DNS, cgroup parent.
    pub fn pod_config(&self, tag: &str) -> cri::PodSandboxConfig {
        let uid = crate::unique_id(tag);
        spec::pod(
            &uid,
            &self.d.dir().join("pods").join(&uid),
            &format!("/{}/pod{uid}", self.d.cgroup_top(self.rt)),
        )
    }

    /// RunPodSandbox with our handler; panics with the error (and containerd's log) on failure.
    #[track_caller]
    pub fn run_pod(&self, config: cri::PodSandboxConfig) -> Pod {
        match self.try_run_pod(config.clone()) {
            Ok(id) => Pod { id, config },
            Err(e) => panic!("RunPodSandbox: {e}\n{}", self.d.log_tail()),
        }
    }

    pub fn try_run_pod(&self, config: cri::PodSandboxConfig) -> Result<String, tonic::Status> {
        let req = self.run_pod_request(config);
        let id = self
            .d
            .block("RunPodSandbox", self.d.client().run_pod_sandbox(req))?
            .pod_sandbox_id;
        self.pods.borrow_mut().push(id.clone());
        Ok(id)
    }

    pub fn pod_status(&self, pod: &str) -> cri::PodSandboxStatusResponse {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.to_string(),
            verbose: true,
        };
        match self
            .d
            .block("PodSandboxStatus", self.d.client().pod_sandbox_status(req))
        {
            Ok(r) => r,
            Err(e) => panic!("PodSandboxStatus {pod}: {e}"),
        }
    }

    /// The pod's IP from PodSandboxStatus.
    pub fn pod_ip(&self, pod: &str) -> String {
        let st = self.pod_status(pod).status.unwrap_or_default();
        st.network.map(|n| n.ip).unwrap_or_default()
    }

    /// CreateContainer in `pod`; panics on failure.
    #[track_caller]
    pub fn create(&self, pod: &Pod, config: cri::ContainerConfig) -> String {
        match self.try_create(pod, config) {
            Ok(id) => id,
            Err(e) => panic!("CreateContainer: {e}\n{}", self.d.log_tail()),
        }
    }

    pub fn try_create(
        &self,
        pod: &Pod,
        config: cri::ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        self.d
            .block("CreateContainer", self.d.client().create_container(req))
            .map(|r| r.container_id)
    }

    pub fn try_start(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::StartContainerRequest {
            container_id: id.to_string(),
        };
        self.d
            .block("StartContainer", self.d.client().start_container(req))
            .map(|_| ())
    }

    /// CreateContainer + StartContainer; panics on failure.
    #[track_caller]
    pub fn start(&self, pod: &Pod, config: cri::ContainerConfig) -> String {
        let id = self.create(pod, config);
        if let Err(e) = self.try_start(&id) {
            panic!("StartContainer {id}: {e}\n{}", self.d.log_tail());
        }
        id
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> cri::ContainerStatus {
        let req = cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        match self
            .d
            .block("ContainerStatus", self.d.client().container_status(req))
        {
            Ok(r) => r.status.unwrap_or_default(),
            Err(e) => panic!("ContainerStatus {id}: {e}"),
        }
    }

    /// Polls ContainerStatus until the container has exited; panics after [`TIMEOUT`].
    #[track_caller]
    pub fn wait_exited(&self, id: &str) -> cri::ContainerStatus {
        let mut last = cri::ContainerStatus::default();
        let done = crate::poll_until(TIMEOUT, || {
            last = self.status(id);
            last.state == cri::ContainerState::ContainerExited as i32
        });
        assert!(done, "container {id} never exited: {last:?}");
        last
    }

    /// ExecSync: `(exit code, stdout, stderr)`.
    #[track_caller]
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> (i32, String, String) {
        let req = cri::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        match self.d.block("ExecSync", self.d.client().exec_sync(req)) {
            Ok(r) => (
                r.exit_code,
                String::from_utf8_lossy(&r.stdout).to_string(),
                String::from_utf8_lossy(&r.stderr).to_string(),
            ),
            Err(e) => panic!("ExecSync {id} {cmd:?}: {e}\n{}", self.d.log_tail()),
        }
    }

    /// ExecSync of `sh -c script` that must exit 0; its stdout, trimmed.
    #[track_caller]
    pub fn sh(&self, id: &str, script: &str) -> String {
        let (code, out, err) = self.exec_sync(id, &["sh", "-c", script]);
        assert_eq!(code, 0, "`{script}` in {id}: stdout {out:?} stderr {err:?}");
        out.trim().to_string()
    }

    pub fn stop_container(&self, id: &str, timeout: i64) -> Result<(), tonic::Status> {
        let req = cri::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        self.d
            .block("StopContainer", self.d.client().stop_container(req))
            .map(|_| ())
    }

    /// The host pid of a running container's init, from the verbose ContainerStatus.
    pub fn pid(&self, id: &str) -> i64 {
        let req = cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        let info = self
            .d
            .block("ContainerStatus", self.d.client().container_status(req))
            .map(|r| r.info)
            .unwrap_or_default();
        info_field(&info, "pid").as_i64().unwrap_or_default()
    }

    /// The runtime's state directory of a container or sandbox: the shim passes `--root <Root>/k8s.io`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.d.runtime_root(self.rt).join(NS).join(id)
    }

    /// StopPodSandbox + RemovePodSandbox of `pod` (which removes its containers), then what is left of it:
    /// processes (the shim included), cgroups under the pod's parent, mounts (rootfs, shm, netns), the handler's
    /// state of every container, the netns bind mount, the host end of its veth, its IP in the IPAM store.
    pub fn remove_pod_and_audit(&self, pod: &str) -> Vec<String> {
        let containers = self.containers_of(pod);
        let status = self.pod_status(pod);
        let netns = info_field(&status.info, "runtimeSpec")["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["type"] == "network")
            .and_then(|n| n["path"].as_str())
            .unwrap_or_default()
            .to_string();
        let veths = self.host_veths(pod);
        let uid = status
            .status
            .and_then(|s| s.metadata)
            .map(|m| m.uid)
            .unwrap_or_default();
        let mut leaks = Vec::new();
        let stop = cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        };
        if let Err(e) = self
            .d
            .block("StopPodSandbox", self.d.client().stop_pod_sandbox(stop))
        {
            leaks.push(format!("StopPodSandbox {pod}: {e}"));
        }
        let rm = cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        };
        if let Err(e) = self
            .d
            .block("RemovePodSandbox", self.d.client().remove_pod_sandbox(rm))
        {
            leaks.push(format!("RemovePodSandbox {pod}: {e}"));
        }
        for id in containers.iter().map(String::as_str).chain([pod]) {
            leaks.extend(container_leaks(Needle::Anywhere(id), &self.state_dir(id)));
        }
        // The kubelet creates and removes the pod's cgroup around the sandbox's life; the runtime only made
        // it as the parent of the containers' own, which the audit above found gone.
        if !uid.is_empty() {
            let parent = format!("{}/pod{uid}", self.d.cgroup_top(self.rt));
            leaks.extend(crate::engines::remove_cgroup_tree(&parent));
        }
        if !netns.is_empty() && Path::new(&netns).exists() {
            leaks.push(format!("netns {netns}"));
        }
        if !veths.is_empty() {
            let links = self.d.links();
            for v in &veths {
                if links.iter().any(|l| l.contains(&format!(" {v}@"))) {
                    leaks.push(format!("veth {v}"));
                }
            }
        }
        let ipam = self.d.dir().join("ipam/carte-cri");
        for e in std::fs::read_dir(ipam).into_iter().flatten().flatten() {
            let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
            if owner.contains(pod) {
                leaks.push(format!("IPAM lease {}", e.path().display()));
            }
        }
        leaks
    }

    /// The host end of `pod`'s veth pair, from the CNI result in its verbose status (interfaces keyed by name).
    pub fn host_veths(&self, pod: &str) -> Vec<String> {
        info_field(&self.pod_status(pod).info, "cniResult")["Interfaces"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|name| name.starts_with("veth"))
            .cloned()
            .collect()
    }

    /// The ids of the containers of `pod`.
    pub fn containers_of(&self, pod: &str) -> Vec<String> {
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.to_string(),
                ..Default::default()
            }),
        };
        self.d
            .block("ListContainers", self.d.client().list_containers(req))
            .map(|r| r.containers.into_iter().map(|c| c.id).collect())
            .unwrap_or_default()
    }

    /// Forgets `pod` (the test removed and audited it itself).
    pub fn forget(&self, pod: &str) {
        self.pods.borrow_mut().retain(|p| p != pod);
    }

    /// Takes `pod` (run by a direct CRI call, e.g. from another thread) into the teardown and audit.
    pub fn adopt(&self, pod: &str) {
        self.pods.borrow_mut().push(pod.to_string());
    }

    /// The RunPodSandbox request of `config` with our handler; makes its log directory, as the kubelet does.
    pub fn run_pod_request(&self, config: cri::PodSandboxConfig) -> cri::RunPodSandboxRequest {
        if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
            panic!("mkdir {}: {e}", config.log_directory);
        }
        cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: self.handler().to_string(),
        }
    }
}

/// A field of the JSON the CRI plugin puts under `info` in verbose status responses.
fn info_field(info: &HashMap<String, String>, field: &str) -> serde_json::Value {
    info.get("info")
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .map(|v| v[field].clone())
        .unwrap_or_default()
}

impl Drop for Cri {
    fn drop(&mut self) {
        let pods = self.pods.borrow().clone();
        let mut leaks = Vec::new();
        for pod in &pods {
            leaks.extend(self.remove_pod_and_audit(pod));
        }
        report(&format!("{} pods", self.handler()), &leaks);
    }
}
