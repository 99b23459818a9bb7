//! `carte checkpoint`: save a running container to criu images (runc's flags and defaults), then
//! remove it unless `--leave-running` or `--pre-dump`, as runc does. What criu must be told about
//! the container's outside (bind mounts, devices, namespaces given by path) is `criu::external`'s.

use crate::cli::Cli;
use crate::criu::{self, external};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, Status};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    pub id: String,
    /// Directory for criu's image files (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's work files and log (default: the image directory)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Previous pre-dump's images, relative to the image directory
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Skip in-flight TCP connections
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// Link unlinked files back when possible
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Restore memory lazily (not supported by carte)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// Where criu signals lazy-pages readiness (not supported by carte)
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of a page server
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// Dump memory only and leave the container running
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// soft, full, strict or ignore (criu's default: soft)
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create the namespace at restore without restoring its properties (only "network")
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
}

pub fn run(cli: &Cli, a: &CheckpointArgs) -> Result<i32> {
    if a.lazy_pages || a.status_fd.is_some() {
        return Err(Error::Usage(
            "checkpoint --lazy-pages/--status-fd: not supported by carte".into(),
        ));
    }
    let mode = criu::cgroup_mode(a.manage_cgroups_mode.as_deref())?;
    check_empty_ns(&a.empty_ns)?;
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    let status = state::status(&dir.path, &st);
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(Error::WrongStatus {
            id: a.id.clone(),
            status: status.as_str().into(),
            verb: "checkpoint",
        });
    }
    let spec = dir.config().ok_or_else(|| {
        Error::Other(format!(
            "checkpoint {}: its config.json copy is unreadable",
            a.id
        ))
    })?;
    if spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false))
    {
        // runc gets the pty master back through criu's RPC (orphan-pts-master), which the
        // command line has no way to pass: a restore could not give it to a console socket.
        return Err(Error::Other(format!(
            "checkpoint {}: a container with a terminal cannot be checkpointed by carte (criu's command line cannot hand back the pty master)",
            a.id
        )));
    }
    let images = image_dir(a.image_path.as_deref())?;
    if let Some(p) = &a.parent_path {
        check_parent(&images, p)?;
    }
    if let Some(w) = &a.work_path {
        criu::make_dir(w)?;
    }
    let pid = st.pid.unwrap_or(0);
    let action = if a.pre_dump { "pre-dump" } else { "dump" };
    let mut cmd = criu::Command::new(action, &images, a.work_path.as_deref(), criu::DUMP_LOG);
    cmd.arg("--tree")
        .arg(pid.to_string())
        .arg("--root")
        .arg(&st.rootfs)
        .flag(a.leave_running, "--leave-running")
        .flag(a.tcp_established, "--tcp-established")
        .flag(a.tcp_skip_in_flight, "--skip-in-flight")
        .flag(a.link_remap, "--link-remap")
        .flag(a.ext_unix_sk, "--ext-unix-sk")
        .flag(a.shell_job, "--shell-job")
        .flag(a.file_locks, "--file-locks")
        .flag(a.auto_dedup, "--auto-dedup")
        // runc does not manage network devices: the network namespace is restored empty
        // unless it is external (given by path), and so is carte's (runc's criuOptions).
        .arg("--empty-ns")
        .arg("net");
    cmd.arg(match mode {
        Some(m) => format!("--manage-cgroups={m}"),
        None => "--manage-cgroups".into(),
    });
    cmd.config_file(&st.annotations);
    // criu freezes the tree with the cgroup freezer rather than ptrace-stopping it one by one.
    if let Some(h) = crate::cgroups::hierarchy::for_controller("freezer") {
        cmd.arg("--freeze-cgroup").arg(h.dir(&st.cgroup_path));
    }
    for ext in external::dump_namespaces(&spec)? {
        cmd.arg("--external").arg(ext);
    }
    if let Some(server) = &a.page_server {
        let (addr, port) = server
            .rsplit_once(':')
            .filter(|(a, p)| !a.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| Error::Usage("use --page-server ADDRESS:PORT".into()))?;
        cmd.arg("--page-server")
            .arg("--address")
            .arg(addr)
            .arg("--port")
            .arg(port);
    }
    if let Some(p) = &a.parent_path {
        cmd.arg("--prev-images-dir").arg(p).arg("--track-mem");
    }
    if a.pre_dump {
        cmd.arg("--track-mem");
    } else {
        cmd.ext_mounts(&external::dump_mounts(&spec, &st.rootfs, pid)?);
        write_descriptors(pid, &images)?;
    }
    criu::run(&cmd, &format!("checkpoint {}", a.id))?;
    if !a.leave_running && !a.pre_dump {
        // criu killed the tree; what is left is the container's cgroup and state (runc's Destroy).
        if let Err(e) = super::delete::delete(dir, &st) {
            log::warn!("remove checkpointed container {}: {e}", a.id);
        }
    }
    Ok(0)
}

/// `--empty-ns`: runc knows only "network" (always on for carte and runc, see above).
pub fn check_empty_ns(words: &[String]) -> Result<()> {
    match words.iter().find(|w| w.as_str() != "network") {
        Some(w) => Err(Error::Usage(format!(
            "--empty-ns {w:?}: only \"network\" is supported"
        ))),
        None => Ok(()),
    }
}

/// runc's default image directory is `checkpoint` under the current directory.
fn image_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match given {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir()
            .ctx("get", "current directory")?
            .join("checkpoint"),
    };
    criu::make_dir(&dir)?;
    Ok(dir)
}

/// runc: `--parent-path` is relative to the image directory and must be a directory there.
fn check_parent(images: &Path, parent: &Path) -> Result<()> {
    if parent.is_absolute() {
        return Err(Error::Usage("--parent-path must be relative".into()));
    }
    let real = images.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "invalid --parent-path: {} is not a directory",
            real.display()
        ))),
        Err(e) => Err(Error::io("invalid --parent-path", &real, e)),
    }
}

/// What the init's stdio were (`pipe:[INODE]`, a path…), for restore's `--inherit-fd`.
fn write_descriptors(pid: i32, images: &Path) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let json =
        serde_json::to_vec(&fds).map_err(|e| Error::Other(format!("encode descriptors: {e}")))?;
    state::write_atomic(&images.join(criu::DESCRIPTORS), &json)
}
