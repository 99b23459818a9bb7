//! The default runtime config — what `runc spec` writes — as the one copy both `carte spec` and
//! `carte-bundle` use. The two crates share no dependency, so each includes this file with
//! `#[path]` (lighter than a workspace crate for one function: no manifest, no lock entry, no
//! extra build unit); it may use only what both have, `serde_json`.
//!
//! It is runc's `runc spec` / `runc spec --rootless` (runc 1.1 `libcontainer/specconv/example.go`)
//! for everything that does not come from an image, with three deliberate differences: the OCI
//! version we implement, hostname `carte`, and a cgroup namespace (runc 1.2 adds one on cgroup v2
//! hosts; carte gives every container its own cgroup root). Callers choose `process.terminal`.

use serde_json::{json, Value};

/// The runtime-spec version carte implements, written into the configs it generates.
pub const OCI_VERSION: &str = "1.2.0";

/// The PATH runc puts in its default config, also the default for images without one.
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

/// The default config.json. `rootless` gives `runc spec --rootless`'s variant: a user namespace
/// mapping `uid`/`gid` to root, no network namespace, no device cgroup rule, /sys bind-mounted and
/// devpts without `gid=5` (gid 5 is not mapped in that user namespace).
pub fn default_spec(rootless: bool, terminal: bool, uid: u32, gid: u32) -> Value {
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if !rootless {
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
        json!({"type": "cgroup"}),
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
            "terminal": terminal,
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
