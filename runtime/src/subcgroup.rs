//! `exec --cgroup`: the sub-cgroups of the container's cgroup an exec'd process joins, in runc's
//! syntax — `PATH` alone (every hierarchy), or `CONTROLLER[,CONTROLLER]:PATH`, repeatable (those
//! hierarchies only; the others keep the container's cgroup). The path is relative to the
//! container's cgroup (a leading `/` too, as runc's `path.Join` makes it) and may not leave it.
//! Everything is resolved and checked before the clone; the parent moves the process down only
//! after it is in the container's cgroups, so it never runs outside them.

use crate::cgroups::hierarchy::Hierarchy;
use crate::error::{Context, Error, Result};
use std::path::{Path, PathBuf};

/// What the `--cgroup` flags ask for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// One path for every hierarchy.
    All(PathBuf),
    /// (controller, path) pairs; `name=systemd` names the named hierarchy, as in runc.
    Controllers(Vec<(String, PathBuf)>),
}

fn usage(arg: &str, why: &str) -> Error {
    Error::Usage(format!("exec --cgroup {arg:?}: {why}"))
}

/// Parse the flags (runc 1.1 `exec.go` `getSubCgroupPaths`, with `..` checked here, where runc
/// compares string prefixes); `None` when there are none.
pub fn parse(args: &[String]) -> Result<Option<Request>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut pairs = vec![];
    for a in args {
        match a.split(':').collect::<Vec<_>>()[..] {
            [path] if args.len() == 1 => return Ok(Some(Request::All(relative(a, path)?))),
            [_] => {
                return Err(usage(
                    a,
                    "a CONTROLLER: prefix is needed when --cgroup is repeated",
                ))
            }
            [ctrls, path] => {
                let rel = relative(a, path)?;
                for c in ctrls.split(',') {
                    if c.is_empty() {
                        return Err(usage(a, "empty controller name"));
                    }
                    pairs.push((c.to_string(), rel.clone()));
                }
            }
            _ => return Err(usage(a, "expected PATH or CONTROLLER:PATH")),
        }
    }
    Ok(Some(Request::Controllers(pairs)))
}

/// `path` made relative to the container's cgroup, `.` and `..` resolved; refused if it leaves it.
fn relative(arg: &str, path: &str) -> Result<PathBuf> {
    let mut parts: Vec<&str> = vec![];
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(usage(arg, "not a sub-cgroup of the container's cgroup"));
                }
            }
            s => parts.push(s),
        }
    }
    Ok(parts.iter().collect())
}

/// The `cgroup.procs` directories the process must be written to, each checked to exist.
pub fn resolve(req: &Request, cgroup_path: &Path, systemd: bool) -> Result<Vec<PathBuf>> {
    if systemd {
        return Err(Error::Usage(
            "exec --cgroup: not supported with --systemd-cgroup".into(),
        ));
    }
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    // The hierarchies where the container has a cgroup.
    let held: Vec<(&Hierarchy, PathBuf)> = crate::cgroups::hierarchy::all()
        .iter()
        .filter(|h| h.joined())
        .map(|h| (h, h.dir(rel)))
        .filter(|(_, dir)| dir.is_dir())
        .collect();
    let mut targets = vec![];
    match req {
        Request::All(sub) => {
            for (_, dir) in &held {
                targets.push(dir.join(sub));
            }
        }
        Request::Controllers(pairs) => {
            for (ctrl, sub) in pairs {
                let (_, dir) = held
                    .iter()
                    .find(|(h, _)| h.holds(&[ctrl.as_str()]))
                    .ok_or_else(|| {
                        usage(
                            &format!("{ctrl}:{}", sub.display()),
                            "no hierarchy of this controller holds the container's cgroup",
                        )
                    })?;
                targets.push(dir.join(sub));
            }
        }
    }
    for t in &targets {
        if !t.join("cgroup.procs").is_file() {
            return Err(Error::Usage(format!(
                "exec --cgroup: cgroup {} does not exist (create it first)",
                t.display()
            )));
        }
    }
    Ok(targets)
}

/// Move `pid` into each sub-cgroup (from the container's cgroup, where it already is).
pub fn join(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for d in dirs {
        let procs = d.join("cgroup.procs");
        log::debug!("exec: join sub-cgroup {}", d.display());
        std::fs::write(&procs, pid.to_string()).ctx("write", procs.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runc_syntax() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(
            parse(&args(&["a/b"])).unwrap(),
            Some(Request::All("a/b".into()))
        );
        assert_eq!(
            parse(&args(&["/a/./b/../c"])).unwrap(),
            Some(Request::All("a/c".into()))
        );
        assert_eq!(
            parse(&args(&["cpu,memory:x", "pids:y"])).unwrap(),
            Some(Request::Controllers(vec![
                ("cpu".into(), "x".into()),
                ("memory".into(), "x".into()),
                ("pids".into(), "y".into()),
            ]))
        );
        for bad in [
            &["../x"][..],
            &["a/../../x"],
            &["memory:.."],
            &["x", "memory:y"],
            &["a:b:c"],
            &[":x", "memory:y"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
