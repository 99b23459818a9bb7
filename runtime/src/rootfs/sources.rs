//! Bind-mount sources of a container with a user namespace, opened by the parent (host root) in
//! the container's mount namespace, as runc does: inside the user namespace the init's ids are
//! mapped ones, and a source only host root can reach (a 0700 root-owned directory on its path)
//! would fail with EACCES. The init mounts from the O_PATH fd instead of the path; opened in its
//! own mount namespace, the bind is an ordinary one there (the flags the host locked stay locked).

use super::mount::parse_options;
use crate::error::{Context, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The bind sources of `spec`, opened O_PATH inside the mount namespace of `pid`: (mount index,
/// fd). A source that cannot be opened is left out: the init then tries the path and its error
/// names the mount.
pub fn open_in(pid: i32, spec: &Spec, bundle: &Path) -> Result<Vec<(usize, OwnedFd)>> {
    let binds: Vec<(usize, std::path::PathBuf)> = spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let o = parse_options(m.options().as_deref().unwrap_or_default());
            let bind = o.flags.contains(MsFlags::MS_BIND) || m.typ().as_deref() == Some("bind");
            let src = m.source().as_ref()?;
            bind.then(|| (i, bundle.join(src)))
        })
        .collect();
    if binds.is_empty() {
        return Ok(vec![]);
    }
    let ours = std::fs::File::open("/proc/self/ns/mnt").ctx("open", "/proc/self/ns/mnt")?;
    // setns moves our root and cwd to the namespace's root: the cwd is restored after.
    let cwd = std::fs::File::open(".").ctx("open", "current directory")?;
    let theirs_path = format!("/proc/{pid}/ns/mnt");
    let theirs = std::fs::File::open(&theirs_path).ctx("open", &theirs_path)?;
    crate::sys::setns(theirs.as_fd(), libc::CLONE_NEWNS).ctx("setns", &theirs_path)?;
    let opened = binds
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
    // Back home before anything else can happen in this process.
    crate::sys::setns(ours.as_fd(), libc::CLONE_NEWNS).ctx("setns", "/proc/self/ns/mnt")?;
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&cwd))
        .ctx("fchdir", "current directory")?;
    Ok(opened)
}

use std::os::unix::fs::OpenOptionsExt;
