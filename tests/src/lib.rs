//! Shared harness for the root-only integration tests: locate the runtime, build bundles, drive verbs, audit leaks.
//!
//! Every test opens with `let Some(ctx) = Ctx::new() else { return };` which skips (with a printed message) when
//! not root, and ends — even when it panics — with `Ctx`'s drop: `delete --force` on every id it handed out, then
//! a leak audit. The same tests run against carte and against runc (`CARTE_BIN=/usr/sbin/runc`); assertions on
//! behaviour only carte promises are guarded by [`is_carte`].
//!
//! Run: `sudo ./tests/setup.sh && cargo test -p carte-tests --no-fail-fast` (carte from `target/release/carte`),
//! or with `CARTE_BIN=/usr/sbin/runc` for the reference. `CARTE_TEST_TRACE=1` prints every runtime call with its
//! duration and how long the leak audit waited.

pub mod audit;
pub mod bundle;
pub mod cgroups;
pub mod console;
pub mod criu;
pub mod engines;
pub mod faults;
pub mod mountinfo;
pub mod rootless;
pub mod runtime;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use bundle::Bundle;
pub use runtime::{Out, Runtime};
pub use serde_json::{json, Value};

/// The runtime under test: `$CARTE_BIN`, else the workspace's release build.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("CARTE_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("/"))
            .join("target/release/carte"),
    }
}

/// True when the binary under test is carte (not runc or another reference runtime), so that assertions on
/// carte-specific promises (message wording, default cgroup path, time namespaces) are only made for it.
pub fn is_carte() -> bool {
    runtime_bin()
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("carte"))
}

/// Whether the tests can run at all; prints why not. The runtime needs root (CI runs as root).
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: integration tests need root");
        return false;
    }
    let bin = runtime_bin();
    if !bin.exists() {
        // A missing binary is a failure, not a skip: CI must never go green without running anything.
        panic!(
            "runtime binary {} not found (build carte or set CARTE_BIN)",
            bin.display()
        );
    }
    true
}

/// A container id unique across tests and test processes: `ct-<pid>-<counter>-<tag>`.
/// The trailing tag keeps ids readable in `ps` and failure messages.
pub fn unique_id(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("ct-{}-{}-{}", std::process::id(), n, tag)
}

/// How long the audit waits for a killed container's processes and cgroups to disappear.
pub const AUDIT_GRACE: Duration = Duration::from_secs(5);

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One test's world: a runtime with its own temp `--root`, the ids and bundles it created, and the teardown
/// that deletes and audits them all on drop.
pub struct Ctx {
    pub rt: Runtime,
    ids: RefCell<Vec<String>>,
    dirs: RefCell<Vec<PathBuf>>,
    // Owned here, not by `Bundle`, so they are removed only after the audit has detached anything mounted in them:
    // removing a directory tree with a leaked bind mount inside would delete the mount's source.
    temps: RefCell<Vec<tempfile::TempDir>>,
    _live: Live,
}

impl Ctx {
    /// `None` (after printing why) when the suite cannot run here.
    pub fn new() -> Option<Ctx> {
        if !can_run() {
            return None;
        }
        let rt = match Runtime::new(runtime_bin()) {
            Ok(rt) => rt,
            Err(e) => panic!("create runtime root: {e:#}"),
        };
        let ctx = Ctx {
            _live: Live::new(),
            rt,
            ids: RefCell::new(Vec::new()),
            dirs: RefCell::new(Vec::new()),
            temps: RefCell::new(Vec::new()),
        };
        ctx.watch_dir(ctx.rt.root());
        Some(ctx)
    }

    /// A fresh id that the teardown will force-delete and audit.
    pub fn id(&self, tag: &str) -> String {
        let id = unique_id(tag);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A fresh busybox bundle whose directory the audit watches in mountinfo.
    pub fn bundle(&self) -> Bundle {
        let dir = self.tempdir();
        match Bundle::new(&dir) {
            Ok(b) => b,
            Err(e) => panic!("build busybox bundle in {}: {e:#}", dir.display()),
        }
    }

    /// A fresh host directory (mode 0755, so a user-namespaced container can traverse it), watched by the audit
    /// and removed after it.
    pub fn tempdir(&self) -> PathBuf {
        let dir = match tempfile::Builder::new().prefix("carte-test-").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("create temp dir: {e}"),
        };
        let path = dir.path().to_path_buf();
        if let Err(e) =
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        {
            panic!("chmod {}: {e}", path.display());
        }
        self.temps.borrow_mut().push(dir);
        self.watch_dir(&path);
        path
    }

    /// Adds a host path that must not appear in mountinfo after the test.
    pub fn watch_dir(&self, dir: &Path) {
        self.dirs.borrow_mut().push(dir.to_path_buf());
    }

    /// What the leak audit finds for `id` right now, without waiting for anything to go away.
    pub fn leaks_now(&self, id: &str) -> Vec<String> {
        audit::leaks(&self.rt, id, &self.dirs.borrow(), Duration::ZERO)
    }

    /// Runs the leak audit for `id` now, without deleting anything first: used after a failed create to prove
    /// that it left nothing behind.
    pub fn assert_no_leaks(&self, id: &str) {
        let leaks = audit::leaks(&self.rt, id, &self.dirs.borrow(), AUDIT_GRACE);
        if !leaks.is_empty() {
            audit::scrub(id);
        }
        assert!(leaks.is_empty(), "{id} left behind: {}", leaks.join("; "));
    }
}

/// How many `Ctx` of this test process are alive: the last one to go removes [`cgroups::TEST_PARENT`].
static LIVE_CONTEXTS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// A `Ctx`'s place in [`LIVE_CONTEXTS`]. A field, so it is released after the audit even when the audit panics.
struct Live;

impl Live {
    fn new() -> Live {
        if let Ok(mut n) = LIVE_CONTEXTS.lock() {
            *n += 1;
        }
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Tests put their containers under one shared cgroup parent, which the runtime (like runc) never
        // removes: a parent named in cgroupsPath is its creator's. The suite made it, so the suite removes it,
        // when no test of this process can be creating a container under it (the lock holds off new ones).
        let mut n = LIVE_CONTEXTS.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            cgroups::remove_test_parent();
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let ids = self.ids.borrow().clone();
        let dirs = self.dirs.borrow().clone();
        let mut found = Vec::new();
        for id in &ids {
            // Force-delete first so one failing test does not poison the others; it may fail because the id was
            // never created or is already gone, which is fine.
            let _ = self.rt.try_cmd(&["delete", "--force", id]);
            let leaks = audit::leaks(&self.rt, id, &dirs, AUDIT_GRACE);
            if !leaks.is_empty() {
                audit::scrub(id);
            }
            found.extend(leaks);
        }
        let mounts = audit::detach_mounts_under(&dirs);
        let stuck = audit::mounts_under(&dirs);
        if !stuck.is_empty() {
            // Keep the directories rather than delete through a mount we could not detach.
            for t in self.temps.borrow_mut().drain(..) {
                let _ = t.keep();
            }
            found.push(format!("undetachable mounts: {}", stuck.join(", ")));
        }
        found.extend(mounts);
        if !found.is_empty() {
            if std::thread::panicking() {
                eprintln!("leak audit (test already failing): {}", found.join("; "));
            } else {
                panic!("leak audit: {}", found.join("; "));
            }
        }
    }
}
