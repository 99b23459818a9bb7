//! Per-process attributes the init applies to itself: rlimits, user and groups, umask, hostname
//! and domain name, sysctls (through a private procfs), and the executable lookup.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::PosixRlimitType;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    use PosixRlimitType as R;
    (match t {
        R::RlimitCpu => libc::RLIMIT_CPU,
        R::RlimitFsize => libc::RLIMIT_FSIZE,
        R::RlimitData => libc::RLIMIT_DATA,
        R::RlimitStack => libc::RLIMIT_STACK,
        R::RlimitCore => libc::RLIMIT_CORE,
        R::RlimitRss => libc::RLIMIT_RSS,
        R::RlimitNproc => libc::RLIMIT_NPROC,
        R::RlimitNofile => libc::RLIMIT_NOFILE,
        R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        R::RlimitAs => libc::RLIMIT_AS,
        R::RlimitLocks => libc::RLIMIT_LOCKS,
        R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        R::RlimitNice => libc::RLIMIT_NICE,
        R::RlimitRtprio => libc::RLIMIT_RTPRIO,
        R::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

pub fn set_rlimits(limits: &[(libc::c_int, u64, u64, String)]) -> Result<()> {
    for (res, soft, hard, name) in limits {
        crate::sys::setrlimit(*res, *soft, *hard).ctx("setrlimit", name)?;
    }
    Ok(())
}

/// `linux.personality`, `process.ioPriority` and `process.scheduler`, while we still hold the
/// capabilities a real-time policy needs.
pub fn set_sched(plan: &crate::process::plan::ProcPlan) -> Result<()> {
    if let Some(p) = plan.personality {
        crate::sys::personality(p).ctx("personality", format!("{p:#x}"))?;
    }
    if let Some((class, level)) = plan.ioprio {
        crate::sys::ioprio_set(class, level)
            .ctx("ioprio_set", format!("class {class} level {level}"))?;
    }
    if let Some(s) = &plan.sched {
        log::debug!(
            "scheduler policy {} nice {} priority {}",
            s.policy,
            s.nice,
            s.priority
        );
        crate::sys::sched_setattr(s).ctx("sched_setattr", format!("policy {}", s.policy))?;
    }
    Ok(())
}

/// Become the configured user: groups first, then gid, then uid (after which we could not).
pub fn set_user(uid: u32, gid: u32, additional: &[u32]) -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let groups: Vec<Gid> = additional.iter().map(|g| Gid::from_raw(*g)).collect();
    // setgroups is refused in a user namespace whose setgroups file says deny: then only an
    // empty request is harmless to skip.
    match setgroups(&groups) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        Err(e) => return Err(Error::sys("setgroups", format!("{additional:?}"), e)),
    }
    let g = Gid::from_raw(gid);
    setresgid(g, g, g).ctx("setresgid", gid)?;
    let u = Uid::from_raw(uid);
    setresuid(u, u, u).ctx("setresuid", uid)
}

pub fn set_hostname(hostname: Option<&str>, domainname: Option<&str>) -> Result<()> {
    if let Some(h) = hostname.filter(|h| !h.is_empty()) {
        log::debug!("set hostname {h}");
        nix::unistd::sethostname(h).ctx("sethostname", h)?;
    }
    if let Some(d) = domainname.filter(|d| !d.is_empty()) {
        log::debug!("set domainname {d}");
        crate::sys::setdomainname(d).ctx("setdomainname", d)?;
    }
    Ok(())
}

/// Write `/proc/sys/<key>` through a private procfs (`procfs`), never the container's `/proc`: an
/// image or a racing container could have made it a fake, or mounted another procfs file over the
/// sysctl (CVE-2019-16884, CVE-2025-52881). The key was parsed and checked against the
/// container's namespaces by `sysctl::plan`; the value reaches the namespaces we are in.
pub fn write_sysctl(key: &crate::sysctl::Key, value: &str) -> Result<()> {
    log::debug!("sysctl {} = {value}", key.name);
    crate::procfs::write(
        crate::procfs::Base::Root,
        &Path::new("sys").join(&key.path),
        value.as_bytes(),
    )
}

/// Resolve `args[0]` like execvp would, against the process's own PATH, inside the container:
/// a missing or non-executable program is a create-time error, not a silent exit 127.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<CString> {
    let check = |p: &Path| -> bool {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let found = if arg0.contains('/') {
        check(Path::new(arg0)).then(|| PathBuf::from(arg0))
    } else {
        let path = env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .map(|d| Path::new(d).join(arg0))
            .find(|p| check(p))
    };
    let p = found.ok_or_else(|| {
        Error::Other(format!(
            "exec: {arg0:?}: executable file not found in $PATH or not executable"
        ))
    })?;
    CString::new(p.into_os_string().into_encoded_bytes())
        .map_err(|_| Error::spec("process.args[0]", "contains NUL"))
}

/// HOME for the target user from the container's /etc/passwd when the config gives none.
pub fn home_of(uid: u32) -> String {
    passwd_field(uid, 5).unwrap_or_else(|| "/".into())
}

/// Field `n` (0 = name, 5 = home) of `uid`'s line in the current root's /etc/passwd. Read by
/// hand rather than through getpwuid: NSS would load modules into the runtime, and in a
/// container's root it would be the image's to choose.
pub fn passwd_field(uid: u32, n: usize) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[n].to_string())
    })
}

/// runc's first chdir to `process.cwd`, made while still root (finalizeNamespace): a cwd only root
/// may enter works for any user. Ok(false) when root may not enter it, to retry as the user.
pub fn chdir_early(cwd: &Path) -> Result<bool> {
    match nix::unistd::chdir(cwd) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => Ok(false),
        Err(e) => Err(Error::sys("chdir to process.cwd", cwd.display(), e)),
    }
}

/// The cwd must stay inside the container: after chdir (`again`: the early one was refused),
/// getcwd must name a path of the new root (an fd leaked from the host would give
/// "(unreachable)/…", CVE-2024-21626).
pub fn enter_cwd(cwd: &Path, again: bool) -> Result<()> {
    if again {
        nix::unistd::chdir(cwd).ctx("chdir to process.cwd", cwd.display())?;
    }
    let now = nix::unistd::getcwd().ctx("getcwd", cwd.display())?;
    if !now.is_absolute() || now.to_string_lossy().starts_with("(unreachable)") {
        return Err(Error::Other(format!(
            "process.cwd {} resolves outside the container",
            cwd.display()
        )));
    }
    Ok(())
}

/// Clear close-on-exec on the fds passed with --preserve-fds (and LISTEN_FDS).
pub fn keep_fds(first: i32, count: u32) -> Result<()> {
    for fd in first..first + count as i32 {
        let b = crate::sys::borrow(fd);
        nix::fcntl::fcntl(
            b.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .ctx("keep fd", fd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_in_path_and_refuses_missing() {
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        assert!(find_executable("sh", &env).is_ok());
        let e = find_executable("no-such-program-carte", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found"), "{e}");
        assert!(
            find_executable("/etc/passwd", &env).is_err(),
            "not executable"
        );
    }
}
