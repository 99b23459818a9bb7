//! The default runtime config — what `runc spec` (and `carte spec`) writes — kept apart so others can reuse it.
//!
//! It mirrors runc 1.1's `runc spec` / `runc spec --rootless` for everything that does not come from an image:
//! namespaces, default mounts, masked and read-only paths, capabilities, rlimits, device cgroup rule.

use serde_json::{json, Value};

/// The OCI runtime spec version we write (runc 1.1's).
pub const OCI_VERSION: &str = "1.0.2-dev";

/// The PATH runc puts in its default config, also our default for images without one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities runc's default config grants (all four sets).
pub const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default config.json, as `runc spec` writes it, with `hostname` "carte".
/// `rootless` gives `runc spec --rootless`'s variant: a user namespace mapping `uid`/`gid` to root,
/// no network namespace, no device cgroup rule, /sys bind-mounted and devpts without `gid=5`.
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Value {
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if !rootless {
        // gid 5 (tty) may not be mapped in a user namespace.
        devpts.push("gid=5");
    }
    let sys = if rootless {
        // sysfs cannot be mounted without owning the network namespace: bind the host's read-only.
        json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    } else {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]})
    };
    let mut namespaces = vec![json!({"type": "pid"})];
    if !rootless {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ]);
    if rootless {
        namespaces.push(json!({"type": "user"}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    });
    if rootless {
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    } else {
        linux["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    }
    json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
                "ambient": DEFAULT_CAPS,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "carte",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            sys,
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated config parses as an OCI runtime spec.
    #[test]
    fn parses_as_oci_spec() -> Result<(), Box<dyn std::error::Error>> {
        for rootless in [false, true] {
            let v = default_spec(rootless, 1000, 1000);
            let spec: oci_spec::runtime::Spec = serde_json::from_value(v)?;
            let ns = spec
                .linux()
                .as_ref()
                .and_then(|l| l.namespaces().clone())
                .unwrap_or_default();
            assert_eq!(ns.len(), 5);
        }
        Ok(())
    }

    /// Same as `runc spec` for everything but the fields we choose on purpose.
    #[test]
    fn matches_runc_spec() -> Result<(), Box<dyn std::error::Error>> {
        for rootless in [false, true] {
            let dir = tempfile::tempdir()?;
            let mut cmd = std::process::Command::new("runc");
            cmd.arg("spec").arg("--bundle").arg(dir.path());
            if rootless {
                cmd.arg("--rootless");
            }
            match cmd.status() {
                Ok(s) if s.success() => {}
                _ => {
                    eprintln!("skipped: runc is not available");
                    return Ok(());
                }
            }
            let mut runc: Value =
                serde_json::from_slice(&std::fs::read(dir.path().join("config.json"))?)?;
            let euid = nix::unistd::geteuid().as_raw();
            let egid = nix::unistd::getegid().as_raw();
            let mut ours = default_spec(rootless, euid, egid);
            // Deliberate differences: terminal off by default, our hostname.
            runc["process"]["terminal"] = json!(false);
            runc["hostname"] = json!("carte");
            ours["hostname"] = json!("carte");
            assert_eq!(ours, runc, "rootless={rootless}");
        }
        Ok(())
    }
}
