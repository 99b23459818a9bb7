//! `carte-probe`: the static binary the suite runs inside a container (or as a hook) to report what the
//! process sees, as one JSON object on stdout. It reads the kernel's view only; judging is the harness's job.
//!
//! Modes:
//! - `carte-probe report [OP:PATH ...]` — identity, credentials, capabilities, limits, namespaces, mounts, fds,
//!   plus the result of each requested operation (`read`, `write`, `touch`, `mkdir`, `stat`, `ls`, `open`,
//!   `openonly`, `exec`).
//! - `carte-probe hook LOG NAME` — as an OCI hook: append `{hook, argv, env, state, …}` to LOG (one line), with
//!   what the hook can see of the state's pid (alive, command line, root, mounts) and of the processes whose
//!   command line holds `$CARTE_WATCH`, for timing checks.
//! - `carte-probe sleep SECS` / `carte-probe exit CODE` — helpers for hook timeout and failure cases.

use serde_json::{json, Map, Value};
use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("report") => report(&args[2..]),
        Some("hook") => hook(&args),
        Some("sleep") => {
            let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3600);
            std::thread::sleep(std::time::Duration::from_secs(secs));
            Ok(())
        }
        Some("exit") => {
            return ExitCode::from(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1))
        }
        _ => Err(
            "usage: carte-probe report [OP:PATH...] | hook LOG NAME | sleep SECS | exit CODE"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("carte-probe: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Hook mode: the runtime passes the container state on stdin (runtime.md "Hooks"); record it with our argv
/// and env so the harness can check order, arguments and environment. O_APPEND keeps concurrent writers whole.
fn hook(args: &[String]) -> Result<(), String> {
    let (Some(log), Some(name)) = (args.get(2), args.get(3)) else {
        return Err("usage: carte-probe hook LOG NAME".into());
    };
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("read hook state from stdin: {e}"))?;
    let state = serde_json::from_str::<Value>(&input).unwrap_or(Value::String(input));
    let line = json!({
        "hook": name,
        "argv": args,
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "state": state,
        "pidns": std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).ok(),
        "mntns": std::fs::read_link("/proc/self/ns/mnt").map(|p| p.display().to_string()).ok(),
        "self": {"root": link("/proc/self/root"), "mounts": mount_targets("/proc/self/mountinfo")},
        "target": target_view(&state),
        "watch": std::env::var("CARTE_WATCH").ok().map(|w| processes_with(&w)),
    });
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .map_err(|e| format!("open hook log `{log}`: {e}"))?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("write hook log `{log}`: {e}"))?;
    if name.ends_with("-fail") {
        return Err(format!("hook `{name}` fails on purpose"));
    }
    Ok(())
}

fn link(path: &str) -> Option<String> {
    std::fs::read_link(path)
        .map(|p| p.display().to_string())
        .ok()
}

/// The mount points listed in a mountinfo file (field 5).
fn mount_targets(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .collect()
}

/// What this hook sees of the process named by `state.pid`: whether it lives (not a zombie), its command line,
/// its root and its mounts. Lets the harness tell "before pivot_root" from "after" and "after exec" from "before".
fn target_view(state: &Value) -> Value {
    let Some(pid) = state["pid"].as_i64().filter(|p| *p > 0) else {
        return Value::Null;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|s| s != "Z" && s != "X");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    json!({
        "alive": alive,
        "cmdline": cmdline,
        "root": link(&format!("/proc/{pid}/root")),
        "mounts": mount_targets(&format!("/proc/{pid}/mountinfo")),
    })
}

/// Live (not zombie) processes whose command line contains `token`: lets a hook that gets no pid (poststop)
/// tell whether the container's process still exists.
fn processes_with(token: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let live = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|s| s != "Z" && s != "X");
            live && String::from_utf8_lossy(&cmdline).contains(token)
        })
        .collect()
}

fn report(ops: &[String]) -> Result<(), String> {
    let status = read_status();
    let mut out = Map::new();
    out.insert("args".into(), json!(std::env::args().collect::<Vec<_>>()));
    out.insert(
        "env".into(),
        json!(std::env::vars()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()),
    );
    out.insert(
        "cwd".into(),
        json!(std::env::current_dir()
            .map(|p| p.display().to_string())
            .ok()),
    );
    out.insert("pid".into(), json!(std::process::id()));
    out.insert("ids".into(), ids());
    out.insert("status".into(), json!(status));
    out.insert("uname".into(), uname());
    out.insert("rlimits".into(), rlimits());
    out.insert("namespaces".into(), namespaces());
    out.insert("mounts".into(), mountinfo());
    out.insert("fds".into(), fds());
    out.insert("isatty".into(), isatty());
    out.insert("winsize".into(), winsize());
    out.insert("sched".into(), sched());
    for file in [
        "/proc/self/uid_map",
        "/proc/self/gid_map",
        "/proc/self/oom_score_adj",
        "/proc/self/cgroup",
    ] {
        out.insert(file.into(), json!(std::fs::read_to_string(file).ok()));
    }
    let mut results = Map::new();
    for op in ops {
        results.insert(op.clone(), run_op(op));
    }
    out.insert("ops".into(), Value::Object(results));
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", Value::Object(out)).map_err(|e| format!("write report to stdout: {e}"))
}

/// `/proc/self/status` carries capabilities, NoNewPrivs, Seccomp and Umask in one place, as the kernel sees them.
fn read_status() -> Map<String, Value> {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), json!(v.trim())))
        .collect()
}

fn ids() -> Value {
    // SAFETY: these getters take no pointers and cannot fail.
    let (uid, gid, euid, egid) = unsafe {
        (
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
            libc::getegid(),
        )
    };
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer holds `groups.len()` entries and the kernel writes at most that many.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(n).unwrap_or(0));
    json!({"uid": uid, "gid": gid, "euid": euid, "egid": egid, "groups": groups})
}

fn uname() -> Value {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Value::Null;
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates every utsname field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    json!({"nodename": field(&uts.nodename), "domainname": field(&uts.domainname)})
}

fn rlimits() -> Value {
    let table: [(&str, libc::__rlimit_resource_t); 16] = [
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", libc::RLIMIT_NICE),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_RSS", libc::RLIMIT_RSS),
        ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
        ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ];
    let mut out = Map::new();
    for (name, res) in table {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid, writable rlimit.
        if unsafe { libc::getrlimit(res, &mut lim) } == 0 {
            out.insert(
                name.into(),
                json!({"soft": lim.rlim_cur, "hard": lim.rlim_max}),
            );
        }
    }
    Value::Object(out)
}

fn namespaces() -> Value {
    let mut out = Map::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(target) = std::fs::read_link(format!("/proc/self/ns/{ns}")) {
            out.insert(ns.into(), json!(target.display().to_string()));
        }
    }
    Value::Object(out)
}

/// mountinfo(5): id parent major:minor root mountpoint options optional... - fstype source superoptions.
fn mountinfo() -> Value {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts: Vec<Value> = text
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(json!({
                "root": unescape(pre.get(3)?),
                "target": unescape(pre.get(4)?),
                "options": pre.get(5)?.split(',').collect::<Vec<_>>(),
                "optional": pre.get(6..).unwrap_or_default(),
                "fstype": post.first()?,
                "source": unescape(post.get(1)?),
                "super": post.get(2).map(|s| s.split(',').collect::<Vec<_>>()).unwrap_or_default(),
            }))
        })
        .collect();
    json!(mounts)
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

fn fds() -> Value {
    // Collect names first: the directory handle itself is an open fd while iterating, and it must not count.
    let names: Vec<String> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return Value::Null,
    };
    let mut out = Map::new();
    for name in names {
        if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{name}")) {
            out.insert(name, json!(target.display().to_string()));
        }
    }
    Value::Object(out)
}

fn isatty() -> Value {
    // SAFETY: isatty only inspects the descriptor number.
    let tty = |fd| unsafe { libc::isatty(fd) } == 1;
    json!([tty(0), tty(1), tty(2)])
}

/// Personality, I/O priority, scheduling policy and nice value (process.ioPriority/scheduler, linux.personality).
fn sched() -> Value {
    // SAFETY: personality(0xffffffff) only queries the current persona.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS = 1, 0 = self) takes no pointers.
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    // SAFETY: sched_getscheduler(0) queries the calling process and takes no pointers.
    let policy = unsafe { libc::sched_getscheduler(0) };
    // SAFETY: getpriority takes no pointers; -1 is also a valid nice value, which is fine for a report.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    json!({"personality": persona, "ioprio": ioprio, "policy": policy, "nice": nice})
}

/// The terminal size of stdin, when it is a terminal (process.consoleSize).
fn winsize() -> Value {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid, writable `ws`.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return Value::Null;
    }
    json!({"rows": ws.ws_row, "cols": ws.ws_col})
}

fn errno_of(e: &std::io::Error) -> Value {
    json!({"ok": false, "errno": e.raw_os_error(), "error": e.to_string()})
}

/// One requested operation `OP:PATH`; the result says ok/errno so the harness can tell EROFS from EPERM.
fn run_op(op: &str) -> Value {
    let Some((kind, path)) = op.split_once(':') else {
        return json!({"ok": false, "error": "operation must be OP:PATH"});
    };
    match kind {
        "read" => match std::fs::read(path) {
            Ok(data) => json!({"ok": true, "value": String::from_utf8_lossy(&data)}),
            Err(e) => errno_of(&e),
        },
        "write" => match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(mut f) => match f.write_all(b"1") {
                Ok(()) => json!({"ok": true}),
                Err(e) => errno_of(&e),
            },
            Err(e) => errno_of(&e),
        },
        "touch" => match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
        {
            Ok(_) => json!({"ok": true}),
            Err(e) => errno_of(&e),
        },
        "mkdir" => match std::fs::create_dir(path) {
            Ok(()) => json!({"ok": true}),
            Err(e) => errno_of(&e),
        },
        "ls" => match std::fs::read_dir(path) {
            Ok(dir) => {
                let mut names: Vec<String> = dir
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                json!({"ok": true, "value": names})
            }
            Err(e) => errno_of(&e),
        },
        "stat" => match std::fs::symlink_metadata(path) {
            Ok(m) => {
                let ft = m.file_type();
                let kind = if ft.is_char_device() {
                    "c"
                } else if ft.is_block_device() {
                    "b"
                } else if ft.is_dir() {
                    "d"
                } else if ft.is_symlink() {
                    "l"
                } else if ft.is_fifo() {
                    "p"
                } else {
                    "f"
                };
                let rdev = m.rdev();
                let link = std::fs::read_link(path)
                    .map(|p| p.display().to_string())
                    .ok();
                json!({"ok": true, "type": kind, "mode": m.mode() & 0o7777, "uid": m.uid(), "gid": m.gid(),
                       "major": libc::major(rdev), "minor": libc::minor(rdev), "link": link,
                       "dev": m.dev(), "ino": m.ino()})
            }
            Err(e) => errno_of(&e),
        },
        "open" => open_op(path),
        // Open read-write and close: for devices whose read blocks (a pty master).
        "openonly" => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(_) => json!({"ok": true}),
            Err(e) => errno_of(&e),
        },
        "exec" => match std::process::Command::new(path).status() {
            Ok(st) => {
                json!({"ok": true, "code": st.code(), "signal": std::os::unix::process::ExitStatusExt::signal(&st)})
            }
            Err(e) => errno_of(&e),
        },
        _ => json!({"ok": false, "error": format!("unknown operation `{kind}`")}),
    }
}

/// `open:PATH`: open read-write (read-only if that is refused with EACCES/EROFS/EISDIR), read up to 16 bytes and,
/// when writable, write one byte: device nodes report what the kernel and the device cgroup allow.
fn open_op(path: &str) -> Value {
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path);
    let (mut file, writable) = match rw {
        Ok(f) => (f, true),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EACCES | libc::EROFS | libc::EISDIR)
            ) =>
        {
            match std::fs::File::open(path) {
                Ok(f) => (f, false),
                Err(e) => return errno_of(&e),
            }
        }
        Err(e) => return errno_of(&e),
    };
    let mut buf = [0u8; 16];
    let read = match file.read(&mut buf) {
        Ok(n) => json!({"ok": true, "bytes": buf[..n].to_vec()}),
        Err(e) => errno_of(&e),
    };
    let write = if writable {
        match file.write(b"x") {
            Ok(n) => json!({"ok": true, "n": n}),
            Err(e) => errno_of(&e),
        }
    } else {
        Value::Null
    };
    json!({"ok": true, "writable": writable, "read": read, "write": write})
}
