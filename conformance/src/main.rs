//! `carte-conformance`: parse the command line, build the shared rootfs template, run every selected case
//! against every runtime on a small worker pool, clean up, print one report, and set the exit status.

mod bundle;
mod case;
mod cases;
mod console;
mod report;
mod runtime;

use anyhow::{bail, Context, Result};
use case::{Case, Ctx, Outcome};
use clap::{Parser, ValueEnum};
use runtime::Runtime;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Tap,
    Json,
}

/// Check OCI runtimes against the runtime spec from the outside and print one table.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Runtime binary (path or name on $PATH); repeat for more columns. `masked:PATH` runs it in a private
    /// mount namespace with /sys/fs/cgroup/unified/cgroup.controllers hidden (crun on a hybrid host).
    #[arg(
        long = "runtime",
        value_name = "PATH",
        required_unless_present = "list"
    )]
    runtimes: Vec<String>,
    /// Only cases whose id contains PATTERN (repeat or comma-separate for several).
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    filter: Vec<String>,
    /// Cases run in parallel (each has its own bundle, --root and container ids).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// The static probe binary (default: $CARTE_PROBE, else the static build next to this binary or in target/).
    #[arg(long, value_name = "PATH")]
    probe: Option<PathBuf>,
    /// Static busybox for the rootfs.
    #[arg(long, value_name = "PATH", default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// Seconds one case may take against one runtime.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// List the cases (id, section, requirement; tab-separated) and exit.
    #[arg(long)]
    list: bool,
    /// A case the first runtime is known to deviate from, on purpose (say why in the caller): its
    /// failure is still shown, but does not make the exit status non-zero. Repeatable.
    #[arg(long = "allow-fail", value_name = "CASE")]
    allow_fail: Vec<String>,
    /// Print each result to stderr as it completes.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("carte-conformance: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Ok(true) when the first runtime failed no case.
fn run(cli: Cli) -> Result<bool> {
    let cases = select(cases::all(), &cli.filter)?;
    if cli.list {
        for c in &cases {
            println!("{}\t{}\t{}", c.id, c.section, c.what);
        }
        return Ok(true);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("run as root: the suite creates containers with real namespaces, mounts and cgroups");
    }
    let scratch = tempfile::Builder::new()
        .prefix("carte-conformance-")
        .tempdir()
        .context("create scratch directory")?;
    // Mapped users in the user-namespace case must be able to reach the bundles.
    set_mode(scratch.path(), 0o755)?;
    let probe = find_probe(cli.probe.as_deref())?;
    let template = bundle::Template::build(scratch.path(), &cli.busybox, &probe)?;
    let runtimes = cli
        .runtimes
        .iter()
        .map(|r| Runtime::parse(r, scratch.path()))
        .collect::<Result<Vec<_>>>()?;
    let jobs = cli
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    let budget = Duration::from_secs(cli.timeout);
    let preflight: Vec<Option<String>> = runtimes
        .iter()
        .enumerate()
        .map(|(ri, rt)| preflight(rt, &template, scratch.path(), ri, budget))
        .collect();
    let results = execute(
        &cases,
        &runtimes,
        &preflight,
        &template,
        scratch.path(),
        jobs,
        budget,
        cli.verbose,
    );
    sweep_cgroup_parents();
    let text = match cli.format {
        Format::Table => report::table(&cases, &runtimes, &results),
        Format::Tap => report::tap(&cases, &runtimes, &results),
        Format::Json => report::json(&cases, &runtimes, &results),
    };
    print!("{text}");
    let mut unexpected = 0;
    for (case, row) in cases.iter().zip(&results) {
        if let Some(case::Outcome::Fail(_)) = row.first() {
            if cli.allow_fail.contains(&case.id) {
                eprintln!(
                    "carte-conformance: {}: failure allowed (--allow-fail)",
                    case.id
                );
            } else {
                unexpected += 1;
            }
        }
    }
    Ok(unexpected == 0)
}

fn select(all: Vec<Case>, filters: &[String]) -> Result<Vec<Case>> {
    let picked: Vec<Case> = all
        .into_iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.id.contains(f.as_str())))
        .collect();
    if picked.is_empty() {
        bail!(
            "select cases: no case id contains {:?} (see --list)",
            filters
        );
    }
    Ok(picked)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod `{}`", path.display()))
}

/// `--probe`, then `$CARTE_PROBE`, then the documented static build locations.
fn find_probe(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CARTE_PROBE") {
        return Ok(PathBuf::from(p));
    }
    // The static build goes through `--target <host triple>`, so it lands in target/<triple>/release.
    let built = format!(
        "{}-unknown-linux-gnu/release/carte-probe",
        std::env::consts::ARCH
    );
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/carte-conformance → target/<triple>/release/carte-probe
        if let Some(target) = exe.parent().and_then(Path::parent) {
            candidates.push(target.join(&built));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(&built),
    );
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        "find the probe: none at --probe, $CARTE_PROBE or target/<triple>/release/carte-probe; build it with \
         RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p carte-conformance --bin carte-probe \
         --target x86_64-unknown-linux-gnu"
            .to_string()
    })
}

/// Can the runtime run the probe at all? If not, every case fails with that one reason: otherwise the negative
/// cases ("create must fail when…") would pass for a runtime that cannot create anything.
fn preflight(
    rt: &Runtime,
    template: &bundle::Template,
    scratch: &Path,
    ri: usize,
    budget: Duration,
) -> Option<String> {
    let dir = scratch.join(format!("preflight{ri}"));
    let result = (|| -> Result<()> {
        std::fs::create_dir_all(&dir).with_context(|| format!("create `{}`", dir.display()))?;
        set_mode(&dir, 0o755)?;
        let ctx = Ctx::new(rt, template, dir.clone(), format!("pre{ri}"), budget)?;
        ctx.probe_with(&[], |_| {})?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.err().map(|e| format!("{e:#}"))
}

#[allow(clippy::too_many_arguments)]
fn execute(
    cases: &[Case],
    runtimes: &[Runtime],
    preflight: &[Option<String>],
    template: &bundle::Template,
    scratch: &Path,
    jobs: usize,
    budget: Duration,
    verbose: bool,
) -> report::Results {
    let results = Mutex::new(vec![
        vec![Outcome::Skip("not run".into()); runtimes.len()];
        cases.len()
    ]);
    let next = AtomicUsize::new(0);
    let total = cases.len() * runtimes.len();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(total) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let (ci, ri) = (i / runtimes.len(), i % runtimes.len());
                let outcome = match &preflight[ri] {
                    Some(why) => {
                        Outcome::Fail(format!("cannot run a basic container on this host: {why}"))
                    }
                    None => run_one(
                        &cases[ci],
                        &runtimes[ri],
                        template,
                        scratch,
                        format!("c{ci}r{ri}"),
                        budget,
                    ),
                };
                if verbose {
                    eprintln!("{} [{}]: {outcome:?}", cases[ci].id, runtimes[ri].label);
                }
                if let Ok(mut r) = results.lock() {
                    r[ci][ri] = outcome;
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn run_one(
    case: &Case,
    rt: &Runtime,
    template: &bundle::Template,
    scratch: &Path,
    tag: String,
    budget: Duration,
) -> Outcome {
    if let Some(min) = case.min_spec {
        if rt.spec_older_than(min) {
            return Outcome::Skip(format!(
                "needs spec {min}; runtime implements {}",
                rt.spec_version.as_deref().unwrap_or("?")
            ));
        }
    }
    let dir = scratch.join(&tag);
    let tag_for_sweep = tag.clone();
    let outcome = (|| -> Result<Outcome> {
        std::fs::create_dir_all(&dir).with_context(|| format!("create `{}`", dir.display()))?;
        set_mode(&dir, 0o755)?;
        let ctx = Ctx::new(rt, template, dir.clone(), tag, budget)?;
        (case.run)(&ctx)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    sweep_case_cgroups(&format!("cc-{tag_for_sweep}-{}-", std::process::id()));
    match outcome {
        Ok(o) => o,
        Err(e) => Outcome::Fail(format!("{e:#}")),
    }
}

/// Some runtimes leave an (empty) cgroup behind when create fails (crun 1.8.1 does); remove the ones named
/// after this case's container ids, at the depths runtimes use (`/ID`, `/PARENT/ID`). rmdir only: a cgroup
/// with processes or children stays.
fn sweep_case_cgroups(prefix: &str) {
    let subdirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut roots = subdirs(Path::new("/sys/fs/cgroup"));
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        for top in subdirs(&root) {
            let matches = |p: &Path| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            };
            if matches(&top) {
                let _ = std::fs::remove_dir(&top);
                continue;
            }
            for nested in subdirs(&top).into_iter().filter(|p| matches(p)) {
                let _ = std::fs::remove_dir(nested);
            }
        }
    }
}

/// The cgroupsPath case puts containers under `/carte-conformance/`; runtimes remove the leaf, we remove the
/// (then empty) parent. rmdir refuses a non-empty cgroup, so nothing of anyone else's can go.
fn sweep_cgroup_parents() {
    let Ok(dir) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let _ = std::fs::remove_dir(root.join("carte-conformance"));
    }
}
