//! `carte spec`: write the default config.json, the same as `runc spec` (busybox-ready: `sh`,
//! a terminal, the five namespaces, runc's masked and read-only paths and capabilities).

use crate::cli::{Cli, SpecArgs};
use crate::error::{Context, Error, Result};
use serde_json::{json, Value};

pub const OCI_VERSION: &str = "1.2.0";

const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

pub fn default_spec(rootless: bool) -> Value {
    let mut s = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS, "ambient": CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "carte",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        s["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}]);
        s["linux"]["resources"] = Value::Null;
        if let Some(o) = s["linux"].as_object_mut() {
            o.remove("resources");
        }
        // Without a network namespace of its own the container may only bind the host's /sys.
        s["mounts"][5] = json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        if let Some(m) = s["mounts"].as_array_mut() {
            m.retain(|m| m["type"] != "cgroup");
        }
    }
    s
}

pub fn run(cli: &Cli, a: &SpecArgs) -> Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        return Err(Error::Usage(format!(
            "{}: already exists; remove it first",
            path.display()
        )));
    }
    let mut spec = default_spec(a.rootless);
    if let Some(net) = &a.net {
        if a.rootless {
            return Err(Error::Usage(
                "spec: --net needs root (CNI plugins configure the host); drop --rootless".into(),
            ));
        }
        let carte = std::env::current_exe().ctx("locate", "the carte binary")?;
        crate::net::hooks::add_to_spec(&mut spec, &carte, &cli.root, net)?;
    }
    let text = serde_json::to_string_pretty(&spec).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&path, text + "\n").ctx("write", path.display())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_validates() {
        for rootless in [false, true] {
            let raw = serde_json::to_vec(&default_spec(rootless)).unwrap();
            let spec = crate::bundle::parse_spec(&raw, "config.json").unwrap();
            crate::validate::check(&spec).unwrap();
            crate::process::plan::build(&spec).unwrap();
        }
    }
}
