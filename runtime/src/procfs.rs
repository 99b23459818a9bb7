//! Every file the runtime writes under `/proc` is opened here, through a procfs nobody else can
//! reach: from inside a container (sysctls, its own `attr/*` labels) and from the host side (the
//! init's id maps and `oom_score_adj`). The bridge's `timens_offsets` is the one plain write: it
//! happens before any container mount exists.
//!
//! The container's `/proc` is the image's and the config's to shape: a symlink, a bind mount of
//! another procfs file over `/proc/sys/kernel/domainname`, or a racing container with a shared
//! mount doing the same mid-create. Checking that the opened file is on procfs is not enough: the
//! redirected write can land on a real procfs file such as `/proc/sysrq-trigger` or
//! `/proc/sys/kernel/core_pattern` (runc's advisories of November 2025, CVE-2025-52881). So we
//! open a private procfs instance (`fsopen("proc")`, else a detached `open_tree` copy, each
//! checked to be a procfs root) and resolve the file inside it with `openat2` refusing symlinks,
//! magic links and mount crossings. libpathrs's `ProcfsHandle` does exactly this (runc uses the
//! same code), so we use it rather than keep our own.

use crate::error::{Error, Result};
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle, ProcfsHandleBuilder};
use std::io::Write;
use std::path::Path;

/// Where under `/proc` a path starts.
#[derive(Debug, Clone, Copy)]
pub enum Base {
    /// `/proc` itself (`sys/kernel/…`): needs an unmasked, fresh instance.
    Root,
    /// `/proc/thread-self` (the runtime is single-threaded until exec: the same as `self`).
    ThreadSelf,
    /// `/proc/<pid>`: a child of ours (the container's init, a bridge), whose pid cannot be reused
    /// before we reap it.
    Pid(i32),
}

/// Write `data` to `/proc/<base>/<sub>` in one `write(2)`.
pub fn write(base: Base, sub: &Path, data: &[u8]) -> Result<()> {
    let shown = shown(base, sub);
    let (handle, base) = match base {
        Base::Root => (
            ProcfsHandleBuilder::new().unmasked().build(),
            ProcfsBase::ProcRoot,
        ),
        Base::ThreadSelf => (ProcfsHandle::new(), ProcfsBase::ProcThreadSelf),
        Base::Pid(pid) => (ProcfsHandle::new(), ProcfsBase::ProcPid(pid.unsigned_abs())),
    };
    let handle =
        handle.map_err(|e| Error::Other(format!("open a private procfs: {}", chain(&e))))?;
    // openat2 fails with EAGAIN when any rename or mount on the system raced the lookup; pathrs
    // retries that itself, and under heavy mount traffic (parallel containers in an emulated guest)
    // that was still seen to run out, so a few more rounds here.
    let mut tries = 0;
    let mut f = loop {
        match handle.open(base, sub, OpenFlags::O_WRONLY | OpenFlags::O_CLOEXEC) {
            Ok(f) => break f,
            Err(e) if e.can_retry() && tries < 8 => tries += 1,
            Err(e) => {
                return Err(Error::Other(format!(
                    "open `{shown}` in a private procfs: {}",
                    chain(&e)
                )))
            }
        }
    };
    // One write: procfs files take the value from a single write call.
    let n = f
        .write(data)
        .map_err(|e| Error::io("write", Path::new(&shown), e))?;
    if n != data.len() {
        return Err(Error::Other(format!("write `{shown}`: short write")));
    }
    Ok(())
}

/// pathrs's message with its causes (its own Display stops at the outermost, which names no errno).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

fn shown(base: Base, sub: &Path) -> String {
    match base {
        Base::Root => format!("/proc/{}", sub.display()),
        Base::ThreadSelf => format!("/proc/thread-self/{}", sub.display()),
        Base::Pid(pid) => format!("/proc/{pid}/{}", sub.display()),
    }
}
