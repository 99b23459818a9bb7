//! config.md: root, mounts, process (args, env, cwd, user, umask, capabilities, NNP, rlimits, oomScoreAdj),
//! hostname and domainname — each checked by the probe from inside the container.

use super::{case, case_since, op, op_errno, Section};
use crate::bundle::{base_config, probe_args};
use crate::case::{Case, Ctx, Outcome};
use crate::console::{self, ConsoleSocket};
use anyhow::{anyhow, ensure, Context, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};

const S: Section = ("config", "config.md: root, mounts, process, hostname");

const EROFS: i64 = 30;

pub fn cases() -> Vec<Case> {
    vec![
        case(
            S,
            "root.path-relative",
            "a relative root.path MUST resolve against the bundle",
            root_relative,
        ),
        case(
            S,
            "root.path-absolute",
            "an absolute root.path MUST be used as is",
            root_absolute,
        ),
        case(
            S,
            "root.readonly",
            "root.readonly=true MUST make the root filesystem read-only",
            root_readonly,
        ),
        case(
            S,
            "mounts.tmpfs",
            "a tmpfs mount MUST appear at its destination with the given options",
            mount_tmpfs,
        ),
        case(
            S,
            "mounts.bind-ro",
            "a bind mount with `ro` MUST show the source read-only",
            mount_bind_ro,
        ),
        case(
            S,
            "mounts.order",
            "mounts MUST be mounted in the listed order (nested destination works)",
            mount_order,
        ),
        case(
            S,
            "mounts.linux-defaults",
            "/proc, /sys, /dev/pts, /dev/shm, /dev/mqueue present with their types",
            default_mounts,
        ),
        case(
            S,
            "process.args",
            "process.args MUST be the executed argv",
            args,
        ),
        case(
            S,
            "process.env",
            "process.env variables MUST be in the process environment",
            env,
        ),
        case(
            S,
            "process.cwd",
            "process.cwd MUST be the working directory",
            cwd,
        ),
        case(
            S,
            "process.user",
            "uid, gid and additionalGids MUST be applied",
            user,
        ),
        case(S, "process.umask", "user.umask MUST be applied", umask),
        case(
            S,
            "process.capabilities",
            "bounding/effective/permitted/inheritable MUST be exactly the configured sets",
            capabilities,
        ),
        case(
            S,
            "process.capabilities.ambient",
            "ambient capabilities MUST reach a non-root process",
            ambient,
        ),
        case(
            S,
            "process.noNewPrivileges",
            "noNewPrivileges=true MUST set no_new_privs; false MUST NOT",
            nnp,
        ),
        case(
            S,
            "process.rlimits",
            "each rlimit MUST be set to its soft and hard value",
            rlimits,
        ),
        case(
            S,
            "process.oomScoreAdj",
            "oomScoreAdj MUST be written to /proc/self/oom_score_adj",
            oom_score_adj,
        ),
        case(
            S,
            "process.terminal-false",
            "terminal=false: stdio MUST NOT be a terminal",
            terminal_false,
        ),
        case(
            S,
            "process.terminal",
            "terminal=true: stdio MUST be a pseudoterminal (master sent over --console-socket)",
            terminal_true,
        ),
        case(
            S,
            "process.consoleSize",
            "consoleSize MUST set the terminal's rows and columns",
            console_size,
        ),
        case(
            S,
            "hostname",
            "hostname MUST be set in the container's UTS namespace",
            hostname,
        ),
        case_since(
            S,
            "domainname",
            "domainname MUST be set in the container's UTS namespace",
            "1.2.0",
            domainname,
        ),
    ]
}

fn root_relative(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["read:/etc/group"], |_| {})?;
    ensure!(
        op(&r, "read:/etc/group")["value"]
            .as_str()
            .is_some_and(|v| v.contains("user:x:1000")),
        "rootfs is not the bundle's"
    );
    Ok(Outcome::Pass)
}

fn root_absolute(ctx: &Ctx) -> Result<Outcome> {
    // Build a second rootfs outside the bundle; only it has the marker.
    let other = ctx.dir.join("elsewhere");
    let rootfs = ctx.template.bundle(&other)?;
    std::fs::write(rootfs.join("marker"), "absolute")?;
    let abs = rootfs.display().to_string();
    let r = ctx.probe_with(&["read:/marker"], |c| c["root"]["path"] = json!(abs))?;
    ensure!(
        op(&r, "read:/marker")["value"] == "absolute",
        "the absolute root.path was not used: {}",
        op(&r, "read:/marker")
    );
    Ok(Outcome::Pass)
}

fn root_readonly(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["touch:/newfile", "touch:/dev/shm/ok"], |c| {
        c["root"]["readonly"] = json!(true)
    })?;
    ensure!(
        op_errno(&r, "touch:/newfile") == Some(EROFS),
        "creating /newfile: {}",
        op(&r, "touch:/newfile")
    );
    ensure!(
        op(&r, "touch:/dev/shm/ok")["ok"] == true,
        "a tmpfs below a read-only root must stay writable: {}",
        op(&r, "touch:/dev/shm/ok")
    );
    Ok(Outcome::Pass)
}

fn find_mount<'v>(r: &'v Value, target: &str) -> Option<&'v Value> {
    r["mounts"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["target"] == target)
}

fn has_opt(m: &Value, key: &str, opt: &str) -> bool {
    m[key]
        .as_array()
        .is_some_and(|a| a.iter().any(|o| o == opt))
}

fn mount_tmpfs(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["stat:/mnt/t"], |c| {
        push_mount(
            c,
            json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "noexec", "mode=700", "size=1m"]}),
        )
    })?;
    let m = find_mount(&r, "/mnt/t").context("no mount at /mnt/t")?;
    ensure!(
        m["fstype"] == "tmpfs",
        "/mnt/t is {} not tmpfs",
        m["fstype"]
    );
    for o in ["nosuid", "nodev", "noexec"] {
        ensure!(
            has_opt(m, "options", o),
            "/mnt/t lacks `{o}`: {}",
            m["options"]
        );
    }
    ensure!(
        has_opt(m, "super", "size=1024k"),
        "/mnt/t size is not 1m: {}",
        m["super"]
    );
    ensure!(
        op(&r, "stat:/mnt/t")["mode"] == 0o700,
        "/mnt/t mode is {:o}",
        op(&r, "stat:/mnt/t")["mode"].as_u64().unwrap_or(0)
    );
    Ok(Outcome::Pass)
}

fn push_mount(config: &mut Value, mount: Value) {
    if let Some(m) = config["mounts"].as_array_mut() {
        m.push(mount);
    }
}

fn mount_bind_ro(ctx: &Ctx) -> Result<Outcome> {
    let src = ctx.dir.join("bind-src");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("hello"), "from the host")?;
    let source = src.display().to_string();
    let r = ctx.probe_with(&["read:/mnt/b/hello", "touch:/mnt/b/new"], |c| {
        push_mount(c, json!({"destination": "/mnt/b", "type": "bind", "source": source, "options": ["rbind", "ro"]}))
    })?;
    ensure!(
        op(&r, "read:/mnt/b/hello")["value"] == "from the host",
        "bind content: {}",
        op(&r, "read:/mnt/b/hello")
    );
    ensure!(
        op_errno(&r, "touch:/mnt/b/new") == Some(EROFS),
        "write into the ro bind: {}",
        op(&r, "touch:/mnt/b/new")
    );
    let m = find_mount(&r, "/mnt/b").context("no mount at /mnt/b")?;
    ensure!(
        has_opt(m, "options", "ro"),
        "/mnt/b options {} lack ro",
        m["options"]
    );
    Ok(Outcome::Pass)
}

fn mount_order(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        push_mount(c, json!({"destination": "/mnt/o", "type": "tmpfs", "source": "outer", "options": ["size=1m"]}));
        push_mount(c, json!({"destination": "/mnt/o/inner", "type": "tmpfs", "source": "inner", "options": ["size=1m"]}));
    })?;
    let mounts = r["mounts"].as_array().context("no mounts in report")?;
    let pos = |t: &str| mounts.iter().position(|m| m["target"] == t);
    match (pos("/mnt/o"), pos("/mnt/o/inner")) {
        (Some(a), Some(b)) if a < b => Ok(Outcome::Pass),
        (a, b) => anyhow::bail!(
            "outer at {a:?}, inner at {b:?} in mountinfo (inner must be mounted on top of outer)"
        ),
    }
}

fn default_mounts(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |_| {})?;
    for (target, fstype) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        let m = find_mount(&r, target).with_context(|| format!("no mount at {target}"))?;
        ensure!(
            m["fstype"] == fstype,
            "{target} is {} not {fstype}",
            m["fstype"]
        );
    }
    let sys = find_mount(&r, "/sys").context("no /sys")?;
    ensure!(
        has_opt(sys, "options", "ro"),
        "/sys was asked `ro`: {}",
        sys["options"]
    );
    Ok(Outcome::Pass)
}

fn args(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&["read:/etc/hostname", "x y"], |_| {})?;
    ensure!(
        r["args"] == json!(["/carte-probe", "report", "read:/etc/hostname", "x y"]),
        "argv was {}",
        r["args"]
    );
    Ok(Outcome::Pass)
}

fn env(ctx: &Ctx) -> Result<Outcome> {
    let want = [
        "PATH=/bin",
        "CARTE_A=1",
        "CARTE_SPACES=a b  c",
        "CARTE_EMPTY=",
    ];
    let r = ctx.probe_with(&[], |c| c["process"]["env"] = json!(want))?;
    let got: Vec<&str> = r["env"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for w in want {
        ensure!(got.contains(&w), "`{w}` missing from env {got:?}");
    }
    Ok(Outcome::Pass)
}

fn cwd(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| c["process"]["cwd"] = json!("/home/user"))?;
    ensure!(r["cwd"] == "/home/user", "cwd is {}", r["cwd"]);
    Ok(Outcome::Pass)
}

fn user(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 1234]})
    })?;
    let ids = &r["ids"];
    ensure!(
        ids["uid"] == 1000 && ids["euid"] == 1000,
        "uid/euid are {}/{}",
        ids["uid"],
        ids["euid"]
    );
    ensure!(
        ids["gid"] == 1000 && ids["egid"] == 1000,
        "gid/egid are {}/{}",
        ids["gid"],
        ids["egid"]
    );
    let groups: Vec<u64> = ids["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    ensure!(
        groups.contains(&5) && groups.contains(&1234),
        "supplementary groups {groups:?} lack 5 and 1234"
    );
    ensure!(
        groups.iter().all(|g| [5, 1234, 1000].contains(g)),
        "unexpected supplementary groups {groups:?}"
    );
    Ok(Outcome::Pass)
}

fn umask(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| c["process"]["user"]["umask"] = json!(0o027))?;
    ensure!(
        r["status"]["Umask"] == "0027",
        "Umask is {}",
        r["status"]["Umask"]
    );
    Ok(Outcome::Pass)
}

/// Capability names → the kernel's bit mask as /proc/self/status prints it.
fn cap_mask(names: &[&str]) -> String {
    let bit = |n: &str| match n {
        "CAP_CHOWN" => 0,
        "CAP_KILL" => 5,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_ADMIN" => 21,
        _ => 63,
    };
    format!("{:016x}", names.iter().fold(0u64, |m, n| m | 1 << bit(n)))
}

fn capabilities(ctx: &Ctx) -> Result<Outcome> {
    let set = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"];
    let r = ctx.probe_with(&[], |c| {
        c["process"]["capabilities"] = json!({"bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": []})
    })?;
    let st = &r["status"];
    for (field, want) in [
        ("CapBnd", cap_mask(&set)),
        ("CapEff", cap_mask(&set)),
        ("CapPrm", cap_mask(&set)),
        ("CapInh", cap_mask(&[])),
        ("CapAmb", cap_mask(&[])),
    ] {
        ensure!(
            st[field] == json!(want),
            "{field} is {} not {want}",
            st[field]
        );
    }
    Ok(Outcome::Pass)
}

fn ambient(ctx: &Ctx) -> Result<Outcome> {
    let kill = ["CAP_KILL"];
    let r = ctx.probe_with(&[], |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": kill, "permitted": kill, "inheritable": kill, "ambient": kill})
    })?;
    let st = &r["status"];
    for (field, want) in [
        ("CapAmb", cap_mask(&kill)),
        ("CapEff", cap_mask(&kill)),
        ("CapBnd", cap_mask(&["CAP_KILL", "CAP_CHOWN"])),
    ] {
        ensure!(
            st[field] == json!(want),
            "{field} is {} not {want}",
            st[field]
        );
    }
    Ok(Outcome::Pass)
}

fn nnp(ctx: &Ctx) -> Result<Outcome> {
    let on = ctx.probe_with(&[], |c| c["process"]["noNewPrivileges"] = json!(true))?;
    ensure!(
        on["status"]["NoNewPrivs"] == "1",
        "noNewPrivileges=true gave NoNewPrivs {}",
        on["status"]["NoNewPrivs"]
    );
    let off = ctx.probe_with(&[], |c| c["process"]["noNewPrivileges"] = json!(false))?;
    ensure!(
        off["status"]["NoNewPrivs"] == "0",
        "noNewPrivileges=false gave NoNewPrivs {}",
        off["status"]["NoNewPrivs"]
    );
    Ok(Outcome::Pass)
}

fn rlimits(ctx: &Ctx) -> Result<Outcome> {
    let want = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
                      {"type": "RLIMIT_NPROC", "soft": 777, "hard": 888}]);
    let r = ctx.probe_with(&[], |c| c["process"]["rlimits"] = want.clone())?;
    for w in want.as_array().into_iter().flatten() {
        let name = w["type"].as_str().unwrap_or("?");
        let got = &r["rlimits"][name];
        ensure!(
            got["soft"] == w["soft"] && got["hard"] == w["hard"],
            "{name} is {got}, want soft {} hard {}",
            w["soft"],
            w["hard"]
        );
    }
    Ok(Outcome::Pass)
}

fn oom_score_adj(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| c["process"]["oomScoreAdj"] = json!(123))?;
    let got = r["/proc/self/oom_score_adj"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_string();
    ensure!(got == "123", "oom_score_adj is `{got}`");
    Ok(Outcome::Pass)
}

fn terminal_false(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |_| {})?;
    ensure!(
        r["isatty"] == json!([false, false, false]),
        "isatty(0,1,2) = {}",
        r["isatty"]
    );
    Ok(Outcome::Pass)
}

/// Run the probe on a terminal: receive the pty master over `--console-socket` and read the report from it.
fn terminal_probe(ctx: &Ctx) -> Result<Value> {
    let args = probe_args(&["stat:/dev/console"]);
    let mut config = base_config(&args.iter().map(String::as_str).collect::<Vec<_>>());
    config["process"]["terminal"] = json!(true);
    config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    let b = ctx.bundle(&config)?;
    let sock = ConsoleSocket::bind(&ctx.dir.join("console.sock"))?;
    let path = sock.path.display().to_string();
    let cancel = AtomicBool::new(false);
    let deadline = ctx.deadline();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| sock.receive(deadline, &cancel));
        let created = ctx.create_with(&b, &["--console-socket", &path]);
        cancel.store(true, Ordering::Relaxed);
        let master = receiver
            .join()
            .map_err(|_| anyhow!("console receiver panicked"))?;
        let c = created?;
        let master = master?;
        c.start()?;
        let text = console::drain(master, c.init_pid, ctx.deadline())?;
        let line = text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'));
        let line = line.with_context(|| {
            format!(
                "no report on the terminal: {:?}",
                text.chars().take(200).collect::<String>()
            )
        })?;
        serde_json::from_str(line).context("parse probe report from the terminal")
    })
}

fn terminal_true(ctx: &Ctx) -> Result<Outcome> {
    let r = terminal_probe(ctx)?;
    ensure!(
        r["isatty"] == json!([true, true, true]),
        "isatty(0,1,2) = {}",
        r["isatty"]
    );
    // config-linux.md: with a terminal, /dev/console is the pty (bind-mounted): a pts device, major 136.
    let console = op(&r, "stat:/dev/console");
    ensure!(
        console["type"] == "c" && console["major"] == 136,
        "/dev/console is not the pty: {console}"
    );
    Ok(Outcome::Pass)
}

fn console_size(ctx: &Ctx) -> Result<Outcome> {
    let r = terminal_probe(ctx)?;
    ensure!(
        r["winsize"] == json!({"rows": 33, "cols": 111}),
        "terminal size is {}, want 33x111",
        r["winsize"]
    );
    Ok(Outcome::Pass)
}

fn hostname(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| c["hostname"] = json!("conformance-host"))?;
    ensure!(
        r["uname"]["nodename"] == "conformance-host",
        "hostname is {}",
        r["uname"]["nodename"]
    );
    Ok(Outcome::Pass)
}

fn domainname(ctx: &Ctx) -> Result<Outcome> {
    let r = ctx.probe_with(&[], |c| c["domainname"] = json!("conformance.test"))?;
    ensure!(
        r["uname"]["domainname"] == "conformance.test",
        "domainname is {}",
        r["uname"]["domainname"]
    );
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_masks_match_proc_status_format() {
        assert_eq!(cap_mask(&[]), "0000000000000000");
        assert_eq!(cap_mask(&["CAP_CHOWN", "CAP_KILL"]), "0000000000000021");
    }
}
