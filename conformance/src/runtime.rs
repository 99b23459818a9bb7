//! Drives one runc-compatible runtime binary from the outside: every verb is a child process with a deadline,
//! its own `--root`, and stdout/stderr captured in files (pipes would block: a created container inherits them).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::ffi::CString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One column of the table: a runtime binary and how we start it.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Column header, e.g. `runc` or `crun (cgroup2 masked)`.
    pub label: String,
    pub path: PathBuf,
    /// Run every invocation in a private mount namespace with the v2 `cgroup.controllers` hidden (crun on a
    /// hybrid host refuses to start when v2 has controllers; this is the documented workaround, not a fix).
    pub mask_cgroup2: Option<PathBuf>,
    /// The `spec:` line of `--version`, when the runtime prints one.
    pub spec_version: Option<String>,
}

/// What one runtime invocation did.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The runtime's error in one line: the last non-empty stderr line (runc, crun, carte print their one
    /// error there), unless stderr ends in a backtrace (youki/anyhow): then the last line mentioning an error
    /// plus its innermost `Caused by:` entry.
    pub fn error_line(&self) -> String {
        one_error_line(&self.stderr).unwrap_or_else(|| format!("(no stderr, exit {:?})", self.code))
    }
}

fn one_error_line(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last = *lines.last()?;
    let frame = |l: &str| {
        l.starts_with("at ")
            || l.split_once(": ")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
    };
    let mut msg = last.to_string();
    if frame(last) {
        if let Some(i) = lines
            .iter()
            .rposition(|l| l.to_ascii_lowercase().contains("error"))
        {
            msg = lines[i].to_string();
            if lines.get(i + 1) == Some(&"Caused by:") {
                if let Some(cause) = lines[i + 2..].iter().take_while(|l| frame(l)).last() {
                    msg = format!("{msg}: {cause}");
                }
            }
        }
    }
    Some(msg.chars().take(240).collect())
}

static SEQ: AtomicU64 = AtomicU64::new(0);

const V2_CONTROLLERS: &str = "/sys/fs/cgroup/unified/cgroup.controllers";

impl Runtime {
    /// Resolve `PATH` (a path or a name on `$PATH`); `masked:PATH` asks for the cgroup2 workaround.
    pub fn parse(spec: &str, scratch: &Path) -> Result<Runtime> {
        let (masked, raw) = match spec.strip_prefix("masked:") {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let path = resolve_binary(raw)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| raw.to_string());
        let mask_cgroup2 = if masked {
            let empty = scratch.join("empty-cgroup.controllers");
            std::fs::write(&empty, b"").with_context(|| format!("create `{}`", empty.display()))?;
            Some(empty)
        } else {
            None
        };
        let label = if masked {
            format!("{name} (cgroup2 masked)")
        } else {
            name
        };
        let mut rt = Runtime {
            label,
            path,
            mask_cgroup2,
            spec_version: None,
        };
        rt.spec_version = rt.probe_version(scratch);
        Ok(rt)
    }

    fn probe_version(&self, scratch: &Path) -> Option<String> {
        let out = self
            .run_raw(&["--version"], scratch, None, Duration::from_secs(10))
            .ok()?;
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("spec:").map(|v| v.trim().to_string()))
    }

    /// `runtime --root ROOT ARGS...`, waiting at most `timeout`.
    pub fn run(
        &self,
        root: &Path,
        args: &[&str],
        work: &Path,
        timeout: Duration,
    ) -> Result<Output> {
        let root = root.to_string_lossy();
        let mut full = vec!["--root", root.as_ref()];
        full.extend_from_slice(args);
        self.run_raw(&full, work, None, timeout)
    }

    /// Like [`Runtime::run`] but stdout/stderr go to the given files and stay there: on `create` the
    /// container inherits them, so they are where the probe's report and errors end up.
    pub fn run_to(
        &self,
        root: &Path,
        args: &[&str],
        work: &Path,
        files: (&Path, &Path),
        timeout: Duration,
    ) -> Result<Output> {
        let root = root.to_string_lossy();
        let mut full = vec!["--root", root.as_ref()];
        full.extend_from_slice(args);
        self.run_raw(&full, work, Some(files), timeout)
    }

    fn run_raw(
        &self,
        args: &[&str],
        work: &Path,
        files: Option<(&Path, &Path)>,
        timeout: Duration,
    ) -> Result<Output> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let (out_path, err_path) = match files {
            Some((o, e)) => (o.to_path_buf(), e.to_path_buf()),
            None => (
                work.join(format!("cmd-{n}.out")),
                work.join(format!("cmd-{n}.err")),
            ),
        };
        let out_file =
            File::create(&out_path).with_context(|| format!("create `{}`", out_path.display()))?;
        let err_file =
            File::create(&err_path).with_context(|| format!("create `{}`", err_path.display()))?;
        let mut cmd = Command::new(&self.path);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(err_file)
            .current_dir(work);
        if let Some(empty) = &self.mask_cgroup2 {
            mask_cgroup2(&mut cmd, empty)?;
        }
        let verb = args
            .iter()
            .find(|a| !a.starts_with('-') && !a.starts_with('/'))
            .copied()
            .unwrap_or("?");
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn `{}`", self.path.display()))?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .with_context(|| format!("wait for `{} {verb}`", self.label))?
            {
                break status;
            }
            if Instant::now() >= deadline {
                // Our own child, by its pid: never a broad kill.
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`{} {verb}` timed out after {}s",
                    self.label,
                    timeout.as_secs_f32()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let output = Output {
            success: status.success(),
            code: status.code(),
            stdout: if files.is_some() {
                String::new()
            } else {
                read(&out_path)
            },
            stderr: read(&err_path),
        };
        if files.is_none() {
            let _ = std::fs::remove_file(&out_path);
            let _ = std::fs::remove_file(&err_path);
        }
        Ok(output)
    }

    /// `state ID` parsed; an error when the runtime fails or prints something that is not JSON.
    pub fn state(&self, root: &Path, id: &str, work: &Path, timeout: Duration) -> Result<Value> {
        let out = self.run(root, &["state", id], work, timeout)?;
        if !out.success {
            bail!("`state {id}` failed: {}", out.error_line());
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| anyhow!("`state {id}` printed invalid JSON ({e}): {}", out.stdout))
    }

    /// Whether a case needs a newer spec than the runtime says it implements (`None` when unknown: run it).
    pub fn spec_older_than(&self, min: &str) -> bool {
        match &self.spec_version {
            Some(v) => version_tuple(v) < version_tuple(min),
            None => false,
        }
    }
}

/// (major, minor, patch, is-release): SemVer orders `1.0.2-dev` before `1.0.2`.
fn version_tuple(v: &str) -> (u32, u32, u32, bool) {
    let (core, pre) = match v.split_once('-') {
        Some((core, _)) => (core, true),
        None => (v.split('+').next().unwrap_or(v), false),
    };
    let mut it = core.split('.').map(|s| s.trim().parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        !pre,
    )
}

fn resolve_binary(raw: &str) -> Result<PathBuf> {
    let candidate = PathBuf::from(raw);
    let found = if raw.contains('/') {
        Some(candidate)
    } else {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join(raw))
            .find(|p| p.is_file())
    };
    let path = found.ok_or_else(|| anyhow!("find runtime `{raw}`: not a path and not on $PATH"))?;
    let abs = std::fs::canonicalize(&path).with_context(|| format!("find runtime `{raw}`"))?;
    if !abs.is_file() {
        bail!("find runtime `{raw}`: `{}` is not a file", abs.display());
    }
    Ok(abs)
}

/// Before exec, in the child: a private mount namespace (slave, so nothing propagates back to the host) with an
/// empty file bound over the v2 controller list. Only async-signal-safe syscalls run after fork.
fn mask_cgroup2(cmd: &mut Command, empty: &Path) -> Result<()> {
    let src = CString::new(empty.as_os_str().as_encoded_bytes())
        .context("mask cgroup2: path has a NUL byte")?;
    let dst = CString::new(V2_CONTROLLERS).context("mask cgroup2: path has a NUL byte")?;
    let root = CString::new("/").context("mask cgroup2: path has a NUL byte")?;
    // SAFETY: the closure only calls unshare(2) and mount(2) on CStrings allocated before fork; it neither
    // allocates nor takes locks, so it is safe between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let flags = libc::MS_REC | libc::MS_SLAVE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_tuple("1.0.2-dev") < version_tuple("1.2.0"));
        assert!(version_tuple("1.10.0") > version_tuple("1.2.0"));
        assert_eq!(version_tuple("1.2.0"), (1, 2, 0, true));
        assert!(version_tuple("1.0.2-dev") < version_tuple("1.0.2"));
    }

    #[test]
    fn error_line_skips_a_trailing_backtrace() {
        let stderr = "ERROR youki: failed\n\nCaused by:\n    0: serde failed\n    1: no variant for CAP_X\n\nStack backtrace:\n   0: <unknown>\n   9: <unknown>\nError: oci spec error\n\nCaused by:\n    0: serde failed\n    1: no variant for CAP_X\n\nStack backtrace:\n   0: <unknown>\n";
        assert_eq!(
            one_error_line(stderr).unwrap(),
            "Error: oci spec error: 1: no variant for CAP_X"
        );
    }

    #[test]
    fn error_line_is_last_non_empty_stderr_line() {
        let out = Output {
            success: false,
            code: Some(1),
            stdout: String::new(),
            stderr: "a\nboom\n\n".into(),
        };
        assert_eq!(out.error_line(), "boom");
    }
}
