//! OCI hooks: run one list (prestart, createRuntime, createContainer, startContainer, poststart,
//! poststop) with the container state on stdin, the hook's own args and env (or, when it names
//! none, the environment runc would give it), and its timeout.
//! Which process runs a list (and so in which namespaces it runs) is the caller's choice, as the
//! spec assigns it.

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

/// The environment of a hook whose config has no `env`. runc runs hooks with Go's `exec.Cmd`,
/// whose nil `Env` means the caller's own environment: the runtime's for the hooks the runtime
/// runs, and, for createContainer and startContainer, that of runc's init, which by then has
/// cleared its own and loaded `process.env` (runc 1.1 `init_linux.go` `populateProcessEnvironment`;
/// HOME is added before startContainer). A present but empty `"env": []` is an empty environment
/// there as here (a non-nil empty slice in Go).
#[derive(Clone, Copy)]
pub enum Inherit<'a> {
    /// carte's own environment.
    Runtime,
    /// The container process's environment, `NAME=value` entries.
    Process(&'a [CString]),
}

/// Run the hooks of one kind in order; the first failure stops the list and is returned.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    run_all_inheriting(kind, hooks, state_json, Inherit::Runtime)
}

/// `run_all` for the hooks run inside the container, which inherit `inherit` (see [`Inherit`]).
pub fn run_all_inheriting(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state_json: &str,
    inherit: Inherit,
) -> Result<()> {
    for h in hooks.map(|v| v.as_slice()).unwrap_or_default() {
        log::debug!("hook {kind}: run {}", h.path().display());
        run_one(kind, h, state_json, inherit)?;
    }
    Ok(())
}

/// Every hook of the list, a failure logged as a warning and the rest run anyway: runtime.md's
/// rule for poststart and poststop ("the runtime MUST log a warning, but the remaining hooks and
/// lifecycle continue as if the hook had succeeded"). runc 1.1 instead fails `create` on a
/// poststart failure and stops a poststop list at its first failure; crun follows the spec.
pub fn run_all_warning(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for h in hooks.map(|v| v.as_slice()).unwrap_or_default() {
        log::debug!("hook {kind}: run {}", h.path().display());
        if let Err(e) = run_one(kind, h, state_json, Inherit::Runtime) {
            log::warn!("{e}");
        }
    }
}

fn hook_err(kind: &str, h: &Hook, reason: String) -> Error {
    Error::Hook {
        kind: kind.into(),
        path: h.path().display().to_string(),
        reason,
    }
}

fn run_one(kind: &str, h: &Hook, state_json: &str, inherit: Inherit) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1));
    }
    match (h.env(), inherit) {
        (Some(env), _) => {
            cmd.env_clear();
            for kv in env {
                if let Some((k, v)) = kv.split_once('=') {
                    cmd.env(k, v);
                }
            }
        }
        (None, Inherit::Runtime) => {}
        (None, Inherit::Process(env)) => {
            cmd.env_clear();
            for kv in env {
                let kv = kv.to_string_lossy();
                if let Some((k, v)) = kv.split_once('=') {
                    cmd.env(k, v);
                }
            }
        }
    }
    // Hooks must not be able to hold carte's stdout (containerd waits for it to close).
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| hook_err(kind, h, format!("start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that exits without reading its stdin gives EPIPE: not an error in itself.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let pidfd = crate::sys::pidfd_open(child.id() as i32)
        .map_err(|e| hook_err(kind, h, format!("pidfd_open: {e}")))?;
    let timeout_ms = match h.timeout() {
        Some(t) if t > 0 => (t as i32).saturating_mul(1000),
        Some(_) => {
            return Err(hook_err(
                kind,
                h,
                "timeout must be greater than zero".into(),
            ))
        }
        None => -1,
    };
    let mut fds = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let timeout = if timeout_ms < 0 {
        nix::poll::PollTimeout::NONE
    } else {
        nix::poll::PollTimeout::try_from(timeout_ms).unwrap_or(nix::poll::PollTimeout::MAX)
    };
    let ready = loop {
        match nix::poll::poll(&mut fds, timeout) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(hook_err(kind, h, format!("poll: {e}"))),
        }
    };
    if ready == 0 {
        let _ = child.kill();
        let _ = child.wait();
        return Err(hook_err(
            kind,
            h,
            format!("timed out after {} s", timeout_ms / 1000),
        ));
    }
    let st = child
        .wait()
        .map_err(|e| hook_err(kind, h, format!("wait: {e}")))?;
    match (st.code(), st.signal()) {
        (Some(0), _) => Ok(()),
        (Some(c), _) => Err(hook_err(kind, h, format!("exited with status {c}"))),
        (_, Some(s)) => Err(hook_err(kind, h, format!("killed by signal {s}"))),
        _ => Err(hook_err(kind, h, "ended abnormally".into())),
    }
}
