//! Fault injection for the reliability tests: kill a runtime call at a chosen moment, run many calls at once,
//! corrupt a state file, generate garbage configs from a seed, and audit what a killed or racing call left —
//! including what the per-id audit cannot see (stray entries in the state root, fds held into it).

use anyhow::Result;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::runtime::{CallOpts, Out, Runtime};

/// Starts `args`, SIGKILLs the runtime after `delay` (if it is still running) and returns how it ended.
/// Only the child we spawned is ever signalled.
pub fn kill_after(rt: &Runtime, args: &[&str], delay: Duration) -> Result<Out> {
    let mut call = rt.spawn(args, CallOpts::default())?;
    let pid = nix::unistd::Pid::from_raw(call.pid() as i32);
    let deadline = Instant::now() + delay;
    // Poll rather than sleep the whole delay: a call that already exited must not be signalled (its pid is ours
    // until we reap it, so a late kill is harmless, but the outcome would be misreported as killed).
    while Instant::now() < deadline {
        std::thread::sleep((deadline - Instant::now()).min(Duration::from_micros(500)));
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    call.finish()
}

/// Runs `args` to completion and returns the outcome with its wall-clock duration.
pub fn timed(rt: &Runtime, args: &[&str]) -> Result<(Out, Duration)> {
    let t = Instant::now();
    let out = rt.try_cmd(args)?;
    Ok((out, t.elapsed()))
}

/// The median of `samples` (which must not be empty).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `n` delays spread evenly over `total` (the middle of each of `n` equal slices), so the kills land in every
/// phase of the call, from before it parsed its arguments to just before it exits.
pub fn spread(total: Duration, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| total.mul_f64((i as f64 + 0.5) / n as f64))
        .collect()
}

/// Runs every call at once: all threads are released together by a barrier, then each call runs to completion.
/// An `Err` is harness trouble (spawn failure or timeout).
pub fn concurrently(rt: &Runtime, calls: &[Vec<String>]) -> Vec<Result<Out>> {
    let barrier = Barrier::new(calls.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|args| {
                let barrier = &barrier;
                s.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    barrier.wait();
                    rt.try_cmd(&args)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("call thread panicked")),
            })
            .collect()
    })
}

/// Whether the runtime itself crashed: a Rust panic (exit 101 or a panic message) or death by a signal we did
/// not send.
pub fn crashed(out: &Out) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.code() == 101 || out.stderr.contains("panicked at") || out.status.signal().is_some()
}

/// Whether a failed call said why in exactly one non-empty line on stderr (warnings before it, such as an
/// unknown capability being ignored, are their own lines and do not count).
pub fn one_line_error(out: &Out) -> bool {
    let errors = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("level=warning"))
        .count();
    !out.success() && out.code() > 0 && errors == 1
}

/// Entries of the state root that mention `id` other than `ROOT/ID` itself: half-claimed `.new-*` directories
/// and the like, which the per-id audit does not look for.
pub fn stray_root_entries(root: &Path, id: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != id && n.contains(id))
        .map(|n| format!("state root entry {}", root.join(n).display()))
        .collect()
}

/// Processes (other than this test) holding an fd at or below `dir`, e.g. a runtime or init that kept the
/// container's lock open.
pub fn fds_into(dir: &Path) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let name = p.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if target.starts_with(dir) {
                    found.push(format!(
                        "process {name} holds fd {} on {}",
                        fd.file_name().to_string_lossy(),
                        target.display()
                    ));
                }
            }
        }
    }
    found
}

/// Everything left by any container whose id starts with `prefix`: processes, cgroup directories, mounts and
/// state entries. One pass over the system for a whole family of ids (a soak makes hundreds).
pub fn leaks_with_prefix(root: &Path, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name().to_string_lossy().to_string();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                continue;
            }
            let cmdline = std::fs::read(p.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let cgroup = std::fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let mut f = rest.split_whitespace();
            // A zombie already handed to the host's pid 1 is reaped by it; anything else is ours to explain.
            if matches!((f.next(), f.next()), (Some("Z"), Some("1"))) {
                continue;
            }
            if cmdline.contains(prefix) || cgroup.contains(prefix) {
                found.push(format!("process {name} `{}`", cmdline.trim()));
            }
        }
    }
    for h in crate::cgroups::hierarchies() {
        walk_prefix(&h.mount, prefix, 0, &mut found);
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(prefix))
            .map(|l| format!("mount `{l}`")),
    );
    if let Ok(rd) = std::fs::read_dir(root) {
        found.extend(
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains(prefix))
                .map(|n| format!("state entry {n}")),
        );
    }
    found.extend(fds_into(root));
    found
}

fn walk_prefix(dir: &Path, prefix: &str, depth: usize, found: &mut Vec<String>) {
    if depth > 6 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name().to_string_lossy().contains(prefix) {
            found.push(format!("cgroup {}", e.path().display()));
        }
        walk_prefix(&e.path(), prefix, depth + 1, found);
    }
}

/// The ways a state file is corrupted in the tests, each applied to the file's current bytes.
pub const CORRUPTIONS: [&str; 6] = [
    "empty",
    "truncated",
    "garbled",
    "wrong-schema",
    "wrong-types",
    "binary",
];

/// Returns `bytes` corrupted in the named way.
pub fn corrupt(kind: &str, bytes: &[u8]) -> Vec<u8> {
    match kind {
        "empty" => Vec::new(),
        "truncated" => bytes[..bytes.len() / 2].to_vec(),
        // Every 7th byte flipped to a brace or quote: still text, no longer JSON.
        "garbled" => bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| if i % 7 == 3 { b"{\"}"[i % 3] } else { b })
            .collect(),
        "wrong-schema" => br#"{"hello": "world", "containers": [1, 2, 3]}"#.to_vec(),
        "wrong-types" => {
            let mut v: Value = serde_json::from_slice(bytes).unwrap_or(json!({}));
            v["pid"] = json!("not a pid");
            v["cgroupPath"] = json!(17);
            v.to_string().into_bytes()
        }
        _ => (0..200u32).map(|i| (i * 37 % 251) as u8).collect(),
    }
}

/// A small deterministic generator (xorshift64*), so a failing garbage case is reproduced from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Config fields a garbage case must never touch, because a *valid* value there could harm the host rather than
/// the container: the namespace list (dropping the mount or pid namespace would run the container in the host's),
/// hooks (they run on the host), sysctls (a host network namespace would take them) and the cgroup path (a valid
/// path to a shared cgroup would have its processes killed on delete). Their bad values are covered by named cases.
const PROTECTED: [&str; 5] = [
    "/linux/namespaces",
    "/hooks",
    "/linux/sysctl",
    "/linux/cgroupsPath",
    "/root",
];

/// Every JSON pointer in `v` (objects and arrays included), except the protected subtrees.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    if PROTECTED.iter().any(|p| at.starts_with(p)) {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

/// Values that are wrong in some way wherever they land.
fn odd_value(rng: &mut Rng) -> Value {
    let nested = (0..rng.below(40)).fold(json!(0), |acc, _| json!([acc]));
    let choices = [
        json!(null),
        json!(true),
        json!(-1),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!(0),
        json!(""),
        json!("/"),
        json!("../../../../etc"),
        json!("a\u{0}b"),
        json!("\u{fffd}\u{202e}é"),
        json!("x".repeat(70_000)),
        json!([]),
        json!({}),
        json!(["unknown", 3, null]),
        json!({"type": "bogus", "path": "/nonexistent"}),
        nested,
    ];
    rng.pick(&choices).clone()
}

/// Named mutations of the kinds the issue lists (unknown enum values, absurd rlimits, NUL and `..` in paths, missing
/// mount sources, huge ids and limits); each returns the pointer it sets and the value.
fn named_case(rng: &mut Rng, id: &str) -> (String, Value) {
    let cases: Vec<(&str, Value)> = vec![
        (
            "/process/rlimits/0",
            json!({"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}),
        ),
        (
            "/process/rlimits/0",
            json!({"type": "RLIMIT_NOFILE", "hard": 1, "soft": u64::MAX}),
        ),
        (
            "/process/rlimits/0",
            json!({"type": "RLIMIT_NOFILE", "hard": u64::MAX, "soft": u64::MAX}),
        ),
        (
            "/process/rlimits/0",
            json!({"type": "RLIMIT_NPROC", "hard": 0, "soft": 0}),
        ),
        ("/process/user/uid", json!(u32::MAX)),
        (
            "/process/user/additionalGids",
            json!((0..70_000).collect::<Vec<u32>>()),
        ),
        ("/process/cwd", json!("/tmp/../../../..")),
        ("/process/cwd", json!("/no\u{0}where")),
        ("/process/args", json!(["/bin/\u{0}true"])),
        ("/process/args", json!([])),
        ("/process/env/0", json!("NOEQUALS")),
        ("/process/capabilities/bounding/0", json!("CAP_BOGUS")),
        ("/process/oomScoreAdj", json!(100_000)),
        (
            "/process/apparmorProfile",
            json!("carte-nonexistent-profile"),
        ),
        (
            "/mounts/-",
            json!({"destination": "/mnt/../../../x", "type": "tmpfs", "source": "tmpfs"}),
        ),
        (
            "/mounts/-",
            json!({"destination": "/mnt/x", "type": "bind", "source": format!("/nonexistent/{id}"), "options": ["rbind"]}),
        ),
        (
            "/mounts/-",
            json!({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"}),
        ),
        (
            "/mounts/-",
            json!({"destination": "/mnt/\u{0}x", "type": "tmpfs", "source": "tmpfs"}),
        ),
        (
            "/mounts/-",
            json!({"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=-1", "mode=99999", "bogus", "", "rro"]}),
        ),
        (
            "/mounts/-",
            json!({"destination": "/mnt/x", "type": "bind", "source": "/proc/self/../../../", "options": ["bind", "idmap"]}),
        ),
        ("/mounts/0/destination", json!("")),
        ("/linux/resources/memory", json!({"limit": 1})),
        ("/linux/resources/memory", json!({"limit": -2, "swap": -5})),
        (
            "/linux/resources/memory",
            json!({"limit": i64::MAX, "reservation": i64::MIN}),
        ),
        ("/linux/resources/pids", json!({"limit": 0})),
        (
            "/linux/resources/cpu",
            json!({"shares": u64::MAX, "quota": -7, "period": 0, "cpus": "99999", "mems": "x"}),
        ),
        (
            "/linux/resources/devices/-",
            json!({"allow": true, "type": "q", "major": -1, "minor": u32::MAX as i64 + 9, "access": "rwmx"}),
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/../../x", "type": "c", "major": 1, "minor": 3}]),
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/fuzz", "type": "z", "major": -1, "minor": -1}]),
        ),
        ("/linux/maskedPaths/-", json!("/proc/../../etc")),
        ("/linux/readonlyPaths/-", json!("relative/path")),
        ("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_BOGUS"})),
        (
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 99, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
        ),
        (
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_BOGUS"]}),
        ),
        (
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": u32::MAX, "size": u32::MAX}]),
        ),
        ("/linux/rootfsPropagation", json!("sideways")),
        ("/linux/personality", json!({"domain": "LINUX_BOGUS"})),
        ("/hostname", json!("h".repeat(300))),
        ("/ociVersion", json!("9.9.9")),
        ("/process/terminal", json!(true)),
    ];
    let (p, v) = rng.pick(&cases);
    (p.to_string(), v.clone())
}

/// Sets `value` at `pointer` (`-` appends to an array), creating objects on the way.
fn set_at(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let mut cur = doc;
    for tok in parent.split('/').skip(1) {
        let tok = tok.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            Value::Object(m) => m.entry(tok).or_insert(json!({})),
            Value::Array(a) => match tok.parse::<usize>().ok().filter(|&i| i < a.len()) {
                Some(i) => &mut a[i],
                None => return,
            },
            _ => return,
        };
    }
    let last = last.replace("~1", "/").replace("~0", "~");
    match cur {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) if last == "-" => a.push(value),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => a[i] = value,
            _ => a.push(value),
        },
        other => *other = json!({ last: value }),
    }
}

fn remove_at(doc: &mut Value, pointer: &str) {
    if let Some((parent, last)) = pointer.rsplit_once('/') {
        match doc.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.remove(&last.replace("~1", "/").replace("~0", "~"));
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = last.parse::<usize>() {
                    if i < a.len() {
                        a.remove(i);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One garbage config.json derived from `base` and `seed`: one to three mutations (a wrong value at a random
/// place, a removed field, or a named bad case), then possibly damaged at the byte level (truncated, a NUL or an
/// invalid UTF-8 byte spliced in, or buried in deep nesting). Returns the bytes and a short description.
pub fn garbage_config(base: &Value, seed: u64, id: &str) -> (Vec<u8>, String) {
    let mut rng = Rng::new(seed);
    let mut doc = base.clone();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let mut ptrs = Vec::new();
        pointers(&doc, String::new(), &mut ptrs);
        match rng.below(3) {
            0 if !ptrs.is_empty() => {
                let p = rng.pick(&ptrs).clone();
                let v = odd_value(&mut rng);
                what.push(format!("set {p}"));
                set_at(&mut doc, &p, v);
            }
            1 if !ptrs.is_empty() => {
                let p = rng.pick(&ptrs).clone();
                what.push(format!("remove {p}"));
                remove_at(&mut doc, &p);
            }
            _ => {
                let (p, v) = named_case(&mut rng, id);
                what.push(format!("case {p}"));
                set_at(&mut doc, &p, v);
            }
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    match rng.below(8) {
        0 => {
            let cut = rng.below(bytes.len().max(1));
            bytes.truncate(cut);
            what.push(format!("truncated at {cut}"));
        }
        1 => {
            // Inside a string value, so the damage is to a path or name rather than to the JSON syntax.
            if let Some(i) = bytes.windows(2).position(|w| w == b"/p") {
                bytes.insert(i + 1, *rng.pick(&[0xff, 0xc3, 0x80, 0x00]));
                what.push("bad byte in a string".into());
            }
        }
        2 => {
            let depth = 200 + rng.below(100_000);
            let mut deep = "[".repeat(depth).into_bytes();
            deep.extend(std::iter::repeat_n(b']', depth));
            bytes = [b"{\"x\":".as_slice(), &deep, b"}"].concat();
            what = vec![format!("nested {depth} deep")];
        }
        _ => {}
    }
    (bytes, what.join(", "))
}
