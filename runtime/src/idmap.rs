//! Writing the uid/gid maps of a container's new user namespace, from the parent.
//!
//! As root we hold CAP_SETUID/CAP_SETGID on the host and write any map the config asks for. An
//! unprivileged runtime may write only one line mapping its own effective id (user_namespaces(7)),
//! and a gid map only after `setgroups` is set to `deny` (CVE-2014-8989: otherwise the container's
//! root could drop a supplementary group that denies it access). Anything else — the subordinate
//! ranges of `/etc/subuid` and `/etc/subgid` — goes through the setuid helpers `newuidmap` and
//! `newgidmap` (Debian's `uidmap`), which check those files. runc does the same (nsexec.c's
//! `update_uidmap`: the write, then the helper on EPERM; `requiresRootOrMappingTool`).
//!
//! Both the write and the helpers need the target to be dumpable: a non-dumpable process's
//! `/proc/PID` files belong to root. The init and bridge stay dumpable until their maps are in
//! (see `process::init`).

use crate::error::{Error, Result};
use std::path::Path;

/// Which map.
#[derive(Clone, Copy)]
pub enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }

    fn own_id(self) -> u32 {
        match self {
            Kind::Uid => nix::unistd::geteuid().as_raw(),
            Kind::Gid => nix::unistd::getegid().as_raw(),
        }
    }
}

/// Whether an unprivileged writer may write `map` itself: a single line `<id> <own id> 1`.
pub fn self_writable(kind: Kind, map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    let own = kind.own_id().to_string();
    matches!(lines.as_slice(), [l] if l.len() == 3 && l[1] == own && l[2] == "1")
}

/// Write the maps of the user namespace `pid` is in (the first line of `namespaces::write_maps`).
pub fn write(pid: i32, uid_map: Option<&str>, gid_map: Option<&str>) -> Result<()> {
    let rootless = crate::rootless::euid_rootless();
    if let Some(m) = uid_map {
        write_one(pid, Kind::Uid, m, rootless)?;
    }
    if let Some(m) = gid_map {
        if rootless && self_writable(Kind::Gid, m) {
            crate::procfs::write(
                crate::procfs::Base::Pid(pid),
                Path::new("setgroups"),
                b"deny",
            )?;
        }
        write_one(pid, Kind::Gid, m, rootless)?;
    }
    Ok(())
}

fn write_one(pid: i32, kind: Kind, map: &str, rootless: bool) -> Result<()> {
    if !rootless || self_writable(kind, map) {
        return crate::procfs::write(
            crate::procfs::Base::Pid(pid),
            Path::new(kind.file()),
            map.as_bytes(),
        );
    }
    log::debug!("{} {pid}: the map is more than our own id", kind.tool());
    run_tool(pid, kind, map)
}

/// `newuidmap PID ID HOSTID SIZE …`, with an empty environment as runc runs it (the helper is
/// setuid root; nothing of ours should reach it).
fn run_tool(pid: i32, kind: Kind, map: &str) -> Result<()> {
    let tool = kind.tool();
    let mut cmd = std::process::Command::new(tool);
    cmd.arg(pid.to_string())
        .args(map.split_whitespace())
        .env_clear()
        .stdin(std::process::Stdio::null());
    let out = cmd.output().map_err(|e| {
        Error::Other(format!(
            "run {tool} for /proc/{pid}/{}: {e} (install Debian's `uidmap`: a map beyond the caller's own id needs it)",
            kind.file()
        ))
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Other(format!(
            "{tool} {pid} (write /proc/{pid}/{}): {}; check /etc/sub{}id",
            kind.file(),
            err.trim().replace('\n', "; "),
            if matches!(kind, Kind::Uid) { "u" } else { "g" }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_line_of_our_own_id_is_self_writable() {
        let uid = nix::unistd::geteuid().as_raw();
        assert!(self_writable(Kind::Uid, &format!("0 {uid} 1\n")));
        assert!(!self_writable(Kind::Uid, &format!("0 {uid} 2\n")));
        assert!(!self_writable(
            Kind::Uid,
            &format!("0 {uid} 1\n1 100000 65536\n")
        ));
        assert!(!self_writable(Kind::Uid, &format!("0 {} 1\n", uid + 1)));
    }
}
