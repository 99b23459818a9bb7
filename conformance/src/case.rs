//! What a case is and what it may do: a per-(case, runtime) context with its own temp dir and `--root`,
//! bundle creation, and a container guard that `delete --force`s on every exit path, failures included.

use crate::bundle::{self, Template};
use crate::runtime::{Output, Runtime};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A case's verdict for one runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// One conformance case: checked against every runtime.
pub struct Case {
    /// Unique, stable id: `section.name`.
    pub id: String,
    /// The spec section the row is grouped under (e.g. `config.md: process`).
    pub section: &'static str,
    /// The requirement checked, in the spec's words (MUST/SHOULD).
    pub what: &'static str,
    /// Skip when the runtime reports an older `spec:` version than this.
    pub min_spec: Option<&'static str>,
    pub run: fn(&Ctx) -> Result<Outcome>,
}

/// Everything one case run against one runtime owns.
pub struct Ctx<'a> {
    pub rt: &'a Runtime,
    pub template: &'a Template,
    /// This run's private directory (bundles, output files, `--root`).
    pub dir: PathBuf,
    pub root: PathBuf,
    deadline: Instant,
    tag: String,
    counter: Cell<u32>,
}

/// Longest a single runtime verb may take before the case fails as a timeout.
const VERB_TIMEOUT: Duration = Duration::from_secs(20);

impl<'a> Ctx<'a> {
    pub fn new(
        rt: &'a Runtime,
        template: &'a Template,
        dir: PathBuf,
        tag: String,
        budget: Duration,
    ) -> Result<Self> {
        let root = dir.join("root");
        std::fs::create_dir_all(&root).with_context(|| format!("create `{}`", root.display()))?;
        Ok(Ctx {
            rt,
            template,
            dir,
            root,
            deadline: Instant::now() + budget,
            tag,
            counter: Cell::new(0),
        })
    }

    /// Time left for one verb: the case budget caps every wait.
    pub fn timeout(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .min(VERB_TIMEOUT)
            .max(Duration::from_millis(500))
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// A container id unique across cases, runtimes and concurrent suite runs.
    pub fn new_id(&self) -> String {
        let n = self.counter.get();
        self.counter.set(n + 1);
        format!("cc-{}-{}-{n}", self.tag, std::process::id())
    }

    /// A fresh bundle directory holding `config` and a linked rootfs.
    pub fn bundle(&self, config: &Value) -> Result<Bundle> {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let dir = self.dir.join(format!("bundle-{n}"));
        let rootfs = self.template.bundle(&dir)?;
        let b = Bundle { dir, rootfs };
        b.write_config(config)?;
        Ok(b)
    }

    /// Any verb, with this context's `--root` and deadline.
    pub fn cmd(&self, args: &[&str]) -> Result<Output> {
        self.rt.run(&self.root, args, &self.dir, self.timeout())
    }

    /// `create ID --bundle DIR`, without judging the result; stdout/stderr land in `DIR/out`, `DIR/err`.
    pub fn try_create(&self, id: &str, bundle: &Bundle) -> Result<Output> {
        self.try_create_with(id, bundle, &[])
    }

    /// `create` with extra options (e.g. `--console-socket PATH`) before the id.
    pub fn try_create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Result<Output> {
        let dir = bundle.dir.to_string_lossy();
        let (out, err) = (bundle.dir.join("out"), bundle.dir.join("err"));
        let mut args = vec!["create", "--bundle", dir.as_ref()];
        args.extend_from_slice(extra);
        args.push(id);
        self.rt
            .run_to(&self.root, &args, &self.dir, (&out, &err), self.timeout())
    }

    /// `create` that must succeed; the returned guard deletes the container whatever happens next.
    pub fn create(&'a self, bundle: &Bundle) -> Result<Container<'a>> {
        self.create_with(bundle, &[])
    }

    pub fn create_with(&'a self, bundle: &Bundle, extra: &[&str]) -> Result<Container<'a>> {
        let id = self.new_id();
        let out = self.try_create_with(&id, bundle, extra)?;
        let mut c = Container {
            ctx: self,
            id,
            out: bundle.dir.join("out"),
            err: bundle.dir.join("err"),
            init_pid: 0,
        };
        if !out.success {
            bail!("create failed: {}", out.error_line());
        }
        // Remember the pid now: once the process exits, `state` may report pid 0.
        c.init_pid = c.pid()?;
        Ok(c)
    }

    /// Run the probe with `config` (its `process.args` already set) to completion and return its report.
    pub fn probe(&'a self, config: &Value) -> Result<Value> {
        let bundle = self.bundle(config)?;
        let c = self.create(&bundle)?;
        c.start()?;
        c.wait_exit()?;
        c.report()
    }

    /// Probe with the base config edited by `edit`, running `report OPS...`.
    pub fn probe_with(&'a self, ops: &[&str], edit: impl FnOnce(&mut Value)) -> Result<Value> {
        let args = bundle::probe_args(ops);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut config = bundle::base_config(&args);
        edit(&mut config);
        self.probe(&config)
    }
}

/// A bundle directory on the host.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
}

impl Bundle {
    pub fn write_config(&self, config: &Value) -> Result<()> {
        let p = self.dir.join("config.json");
        std::fs::write(&p, serde_json::to_vec_pretty(config)?)
            .with_context(|| format!("write `{}`", p.display()))
    }
}

/// A created container; dropping it runs `delete --force` so no case leaves one behind.
pub struct Container<'a> {
    ctx: &'a Ctx<'a>,
    pub id: String,
    out: PathBuf,
    err: PathBuf,
    /// The pid `state` reported right after create.
    pub init_pid: i32,
}

impl Container<'_> {
    pub fn start(&self) -> Result<()> {
        let out = self.ctx.cmd(&["start", &self.id])?;
        if !out.success {
            // The container's own stderr often holds the real cause (e.g. the init's exec failure).
            bail!(
                "start failed: {}; container stderr: {}",
                out.error_line(),
                self.stderr_tail()
            );
        }
        Ok(())
    }

    pub fn verb(&self, verb: &str, extra: &[&str]) -> Result<Output> {
        let mut args = vec![verb];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.ctx.cmd(&args)
    }

    pub fn kill(&self, signal: &str) -> Result<Output> {
        self.ctx.cmd(&["kill", &self.id, signal])
    }

    pub fn state(&self) -> Result<Value> {
        self.ctx
            .rt
            .state(&self.ctx.root, &self.id, &self.ctx.dir, self.ctx.timeout())
    }

    pub fn status(&self) -> Result<String> {
        let s = self.state()?;
        s["status"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("state has no string `status`: {s}"))
    }

    pub fn pid(&self) -> Result<i32> {
        let s = self.state()?;
        s["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| anyhow!("state has no positive `pid`: {s}"))
    }

    /// Wait until the container's process is gone (or a zombie), watching /proc: cheaper than polling `state`.
    pub fn wait_exit(&self) -> Result<()> {
        let pid = self.init_pid;
        while process_alive(pid) {
            if self.ctx.past_deadline() {
                bail!(
                    "container process {pid} still running at the case deadline; stderr: {}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Poll `state` until it reports `want`.
    pub fn wait_status(&self, want: &str) -> Result<()> {
        loop {
            let got = self.status()?;
            if got == want {
                return Ok(());
            }
            if self.ctx.past_deadline() {
                bail!("status stayed `{got}`, expected `{want}`");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The probe's JSON report (the last stdout line).
    pub fn report(&self) -> Result<Value> {
        let text = std::fs::read_to_string(&self.out)
            .with_context(|| format!("read `{}`", self.out.display()))?;
        let line = text.lines().rev().find(|l| l.starts_with('{'));
        match line {
            Some(l) => serde_json::from_str(l).context("parse probe report"),
            None => bail!("probe printed no report; stderr: {}", self.stderr_tail()),
        }
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.err).unwrap_or_default();
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(empty)");
        line.chars().take(200).collect()
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.ctx.rt.run(
            &self.ctx.root,
            &["delete", "--force", &self.id],
            &self.ctx.dir,
            VERB_TIMEOUT,
        );
    }
}

/// Alive and not a zombie (state `Z`/`X` in /proc/PID/stat; the comm field may hold spaces, so split after `)`).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// Read a file below the host path, trimmed; `None` if absent.
pub fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_pid_zero_is_not() {
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(0));
    }
}
