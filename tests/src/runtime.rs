//! Drives a runc-compatible binary with its own temp `--root`: one method per verb, each call bounded by a
//! timeout after which the child we spawned is killed and the test fails.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bundle::Bundle;

/// Default bound on one runtime call; generous because two cores are shared with compilers.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of one runtime call.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The exit code, or 128+signal when the runtime itself was killed by a signal.
    pub fn code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the full output unless the call succeeded.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert!(self.success(), "{self}");
        self
    }

    /// Panics unless the call failed with a non-zero exit and exactly one non-empty line on stderr.
    #[track_caller]
    pub fn fails(self) -> Out {
        assert!(!self.success(), "expected failure: {self}");
        assert!(self.code() > 0, "expected a non-zero exit code: {self}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(!lines.is_empty(), "expected an error on stderr: {self}");
        if crate::is_carte() {
            assert_eq!(lines.len(), 1, "carte errors are one line: {self}");
        }
        self
    }

    /// The stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.stdout) {
            Ok(v) => v,
            Err(e) => panic!("stdout is not JSON ({e}): {self}"),
        }
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Extra plumbing for one call.
#[derive(Default)]
pub struct CallOpts {
    /// Global flags placed before the verb (after `--root`).
    pub global: Vec<String>,
    /// Files to install at given fd numbers in the child (for `--preserve-fds`).
    pub fds: Vec<(OwnedFd, i32)>,
    pub timeout: Option<Duration>,
    /// The call's stdin (e.g. `update --resources -`); /dev/null when `None`.
    pub stdin: Option<File>,
}

/// A running runtime call (e.g. a foreground `run` the test interacts with meanwhile).
pub struct Running {
    args: Vec<String>,
    child: Child,
    stdout: File,
    stderr: File,
    started: Instant,
    deadline: Instant,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the call has written to stdout so far, while it still runs (e.g. a streaming `events`).
    pub fn stdout_now(&self) -> Result<String> {
        let mut bytes = Vec::new();
        // Read through a fresh open of the capture file: the shared offset of `self.stdout` stays put.
        File::open(format!("/proc/self/fd/{}", self.stdout.as_raw_fd()))
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .context("read the running call's stdout")?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Waits for the call to end; kills it and panics when the deadline passes.
    #[track_caller]
    pub fn wait(mut self) -> Out {
        match self.finish() {
            Ok(out) => out,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Like [`Running::wait`], but a timeout is an error instead of a panic.
    pub fn finish(&mut self) -> Result<Out> {
        let status = loop {
            if let Some(status) = self.child.try_wait().context("wait for runtime")? {
                break status;
            }
            if Instant::now() >= self.deadline {
                // Only ever kill the child we spawned, never anything by name.
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("`{}` timed out and was killed", self.args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if std::env::var_os("CARTE_TEST_TRACE").is_some() {
            let took = self.started.elapsed();
            eprintln!("[{took:>9.3?}] exit {status}: {}", self.args.join(" "));
        }
        Ok(Out {
            args: self.args.clone(),
            status,
            stdout: read_back(&mut self.stdout)?,
            stderr: read_back(&mut self.stderr)?,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_back(f: &mut File) -> Result<String> {
    f.rewind()?;
    let mut s = String::new();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    s.push_str(&String::from_utf8_lossy(&bytes));
    Ok(s)
}

/// A runtime binary bound to a private state root.
pub struct Runtime {
    bin: PathBuf,
    root: tempfile::TempDir,
}

impl Runtime {
    pub fn new(bin: PathBuf) -> Result<Runtime> {
        let root = tempfile::Builder::new()
            .prefix("carte-test-root-")
            .tempdir()
            .context("create temp state root")?;
        Ok(Runtime { bin, root })
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Starts `bin --root ROOT <global> <args>` with stdio captured in unnamed temp files: pipes would keep
    /// the call "open" for as long as a detached container holds the inherited write ends.
    pub fn spawn(&self, args: &[&str], opts: CallOpts) -> Result<Running> {
        let mut all: Vec<String> = vec!["--root".into(), self.root_str()];
        all.extend(opts.global.iter().cloned());
        all.extend(args.iter().map(|a| a.to_string()));
        let stdout = tempfile::tempfile().context("create stdout capture file")?;
        let stderr = tempfile::tempfile().context("create stderr capture file")?;
        let mut cmd = Command::new(&self.bin);
        let stdin = opts.stdin.map_or_else(Stdio::null, Stdio::from);
        cmd.args(&all)
            .stdin(stdin)
            .stdout(stdout.try_clone()?)
            .stderr(stderr.try_clone()?);
        if opts.fds.len() > 16 {
            bail!("at most 16 extra fds per call");
        }
        if !opts.fds.is_empty() {
            let pairs: Vec<(i32, i32)> = opts
                .fds
                .iter()
                .map(|(fd, target)| (fd.as_raw_fd(), *target))
                .collect();
            // SAFETY: the closure runs between fork and exec and calls only fcntl and dup2, which are
            // async-signal-safe; it allocates nothing (`pairs` was built before the fork).
            unsafe {
                cmd.pre_exec(move || {
                    // Move every source above the targets first: a source may already sit on another pair's
                    // target, and dup2(fd, fd) would keep its close-on-exec flag.
                    let mut high = [0i32; 16];
                    for (slot, &(from, _)) in high.iter_mut().zip(&pairs) {
                        *slot = libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 1000);
                        if *slot < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    for (&fd, &(_, to)) in high.iter().zip(&pairs) {
                        if libc::dup2(fd, to) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        let mut shown = vec![self.bin.display().to_string()];
        shown.extend(all);
        Ok(Running {
            args: shown,
            child,
            stdout,
            stderr,
            started: Instant::now(),
            deadline: Instant::now() + opts.timeout.unwrap_or(TIMEOUT),
        })
    }

    fn root_str(&self) -> String {
        self.root.path().display().to_string()
    }

    /// Runs one call to completion; an error only for harness trouble (spawn failure, timeout).
    pub fn try_cmd(&self, args: &[&str]) -> Result<Out> {
        self.spawn(args, CallOpts::default())?.finish()
    }

    /// Runs one call to completion; panics on harness trouble, not on a non-zero exit.
    #[track_caller]
    pub fn cmd(&self, args: &[&str]) -> Out {
        self.cmd_opts(args, CallOpts::default())
    }

    #[track_caller]
    pub fn cmd_opts(&self, args: &[&str], opts: CallOpts) -> Out {
        match self.spawn(args, opts).and_then(|mut r| r.finish()) {
            Ok(out) => out,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// `create ID --bundle DIR <extra>` after saving the bundle's config.
    #[track_caller]
    pub fn create(&self, id: &str, b: &Bundle, extra: &[&str]) -> Out {
        write_config(b);
        let mut args = vec!["create", id, "--bundle", b.path_str()];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    /// Foreground `run ID --bundle DIR <extra>`: stdout/stderr are the container's.
    #[track_caller]
    pub fn run(&self, id: &str, b: &Bundle, extra: &[&str]) -> Out {
        write_config(b);
        let mut args = vec!["run", id, "--bundle", b.path_str()];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    /// Foreground `run` of a script that must succeed; returns its stdout.
    #[track_caller]
    pub fn run_sh(&self, id: &str, b: &mut Bundle, script: &str) -> String {
        b.sh(script);
        self.run(id, b, &[]).ok().stdout
    }

    #[track_caller]
    pub fn start(&self, id: &str) -> Out {
        self.cmd(&["start", id])
    }

    /// `state ID`, which must succeed, parsed.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        self.cmd(&["state", id]).ok().json()
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls `state` until the status is `want`; panics after the default timeout.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = String::new();
        let ok = crate::poll_until(TIMEOUT, || {
            last = self.status(id);
            last == want
        });
        assert!(ok, "{id} never reached {want} (last status {last})");
    }

    #[track_caller]
    pub fn kill(&self, id: &str, signal: &str) -> Out {
        self.cmd(&["kill", id, signal])
    }

    #[track_caller]
    pub fn delete(&self, id: &str) -> Out {
        self.cmd(&["delete", id])
    }

    #[track_caller]
    pub fn delete_force(&self, id: &str) -> Out {
        self.cmd(&["delete", "--force", id])
    }

    /// `list -f json`, which must succeed, as the array of entries (runc prints `null` for none).
    #[track_caller]
    pub fn list_json(&self) -> Vec<Value> {
        match self.cmd(&["list", "-f", "json"]).ok().json() {
            Value::Array(entries) => entries,
            Value::Null => Vec::new(),
            other => panic!("list -f json printed {other}"),
        }
    }

    /// `spec [--rootless] --bundle DIR`.
    #[track_caller]
    pub fn spec(&self, dir: &Path, rootless: bool) -> Out {
        let dir = dir.display().to_string();
        let mut args = vec!["spec"];
        if rootless {
            args.push("--rootless");
        }
        args.extend(["--bundle", &dir]);
        self.cmd(&args)
    }
}

#[track_caller]
fn write_config(b: &Bundle) {
    if let Err(e) = b.write() {
        panic!("{e:#}");
    }
}
