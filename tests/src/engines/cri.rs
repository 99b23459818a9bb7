//! A private containerd with its CRI plugin, driven over CRI v1 the way the kubelet drives it, with two runtime
//! handlers side by side: `runc` (the shim with `BinaryName = /usr/sbin/runc`) and `carte` (the same shim with
//! `BinaryName` = the runtime under test). Shared by the tests of one binary like [`super::containerd`]: root,
//! state, socket, CNI config and IPAM store under one temp dir; containerd runs in a network namespace of its own
//! (`unshare --net`), so the CNI bridge, the pods' veths and the `ip_forward` the bridge plugin sets never touch
//! the host's network and go away with it. docs/kubernetes.md describes the same setup for a real node.
//!
//! [`Cri`] is one test's handle: it makes pods (cgroup parent `/<instance>-<handler>/pod<uid>`, logs under the
//! temp dir), and on drop stops and removes them and audits what each left (see [`Cri::remove_pod_and_audit`]).

mod pod;
pub mod spec;
pub mod stream;

pub use pod::{Cri, Pod};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{private_tempdir, report, run, shared, Rt, TIMEOUT};

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
        let mut child = match cmd.spawn() {
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
        if !up {
            // Stop what we started before failing: a panic here skips Drop.
            let _ = child.kill();
            let _ = child.wait();
            panic!("containerd did not come up: {}", log_tail(d));
        }
        let channel = connect(&rt, &sock);
        let daemon = CriDaemon {
            dir,
            name,
            child: Mutex::new(Some(child)),
            pid,
            rt,
            channel,
        };
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
        log_tail(self.dir())
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
        leaks.extend(super::kill_stragglers(&mine));
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

/// The last lines of containerd's log in `dir`.
fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
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
