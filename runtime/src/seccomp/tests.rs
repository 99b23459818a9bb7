//! Tests for `seccomp`: compile checks (any user) and real probes in a forked child (root only).
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic

use super::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";
/// podman's default capability set (containers.conf `default_capabilities`).
const PODMAN_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];
const X32: i64 = 0x4000_0000;

fn seccomp(value: Value) -> LinuxSeccomp {
    serde_json::from_value(value).expect("test profile parses")
}

fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: installing seccomp without no_new_privs needs root");
    }
    root
}

/// Renders podman's profile for amd64 with podman's default capabilities, as podman does before writing
/// config.json (`includes`/`excludes` by caps and arch, `archMap` → `architectures`).
fn podman_profile() -> Option<LinuxSeccomp> {
    let Ok(text) = std::fs::read_to_string(PODMAN_PROFILE) else {
        eprintln!(
            "skipped: {PODMAN_PROFILE} missing (apt package golang-github-containers-common)"
        );
        return None;
    };
    let raw: Value = serde_json::from_str(&text).expect("podman profile is JSON");
    let has = |v: &Value, key: &str, want: &dyn Fn(&str) -> bool| {
        v[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| want(x.as_str().unwrap_or(""))))
    };
    let wanted = |e: &Value| {
        let inc = &e["includes"];
        let exc = &e["excludes"];
        // An entry is kept when all its `includes.caps` are granted and its `includes.arches` (if
        // any) name amd64, and dropped when any `excludes` cap is granted or arch matches.
        let inc_caps = inc["caps"].as_array().is_none_or(|a| {
            a.iter()
                .all(|c| PODMAN_CAPS.contains(&c.as_str().unwrap_or("")))
        });
        let inc_arch = inc["arches"].is_null() || has(inc, "arches", &|a| a == "amd64");
        inc_caps
            && inc_arch
            && !has(exc, "caps", &|c| PODMAN_CAPS.contains(&c))
            && !has(exc, "arches", &|a| a == "amd64")
    };
    let syscalls: Vec<Value> = raw["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|e| wanted(e))
        .map(|e| {
            let mut out = json!({"names": e["names"], "action": e["action"]});
            for key in ["args", "errnoRet"] {
                if !e[key].is_null() {
                    out[key] = e[key].clone();
                }
            }
            out
        })
        .collect();
    let mut arches = vec![json!("SCMP_ARCH_X86_64")];
    for m in raw["archMap"].as_array().expect("archMap") {
        if m["architecture"] == "SCMP_ARCH_X86_64" {
            arches.extend(
                m["subArchitectures"]
                    .as_array()
                    .expect("subs")
                    .iter()
                    .cloned(),
            );
        }
    }
    Some(seccomp(json!({
        "defaultAction": raw["defaultAction"],
        "defaultErrnoRet": raw["defaultErrnoRet"],
        "architectures": arches,
        "syscalls": syscalls,
    })))
}

/// A raw syscall: Ok(return value) or Err(errno).
fn sys(nr: i64, args: [u64; 3]) -> Result<i64, i32> {
    // SAFETY: every probe passes integer arguments only (no pointers), or null pointers the kernel checks.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], 0u64, 0u64, 0u64) };
    if rc == -1 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(rc)
    }
}

/// Collects mismatches inside the child; the parent prints them.
#[derive(Default)]
struct Probe(String);

impl Probe {
    fn ok(&mut self, what: &str, got: Result<i64, i32>) {
        if let Err(e) = got {
            self.0 += &format!("{what}: want success, got errno {e}\n");
        }
    }
    fn errno(&mut self, what: &str, got: Result<i64, i32>, want: i32) {
        if got != Err(want) {
            self.0 += &format!("{what}: want errno {want}, got {got:?}\n");
        }
    }
    fn status_line(&mut self, key: &str, want: &str) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let got = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim);
        if got != Some(want) {
            self.0 += &format!("/proc/self/status {key} want {want}, got {got:?}\n");
        }
    }
}

enum Outcome {
    /// Exit code and what the child wrote.
    Exited(i32, String),
    Signaled(nix::sys::signal::Signal),
}

/// Forks; the child installs `compiled`, runs `probe` and reports through a pipe. The test process keeps
/// no filter, and the child never returns into the test harness.
fn in_child(compiled: &Compiled, probe: fn(&mut Probe)) -> Outcome {
    use nix::sys::wait::{waitpid, WaitStatus};
    let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the child only makes syscalls and writes to the pipe before _exit; it never returns into
    // the (multi-threaded) harness.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let mut out = std::fs::File::from(wr);
            // No core file for the probes that end in SIGSYS.
            let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
            let code = match compiled.install() {
                Err(e) => {
                    let _ = write!(out, "install: {e}");
                    2
                }
                Ok(()) => {
                    let mut p = Probe::default();
                    probe(&mut p);
                    let _ = out.write_all(p.0.as_bytes());
                    i32::from(!p.0.is_empty())
                }
            };
            // SAFETY: _exit ends the child without running the harness's destructors or atexit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut text = String::new();
            std::fs::File::from(rd)
                .read_to_string(&mut text)
                .expect("read pipe");
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => Outcome::Exited(code, text),
                WaitStatus::Signaled(_, sig, _) => Outcome::Signaled(sig),
                other => panic!("unexpected child status {other:?}"),
            }
        }
    }
}

fn assert_clean(outcome: Outcome) {
    match outcome {
        Outcome::Exited(0, _) => {}
        Outcome::Exited(code, text) => panic!("child exited {code}:\n{text}"),
        Outcome::Signaled(sig) => panic!("child killed by {sig}"),
    }
}

#[test]
fn podman_profile_compiles_into_three_programs() {
    let Some(spec) = podman_profile() else { return };
    let compiled = compile(&spec).expect("podman profile compiles");
    let counts = compiled.instruction_counts();
    println!("podman profile: programs of {counts:?} instructions");
    // Base filter + ERRNO(EPERM) group + ERRNO(EINVAL) group (netlink audit socket).
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.iter().all(|&n| n < 4096), "{counts:?}");
    assert_eq!(compiled.flags(), libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW);
    // The i386-only names (`_llseek`, `socketcall`, …) are skipped, not errors.
    assert!(compiled
        .notes()
        .iter()
        .any(|n| n.contains("_llseek is not a syscall here")));
    assert!(compiled
        .notes()
        .iter()
        .any(|n| n.contains("SCMP_ARCH_X86 calls are killed")));
}

#[test]
fn podman_profile_probes() {
    let Some(spec) = podman_profile() else { return };
    if !root() {
        return;
    }
    let compiled = compile(&spec).expect("podman profile compiles");
    assert_clean(in_child(&compiled, |p| {
        use libc::*;
        p.ok("getpid", sys(SYS_getpid, [0; 3]));
        // CAP_SYS_ADMIN is not in podman's default set, so its syscalls answer EPERM…
        p.errno("setns", sys(SYS_setns, [u64::MAX, 0, 0]), EPERM);
        p.errno("bpf", sys(SYS_bpf, [0; 3]), EPERM);
        p.errno("sethostname", sys(SYS_sethostname, [0; 3]), EPERM);
        p.errno("kexec_load", sys(SYS_kexec_load, [0; 3]), EPERM);
        // …while the profile does not name the keyring calls at all: the default ERRNO(ENOSYS).
        p.errno("add_key", sys(SYS_add_key, [0; 3]), ENOSYS);
        // The netlink-audit socket gets ERRNO(EINVAL) without CAP_AUDIT_WRITE; other netlink is fine.
        let audit = [AF_NETLINK as u64, SOCK_RAW as u64, NETLINK_AUDIT as u64];
        p.errno("socket(netlink audit)", sys(SYS_socket, audit), EINVAL);
        let route = [AF_NETLINK as u64, SOCK_RAW as u64, NETLINK_ROUTE as u64];
        p.ok("socket(netlink route)", sys(SYS_socket, route));
        p.ok(
            "personality(query)",
            sys(SYS_personality, [0xffff_ffff, 0, 0]),
        );
        p.errno(
            "personality(ADDR_NO_RANDOMIZE)",
            sys(SYS_personality, [0x0040000, 0, 0]),
            ENOSYS,
        );
        p.errno("syscall 1000", sys(1000, [0; 3]), ENOSYS);
        p.errno("x32 getpid", sys(X32 | SYS_getpid, [0; 3]), ENOSYS);
        p.status_line("NoNewPrivs:", "0");
        p.status_line("Seccomp:", "2");
        p.status_line("Seccomp_filters:", "3");
    }));
}

/// Docker-shaped allow-list: default ERRNO(EPERM), `clone` only without namespace flags (MASKED_EQ),
/// `clone3` → ERRNO(ENOSYS), one ERRNO(EINVAL) rule, every operator on syscalls that ignore arguments.
fn docker_like() -> LinuxSeccomp {
    let allow = |names: Value, args: Value| json!({"names": names, "action": "SCMP_ACT_ALLOW", "args": args});
    let arg = |index: u64, op: &str, value: u64, two: u64| json!({"index": index, "op": op, "value": value, "valueTwo": two});
    seccomp(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            allow(json!(["read", "write", "openat", "close", "fstat", "newfstatat", "statx", "lseek",
                "mmap", "munmap", "brk", "futex", "rt_sigprocmask", "rt_sigaction", "sigaltstack",
                "exit", "exit_group", "wait4", "getpid", "no_such_syscall", "_llseek"]), json!([])),
            allow(json!(["clone"]), json!([arg(0, "SCMP_CMP_MASKED_EQ", 0x7E02_0000, 0)])),
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            allow(json!(["getppid"]), json!([arg(0, "SCMP_CMP_NE", 7, 0)])),
            allow(json!(["getuid"]), json!([arg(0, "SCMP_CMP_LT", 10, 0)])),
            allow(json!(["getgid"]), json!([arg(0, "SCMP_CMP_LE", 10, 0)])),
            allow(json!(["geteuid"]), json!([arg(0, "SCMP_CMP_GT", 10, 0)])),
            allow(json!(["getegid"]), json!([arg(0, "SCMP_CMP_GE", 10, 0)])),
            allow(json!(["gettid"]), json!([arg(1, "SCMP_CMP_MASKED_EQ", 0xF0, 0x20)])),
            // Two conditions on one argument: OR-ed, as runc does.
            allow(json!(["sched_yield"]), json!([arg(0, "SCMP_CMP_EQ", 1, 0), arg(0, "SCMP_CMP_EQ", 2, 0)])),
            {"names": ["getpgrp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
            // Refusing seccomp(2) itself must not stop the runtime installing the rest of the stack.
            {"names": ["seccomp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95},
            allow(json!(["getsid"]), json!([])),
            {"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [arg(0, "SCMP_CMP_EQ", 12345, 0)]},
        ],
    }))
}

#[test]
fn docker_like_profile_probes() {
    if !root() {
        return;
    }
    let compiled = compile(&docker_like()).expect("docker-like profile compiles");
    assert_eq!(
        compiled.flags(),
        libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    // ERRNO(ENOSYS) + ERRNO(EINVAL) groups, base, then the ERRNO(EOPNOTSUPP) group naming `seccomp`.
    assert_eq!(compiled.instruction_counts().len(), 4);
    assert_clean(in_child(&compiled, |p| {
        use libc::*;
        p.ok("getpid", sys(SYS_getpid, [0; 3]));
        p.errno(
            "unshare",
            sys(SYS_unshare, [CLONE_NEWNS as u64, 0, 0]),
            EPERM,
        );
        p.errno("mount", sys(SYS_mount, [0; 3]), EPERM);
        p.errno("keyctl", sys(SYS_keyctl, [0; 3]), EPERM);
        p.errno("clone3", sys(SYS_clone3, [0; 3]), ENOSYS);
        p.errno(
            "clone(CLONE_NEWUSER)",
            sys(SYS_clone, [(CLONE_NEWUSER | SIGCHLD) as u64, 0, 0]),
            EPERM,
        );
        match sys(SYS_clone, [SIGCHLD as u64, 0, 0]) {
            // SAFETY: the grandchild only exits.
            Ok(0) => unsafe { _exit(0) },
            Ok(pid) => p.ok("wait4", sys(SYS_wait4, [pid as u64, 0, 0])),
            Err(e) => p.0 += &format!("clone(SIGCHLD): errno {e}\n"),
        }
        p.errno("getppid(7) NE", sys(SYS_getppid, [7, 0, 0]), EPERM);
        p.ok("getppid(8) NE", sys(SYS_getppid, [8, 0, 0]));
        p.ok("getuid(9) LT", sys(SYS_getuid, [9, 0, 0]));
        p.errno("getuid(10) LT", sys(SYS_getuid, [10, 0, 0]), EPERM);
        p.errno(
            "getuid(1<<32) LT compares 64 bits",
            sys(SYS_getuid, [1 << 32, 0, 0]),
            EPERM,
        );
        p.ok("getgid(10) LE", sys(SYS_getgid, [10, 0, 0]));
        p.errno("getgid(11) LE", sys(SYS_getgid, [11, 0, 0]), EPERM);
        p.ok("geteuid(11) GT", sys(SYS_geteuid, [11, 0, 0]));
        p.errno("geteuid(10) GT", sys(SYS_geteuid, [10, 0, 0]), EPERM);
        p.ok("getegid(10) GE", sys(SYS_getegid, [10, 0, 0]));
        p.errno("getegid(9) GE", sys(SYS_getegid, [9, 0, 0]), EPERM);
        p.ok("gettid(_, 0x2F) MASKED_EQ", sys(SYS_gettid, [0, 0x2F, 0]));
        p.errno(
            "gettid(_, 0x30) MASKED_EQ",
            sys(SYS_gettid, [0, 0x30, 0]),
            EPERM,
        );
        p.ok("sched_yield(1)", sys(SYS_sched_yield, [1, 0, 0]));
        p.ok("sched_yield(2)", sys(SYS_sched_yield, [2, 0, 0]));
        p.errno("sched_yield(3)", sys(SYS_sched_yield, [3, 0, 0]), EPERM);
        p.errno("getpgrp", sys(SYS_getpgrp, [0; 3]), EINVAL);
        p.errno("seccomp", sys(SYS_seccomp, [0; 3]), EOPNOTSUPP);
        p.ok("getsid(0)", sys(SYS_getsid, [0, 0, 0]));
        p.errno("getsid(12345)", sys(SYS_getsid, [12345, 0, 0]), EINVAL);
        p.errno(
            "syscall 1000 (newer than the profile)",
            sys(1000, [0; 3]),
            ENOSYS,
        );
        p.errno("x32 getpid", sys(X32 | SYS_getpid, [0; 3]), EPERM);
        p.status_line("NoNewPrivs:", "0");
    }));
}

#[test]
fn default_kill_gives_sigsys() {
    if !root() {
        return;
    }
    let spec = seccomp(json!({
        "defaultAction": "SCMP_ACT_KILL",
        "syscalls": [{"names": ["write", "exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"}],
    }));
    let compiled = compile(&spec).expect("compiles");
    // getppid (110) is below the highest named number (exit_group, 231): the default answers.
    let outcome = in_child(&compiled, |_| {
        let _ = sys(libc::SYS_getppid, [0; 3]);
    });
    assert!(matches!(
        outcome,
        Outcome::Signaled(nix::sys::signal::Signal::SIGSYS)
    ));
}

#[test]
fn allow_by_default_deny_list() {
    if !root() {
        return;
    }
    let spec = seccomp(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": [],
        "syscalls": [
            {"names": ["unshare"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpgrp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        ],
    }));
    let compiled = compile(&spec).expect("compiles");
    assert_eq!(compiled.flags(), 0);
    // x32 guard + ERRNO(EPERM) + ERRNO(EINVAL); the ALLOW entry equals the default and is dropped.
    assert_eq!(compiled.instruction_counts().len(), 3);
    assert_clean(in_child(&compiled, |p| {
        use libc::*;
        p.ok("getpid", sys(SYS_getpid, [0; 3]));
        p.ok("getppid", sys(SYS_getppid, [0; 3]));
        p.errno("unshare", sys(SYS_unshare, [0; 3]), EPERM);
        p.errno("getpgrp", sys(SYS_getpgrp, [0; 3]), EINVAL);
        p.errno("x32 unshare", sys(X32 | SYS_unshare, [0; 3]), ENOSYS);
    }));
}

#[test]
fn kill_process_and_trap_rules() {
    if !root() {
        return;
    }
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        let spec = seccomp(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}],
        }));
        let outcome = in_child(&compile(&spec).expect("compiles"), |_| {
            let _ = sys(libc::SYS_getppid, [0; 3]);
        });
        let sigsys = matches!(outcome, Outcome::Signaled(nix::sys::signal::Signal::SIGSYS));
        assert!(sigsys, "{action} did not end in SIGSYS");
    }
}

fn error_of(value: Value) -> String {
    compile(&seccomp(value))
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn errors_name_the_field() {
    let notify = error_of(json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
    assert_eq!(
        notify,
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY as the default action is not supported"
    );
    let no_listener = error_of(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert_eq!(
        no_listener,
        "linux.seccomp.listenerPath: required by the SCMP_ACT_NOTIFY rules"
    );
    let on_write = error_of(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(
        on_write.starts_with("linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY on `write`"),
        "{on_write}"
    );
    let metadata = error_of(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}));
    assert_eq!(
        metadata,
        "linux.seccomp.listenerMetadata: set without listenerPath"
    );
    let index = error_of(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
        "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
    );
    assert_eq!(
        index,
        "linux.seccomp.syscalls[0].args[0].index: 6 is not a syscall argument (0-5)"
    );
    let errno_on_allow = error_of(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}));
    assert_eq!(
        errno_on_allow,
        "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_ALLOW takes no errno"
    );
    let big = error_of(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}));
    assert_eq!(
        big,
        "linux.seccomp.defaultErrnoRet: 5000 is above the kernel's MAX_ERRNO (4095)"
    );
    // Unknown operators never reach us: oci-spec refuses them while parsing config.json.
    let bad_op = serde_json::from_value::<LinuxSeccomp>(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}));
    assert!(bad_op.is_err());
}

#[test]
fn oversized_filter_is_refused() {
    // 1000 conditional rules on one syscall exceed the kernel's 4096 instructions per program.
    let args: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"names": ["read"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let err = error_of(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": args}));
    assert!(
        err.starts_with("linux.seccomp: compile the base filter: "),
        "{err}"
    );
}

#[test]
fn flags_and_notes() {
    let spec = seccomp(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]}));
    let compiled = compile(&spec).expect("compiles");
    let want = libc::SECCOMP_FILTER_FLAG_TSYNC
        | libc::SECCOMP_FILTER_FLAG_LOG
        | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    assert_eq!(compiled.flags(), want);
    let notes = compiled.notes().join("\n");
    assert!(notes.contains("WAIT_KILLABLE_RECV ignored"), "{notes}");
    assert!(
        notes.contains("syscalls[0].names: no_such_call is not a syscall here"),
        "{notes}"
    );
}

#[test]
fn base_filter_carries_the_guards() {
    let spec = seccomp(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}));
    let compiled = compile(&spec).expect("compiles");
    let base = &compiled.programs[0];
    let highest = SYSCALLS
        .iter()
        .filter(|(n, _)| *n == "read" || *n == "write")
        .map(|(_, nr)| *nr)
        .max();
    let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let guard = base
        .windows(2)
        .any(|w| Some(w[0].k) == highest && w[1].k == enosys);
    assert!(guard, "no ENOSYS guard above {highest:?}");
    if cfg!(target_arch = "x86_64") {
        let x32 = base
            .windows(2)
            .any(|w| w[0].k == 0x4000_0000 && w[1].k == libc::SECCOMP_RET_KILL_PROCESS);
        assert!(x32, "no x32 guard");
    }
}

#[test]
fn no_enosys_bound_under_a_log_default() {
    let spec = seccomp(json!({"defaultAction": "SCMP_ACT_LOG",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}));
    let compiled = compile(&spec).expect("compiles");
    let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    assert!(compiled.programs[0].iter().all(|i| i.k != enosys));
}
