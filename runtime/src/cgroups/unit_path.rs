//! Where systemd puts a container's cgroup: `linux.cgroupsPath` `slice:prefix:name` (runc's systemd form,
//! libcgroups' `CgroupsPath`) names the transient scope `prefix-name.scope` in `slice`, whose directory on the
//! unified hierarchy is the slice's expansion (`a-b.slice` → `/a.slice/a-b.slice`, systemd.slice(5)) plus the
//! unit. Computed, not asked over D-Bus: `state`, `list`, `ps` and `kill --all` read the directory on every
//! call, and the container's whole life sees one systemd whose cgroup root is the hierarchy's (runc's
//! `getUnitName`/`ExpandSlice` derive it the same way).

use std::path::{Path, PathBuf};

/// The cgroupfs path (below the hierarchy's mount) of a container's cgroup: `path` itself for the cgroupfs
/// drivers, and for systemd on a unified host its scope's directory. libcgroups ignores the systemd driver
/// on v1 and hybrid hosts and uses the path as a directory name, and so does this. A path systemd would refuse
/// is returned unchanged (create has already failed on it).
pub fn fs_path(path: &Path, systemd: bool) -> PathBuf {
    if !systemd || !super::hierarchy::unified() {
        return path.to_path_buf();
    }
    scope_dir(path).unwrap_or_else(|| path.to_path_buf())
}

/// `slice:prefix:name` (or `prefix:name`, in `system.slice`) → `/<slice expansion>/prefix-name.scope`; a name
/// ending in `.slice` is the unit itself, as in libcgroups and runc.
fn scope_dir(path: &Path) -> Option<PathBuf> {
    let text = path.to_str()?;
    let parts: Vec<&str> = text.split(':').collect();
    let (slice, prefix, name) = match parts[..] {
        [prefix, name] => ("", prefix, name),
        [slice, prefix, name] => (slice, prefix, name),
        _ => return None,
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else {
        format!("{prefix}-{name}.scope")
    };
    if unit.contains('/') {
        return None;
    }
    Some(expand_slice(slice)?.join(unit))
}

/// systemd's slice naming: each `-` opens a level, `-.slice` is the root.
fn expand_slice(slice: &str) -> Option<PathBuf> {
    let stem = slice.strip_suffix(".slice")?;
    if stem == "-" {
        return Some(PathBuf::from("/"));
    }
    if stem.is_empty() || slice.contains('/') {
        return None;
    }
    let mut dir = PathBuf::from("/");
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return None;
        }
        prefix.push_str(part);
        dir.push(format!("{prefix}.slice"));
        prefix.push('-');
    }
    Some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_slices() {
        let dir = |p: &str| scope_dir(Path::new(p));
        assert_eq!(
            dir("system.slice:carte:c1"),
            Some(PathBuf::from("/system.slice/carte-c1.scope"))
        );
        assert_eq!(
            dir("carte:c1"),
            Some(PathBuf::from("/system.slice/carte-c1.scope"))
        );
        assert_eq!(
            dir("foo-bar.slice:cri:c1"),
            Some(PathBuf::from("/foo.slice/foo-bar.slice/cri-c1.scope"))
        );
        assert_eq!(
            dir("-.slice:carte:c1"),
            Some(PathBuf::from("/carte-c1.scope"))
        );
        assert_eq!(
            dir("kubepods.slice:cri:kubepods-pod1.slice"),
            Some(PathBuf::from("/kubepods.slice/kubepods-pod1.slice"))
        );
        for bad in [
            "/carte/c1",
            "a:b:c:d",
            "foo:carte:c1",
            "a--b.slice:x:y",
            "x.slice:p:a/b",
        ] {
            assert_eq!(dir(bad), None, "{bad}");
        }
    }
}
