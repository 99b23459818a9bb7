//! Linux security modules: `process.apparmorProfile`, `process.selinuxLabel` and
//! `linux.mountLabel`. A config that names a profile or label on a host without that module is
//! refused (running the container unconfined would silently drop a protection its author asked
//! for). Where the module is on, the profile or label is set "on exec": the kernel applies it at
//! the execve of the container's process, after all of carte's setup ran unconfined.

use crate::error::{Error, Result};
use oci_spec::runtime::{Process, Spec};
use std::path::Path;

/// What the process asks of the security modules, checked against the host.
#[derive(Debug, Default, Clone)]
pub struct Labels {
    pub apparmor: Option<String>,
    pub selinux: Option<String>,
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim_start().starts_with('Y'))
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn named(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// The process's profile and label, or a one-line error naming the field the host cannot honour.
pub fn labels_of(p: &Process) -> Result<Labels> {
    let l = Labels {
        apparmor: named(p.apparmor_profile()),
        selinux: named(p.selinux_label()),
    };
    if let Some(a) = &l.apparmor {
        if !apparmor_enabled() {
            return Err(Error::spec(
                "process.apparmorProfile",
                format!("profile {a:?} named, but AppArmor is not enabled on this host"),
            ));
        }
    }
    if let Some(s) = &l.selinux {
        if !selinux_enabled() {
            return Err(Error::spec(
                "process.selinuxLabel",
                format!("label {s:?} named, but SELinux is not enabled on this host"),
            ));
        }
    }
    Ok(l)
}

/// `linux.mountLabel`: the SELinux context of the filesystems carte creates (tmpfs, devpts,
/// mqueue), given as their `context=` option, as runc does. Refused where SELinux is off.
pub fn label_mounts(spec: &mut Spec) -> Result<()> {
    let Some(label) = named(&spec.linux().as_ref().and_then(|l| l.mount_label().clone())) else {
        return Ok(());
    };
    if !selinux_enabled() {
        return Err(Error::spec(
            "linux.mountLabel",
            format!("label {label:?} named, but SELinux is not enabled on this host"),
        ));
    }
    let Some(mounts) = spec.mounts_mut().as_mut() else {
        return Ok(());
    };
    for m in mounts.iter_mut() {
        if matches!(m.typ().as_deref(), Some("tmpfs" | "devpts" | "mqueue")) {
            let mut opts = m.options().clone().unwrap_or_default();
            if !opts.iter().any(|o| o.starts_with("context=")) {
                opts.push(format!("context=\"{label}\""));
            }
            m.set_options(Some(opts));
        }
    }
    Ok(())
}

/// Set the profile and label the next execve takes on. Called last before exec, so carte's own
/// setup is not confined by them.
pub fn apply_on_exec(l: &Labels) -> Result<()> {
    if let Some(profile) = &l.apparmor {
        log::debug!("AppArmor profile {profile} on exec");
        // The per-LSM file (Linux 5.8+) first; the shared one is AppArmor's on older kernels.
        let value = format!("exec {profile}");
        write_attr("attr/apparmor/exec", &value).or_else(|_| write_attr("attr/exec", &value))?;
    }
    if let Some(label) = &l.selinux {
        log::debug!("SELinux label {label} on exec");
        write_attr("attr/exec", label)?;
    }
    Ok(())
}

/// Write our own `attr/*` file through a private procfs (`procfs`): the container's /proc could
/// be a fake, or have another procfs file mounted over the attribute (CVE-2019-16884,
/// CVE-2025-52881).
fn write_attr(sub: &str, value: &str) -> Result<()> {
    crate::procfs::write(
        crate::procfs::Base::ThreadSelf,
        Path::new(sub),
        value.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: &str) -> Process {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn empty_names_ask_for_nothing() {
        let l = labels_of(&process(
            r#"{"cwd":"/","user":{"uid":0,"gid":0},"apparmorProfile":"","selinuxLabel":" "}"#,
        ))
        .unwrap();
        assert!(l.apparmor.is_none() && l.selinux.is_none());
    }

    #[test]
    fn a_profile_the_host_cannot_apply_is_refused() {
        let p = process(r#"{"cwd":"/","user":{"uid":0,"gid":0},"apparmorProfile":"x"}"#);
        match (apparmor_enabled(), labels_of(&p)) {
            (false, Err(e)) => assert!(e.to_string().contains("process.apparmorProfile"), "{e}"),
            (true, Ok(l)) => assert_eq!(l.apparmor.as_deref(), Some("x")),
            (on, r) => panic!("AppArmor enabled: {on}, got {r:?}"),
        }
    }
}
