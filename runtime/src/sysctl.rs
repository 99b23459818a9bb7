//! Which `linux.sysctl` keys a container may set: only those that live in a kernel namespace the
//! container has to itself. A sysctl is written by the init through `/proc/sys` of the namespaces
//! it is in; when the container shares a namespace with the runtime, that is the host's value
//! (`fs.mqueue.queues_max` without an ipc namespace changes every process on the host).
//!
//! The rules are runc's (`libcontainer/configs/validate/validator.go`, `sysctl`): ipc sysctls need
//! an ipc namespace, `net.*` a network namespace that is not the runtime's, `kernel.domainname` a
//! uts namespace, `user.*` a user namespace (runc ≥ 1.2), and `kernel.hostname` is refused for
//! the `hostname` field that says the same; everything else is not namespaced and refused. Carte
//! goes one step further than runc 1.1 for ipc and uts: a namespace joined by path that is the
//! runtime's own is no namespace of the container's, as runc already checks for net.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The ipc sysctls outside `fs.mqueue.*` (Documentation/admin-guide/sysctl/kernel.rst: the
/// System V IPC limits are per ipc namespace).
const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// A sysctl key in both spellings the spec allows: dots (`net.ipv4.ip_forward`) or slashes
/// (`net/ipv4/conf/eth0.100/forwarding`, for names that contain a dot themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Dotted, as the rules above and error messages name it.
    pub name: String,
    /// Relative to `/proc/sys`.
    pub path: PathBuf,
}

impl Key {
    /// runc's reading: when the first separator is a slash the key is a path, and each of its
    /// components may contain dots; otherwise every dot separates components.
    pub fn parse(raw: &str) -> Result<Key> {
        let bad = |why: &str| Error::spec(format!("linux.sysctl.{raw}"), why.to_string());
        if raw.is_empty() || raw.contains('\0') {
            return Err(bad("invalid key"));
        }
        let slashed = raw
            .find(['.', '/'])
            .is_some_and(|i| raw.as_bytes()[i] == b'/');
        let parts: Vec<&str> = if slashed {
            raw.split('/').collect()
        } else {
            raw.split('.').collect()
        };
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(bad("invalid key: every component must be a plain name"));
        }
        let name = if slashed {
            // Swap the separators, as runc does, so a component's own dot becomes a slash and
            // the prefix rules below still see `net.`, `kernel.`...
            raw.chars()
                .map(|c| match c {
                    '/' => '.',
                    '.' => '/',
                    c => c,
                })
                .collect()
        } else {
            raw.to_string()
        };
        Ok(Key {
            name,
            path: parts.iter().collect(),
        })
    }
}

/// The namespace a sysctl belongs to, or `None` for one that is not namespaced.
fn namespace_of(name: &str) -> Option<LinuxNamespaceType> {
    if IPC_KEYS.contains(&name) || name.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if name.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if name == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else if name.starts_with("user.") {
        Some(LinuxNamespaceType::User)
    } else {
        None
    }
}

/// Whether the container has `typ` to itself: listed, and not a path to the runtime's own
/// namespace of that type (`is_ours` compares the namespace files' inodes).
fn owns(
    nss: &[LinuxNamespace],
    typ: LinuxNamespaceType,
    is_ours: &dyn Fn(LinuxNamespaceType, &std::path::Path) -> bool,
) -> bool {
    nss.iter()
        .find(|n| n.typ() == typ)
        .is_some_and(|n| n.path().as_deref().is_none_or(|p| !is_ours(typ, p)))
}

/// Whether `path` names the namespace of type `typ` this process is in.
fn is_runtime_namespace(typ: LinuxNamespaceType, path: &std::path::Path) -> bool {
    let ours = format!("/proc/self/ns/{}", crate::namespaces::proc_name(typ));
    match (std::fs::metadata(ours), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        // An unreadable path is reported when it is opened to be joined.
        _ => false,
    }
}

/// The config's sysctls, parsed and checked against its namespaces, sorted by key.
pub fn plan(spec: &Spec) -> Result<Vec<(Key, String)>> {
    plan_with(spec, &is_runtime_namespace)
}

fn plan_with(
    spec: &Spec,
    is_ours: &dyn Fn(LinuxNamespaceType, &std::path::Path) -> bool,
) -> Result<Vec<(Key, String)>> {
    let linux = spec.linux().as_ref();
    let nss = linux
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default();
    let mut out = vec![];
    for (raw, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let key = Key::parse(raw)?;
        let field = format!("linux.sysctl.{raw}");
        if key.name == "kernel.hostname" {
            return Err(Error::spec(
                field,
                "conflicts with the `hostname` field; set the host name there",
            ));
        }
        let Some(typ) = namespace_of(&key.name) else {
            return Err(Error::spec(
                field,
                "not in a kernel namespace of the container's own: it would change the host",
            ));
        };
        if !owns(nss, typ, is_ours) {
            return Err(Error::spec(
                field,
                format!(
                    "needs the container's own {} namespace (it would change the host's)",
                    crate::namespaces::proc_name(typ)
                ),
            ));
        }
        out.push((key, value.clone()));
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nss: &str, sysctl: &str) -> Spec {
        let s = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"args":["sh"]}},
            "linux":{{"namespaces":[{nss}],"sysctl":{{{sysctl}}}}}}}"#
        );
        serde_json::from_str(&s).unwrap()
    }

    fn check(nss: &str, sysctl: &str) -> std::result::Result<Vec<String>, String> {
        // Any namespace given by path counts as the runtime's: the host-namespace case.
        plan_with(&spec(nss, sysctl), &|_, _| true)
            .map(|v| v.into_iter().map(|(k, _)| k.name).collect())
            .map_err(|e| e.to_string())
    }

    const MNT: &str = r#"{"type":"mount"}"#;

    #[test]
    fn ipc_sysctls_need_an_ipc_namespace() {
        for key in [
            "kernel.msgmax",
            "kernel.shm_rmid_forced",
            "fs.mqueue.queues_max",
        ] {
            let kv = format!(r#""{key}":"100""#);
            let e = check(MNT, &kv).unwrap_err();
            assert!(
                e.contains(&format!("linux.sysctl.{key}")) && e.contains("ipc"),
                "{e}"
            );
            assert_eq!(
                check(&format!(r#"{MNT},{{"type":"ipc"}}"#), &kv).unwrap(),
                [key]
            );
        }
    }

    #[test]
    fn net_sysctls_need_a_network_namespace_that_is_not_ours() {
        let kv = r#""net.ipv4.ping_group_range":"0 0""#;
        assert!(check(MNT, kv).unwrap_err().contains("net namespace"));
        assert!(check(&format!(r#"{MNT},{{"type":"network"}}"#), kv).is_ok());
        let host = format!(r#"{MNT},{{"type":"network","path":"/proc/1/ns/net"}}"#);
        assert!(check(&host, kv).unwrap_err().contains("net namespace"));
    }

    #[test]
    fn uts_user_and_unnamespaced_keys() {
        let uts = format!(r#"{MNT},{{"type":"uts"}}"#);
        assert!(check(MNT, r#""kernel.domainname":"d""#).is_err());
        assert!(check(&uts, r#""kernel.domainname":"d""#).is_ok());
        let e = check(&uts, r#""kernel.hostname":"h""#).unwrap_err();
        assert!(e.contains("hostname"), "{e}");
        assert!(check(MNT, r#""user.max_user_namespaces":"0""#).is_err());
        let userns = format!(r#"{MNT},{{"type":"user"}}"#);
        assert!(check(&userns, r#""user.max_user_namespaces":"0""#).is_ok());
        for key in [
            "kernel.core_pattern",
            "vm.overcommit_memory",
            "kernel.pid_max",
        ] {
            let all = format!(r#"{MNT},{{"type":"ipc"}},{{"type":"uts"}},{{"type":"network"}}"#);
            let e = check(&all, &format!(r#""{key}":"1""#)).unwrap_err();
            assert!(e.contains("not in a kernel namespace"), "{e}");
        }
    }

    #[test]
    fn slash_keys_keep_dots_in_components() {
        let k = Key::parse("net/ipv4/conf/eth0.100/forwarding").unwrap();
        assert_eq!(k.name, "net.ipv4.conf.eth0/100.forwarding");
        assert_eq!(k.path, PathBuf::from("net/ipv4/conf/eth0.100/forwarding"));
        let k = Key::parse("net.ipv4.ip_forward").unwrap();
        assert_eq!(k.path, PathBuf::from("net/ipv4/ip_forward"));
        for bad in [
            "",
            "net..ipv4",
            "net/../kernel",
            "net.ipv4.",
            "/net/ipv4",
            "a\0b",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
    }
}
