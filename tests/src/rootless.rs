//! An unprivileged test user for the rootless tests: created with a unique name (and, by `useradd`, its own
//! `/etc/subuid` and `/etc/subgid` ranges), given a home and an `$XDG_RUNTIME_DIR` it owns, and removed on drop
//! (after its processes are gone: a process left behind is a leak, reported and killed).
//!
//! Commands run as the user through `setpriv --reuid --regid --init-groups` with a clean environment, as a login
//! would give: `PATH`, `HOME`, `USER`, `LOGNAME`, `XDG_RUNTIME_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::Out;

/// `useradd`/`userdel` lock /etc/passwd and fail rather than wait: one at a time in this process, retried
/// against other test processes.
static USERDB: Mutex<()> = Mutex::new(());

pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The first subordinate uid and gid and how many (from /etc/subuid and /etc/subgid).
    pub subuid: (u32, u32),
    pub subgid: (u32, u32),
    /// A directory the user owns (its `$HOME`); everything the tests give the user lives below it.
    pub home: PathBuf,
    /// `$XDG_RUNTIME_DIR`, 0700, owned by the user.
    pub xdg: PathBuf,
}

fn userdb(args: &[&str]) -> Out {
    let _g = USERDB.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = None;
    for _ in 0..20 {
        let mut cmd = Command::new(args[0]);
        cmd.args(&args[1..]);
        let o = crate::engines::run(cmd);
        // useradd/userdel exit 10 when /etc/passwd or /etc/subuid is locked by another process.
        let locked = o.code() == 10 || o.stderr.contains("lock");
        out = Some(o);
        if !locked {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    out.unwrap_or_else(|| unreachable!("at least one attempt"))
}

fn sub_range(file: &str, name: &str) -> Option<(u32, u32)> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

impl User {
    /// A new user whose home is created in `parent` (a directory that the audit watches and removes).
    pub fn new(parent: &Path) -> User {
        // Unique across test processes (the pid) and within one (the counter).
        let name = format!("crl{}-{}", std::process::id(), next());
        let out = userdb(&["useradd", "--no-create-home", "--shell", "/bin/sh", &name]);
        assert!(out.success(), "useradd {name}: {out}");
        let uid = id_of(&name, "-u");
        let gid = id_of(&name, "-g");
        let home = parent.join(&name);
        let xdg = home.join("xdg");
        let user = User {
            subuid: sub_range("/etc/subuid", &name).unwrap_or((0, 0)),
            subgid: sub_range("/etc/subgid", &name).unwrap_or((0, 0)),
            name,
            uid,
            gid,
            home,
            xdg,
        };
        assert!(
            user.subuid.1 >= 65536 && user.subgid.1 >= 65536,
            "useradd gave {} no subordinate ids (/etc/login.defs SUB_UID_COUNT)",
            user.name
        );
        for d in [&user.home, &user.xdg] {
            if let Err(e) = std::fs::create_dir_all(d) {
                panic!("mkdir {}: {e}", d.display());
            }
        }
        user.chown(&user.home);
        chmod(&user.xdg, 0o700);
        user
    }

    /// Gives `path` (recursively) to the user.
    pub fn chown(&self, path: &Path) {
        let mut cmd = Command::new("chown");
        cmd.args(["-R", &format!("{}:{}", self.uid, self.gid)])
            .arg(path);
        crate::engines::run(cmd).ok();
    }

    /// `program args…` as the user, in `cwd`, with a login's environment plus `env`.
    pub fn command(
        &self,
        cwd: &Path,
        env: &[(&str, &str)],
        program: &Path,
        args: &[&str],
    ) -> Command {
        let argv = self.argv(env, program, args);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(cwd);
        cmd
    }

    /// The argument vector of [`User::command`] (`setpriv … env -i … program args…`), for a caller that
    /// wraps it (e.g. in a shell that first moves itself into a cgroup).
    pub fn argv(&self, env: &[(&str, &str)], program: &Path, args: &[&str]) -> Vec<String> {
        // By path: busybox's shell would run its own setpriv applet, which lacks --reuid.
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).is_file() && !Path::new(p).is_symlink())
            .unwrap_or("setpriv");
        let mut v: Vec<String> = vec![
            setpriv.into(),
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--init-groups".into(),
            "env".into(),
            "-i".into(),
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
            format!("HOME={}", self.home.display()),
            format!("USER={}", self.name),
            format!("LOGNAME={}", self.name),
            format!("XDG_RUNTIME_DIR={}", self.xdg.display()),
        ];
        v.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        v.push(program.display().to_string());
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    #[track_caller]
    pub fn run(&self, cwd: &Path, program: &Path, args: &[&str]) -> Out {
        crate::engines::run(self.command(cwd, &[], program, args))
    }

    /// Processes of the user or of its subordinate ids (its containers' and rootless podman's), as
    /// `pid (comm)`, after up to `grace` for them to go.
    pub fn processes(&self, grace: Duration) -> Vec<String> {
        let mut found = vec![];
        crate::poll_until(grace, || {
            found = self.processes_now();
            found.is_empty()
        });
        found
    }

    fn owns(&self, uid: u32) -> bool {
        uid == self.uid || (self.subuid.0..self.subuid.0 + self.subuid.1).contains(&uid)
    }

    fn processes_now(&self) -> Vec<String> {
        let mut found = vec![];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok());
            if uid.is_some_and(|u| self.owns(u)) {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                found.push(format!("{pid} ({})", comm.trim()));
            }
        }
        found
    }
}

impl Drop for User {
    /// Kills what is left of the user's processes (a leak the test reports), then removes the user and its
    /// subordinate ranges.
    fn drop(&mut self) {
        let left = self.processes(crate::AUDIT_GRACE);
        for p in &left {
            if let Some(pid) = p.split_whitespace().next().and_then(|p| p.parse().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
        let _ = self.processes(crate::AUDIT_GRACE);
        let out = userdb(&["userdel", &self.name]);
        let gone = sub_range("/etc/subuid", &self.name).is_none();
        if !std::thread::panicking() {
            assert!(
                left.is_empty(),
                "user {} left processes: {left:?}",
                self.name
            );
            assert!(out.success(), "userdel {}: {out}", self.name);
            assert!(gone, "userdel {} kept its /etc/subuid range", self.name);
        }
    }
}

fn next() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn id_of(name: &str, flag: &str) -> u32 {
    let mut cmd = Command::new("id");
    cmd.args([flag, name]);
    let out = crate::engines::run(cmd).ok();
    match out.stdout.trim().parse() {
        Ok(n) => n,
        Err(e) => panic!("id {flag} {name}: {e}: {out}"),
    }
}

fn chmod(path: &Path, mode: u32) {
    if let Err(e) =
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
    {
        panic!("chmod {}: {e}", path.display());
    }
}
