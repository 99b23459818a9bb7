//! Removing a container's cgroup with everything below it, in every hierarchy: the sub-cgroups
//! its processes made through a writable cgroupfs, or the host made and moved them into. Like
//! runc's `RemovePaths`/`RemovePath` (libcontainer/cgroups/utils.go): kill, thaw, rmdir the
//! deepest first, with a bounded retry while dying tasks keep a directory busy.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How deep a container's own cgroup tree is walked; cgroupfs has no loops, this only bounds a
/// pathological tree.
const MAX_DEPTH: usize = 32;

/// The waits between rounds, ~0.8 s in all: a SIGKILLed task leaves its cgroup within
/// milliseconds unless it is stuck in the kernel.
const DELAYS_MS: [u64; 7] = [5, 10, 20, 50, 100, 200, 400];

/// The directories of the tree rooted at `dir`, deepest first (`dir` itself last); empty when
/// `dir` does not exist.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    walk(dir, 0, &mut out);
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    if depth < MAX_DEPTH {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), depth + 1, out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// The pids in every cgroup of the tree rooted at `dir`.
pub fn pids_below(dir: &Path) -> Vec<i32> {
    procs(&subtree(dir))
}

/// The pids in the cgroups `tree`, each once.
fn procs(tree: &[PathBuf]) -> Vec<i32> {
    let mut out: Vec<i32> = tree
        .iter()
        .filter_map(|d| crate::kernel_text::read(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Thaw every frozen cgroup of the tree, parents first: a frozen task never acts on SIGKILL, and
/// in cgroup v1 thawing a parent leaves a child that was frozen by itself frozen.
fn thaw(tree: &[PathBuf]) {
    for d in tree.iter().rev() {
        for (file, thawed) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
            let f = d.join(file);
            if let Ok(s) = crate::kernel_text::read(&f) {
                if s.trim() != thawed {
                    if let Err(e) = std::fs::write(&f, thawed) {
                        log::warn!("thaw {}: {e}", f.display());
                    }
                }
            }
        }
    }
}

/// Kill every process in the trees of `dirs`, thaw them, and remove every directory, deepest
/// first; repeated while something is left. The error names what could not be removed.
pub fn tree(dirs: &[PathBuf]) -> Result<(), String> {
    // The common case, an empty cgroup without children: one rmdir per hierarchy.
    let mut left: Vec<PathBuf> = dirs.iter().filter(|d| !rmdir(d)).cloned().collect();
    let mut last = String::new();
    for (round, delay) in DELAYS_MS.iter().enumerate() {
        if left.is_empty() {
            return Ok(());
        }
        let trees: Vec<Vec<PathBuf>> = left.iter().map(|d| subtree(d)).collect();
        for t in &trees {
            for pid in procs(t) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
            thaw(t);
        }
        for t in &trees {
            for d in t {
                if let Err(e) = std::fs::remove_dir(d) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        last = format!("rmdir {}: {e}", d.display());
                    }
                }
            }
        }
        left.retain(|d| d.exists());
        if !left.is_empty() {
            log::warn!(
                "remove cgroup (round {} of {}): {last}",
                round + 1,
                DELAYS_MS.len()
            );
            std::thread::sleep(Duration::from_millis(*delay));
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(last)
    }
}

/// rmdir that counts a directory already gone as removed.
fn rmdir(d: &Path) -> bool {
    match std::fs::remove_dir(d) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}
