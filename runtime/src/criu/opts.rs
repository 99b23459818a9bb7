//! The flags `checkpoint` and `restore` share (runc's names and meanings), flattened into both
//! verbs' clap structs, and what they ask of criu.

use super::Command;
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
pub struct CriuArgs {
    /// Directory of criu's image files (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's work files and log (default: the image directory)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// soft, full, strict or ignore (criu's default: soft)
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create the namespace at restore without restoring its properties (only "network")
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Restore memory lazily (not supported by carte)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

impl CriuArgs {
    /// Refuse what carte does not do and words criu does not know, before anything is done;
    /// the cgroup mode.
    pub fn check(&self, verb: &str) -> Result<Option<&'static str>> {
        if self.lazy_pages {
            return Err(Error::Usage(format!(
                "{verb} --lazy-pages: not supported by carte"
            )));
        }
        // runc knows only "network" (always on for carte and runc, see `add_to`).
        if let Some(w) = self.empty_ns.iter().find(|w| w.as_str() != "network") {
            return Err(Error::Usage(format!(
                "--empty-ns {w:?}: only \"network\" is supported"
            )));
        }
        super::cgroup_mode(self.manage_cgroups_mode.as_deref())
    }

    /// The options both verbs pass to criu.
    pub fn add_to(&self, cmd: &mut Command, mode: Option<&str>) {
        cmd.flag(self.tcp_established, "tcp-established")
            .flag(self.ext_unix_sk, "ext-unix-sk")
            .flag(self.shell_job, "shell-job")
            .flag(self.file_locks, "file-locks")
            .flag(self.auto_dedup, "auto-dedup")
            // runc does not manage network devices: the network namespace is restored empty
            // unless it is external (given by path), and so is carte's (runc's criuOptions).
            .opt("empty-ns", "net");
        // An optional argument: criu's getopt wants it in the same word.
        match mode {
            Some(m) => cmd.flag(true, &format!("manage-cgroups={m}")),
            None => cmd.flag(true, "manage-cgroups"),
        };
    }
}

#[cfg(test)]
mod tests {

    /// The flattened flags clash with no flag of either verb or the global ones (clap checks it only in
    /// debug builds, at parse time).
    #[test]
    fn the_verbs_parse_the_shared_flags() {
        use clap::{CommandFactory, Parser};
        crate::cli::Cli::command().debug_assert();
        for verb in ["checkpoint", "restore"] {
            let cli = crate::cli::Cli::try_parse_from([
                "carte",
                verb,
                "--image-path",
                "/i",
                "--tcp-established",
                "--empty-ns",
                "network",
                "c1",
            ]);
            assert!(cli.is_ok(), "{verb}: {cli:?}");
        }
    }
}
