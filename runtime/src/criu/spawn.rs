//! Running criu for a restore: the rootfs bound where criu wants its `--root`, and the criu
//! process forked into the new container's cgroup before it execs, so that what it restores is
//! born there whatever the cgroup mode (runc applies its cgroup manager to criu's pid).

use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::state::State;
use crate::sys::{self, Forked};
use oci_spec::runtime::LinuxResources;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Where a restore binds the rootfs for criu's `--root`: criu wants a mount point whose parent is
/// not overmounted (runc's `criu-root`). In the state directory, so it names the container.
pub const CRIU_ROOT: &str = "criu-root";

/// A restore killed while criu ran leaves the rootfs bound at `ROOT/ID/criu-root`: detach it
/// before the state directory is removed, recursively, which through the mount would delete the
/// rootfs's files. False when it is still there (the caller must then keep the directory).
pub fn detach_stale_root(state_dir: &Path) -> bool {
    let p = state_dir.join(CRIU_ROOT);
    if std::fs::symlink_metadata(&p).is_err() {
        return true;
    }
    log::debug!("detach {} left by an interrupted restore", p.display());
    let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    std::fs::remove_dir(&p).is_ok()
}

/// The rootfs bound at `ROOT/ID/criu-root` for as long as criu runs; unbound (and the empty
/// directory removed, never recursively: it is the rootfs while mounted) on drop.
pub struct RootBind(PathBuf);

impl RootBind {
    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn new(target: &Path, rootfs: &Path) -> Result<RootBind> {
        let target = target.to_path_buf();
        std::fs::create_dir(&target).ctx("create", target.display())?;
        let bind = RootBind(target);
        nix::mount::mount(
            Some(rootfs),
            &bind.0,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx("bind rootfs for criu on", bind.0.display())?;
        Ok(bind)
    }
}

impl Drop for RootBind {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_dir(&self.0) {
            log::warn!("remove {}: {e}", self.0.display());
        }
    }
}

/// Fork the process that becomes criu, place it in the container's cgroup with the limits
/// applied (so what criu forks is born there even with `--manage-cgroups-mode ignore`, as runc
/// applies its cgroup manager to criu's pid), then let it exec criu with its cgroups as criu's
/// `--cgroup-root`s: the restored tree lands in the new container's cgroup, whatever the old id.
pub fn restore_in_cgroup(
    mut cmd: super::Command,
    st: &State,
    res: Option<&LinuxResources>,
    ns_files: &[(std::fs::File, i32)],
) -> Result<()> {
    let bin = super::binary()?;
    let mgr = cgroups::manager(&st.cgroup_path, st.systemd_cgroup, &st.id)?;
    let (rx, tx) = nix::unistd::pipe().ctx("pipe", "criu arguments")?;
    let child = match sys::clone_fork(0).ctx("fork", "criu")? {
        Forked::Child => {
            drop(tx);
            exec_criu(&bin, rx, ns_files)
        }
        Forked::Parent(pid) => pid,
    };
    drop(rx);
    let placed = cgroups::join_and_apply(&mgr, &st.cgroup_path, child, res)
        .and_then(|()| cgroups::apply_device_filter(&mgr, &st.cgroup_path, res))
        .and_then(|()| cgroup_roots(child));
    let status = match placed {
        Ok(roots) => {
            for r in roots {
                cmd.arg("--cgroup-root").arg(r);
            }
            log::debug!("restore {}: {} {:?}", st.id, bin.display(), cmd.args);
            let mut buf = vec![];
            for a in &cmd.args {
                buf.extend_from_slice(a.as_bytes());
                buf.push(0);
            }
            let sent = write_all(&tx, &buf);
            drop(tx);
            let status = wait(child)?;
            sent?;
            status
        }
        Err(e) => {
            // An empty argument list tells the child to exit without running criu.
            drop(tx);
            let _ = wait(child);
            return Err(e);
        }
    };
    match status {
        0 => Ok(()),
        s => Err(cmd.failed(
            &format!("restore {}", st.id),
            format!("exited with status {s}"),
        )),
    }
}

fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("write", "criu arguments", e)),
        }
    }
    Ok(())
}

fn wait(pid: i32) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", format!("criu {pid}"), e)),
        }
    }
}

/// `CONTROLLERS:PATH` for each v1 hierarchy `pid` is in, and `PATH` for the cgroup2 one, from
/// /proc/PID/cgroup (runc's `criuApplyCgroups`).
fn cgroup_roots(pid: i32) -> Result<Vec<String>> {
    let path = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&path).ctx("read", &path)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, p) = (f.next()?, f.next()?, f.next()?);
            Some(if ctrls.is_empty() {
                p.to_string()
            } else {
                format!("{ctrls}:{p}")
            })
        })
        .collect())
}

/// In the forked child: read the argument list, put the namespace files at their numbers, and
/// become criu. Never returns.
fn exec_criu(bin: &Path, rx: OwnedFd, ns_files: &[(std::fs::File, i32)]) -> ! {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    // The runtime blocks the signals it forwards; criu must not inherit that mask through exec.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    let mut buf = vec![];
    let mut f = std::fs::File::from(rx);
    if f.read_to_end(&mut buf).is_err() || buf.is_empty() {
        sys::exit_now(1);
    }
    for (file, target) in ns_files {
        // dup2 clears close-on-exec on the copy: criu inherits it at `target`.
        if nix::unistd::dup2(file.as_raw_fd(), *target).is_err() {
            eprintln!("carte: restore: dup2 namespace fd to {target}");
            sys::exit_now(1);
        }
    }
    let args: Vec<OsString> = buf
        .split(|c| *c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    let e = std::process::Command::new(bin).args(args).exec();
    eprintln!("carte: restore: exec {}: {e}", bin.display());
    sys::exit_now(127)
}
