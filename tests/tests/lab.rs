//! `docs/lab.md` is executable: every `console` block's `$ ` commands run in order in one bash, and the lines the
//! lab shows under a command must appear in its output, in order (`<...>` matches anything, `...` lines are
//! skipped, runs of spaces count as one). `# fails` marks a command that must exit non-zero.
//!
//! The lab's container names `web` and `peer` are replaced by unique ids, `carte` by a wrapper that adds this
//! test's `--root`, and `carte-bundle unpack --net` gets the same root for its hooks.

use carte_tests::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One command of the lab and what it must print.
#[derive(Debug, PartialEq)]
struct Step {
    command: String,
    expect: Vec<String>,
    fails: bool,
}

/// The `$ ` commands of every ```console block, with the lines shown under each.
fn steps(markdown: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut in_console = false;
    for line in markdown.lines() {
        let t = line.trim_end();
        if t.starts_with("```") {
            in_console = !in_console && t == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = t.strip_prefix("$ ") {
            let (command, fails) = match cmd.strip_suffix("# fails") {
                Some(c) => (c.trim_end().to_string(), true),
                None => (cmd.to_string(), false),
            };
            out.push(Step {
                command,
                expect: Vec::new(),
                fails,
            });
        } else if let Some(step) = out.last_mut() {
            if t.trim() != "..." && !t.trim().is_empty() {
                step.expect.push(t.to_string());
            }
        }
    }
    out
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `line` matches `pattern`, where `<...>` (any text in angle brackets without spaces) is a wildcard.
fn matches(pattern: &str, line: &str) -> bool {
    let (pattern, line) = (squash(pattern), squash(line));
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = pattern.as_str();
    while let Some(start) = rest.find("<...>") {
        parts.push(&rest[..start]);
        rest = &rest[start + 5..];
    }
    parts.push(rest);
    if parts.len() == 1 {
        return line == pattern;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || !line[first.len()..].ends_with(last) {
        return false;
    }
    let mut pos = first.len();
    let end = line.len() - last.len();
    for mid in &parts[1..parts.len() - 1] {
        match line[pos..end].find(mid) {
            Some(i) => pos += i + mid.len(),
            None => return false,
        }
    }
    pos <= end
}

/// The expected lines that are missing from `output`, matched in order.
fn missing(expect: &[String], output: &str) -> Vec<String> {
    let mut lines = output.lines();
    let mut miss = Vec::new();
    for e in expect {
        if !lines.any(|l| matches(e, l)) {
            miss.push(e.clone());
            // Restart so that later lines are still reported against the whole output.
            lines = output.lines();
        }
    }
    miss
}

/// Replaces the lab's container names, as whole tokens, by this run's ids.
fn rename(text: &str, names: &[(&str, String)]) -> String {
    let mut s = text.to_string();
    for (name, id) in names {
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find(name) {
            let before = rest[..i]
                .chars()
                .next_back()
                .or_else(|| out.chars().next_back());
            let after = rest[i + name.len()..].chars().next();
            out.push_str(&rest[..i]);
            let glued = |c: Option<char>| {
                c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            // `carte-<name>` is carte's default cgroup of the container: renamed with it.
            let cgroup = rest[..i].ends_with("carte-") || (i == 0 && out.ends_with("carte-"));
            if (glued(before) && !cgroup) || glued(after) || after == Some('.') {
                out.push_str(name);
            } else {
                out.push_str(id);
            }
            rest = &rest[i + name.len()..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

fn write_exec(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        panic!("write {}: {e}", path.display());
    }
    if let Err(e) =
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
    {
        panic!("chmod {}: {e}", path.display());
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

#[test]
fn the_lab_parser_reads_commands_expectations_and_failures() {
    let md =
        "text\n```sh\n$ not run\n```\n```console\n$ a one\nout <...>\n...\n$ b # fails\nerr\n```\n";
    assert_eq!(
        steps(md),
        vec![
            Step {
                command: "a one".into(),
                expect: vec!["out <...>".into()],
                fails: false
            },
            Step {
                command: "b".into(),
                expect: vec!["err".into()],
                fails: true
            },
        ]
    );
    assert!(matches("PID USER COMMAND", "  PID   USER     COMMAND"));
    assert!(matches(
        "<...>: veth<...>@if2: <...> master carte0 <...>",
        "7: vethab@if2: <UP> mtu 1500 master carte0 state UP"
    ));
    assert!(!matches("inet 10.89.0.<...>/24", "inet 10.88.0.3/24"));
    assert!(!matches("a<...>b", "ab-no"));
    assert!(matches("max", "max"));
    assert_eq!(
        missing(&["b".into(), "a".into()], "a\nb\n"),
        vec!["a".to_string()]
    );
    let names = [("web", "ct-1-web".to_string())];
    assert_eq!(
        rename(
            "carte state web; cat $LAB/web.pid /carte/web webserver",
            &names
        ),
        "carte state ct-1-web; cat $LAB/web.pid /carte/ct-1-web webserver"
    );
    assert_eq!(
        rename("pids:/carte-web; cat carte-web/pids.max my-web", &names),
        "pids:/carte-ct-1-web; cat carte-ct-1-web/pids.max my-web"
    );
}

#[test]
fn the_lab_runs_as_written() {
    let Some(ctx) = Ctx::new() else { return };
    if !is_carte() {
        eprintln!("skipped: the lab is written for carte");
        return;
    }
    let ws = workspace();
    let images = ws.join("target/images");
    let bundle_bin = runtime_bin().with_file_name("carte-bundle");
    let image = images.join("busybox-oci.tar");
    assert!(
        image.exists(),
        "{} missing: run tests/images.sh target/images",
        image.display()
    );
    assert!(
        bundle_bin.exists(),
        "{} missing: build carte-bundle",
        bundle_bin.display()
    );
    let md = std::fs::read_to_string(ws.join("docs/lab.md"))
        .unwrap_or_else(|e| panic!("read docs/lab.md: {e}"));
    let names = [("web", ctx.id("web")), ("peer", ctx.id("peer"))];
    let steps = steps(&rename(&md, &names));
    assert!(
        steps.len() > 20,
        "the lab has only {} commands",
        steps.len()
    );

    let bin = ctx.tempdir();
    let lab = ctx.tempdir();
    let root = ctx.rt.root().display().to_string();
    write_exec(
        &bin.join("carte"),
        &format!(
            "#!/bin/sh\nexec {} --root {root} \"$@\"\n",
            runtime_bin().display()
        ),
    );
    // `--net-root` goes right after `unpack`: everything after `--args` is the container's command.
    write_exec(
        &bin.join("carte-bundle"),
        &format!(
            "#!/bin/sh\nif [ \"$1\" = unpack ]; then shift; set -- unpack --net-root {root} \"$@\"; fi\nexec {} \"$@\"\n",
            bundle_bin.display()
        ),
    );
    let mut script = String::from("set +e\n");
    for (i, s) in steps.iter().enumerate() {
        script.push_str(&format!(
            "echo '@@step {i}'\n{{ {}\n}} 2>&1\necho \"@@rc $?\"\n",
            s.command
        ));
    }
    let out_file = lab.join("lab.out");
    let out = std::fs::File::create(&out_file).unwrap_or_else(|e| panic!("{e}"));
    let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env("LAB", &lab)
        .env("IMAGES", &images)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn bash: {e}"));
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the lab did not finish in 240 s: {}",
                std::fs::read_to_string(&out_file).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&out_file).unwrap_or_default();
    let mut problems = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let start = format!("@@step {i}\n");
        let chunk = text
            .split(&start)
            .nth(1)
            .and_then(|c| c.split("@@rc ").next().map(str::to_string));
        let rc: Option<i32> = text
            .split(&start)
            .nth(1)
            .and_then(|c| c.split("@@rc ").nth(1))
            .and_then(|r| r.lines().next())
            .and_then(|r| r.trim().parse().ok());
        let (Some(chunk), Some(rc)) = (chunk, rc) else {
            problems.push(format!("$ {}: never ran", s.command));
            continue;
        };
        if s.fails != (rc != 0) {
            problems.push(format!("$ {}: exit {rc}\n{chunk}", s.command));
        }
        let miss = missing(&s.expect, &chunk);
        if !miss.is_empty() {
            problems.push(format!("$ {}: missing {miss:?} in\n{chunk}", s.command));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/lab.md broke:\n{}",
        problems.join("\n")
    );
}
