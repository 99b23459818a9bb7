//! The runtime as a Kubernetes RuntimeClass handler: containerd's CRI plugin driven over CRI v1 with the calls the
//! kubelet makes, each scenario once with the `runc` handler (`<scenario>::runc`, the reference) and once with the
//! `carte` handler (`<scenario>::carte`). Every pod is stopped, removed and audited when its test ends
//! (processes, shims, cgroups, mounts, netns, IPAM lease, the handler's state); the last test to finish stops
//! containerd and checks that no veth, shim or mount is left. Images come from `ctr images import` (no
//! PullImage: there is no registry, as with the kubelet's `IfNotPresent` on a preloaded node).

mod engine_cri {
    pub mod pods;
    pub mod security;
    pub mod streaming;
    pub mod volumes;
}

use carte_tests::per_runtime;
use engine_cri::pods::*;
use engine_cri::security::*;
use engine_cri::streaming::*;
use engine_cri::volumes::*;

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
    sandbox_security,
    host_namespaces,
    share_process_namespace,
    sysctls,
    sysctls_refused,
    etc_files,
    volumes,
    exec_stream,
    attach,
    port_forward,
    seccomp_runtime_default,
    exec_tty,
    container_config,
    restart_and_remove,
    concurrent,
    shim_killed,
    attach_tty,
);
