//! `carte restore`: bring a checkpointed container back from criu images, under any id, as a
//! container `state`, `kill` and `delete` treat like any other: its state directory is claimed
//! (state written before any side effect) and its cgroup made and limited as `create` does, then
//! criu — started inside that cgroup, as runc starts it — rebuilds the process tree into it, and
//! the restored init's pid is recorded. Without `--detach` carte waits for the container as `run`
//! does and removes it when it exits.

use crate::bundle::{self, Bundle};
use crate::cgroups;
use crate::cli::Cli;
use crate::criu::{self, external};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, State};
use crate::sys::{self, Forked};
use clap::Args;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub id: String,
    /// Unix socket for the pty master (a terminal container cannot be restored by carte)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Directory of criu's image files (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's work files and log (default: the image directory)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// soft, full, strict or ignore (criu's default: soft)
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once the container is restored
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the restored init's host pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted for runc compatibility (criu sets up the root itself)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Create the namespace without restoring its properties (only "network")
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Restore memory lazily (not supported by carte)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// LSM profile for the restored processes, TYPE:NAME
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
}

/// Where the rootfs is bound for criu's `--root`: criu wants a mount point whose parent is not
/// overmounted (runc's `criu-root`). In the state directory, so it names the container.
const CRIU_ROOT: &str = "criu-root";
const CRIU_PIDFILE: &str = "criu.pid";

pub fn run(cli: &Cli, a: &RestoreArgs) -> Result<i32> {
    if a.lazy_pages {
        return Err(Error::Usage(
            "restore --lazy-pages: not supported by carte".into(),
        ));
    }
    let mode = criu::cgroup_mode(a.manage_cgroups_mode.as_deref())?;
    super::checkpoint::check_empty_ns(&a.empty_ns)?;
    state::validate_id(&a.id)?;
    let b = bundle::load(&a.bundle)?;
    crate::validate::check(&b.spec)?;
    if b.spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false))
    {
        return Err(Error::Other(format!(
            "restore {}: a container with a terminal cannot be restored by carte (criu's command line cannot hand back the pty master)",
            a.id
        )));
    }
    let images = image_dir(a.image_path.as_deref())?;
    if let Some(w) = &a.work_path {
        criu::make_dir(w)?;
    }
    cgroups::check_systemd(cli.systemd_cgroup)?;
    let sigs = crate::signals::forwarded();
    let old = sigs
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(|e| Error::sys("sigprocmask", "block", e))?;
    let mut st = new_state(cli, a, &b);
    let res = b.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    cgroups::preflight(&st.cgroup_path, st.systemd_cgroup, res)?;
    let dir = ContainerDir::claim(&cli.root, &st, &b.raw)?;
    // A restored container never waits for `start`: without its fifo its status is running.
    let _ = std::fs::remove_file(dir.fifo());
    if let Err(e) = restore(&dir, &mut st, &b, a, mode, &images) {
        if let Err(t) = crate::teardown::destroy(dir, &st) {
            log::warn!("clean up after failed restore: {t}");
        }
        return Err(e);
    }
    if a.detach {
        let _ = old.thread_set_mask();
        return Ok(0);
    }
    let pid = st.pid.unwrap_or(0);
    drop(dir);
    let code = crate::wait::wait_forwarding(pid, &sigs)?;
    match ContainerDir::open(&cli.root, &a.id) {
        Ok(dir) => {
            let st = dir.load().unwrap_or(st);
            super::delete::delete(dir, &st)?;
        }
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(code)
}

fn image_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match given {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir()
            .ctx("get", "current directory")?
            .join("checkpoint"),
    };
    std::fs::canonicalize(&dir).ctx("open image directory", dir.display())
}

/// The state `create` would record for this bundle under this id (the cgroup is the new id's).
fn new_state(cli: &Cli, a: &RestoreArgs, b: &Bundle) -> State {
    let mut st = State::new(
        &a.id,
        b.dir.clone(),
        b.rootfs.clone(),
        b.spec.version().clone(),
    );
    st.annotations = b
        .spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let spec_cg = b
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    st.cgroup_path = cgroups::path_for(spec_cg.as_deref(), &a.id, cli.systemd_cgroup);
    st.systemd_cgroup = cli.systemd_cgroup;
    st.pid_file = a
        .pid_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    st
}

/// The rootfs bound at `ROOT/ID/criu-root` for as long as criu runs; unbound (and the empty
/// directory removed, never recursively: it is the rootfs while mounted) on drop.
struct RootBind(PathBuf);

impl RootBind {
    fn new(state_dir: &Path, rootfs: &Path) -> Result<RootBind> {
        let target = state_dir.join(CRIU_ROOT);
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

fn restore(
    dir: &ContainerDir,
    st: &mut State,
    b: &Bundle,
    a: &RestoreArgs,
    mode: Option<&str>,
    images: &Path,
) -> Result<()> {
    let state_dir = std::fs::canonicalize(&dir.path).ctx("resolve", dir.path.display())?;
    let root = RootBind::new(&state_dir, &b.rootfs)?;
    let pidfile = state_dir.join(CRIU_PIDFILE);
    let mut cmd = criu::Command::new("restore", images, a.work_path.as_deref(), criu::RESTORE_LOG);
    cmd.arg("--root")
        .arg(&root.0)
        // Detached, and the restored init made our child (CLONE_PARENT), not criu's.
        .arg("--restore-detached")
        .arg("--restore-sibling")
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--evasive-devices")
        .flag(a.tcp_established, "--tcp-established")
        .flag(a.ext_unix_sk, "--ext-unix-sk")
        .flag(a.shell_job, "--shell-job")
        .flag(a.file_locks, "--file-locks")
        .flag(a.auto_dedup, "--auto-dedup")
        .arg("--empty-ns")
        .arg("net");
    cmd.arg(match mode {
        Some(m) => format!("--manage-cgroups={m}"),
        None => "--manage-cgroups".into(),
    });
    if let Some(p) = &a.lsm_profile {
        cmd.arg("--lsm-profile").arg(p);
    }
    if let Some(c) = &a.lsm_mount_context {
        cmd.arg("--lsm-mount-context").arg(c);
    }
    cmd.config_file(&st.annotations);
    cmd.ext_mounts(&external::restore_mounts(
        &b.spec,
        &b.dir,
        &b.rootfs,
        &st.cgroup_path,
    ));
    // Namespaces given by path: net and pid handed to criu as inherited fds under their keys,
    // placed at fixed numbers in the criu process; the others joined.
    let mut ns_files: Vec<(std::fs::File, i32)> = vec![];
    for ns in external::ns_paths(&b.spec)? {
        match external::ext_key(ns.criu_name) {
            Some(key) => {
                let f = std::fs::File::open(&ns.path).ctx("open namespace", ns.path.display())?;
                let target = 100 + ns_files.len() as i32;
                cmd.arg("--inherit-fd").arg(format!("fd[{target}]:{key}"));
                ns_files.push((f, target));
            }
            None => {
                let mut s = OsString::from(format!("{}:", ns.criu_name));
                s.push(&ns.path);
                cmd.arg("--join-ns").arg(s);
            }
        }
    }
    // The init's stdio pipes at dump time are replaced by ours (runc's descriptors.json).
    for (i, d) in descriptors(images).iter().enumerate() {
        if d.contains("pipe:") {
            cmd.arg("--inherit-fd").arg(format!("fd[{i}]:{d}"));
        }
    }
    run_in_cgroup(cmd, st, b, &ns_files)?;
    let text = std::fs::read_to_string(&pidfile).ctx("read", pidfile.display())?;
    let _ = std::fs::remove_file(&pidfile);
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| Error::Other(format!("{}: not a pid: {text:?}", pidfile.display())))?;
    st.pid = Some(pid);
    st.pid_start_time = state::live_start_time(pid);
    dir.save(st)?;
    drop(root);
    if let Some(p) = &st.pid_file {
        state::write_atomic(p, pid.to_string().as_bytes())?;
    }
    log::debug!("container {} restored, init pid {pid}", st.id);
    Ok(())
}

fn descriptors(images: &Path) -> Vec<String> {
    std::fs::read(images.join(criu::DESCRIPTORS))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Fork the process that becomes criu, place it in the container's cgroup with the limits
/// applied (so what criu forks is born there even with `--manage-cgroups-mode ignore`, as runc
/// applies its cgroup manager to criu's pid), then let it exec criu with its cgroups as criu's
/// `--cgroup-root`s: the restored tree lands in the new container's cgroup, whatever the old id.
fn run_in_cgroup(
    mut cmd: criu::Command,
    st: &State,
    b: &Bundle,
    ns_files: &[(std::fs::File, i32)],
) -> Result<()> {
    let bin = criu::binary()?;
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
    let res = b.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
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
