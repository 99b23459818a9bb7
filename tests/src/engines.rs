//! Real container engines driving a runtime under test: a private containerd (driven with `ctr`), a private
//! podman world and a private dockerd (on a containerd of its own), each with every file under one temp dir,
//! shared by the tests of one test binary and torn down (stopping exactly the processes it started) when the last
//! test using it ends; plus the leak audits.
//!
//! Every scenario runs once per runtime ([`Rt::Runc`], the reference, and [`Rt::Carte`]) through
//! [`per_runtime!`], so a failure is visibly carte's and not the test's. The engines are shared rather than
//! started per test because starting containerd and importing the image costs more than most scenarios.
//!
//! The engines need the busybox image archives of `tests/images.sh` (`$CARTE_IMAGES`, else
//! `<workspace>/target/images`, built on first use under a lock).

use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::console::shown;
use crate::runtime::Out;

/// Bound on one engine command: generous, two cores are shared with compilers and the other tests.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Generates one `#[test]` per runtime for each scenario function `fn name(rt: Rt)`: `name::runc` and
/// `name::carte`.
#[macro_export]
macro_rules! per_runtime {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn runc() {
                super::$scenario($crate::engines::Rt::Runc)
            }
            #[test]
            fn carte() {
                super::$scenario($crate::engines::Rt::Carte)
            }
        }
    )*};
}

/// The runtime an engine is pointed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    /// Debian's runc, the reference: every scenario must pass with it.
    Runc,
    /// The runtime under test (`$CARTE_BIN`, else the workspace's release build).
    Carte,
}

impl Rt {
    pub fn bin(self) -> PathBuf {
        match self {
            Rt::Runc => PathBuf::from("/usr/sbin/runc"),
            Rt::Carte => crate::runtime_bin(),
        }
    }

    /// The short name used in namespaces and cgroup parents.
    pub fn name(self) -> &'static str {
        match self {
            Rt::Runc => "runc",
            Rt::Carte => "carte",
        }
    }

    /// Where the runtime keeps its state when no `--root` is given (podman passes none).
    pub fn default_root(self) -> PathBuf {
        PathBuf::from(format!("/run/{}", self.name()))
    }
}

/// Whether the engine tests can run; `false` (after saying why) when not root. Missing engines or a missing
/// runtime binary are failures, not skips: CI must never go green without running anything.
pub fn can_run(rt: Rt, tools: &[&str]) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: engine tests need root");
        return false;
    }
    let bin = rt.bin();
    assert!(bin.exists(), "runtime binary {} not found", bin.display());
    for tool in tools {
        assert!(
            which(tool).is_some(),
            "{tool} not found in PATH (tests/setup.sh installs it)"
        );
    }
    true
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The directory holding `busybox-oci.tar`, `busybox-docker.tar` and `pause-oci.tar`, built by `tests/images.sh` when missing.
/// A file lock keeps concurrent test binaries from building it twice.
pub fn images() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let dir = match std::env::var_os("CARTE_IMAGES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace.join("target/images"),
    };
    let ready = |d: &Path| {
        ["busybox-oci.tar", "busybox-docker.tar", "pause-oci.tar"]
            .iter()
            .all(|f| d.join(f).is_file())
    };
    if ready(&dir) {
        return dir;
    }
    let build = || -> Result<()> {
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let lock = File::create(dir.join(".lock")).context("create images lock")?;
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .context("lock images dir")?;
        let out = Command::new(workspace.join("tests/images.sh"))
            .arg(&dir)
            .output()
            .context("run tests/images.sh")?;
        if !out.status.success() {
            bail!(
                "tests/images.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    if let Err(e) = build() {
        panic!("build busybox image archives in {}: {e:#}", dir.display());
    }
    dir
}

/// A command running in the background with stdout/stderr captured in unnamed temp files (pipes would stay
/// open as long as any detached container inherited them).
pub struct Bg {
    args: String,
    child: Child,
    stdout: File,
    stderr: File,
    deadline: Instant,
}

impl Bg {
    pub fn spawn(mut cmd: Command, timeout: Duration) -> Result<Bg> {
        let stdout = tempfile::tempfile().context("create stdout capture file")?;
        let stderr = tempfile::tempfile().context("create stderr capture file")?;
        cmd.stdin(Stdio::null())
            .stdout(stdout.try_clone()?)
            .stderr(stderr.try_clone()?);
        let args = shown(&cmd);
        let child = cmd.spawn().with_context(|| format!("spawn {args}"))?;
        Ok(Bg {
            args,
            child,
            stdout,
            stderr,
            deadline: Instant::now() + timeout,
        })
    }

    /// Waits for the command; on timeout kills it (only the child we spawned) and fails.
    pub fn finish(&mut self) -> Result<Out> {
        let status = loop {
            if let Some(status) = self.child.try_wait().context("wait for command")? {
                break status;
            }
            if Instant::now() >= self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("`{}` timed out and was killed", self.args);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Out {
            args: vec![self.args.clone()],
            status,
            stdout: read_back(&mut self.stdout)?,
            stderr: read_back(&mut self.stderr)?,
        })
    }

    /// Whether the command is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    #[track_caller]
    pub fn wait(mut self) -> Out {
        match self.finish() {
            Ok(out) => out,
            Err(e) => panic!("{e:#}"),
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_back(f: &mut File) -> Result<String> {
    f.rewind()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).to_string())
}

/// Runs `cmd` to completion; panics on harness trouble (spawn failure, timeout), not on a non-zero exit.
#[track_caller]
pub fn run(cmd: Command) -> Out {
    match Bg::spawn(cmd, TIMEOUT).and_then(|mut b| b.finish()) {
        Ok(out) => out,
        Err(e) => panic!("{e:#}"),
    }
}

/// Runs `cmd` with a 24x80 terminal on stdin, stdout and stderr (`ctr run -t`, `podman run -it` refuse
/// otherwise) and returns its exit status with everything it wrote to the terminal (as stdout). Nothing is
/// written to the terminal, so the command's stdin stays open until it exits.
#[track_caller]
pub fn run_in_pty(cmd: Command) -> Out {
    match crate::console::run_on_pty(cmd, 24, 80, TIMEOUT) {
        Ok(r) => r.out,
        Err(e) => panic!("{e:#}"),
    }
}

/// How a container is recognised in process, cgroup and mount names: podman's 64-hex ids appear glued into
/// `libpod-<id>`, so anywhere; our `ct-…` ids only as whole tokens (`ct-1-1-x` is not in `ct-1-1-xy`).
#[derive(Clone, Copy)]
pub enum Needle<'a> {
    Anywhere(&'a str),
    Token(&'a str),
}

impl Needle<'_> {
    pub fn in_text(self, hay: &str) -> bool {
        match self {
            Needle::Anywhere(n) => hay.contains(n),
            Needle::Token(n) => crate::audit::contains_token(hay, n),
        }
    }
}

/// Processes (other than zombies already handed to the host's init) whose cmdline or cgroup membership
/// mentions `needle`.
pub fn processes_mentioning(needle: Needle) -> Vec<String> {
    scan_processes(needle, true)
}

/// Processes that still mention `dir` (an engine's private directory, which every daemon and shim it
/// started names) after the audit's grace period: each is killed and returned as a leak.
pub fn kill_stragglers(dir: &str) -> Vec<String> {
    crate::poll_until(crate::AUDIT_GRACE, || {
        processes_mentioning(Needle::Anywhere(dir)).is_empty()
    });
    let left = processes_mentioning(Needle::Anywhere(dir));
    for p in &left {
        if let Some(pid) = p
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    left
}

/// Processes in a cgroup whose path mentions `needle`: the container's own, not the shim or conmon watching it.
pub fn cgroup_members(needle: Needle) -> Vec<String> {
    scan_processes(needle, false)
}

fn scan_processes(needle: Needle, by_cmdline: bool) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let mut fields = rest.split_whitespace();
        if matches!((fields.next(), fields.next()), (Some("Z"), Some("1"))) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if (by_cmdline && needle.in_text(&cmdline)) || needle.in_text(&cgroup) {
            found.push(format!("process {name} `{}`", cmdline.trim()));
        }
    }
    found
}

/// Cgroup directories (bounded depth) in any hierarchy whose name mentions `needle`.
pub fn cgroups_mentioning(needle: Needle) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: Needle, depth: usize, found: &mut Vec<PathBuf>) {
        if depth > 6 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if needle.in_text(&e.file_name().to_string_lossy()) {
                    found.push(e.path());
                }
                walk(&e.path(), needle, depth + 1, found);
            }
        }
    }
    let mut found = Vec::new();
    for h in crate::cgroups::hierarchies() {
        walk(&h.mount, needle, 0, &mut found);
    }
    found
}

/// Host mount lines mentioning `needle`.
pub fn mounts_mentioning(needle: Needle) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| needle.in_text(l))
        .map(|l| format!("mount `{l}`"))
        .collect()
}

/// What one container left behind: processes and cgroups (given the audit grace to go away), mounts, and the
/// runtime's state entry `state_dir`.
pub fn container_leaks(needle: Needle, state_dir: &Path) -> Vec<String> {
    leaks_within(needle, state_dir, crate::AUDIT_GRACE)
}

/// [`container_leaks`] without waiting for anything to go away: what a live container holds.
pub fn container_leaks_now(needle: Needle, state_dir: &Path) -> Vec<String> {
    leaks_within(needle, state_dir, Duration::ZERO)
}

fn leaks_within(needle: Needle, state_dir: &Path, grace: Duration) -> Vec<String> {
    let mut found = Vec::new();
    crate::poll_until(grace, || {
        found = processes_mentioning(needle);
        found.extend(
            cgroups_mentioning(needle)
                .iter()
                .map(|d| format!("cgroup {}", d.display())),
        );
        found.is_empty()
    });
    if state_dir.exists() {
        found.push(format!("runtime state {}", state_dir.display()));
    }
    found.extend(mounts_mentioning(needle));
    found
}

/// Reports leaks: panics unless the test is already failing (then only prints).
fn report(what: &str, leaks: &[String]) {
    if leaks.is_empty() {
        return;
    }
    if std::thread::panicking() {
        eprintln!(
            "leak audit of {what} (test already failing): {}",
            leaks.join("; ")
        );
    } else {
        panic!("leak audit of {what}: {}", leaks.join("; "));
    }
}

/// Removes the (empty) cgroup directory `rel` in every hierarchy, children first; returns the ones that
/// could not be removed.
fn remove_cgroup_tree(rel: &str) -> Vec<String> {
    let mut stuck = Vec::new();
    for h in crate::cgroups::hierarchies() {
        let top = h.mount.join(rel.trim_start_matches('/'));
        if !top.is_dir() {
            continue;
        }
        let mut dirs = vec![top.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(e.path());
                    }
                }
            }
            i += 1;
        }
        for d in dirs.iter().rev() {
            // A freshly emptied cgroup can stay busy for a moment while its last task is reaped.
            let gone = crate::poll_until(crate::AUDIT_GRACE, || {
                std::fs::remove_dir(d).is_ok() || !d.exists()
            });
            if !gone {
                stuck.push(format!("cgroup {}", d.display()));
            }
        }
    }
    stuck
}

/// The freezer state of `pid`'s cgroup on the host, as `FROZEN` or `THAWED` (v1 `freezer.state`, or v2
/// `cgroup.freeze` = 1/0).
pub fn freezer_state(pid: i64) -> String {
    if let Some(path) = crate::cgroups::path_of(pid, "freezer") {
        if let Some((_, s)) =
            crate::cgroups::read_limit("freezer", &path, "freezer.state", "cgroup.freeze")
        {
            return s;
        }
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let v2 = crate::cgroups::hierarchies().into_iter().find(|h| h.v2);
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"));
    match (v2, rel) {
        (Some(h), Some(rel)) => {
            let f = h
                .mount
                .join(rel.trim_start_matches('/'))
                .join("cgroup.freeze");
            match std::fs::read_to_string(f).unwrap_or_default().trim() {
                "1" => "FROZEN".into(),
                "0" => "THAWED".into(),
                other => format!("unknown ({other:?})"),
            }
        }
        _ => format!("no freezer cgroup for pid {pid}"),
    }
}

/// The memory limit of `pid`'s cgroup on the host in bytes (v1 `memory.limit_in_bytes`, v2 `memory.max`).
pub fn host_memory_limit(pid: i64) -> String {
    let path = crate::cgroups::path_of(pid, "memory").unwrap_or_default();
    crate::cgroups::read_limit("memory", &path, "memory.limit_in_bytes", "memory.max")
        .map(|(_, s)| s)
        .unwrap_or_else(|| format!("no memory cgroup for pid {pid}"))
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A name for one engine instance, unique across test binaries and restarts: `carte-eng-<pid>-<n>`.
fn instance_name() -> String {
    let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
    format!("carte-eng-{}-{n}", std::process::id())
}

fn private_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = match tempfile::Builder::new().prefix(prefix).tempdir() {
        Ok(d) => d,
        Err(e) => panic!("create temp dir: {e}"),
    };
    // 0711: containers running as another uid must be able to traverse to their rootfs.
    if let Err(e) = std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    ) {
        panic!("chmod {}: {e}", dir.path().display());
    }
    dir
}

/// Shuts a shared fixture down when the last test holding it ends: the `Weak` under a lock hands the same
/// instance to overlapping tests and a fresh one once it is gone.
fn shared<T>(slot: &Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut guard = match slot.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(live) = guard.upgrade() {
        return live;
    }
    let fresh = Arc::new(start());
    *guard = Arc::downgrade(&fresh);
    fresh
}

pub mod containerd;
pub mod cri;
pub mod docker;
pub mod podman;

/// One test's list of things to clean up, shared by both engine handles.
type Names = RefCell<Vec<String>>;
