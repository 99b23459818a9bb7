//! The host's cgroup hierarchies, taken from the mount table: a `cgroup` or `cgroup2` mount is a
//! hierarchy, a plain directory under `/sys/fs/cgroup` is not. Some tools and test suites create
//! `hugetlb/` or `net_cls/` on the tmpfs there; treating one as a hierarchy would write
//! `carte/ID/tasks` into it as a regular file that `rmdir` can never remove (runc, too, reads
//! mountinfo: `cgroups.GetCgroupMounts`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One mounted hierarchy: where it is mounted first, and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// v1: its controllers and `name=…` (the super options that are not mount options); v2: empty.
    pub controllers: Vec<String>,
    pub v2: bool,
}

impl Hierarchy {
    /// A hierarchy a container is placed in, as runc's v1 manager does: every controller
    /// hierarchy, the `name=systemd` one and, on hybrid hosts, the cgroup2 one. Other named
    /// hierarchies belong to whatever tool mounted them.
    pub fn joined(&self) -> bool {
        self.v2
            || self
                .controllers
                .iter()
                .any(|c| !c.starts_with("name=") || c == "name=systemd")
    }

    /// Whether it holds one of `ctrls`.
    pub fn holds(&self, ctrls: &[&str]) -> bool {
        self.controllers.iter().any(|c| ctrls.contains(&c.as_str()))
    }

    /// The directory of cgroup `path` (absolute or not, from the hierarchy's root) in it.
    pub fn dir(&self, path: &Path) -> PathBuf {
        self.mount_point
            .join(path.strip_prefix("/").unwrap_or(path))
    }
}

/// Every hierarchy mounted in our mount namespace, each once (a hierarchy can be mounted, or a
/// cgroup file bind-mounted, at several places: the first mount of a superblock is the one).
/// Read once per process: carte's own mounts never change the host's table.
pub fn all() -> &'static [Hierarchy] {
    static ALL: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    ALL.get_or_init(read)
}

/// The hierarchies of our mount namespace now, read afresh (`all` is the cached first reading).
pub fn read() -> Vec<Hierarchy> {
    parse(&crate::kernel_text::read("/proc/self/mountinfo").unwrap_or_default())
}

/// The hierarchy holding controller `ctrl` (`freezer`, `cpu`…), or the cgroup2 one on a
/// unified host.
pub fn for_controller(ctrl: &str) -> Option<&'static Hierarchy> {
    let all = all();
    all.iter()
        .find(|h| h.holds(&[ctrl]))
        .or_else(|| all.iter().find(|h| h.v2 && unified()))
}

/// A cgroup v2 host: `/sys/fs/cgroup` itself is the cgroup2 mount.
pub fn unified() -> bool {
    all()
        .iter()
        .any(|h| h.v2 && h.mount_point == Path::new(super::CGROUP_ROOT))
}

/// Super options of a v1 mount that are not controllers (cgroup-v1.rst, "mount options").
const V1_OPTIONS: [&str; 7] = [
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "none",
];

pub fn parse(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = vec![];
    let mut seen: Vec<String> = vec![];
    for m in crate::mountinfo::parse_types(mountinfo, &["cgroup", "cgroup2"]) {
        let v2 = match m.fs_type.as_str() {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        if seen.contains(&m.dev) {
            continue;
        }
        seen.push(m.dev);
        let controllers = if v2 {
            vec![]
        } else {
            m.super_options
                .split(',')
                .filter(|o| !o.is_empty() && !V1_OPTIONS.contains(o))
                .filter(|o| !o.contains('=') || o.starts_with("name="))
                .map(str::to_string)
                .collect()
        };
        out.push(Hierarchy {
            mount_point: m.mount_point,
            controllers,
            v2,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:39 / /run/my\\040tool rw,relatime - cgroup cgroup rw,name=mytool
50 23 0:32 /x /tmp/again rw,relatime - cgroup cgroup rw,memory
51 23 0:99 / /sys/fs/cgroup/hugetlb rw,relatime - tmpfs tmpfs rw";

    #[test]
    fn hierarchies_come_from_cgroup_mounts_once_each() {
        let h = parse(HYBRID);
        let points: Vec<_> = h.iter().map(|h| h.mount_point.clone()).collect();
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified",
                "/run/my tool",
            ]
            .map(PathBuf::from)
        );
        assert_eq!(h[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h[2].controllers, ["name=systemd"]);
        assert!(h[3].v2 && h[3].controllers.is_empty());
        let joined: Vec<bool> = h.iter().map(Hierarchy::joined).collect();
        assert_eq!(joined, [true, true, true, true, false]);
        assert_eq!(
            h[1].dir(Path::new("/carte/c1")),
            PathBuf::from("/sys/fs/cgroup/memory/carte/c1")
        );
    }
}
