//! Test bundles: one busybox + probe rootfs template built once per run, hard-linked into a fresh bundle per
//! case (cheap, and every case gets its own directories), plus the base `config.json` the cases edit.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where the probe lives inside every rootfs.
pub const PROBE: &str = "/carte-probe";

/// The read-only template every bundle's rootfs is linked from.
#[derive(Debug)]
pub struct Template {
    pub rootfs: PathBuf,
    /// The probe on the host, for hooks (they run in the runtime's namespace).
    pub host_probe: PathBuf,
}

impl Template {
    /// Build `dir/rootfs-template` from `busybox` (static) and the static `probe`.
    pub fn build(dir: &Path, busybox: &Path, probe: &Path) -> Result<Template> {
        check_static(busybox)?;
        check_static(probe)?;
        let rootfs = dir.join("rootfs-template");
        for sub in [
            "bin",
            "etc",
            "tmp",
            "proc",
            "sys",
            "dev",
            "root",
            "home/user",
        ] {
            let p = rootfs.join(sub);
            std::fs::create_dir_all(&p).with_context(|| format!("create `{}`", p.display()))?;
        }
        copy(busybox, &rootfs.join("bin/busybox"))?;
        copy(probe, &rootfs.join(PROBE.trim_start_matches('/')))?;
        let host_probe = dir.join("carte-probe");
        copy(probe, &host_probe)?;
        for applet in busybox_applets(busybox)? {
            let link = rootfs.join("bin").join(&applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link)
                    .with_context(|| format!("link `{}`", link.display()))?;
            }
        }
        write(
            &rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
        )?;
        write(
            &rootfs.join("etc/group"),
            "root:x:0:\ntty:x:5:\nuser:x:1000:\n",
        )?;
        std::fs::set_permissions(
            rootfs.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .context("chmod rootfs /tmp")?;
        Ok(Template { rootfs, host_probe })
    }

    /// A new bundle at `dir` (created): `rootfs/` mirrors the template with regular files hard-linked.
    pub fn bundle(&self, dir: &Path) -> Result<PathBuf> {
        let rootfs = dir.join("rootfs");
        link_tree(&self.rootfs, &rootfs)?;
        Ok(rootfs)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write `{}`", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copy `{}` to `{}`", from.display(), to.display()))?;
    Ok(())
}

fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("run `{} --list`", busybox.display()))?;
    if !out.status.success() {
        bail!("run `{} --list`: exit {}", busybox.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|a| !a.contains('/'))
        .collect())
}

/// A dynamically linked binary would not start in a rootfs without a loader: refuse it up front with a clear line.
fn check_static(path: &Path) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("read `{}`", path.display()))?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        bail!("check `{}`: not a 64-bit ELF executable", path.display());
    }
    let u = |off: usize, len: usize| -> u64 {
        data.get(off..off + len)
            .map(|b| {
                b.iter()
                    .rev()
                    .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
            })
            .unwrap_or(0)
    };
    let (phoff, phentsize, phnum) = (u(32, 8) as usize, u(54, 2) as usize, u(56, 2) as usize);
    const PT_INTERP: u64 = 3;
    if (0..phnum).any(|i| u(phoff + i * phentsize, 4) == PT_INTERP) {
        bail!(
            "check `{}`: dynamically linked (has an ELF interpreter); build it static (see conformance/README.md)",
            path.display()
        );
    }
    Ok(())
}

fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create `{}`", to.display()))?;
    let meta = std::fs::metadata(from).with_context(|| format!("stat `{}`", from.display()))?;
    std::fs::set_permissions(to, meta.permissions())
        .with_context(|| format!("chmod `{}`", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("list `{}`", from.display()))? {
        let entry = entry.with_context(|| format!("list `{}`", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry
            .file_type()
            .with_context(|| format!("stat `{}`", src.display()))?;
        if ft.is_dir() {
            link_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&src)
                .with_context(|| format!("readlink `{}`", src.display()))?;
            std::os::unix::fs::symlink(target, &dst)
                .with_context(|| format!("link `{}`", dst.display()))?;
        } else {
            std::fs::hard_link(&src, &dst).with_context(|| format!("link `{}`", dst.display()))?;
        }
    }
    Ok(())
}

/// `runc spec`'s default (terminal off, writable root so marker files work), running the probe.
pub fn base_config(args: &[&str]) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "carte-conf",
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
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// The probe's `report` command line with the given operations.
pub fn probe_args(ops: &[&str]) -> Vec<String> {
    let mut args = vec![PROBE.to_string(), "report".to_string()];
    args.extend(ops.iter().map(|s| s.to_string()));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_config_runs_the_given_args() {
        let c = base_config(&["/bin/true"]);
        assert_eq!(c["process"]["args"], json!(["/bin/true"]));
        assert_eq!(c["root"]["path"], "rootfs");
    }

    #[test]
    fn static_check_rejects_non_elf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        assert!(check_static(&p).is_err());
    }

    #[test]
    fn static_check_rejects_dynamic_binary() {
        // The unit-test binary itself is built without crt-static, so it has an interpreter.
        let me = std::env::current_exe().unwrap();
        let err = check_static(&me).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
    }
}
