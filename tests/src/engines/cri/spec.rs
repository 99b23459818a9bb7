//! CRI request bodies as the kubelet fills them for a plain pod and container (kubelet's
//! `generatePodSandboxConfig` / `generateContainerConfig`), for the scenarios to adjust.

use std::path::Path;

use k8s_cri::v1 as cri;

/// A pod sandbox config: metadata (name = uid = `uid`, namespace `default`), hostname, log directory, DNS,
/// cgroup parent, and the security context of a pod with no special settings (pod namespaces, seccomp
/// `Unconfined`: the kubelet's default without `SeccompDefault`).
pub fn pod(uid: &str, log_dir: &Path, cgroup_parent: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: uid.to_string(),
            uid: uid.to_string(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        // Pod names made by unique_id may exceed a hostname's 63 bytes and have underscores.
        hostname: "carte-pod".to_string(),
        log_directory: log_dir.display().to_string(),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".to_string()],
            searches: vec![
                "default.svc.cluster.local".to_string(),
                "svc.cluster.local".to_string(),
            ],
            options: vec!["ndots:5".to_string()],
        }),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(own_pid()),
                seccomp: Some(unconfined()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container running `cmd` in the busybox image, logging to `<name>.log` in the pod's log directory.
pub fn container(name: &str, cmd: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: super::IMAGE.to_string(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources::default()),
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(own_pid()),
                seccomp: Some(unconfined()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A long-running container (`sleep` as pid 1 of the container, killed by SIGTERM).
pub fn sleeper(name: &str) -> cri::ContainerConfig {
    container(name, &["sleep", "100000"])
}

/// Network and IPC of the pod, a pid namespace of the container's own: the kubelet's default (`POD` for pid
/// would be `shareProcessNamespace`).
pub fn own_pid() -> cri::NamespaceOption {
    cri::NamespaceOption {
        pid: cri::NamespaceMode::Container as i32,
        ..Default::default()
    }
}

pub fn unconfined() -> cri::SecurityProfile {
    cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    }
}

pub fn runtime_default() -> cri::SecurityProfile {
    cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    }
}

/// The container's security context, to adjust.
pub fn sc(c: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerSecurityContext {
    c.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

/// The container's resources, to adjust.
pub fn resources(c: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerResources {
    c.linux
        .get_or_insert_with(Default::default)
        .resources
        .get_or_insert_with(Default::default)
}

/// The pod's Linux config, to adjust.
pub fn pod_linux(p: &mut cri::PodSandboxConfig) -> &mut cri::LinuxPodSandboxConfig {
    p.linux.get_or_insert_with(Default::default)
}

/// The pod's security context, to adjust.
pub fn pod_sc(p: &mut cri::PodSandboxConfig) -> &mut cri::LinuxSandboxSecurityContext {
    pod_linux(p)
        .security_context
        .get_or_insert_with(Default::default)
}

/// The pod's namespace options (pod level, which the kubelet copies into each container's).
pub fn pod_ns(p: &mut cri::PodSandboxConfig) -> &mut cri::NamespaceOption {
    pod_sc(p).namespace_options.get_or_insert_with(own_pid)
}

/// The container's namespace options, to adjust (the kubelet copies the pod's into each container's).
pub fn ns(c: &mut cri::ContainerConfig) -> &mut cri::NamespaceOption {
    sc(c).namespace_options.get_or_insert_with(own_pid)
}
