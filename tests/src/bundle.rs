//! Busybox bundles: a runnable rootfs plus a config.json that starts equal to `runc spec`'s default
//! (with `terminal: false`), and builder methods to change it. Owns nothing on the host outside its directory.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The static busybox every bundle copies (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// A bundle directory: `rootfs/` and the config that [`Bundle::write`] saves as `config.json`.
pub struct Bundle {
    dir: PathBuf,
    config: Value,
}

impl Bundle {
    /// Populates `dir` (which must exist) with a busybox rootfs; the config is kept in memory until `write`.
    pub fn new(dir: &Path) -> Result<Bundle> {
        let rootfs = dir.join("rootfs");
        for sub in [
            "bin",
            "proc",
            "sys",
            "dev",
            "etc",
            "tmp",
            "root",
            "home/user",
            "mnt",
        ] {
            std::fs::create_dir_all(rootfs.join(sub))
                .with_context(|| format!("mkdir {}", rootfs.join(sub).display()))?;
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox"))
            .with_context(|| format!("copy {BUSYBOX} into {}", rootfs.display()))?;
        for applet in applets()? {
            let link = rootfs.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link)
                    .with_context(|| format!("symlink {}", link.display()))?;
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
        )
        .context("write etc/passwd")?;
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n")
            .context("write etc/group")?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
            config: default_config(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn path_str(&self) -> &str {
        self.dir.to_str().unwrap_or_default()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Saves the config as `config.json` in the bundle.
    pub fn write(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.config)?;
        let path = self.dir.join("config.json");
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    }

    /// Sets the value at a JSON pointer (`/process/cwd`), creating missing objects on the way.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let mut cur = &mut self.config;
        for token in pointer.split('/').skip(1) {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let Some(obj) = cur.as_object_mut() else {
                unreachable!("just made an object")
            };
            cur = obj.entry(token.to_string()).or_insert(Value::Null);
        }
        *cur = value;
        self
    }

    /// Removes the value at a JSON pointer, if present.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        if let Some((parent, key)) = pointer.rsplit_once('/') {
            let parent = if parent.is_empty() { "" } else { parent };
            if let Some(Value::Object(obj)) = self.config.pointer_mut(parent) {
                obj.remove(key);
            }
        }
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// Runs a busybox shell script as the container's process.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    pub fn env(&mut self, entry: &str) -> &mut Self {
        self.push("/process/env", json!(entry))
    }

    pub fn mount(&mut self, mount: Value) -> &mut Self {
        self.push("/mounts", mount)
    }

    /// Drops every mount whose destination is `dest`.
    pub fn remove_mount(&mut self, dest: &str) -> &mut Self {
        if let Some(Value::Array(mounts)) = self.config.pointer_mut("/mounts") {
            mounts.retain(|m| m["destination"] != dest);
        }
        self
    }

    /// Adds a namespace of `kind`, joining `path` when given (replaces an entry of the same kind).
    pub fn namespace(&mut self, kind: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(kind);
        let ns = match path {
            Some(p) => json!({"type": kind, "path": p}),
            None => json!({"type": kind}),
        };
        self.push("/linux/namespaces", ns)
    }

    pub fn remove_namespace(&mut self, kind: &str) -> &mut Self {
        if let Some(Value::Array(list)) = self.config.pointer_mut("/linux/namespaces") {
            list.retain(|n| n["type"] != kind);
        }
        self
    }

    /// Sets `linux.resources.<key>` (e.g. `memory`, `cpu`, `pids`).
    pub fn resource(&mut self, key: &str, value: Value) -> &mut Self {
        self.set(&format!("/linux/resources/{key}"), value)
    }

    pub fn hook(&mut self, kind: &str, hook: Value) -> &mut Self {
        self.push(&format!("/hooks/{kind}"), hook)
    }

    pub fn cgroups_path(&mut self, path: &str) -> &mut Self {
        self.set("/linux/cgroupsPath", json!(path))
    }

    pub fn readonly_root(&mut self, ro: bool) -> &mut Self {
        self.set("/root/readonly", json!(ro))
    }

    /// Appends to the array at `pointer`, creating it when missing.
    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Self {
        match self.config.pointer_mut(pointer) {
            Some(Value::Array(list)) => list.push(value),
            _ => {
                self.set(pointer, json!([value]));
            }
        }
        self
    }

    /// Writes raw text as `config.json`, for malformed-config tests.
    pub fn write_raw(&self, text: &str) -> Result<()> {
        let path = self.dir.join("config.json");
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    }
}

/// The applet names of the host busybox, read once.
fn applets() -> Result<&'static [String]> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(list) = APPLETS.get() {
        return Ok(list);
    }
    let out = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .with_context(|| format!("run {BUSYBOX} --list (is busybox-static installed?)"))?;
    if !out.status.success() {
        bail!("{BUSYBOX} --list failed");
    }
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.contains('/') && *l != "busybox")
        .map(str::to_string)
        .collect();
    Ok(APPLETS.get_or_init(|| list))
}

/// `runc spec`'s default config, with `terminal: false` so tests can capture stdio.
pub fn default_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_matches_runc_spec_shape() {
        let c = default_config();
        assert_eq!(c["process"]["terminal"], false);
        assert_eq!(c["process"]["args"], json!(["sh"]));
        assert_eq!(c["mounts"].as_array().map(Vec::len), Some(7));
        assert_eq!(c["linux"]["namespaces"].as_array().map(Vec::len), Some(5));
    }
}
