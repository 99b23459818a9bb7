//! The leak audit: after a container is gone, nothing of it may remain — no mount, cgroup, state entry or process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runtime::Runtime;

/// Characters a container id may contain; an occurrence of an id only counts when not glued to more of them,
/// so `ct-1-1-x` is not found inside `ct-1-1-xy`.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')
}

/// Whether `hay` contains `id` as a whole token.
pub fn contains_token(hay: &str, id: &str) -> bool {
    hay.match_indices(id).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + id.len()..].chars().next();
        !before.is_some_and(is_id_char) && !after.is_some_and(is_id_char)
    })
}

/// Whether the cgroup directory named `name` is `id`'s: the id as a whole token (the cgroupfs drivers' `…/<id>`,
/// or `<id>` inside an engine's name), or a systemd scope `<prefix>-<id>.scope` (the systemd driver's unit for
/// `slice:prefix:<id>`, runc's `getUnitName`), where `-` and `.` glue the id to its neighbours so that the token
/// match misses it. The prefix must be there: `-<id>.scope` alone names no unit of ours. Or carte's cgroupfs default
/// `carte-<id>`, which the token match misses for the same reason.
pub fn cgroup_name_is(name: &str, id: &str) -> bool {
    contains_token(name, id)
        || name.strip_prefix("carte-") == Some(id)
        || name
            .strip_suffix(".scope")
            .and_then(|unit| unit.strip_suffix(id))
            .and_then(|prefix| prefix.strip_suffix('-'))
            .is_some_and(|prefix| !prefix.is_empty())
}

/// Whether a `/proc/PID/cgroup` text puts the process in a cgroup of `id`'s (any component of any line).
fn in_cgroup_of(proc_cgroup: &str, id: &str) -> bool {
    proc_cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|path| path.split('/').any(|c| cgroup_name_is(c, id)))
}

/// Everything `id` (or the watched `dirs`) left behind. Processes and cgroups get up to `grace` to disappear,
/// because a killed init is reaped by the host's pid 1 asynchronously.
pub fn leaks(rt: &Runtime, id: &str, dirs: &[PathBuf], grace: Duration) -> Vec<String> {
    let mut found = Vec::new();
    let mut slow = Vec::new();
    let mut first: Option<Vec<String>> = None;
    let started = std::time::Instant::now();
    crate::poll_until(grace, || {
        slow = processes(id);
        slow.extend(
            crate::cgroups::dirs_matching(id)
                .iter()
                .map(|d| format!("cgroup {}", d.display())),
        );
        first.get_or_insert_with(|| slow.clone());
        slow.is_empty()
    });
    if std::env::var_os("CARTE_TEST_TRACE").is_some() {
        eprintln!("[audit {id}] waited {:?} for {first:?}", started.elapsed());
    }
    found.append(&mut slow);
    let state = rt.root().join(id);
    if state.exists() {
        found.push(format!("state entry {}", state.display()));
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in text.lines() {
        if contains_token(line, id) || dirs.iter().any(|d| line_mentions_dir(line, d)) {
            found.push(format!("mount `{line}`"));
        }
    }
    found
}

fn line_mentions_dir(line: &str, dir: &Path) -> bool {
    let d = dir.display().to_string();
    line.match_indices(&d).any(|(i, _)| {
        let after = line[i + d.len()..].chars().next();
        matches!(after, None | Some('/') | Some(' '))
    })
}

/// After a leak has been reported, removes what it can so one failing test does not poison the machine:
/// SIGKILLs processes tied to `id` (the id is unique to this test run) and removes its empty cgroup dirs.
pub fn scrub(id: &str) {
    for pid in process_ids(id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // A killed task keeps its cgroup busy until its parent (often the host's pid 1) reaps it: retry. The
    // sub-cgroups a test made inside (whose names do not carry the id) go too, thawed first so their tasks die.
    crate::poll_until(Duration::from_secs(5), || {
        let mut dirs: Vec<PathBuf> = crate::cgroups::dirs_matching(id)
            .iter()
            .flat_map(|d| crate::cgroups::subtree(d))
            .collect();
        // Children before parents.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.dedup();
        for d in &dirs {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        }
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        crate::cgroups::dirs_matching(id).is_empty()
    });
}

fn process_ids(id: &str) -> Vec<i32> {
    processes(id)
        .iter()
        .filter_map(|p| p.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Processes whose cmdline or cgroup membership mentions `id`, as `process <pid> `<cmdline>``.
pub fn processes(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if reaped_by_host_init(&e.path()) {
            continue;
        }
        if contains_token(&cmdline, id) || in_cgroup_of(&cgroup, id) {
            found.push(format!("process {name} `{}`", cmdline.trim()));
        }
    }
    found
}

/// A zombie already handed to the host's pid 1 holds nothing but its pid and is reaped when pid 1 gets to it
/// (here in up to ~2 s); a zombie with any other parent is an unreaped child, which is a leak.
fn reaped_by_host_init(proc_dir: &Path) -> bool {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
    // Fields after the parenthesised comm: state, ppid, …
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let mut fields = rest.split_whitespace();
    matches!((fields.next(), fields.next()), (Some("Z"), Some("1")))
}

/// Host mounts at or below any of `dirs`.
pub fn mounts_under(dirs: &[PathBuf]) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    crate::mountinfo::parse(&text)
        .into_iter()
        .filter(|m| {
            dirs.iter()
                .any(|d| Path::new(&m.mount_point).starts_with(d))
        })
        .map(|m| m.mount_point)
        .collect()
}

/// Lazily detaches every host mount below `dirs` (deepest first) and reports each one: a test that mounted
/// something there and did not clean up has leaked it.
pub fn detach_mounts_under(dirs: &[PathBuf]) -> Vec<String> {
    let mut points = mounts_under(dirs);
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in &points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    points
        .into_iter()
        .map(|p| format!("mount on {p} (detached)"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_match_respects_boundaries() {
        assert!(contains_token("/sys/fs/cgroup/ct-1-1-x/x", "ct-1-1-x"));
        assert!(contains_token("runc init ct-1-1-x", "ct-1-1-x"));
        assert!(!contains_token("ct-1-1-xy", "ct-1-1-x"));
        assert!(!contains_token("act-1-1-x", "ct-1-1-x"));
        assert!(!contains_token("ct-1-11-x", "ct-1-1-x"));
    }

    #[test]
    fn systemd_scopes_are_found_by_their_unit_name() {
        let id = "ct-1-1-x";
        for hit in [
            "ct-1-1-x",
            "carte-ct-1-1-x",
            "carte-ct-1-1-x.scope",
            "cri-containerd-ct-1-1-x.scope",
        ] {
            assert!(cgroup_name_is(hit, id), "{hit}");
        }
        // The token match alone misses a scope: `-` and `.` are id characters.
        assert!(!contains_token("carte-ct-1-1-x.scope", id));
        for miss in [
            "carte-ct-1-1-xy.scope",
            "carte-ct-1-11-x.scope",
            "carte-act-1-1-x.scope",
            "-ct-1-1-x.scope",
            "ct-1-1-x.scope.d",
            "carte-ct-1-1-x.slice",
            "carte-ct-1-1-x-y.scope",
            "carte-ct-1-1-xy",
            "crate-ct-1-1-x",
        ] {
            assert!(!cgroup_name_is(miss, id), "{miss}");
        }
        let proc_cgroup = "0::/system.slice/carte-ct-1-1-x.scope\n";
        assert!(in_cgroup_of(proc_cgroup, id));
        assert!(in_cgroup_of("4:memory:/carte/ct-1-1-x\n", id));
        assert!(in_cgroup_of("4:memory:/carte-ct-1-1-x\n", id));
        assert!(!in_cgroup_of(
            "0::/system.slice/carte-ct-1-1-xy.scope\n",
            id
        ));
        // The controller field is not a path: an id there is no cgroup.
        assert!(!in_cgroup_of("1:name=ct-1-1-x:/\n", id));
    }
}
