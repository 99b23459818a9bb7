//! Container state on disk: the `ROOT/ID/` directory, its lock, `state.json`, and the status
//! derived from the kernel. We persist facts (pid + start time, cgroup path, what was created),
//! never the status word: a process that died is `stopped` whatever the file says.
//!
//! Layout: `ROOT/ID/state.json`, `ROOT/ID/config.json` (copy, so poststop hooks and teardown
//! work after the bundle is gone), `ROOT/ID/exec.fifo` (between create and start only).
//! The directory itself is the lock (flock on its fd) and it is claimed atomically: it is built
//! under a temporary name, locked and filled, then renamed into place with RENAME_NOREPLACE, so
//! two `create`s of one id can never both win and a half-made container is never visible.

use crate::error::{Context, Error, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_COPY: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub carte_state_version: u32,
    pub oci_version: String,
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host pid of the container init; absent until clone returned.
    pub pid: Option<i32>,
    /// Field 22 of /proc/PID/stat, so a recycled pid is never mistaken for our init.
    pub pid_start_time: Option<u64>,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The cgroup path, recorded before the cgroup exists so teardown can always find it.
    pub cgroup_path: PathBuf,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Created with `--no-new-keyring`: `exec`'d processes keep the runtime's session keyring too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_keyring: bool,
    /// The pid file carte wrote. Kept on delete, as runc keeps it: it belongs to whoever asked.
    pub pid_file: Option<PathBuf>,
    /// For a container without a mount namespace of its own: the mount points below the rootfs
    /// before `create`, one entry per mount. Its `mounts` land in the runtime's (host's) table, and
    /// teardown detaches whatever is there beyond these (runtime.md: delete MUST undo what create
    /// made). Recorded before the init exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_mounts_before: Option<Vec<PathBuf>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl State {
    pub fn new(id: &str, bundle: PathBuf, rootfs: PathBuf, oci_version: String) -> State {
        State {
            carte_state_version: STATE_VERSION,
            oci_version,
            id: id.to_string(),
            bundle,
            rootfs,
            created: crate::log::now_rfc3339(),
            owner: {
                let uid = nix::unistd::geteuid().as_raw();
                crate::proc_attrs::passwd_field(uid, 0).unwrap_or_else(|| uid.to_string())
            },
            ..State::default()
        }
    }

    /// The state `create` (and `restore`) records for bundle `b` under `id`: its annotations and
    /// the cgroup its config asks for (or carte's default for the id; `cgroup_base`: see
    /// `cgroups::rootless_base`).
    pub fn for_bundle(
        id: &str,
        b: &crate::bundle::Bundle,
        systemd: bool,
        cgroup_base: Option<&Path>,
    ) -> State {
        let mut st = State::new(
            id,
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
        st.cgroup_path = Self::cgroup_path_for(Some(&b.spec), id, systemd, cgroup_base);
        st.systemd_cgroup = systemd;
        st
    }

    /// The cgroup a container with config `spec` gets (carte's default for the id without one;
    /// `cgroup_base`: see `cgroups::rootless_base`).
    pub fn cgroup_path_for(
        spec: Option<&oci_spec::runtime::Spec>,
        id: &str,
        systemd: bool,
        cgroup_base: Option<&Path>,
    ) -> PathBuf {
        let spec_cg = spec
            .and_then(|s| s.linux().as_ref())
            .and_then(|l| l.cgroups_path().clone());
        crate::cgroups::path_for(spec_cg.as_deref(), id, systemd, cgroup_base)
    }
}

impl State {
    /// The OCI state document (runtime.md "State"), as hooks receive it on stdin.
    pub fn oci_json(&self, status: Status) -> String {
        self.oci_value(status).to_string()
    }

    pub fn oci_value(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status.as_str(),
            "bundle": self.bundle,
        });
        if let Some(pid) = self.pid.filter(|_| status != Status::Stopped) {
            v["pid"] = pid.into();
        }
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v
    }
}

/// runc's id rule: letters, digits and `_ + - .`, but not `.` or `..`, so an id is always one
/// plain path component under the state root.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid container id {id:?}: use letters, digits and _+-. only"
        )))
    }
}

/// A locked container directory. The lock is released when this is dropped (or the process dies).
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    lock: Flock<File>,
}

fn ensure_root(root: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .ctx("create state root", root.display())
}

impl ContainerDir {
    /// Claim `ROOT/ID` for a new container, with `state` already written inside it.
    pub fn claim(root: &Path, state: &State, config_json: &[u8]) -> Result<ContainerDir> {
        validate_id(&state.id)?;
        ensure_root(root)?;
        sweep_stale(root, &state.id);
        let final_path = root.join(&state.id);
        if final_path.exists() {
            return Err(Error::Exists {
                id: state.id.clone(),
            });
        }
        let tmp = root.join(format!("{CLAIM_PREFIX}{}-{}", state.id, std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .ctx("create state dir", tmp.display())?;
        let build = || -> Result<ContainerDir> {
            let f = File::open(&tmp).ctx("open state dir", tmp.display())?;
            let lock = Flock::lock(f, FlockArg::LockExclusive)
                .map_err(|(_, e)| Error::sys("lock state dir", tmp.display(), e))?;
            let dir = ContainerDir {
                id: state.id.clone(),
                path: tmp.clone(),
                lock,
            };
            dir.save(state)?;
            write_atomic(&tmp.join(CONFIG_COPY), config_json)?;
            // 0622: the init reopens it for writing after it became the container's user.
            let fifo = tmp.join(EXEC_FIFO);
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
                .ctx("mkfifo", fifo.display())?;
            std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
                .ctx("chmod", fifo.display())?;
            Ok(dir)
        };
        let mut dir = match build() {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        match nix::fcntl::renameat2(
            None,
            &tmp,
            None,
            &final_path,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                dir.path = final_path;
                Ok(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                if e == nix::errno::Errno::EEXIST || e == nix::errno::Errno::ENOTEMPTY {
                    Err(Error::Exists {
                        id: state.id.clone(),
                    })
                } else {
                    Err(Error::sys("rename state dir", final_path.display(), e))
                }
            }
        }
    }

    /// Open and lock an existing container (exclusive: every verb that changes it).
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { id: id.to_string() })
            }
            Err(e) => return Err(Error::io("open state dir", &path, e)),
        };
        let lock = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys("lock state dir", path.display(), e))?;
        // The previous holder may have deleted the container while we waited for the lock.
        let meta = lock.metadata().ctx("stat state dir", path.display())?;
        if meta.nlink() == 0 {
            return Err(Error::NotFound { id: id.to_string() });
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            lock,
        })
    }

    pub fn lock_fd(&self) -> i32 {
        self.lock.as_raw_fd()
    }

    pub fn load(&self) -> Result<State> {
        load_state(&self.path)
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let data =
            serde_json::to_vec(state).map_err(|e| Error::Other(format!("encode state: {e}")))?;
        write_atomic(&self.path.join(STATE_FILE), &data)
    }

    /// The config.json copied at create time (hooks, cgroup path) — None if unreadable.
    pub fn config(&self) -> Option<oci_spec::runtime::Spec> {
        self.read_config()
    }

    /// The hooks alone: all `start` and `delete` need of the config. The rest of the document is
    /// scanned, not built into a `Spec` (a third of `delete`'s own instructions were that).
    pub fn hooks(&self) -> Option<oci_spec::runtime::Hooks> {
        #[derive(serde::Deserialize)]
        struct HooksOnly {
            hooks: Option<oci_spec::runtime::Hooks>,
        }
        self.read_config::<HooksOnly>()?.hooks
    }

    /// The config copy read as `T` (what of it the caller needs); None if unreadable.
    fn read_config<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        let raw = std::fs::read(self.path.join(CONFIG_COPY)).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Remove the directory (the lock goes with our fd when `self` drops). It is first renamed to a
    /// hidden name, so the container disappears at once for every reader: nobody ever sees a
    /// half-removed directory (a `state` racing a `delete` either finds the whole container or none),
    /// and a delete killed half-way leaves only a hidden directory that [`sweep_stale`] removes.
    pub fn remove(self) -> Result<()> {
        let doomed =
            self.path
                .with_file_name(format!("{DOOMED_PREFIX}{}-{}", self.id, std::process::id()));
        let path = match std::fs::rename(&self.path, &doomed) {
            Ok(()) => doomed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // Renaming is a nicety; removing in place still removes everything.
            Err(_) => self.path.clone(),
        };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove state dir", &path, e)),
        }
    }
}

/// Hidden directories of a container being made (`.new-ID-PID`) or removed (`.dead-ID-PID`).
const CLAIM_PREFIX: &str = ".new-";
const DOOMED_PREFIX: &str = ".dead-";

/// Remove the hidden claim and removal directories of `id` whose owner process is gone: what a
/// `create` or `delete` killed between two steps leaves. They never hold a cgroup or a process
/// (the claim is renamed into place before anything is made; the removal starts after teardown),
/// so deleting them is all the cleanup they need. A directory whose owner lives is left alone.
pub fn sweep_stale(root: &Path, id: &str) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = stale_owner(&name.to_string_lossy(), id) else {
            continue;
        };
        // ESRCH: no such process. A recycled pid keeps the directory until the next sweep.
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH)
        {
            log::debug!("remove stale {}", e.path().display());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The owner pid of a hidden directory name made for exactly `id`, if `name` is one.
fn stale_owner(name: &str, id: &str) -> Option<i32> {
    let rest = name
        .strip_prefix(CLAIM_PREFIX)
        .or_else(|| name.strip_prefix(DOOMED_PREFIX))?;
    let (owner_id, pid) = rest.rsplit_once('-')?;
    if owner_id != id {
        return None;
    }
    pid.parse().ok().filter(|p: &i32| *p > 0)
}

pub fn load_state(dir: &Path) -> Result<State> {
    let p = dir.join(STATE_FILE);
    let data = std::fs::read(&p).ctx("read", p.display())?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::Other(format!("{}: corrupt state: {e}", p.display())))
}

/// tmp + fsync-free rename: readers see the old or the new file, never a torn one. The temporary
/// file is ours alone: a unique name in the same directory, created with O_EXCL. A name derived
/// from the target (`pid.1` and `pid.2` both gave `pid.tmp`) let concurrent writers of two files
/// in one directory rename each other's temporary away (`rename: ENOENT`); runc uses
/// `.<name>` with O_EXCL for its pid files, which two writers of one name would still share.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let (tmp, mut f) = create_temp_beside(path)?;
    let res = f
        .write_all(data)
        .ctx("write", tmp.display())
        .and_then(|()| std::fs::rename(&tmp, path).ctx("rename", path.display()));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// `.<name>.<our pid>.<counter><clock nanos>.tmp` next to `path`, created with O_EXCL (so a
/// collision, however unlikely, is retried instead of shared).
fn create_temp_beside(path: &Path) -> Result<(PathBuf, File)> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| Error::Other(format!("write {}: not a file name", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut last = None;
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{seq}{nanos:09}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some((tmp, e)),
            Err(e) => return Err(e).ctx("create", tmp.display()),
        }
    }
    match last {
        Some((tmp, e)) => Err(e).ctx("create", tmp.display()),
        None => Err(Error::Other(format!(
            "write {}: no temporary name",
            path.display()
        ))),
    }
}

/// Field 22 (starttime) of /proc/PID/stat; None when the process is gone or a zombie.
pub fn live_start_time(pid: i32) -> Option<u64> {
    let stat = crate::kernel_text::read(format!("/proc/{pid}/stat")).ok()?;
    let fields = crate::proc_stat::StatFields::parse(&stat)?;
    if matches!(fields.get(3)?, "Z" | "X") {
        return None;
    }
    fields.get(22)?.parse().ok()
}

/// Is the init recorded in `st` still our process (alive, not a zombie, same start time)?
pub fn init_alive(st: &State) -> bool {
    match (st.pid, st.pid_start_time) {
        (Some(pid), Some(start)) => live_start_time(pid) == Some(start),
        _ => false,
    }
}

/// Derive the status from the kernel and the directory (crun's rule, plus a start-time check).
pub fn status(dir: &Path, st: &State) -> Status {
    if st.pid.is_none() {
        return Status::Creating;
    }
    if !init_alive(st) {
        return Status::Stopped;
    }
    if dir.join(EXEC_FIFO).exists() {
        return Status::Created;
    }
    if crate::cgroups::is_frozen(&crate::cgroups::fs_path(&st.cgroup_path, st.systemd_cgroup)) {
        return Status::Paused;
    }
    Status::Running
}

/// Every container id under the root (skipping the temporary `.new-*` claims).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read state root", root, e)),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rules() {
        for ok in ["a", "c-1", "A.b_c+d", "0"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "x\0", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stale_dirs_are_matched_to_exactly_their_id() {
        assert_eq!(stale_owner(".new-c1-42", "c1"), Some(42));
        assert_eq!(stale_owner(".dead-c-1-42", "c-1"), Some(42));
        assert_eq!(stale_owner(".new-c-1-42", "c"), None);
        assert_eq!(stale_owner(".new-c1-x", "c1"), None);
        assert_eq!(stale_owner(".new-c1-0", "c1"), None);
        assert_eq!(stale_owner("c1", "c1"), None);
        assert_eq!(stale_owner(".other-c1-42", "c1"), None);
    }

    #[test]
    fn own_start_time_is_read() {
        let me = std::process::id() as i32;
        assert!(live_start_time(me).is_some());
        assert_eq!(live_start_time(i32::MAX), None);
    }

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let d = std::env::temp_dir().join(format!("carte-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let st = State::new("x", "/b".into(), "/b/rootfs".into(), "1.2.0".into());
        write_atomic(&d.join(STATE_FILE), &serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(load_state(&d).unwrap().id, "x");
        std::fs::write(d.join(STATE_FILE), b"{\"id\": 3").unwrap();
        let e = load_state(&d).unwrap_err().to_string();
        assert!(e.contains("corrupt state"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atomic_writes_leave_only_the_target() {
        let d = std::env::temp_dir().join(format!("carte-atomic-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for n in 0..3 {
            write_atomic(&d.join(format!("pid.{n}")), n.to_string().as_bytes()).unwrap();
        }
        write_atomic(&d.join("pid.1"), b"again").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["pid.0", "pid.1", "pid.2"]);
        assert_eq!(std::fs::read(d.join("pid.1")).unwrap(), b"again");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
