//! `carte checkpoint`: save a running container to criu images (runc's flags and defaults), then
//! remove it unless `--leave-running` or `--pre-dump`, as runc does. What criu must be told about
//! the container's outside (bind mounts, devices, namespaces given by path) is `criu::external`'s.

use crate::cli::Cli;
use crate::criu::opts::CriuArgs;
use crate::criu::rpc::ReqType;
use crate::criu::swrk::Swrk;
use crate::criu::{self, external};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, Status};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Previous pre-dump's images, relative to the image directory
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Skip in-flight TCP connections
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// Link unlinked files back when possible
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    /// Where criu signals lazy-pages readiness (not supported by carte)
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of a page server
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Dump memory only and leave the container running
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
}

pub fn run(cli: &Cli, a: &CheckpointArgs) -> Result<i32> {
    if a.status_fd.is_some() {
        return Err(Error::Usage(
            "checkpoint --status-fd: not supported by carte (it serves --lazy-pages)".into(),
        ));
    }
    let mode = a.criu.check("checkpoint")?;
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
    let images = image_dir(a.criu.image_path.as_deref())?;
    if let Some(p) = &a.parent_path {
        check_parent(&images, p)?;
    }
    if let Some(w) = &a.criu.work_path {
        criu::make_dir(w)?;
    }
    let work = a.criu.work_path.as_deref().map(std::path::absolute);
    let work = work.transpose().ctx("resolve", "--work-path")?;
    let pid = st.pid.unwrap_or(0);
    let conf = dir.path.join(criu::CONFIG);
    let mut cmd = criu::Command::new(&images, work.as_deref(), criu::DUMP_LOG, &conf);
    cmd.opt("root", &st.rootfs)
        .flag(a.leave_running, "leave-running")
        .flag(a.tcp_skip_in_flight, "skip-in-flight")
        .flag(a.link_remap, "link-remap");
    a.criu.add_to(&mut cmd, mode);
    cmd.config_file(&st.annotations);
    // criu freezes the tree with the cgroup freezer rather than ptrace-stopping it one by one.
    if let Some(h) = crate::cgroups::hierarchy::for_controller("freezer") {
        cmd.opt("freeze-cgroup", h.dir(&st.cgroup_path));
    }
    cmd.rpc.external = external::dump_namespaces(&spec)?;
    if let Some(server) = &a.page_server {
        let (addr, port) = server
            .rsplit_once(':')
            .filter(|(a, p)| !a.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| Error::Usage("use --page-server ADDRESS:PORT".into()))?;
        cmd.flag(true, "page-server")
            .opt("address", addr)
            .opt("port", port);
    }
    if let Some(p) = &a.parent_path {
        cmd.opt("prev-images-dir", p).flag(true, "track-mem");
    }
    let typ = if a.pre_dump {
        cmd.flag(true, "track-mem");
        ReqType::PreDump
    } else {
        cmd.ext_mounts(&external::dump_mounts(&spec, &st.rootfs, pid)?);
        write_descriptors(pid, &images)?;
        ReqType::Dump
    };
    cmd.rpc.pid = Some(pid);
    // A terminal container's pty has its master outside (with the console socket's receiver):
    // runc always allows that, and restore hands a new master back.
    cmd.rpc.orphan_pts_master = true;
    Swrk::spawn(&[])?.run(&cmd, typ, &format!("checkpoint {}", a.id), |_| Ok(()))?;
    if !a.leave_running && !a.pre_dump {
        // criu killed the tree; what is left is the container's cgroup and state (runc's Destroy).
        if let Err(e) = super::delete::delete(dir, &st) {
            log::warn!("remove checkpointed container {}: {e}", a.id);
        }
    }
    Ok(0)
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
    std::fs::canonicalize(&dir).ctx("resolve image directory", dir.display())
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
