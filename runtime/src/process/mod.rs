//! The parent's half of `create`, as one story: load and check the bundle, plan, claim the state
//! dir (state written before any side effect), clone the init, then serve it in protocol order
//! (see `sync`) until it is ready; on any failure, undo everything.

pub mod bridge;
pub mod exec;
pub mod identity;
pub mod init;
pub mod listener;
pub mod plan;
pub mod sync;

use crate::bundle::{self, Bundle};
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::state::{self, ContainerDir, State, Status};
use crate::sys::{self, Forked};
use libcgroups::common::AnyCgroupManager;
use plan::Plan;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use sync::Msg;

pub struct CreateOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    /// Who gets the pty master when process.terminal is true; none for a detached container
    /// without `--console-socket`, which is refused then.
    pub console: Option<crate::tty::Console<'a>>,
    pub pid_file: Option<&'a Path>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub systemd: bool,
    /// runc's rootless cgroup manager (`--rootless`, else auto): a cgroup we cannot create is
    /// done without (see `cgroups::skip_rootless`).
    pub rootless_cgroups: bool,
    /// `--no-new-keyring`: the container keeps the runtime's session keyring.
    pub no_new_keyring: bool,
    /// The caller lives on until the container exits (`run` in the foreground): the init's
    /// PDEATHSIG may then be cleared without `create` waiting for it (see `Msg::Commit`).
    pub outlives_init: bool,
}

pub struct Created {
    pub dir: ContainerDir,
    pub state: State,
    /// The pty master, when the terminal was asked for with `Console::Proxy`.
    pub master: Option<OwnedFd>,
}

pub fn create(o: &CreateOpts) -> Result<Created> {
    state::validate_id(o.id)?;
    let b = bundle::load(o.bundle)?;
    let base = cgroups::rootless_base(o.rootless_cgroups, o.systemd);
    crate::validate::check(&b.spec)?;
    cgroups::check_systemd(o.systemd)?;
    let plan = plan::build(&b.spec)?;
    crate::tty::require_console(plan.proc.terminal, o.console)?;
    let mut st = State::for_bundle(o.id, &b, o.systemd, base.as_deref());
    let res = b.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let no_cgroup = cgroups::skip_rootless(o.rootless_cgroups, &st.cgroup_path, o.systemd, res)?;
    if no_cgroup.is_some() {
        // Recorded as no path at all: every verb then finds no cgroup to list, kill or remove.
        st.cgroup_path = PathBuf::new();
    }
    st.no_new_keyring = o.no_new_keyring;
    st.pid_file = o.pid_file.map(absolute);
    if !plan.ns.mount_namespace() {
        st.shared_mounts_before = Some(crate::rootfs::shared_mounts::below(&b.rootfs)?);
    }
    cgroups::preflight(&st.cgroup_path, o.systemd, res)?;
    let dir = ContainerDir::claim(o.root, &st, &b.raw)?;
    if let Some(why) = no_cgroup {
        log::warn!("{why}");
    }
    log::debug!(
        "claimed state dir {} (cgroup will be {})",
        dir.path.display(),
        st.cgroup_path.display()
    );
    match spawn(&dir, &mut st, &b, &plan, o) {
        Ok(master) => Ok(Created {
            dir,
            state: st,
            master,
        }),
        Err(e) => {
            if let Err(t) = crate::teardown::destroy(dir, &st) {
                log::warn!("clean up after failed create: {t}");
            }
            Err(e)
        }
    }
}

/// Clone a child that joins its cgroup `self_join` by itself; on a hybrid host it is born in
/// the cgroup2 directory among them instead (`cgroups::clone_into`), which then leaves the list.
pub(super) fn clone_self_joining(
    flags: libc::c_int,
    self_join: &mut Option<Vec<PathBuf>>,
    what: &str,
) -> Result<Forked> {
    let into = self_join
        .as_deref()
        .map(cgroups::clone_into)
        .transpose()?
        .flatten();
    let forked = match &into {
        Some((dir, fd)) => match sys::clone_fork_into(flags, std::os::fd::AsFd::as_fd(fd)) {
            Ok(f) => {
                if let Some(dirs) = self_join.as_mut() {
                    dirs.retain(|d| d != dir);
                }
                Ok(f)
            }
            // A kernel without CLONE_INTO_CGROUP: the child joins that directory itself.
            Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::E2BIG) => sys::clone_fork(flags),
            Err(e) => Err(e),
        },
        None => sys::clone_fork(flags),
    };
    forked.ctx("clone", what)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn spawn(
    dir: &ContainerDir,
    st: &mut State,
    b: &Bundle,
    plan: &Plan,
    o: &CreateOpts,
) -> Result<Option<OwnedFd>> {
    let (console, proxy) = connect_console(plan.proc.terminal, o.console)?;
    let (parent, child) = sync::pair()?;
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(dir.fifo())
        .ctx("open", dir.fifo().display())?;
    let userns = plan.ns.bridge
        || plan.ns.new_flags & libc::CLONE_NEWUSER != 0
        || plan
            .ns
            .joins
            .iter()
            .any(|j| j.nstype == libc::CLONE_NEWUSER);
    // On cgroup v1, the directories the init joins by itself: known before the clone, so the
    // child has them too. Elsewhere the init is placed from outside, by a manager built now
    // (cheap on cgroup v2 and with systemd).
    let cgroup = !st.cgroup_path.as_os_str().is_empty();
    let mut self_join = cgroups::self_join_dirs(&st.cgroup_path, st.systemd_cgroup, userns);
    let mgr = match cgroup && self_join.is_none() {
        true => Some(cgroups::manager(
            &st.cgroup_path,
            st.systemd_cgroup,
            &st.id,
        )?),
        false => None,
    };
    let flags = if plan.ns.bridge { 0 } else { plan.ns.new_flags };
    // Asked here, before the clone: in the child, geteuid() answers 0 as soon as the parent has
    // written the uid map, a race the child must not lose (see `InitArgs::unprivileged`).
    let unprivileged = crate::rootless::euid_rootless();
    log::debug!(
        "clone the container init (namespace flags {flags:#x}{})",
        if plan.ns.bridge { ", via a bridge" } else { "" }
    );
    let first = match clone_self_joining(flags, &mut self_join, "container init")? {
        Forked::Child => {
            let args = init::InitArgs {
                plan,
                spec: &b.spec,
                bundle: &b.dir,
                rootfs: &b.rootfs,
                fifo,
                no_pivot: o.no_pivot,
                preserve_fds: o.preserve_fds,
                console,
                close_first: [dir.lock_fd(), parent.raw_fd()]
                    .into_iter()
                    .chain(proxy.as_ref().map(|p| p.as_raw_fd()))
                    .collect(),
                self_join: self_join.clone(),
                no_new_keyring: o.no_new_keyring,
                unprivileged,
                outlives_init: o.outlives_init,
            };
            init::run(args, child)
        }
        Forked::Parent(pid) => pid,
    };
    drop(child);
    drop(fifo);
    drop(console);
    let pid = if plan.ns.bridge {
        // Record the bridge at once so a failure below still kills it.
        st.pid = Some(first);
        st.pid_start_time = state::live_start_time(first);
        bridge::serve(&parent, first, plan)?
    } else {
        crate::namespaces::write_maps(first, &plan.ns)?;
        first
    };
    // The pid is on disk before the cgroup exists: a killed create is always cleanable.
    st.pid = Some(pid);
    st.pid_start_time = state::live_start_time(pid);
    dir.save(st)?;
    log::debug!("container init is pid {pid}");
    if let Some(mgr) = &mgr {
        cgroups::join(mgr, &st.cgroup_path, pid)?;
        log::debug!("placed the init in cgroup {}", st.cgroup_path.display());
    }
    if let Some(adj) = b.spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        crate::procfs::write(
            crate::procfs::Base::Pid(pid),
            Path::new("oom_score_adj"),
            adj.to_string().as_bytes(),
        )?;
    }
    // Unprivileged, we reach no more than the init: it opens the sources itself.
    if (userns || crate::rootfs::idmap::any(&b.spec))
        && plan.ns.new_flags & libc::CLONE_NEWNS != 0
        && !crate::rootless::euid_rootless()
    {
        // Opened as host root, in the init's new mount namespace (it exists by now): inside its
        // user namespace the init may not reach them, and only host root may idmap a host mount.
        let sources = crate::rootfs::sources::open_in(pid, &b.spec, &b.dir, userns)?;
        if !sources.is_empty() {
            let (idx, fds): (Vec<usize>, Vec<i32>) =
                sources.iter().map(|(i, f)| (*i, f.as_raw_fd())).unzip();
            parent.send_fds(&Msg::Sources(idx), &fds)?;
        }
    }
    parent.send(&Msg::Go(Box::new(st.clone())))?;
    // On cgroup v1 the init makes its cgroup and joins it now, and libcgroups' manager (about
    // 550 syscalls, the largest step of a v1 `run`) is built meanwhile, beside the init's mounts.
    let mgr = match mgr {
        None if cgroup => Some(cgroups::manager(
            &st.cgroup_path,
            st.systemd_cgroup,
            &st.id,
        )?),
        placed => placed,
    };
    loop {
        match parent.recv_fds()? {
            (Some(Msg::SeccompListener), fds) => {
                // runc's shape: the state says "creating" and names the init.
                listener::forward(&plan.proc, fds, pid, st.oci_value(Status::Creating))?;
            }
            (Some(Msg::Mounted), _) => {
                if let Some(mgr) = &mgr {
                    set_limits(mgr, st, b, o)?;
                }
                let hooks = b.spec.hooks().as_ref();
                let json = st.oci_json(Status::Creating);
                crate::hooks::run_all(
                    "prestart",
                    hooks.and_then(|h| h.prestart().as_ref()),
                    &json,
                )?;
                crate::hooks::run_all(
                    "createRuntime",
                    hooks.and_then(|h| h.create_runtime().as_ref()),
                    &json,
                )?;
                parent.send(&Msg::Proceed)?;
            }
            (Some(Msg::Ready), _) => break,
            (Some(Msg::Failed(m)), _) => return Err(Error::Init(m)),
            (Some(m), _) => {
                return Err(Error::Other(format!(
                    "sync: unexpected {m:?} from the init"
                )))
            }
            (None, _) => return Err(Error::Init("exited during setup without a word".into())),
        }
    }
    // The init sent the master before it said Ready.
    let master = proxy
        .as_ref()
        .map(crate::tty::proxy::receive_master)
        .transpose()?;
    dir.save(st)?;
    parent.send(&Msg::Commit)?;
    if !o.outlives_init {
        // We are about to exit: the init must have cleared its PDEATHSIG first.
        parent.expect(Msg::Committed)?;
    }
    // Last, as runc does: nothing can fail after it, so a failed create never leaves a pid file
    // (which delete no longer removes).
    if let Some(p) = &st.pid_file {
        state::write_atomic(p, pid.to_string().as_bytes())?;
    }
    log::debug!("container {} created", st.id);
    Ok(master)
}

/// The cgroup's limits, when the init's mounts and device nodes are made: runc, too, sets them
/// only then (its procHooks), before any hook runs.
fn set_limits(mgr: &AnyCgroupManager, st: &State, b: &Bundle, o: &CreateOpts) -> Result<()> {
    let res = b.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    cgroups::apply_limits(mgr, &st.cgroup_path, res)?;
    if let Err(e) = cgroups::apply_device_filter(mgr, &st.cgroup_path, res) {
        // Loading a cgroup BPF program needs CAP_SYS_ADMIN on the host: a rootless container
        // goes without, as with runc (fs2: setDevices errors ignored when rootless). Its user
        // namespace cannot create device nodes anyway.
        if !o.rootless_cgroups {
            return Err(e);
        }
        log::debug!("rootless: no device filter: {e}");
    }
    log::debug!("applied the limits of cgroup {}", st.cgroup_path.display());
    Ok(())
}

/// For a process with a terminal: the socket its master is sent over (given to the child), and
/// our end of it when carte receives the master itself.
pub fn connect_console(
    terminal: bool,
    console: Option<crate::tty::Console>,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    use crate::tty::Console;
    Ok(match (terminal, console) {
        (true, Some(Console::Socket(p))) => (Some(crate::tty::connect(p)?), None),
        (true, Some(Console::Proxy)) => {
            let (ours, theirs) = crate::tty::proxy::channel()?;
            (Some(theirs), Some(ours))
        }
        _ => (None, None),
    })
}
