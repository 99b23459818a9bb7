//! What of a container lies outside it, for criu: the mounts whose source is the host's (bind
//! mounts, the cgroup v1 hierarchies, the devices and the /dev/null over masked paths) and the
//! namespaces config.json names by path. criu cannot dump such a mount (its source is not in the
//! container) nor recreate such a namespace; it records a key at dump and is given the host's
//! object for that key at restore (runc's `addCriuDumpMount`/`addCriuRestoreMount`,
//! `handleCheckpointingExternalNamespaces`, `handleRestoringNamespaces`).

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The devices every container gets (`rootfs::devices::defaults`), bind-mounted from the host
/// when mknod is not allowed: external then.
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|w| w == "bind" || w == "rbind"))
}

fn mounts(spec: &Spec) -> &[Mount] {
    spec.mounts().as_deref().unwrap_or(&[])
}

fn devices(spec: &Spec) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = DEFAULT_DEVICES.iter().map(PathBuf::from).collect();
    let spec_devs = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    for d in spec_devs.into_iter().flatten() {
        if !out.contains(d.path()) {
            out.push(d.path().clone());
        }
    }
    out
}

/// `dest` as the container sees it: symlinks inside the rootfs resolved (a bind mount whose
/// destination is a symlink is mounted where the link points), lexically, never leaving the
/// rootfs — what runc gets from securejoin.
pub fn resolve_in_root(rootfs: &Path, dest: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let mut todo: Vec<PathBuf> = dest
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.components().next() {
            Some(Component::RootDir) | Some(Component::CurDir) | None => continue,
            Some(Component::ParentDir) => {
                out.pop();
                continue;
            }
            _ => {}
        }
        let next = out.join(&c);
        let host = rootfs.join(next.strip_prefix("/").unwrap_or(&next));
        match std::fs::read_link(&host) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                todo.extend(
                    target
                        .components()
                        .rev()
                        .map(|c| PathBuf::from(c.as_os_str())),
                );
            }
            _ => out = next,
        }
    }
    out
}

/// The container's mounts that are cgroup v1 hierarchies (or the hybrid host's cgroup2 one)
/// bound from the host (`rootfs::cgroupfs`): on a v2 host the container has a real cgroup2
/// mount, which criu dumps itself.
fn cgroup_binds(pid: i32) -> Result<Vec<PathBuf>> {
    if crate::cgroups::hierarchy::unified() {
        return Ok(vec![]);
    }
    let path = format!("/proc/{pid}/mountinfo");
    let text = std::fs::read_to_string(&path).ctx("read", &path)?;
    Ok(crate::mountinfo::parse_types(&text, &["cgroup", "cgroup2"])
        .into_iter()
        .map(|e| e.mount_point)
        .collect())
}

/// Dump: `--ext-mount-map MOUNTPOINT:KEY` pairs for the running init `pid`.
pub fn dump_mounts(spec: &Spec, rootfs: &Path, pid: i32) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = vec![];
    for m in mounts(spec).iter().filter(|m| is_bind(m)) {
        let d = resolve_in_root(rootfs, m.destination());
        out.push((d.clone(), d));
    }
    for mp in cgroup_binds(pid)? {
        out.push((mp.clone(), mp));
    }
    // A masked file has the container's /dev/null bound over it; a masked directory a tmpfs,
    // which criu dumps. All masked files share one key, given the host's /dev/null at restore.
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for p in masked {
        let inside = format!("/proc/{pid}/root/{}", p.trim_start_matches('/'));
        if std::fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) {
            out.push((PathBuf::from(&p), PathBuf::from("/dev/null")));
        }
    }
    for d in devices(spec) {
        out.push((d.clone(), d));
    }
    Ok(out)
}

/// Restore: `--ext-mount-map KEY:HOST_SOURCE` pairs for a container of `spec` (bundle `bundle`)
/// whose cgroup is `cgroup_path`.
pub fn restore_mounts(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroup_path: &Path,
) -> Vec<(PathBuf, PathBuf)> {
    let mut out = vec![];
    for m in mounts(spec).iter().filter(|m| is_bind(m)) {
        let Some(src) = m.source() else { continue };
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        out.push((resolve_in_root(rootfs, m.destination()), src));
    }
    if !crate::cgroups::hierarchy::unified() {
        let cg_dest = mounts(spec)
            .iter()
            .find(|m| m.typ().as_deref() == Some("cgroup"))
            .map(|m| m.destination().clone());
        if let Some(dest) = cg_dest {
            for h in crate::cgroups::hierarchy::all()
                .iter()
                .filter(|h| h.joined())
            {
                if let Some(name) = h.mount_point.file_name() {
                    out.push((dest.join(name), h.dir(cgroup_path)));
                }
            }
        }
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref());
    if masked.is_some_and(|m| !m.is_empty()) {
        out.push(("/dev/null".into(), "/dev/null".into()));
    }
    for d in devices(spec) {
        if !out.iter().any(|(k, _)| *k == d) {
            out.push((d.clone(), d));
        }
    }
    out
}

/// A namespace config.json names by path, in criu's words: net and pid are "external" (criu
/// leaves them alone and expects them at restore, handed over as an inherited fd under a key),
/// the others are joined at restore (`--join-ns`). criu has no support for cgroup namespaces.
pub struct NsPath {
    pub criu_name: &'static str,
    pub path: PathBuf,
}

fn criu_name(t: LinuxNamespaceType) -> Option<&'static str> {
    Some(match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
        LinuxNamespaceType::Cgroup => return None,
    })
}

pub fn ns_paths(spec: &Spec) -> Result<Vec<NsPath>> {
    let nss = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    let mut out = vec![];
    for ns in nss.into_iter().flatten() {
        let Some(path) = ns.path() else { continue };
        let Some(criu_name) = criu_name(ns.typ()) else {
            return Err(Error::spec(
                "linux.namespaces",
                "criu cannot checkpoint or restore a container that joins a cgroup namespace",
            ));
        };
        out.push(NsPath {
            criu_name,
            path: path.clone(),
        });
    }
    Ok(out)
}

/// The key criu knows an external namespace of this kind by.
pub fn ext_key(criu_name: &str) -> Option<&'static str> {
    match criu_name {
        "net" => Some(super::EXT_NET_KEY),
        "pid" => Some(super::EXT_PID_KEY),
        _ => None,
    }
}

/// Dump: `--external net[INODE]:extRootNetNS` (and pid) for namespaces given by path.
pub fn dump_namespaces(spec: &Spec) -> Result<Vec<String>> {
    let mut out = vec![];
    for ns in ns_paths(spec)? {
        let Some(key) = ext_key(ns.criu_name) else {
            continue;
        };
        let ino = std::fs::metadata(&ns.path)
            .ctx("stat namespace", ns.path.display())?
            .ino();
        out.push(format!("{}[{ino}]:{key}", ns.criu_name));
    }
    Ok(out)
}

/// Restore: make the mount points config.json needs in the rootfs, as `create` would, for a rootfs
/// that never ran the container (a restore from exported images, or under another bundle): criu
/// mounts onto them and does not create them (runc's `prepareCriuRestoreMounts`). cgroup mount
/// points come with their parent mount; mount points inside a tmpfs come back with its contents.
pub fn make_mountpoints(spec: &Spec, bundle: &Path, rootfs: &Path) -> Result<()> {
    use crate::rootfs::safe_path;
    let root = std::fs::File::open(rootfs).ctx("open rootfs", rootfs.display())?;
    let tmpfs: Vec<&Path> = mounts(spec)
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    for m in mounts(spec) {
        let dest = m.destination();
        let typ = m.typ().as_deref().unwrap_or("");
        if typ == "cgroup"
            || typ == "cgroup2"
            || tmpfs.iter().any(|t| dest != *t && dest.starts_with(t))
        {
            continue;
        }
        // A bind of a file needs a file as its mount point.
        let file = is_bind(m)
            && m.source().as_ref().is_some_and(|s| {
                let src = if s.is_absolute() {
                    s.clone()
                } else {
                    bundle.join(s)
                };
                std::fs::metadata(src).is_ok_and(|md| !md.is_dir())
            });
        safe_path::ensure_in_root(std::os::fd::AsFd::as_fd(&root), dest, file, dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_resolve_inside_the_rootfs() {
        let d = std::env::temp_dir().join(format!("carte-criu-ext-{}", std::process::id()));
        std::fs::create_dir_all(d.join("real/conf")).unwrap();
        let _ = std::os::unix::fs::symlink("/real/conf", d.join("conf"));
        let _ = std::os::unix::fs::symlink("../../..", d.join("real/up"));
        assert_eq!(
            resolve_in_root(&d, Path::new("/conf")),
            Path::new("/real/conf")
        );
        assert_eq!(
            resolve_in_root(&d, Path::new("/conf/x")),
            Path::new("/real/conf/x")
        );
        assert_eq!(
            resolve_in_root(&d, Path::new("/real/up/etc")),
            Path::new("/etc")
        );
        assert_eq!(resolve_in_root(&d, Path::new("/a/../b")), Path::new("/b"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
