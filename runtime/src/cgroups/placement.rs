//! Where a container's cgroup goes: `linux.cgroupsPath` as given, carte's default for the id, and
//! for a rootless runtime on cgroup v2 runc's rule that puts a relative path (the default included)
//! below the parent of the runtime's own cgroup — the one place a user's delegated subtree can be.
//! Decided once at `create` and stored in the state: every later verb reads the path from there.
//!
//! runc (opencontainers/cgroups `fs2/defaultpath.go`): on v2 with the cgroupfs driver, an absolute
//! path is taken from the hierarchy's root, a relative one (and, without `cgroupsPath`, the
//! container's id) from the parent of the `0::` line of `/proc/self/cgroup`, because "the current
//! user scope most probably has tasks in it already, making it impossible to enable controllers
//! for its sub-cgroup". Rootless podman with `--cgroup-manager cgroupfs` passes no `cgroupsPath`
//! (its `getOCICgroupPath`) and starts the runtime from its own cgroup, so a user who owns a
//! delegated `D` and runs podman in `D/launch` gets its containers in `D/<id>`, limits and all.
//!
//! carte follows that rule only where it decides whether a container has a cgroup at all: a
//! rootless runtime (`cgroups_rootless`) on a unified host. For root, a relative path stays
//! relative to the hierarchy's root and the default is `/carte-<id>`: root's callers (docker,
//! podman, kubelet, containerd with cgroupfs) pass absolute paths; a root runtime's own cgroup is
//! often a systemd service's (`/system.slice/containerd.service`), whose parent systemd owns and
//! prunes; and runc 1.1.5's own answer differs by host — on this cgroup v1 host, with
//! `cgroupsPath` `relx/c1`, it made `memory/process_api/<hash>/relx/c1` (below its own memory
//! cgroup) but `pids/relx/c1` and `unified/relx/c1` at the root, where carte made all of them at
//! the root.

use std::path::{Path, PathBuf};

/// `linux.cgroupsPath` if given, else `/carte-<id>` for the fs drivers and `system.slice:carte:<id>`
/// (the unit `carte-<id>.scope`) for systemd; with `base` (see `rootless_base`) a relative path or
/// the default `<id>` goes below it. The fs default sits at the hierarchy's root, as crun's `/<id>`,
/// with no shared parent to make in every hierarchy for the first container and remove after the
/// last (on cgroup v1 some 30 mkdir and rmdir calls and a cpuset copy, 0.2–0.4 ms of a `run`);
/// the prefix keeps carte's cgroups apart from the host's (`init.scope`, `system.slice`) whatever
/// the id.
pub fn path_for(spec_path: Option<&Path>, id: &str, systemd: bool, base: Option<&Path>) -> PathBuf {
    let given = spec_path.filter(|p| !p.as_os_str().is_empty());
    if systemd {
        return given.map_or_else(
            || PathBuf::from(format!("system.slice:carte:{id}")),
            Path::to_path_buf,
        );
    }
    match (given, base) {
        (Some(p), _) if p.is_absolute() => p.to_path_buf(),
        (Some(p), Some(base)) => base.join(p),
        (None, Some(base)) => base.join(id),
        (Some(p), None) => p.to_path_buf(),
        (None, None) => PathBuf::from(format!("/carte-{id}")),
    }
}

/// The directory runc's rule places relative paths under, when it applies: a rootless runtime with
/// the cgroupfs driver on a unified host. The runtime's own cgroup is read here, in the verb that
/// decides (create, restore, a delete from a lost state), never later.
pub fn rootless_base(rootless: bool, systemd: bool) -> Option<PathBuf> {
    if !rootless || systemd || !super::hierarchy::unified() {
        return None;
    }
    parent_of_own(&crate::kernel_text::read("/proc/self/cgroup").ok()?)
}

/// The parent of the cgroup v2 path in a `/proc/PID/cgroup` text (`/` for the root itself).
fn parent_of_own(proc_cgroup: &str) -> Option<PathBuf> {
    let own = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(Path::new)
        .filter(|p| p.is_absolute())?;
    Some(own.parent().unwrap_or(own).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn root_defaults_and_given_paths() {
        assert_eq!(path_for(None, "c1", false, None), p("/carte-c1"));
        let empty = Path::new("");
        assert_eq!(path_for(Some(empty), "c1", false, None), p("/carte-c1"));
        assert_eq!(path_for(None, "c1", true, None), p("system.slice:carte:c1"));
        assert_eq!(
            path_for(Some(Path::new("/x/y")), "c1", false, None),
            p("/x/y")
        );
        // Relative stays relative for root: the hierarchy's root is its base.
        assert_eq!(
            path_for(Some(Path::new("x/y")), "c1", false, None),
            p("x/y")
        );
    }

    #[test]
    fn rootless_v2_uses_the_parent_of_the_own_cgroup() {
        let base = parent_of_own("0::/user-deleg/launch\n");
        assert_eq!(base, Some(p("/user-deleg")));
        let base = base.as_deref();
        assert_eq!(path_for(None, "c1", false, base), p("/user-deleg/c1"));
        assert_eq!(
            path_for(Some(Path::new("")), "c1", false, base),
            p("/user-deleg/c1")
        );
        assert_eq!(
            path_for(Some(Path::new("a/b")), "c1", false, base),
            p("/user-deleg/a/b")
        );
        // Absolute paths and the systemd driver's `slice:prefix:name` are taken as given.
        assert_eq!(
            path_for(Some(Path::new("/x/c1")), "c1", false, base),
            p("/x/c1")
        );
        assert_eq!(
            path_for(Some(Path::new("u.slice:p:c1")), "c1", true, base),
            p("u.slice:p:c1")
        );
        // `..` survives the join, so create's check_path refuses it as for any other path.
        let up = path_for(Some(Path::new("../x")), "c1", false, base);
        assert!(super::super::check_path(&up, false).is_err(), "{up:?}");
    }

    #[test]
    fn own_cgroup_from_proc() {
        let hybrid =
            "9:name=systemd:/\n4:memory:/process_api/b4\n0::/user.slice/u-1.slice/s.scope\n";
        assert_eq!(parent_of_own(hybrid), Some(p("/user.slice/u-1.slice")));
        // The root's parent is the root: the container would be `/<id>`, which no user can create.
        assert_eq!(parent_of_own("0::/\n"), Some(p("/")));
        assert_eq!(path_for(None, "c1", false, Some(Path::new("/"))), p("/c1"));
        // cgroup v1 only: no unified line, no rule.
        assert_eq!(parent_of_own("4:memory:/x\n"), None);
    }
}
