//! `carte restore`: bring a checkpointed container back from criu images, under any id, as a
//! container `state`, `kill` and `delete` treat like any other: its state directory is claimed
//! (state written before any side effect) and its cgroup made and limited as `create` does, then
//! criu — started inside that cgroup, as runc starts it — rebuilds the process tree into it, and
//! the restored init's pid is recorded. Without `--detach` carte waits for the container as `run`
//! does and removes it when it exits.

use crate::bundle::{self, Bundle};
use crate::cgroups;
use crate::cli::Cli;
use crate::criu::opts::CriuArgs;
use crate::criu::swrk::Notice;
use crate::criu::{self, external};
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, State, Status};
use clap::Args;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub id: String,
    /// Unix socket that receives the new pty master of a container with a terminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[command(flatten)]
    pub criu: CriuArgs,
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
    /// LSM profile for the restored processes, TYPE:NAME
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
}

pub fn run(cli: &Cli, a: &RestoreArgs) -> Result<i32> {
    let mode = a.criu.check("restore")?;
    state::validate_id(&a.id)?;
    let b = bundle::load(&a.bundle)?;
    crate::validate::check(&b.spec)?;
    let terminal = b
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false));
    // criu makes the new pty and hands its master to carte (orphan-pts-master), which passes
    // it on: someone must listen (runc proxies it itself in the foreground; carte does not).
    let console = match (&a.console_socket, terminal) {
        (Some(p), true) => Some(crate::tty::connect(p)?),
        (None, true) => {
            return Err(Error::Usage(format!(
                "restore {}: process.terminal is true: carte restores a container with a terminal only with --console-socket",
                a.id
            )))
        }
        (_, false) => None,
    };
    let images = image_dir(a.criu.image_path.as_deref())?;
    if let Some(w) = &a.criu.work_path {
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
    if let Err(e) = restore(&dir, &mut st, &b, a, mode, &images, console) {
        criu::spawn::settle(&st);
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
    let rootless = crate::rootless::cgroups_rootless(cli.rootless_mode.as_deref());
    let base = crate::cgroups::rootless_base(rootless, cli.systemd_cgroup);
    let mut st = State::for_bundle(&a.id, b, cli.systemd_cgroup, base.as_deref());
    st.pid_file = a
        .pid_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    st
}

fn restore(
    dir: &ContainerDir,
    st: &mut State,
    b: &Bundle,
    a: &RestoreArgs,
    mode: Option<&str>,
    images: &Path,
    console: Option<OwnedFd>,
) -> Result<()> {
    let state_dir = std::fs::canonicalize(&dir.path).ctx("resolve", dir.path.display())?;
    external::make_mountpoints(&b.spec, &b.dir, &b.rootfs)?;
    let root = criu::spawn::RootBind::new(&state_dir.join(criu::spawn::CRIU_ROOT), &b.rootfs)?;
    let work = a.criu.work_path.as_deref().map(std::path::absolute);
    let work = work.transpose().ctx("resolve", "--work-path")?;
    let conf = state_dir.join(criu::CONFIG);
    let mut cmd = criu::Command::new(images, work.as_deref(), criu::RESTORE_LOG, &conf);
    // The restored init made our child (CLONE_PARENT), not criu's.
    cmd.opt("root", root.path())
        .flag(true, "restore-sibling")
        .flag(true, "evasive-devices");
    a.criu.add_to(&mut cmd, mode);
    if let Some(p) = &a.lsm_profile {
        cmd.opt("lsm-profile", p);
    }
    if let Some(c) = &a.lsm_mount_context {
        cmd.opt("lsm-mount-context", c);
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
                cmd.rpc.inherit_fd.push((key.into(), target));
                ns_files.push((f, target));
            }
            None => cmd
                .rpc
                .join_ns
                .push((ns.criu_name.into(), ns.path.to_string_lossy().into_owned())),
        }
    }
    // The init's stdio pipes at dump time are replaced by ours (runc's descriptors.json).
    for (i, d) in descriptors(images).iter().enumerate() {
        if d.contains("pipe:") {
            cmd.rpc.inherit_fd.push((d.clone(), i as i32));
        }
    }
    let res = b.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let hooks = b.spec.hooks().as_ref();
    let on_notify = |n: Notice| -> Result<()> {
        match n.script.as_str() {
            // runc's moment for them: the restored tree exists in its namespaces, and none of
            // it runs yet (runc's criuNotifications).
            "setup-namespaces" => {
                let mut s = st.clone();
                s.pid = n.pid;
                let json = s.oci_json(Status::Creating);
                crate::hooks::run_all("prestart", hooks.and_then(|h| h.prestart().as_ref()), &json)?;
                crate::hooks::run_all(
                    "createRuntime",
                    hooks.and_then(|h| h.create_runtime().as_ref()),
                    &json,
                )
            }
            "orphan-pts-master" => match (&console, n.fd) {
                (Some(sock), Some(master)) => crate::tty::send_master(sock, master.as_fd()),
                (_, None) => Err(Error::Other("criu sent orphan-pts-master without a fd".into())),
                // A terminal in the images the bundle does not declare: nobody to give it to.
                (None, Some(_)) => Err(Error::Other(format!(
                    "restore {}: the checkpoint has a terminal: set process.terminal and --console-socket",
                    st.id
                ))),
            },
            _ => Ok(()),
        }
    };
    let pid = criu::spawn::restore_in_cgroup(cmd, st, res, &ns_files, on_notify)?;
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
