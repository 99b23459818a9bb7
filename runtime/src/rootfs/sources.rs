//! Bind-mount sources of a container with a user namespace, opened by the parent (host root) in
//! the container's mount namespace, as runc does: inside the user namespace the init's ids are
//! mapped ones, and a source only host root can reach (a 0700 root-owned directory on its path)
//! would fail with EACCES. The init mounts from the O_PATH fd instead of the path; opened in its
//! own mount namespace, the bind is an ordinary one there (the flags the host locked stay locked).
//! Idmapped mounts are made here too, as detached trees the init moves into place (`idmap.rs`).

use super::mount::parse_options;
use crate::error::{Context, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The bind sources of `spec`, opened inside the mount namespace of `pid`: (mount index, fd).
/// Plain binds (only with a user namespace, `userns`) are O_PATH fds; a source that cannot be opened
/// is left out, the init then tries the path and its error names the mount. Idmapped mounts (with or
/// without a user namespace) are detached idmapped trees (see `idmap`); for them every failure is
/// the container's error.
pub fn open_in(
    pid: i32,
    spec: &Spec,
    bundle: &Path,
    userns: bool,
) -> Result<Vec<(usize, OwnedFd)>> {
    let mut binds = vec![];
    let mut idmapped = vec![];
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(src) = m.source().as_ref().map(|s| bundle.join(s)) else {
            continue;
        };
        if let Some(idmap) = super::idmap::of(m, i, userns)? {
            // The namespace first, from our own mount namespace: the helper is ours.
            let ns = super::idmap::userns_for(&idmap, pid)?;
            idmapped.push((i, m, src, idmap, ns));
            continue;
        }
        let o = parse_options(m.options().as_deref().unwrap_or_default());
        if userns && (o.flags.contains(MsFlags::MS_BIND) || m.typ().as_deref() == Some("bind")) {
            binds.push((i, src));
        }
    }
    if binds.is_empty() && idmapped.is_empty() {
        return Ok(vec![]);
    }
    let ours = std::fs::File::open("/proc/self/ns/mnt").ctx("open", "/proc/self/ns/mnt")?;
    // setns moves our root and cwd to the namespace's root: the cwd is restored after.
    let cwd = std::fs::File::open(".").ctx("open", "current directory")?;
    let theirs_path = format!("/proc/{pid}/ns/mnt");
    let theirs = std::fs::File::open(&theirs_path).ctx("open", &theirs_path)?;
    crate::sys::setns(theirs.as_fd(), libc::CLONE_NEWNS).ctx("setns", &theirs_path)?;
    let mut opened: Vec<(usize, OwnedFd)> = binds
        .into_iter()
        .filter_map(|(i, src)| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(&src)
                .map_err(|e| log::debug!("open bind source {}: {e}", src.display()))
                .ok()
                .map(|f| (i, OwnedFd::from(f)))
        })
        .collect();
    let trees: Result<Vec<(usize, OwnedFd)>> = idmapped
        .iter()
        .map(|(i, m, src, idmap, ns)| {
            log::debug!("idmapped mount {} for mounts[{i}]", src.display());
            super::idmap::open_tree(m, *i, src, idmap, ns.as_fd()).map(|t| (*i, t))
        })
        .collect();
    // Back home before anything else can happen in this process.
    crate::sys::setns(ours.as_fd(), libc::CLONE_NEWNS).ctx("setns", "/proc/self/ns/mnt")?;
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&cwd))
        .ctx("fchdir", "current directory")?;
    opened.extend(trees?);
    Ok(opened)
}

use std::os::unix::fs::OpenOptionsExt;
