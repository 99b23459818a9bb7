//! `carte exec`: run another process in a container — from `--process` (a runtime-spec Process
//! JSON, what containerd and conmon pass) or from the command line on top of the container's own
//! process settings, as runc does.

use crate::cli::{Cli, ExecArgs};
use crate::error::{Context, Error, Result};
use crate::process::{exec, plan};
use crate::state::{self, ContainerDir, Status};
use crate::tty::proxy::{self, Terminal};
use crate::tty::Console;
use oci_spec::runtime::{Capability, Process};

pub fn run(cli: &Cli, a: &ExecArgs) -> Result<i32> {
    let sigs = crate::signals::forwarded();
    let old = sigs
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(|e| Error::sys("sigprocmask", "block", e))?;
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    let status = state::status(&dir.path, &st);
    match status {
        Status::Created | Status::Running => {}
        Status::Paused if a.ignore_paused => {}
        s => {
            return Err(Error::WrongStatus {
                id: a.id.clone(),
                status: s.as_str().into(),
                verb: "exec in",
            })
        }
    }
    let spec = dir.config().ok_or_else(|| {
        Error::Other(format!(
            "container {}: its config.json copy is unreadable",
            a.id
        ))
    })?;
    let process = process_for(&spec, a)?;
    let mut pplan = plan::build_process(&process, spec.linux().as_ref())?;
    let sub_cgroups = match crate::subcgroup::parse(&a.cgroup)? {
        Some(req) => crate::subcgroup::resolve(&req, &st.cgroup_path, st.systemd_cgroup)?,
        None => vec![],
    };
    // Without a socket, a foreground exec relays the terminal itself (`tty::proxy`).
    let console = match (a.console_socket.as_deref(), a.detach) {
        (Some(p), _) => Some(Console::Socket(p)),
        (None, false) => Some(Console::Proxy),
        (None, true) => None,
    };
    if let (true, Some(Console::Proxy)) = (pplan.terminal, console) {
        // The process runs as soon as it is spawned: its pty must have our size before, which
        // only the process itself can give it (runc 1.1 resizes later, and races with it).
        pplan.console_size = proxy::stdin_size().or(pplan.console_size);
    }
    let opts = exec::ExecOpts {
        console,
        preserve_fds: a.preserve_fds,
        detach: a.detach,
        sub_cgroups,
    };
    // A paused container's freezer stops the new process as soon as it joins the cgroup, so the
    // spawn cannot finish before a `resume`, which needs this lock: holding it would deadlock the
    // two. Release it first (runc holds no lock across exec at all); the spawn reads only the
    // state and config already loaded, and fails cleanly if the container is deleted meanwhile.
    let dir = (status != Status::Paused).then_some(dir);
    let spawned = exec::spawn(&st, &spec, &pplan, &opts)?;
    let pid = spawned.pid;
    let term = spawned.master.map(Terminal::attach).transpose()?;
    // The lock only guarded the spawn: others may act on the container while the process runs.
    drop(dir);
    if let Some(p) = a.pid_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        state::write_atomic(p, pid.to_string().as_bytes())?;
    }
    if a.detach {
        let _ = old.thread_set_mask();
        return Ok(0);
    }
    match &term {
        Some(t) => t.relay(pid, &sigs),
        None => crate::wait::wait_forwarding(pid, &sigs),
    }
}

/// runc's rules: `--process` replaces everything; otherwise the container's process is the
/// template, with the command line's args, cwd, env (set), user, groups, caps, tty, NNP, AppArmor
/// profile and SELinux label.
fn process_for(spec: &oci_spec::runtime::Spec, a: &ExecArgs) -> Result<Process> {
    if let Some(p) = &a.process {
        let raw = std::fs::read(p).ctx("read", p.display())?;
        return crate::bundle::parse_process(&raw, &p.display().to_string());
    }
    if a.command.is_empty() {
        return Err(Error::Usage(
            "exec: give a command, or --process FILE".into(),
        ));
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        set_env(&mut env, kv);
    }
    p.set_env(Some(env));
    labels(&mut p, a)?;
    p.set_terminal(Some(a.tty));
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        p.user_mut().set_uid(uid);
        p.user_mut().set_gid(gid);
    }
    if !a.additional_gids.is_empty() {
        let mut g = p.user().additional_gids().clone().unwrap_or_default();
        g.extend(&a.additional_gids);
        p.user_mut().set_additional_gids(Some(g));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let name = if c.to_ascii_uppercase().starts_with("CAP_") {
                c.to_ascii_uppercase()
            } else {
                format!("CAP_{}", c.to_ascii_uppercase())
            };
            // Unknown names are warnings, as in config.json (runc: "ignoring unknown or
            // unavailable capabilities").
            let Ok(cap) = serde_json::from_value::<Capability>(serde_json::Value::String(name))
            else {
                log::warn!("exec --cap: unknown capability {c:?} ignored");
                continue;
            };
            // Never inheritable (CVE-2022-29162): bounding, effective and permitted only.
            let mut b = caps.bounding().clone().unwrap_or_default();
            b.insert(cap);
            caps.set_bounding(Some(b));
            let mut e = caps.effective().clone().unwrap_or_default();
            e.insert(cap);
            caps.set_effective(Some(e));
            let mut pm = caps.permitted().clone().unwrap_or_default();
            pm.insert(cap);
            caps.set_permitted(Some(pm));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// `NAME=value` replaces the value of an existing NAME in place (runc's init loads the list with
/// setenv, so the last value wins), or is appended. Merely appending left two entries, and the
/// process's getenv saw the first, the old one.
fn set_env(env: &mut Vec<String>, kv: &str) {
    let name = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let key = name(kv);
    match env.iter().position(|e| name(e) == key) {
        Some(i) => {
            env[i] = kv.to_string();
            // Later duplicates (the config's own) go too: the first entry, now ours, stays.
            let mut first = true;
            env.retain(|e| {
                if name(e) != key {
                    return true;
                }
                std::mem::replace(&mut first, false)
            });
        }
        None => env.push(kv.to_string()),
    }
}

/// `--apparmor` and `--process-label` on the process; refused, naming the flag, where the host
/// lacks the module (as create refuses the config fields: running unconfined would drop a
/// protection the caller asked for).
fn labels(p: &mut Process, a: &ExecArgs) -> Result<()> {
    if let Some(profile) = a.apparmor.as_deref().filter(|s| !s.is_empty()) {
        if !crate::lsm::apparmor_enabled() {
            return Err(Error::Usage(format!(
                "exec --apparmor {profile:?}: AppArmor is not enabled on this host"
            )));
        }
        p.set_apparmor_profile(Some(profile.to_string()));
    }
    if let Some(label) = a.process_label.as_deref().filter(|s| !s.is_empty()) {
        if !crate::lsm::selinux_enabled() {
            return Err(Error::Usage(format!(
                "exec --process-label {label:?}: SELinux is not enabled on this host"
            )));
        }
        p.set_selinux_label(Some(label.to_string()));
    }
    Ok(())
}

/// `uid` or `uid:gid`, numbers only (strict, unlike the parsing bug of crun CVE-2026-30892).
fn parse_user(u: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::Usage(format!(
            "exec --user {u:?}: expected uid or uid:gid (numbers)"
        ))
    };
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let uid: u32 = uid.parse().map_err(|_| bad())?;
    let gid: u32 = match gid {
        Some(g) => g.parse().map_err(|_| bad())?,
        None => 0,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flags_replace() {
        let mut env = vec![
            "PATH=/bin".to_string(),
            "A=1".into(),
            "B".into(),
            "A=2".into(),
        ];
        set_env(&mut env, "A=3");
        set_env(&mut env, "C=4");
        set_env(&mut env, "B=5");
        assert_eq!(env, ["PATH=/bin", "A=3", "B=5", "C=4"]);
    }

    #[test]
    fn user_parsing_is_strict() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 0));
        assert_eq!(parse_user("1000:50").unwrap(), (1000, 50));
        for bad in ["", "root", "1000:", ":1", "1:2:3", "-1", "1000 "] {
            assert!(parse_user(bad).is_err(), "{bad:?}");
        }
    }
}
