//! Driving criu(8) for `checkpoint` and `restore`, through its command line.
//!
//! Why the command line and not `criu swrk` (the protobuf RPC runc and crun speak): every option
//! runc sets over RPC has a flag (`--ext-mount-map`, `--external`, `--inherit-fd`, `--cgroup-root`,
//! `--freeze-cgroup`, `--manage-cgroups=MODE`, `--empty-ns`, `--join-ns`…), so the CLI needs no
//! protobuf code generation or dependency. What only the RPC has are its notifications: the
//! restored pid (`--pidfile` gives it), the restored init as our child (`--restore-sibling`), the
//! network lock around veths carte does not manage, the prestart hooks at `setup-namespaces`, and
//! `orphan-pts-master` (the pty master of a terminal container, sent back over the RPC socket):
//! without it a terminal container cannot be restored, so carte refuses to checkpoint one.

pub mod external;
pub mod spawn;

use crate::error::{Context, Error, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The log criu writes into the work directory (the image directory without `--work-path`), under
/// runc's names, so an engine that reads runc's logs finds carte's too.
pub const DUMP_LOG: &str = "dump.log";
pub const RESTORE_LOG: &str = "restore.log";

/// runc's name for the stdio of the init at dump time (`descriptors.json` in the image directory):
/// restore hands pipes among them back through `--inherit-fd`.
pub const DESCRIPTORS: &str = "descriptors.json";

/// The keys criu gives external namespaces; runc's (`extRootNetNS`), so images stay exchangeable.
pub const EXT_NET_KEY: &str = "extRootNetNS";
pub const EXT_PID_KEY: &str = "extRootPidNS";

/// The criu binary: `criu` from PATH, as runc finds it.
pub fn binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("criu"))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            Error::Other("find criu: no `criu` in PATH (checkpoint and restore need it)".into())
        })
}

/// `--manage-cgroups-mode`: runc's words, checked before anything is done.
pub fn cgroup_mode(mode: Option<&str>) -> Result<Option<&'static str>> {
    match mode.unwrap_or("") {
        "" => Ok(None),
        "soft" => Ok(Some("soft")),
        "full" => Ok(Some("full")),
        "strict" => Ok(Some("strict")),
        "ignore" => Ok(Some("ignore")),
        other => Err(Error::Usage(format!(
            "--manage-cgroups-mode {other:?}: use soft, full, strict or ignore"
        ))),
    }
}

/// A criu command line under construction, and where its log will be.
pub struct Command {
    pub args: Vec<OsString>,
    pub log: PathBuf,
}

impl Command {
    /// `criu ACTION -D IMAGES [-W WORK] -o LOG -v4`: runc's log level and file names.
    pub fn new(action: &str, images: &Path, work: Option<&Path>, log_name: &str) -> Command {
        let mut c = Command {
            args: vec![action.into(), "--images-dir".into(), images.into()],
            log: work.unwrap_or(images).join(log_name),
        };
        if let Some(w) = work {
            c.arg("--work-dir").arg(w);
        }
        c.arg("--log-file").arg(log_name).arg("-v4");
        c
    }

    pub fn arg(&mut self, a: impl Into<OsString>) -> &mut Command {
        self.args.push(a.into());
        self
    }

    pub fn flag(&mut self, on: bool, name: &str) -> &mut Command {
        if on {
            self.args.push(name.into());
        }
        self
    }

    /// `--ext-mount-map KEY:VALUE` for each pair.
    pub fn ext_mounts(&mut self, maps: &[(PathBuf, PathBuf)]) -> &mut Command {
        for (k, v) in maps {
            let mut s = OsString::from(k);
            s.push(":");
            s.push(v);
            self.arg("--ext-mount-map").arg(s);
        }
        self
    }

    /// The criu configuration file: runc's `org.criu.config` annotation (an empty value: none).
    pub fn config_file(&mut self, annotations: &std::collections::BTreeMap<String, String>) {
        if let Some(f) = annotations.get("org.criu.config").filter(|f| !f.is_empty()) {
            self.arg("--config").arg(f);
        }
    }

    /// What failed, in one line with criu's first error from its log (its context is logged at
    /// debug level, as runc's `logCriuErrors` quotes it).
    pub fn failed(&self, what: &str, status: impl std::fmt::Display) -> Error {
        let reason = first_error(&self.log)
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        Error::Other(format!(
            "{what}: criu {status}{reason} (log: {})",
            self.log.display()
        ))
    }
}

/// The first `Error` line of criu's log, without its timestamp; the lines before each error are
/// logged at debug level ("grep -B3 Error").
fn first_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let mut first = None;
    for (i, l) in lines.iter().enumerate() {
        // "Can't setup RLIMIT_NOFILE for self" is an Error line criu goes on from.
        if !l.contains("Error (") || l.contains("RLIMIT_NOFILE") {
            continue;
        }
        for line in &lines[i.saturating_sub(3)..=i] {
            log::debug!("{}: {line}", log.display());
        }
        if first.is_none() {
            let msg = l.find("Error (").map_or(*l, |at| &l[at..]);
            first = Some(msg.trim().to_string());
        }
    }
    first
}

/// Run criu to completion (dump, pre-dump): its stdio are ours, so its rare direct messages reach
/// the caller's stderr.
pub fn run(cmd: &Command, what: &str) -> Result<()> {
    let bin = binary()?;
    log::debug!("{what}: {} {:?}", bin.display(), cmd.args);
    let status = std::process::Command::new(&bin)
        .args(&cmd.args)
        .stdin(std::process::Stdio::null())
        .status()
        .ctx("run", bin.display())?;
    if status.success() {
        Ok(())
    } else {
        Err(cmd.failed(what, status))
    }
}

/// Create `dir` (and its parents) for criu's images or work files, mode 0700 as runc.
pub fn make_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx("create directory", dir.display())
}
