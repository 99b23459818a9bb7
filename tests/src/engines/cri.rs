//! A private containerd with its CRI plugin, driven over CRI v1 the way the kubelet drives it, with two runtime
//! handlers side by side: `runc` (the shim with `BinaryName = /usr/sbin/runc`) and `carte` (the same shim with
//! `BinaryName` = the runtime under test). Shared by the tests of one binary like [`super::containerd`]: root,
//! state, socket, CNI config and IPAM store under one temp dir; containerd runs in a network namespace of its own
//! (`unshare --net`), so the CNI bridge, the pods' veths and the `ip_forward` the bridge plugin sets never touch
//! the host's network and go away with it. docs/kubernetes.md describes the same setup for a real node.
//!
//! [`Cri`] is one test's handle: it makes pods (cgroup parent `/<instance>-<handler>/pod<uid>`, logs under the
//! temp dir), and on drop stops and removes them and audits what each left (see [`Cri::remove_pod_and_audit`]).

pub mod spec;
pub mod stream;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{private_tempdir, report, run, shared, Names, Needle, Rt, TIMEOUT};

/// The name the busybox image is tagged with in the `k8s.io` namespace: the CRI plugin resolves image names
/// after normalising them, so `busybox:latest` is looked up as this.
pub const IMAGE: &str = "docker.io/library/busybox:latest";
/// The pod sandbox ("pause") image of `tests/images.sh`, the CRI plugin's `sandbox_image`.
pub const PAUSE_IMAGE: &str = "carte.test/pause:1";
/// containerd's namespace for CRI objects.
pub const NS: &str = "k8s.io";
/// The pods' CNI network: a bridge inside containerd's network namespace.
pub const SUBNET_PREFIX: &str = "10.90.0.";

/// One containerd (with CRI) that we started.
pub struct CriDaemon {
    dir: tempfile::TempDir,
    name: String,
    child: Mutex<Option<Child>>,
    pid: i32,
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

static SHARED: Mutex<Weak<CriDaemon>> = Mutex::new(Weak::new());

impl CriDaemon {
    /// The running shared instance, started if no test holds one.
    pub fn shared() -> Arc<CriDaemon> {
        shared(&SHARED, CriDaemon::start)
    }

    fn start() -> CriDaemon {
        let name = super::instance_name();
        let dir = private_tempdir("carte-eng-cri-");
        let d = dir.path();
        write(&d.join("net.d/10-carte-cri.conflist"), &cni_config(d));
        let cfg = d.join("config.toml");
        write(&cfg, &containerd_config(d, &crate::runtime_bin()));
        let log = match std::fs::File::create(d.join("containerd.log")) {
            Ok(f) => f,
            Err(e) => panic!("create containerd.log: {e}"),
        };
        // `unshare --net` without --fork and `exec`: the child we hold is containerd itself.
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--", "sh", "-c"])
            .arg("ip link set lo up && exec containerd --config \"$0\"")
            .arg(&cfg)
            .stdin(Stdio::null());
        match log.try_clone() {
            Ok(l) => cmd.stdout(l).stderr(log),
            Err(e) => panic!("dup containerd.log: {e}"),
        };
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("spawn containerd: {e}"),
        };
        let pid = child.id() as i32;
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("tokio runtime: {e}"),
        };
        let sock = d.join("containerd.sock");
        let up = crate::poll_until(Duration::from_secs(30), || {
            sock.exists() && run(ctr(d, &["version"])).success()
        });
        let channel = connect(&rt, &sock);
        let daemon = CriDaemon {
            dir,
            name,
            child: Mutex::new(Some(child)),
            pid,
            rt,
            channel,
        };
        assert!(up, "containerd did not come up: {}", daemon.log_tail());
        for archive in ["busybox-oci.tar", "pause-oci.tar"] {
            let path = super::images().join(archive).display().to_string();
            daemon.ctr(&["images", "import", &path]).ok();
        }
        daemon.ctr(&["images", "tag", "busybox:latest", IMAGE]).ok();
        daemon
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// containerd's pid: its network namespace is the pods' "host" network.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The shim's `Root` option of `rt`'s handler: the runtime's `--root` is `<this>/k8s.io`.
    pub fn runtime_root(&self, rt: Rt) -> PathBuf {
        runtime_root(self.dir(), rt)
    }

    /// The cgroup parent of `rt`'s pods, relative to every hierarchy.
    pub fn cgroup_top(&self, rt: Rt) -> String {
        format!("{}-{}", self.name, rt.name())
    }

    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> crate::runtime::Out {
        run(ctr(self.dir(), args))
    }

    /// Runs `f` (a CRI call) on our tokio runtime, bounded by [`TIMEOUT`].
    pub fn block<T, E: std::fmt::Debug>(
        &self,
        what: &str,
        f: impl Future<Output = Result<tonic::Response<T>, E>>,
    ) -> Result<T, E> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, f).await })
        {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => panic!("CRI {what} timed out"),
        }
    }

    pub fn client(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Network interfaces in containerd's network namespace, as `ip -o link` prints them.
    pub fn links(&self) -> Vec<String> {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid.to_string())
            .args(["-n", "ip", "-o", "link"]);
        run(cmd).ok().stdout.lines().map(str::to_string).collect()
    }
}

impl Drop for CriDaemon {
    /// Audits what no pod should have left (a veth in containerd's namespace, a shim, a mount under our dir, a
    /// cgroup under our parents, runtime state), then stops containerd.
    fn drop(&mut self) {
        let mut leaks: Vec<String> = self
            .links()
            .into_iter()
            .filter(|l| l.contains("veth"))
            .map(|l| format!("veth {l}"))
            .collect();
        if let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) {
            let pid = nix::unistd::Pid::from_raw(self.pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let stopped = crate::poll_until(Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = child.kill();
                leaks.push("containerd ignored SIGTERM".to_string());
            }
            let _ = child.wait();
        }
        let mine = self.dir().display().to_string();
        crate::poll_until(crate::AUDIT_GRACE, || {
            super::processes_mentioning(Needle::Anywhere(&mine)).is_empty()
        });
        for p in super::processes_mentioning(Needle::Anywhere(&mine)) {
            if let Some(pid) = p
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            leaks.push(p);
        }
        leaks.extend(crate::audit::detach_mounts_under(&[self
            .dir()
            .to_path_buf()]));
        for rt in [Rt::Runc, Rt::Carte] {
            let state = self.runtime_root(rt).join(NS);
            for e in std::fs::read_dir(&state).into_iter().flatten().flatten() {
                leaks.push(format!("runtime state {}", e.path().display()));
            }
            leaks.extend(super::remove_cgroup_tree(&self.cgroup_top(rt)));
        }
        // `CARTE_CRI_LOG=<file>` keeps containerd's log (shim and runtime errors included) for a look after.
        if let Some(keep) = std::env::var_os("CARTE_CRI_LOG") {
            let _ = std::fs::copy(self.dir().join("containerd.log"), keep);
        }
        report(&format!("containerd (CRI) {}", self.name), &leaks);
    }
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            panic!("mkdir {}: {e}", parent.display());
        }
    }
    if let Err(e) = std::fs::write(path, text) {
        panic!("write {}: {e}", path.display());
    }
}

fn ctr(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("-a")
        .arg(dir.join("containerd.sock"))
        .args(["-n", NS])
        .args(args);
    cmd
}

fn runtime_root(dir: &Path, rt: Rt) -> PathBuf {
    dir.join("runtimes").join(rt.name())
}

/// A tonic channel over containerd's unix socket (the URI is a placeholder the connector ignores).
fn connect(rt: &tokio::runtime::Runtime, sock: &Path) -> Channel {
    let sock = sock.to_path_buf();
    let endpoint = match Endpoint::try_from("http://[::1]:50051") {
        Ok(e) => e.connect_timeout(Duration::from_secs(10)),
        Err(e) => panic!("endpoint: {e}"),
    };
    let connector = tower::service_fn(move |_: Uri| {
        let sock = sock.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(sock).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    match rt.block_on(endpoint.connect_with_connector(connector)) {
        Ok(c) => c,
        Err(e) => panic!("connect to containerd's CRI socket: {e}"),
    }
}

/// The CNI network of the pods: a bridge with host-local IPAM (its store under our dir), no masquerading (no
/// iptables rules: the pods only talk to each other).
fn cni_config(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "carte-cri",
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("{SUBNET_PREFIX}0/24")}]],
                "dataDir": dir.join("ipam").display().to_string(),
            }
        }]
    })
    .to_string()
}

/// containerd's version 2 config with the CRI plugin and the two handlers. docs/kubernetes.md quotes it.
fn containerd_config(d: &Path, carte: &Path) -> String {
    let handler = |rt: Rt, bin: &Path| {
        format!(
            r#"    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{bin}"
        Root = "{root}"
        SystemdCgroup = false
"#,
            name = rt.name(),
            bin = bin.display(),
            root = runtime_root(d, rt).display(),
        )
    };
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # This host (like many CI containers) lacks CAP_SYS_RESOURCE: without this, lowering a sandbox's
  # oom_score_adj below containerd's own fails and no pod starts.
  restrict_oom_score_adj = true
  # The pods' network namespaces are bind-mounted under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
{runc}{carte}  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{netd}"
    max_conf_num = 1
"#,
        root = d.join("root").display(),
        state = d.join("state").display(),
        sock = d.join("containerd.sock").display(),
        opt = d.join("opt").display(),
        pause = PAUSE_IMAGE,
        runc = handler(Rt::Runc, &Rt::Runc.bin()),
        carte = handler(Rt::Carte, carte),
        netd = d.join("net.d").display(),
    )
}

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
        if std::env::var_os("CI").is_none() && super::which("containerd").is_none() {
            eprintln!("skipped: containerd is not installed (tests/setup.sh installs it)");
            return None;
        }
        if !super::can_run(
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
        if let Some(dir) = Some(config.log_directory.clone()).filter(|d| !d.is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let req = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: self.handler().to_string(),
        };
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
    /// state of every container, the netns bind mount, its IP in the IPAM store.
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
            leaks.extend(super::container_leaks(
                Needle::Anywhere(id),
                &self.state_dir(id),
            ));
        }
        // The kubelet creates and removes the pod's cgroup around the sandbox's life; the runtime only made
        // it as the parent of the containers' own, which the audit above found gone.
        if !uid.is_empty() {
            let parent = format!("{}/pod{uid}", self.d.cgroup_top(self.rt));
            leaks.extend(super::remove_cgroup_tree(&parent));
        }
        if !netns.is_empty() && Path::new(&netns).exists() {
            leaks.push(format!("netns {netns}"));
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
