//! Pure checks on config.json beyond what parsing catches; every error names the JSON field.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;

pub fn check(spec: &Spec) -> Result<()> {
    if spec.version().is_empty() {
        return Err(Error::spec("ociVersion", "missing"));
    }
    if !spec.version().starts_with("1.") {
        return Err(Error::spec(
            "ociVersion",
            format!("{:?} is not a 1.x version", spec.version()),
        ));
    }
    let p = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::spec("process", "missing: nothing to run"))?;
    if !p.cwd().is_absolute() {
        return Err(Error::spec(
            "process.cwd",
            format!("{:?} is not an absolute path", p.cwd()),
        ));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::spec("linux", "missing"))?;
    let mut seen = HashSet::new();
    let nss = linux.namespaces().as_deref().unwrap_or_default();
    for (i, ns) in nss.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(Error::spec(
                format!("linux.namespaces[{i}]"),
                format!("{:?} namespace listed twice", ns.typ()),
            ));
        }
    }
    if !seen.contains(&LinuxNamespaceType::Mount) {
        no_mount_namespace(spec, linux)?;
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !seen.contains(&LinuxNamespaceType::Uts)
    {
        return Err(Error::spec(
            "hostname",
            "setting a hostname needs a uts namespace",
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty())
        && !seen.contains(&LinuxNamespaceType::Uts)
    {
        return Err(Error::spec(
            "domainname",
            "setting a domainname needs a uts namespace",
        ));
    }
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let d = m.destination();
        if !d.is_absolute() {
            return Err(Error::spec(
                format!("mounts[{i}].destination"),
                format!("{} is not an absolute path", d.display()),
            ));
        }
        // Idmapped mounts: bind only, both maps or none, none only with a user namespace (config.md).
        crate::rootfs::idmap::of(m, i, seen.contains(&LinuxNamespaceType::User))?;
    }
    if let Some(hooks) = spec.hooks() {
        let lists = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in lists {
            for (i, h) in list.as_deref().unwrap_or_default().iter().enumerate() {
                if !h.path().is_absolute() {
                    return Err(Error::spec(
                        format!("hooks.{kind}[{i}].path"),
                        format!("{} is not an absolute path", h.path().display()),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Without a mount namespace the container shares the runtime's (runtime-spec: "the container
/// … shares the runtime's mount namespace"), and runs chrooted in its rootfs. What would have to
/// change the host's own tree is refused, naming the field (runc would apply masked paths and a
/// read-only root to the host's mounts). `mounts` are allowed: they go below the rootfs in the
/// shared table and `delete` takes them away again (`rootfs::shared_mounts`).
fn no_mount_namespace(spec: &Spec, linux: &oci_spec::runtime::Linux) -> Result<()> {
    // `mounts` are made in the runtime's namespace under the rootfs, and undone by delete
    // (`shared_mounts`); these act on the container's `/` after the chroot, which is the host's tree.
    let why = "needs a mount namespace of the container's own (it would change the host's mounts)";
    if linux.masked_paths().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(Error::spec("linux.maskedPaths", why));
    }
    if linux
        .readonly_paths()
        .as_ref()
        .is_some_and(|m| !m.is_empty())
    {
        return Err(Error::spec("linux.readonlyPaths", why));
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        return Err(Error::spec("root.readonly", why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Spec {
        let s = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"args":["sh"]}},
            "linux":{{"namespaces":[{{"type":"mount"}},{{"type":"pid"}}]}}{extra}}}"#
        );
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn accepts_minimal() {
        check(&spec("")).unwrap();
    }

    #[test]
    fn hostname_needs_uts() {
        let e = check(&spec(r#","hostname":"h""#)).unwrap_err().to_string();
        assert!(e.starts_with("config.json: hostname:"), "{e}");
    }

    #[test]
    fn idmap_without_a_user_namespace() {
        let e = check(&spec(
            r#","mounts":[{"destination":"/m","type":"bind","source":"/tmp","options":["rbind","idmap"]}]"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mounts[0].options") && e.contains("user namespace"),
            "{e}"
        );
    }

    #[test]
    fn no_mount_namespace_refuses_only_what_would_touch_the_host() {
        let s = |extra: &str| -> Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"args":["sh"]}},
                "linux":{{"namespaces":[{{"type":"pid"}}]{extra}}}}}"#
            ))
            .unwrap()
        };
        check(&s("")).unwrap();
        let e = check(&s(r#","maskedPaths":["/proc/kcore"]"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.maskedPaths"), "{e}");
    }

    #[test]
    fn relative_mount_destination() {
        let e = check(&spec(r#","mounts":[{"destination":"proc","type":"proc"}]"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mounts[0].destination"), "{e}");
    }
}
