//! Idmapped mounts (config.md `mounts[].uidMappings`/`gidMappings`, options `idmap`/`ridmap`): which
//! mounts are idmapped, the user namespace that carries a mount's maps, and the detached idmapped
//! tree the parent makes for the init. It does not mount anything into the container (`mount.rs` does).
//!
//! The kernel sets an id mapping only on a detached mount (`open_tree(OPEN_TREE_CLONE)`), only for a
//! caller privileged over the filesystem — host root for a host directory — and takes the mapping
//! from a user namespace fd (mount_setattr(2) `MOUNT_ATTR_IDMAP`). So, as runc 1.2 does, the parent
//! makes the tree: with the mount's own maps it spawns a helper process in a new user namespace
//! holding them; without, it uses the container's user namespace. The init then only `move_mount`s
//! the tree into place. An on-disk id `containerID + n` shows as `hostID + n` through the mount
//! (Documentation/filesystems/idmappings.rst), which the container's user namespace maps as usual.

use crate::error::{Context, Error, Result};
use crate::sys::{self, Forked};
use nix::mount::MsFlags;
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// One idmapped mount, as the config asks for it.
#[derive(Debug, PartialEq)]
pub struct Idmap {
    /// `ridmap`: every mount of an `rbind` tree gets the mapping, not only the top one.
    pub recursive: bool,
    /// The mount's own `(uid_map, gid_map)` in /proc's format; `None`: the container's user namespace.
    pub maps: Option<(String, String)>,
}

/// Whether mount `i` is idmapped, checked against the spec's rules; `userns`: the container has a
/// user namespace. Pure, so `validate` refuses a bad config before anything exists.
pub fn of(m: &Mount, i: usize, userns: bool) -> Result<Option<Idmap>> {
    let opts = m.options().as_deref().unwrap_or_default();
    let word = opts.iter().rev().find(|o| *o == "idmap" || *o == "ridmap");
    let (uids, gids) = (m.uid_mappings().as_deref(), m.gid_mappings().as_deref());
    if word.is_none() && uids.is_none() && gids.is_none() {
        return Ok(None);
    }
    let flags = super::mount::parse_options(opts).flags;
    if !flags.contains(MsFlags::MS_BIND) && m.typ().as_deref() != Some("bind") {
        // runc: "id-mapped mounts are only supported for bind-mounts".
        return Err(Error::spec(
            format!("mounts[{i}]"),
            "idmapped mounts are only supported for bind mounts",
        ));
    }
    let maps = match (uids, gids) {
        (Some(u), Some(g)) => Some((
            crate::namespaces::id_map(Some(u), &format!("mounts[{i}].uidMappings"))?,
            crate::namespaces::id_map(Some(g), &format!("mounts[{i}].gidMappings"))?,
        )),
        // config.md: each "MUST be specified along with" the other.
        (Some(_), None) => {
            return Err(Error::spec(
                format!("mounts[{i}].gidMappings"),
                "missing: uidMappings needs it",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::spec(
                format!("mounts[{i}].uidMappings"),
                "missing: gidMappings needs it",
            ))
        }
        // config.md: without maps the container's user namespace MAY be used; with none, an error MUST be returned.
        (None, None) if !userns => {
            return Err(Error::spec(
                format!("mounts[{i}].options"),
                format!(
                    "`{}` without uidMappings/gidMappings needs a user namespace",
                    word.map(String::as_str).unwrap_or("idmap")
                ),
            ))
        }
        (None, None) => None,
    };
    // Mappings without a word mean `idmap` (runc's reading of the spec's SHOULD).
    Ok(Some(Idmap {
        recursive: word.is_some_and(|w| w == "ridmap"),
        maps,
    }))
}

/// Whether mount `m` asks to be idmapped (words or mappings; `of` checks the rest).
pub fn wanted(m: &Mount) -> bool {
    m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "idmap" || o == "ridmap")
}

/// Whether any mount of `spec` asks to be idmapped.
pub fn any(spec: &oci_spec::runtime::Spec) -> bool {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(wanted)
}

/// The user namespace whose mapping the mount gets: a helper's holding the mount's maps, or the
/// container init's (`pid`). Called by the parent (host root) before it enters the mount namespace.
pub fn userns_for(idmap: &Idmap, pid: i32) -> Result<OwnedFd> {
    match &idmap.maps {
        None => {
            let p = format!("/proc/{pid}/ns/user");
            std::fs::File::open(&p).map(OwnedFd::from).ctx("open", &p)
        }
        Some((uid_map, gid_map)) => userns_with(uid_map, gid_map),
    }
}

/// runc's `userns.Handles`: a child born in a new user namespace waits on a pipe while we write its
/// maps and open its namespace; the fd keeps the namespace alive after the child is gone.
fn userns_with(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let (wait_r, wait_w) = nix::unistd::pipe().ctx("pipe", "idmap helper")?;
    match sys::clone_fork(libc::CLONE_NEWUSER).ctx("clone", "idmap helper (new user namespace)")? {
        Forked::Child => {
            drop(wait_w);
            // Only wait for the parent's end to close, then go: nothing else runs in this copy.
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&wait_r), &mut [0u8; 1]);
            sys::exit_now(0)
        }
        Forked::Parent(pid) => {
            drop(wait_r);
            let res = (|| {
                use crate::procfs::{write, Base};
                write(Base::Pid(pid), Path::new("uid_map"), uid_map.as_bytes())?;
                write(Base::Pid(pid), Path::new("gid_map"), gid_map.as_bytes())?;
                let p = format!("/proc/{pid}/ns/user");
                std::fs::File::open(&p).map(OwnedFd::from).ctx("open", &p)
            })();
            drop(wait_w);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            res
        }
    }
}

/// The detached, idmapped copy of `src` for mount `i` (`m`), made in the container's mount
/// namespace; `rbind` copies the whole tree, `ridmap` maps every mount of it.
pub fn open_tree(
    m: &Mount,
    i: usize,
    src: &Path,
    idmap: &Idmap,
    userns: BorrowedFd,
) -> Result<OwnedFd> {
    let flags = super::mount::parse_options(m.options().as_deref().unwrap_or_default()).flags;
    let shown = format!(
        "{} for mounts[{i}] ({})",
        src.display(),
        m.destination().display()
    );
    let tree = sys::open_tree_clone_path(src, flags.contains(MsFlags::MS_REC))
        .ctx("open_tree (clone)", &shown)?;
    match sys::mount_setattr_idmap(tree.as_fd(), userns, idmap.recursive) {
        Ok(()) => Ok(tree),
        // The filesystem does not support idmapped mounts (no FS_ALLOW_IDMAP; e.g. procfs, sysfs,
        // or an older kernel's tmpfs/NFS): say which one, as the error is otherwise a bare EINVAL.
        Err(nix::errno::Errno::EINVAL) => Err(Error::Other(format!(
            "idmapped mount {shown}: the {} filesystem of the source cannot be idmapped (mount_setattr MOUNT_ATTR_IDMAP: EINVAL)",
            fs_name(&tree)
        ))),
        Err(e) => Err(Error::sys("mount_setattr MOUNT_ATTR_IDMAP", &shown, e)),
    }
}

/// A readable name for the filesystem under `fd` (statfs magic, linux/magic.h).
fn fs_name(fd: &OwnedFd) -> String {
    let Ok(st) = nix::sys::statfs::fstatfs(fd) else {
        return "source's".into();
    };
    let magic = st.filesystem_type().0 as u64;
    let known: &[(u64, &str)] = &[
        (0x9fa0, "proc"),
        (0x6265_6572, "sysfs"),
        (0x0102_1994, "tmpfs"),
        (0x1cd1, "devpts"),
        (0x1980_0202, "mqueue"),
        (0x6367_7270, "cgroup2"),
        (0x0027_e0eb, "cgroup"),
        (0x6969, "nfs"),
        (0x6573_5546, "fuse"),
        (0x794c_7630, "overlay"),
        (0xef53, "ext4"),
        (0x5846_5342, "xfs"),
        (0x9123_683e, "btrfs"),
        (0xcafe_4a11, "bpf"),
        (0x7472_6163, "tracefs"),
        (0x6462_6720, "debugfs"),
        (0x7363_6673, "securityfs"),
    ];
    known
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, n)| format!("`{n}`"))
        .unwrap_or_else(|| format!("{magic:#x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(json: &str) -> Mount {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn words_and_mappings() {
        let plain =
            mount(r#"{"destination":"/m","type":"bind","source":"/s","options":["rbind"]}"#);
        assert_eq!(of(&plain, 0, false).unwrap(), None);
        let own = mount(
            r#"{"destination":"/m","type":"bind","source":"/s","options":["rbind","ridmap"],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
            "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#,
        );
        let got = of(&own, 0, false).unwrap().unwrap();
        assert!(got.recursive);
        assert_eq!(got.maps, Some(("0 1000 1\n".into(), "0 1000 1\n".into())));
        let container = mount(r#"{"destination":"/m","source":"/s","options":["bind","idmap"]}"#);
        assert_eq!(
            of(&container, 0, true).unwrap(),
            Some(Idmap {
                recursive: false,
                maps: None
            })
        );
        let e = of(&container, 3, false).unwrap_err().to_string();
        assert!(
            e.contains("mounts[3].options") && e.contains("user namespace"),
            "{e}"
        );
        let half = mount(
            r#"{"destination":"/m","source":"/s","options":["bind"],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#,
        );
        let e = of(&half, 1, true).unwrap_err().to_string();
        assert!(e.contains("mounts[1].gidMappings"), "{e}");
        let tmpfs =
            mount(r#"{"destination":"/m","type":"tmpfs","source":"tmpfs","options":["idmap"]}"#);
        let e = of(&tmpfs, 2, true).unwrap_err().to_string();
        assert!(e.contains("only supported for bind mounts"), "{e}");
    }
}
