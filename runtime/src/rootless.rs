//! Running as an unprivileged user ("rootless"): where the state lives by default, whether the
//! container can have a cgroup, and which limits it then cannot have. The user namespace side
//! (maps written through `newuidmap`/`newgidmap`) is `idmap`.
//!
//! runc's rules (1.1 `rootless_linux.go`, `main.go`): a caller whose effective uid is not 0 is
//! rootless; its state goes to `$XDG_RUNTIME_DIR/runc` (carte: `…/carte`) when that is set, else
//! the usual root, which it cannot write — the error names it.

use crate::error::{Error, Result};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The root's default when `$XDG_RUNTIME_DIR` is not used.
pub const SYSTEM_ROOT: &str = "/run/carte";

/// runc's `RootlessEUID`: the runtime is not root, so it holds no privilege on the host.
pub fn euid_rootless() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// runc's `shouldUseRootlessCgroupManager` for the cgroupfs driver: `--rootless true|false` as
/// given, else (`auto`) rootless when not root, or root inside a user namespace (rootless podman
/// runs the runtime so: euid 0 in its user namespace, no more rights on the host's cgroups).
pub fn cgroups_rootless(mode: Option<&str>) -> bool {
    match mode {
        Some("true") => true,
        Some("false") => false,
        _ => euid_rootless() || in_user_namespace(),
    }
}

/// Whether we run inside a user namespace (any but the initial one, whose map is the identity
/// over the whole id space).
pub fn in_user_namespace() -> bool {
    match crate::kernel_text::read("/proc/self/uid_map") {
        Ok(m) => {
            let f: Vec<&str> = m.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// runc's `shouldHonorXDGRuntimeDir`: `$XDG_RUNTIME_DIR` (non-empty) counts for a non-root
/// user, and for root inside a user namespace unless `$USER` is `root`; never for the real root,
/// whose `/run/user/0` would move its containers away from `/run/carte`.
fn xdg_runtime_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    let honour = euid_rootless()
        || (in_user_namespace() && std::env::var_os("USER").is_none_or(|u| u != "root"));
    honour.then(|| PathBuf::from(dir))
}

/// `--root`'s default: `$XDG_RUNTIME_DIR/carte` where runc would use `$XDG_RUNTIME_DIR/runc`,
/// else `/run/carte`.
pub fn default_root() -> PathBuf {
    match xdg_runtime_dir() {
        Some(d) => d.join("carte"),
        None => PathBuf::from(SYSTEM_ROOT),
    }
}

/// As runc does for its XDG default: create the root 0700 and set the sticky bit, which the XDG
/// base directory spec asks of files that must not be pruned from `$XDG_RUNTIME_DIR`.
pub fn prepare_default_root(root: &Path) -> Result<()> {
    if xdg_runtime_dir().is_none() || root != default_root() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| Error::io("create the state root (in $XDG_RUNTIME_DIR)", root, e))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1700))
        .map_err(|e| Error::io("chmod the state root (in $XDG_RUNTIME_DIR)", root, e))
}

/// Whether an unprivileged runtime can make the cgroup at `dirs` (one directory per hierarchy):
/// the deepest existing ancestor of each must be writable by us. On cgroup v1 nothing is
/// delegated to users; on v2 a user owns the subtree systemd (or an admin) delegated to it.
pub fn cgroup_writable(dirs: &[PathBuf]) -> bool {
    !dirs.is_empty()
        && dirs.iter().all(|d| {
            d.ancestors()
                .find(|a| a.exists())
                .is_some_and(|a| nix::unistd::access(a, nix::unistd::AccessFlags::W_OK).is_ok())
        })
}

/// The first resource limit `res` asks for, as its JSON field name, devices excepted (a rootless
/// container gets no device cgroup: its user namespace cannot create device nodes anyway). A
/// container without a cgroup cannot have it; runc refuses the same ("cannot set … limit:
/// container could not join or create cgroup").
pub fn first_limit(res: &oci_spec::runtime::LinuxResources) -> Option<String> {
    let v = serde_json::to_value(res).ok()?;
    let obj = v.as_object()?;
    obj.iter()
        .filter(|(k, _)| k.as_str() != "devices")
        .find(|(_, v)| match v {
            serde_json::Value::Null => false,
            serde_json::Value::Array(a) => !a.is_empty(),
            serde_json::Value::Object(o) => o.values().any(|x| !x.is_null()),
            _ => true,
        })
        .map(|(k, _)| format!("linux.resources.{k}"))
}

/// The container's processes: its cgroup's, or for a container without one (see
/// `cgroups::skip_rootless`) those in its init's pid namespace — when that is not ours; else the
/// init alone. runc 1.1.5 has nothing to list then and fails `kill --all` and `ps`.
pub fn container_pids(cgroup_path: &Path, init: Option<i32>) -> Vec<i32> {
    if !cgroup_path.as_os_str().is_empty() {
        return crate::cgroups::pids(cgroup_path);
    }
    let Some(init) = init else { return vec![] };
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let theirs = ns(&init.to_string());
    if theirs.is_none() || theirs == ns("self") {
        return vec![init];
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns(&p.to_string()) == theirs)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_resources_and_devices_are_no_limits() {
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert_eq!(first_limit(&r), None);
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_str(r#"{"memory":{"limit":1048576}}"#).unwrap();
        assert_eq!(first_limit(&r).as_deref(), Some("linux.resources.memory"));
    }
}
