//! Finds cgroup hierarchies (v1, hybrid or v2) and the files a container's limits land in.

use std::path::{Path, PathBuf};

/// One mounted cgroup hierarchy on the host.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub v2: bool,
    /// v1: the controllers in the mount options (and `name=…`); v2: `cgroup.controllers`.
    pub controllers: Vec<String>,
}

/// Every cgroup and cgroup2 mount in the host's mountinfo.
pub fn hierarchies() -> Vec<Hierarchy> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in crate::mountinfo::parse(&text) {
        let mount = PathBuf::from(&m.mount_point);
        if out.iter().any(|h| h.mount == mount) {
            continue;
        }
        match m.fstype.as_str() {
            "cgroup" => {
                let controllers = m
                    .super_options
                    .iter()
                    .filter(|o| {
                        !matches!(
                            o.as_str(),
                            "rw" | "ro" | "relatime" | "noexec" | "nosuid" | "nodev"
                        )
                    })
                    .cloned()
                    .collect();
                out.push(Hierarchy {
                    mount,
                    v2: false,
                    controllers,
                });
            }
            "cgroup2" => {
                let controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                out.push(Hierarchy {
                    mount,
                    v2: true,
                    controllers,
                });
            }
            _ => {}
        }
    }
    out
}

/// Where controller `ctrl` is managed: its v1 hierarchy if one exists, else the v2 tree if it lists it.
pub fn hierarchy_for(ctrl: &str) -> Option<Hierarchy> {
    let all = hierarchies();
    all.iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == ctrl))
        .or_else(|| {
            all.iter()
                .find(|h| h.v2 && h.controllers.iter().any(|c| c == ctrl))
        })
        .cloned()
}

/// Reads a limit file of a cgroup: `v1_file` on a v1 hierarchy, `v2_file` on the unified one.
/// Returns `(is_v2, trimmed content)`.
pub fn read_limit(
    ctrl: &str,
    cgroup_path: &str,
    v1_file: &str,
    v2_file: &str,
) -> Option<(bool, String)> {
    let h = hierarchy_for(ctrl)?;
    let file = if h.v2 { v2_file } else { v1_file };
    let path = h.mount.join(cgroup_path.trim_start_matches('/')).join(file);
    let text = std::fs::read_to_string(path).ok()?;
    Some((h.v2, text.trim().to_string()))
}

/// Cgroup directories anywhere (bounded depth) in any hierarchy whose name is `id`'s (`audit::cgroup_name_is`:
/// the id as a whole token, or a systemd scope `<prefix>-<id>.scope`).
pub fn dirs_matching(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for h in hierarchies() {
        walk(&h.mount, id, 0, &mut found);
    }
    found
}

fn walk(dir: &Path, id: &str, depth: usize, found: &mut Vec<PathBuf>) {
    if depth > 6 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = e.path();
        if crate::audit::cgroup_name_is(&e.file_name().to_string_lossy(), id) {
            found.push(path.clone());
        }
        walk(&path, id, depth + 1, found);
    }
}

/// `dir` and every directory below it (bounded depth).
pub fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].components().count() < dir.components().count() + 8 {
            let entries = std::fs::read_dir(&out[i]).into_iter().flatten().flatten();
            let subdirs: Vec<PathBuf> = entries
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            out.extend(subdirs);
        }
        i += 1;
    }
    out
}

/// The cgroup path of `pid` in the hierarchy that holds `ctrl` (`/proc/<pid>/cgroup`), e.g. `/carte/c1`.
pub fn path_of(pid: i64, ctrl: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let h = hierarchy_for(ctrl)?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if h.v2 {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == ctrl)
        };
        hit.then(|| path.to_string())
    })
}

/// The cgroup parent the tests put their containers under (`linux.cgroupsPath = /carte-test/<id>`).
pub const TEST_PARENT: &str = "carte-test";

/// Remove [`TEST_PARENT`] from every hierarchy where it is empty (rmdir refuses otherwise).
pub fn remove_test_parent() {
    for h in hierarchies() {
        let _ = std::fs::remove_dir(h.mount.join(TEST_PARENT));
    }
}

/// The unified hierarchy's mount point when the host has no cgroup v1 hierarchy at all (a pure cgroup v2 host,
/// such as the guest of `tests/vm/run.sh`); `None` on v1 and hybrid hosts.
pub fn v2_only() -> Option<PathBuf> {
    let all = hierarchies();
    if all.iter().any(|h| !h.v2) {
        return None;
    }
    all.into_iter().find(|h| h.v2).map(|h| h.mount)
}

/// The freezer state of `pid`'s cgroup as v1 names it, `FROZEN` or `THAWED`: v1's `freezer.state`, or on v2
/// the `frozen` key of `cgroup.events` (what the kernel reached, not `cgroup.freeze`, what was asked).
pub fn freezer_state(pid: i64) -> Option<String> {
    let h = hierarchy_for("freezer")
        .filter(|h| !h.v2)
        .or_else(|| hierarchies().into_iter().find(|h| h.v2))?;
    // v2 has no freezer controller to look up: every cgroup has cgroup.freeze, at the process's one path.
    let path = if h.v2 {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))?
            .to_string()
    } else {
        path_of(pid, "freezer")?
    };
    let dir = h.mount.join(path.trim_start_matches('/'));
    if !h.v2 {
        let text = std::fs::read_to_string(dir.join("freezer.state")).ok()?;
        return Some(text.trim().to_string());
    }
    let text = std::fs::read_to_string(dir.join("cgroup.events")).ok()?;
    let frozen = text.lines().find_map(|l| l.strip_prefix("frozen "))?;
    Some(
        if frozen.trim() == "1" {
            "FROZEN"
        } else {
            "THAWED"
        }
        .to_string(),
    )
}
