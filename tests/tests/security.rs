//! Attack tests: each known runtime escape tried against the runtime, which must refuse it or
//! contain it. CVE-2019-5736 (/proc/self/exe overwrite), CVE-2024-21626 (leaked fds and cwd),
//! CVE-2021-30465 and successors (symlinks and races on mount targets, /dev and /dev/null),
//! masked and read-only paths, fake procfs, the devices cgroup, podman's seccomp profile against
//! runc, and capability sets read back from /proc/self/status.

use carte_tests::runtime::{CallOpts, Out};
use carte_tests::*;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every capability the kernel has, in bit order (CapEff bit N = `ALL_CAPS[N]`).
const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The bounding, effective and permitted sets set to `caps`.
fn caps_all_sets(b: &mut Bundle, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), json!(caps));
    }
}

/// The capabilities of the test process's bounding set: all a container can be given here.
fn host_caps() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    (0..ALL_CAPS.len())
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| ALL_CAPS[i].to_string())
        .collect()
}

/// Makes the host's shared libraries (and perl) visible, read-only, inside a busybox bundle, so
/// a dynamically linked program — the carte binary itself, perl — can run in the container.
fn host_libs(b: &mut Bundle) {
    for d in ["/lib", "/lib64", "/usr"] {
        if Path::new(d).exists() {
            b.mount(json!({"destination": d, "type": "bind", "source": d,
                           "options": ["rbind", "ro", "nosuid", "nodev"]}));
        }
    }
}

fn write(b: &Bundle) {
    b.write().expect("write config.json");
}

/// A context whose runtime is a private copy of the runtime binary, for tests that may damage it
/// if a defence is missing: a write that gets through must hit only this file, never the binary
/// other tests run. Also returns the copy's path and its bytes before the test.
fn ctx_with_private_runtime() -> Option<(Ctx, PathBuf, Vec<u8>)> {
    let mut ctx = Ctx::new()?;
    let dir = ctx.tempdir();
    let name = runtime_bin()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "carte".into());
    let copy = dir.join(format!("{name}-private"));
    std::fs::copy(runtime_bin(), &copy).expect("copy runtime binary");
    let bytes = std::fs::read(&copy).expect("read private runtime");
    ctx.rt = Runtime::new(copy.clone()).expect("runtime with the private binary");
    Some((ctx, copy, bytes))
}

/// A created container running `sleep 100` (`create`, with `global` flags before the verb): its
/// id, its init's pid and `create`'s output.
fn created_sleeper(ctx: &Ctx, name: &str, global: &[&str]) -> (String, i64, Out) {
    let id = ctx.id(name);
    let mut b = ctx.bundle();
    b.args(&["sleep", "100"]);
    b.write().expect("write config.json");
    let mut args = global.to_vec();
    args.extend(["create", &id, "--bundle", b.path_str()]);
    let created = ctx.rt.cmd(&args).ok();
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{created}");
    (id, pid, created)
}

fn wait_file(p: &Path, what: &str) {
    assert!(
        poll_until(TIMEOUT_LONG, || p.exists()),
        "timed out waiting for {what} ({})",
        p.display()
    );
}

const TIMEOUT_LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// 1. CVE-2019-5736: the carte binary is never writable from a container.

/// The victim V runs carte inside its container twice over: first its init (a clone of carte,
/// waiting for `start`), then, with `args: ["/proc/self/exe", …]`, the carte binary exec'd as the
/// container's process (held open on a fifo). The attacker X has every capability (so
/// CAP_SYS_PTRACE defeats the init's non-dumpable flag) and sees V's processes; it tries to open
/// V's exe for writing with O_TRUNC (EROFS when protected; ETXTBSY while running otherwise),
/// keeps read fds to it, and after V's carte has exited reopens them for writing — the original
/// exploit. The binary under test is a private copy, so nothing else keeps it busy and a missing
/// defence shows up as a changed file rather than a damaged shared binary.
#[test]
fn proc_self_exe_cannot_overwrite_the_runtime() {
    let Some((ctx, bin, before)) = ctx_with_private_runtime() else {
        return;
    };

    let victim = ctx.id("exe-victim");
    let mut v = ctx.bundle();
    host_libs(&mut v);
    v.args(&[
        "/proc/self/exe",
        "--log",
        "/hold.fifo",
        "state",
        "no-such-container",
    ]);
    nix::unistd::mkfifo(
        &v.rootfs().join("hold.fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    ctx.rt.create(&victim, &v, &[]).ok();
    let vpid = ctx.rt.state(&victim)["pid"].as_i64().unwrap_or(0);
    assert!(vpid > 0);

    // Without CAP_SYS_PTRACE the non-dumpable init cannot even be opened (CVE-2016-9962).
    let weak = ctx.id("exe-weak");
    let mut w = ctx.bundle();
    w.remove_namespace("pid");
    let out = ctx.rt.run_sh(
        &weak,
        &mut w,
        &format!("( : < /proc/{vpid}/exe ) 2>&1 && echo opened; true"),
    );
    assert!(
        !out.contains("opened"),
        "init's exe opened without CAP_SYS_PTRACE: {out}"
    );
    if is_carte() {
        assert!(out.contains("Permission denied"), "{out}");
    }

    let attacker = ctx.id("exe-attacker");
    let mut x = ctx.bundle();
    x.remove_namespace("pid");
    x.readonly_root(false);
    x.set("/process/noNewPrivileges", json!(false));
    let host = host_caps();
    let host: Vec<&str> = host.iter().map(String::as_str).collect();
    caps_all_sets(&mut x, &host);
    x.sh(&format!(
        "exec > /result 2>&1
         p={vpid}
         exec 3< /proc/$p/exe || echo A:open-failed
         echo A:$( ( : > /proc/$p/exe ) 2>&1 || true)
         touch /phase-a; while [ ! -e /go-b ]; do sleep 0.05; done
         echo B:$( ( : > /proc/$p/exe ) 2>&1 || true)
         exec 4< /proc/$p/exe || echo B:open-failed
         touch /phase-b; while [ ! -e /go-c ]; do sleep 0.05; done
         echo C3:$( (echo pwned >> /proc/self/fd/3) 2>&1 && echo written)
         echo C4:$( (echo pwned >> /proc/self/fd/4) 2>&1 && echo written)
         touch /done"
    ));
    let xr = x.rootfs();
    // Detached, so no `carte run` process keeps executing the binary while the attack runs.
    ctx.rt.run(&attacker, &x, &["-d"]).ok();
    wait_file(&xr.join("phase-a"), "attacker phase A");
    // V's init now execs /proc/self/exe: carte again, blocked opening its --log fifo.
    ctx.rt.start(&victim).ok();
    std::fs::write(xr.join("go-b"), "").expect("write go-b");
    wait_file(&xr.join("phase-b"), "attacker phase B");
    // Let V's carte run to its end, so nothing executes the binary any more.
    let fifo = std::fs::File::open(v.rootfs().join("hold.fifo")).expect("open fifo");
    ctx.rt.wait_status(&victim, "stopped");
    drop(fifo);
    std::fs::write(xr.join("go-c"), "").expect("write go-c");
    wait_file(&xr.join("done"), "attacker's end");
    let out = std::fs::read_to_string(xr.join("result")).unwrap_or_default();
    let after = std::fs::read(&bin).expect("read private runtime");
    assert!(
        after == before,
        "the runtime binary was modified from a container: {out}"
    );
    assert!(!out.contains("written"), "{out}");
    if is_carte() {
        for tag in ["A:", "B:", "C3:", "C4:"] {
            let line = out.lines().find(|l| l.starts_with(tag)).unwrap_or_default();
            assert!(line.contains("Read-only file system"), "{tag} {out}");
        }
    }
}

/// The same defence seen from the host once `create` has returned: the waiting init's
/// `/proc/PID/exe` cannot be written (a private copy of the runtime, unchanged after the try).
/// carte gets there without re-executing itself (`selfexe::early`, or `in_place`): the marker a
/// re-execution puts in the environment is not in the init's, and the init's command line, which
/// the move in place hands back to the kernel with the rest of the process's layout, is still
/// `create`'s.
#[test]
fn created_init_cannot_write_the_runtime() {
    use std::io::Write;
    let Some((ctx, bin, before)) = ctx_with_private_runtime() else {
        return;
    };
    let (id, pid, _) = created_sleeper(&ctx, "exe-view", &[]);
    // O_TRUNC, as the original exploit: checked against the mount before the busy-text check.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(format!("/proc/{pid}/exe"))
        .and_then(|mut f| f.write_all(b"pwned"));
    assert_eq!(std::fs::read(&bin).expect("read private runtime"), before);
    let err = written.expect_err("the init's exe was opened and written");
    if is_carte() {
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        let env = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
        let marker = b"_CARTE_SELFEXE_PROTECTED";
        assert!(
            !env.windows(marker.len()).any(|w| w == marker),
            "carte re-executed itself instead of moving onto the read-only view"
        );
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
        let args: Vec<&[u8]> = cmdline.split(|&c| c == 0).collect();
        assert!(args.contains(&&b"create"[..]), "{cmdline:?}");
        assert!(args.contains(&id.as_bytes()), "{cmdline:?}");
    }
}

/// Every mapping of the runtime's binary in a created init comes from a read-only mount: carte
/// maps its segments again from a read-only view of itself before glibc's start-up (x86-64,
/// `selfexe::early`, as its debug log says; `in_place` after it elsewhere), so no page of the init
/// reaches the writable file. runc's init maps the file through a read-only bind mount that runc
/// has already unmounted: such a mapping cannot be reopened by path at all, which passes too.
#[test]
fn no_mapping_of_the_init_reaches_the_writable_runtime() {
    use std::os::unix::fs::MetadataExt;
    let Some((ctx, bin, _)) = ctx_with_private_runtime() else {
        return;
    };
    let (id, pid, created) = created_sleeper(&ctx, "exe-maps", &["--debug"]);
    let file = std::fs::metadata(&bin).expect("stat private runtime");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    let mut of_the_binary = 0;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(range), Some(dev), Some(ino)) = (f.first(), f.get(3), f.get(4)) else {
            continue;
        };
        let hex = |s: &str| u32::from_str_radix(s, 16).unwrap_or(u32::MAX);
        let (major, minor) = dev.split_once(':').unwrap_or(("", ""));
        if ino.parse::<u64>().ok() != Some(file.ino())
            || libc::makedev(hex(major), hex(minor)) != file.dev()
        {
            continue;
        }
        of_the_binary += 1;
        let mapped = match std::fs::File::open(format!("/proc/{pid}/map_files/{range}")) {
            Ok(f) => f,
            // runc unmounts its read-only bind once it holds the binary open: a mapping of that
            // file cannot be opened again through its path, for reading or writing.
            Err(e) if !is_carte() && e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => panic!("open the file of mapping {line}: {e}"),
        };
        let mount = nix::sys::statvfs::fstatvfs(&mapped).expect("statvfs of a mapped file");
        assert!(
            mount
                .flags()
                .contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
            "mapping {line} of the init comes from a writable mount of the runtime"
        );
    }
    if is_carte() {
        assert!(
            of_the_binary >= 2,
            "carte's code and read-only data: {maps}"
        );
        if cfg!(target_arch = "x86_64") {
            let way = "moved onto a read-only view of its binary before start-up";
            assert!(created.stderr.contains(way), "{}", created.stderr);
        }
    }
    ctx.rt.cmd(&["delete", "--force", &id]).ok();
    ctx.assert_no_leaks(&id);
}

/// The code carte runs before glibc's start-up (`carte_entry`, then `selfexe::early` on x86-64) may
/// not call into glibc or read a pointer the start-up has not relocated yet. Its call graph, walked
/// in the shipped binary from the ELF entry point (function bounds from the unwind tables), has no
/// call into `.iplt` (glibc's IFUNCs: `memset`, `memcmp`…), no indirect call or jump but a jump
/// table's, no read from `.got` or `.data.rel.ro`, and leads back to glibc's `_start` only from
/// the entry. A zeroed buffer the compiler turned into `memset` once made every `run` crash; this
/// finds such a call on any path, taken or not.
#[test]
fn the_code_before_glibc_start_up_calls_nothing_of_glibc() {
    if !is_carte() || !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: carte's own entry point, on x86-64");
        return;
    }
    let bin = runtime_bin();
    let tool = |args: &[&str]| -> String {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .arg(&bin)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let header = tool(&["readelf", "-hW"]);
    let entry = header
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Entry point address:")
                .and_then(|a| hex(a.trim()))
        })
        .expect("entry point");
    let sections: Vec<(String, u64, u64)> = tool(&["readelf", "-SW"])
        .lines()
        .filter_map(|l| {
            let l = l.split_once(']')?.1;
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.to_string(), hex(f.get(2)?)?, hex(f.get(4)?)?))
        })
        .collect();
    let section_of = |a: u64| {
        sections
            .iter()
            .find(|(_, start, size)| *start <= a && a < start + size && *start != 0)
            .map_or("?", |(n, _, _)| n.as_str())
    };
    // pc=START..END of every function with unwind information.
    let functions: std::collections::HashMap<u64, u64> = tool(&["readelf", "--debug-dump=frames"])
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once("pc=")?.1.split_once("..")?;
            Some((hex(a)?, hex(b.split_whitespace().next()?)?))
        })
        .collect();
    let disassemble = |start: u64, end: u64| {
        tool(&[
            "objdump",
            "-d",
            "--no-show-raw-insn",
            &format!("--start-address={start:#x}"),
            &format!("--stop-address={end:#x}"),
        ])
    };
    // The entry (assembly, no unwind entry) ends with its jump to glibc's _start.
    let entry_code = disassemble(entry, entry + 64);
    let start_of_glibc = entry_code
        .lines()
        .find_map(|l| {
            l.split_once("\tjmp ")
                .and_then(|(_, t)| hex(t.split_whitespace().next()?))
        })
        .expect("carte_entry ends with a jump to _start");
    let mut todo: Vec<u64> = entry_code
        .lines()
        .filter_map(|l| {
            l.split_once("\tcall ")
                .and_then(|(_, t)| hex(t.split_whitespace().next()?))
        })
        .collect();
    assert!(
        !todo.is_empty(),
        "carte_entry calls the early protection:\n{entry_code}"
    );
    let mut seen = std::collections::BTreeSet::new();
    while let Some(f) = todo.pop() {
        if !seen.insert(f) {
            continue;
        }
        assert_ne!(
            f, start_of_glibc,
            "code before the start-up reaches glibc's _start"
        );
        let end = *functions.get(&f).unwrap_or_else(|| {
            panic!(
                "{f:#x} ({}) is no function with unwind information",
                section_of(f)
            )
        });
        for line in disassemble(f, end).lines() {
            let Some((_, insn)) = line.split_once(":\t") else {
                continue;
            };
            let (op, operands) = insn.split_once(' ').unwrap_or((insn, ""));
            let operands = operands.trim();
            let target = operands.split_whitespace().next().and_then(hex);
            let here = format!("{f:#x}: {}", insn.trim());
            // A call, or a jump (conditional too: a tail call) out of the function.
            let leaves = op.starts_with('j') && target.is_some_and(|t| t < f || t >= end);
            if op == "call" || leaves {
                let t =
                    target.unwrap_or_else(|| panic!("indirect {op} before the start-up: {here}"));
                assert!(
                    section_of(t).starts_with(".text"),
                    "{here} leaves the code for {}",
                    section_of(t)
                );
                todo.push(t);
            } else if op == "jmp" && operands.starts_with('*') {
                assert!(
                    operands.starts_with("*%"),
                    "indirect jump through memory: {here}"
                );
            }
            if let Some((_, read)) = operands.split_once("# ") {
                let a = hex(read.split_whitespace().next().unwrap_or("")).unwrap_or(0);
                // A rip-relative operand before the comma is read (lea only takes its address).
                let source = operands.split_once(',').map_or(operands, |(s, _)| s);
                if op != "lea" && source.contains("(%rip)") {
                    let sec = section_of(a);
                    assert!(
                        !matches!(sec, ".got" | ".got.plt" | ".data.rel.ro"),
                        "{here} reads {sec} before it is relocated"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. CVE-2024-21626: no runtime fd reaches the container, cwd cannot name one.

#[test]
fn cwd_through_proc_self_fd_is_refused() {
    let Some(ctx) = Ctx::new() else { return };
    for n in 3..=10 {
        let mut b = ctx.bundle();
        b.set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
        b.sh("pwd; ls /");
        let id = ctx.id(&format!("cwdfd{n}"));
        let out = ctx.rt.run(&id, &b, &[]);
        if is_carte() {
            out.fails();
        } else if out.success() {
            // Another runtime may accept it; then the cwd must still be inside the container.
            assert!(!out.stdout.contains("unreachable"), "fd {n}: {out}");
            assert!(out.stdout.starts_with('/'), "fd {n}: {out}");
        }
        let _ = ctx.rt.try_cmd(&["delete", "--force", &id]);
        ctx.assert_no_leaks(&id);
    }
}

/// Only stdio (and the preserved fds) are open in the container's process.
#[test]
fn container_sees_only_stdio_and_preserved_fds() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    // `ls` in a child of the shell, no pipeline: the shell holds no pipe of its own while it waits.
    b.sh("ls /proc/$$/fd; true");
    let fds = |stdout: &str| {
        let mut v: Vec<u32> = stdout
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        v.sort_unstable();
        v
    };
    let id = ctx.id("fds");
    let out = ctx.rt.run(&id, &b, &[]).ok();
    assert_eq!(fds(&out.stdout), [0, 1, 2], "{out}");

    let id2 = ctx.id("fds-keep");
    let f1: OwnedFd = std::fs::File::open("/dev/null").expect("open").into();
    let f2: OwnedFd = std::fs::File::open("/dev/null").expect("open").into();
    write(&b);
    let out = ctx.rt.cmd_opts(
        &["run", "--preserve-fds", "2", &id2, "--bundle", b.path_str()],
        CallOpts {
            fds: vec![(f1, 3), (f2, 4)],
            ..Default::default()
        },
    );
    assert_eq!(fds(&out.stdout), [0, 1, 2, 3, 4], "{out}");
}

// ---------------------------------------------------------------------------------------------
// 3. Symlinks and races on mount targets (CVE-2021-30465, CVE-2026-41579, CVE-2025-31133).

/// Removes `p` if a broken runtime created it on the host, and says whether it did.
fn escaped(p: &Path) -> bool {
    let found = p.symlink_metadata().is_ok();
    if found {
        let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
    }
    found
}

#[test]
fn mount_destination_symlinks_stay_in_the_rootfs() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.id("symdest");
    let mut b = ctx.bundle();
    b.readonly_root(false);
    let r = b.rootfs();
    std::os::unix::fs::symlink("/", r.join("escape")).expect("symlink");
    std::os::unix::fs::symlink("../../../../../../../../..", r.join("up")).expect("symlink");
    let a = format!("carte-secu-abs-{id}");
    let rel = format!("carte-secu-rel-{id}");
    let bind = format!("carte-secu-bind-{id}");
    let src = ctx.tempdir();
    std::fs::write(src.join("marker"), "from the bundle").expect("marker");
    b.mount(json!({"destination": format!("/escape/{a}"), "type": "tmpfs", "source": "tmpfs"}));
    b.mount(json!({"destination": format!("/up/{rel}"), "type": "tmpfs", "source": "tmpfs"}));
    b.mount(
        json!({"destination": format!("/escape/tmp/{bind}"), "type": "bind",
                   "source": src.display().to_string(), "options": ["rbind"]}),
    );
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        &format!("grep -c ' /{a} \\| /{rel} ' /proc/self/mountinfo; cat /tmp/{bind}/marker"),
    );
    assert_eq!(out, "2\nfrom the bundle", "{out}");
    let host: Vec<PathBuf> = [
        PathBuf::from("/").join(&a),
        PathBuf::from("/").join(&rel),
        PathBuf::from("/tmp").join(&bind),
    ]
    .into_iter()
    .filter(|p| escaped(p))
    .collect();
    assert!(host.is_empty(), "created on the host: {host:?}");
    assert!(r.join(&a).is_dir() && r.join(&rel).is_dir() && r.join("tmp").join(&bind).is_dir());
}

/// /dev as a symlink out of the rootfs: the tmpfs, the device nodes and the links all land in
/// the rootfs, never in the host directory the link names (CVE-2026-41579).
#[test]
fn dev_symlink_cannot_lead_device_creation_out() {
    let Some(ctx) = Ctx::new() else { return };
    for (tag, with_tmpfs) in [("devlink-tmpfs", true), ("devlink-image", false)] {
        let host = ctx.tempdir();
        let mut b = ctx.bundle();
        let r = b.rootfs();
        std::fs::remove_dir(r.join("dev")).expect("rmdir dev");
        std::os::unix::fs::symlink(&host, r.join("dev")).expect("symlink dev");
        if !with_tmpfs {
            for m in ["/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"] {
                b.remove_mount(m);
            }
            b.readonly_root(false);
        }
        let id = ctx.id(tag);
        let out = ctx
            .rt
            .run_sh(&id, &mut b, "ls /dev/null /dev/zero && echo inside");
        assert!(out.contains("inside"), "{out}");
        let left: Vec<_> = std::fs::read_dir(&host)
            .expect("read host dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{tag}: created on the host: {left:?}");
    }
}

/// /dev/null swapped for a symlink to a procfs file after the devices were made (by a
/// createRuntime hook, standing in for a racing process sharing the image's /dev): masking must
/// refuse it rather than bind a procfs file read-write over the masked paths (CVE-2025-31133).
/// The procfs file is the UTS namespace's `domainname`, not the attack's `core_pattern`: the
/// suite also runs runc 1.1.5, which binds it, and whatever its container then writes through
/// the masked paths or a stdio reopened on `/dev/null` (on a kernel without /proc/kcore, `cat`'s
/// error did) lands in the container's own domain name, never in a host-wide sysctl.
#[test]
fn dev_null_symlink_to_procfs_is_not_used_for_masking() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    for m in ["/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"] {
        b.remove_mount(m);
    }
    b.readonly_root(false);
    let null = b.rootfs().join("dev/null");
    b.hook(
        "createRuntime",
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("rm -f {0} && ln -s /proc/sys/kernel/domainname {0}", null.display())],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}),
    );
    let id = ctx.id("devnull");
    b.sh("cat /proc/keys | head -c 1; echo ran");
    let out = ctx.rt.run(&id, &b, &[]).fails();
    assert!(out.stderr.contains("null device"), "{out}");
    ctx.assert_no_leaks(&id);
}

/// A racing process swaps a mount destination's parent between a directory and a symlink to a
/// host directory while create runs, a few hundred times: nothing may be created outside.
#[test]
fn racing_dir_symlink_swap_never_escapes() {
    let Some(ctx) = Ctx::new() else { return };
    let outside = ctx.tempdir();
    let mut b = ctx.bundle();
    let mnt = b.rootfs().join("mnt");
    std::fs::create_dir(mnt.join("a")).expect("mkdir a");
    std::os::unix::fs::symlink(&outside, mnt.join("b")).expect("symlink b");
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            let dir = std::fs::File::open(&mnt).expect("open mnt");
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    Some(dir.as_raw_fd()),
                    "a",
                    Some(dir.as_raw_fd()),
                    "b",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .expect("renameat2");
                swaps += 1;
            }
            swaps
        })
    };
    let id = ctx.id("race");
    let rounds = 200;
    let mut created = 0;
    for i in 0..rounds {
        b.remove("/mounts");
        b.mount(json!({"destination": "/proc", "type": "proc", "source": "proc"}));
        b.mount(
            json!({"destination": format!("/mnt/a/sub{i}"), "type": "tmpfs", "source": "tmpfs"}),
        );
        let out = ctx.rt.create(&id, &b, &[]);
        if out.success() {
            created += 1;
            ctx.rt.delete_force(&id).ok();
        }
        let left: Vec<_> = std::fs::read_dir(&outside)
            .expect("read outside")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.is_empty(),
            "round {i}: created outside the rootfs: {left:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().expect("racer");
    assert!(
        swaps > rounds as u64,
        "the racer barely ran ({swaps} swaps)"
    );
    // Each create meets `a` as the directory or as the symlink about half the time each, so
    // half is a coin toss (seen: exactly 100/200 under load). What must hold is that creates
    // meeting the directory still work: the refusal is not blanket.
    assert!(
        created >= rounds / 10,
        "only {created}/{rounds} creates succeeded"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Masked and read-only paths (the `spec` defaults) and read-only cgroupfs.

fn spec_default_paths(ctx: &Ctx) -> (Vec<String>, Vec<String>) {
    let dir = ctx.tempdir();
    ctx.rt.spec(&dir, false).ok();
    let text = std::fs::read_to_string(dir.join("config.json")).expect("spec config.json");
    let v: Value = serde_json::from_str(&text).expect("spec JSON");
    let list = |k: &str| -> Vec<String> {
        v["linux"][k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    (list("maskedPaths"), list("readonlyPaths"))
}

#[test]
fn spec_default_masked_and_readonly_paths_hold() {
    let Some(ctx) = Ctx::new() else { return };
    let (masked, readonly) = spec_default_paths(&ctx);
    assert!(masked.iter().any(|p| p == "/proc/kcore"), "{masked:?}");
    assert!(readonly.iter().any(|p| p == "/proc/sys"), "{readonly:?}");
    let mut b = ctx.bundle();
    b.set("/linux/maskedPaths", json!(masked));
    b.set("/linux/readonlyPaths", json!(readonly));
    let mut script = String::new();
    for p in &masked {
        // A masked file reads empty and swallows writes; a masked directory is an empty
        // read-only tmpfs.
        script += &format!(
            "p={p}
             if [ -d $p ]; then echo \"M $p dir n=$(ls -A $p | wc -l) w=$( (touch $p/x) 2>&1)\";
             elif [ -e $p ]; then echo x > $p 2>/dev/null; echo \"M $p file n=$(wc -c < $p) dev=$(stat -c %t:%T $p)\";
             else echo \"M $p absent\"; fi\n"
        );
    }
    for p in &readonly {
        script += &format!(
            "p={p}
             if [ -d $p ]; then r=$(ls $p > /dev/null && echo ok); f=$(find $p -type f -perm -200 2>/dev/null | head -n 1);
             elif [ -e $p ]; then r=ok; f=$p; else r=absent; f=; fi
             if [ -n \"$f\" ]; then w=$( ( : >> $f ) 2>&1 || true); else w=none; fi
             echo \"R $p read=$r write=$w\"\n"
        );
    }
    let id = ctx.id("paths");
    let out = ctx.rt.run_sh(&id, &mut b, &script);
    for line in out.lines() {
        if line.ends_with("absent") || line.contains("read=absent") {
            continue;
        }
        if line.starts_with("M ") && line.contains(" dir ") {
            assert!(
                line.contains("n=0") && line.contains("Read-only file system"),
                "{line}"
            );
        } else if line.starts_with("M ") {
            assert!(line.contains("n=0 dev=1:3"), "{line}");
        } else if line.starts_with("R ") {
            assert!(line.contains("read=ok"), "{line}");
            assert!(
                line.contains("write=none") || line.contains("Read-only file system"),
                "{line}"
            );
        }
    }
    let hits = out
        .lines()
        .filter(|l| l.contains("Read-only file system"))
        .count();
    assert!(hits >= 2, "expected read-only refusals: {out}");
}

#[test]
fn cgroupfs_is_read_only_inside() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let id = ctx.id("cgro");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "echo top:$( (mkdir /sys/fs/cgroup/carte-x) 2>&1)
         for d in /sys/fs/cgroup/*/; do
           echo \"$d mkdir:$( (mkdir ${d}carte-x) 2>&1) procs:$( ( : >> ${d}cgroup.procs) 2>&1)\"
         done",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "no hierarchy mounted: {out}");
    for l in lines {
        assert!(l.contains("Read-only file system"), "{l}");
    }
    assert_eq!(
        out.matches("Read-only file system").count(),
        1 + 2 * (out.lines().count() - 1),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. procfs writes go to the real procfs only.

/// A fake /proc (a host directory bound where procfs would go) must not receive the sysctl.
#[test]
fn sysctl_is_not_written_through_a_fake_proc() {
    let Some(ctx) = Ctx::new() else { return };
    let fake = ctx.tempdir();
    std::fs::create_dir_all(fake.join("sys/kernel")).expect("mkdir");
    std::fs::write(fake.join("sys/kernel/domainname"), "untouched\n").expect("write");
    let mut b = ctx.bundle();
    b.remove_mount("/proc");
    b.mount(json!({"destination": "/proc", "type": "bind",
                   "source": fake.display().to_string(), "options": ["rbind"]}));
    b.set("/linux/sysctl", json!({"kernel.domainname": "pwned"}));
    b.remove("/linux/maskedPaths");
    b.remove("/linux/readonlyPaths");
    let id = ctx.id("fakeproc");
    b.sh("cat /proc/sys/kernel/domainname");
    let out = ctx.rt.run(&id, &b, &[]);
    let fake_now = std::fs::read_to_string(fake.join("sys/kernel/domainname")).expect("read");
    assert_eq!(
        fake_now, "untouched\n",
        "sysctl written into the fake /proc: {out}"
    );
    // Refused before anything is written: only a procfs goes on /proc (runc: "not of type proc").
    let out = out.fails();
    if is_carte() {
        assert!(out.stderr.contains("procfs"), "{out}");
    }
    ctx.assert_no_leaks(&id);
}

/// With a fake /proc in the container (the image's own files there, no procfs mounted: a bind
/// over /proc is refused outright), oom_score_adj and the id maps still reach the real process
/// (they are written through the host's procfs).
#[test]
fn oom_score_and_id_maps_ignore_a_fake_proc() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let fake = b.rootfs().join("proc");
    std::fs::create_dir_all(fake.join("self")).expect("mkdir");
    for f in ["oom_score_adj", "uid_map", "gid_map"] {
        std::fs::write(fake.join("self").join(f), "fake\n").expect("write");
    }
    b.remove_mount("/proc");
    b.remove_mount("/sys");
    b.remove_mount("/sys/fs/cgroup");
    b.remove("/linux/maskedPaths");
    b.remove("/linux/readonlyPaths");
    b.set("/process/oomScoreAdj", json!(123));
    b.namespace("user", None);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
    );
    b.args(&["sleep", "100"]);
    let id = ctx.id("fakeproc-maps");
    ctx.rt.create(&id, &b, &[]).ok();
    let pid = ctx.rt.state(&id)["pid"].as_i64().unwrap_or(0);
    let real = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    assert_eq!(real("oom_score_adj").trim(), "123");
    let norm = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(real("uid_map")), "0 200000 65536");
    assert_eq!(norm(real("gid_map")), "0 200000 65536");
    for f in ["oom_score_adj", "uid_map", "gid_map"] {
        let now = std::fs::read_to_string(fake.join("self").join(f)).expect("read");
        assert_eq!(now, "fake\n", "{f} written into the fake /proc");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. The devices cgroup: deny-all plus an allow-list.

#[test]
fn denied_devices_cannot_be_opened_even_after_mknod() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    let mut caps = vec![
        "CAP_MKNOD",
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
    ];
    caps.sort_unstable();
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), json!(caps));
    }
    b.resource(
        "devices",
        json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]),
    );
    let id = ctx.id("devices");
    let out = ctx.rt.run_sh(
        &id,
        &mut b,
        "cd /dev
         mknod carte-null c 1 3 && mknod carte-loop b 7 0 && mknod carte-loopctl c 10 237 && echo made
         echo null:$( (exec 3<> carte-null) 2>&1 && echo opened)
         echo loop:$( (exec 3< carte-loop) 2>&1 && echo opened)
         echo loopctl:$( (exec 3<> carte-loopctl) 2>&1 && echo opened)",
    );
    assert!(out.contains("made"), "{out}");
    assert!(out.contains("null:opened"), "allowed device refused: {out}");
    for dev in ["loop:", "loopctl:"] {
        let line = out.lines().find(|l| l.starts_with(dev)).unwrap_or_default();
        assert!(line.contains("Operation not permitted"), "{dev} {out}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Seccomp end to end against runc, and capability sets.

const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// podman's rendering of its profile (containers/common `pkg/seccomp`) for x86_64 and `caps`:
/// rules whose `includes` the process does not meet, or whose `excludes` it does, are dropped;
/// `archMap` gives the architectures.
fn render_podman_profile(caps: &[&str]) -> Value {
    let text = std::fs::read_to_string(PODMAN_PROFILE).expect("podman seccomp profile");
    let p: Value = serde_json::from_str(&text).expect("profile JSON");
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut arches = vec![];
    for m in p["archMap"].as_array().into_iter().flatten() {
        if m["architecture"] == "SCMP_ARCH_X86_64" {
            arches.push("SCMP_ARCH_X86_64".to_string());
            arches.extend(strs(&m["subArchitectures"]));
        }
    }
    let mut syscalls = vec![];
    for s in p["syscalls"].as_array().into_iter().flatten() {
        let inc_caps = strs(&s["includes"]["caps"]);
        let inc_arch = strs(&s["includes"]["arches"]);
        let exc_caps = strs(&s["excludes"]["caps"]);
        let exc_arch = strs(&s["excludes"]["arches"]);
        if !inc_caps.iter().all(|c| caps.contains(&c.as_str()))
            || (!inc_arch.is_empty() && !inc_arch.iter().any(|a| a == "amd64"))
            || exc_caps.iter().any(|c| caps.contains(&c.as_str()))
            || exc_arch.iter().any(|a| a == "amd64")
            || s["includes"]["minKernel"]
                .as_str()
                .is_some_and(|k| !k.is_empty())
        {
            continue;
        }
        let mut rule = json!({"names": s["names"], "action": s["action"]});
        if let Some(e) = s["errnoRet"].as_u64() {
            rule["errnoRet"] = json!(e);
        }
        if let Some(args) = s["args"].as_array().filter(|a| !a.is_empty()) {
            rule["args"] = json!(args
                .iter()
                .map(|a| json!({"index": a["index"], "value": a["value"],
                                "valueTwo": a["valueTwo"], "op": a["op"]}))
                .collect::<Vec<_>>());
        }
        syscalls.push(rule);
    }
    let mut out = json!({"defaultAction": p["defaultAction"], "architectures": arches,
                         "syscalls": syscalls});
    if let Some(e) = p["defaultErrnoRet"].as_u64() {
        out["defaultErrnoRet"] = json!(e);
    }
    out
}

/// Raw syscalls through perl (x86_64 numbers), each printed as `name=ok` or `name=<errno>`,
/// plus busybox applets whose syscalls the profile filters.
const SECCOMP_PROBES: &str = r#"
grep '^Seccomp:' /proc/self/status
/usr/bin/perl -e '
  for $p (["clone3",435,0,0], ["keyctl",250,0,0,0,0,0], ["vmsplice",278,-1,0,0,0],
          ["userfaultfd",323,0], ["personality_query",135,4294967295], ["personality_aslr",135,262144],
          ["personality_linux32",135,8], ["mseal_newer_than_profile",462,0,0,0],
          ["syscall_1000",1000,0], ["getpid",39], ["socket_audit",41,16,3,9], ["kexec_load",246,0,0,0,0],
          ["unshare_user",272,268435456], ["mount",165,0,0,0,0,0]) {
    ($n, @a) = @$p; $! = 0; $r = syscall($a[0], @a[1..$#a]);
    printf "%s=%s\n", $n, ($r == -1 ? $!+0 : "ok");
  }'
echo linux32:$(linux32 true 2>&1 && echo ok)
echo setarch-R:$(setarch x86_64 -R true 2>&1 && echo ok)
echo chroot:$(chroot / true 2>&1 && echo ok)
echo swapoff:$(swapoff -a 2>&1 && echo ok)
"#;

#[test]
fn podman_seccomp_profile_matches_runc() {
    let Some(ctx) = Ctx::new() else { return };
    if !Path::new(PODMAN_PROFILE).exists() {
        panic!("{PODMAN_PROFILE} missing: tests/setup.sh installs golang-github-containers-common");
    }
    let runc = Runtime::new(PathBuf::from("/usr/sbin/runc")).expect("runc runtime");
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let mut b = ctx.bundle();
    host_libs(&mut b);
    b.set("/linux/seccomp", render_podman_profile(&caps));
    b.sh(SECCOMP_PROBES);
    let id = ctx.id("seccomp");
    let ours = ctx.rt.run(&id, &b, &[]).ok().stdout;
    let rid = unique_id("seccomp-runc");
    let theirs = runc.run(&rid, &b, &[]);
    let _ = runc.try_cmd(&["delete", "--force", &rid]);
    let theirs = theirs.ok().stdout;
    assert_eq!(ours, theirs, "carte and runc differ under podman's profile");
    for want in [
        "Seccomp:\t2",
        "clone3=22",  // allowed: the kernel's EINVAL for a NULL, zero-size args
        "vmsplice=1", // listed with EPERM
        "userfaultfd=1",
        "personality_query=ok", // allowed by its argument
        "personality_aslr=38",  // other arguments: the default ENOSYS
        "personality_linux32=ok",
        "mseal_newer_than_profile=38", // newer than the profile: ENOSYS
        "syscall_1000=38",
        "getpid=ok",
        "kexec_load=1",
        // This profile (containers-common 0.50, Debian 12) allows keyctl, unshare and mount to
        // everyone: the kernel answers (EINVAL, success, EFAULT for NULL arguments), not the filter.
        "keyctl=22",
        "unshare_user=ok",
        "mount=14",
    ] {
        assert!(
            ours.lines().any(|l| l == want),
            "missing `{want}` in:\n{ours}"
        );
    }
}

/// What /proc/self/status must show after the runtime applied the config's five sets and the
/// process was exec'd (capabilities(7), "Transformation of capabilities during execve()";
/// busybox has no file capabilities): an ambient capability is raised only when it is permitted
/// and inheritable; root then gets permitted = effective = inheritable | bounding | ambient,
/// anyone else permitted = effective = ambient. For runc's default config this is the config.
fn expected_after_exec(get: &dyn Fn(&str) -> Vec<String>, uid: u32) -> Vec<(String, Vec<String>)> {
    let ambient: Vec<String> = get("ambient")
        .into_iter()
        .filter(|c| get("permitted").contains(c) && get("inheritable").contains(c))
        .collect();
    let mut prm: Vec<String> = if uid == 0 {
        let mut all = get("inheritable");
        all.extend(get("bounding"));
        all.extend(ambient.clone());
        all
    } else {
        ambient.clone()
    };
    prm.sort();
    prm.dedup();
    vec![
        ("CapInh".to_string(), get("inheritable")),
        ("CapPrm".to_string(), prm.clone()),
        ("CapEff".to_string(), prm),
        ("CapBnd".to_string(), get("bounding")),
        ("CapAmb".to_string(), ambient),
    ]
}

/// The five sets in /proc/self/status, as capability name lists.
fn caps_inside(ctx: &Ctx, rt: &Runtime, b: &mut Bundle, tag: &str) -> Vec<(String, Vec<String>)> {
    b.sh("grep '^Cap' /proc/self/status");
    let id = if rt.bin() == ctx.rt.bin() {
        ctx.id(tag)
    } else {
        unique_id(tag)
    };
    let out = rt.run(&id, b, &[]);
    if rt.bin() != ctx.rt.bin() {
        let _ = rt.try_cmd(&["delete", "--force", &id]);
    }
    let out = out.ok().stdout;
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let mask = u64::from_str_radix(v.trim(), 16).ok()?;
            let names = (0..ALL_CAPS.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| ALL_CAPS[i].to_string())
                .collect();
            Some((k.to_string(), names))
        })
        .collect()
}

#[test]
fn capability_sets_equal_the_config() {
    let Some(ctx) = Ctx::new() else { return };
    let runc = Path::new("/usr/sbin/runc")
        .exists()
        .then(|| Runtime::new(PathBuf::from("/usr/sbin/runc")).expect("runc runtime"));
    let default = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let extended = [
        "CAP_CHOWN",
        "CAP_NET_ADMIN",
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_SETUID",
    ];
    type Sets<'a> = [(&'a str, &'a [&'a str]); 5];
    let cases: Vec<(&str, u32, Sets)> = vec![
        (
            "default",
            0,
            [
                ("bounding", &default),
                ("effective", &default),
                ("permitted", &default),
                ("inheritable", &[]),
                ("ambient", &default),
            ],
        ),
        (
            "empty",
            0,
            [
                ("bounding", &[]),
                ("effective", &[]),
                ("permitted", &[]),
                ("inheritable", &[]),
                ("ambient", &[]),
            ],
        ),
        (
            "extended",
            0,
            [
                ("bounding", &extended),
                ("effective", &extended[..3]),
                ("permitted", &extended),
                ("inheritable", &extended[1..3]),
                ("ambient", &extended[1..2]),
            ],
        ),
        (
            "user",
            1000,
            [
                ("bounding", &default),
                ("effective", &default[..2]),
                ("permitted", &default),
                ("inheritable", &default),
                ("ambient", &default[..1]),
            ],
        ),
    ];
    for (tag, uid, sets) in cases {
        let mut b = ctx.bundle();
        b.set("/process/user", json!({"uid": uid, "gid": uid}));
        b.set("/process/noNewPrivileges", json!(false));
        for (set, list) in sets {
            b.set(&format!("/process/capabilities/{set}"), json!(list));
        }
        let get = |k: &str| -> Vec<String> {
            let mut v: Vec<String> = sets
                .iter()
                .find(|(s, _)| *s == k)
                .map(|(_, l)| l.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        let want = expected_after_exec(&get, uid);
        let sorted = |mut v: Vec<(String, Vec<String>)>| {
            for (_, l) in v.iter_mut() {
                l.sort();
            }
            v
        };
        let ours = sorted(caps_inside(&ctx, &ctx.rt, &mut b, &format!("caps-{tag}")));
        assert_eq!(
            ours, want,
            "{tag}: carte's sets differ from what the config gives"
        );
        if let Some(runc) = &runc {
            let theirs = sorted(caps_inside(&ctx, runc, &mut b, &format!("caps-runc-{tag}")));
            assert_eq!(ours, theirs, "{tag}: carte and runc differ");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Security modules: a profile or label the host cannot apply is refused, never silently dropped.

fn host_has(module: &str) -> bool {
    match module {
        "apparmor" => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y')),
        _ => Path::new("/sys/fs/selinux/enforce").exists(),
    }
}

#[test]
fn a_security_label_the_host_cannot_apply_is_refused() {
    let Some(ctx) = Ctx::new() else { return };
    let cases = [
        (
            "apparmor",
            "/process/apparmorProfile",
            "process.apparmorProfile",
        ),
        ("selinux", "/process/selinuxLabel", "process.selinuxLabel"),
        ("selinux", "/linux/mountLabel", "linux.mountLabel"),
    ];
    for (module, pointer, field) in cases {
        if host_has(module) {
            continue;
        }
        let mut b = ctx.bundle();
        b.set(pointer, json!("system_u:system_r:container_t:s0"));
        b.sh("echo ran-unconfined");
        let id = ctx.id("lsm");
        let out = ctx.rt.run(&id, &b, &[]);
        assert!(!out.stdout.contains("ran-unconfined"), "{field}: {out}");
        if is_carte() {
            let out = out.fails();
            assert!(out.stderr.contains(field), "{field}: {out}");
            assert_eq!(out.stderr.trim().lines().count(), 1, "{field}: {out}");
        }
        let _ = ctx.rt.try_cmd(&["delete", "--force", &id]);
        ctx.assert_no_leaks(&id);
    }
    // exec's process.json is checked the same way.
    if !host_has("apparmor") && is_carte() {
        let mut b = ctx.bundle();
        b.args(&["sleep", "1000"]);
        let id = ctx.id("lsm-exec");
        ctx.rt.run(&id, &b, &["-d"]).ok();
        let p = ctx.tempdir().join("process.json");
        let process = json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["true"],
            "apparmorProfile": "unconfined-please"});
        std::fs::write(&p, process.to_string()).expect("write process.json");
        let out = ctx
            .rt
            .cmd(&["exec", "--process", &p.display().to_string(), &id])
            .fails();
        assert!(out.stderr.contains("process.apparmorProfile"), "{out}");
        ctx.rt.delete_force(&id).ok();
        ctx.assert_no_leaks(&id);
    }
}
