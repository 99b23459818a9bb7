//! Driving criu(8) for `checkpoint` and `restore`, through its RPC (`criu swrk`, as runc and crun).
//!
//! Why RPC: only it has notifications — `setup-namespaces` (the restored tree exists and none of
//! it runs: runc runs the prestart and createRuntime hooks there) and `orphan-pts-master` (the new
//! pty master of a container with a terminal, sent back over the socket for `--console-socket`);
//! the command line has neither. How: the request carries what must be RPC (`rpc::Opts`: the
//! images directory as an fd of ours, which criu 4.1 insists on; the tree to dump; the swrk-only
//! `rst_sibling`, `notify_scripts`, `orphan_pts_master`; and the list options, which criu 4.1
//! would apply twice from the file, where a second `inherit-fd` of one fd fails), encoded by hand
//! (a few fields do not earn a protobuf compiler or `prost`). Every other option travels in
//! criu's RPC configuration file, written from `Command` in criu's command-line words; criu reads
//! it after the RPC options, and the user's file (runc's `org.criu.config` annotation, else
//! /etc/criu/runc.conf) is appended to it, so it overrides carte's options as it does runc's.

pub mod external;
pub mod opts;
pub mod rpc;
pub mod spawn;
pub mod swrk;

use crate::error::{Context, Error, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The log criu writes into the work directory (the image directory without `--work-path`), under
/// runc's names, so an engine that reads runc's logs finds carte's too.
pub const DUMP_LOG: &str = "dump.log";
pub const RESTORE_LOG: &str = "restore.log";

/// runc's criu configuration file, used when the container has no `org.criu.config` annotation.
pub const RUNC_CONFIG: &str = "/etc/criu/runc.conf";

/// The RPC configuration file carte writes for criu, in the container's state directory.
pub const CONFIG: &str = "criu.conf";

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

/// Whether `criu check` (with `args`) passes: what `features` advertises. runc's
/// `org.opencontainers.runc.checkpoint.enabled` says whether it was built with criu support;
/// carte's says whether checkpoint can work here (Debian 12's criu 3.17 does not even start on
/// Linux 6.13+), and `…checkpoint.preDump` whether the kernel tracks dirty memory, without which
/// `checkpoint --pre-dump` fails.
pub fn check(args: &[&str]) -> bool {
    binary().is_ok_and(|bin| {
        std::process::Command::new(bin)
            .arg("check")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
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

/// The options of one criu run, in criu's command-line words without their dashes: they reach
/// criu as the RPC configuration file, one option a line (criu(8) "Configuration files").
pub struct Command {
    /// Passed as an fd of ours (criu 4.1 takes the images directory's name from the readlink
    /// of /proc/OURPID/fd/N: a path in the configuration file fails there).
    pub images: PathBuf,
    opts: Vec<(String, Option<OsString>)>,
    /// The user's criu configuration (runc's `org.criu.config` annotation), appended: it
    /// overrides carte's options as it overrides runc's RPC ones.
    user_config: Option<PathBuf>,
    /// Where the configuration file is written for the run (the container's state directory).
    conf: PathBuf,
    pub log: PathBuf,
    pub log_name: &'static str,
    /// What is sent over RPC: the list options (see `rpc::Opts`), the tree to dump, whether
    /// criu notifies; `swrk` fills in the images, the log and the configuration file.
    pub rpc: rpc::Opts,
}

impl Command {
    /// Images in `images`, work files and `log_name` in `work` (default: `images`); the
    /// configuration file as `conf`.
    pub fn new(images: &Path, work: Option<&Path>, log_name: &'static str, conf: &Path) -> Command {
        let mut c = Command {
            images: images.to_path_buf(),
            opts: vec![],
            user_config: None,
            conf: conf.to_path_buf(),
            log: work.unwrap_or(images).join(log_name),
            log_name,
            rpc: rpc::Opts::default(),
        };
        if let Some(w) = work {
            c.opt("work-dir", w);
        }
        c
    }

    /// `--name value`.
    pub fn opt(&mut self, name: &str, value: impl Into<OsString>) -> &mut Command {
        self.opts.push((name.into(), Some(value.into())));
        self
    }

    /// `--name` when `on` (`name=value` for criu's options with an optional argument).
    pub fn flag(&mut self, on: bool, name: &str) -> &mut Command {
        if on {
            self.opts.push((name.into(), None));
        }
        self
    }

    /// criu's `ext-mount-map KEY:VALUE` for each pair.
    pub fn ext_mounts(&mut self, maps: &[(PathBuf, PathBuf)]) -> &mut Command {
        for (k, v) in maps {
            let (k, v) = (k.to_string_lossy(), v.to_string_lossy());
            self.rpc.ext_mnt.push((k.into_owned(), v.into_owned()));
        }
        self
    }

    /// The user's criu configuration file, chosen as runc chooses it: the `org.criu.config`
    /// annotation (an empty value: none), else /etc/criu/runc.conf (so a host set up for runc
    /// checkpoints alike with carte).
    pub fn config_file(&mut self, annotations: &std::collections::BTreeMap<String, String>) {
        self.user_config = match annotations.get("org.criu.config") {
            Some(f) if f.is_empty() => None,
            Some(f) => Some(f.into()),
            None => Some(RUNC_CONFIG.into()),
        };
    }

    /// The options as one line, for the debug log.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (n, v) in &self.opts {
            s.push_str(" --");
            s.push_str(n);
            if let Some(v) = v {
                s.push(' ');
                s.push_str(&v.to_string_lossy());
            }
        }
        s
    }

    /// The configuration file's text. criu's parser takes the rest of a line as the value and
    /// has no escapes: a value it would misread (a line break, a leading quote, `#` or blank)
    /// is refused rather than passed wrong.
    fn config_text(&self) -> Result<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = vec![];
        for (n, v) in &self.opts {
            out.extend_from_slice(n.as_bytes());
            if let Some(v) = v {
                let b = v.as_bytes();
                let bad = b.contains(&b'\n')
                    || b.first()
                        .is_some_and(|c| matches!(c, b'"' | b'#' | b' ' | b'\t'));
                if bad {
                    return Err(Error::Other(format!(
                        "criu option {n} {:?}: criu's configuration file cannot carry this value",
                        v
                    )));
                }
                out.push(b' ');
                if b.is_empty() {
                    out.extend_from_slice(b"\"\"");
                } else {
                    out.extend_from_slice(b);
                }
            }
            out.push(b'\n');
        }
        // A file that does not exist is ignored, as criu ignores it for runc.
        if let Some(f) = &self.user_config {
            match std::fs::read(f) {
                Ok(text) => {
                    out.extend_from_slice(&text);
                    out.push(b'\n');
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read criu configuration", f, e)),
            }
        }
        Ok(out)
    }

    /// Write the configuration file (mode 0600); its path.
    pub fn write_config(&self) -> Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = self.config_text()?;
        let _ = std::fs::remove_file(&self.conf);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.conf)
            .ctx("create", self.conf.display())?;
        f.write_all(&text).ctx("write", self.conf.display())?;
        Ok(self.conf.clone())
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

/// Reap criu; its exit status (128 + signal when killed).
fn wait(pid: i32) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", format!("criu {pid}"), e)),
        }
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
