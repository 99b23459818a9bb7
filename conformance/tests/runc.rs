//! Keeps the suite itself honest: a quick subset must pass against runc (the reference), a runtime that
//! cannot create anything must fail every case and the exit status, and bad selections must be refused.
//! Root-only parts print a message and return when not root or when runc is absent.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const HARNESS: &str = env!("CARGO_BIN_EXE_carte-conformance");

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn runc() -> Option<PathBuf> {
    [
        "/usr/sbin/runc",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/local/bin/runc",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Build the static probe once per test process, into its own target dir (the outer cargo holds the lock on
/// ours), exactly as README.md tells users to.
fn static_probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let target = Path::new(HARNESS)
                .parent()
                .and_then(Path::parent)
                .unwrap()
                .join("probe-static");
            let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--release",
                    "-p",
                    "carte-conformance",
                    "--bin",
                    "carte-probe",
                    "--target",
                    &triple,
                ])
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo to build the static probe");
            assert!(status.success(), "building the static probe failed");
            target.join(triple).join("release/carte-probe")
        })
        .clone()
}

fn harness(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(HARNESS)
        .args(args)
        .output()
        .expect("run carte-conformance");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn quick_subset_passes_against_runc() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(runc) = runc() else {
        eprintln!("skipped: runc not installed");
        return;
    };
    let probe = static_probe();
    let filter = "lifecycle.state.created,lifecycle.create.not-started,lifecycle.unknown-id,lifecycle.delete.running,\
                  hooks.args-env,config.process.env,config.process.capabilities,linux.ns.pid,linux.maskedPaths,\
                  cgroups.memory.limit";
    let (code, report, stderr) = harness(&[
        "--runtime",
        runc.to_str().unwrap(),
        "--probe",
        probe.to_str().unwrap(),
        "--filter",
        filter,
        "--format",
        "json",
    ]);
    let cases = report["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("no JSON report; stderr: {stderr}"));
    // Substring filters: `config.process.capabilities` also selects `.ambient`.
    assert_eq!(cases.len(), 11, "the filter selects eleven cases");
    for c in cases {
        assert_eq!(
            c["results"][0]["result"], "pass",
            "{} against runc: {}",
            c["id"], c["results"][0]
        );
    }
    assert_eq!(report["runtimes"][0]["passed"], 11);
    assert_eq!(code, 0, "exit status with every case passing");
}

#[test]
fn broken_runtime_fails_every_case_and_the_exit_status() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("broken-runtime");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'broken-runtime: refusing everything' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let probe = static_probe();
    let (code, report, stderr) = harness(&[
        "--runtime",
        fake.to_str().unwrap(),
        "--probe",
        probe.to_str().unwrap(),
        "--filter",
        "lifecycle.unknown-id,lifecycle.create.bad-root,config.process.args",
        "--format",
        "json",
    ]);
    let cases = report["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("no JSON report; stderr: {stderr}"));
    assert_eq!(cases.len(), 3);
    for c in cases {
        let cell = &c["results"][0];
        assert_eq!(cell["result"], "fail", "{}: {cell}", c["id"]);
        assert!(
            cell["reason"]
                .as_str()
                .unwrap()
                .contains("refusing everything"),
            "{}: {cell}",
            c["id"]
        );
    }
    assert_eq!(
        code, 1,
        "the first runtime failed cases, so the exit status is 1"
    );
}

#[test]
fn list_and_bad_selection() {
    let out = Command::new(HARNESS).arg("--list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 50, "every case is listed");
    assert!(text.contains("lifecycle.state.created"));

    let out = Command::new(HARNESS)
        .args(["--list", "--filter", "no-such-case"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    assert!(err.contains("no case id contains"), "{err}");

    let out = Command::new(HARNESS).output().unwrap();
    assert!(!out.status.success(), "--runtime is required");
}
