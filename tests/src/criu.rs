//! Helpers of the checkpoint/restore tests (tests/tests/checkpoint*.rs): whether criu works here, a counting
//! container whose progress the host can read, and the `checkpoint`/`restore` calls with the test's image and work
//! directories.

use crate::{poll_until, Bundle, Ctx, Out};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Whether `criu check` passes here; says why not otherwise.
pub fn criu_ready() -> bool {
    let out = Command::new("criu").arg("check").output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: `criu check` fails on this kernel: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: no criu ({e}); tests/setup.sh installs it");
            false
        }
    }
}

/// The test's context when criu works here (`None`, with the reason printed, when the test is to be skipped).
pub fn criu_ctx() -> Option<Ctx> {
    let ctx = Ctx::new()?;
    criu_ready().then_some(ctx)
}

pub fn cgroup_of(id: &str) -> String {
    format!("/carte-test/{id}")
}

/// A loop that appends 1, 2, 3… to /out/count every 0.1 s; /out is a bind mount of `out`.
pub fn counter(ctx: &Ctx, id: &str, out: &Path) -> Bundle {
    let mut b = ctx.bundle();
    b.sh("exec </dev/null >/dev/null 2>&1; i=0; while true; do i=$((i+1)); echo $i >> /out/count; sleep 0.1; done");
    b.cgroups_path(&cgroup_of(id));
    b.mount(serde_json::json!({
        "destination": "/out", "type": "bind", "source": out.display().to_string(), "options": ["rbind", "rw"]
    }));
    b
}

/// The numbers written so far (a line being written is left out).
pub fn counts(out: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(out.join("count")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

pub fn last(out: &Path) -> u64 {
    counts(out).last().copied().unwrap_or(0)
}

/// Waits until the counter in `out` has reached `n`.
#[track_caller]
pub fn wait_count(out: &Path, n: u64) {
    let ok = poll_until(Duration::from_secs(20), || last(out) >= n);
    assert!(
        ok,
        "the counter in {} did not reach {n}: {:?}",
        out.display(),
        counts(out)
    );
}

/// Each number is the previous one plus one: the process went on with its memory, it did not start again.
#[track_caller]
pub fn assert_consecutive(v: &[u64]) {
    for w in v.windows(2) {
        assert_eq!(w[1], w[0] + 1, "the count jumped or restarted: {v:?}");
    }
}

pub fn init_pid(ctx: &Ctx, id: &str) -> i64 {
    let s = ctx.rt.state(id);
    match s["pid"].as_i64() {
        Some(p) if p > 0 => p,
        _ => panic!("state of {id} has no pid: {s}"),
    }
}

pub fn cgroup_line(pid: i64, controller: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find(|l| l.split(':').nth(1) == Some(controller))
        .unwrap_or_default()
        .to_string()
}

pub fn paths(ctx: &Ctx) -> (PathBuf, PathBuf) {
    let d = ctx.tempdir();
    (d.join("images"), d.join("work"))
}

pub fn checkpoint(ctx: &Ctx, id: &str, images: &Path, work: &Path, extra: &[&str]) -> Out {
    let (i, w) = (images.display().to_string(), work.display().to_string());
    let mut args = vec!["checkpoint", "--image-path", &i, "--work-path", &w];
    args.extend_from_slice(extra);
    args.push(id);
    ctx.rt.cmd(&args)
}

pub fn restore(ctx: &Ctx, id: &str, b: &Bundle, images: &Path, work: &Path, extra: &[&str]) -> Out {
    b.write().expect("write config.json");
    let (i, w) = (images.display().to_string(), work.display().to_string());
    let mut args = vec![
        "restore",
        "-d",
        "--image-path",
        &i,
        "--work-path",
        &w,
        "--bundle",
        b.path_str(),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    ctx.rt.cmd(&args)
}

/// Runs the counter `id` detached and waits until it has counted to 3.
pub fn start_counter(ctx: &Ctx, id: &str, b: &Bundle, out: &Path) {
    ctx.rt.run(id, b, &["--detach"]).ok();
    wait_count(out, 3);
}

/// Restores the checkpointed counter `id` (detached, from `b`), and checks that it runs and counts on, one by one,
/// from where the checkpoint stopped it (nothing writes to `out` in between). The restored init's pid.
#[track_caller]
pub fn restore_counts_on(
    ctx: &Ctx,
    id: &str,
    b: &Bundle,
    out: &Path,
    images: &Path,
    work: &Path,
    extra: &[&str],
) -> i64 {
    let at_checkpoint = last(out);
    restore(ctx, id, b, images, work, extra).ok();
    assert_eq!(ctx.rt.status(id), "running");
    wait_count(out, at_checkpoint + 3);
    assert_consecutive(&counts(out));
    init_pid(ctx, id)
}

/// A counter that ran to 3 and was checkpointed (so runc's and carte's checkpoint removed it).
pub struct Checkpointed {
    pub id: String,
    pub out: PathBuf,
    pub b: Bundle,
    pub images: PathBuf,
    pub work: PathBuf,
}

/// Runs a counter named after `name`, checkpoints it, and says where everything is.
pub fn checkpointed_counter(ctx: &Ctx, name: &str) -> Checkpointed {
    let id = ctx.id(name);
    let out = ctx.tempdir();
    let b = counter(ctx, &id, &out);
    start_counter(ctx, &id, &b, &out);
    let (images, work) = paths(ctx);
    checkpoint(ctx, &id, &images, &work, &[]).ok();
    Checkpointed {
        id,
        out,
        b,
        images,
        work,
    }
}
