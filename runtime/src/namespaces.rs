//! Namespaces: which to create and which to join (opened in the parent, so a bad `path` is a
//! create-time error naming it), the uid/gid maps the parent writes for a new user namespace,
//! time offsets, and whether the init needs a bridge process.
//!
//! Fast path (almost every container): one `clone` creates all new namespaces at once, so they are
//! all owned by the new user namespace if there is one. A bridge process is needed only when the
//! kernel forces an order one clone cannot give: a pid or time namespace to join or a time
//! namespace to create (they apply to children only), a user namespace to join (the others must be
//! created after it, so they are owned by it), or a new user namespace alongside joined ones
//! (the joins must happen before we lose our host privileges).

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::fmt::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub struct Join {
    pub typ: LinuxNamespaceType,
    pub nstype: libc::c_int,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

pub struct NsPlan {
    /// CLONE_NEW* flags of the namespaces to create, cgroup excluded (see `new_cgroup`).
    pub new_flags: libc::c_int,
    /// The cgroup namespace is unshared by the init after it was moved into its cgroup, so the
    /// namespace's root is the container's own cgroup.
    pub new_cgroup: bool,
    pub joins: Vec<Join>,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    /// `/proc/self/timens_offsets` content for a new time namespace.
    pub time_offsets: Option<String>,
    pub bridge: bool,
}

pub fn clone_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

impl NsPlan {
    /// Whether the container has a mount namespace of its own (new or joined); without one it
    /// shares the runtime's.
    pub fn mount_namespace(&self) -> bool {
        self.new_flags & libc::CLONE_NEWNS != 0 || self.joins_ns(libc::CLONE_NEWNS)
    }

    /// Whether the container joins an existing namespace of type `nstype` (a CLONE_NEW* flag).
    pub fn joins_ns(&self, nstype: libc::c_int) -> bool {
        self.joins.iter().any(|j| j.nstype == nstype)
    }
}

/// The namespace's file name under `/proc/PID/ns/`.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn plan(spec: &Spec) -> Result<NsPlan> {
    let linux = spec.linux().as_ref();
    let mut p = NsPlan {
        new_flags: 0,
        new_cgroup: false,
        joins: vec![],
        uid_map: None,
        gid_map: None,
        time_offsets: None,
        bridge: false,
    };
    let nss = linux
        .and_then(|l| l.namespaces().as_ref())
        .cloned()
        .unwrap_or_default();
    for (i, ns) in nss.iter().enumerate() {
        let flag = clone_flag(ns.typ());
        match ns.path() {
            Some(path) if !path.as_os_str().is_empty() => {
                let fd = std::fs::File::open(path).map_err(|e| {
                    Error::spec(
                        format!("linux.namespaces[{i}].path"),
                        format!("{}: {e}", path.display()),
                    )
                })?;
                p.joins.push(Join {
                    typ: ns.typ(),
                    nstype: flag,
                    path: path.clone(),
                    fd: fd.into(),
                });
            }
            _ if ns.typ() == LinuxNamespaceType::Cgroup => p.new_cgroup = true,
            _ => p.new_flags |= flag,
        }
    }
    // Joining the mount namespace last: setns(mnt) changes our root and cwd.
    p.joins
        .sort_by_key(|j| (j.typ == LinuxNamespaceType::Mount) as u8);
    let new_user = p.new_flags & libc::CLONE_NEWUSER != 0;
    if new_user {
        let l = linux.ok_or_else(|| Error::spec("linux", "missing"))?;
        p.uid_map = Some(id_map(l.uid_mappings().as_deref(), "linux.uidMappings")?);
        p.gid_map = Some(id_map(l.gid_mappings().as_deref(), "linux.gidMappings")?);
    }
    if p.new_flags & libc::CLONE_NEWTIME != 0 {
        p.time_offsets = Some(time_offsets(spec));
    }
    let joins_any = |t: LinuxNamespaceType| p.joins.iter().any(|j| j.typ == t);
    p.bridge = joins_any(LinuxNamespaceType::Pid)
        || joins_any(LinuxNamespaceType::Time)
        || joins_any(LinuxNamespaceType::User)
        || p.new_flags & libc::CLONE_NEWTIME != 0
        || (new_user && !p.joins.is_empty());
    Ok(p)
}

pub(crate) fn id_map(
    m: Option<&[oci_spec::runtime::LinuxIdMapping]>,
    field: &str,
) -> Result<String> {
    let m = m
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Error::spec(field, "a new user namespace needs at least one mapping"))?;
    let mut s = String::new();
    for e in m {
        let _ = writeln!(s, "{} {} {}", e.container_id(), e.host_id(), e.size());
    }
    Ok(s)
}

fn time_offsets(spec: &Spec) -> String {
    let mut s = String::new();
    if let Some(offs) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    {
        let mut keys: Vec<_> = offs.keys().collect();
        keys.sort();
        for k in keys {
            let o = &offs[k];
            let _ = writeln!(
                s,
                "{k} {} {}",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            );
        }
    }
    s
}

/// The parent writes the maps of a new user namespace: as root any mapping the config asks for,
/// unprivileged through `idmap`'s rules (its own id, else `newuidmap`/`newgidmap`). Through the
/// host's own /proc, not the container's, so a hostile image cannot redirect the write.
pub fn write_maps(pid: i32, p: &NsPlan) -> Result<()> {
    crate::idmap::write(pid, p.uid_map.as_deref(), p.gid_map.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plain_namespaces_take_the_fast_path() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"cgroup"}]}}"#,
        );
        let p = plan(&s).unwrap();
        assert_eq!(p.new_flags, libc::CLONE_NEWPID | libc::CLONE_NEWNS);
        assert!(p.new_cgroup && !p.bridge);
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let s = spec(r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"user"}]}}"#);
        let e = plan(&s).err().unwrap().to_string();
        assert!(e.contains("linux.uidMappings"), "{e}");
    }

    #[test]
    fn joins_and_time_need_a_bridge() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"network","path":"/proc/self/ns/net"},{"type":"user"}],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        );
        let p = plan(&s).unwrap();
        assert!(p.bridge);
        assert_eq!(p.uid_map.as_deref(), Some("0 1000 1\n"));
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"time"}],"timeOffsets":{"monotonic":{"secs":5}}}}"#,
        );
        let p = plan(&s).unwrap();
        assert!(p.bridge);
        assert_eq!(p.time_offsets.as_deref(), Some("monotonic 5 0\n"));
    }

    #[test]
    fn missing_namespace_path_names_the_field() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"network","path":"/nonexistent/ns"}]}}"#,
        );
        let e = plan(&s).err().unwrap().to_string();
        assert!(e.contains("linux.namespaces[0].path"), "{e}");
    }
}
