//! Reading a bundle: `config.json` parsed with oci-spec, errors that name the JSON field, and the
//! rootfs resolved against the bundle directory.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

pub struct Bundle {
    /// Absolute, canonical bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical rootfs directory.
    pub rootfs: PathBuf,
    pub spec: Spec,
    /// The raw bytes, copied into the state dir for teardown and poststop hooks.
    pub raw: Vec<u8>,
}

/// Parse config.json bytes; the error names the field: `config.json: process.args: invalid type…`.
/// Capability names the runtime does not know are dropped with a warning (config.md: "runtimes
/// SHOULD log a warning for unknown capabilities and continue"), not a parse failure.
pub fn parse_spec(raw: &[u8], file: &str) -> Result<Spec> {
    let mut v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| Error::InvalidSpec {
        file: file.to_string(),
        field: "(document)".into(),
        reason: e.to_string(),
    })?;
    drop_unknown_caps(&mut v, "/process/capabilities");
    absolute_destinations(&mut v);
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        Error::InvalidSpec {
            file: file.to_string(),
            field: if path == "." {
                "(document)".into()
            } else {
                path
            },
            reason: e.into_inner().to_string(),
        }
    })
}

/// A runtime-spec Process document (`exec --process`), read as runc reads it: unknown
/// capabilities are warnings, as in config.json, and a missing `user` is uid 0, gid 0 (Go's zero
/// value; oci-spec requires the field).
pub fn parse_process(raw: &[u8], file: &str) -> Result<oci_spec::runtime::Process> {
    let mut v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| Error::InvalidSpec {
        file: file.to_string(),
        field: "(document)".into(),
        reason: e.to_string(),
    })?;
    drop_unknown_caps(&mut v, "/capabilities");
    if let Some(o) = v.as_object_mut() {
        o.entry("user").or_insert_with(|| serde_json::json!({}));
    }
    serde_path_to_error::deserialize(v).map_err(|e| Error::InvalidSpec {
        file: file.to_string(),
        field: e.path().to_string(),
        reason: e.into_inner().to_string(),
    })
}

/// config.md (1.1+): a relative mount destination "MUST be interpreted as relative to `/`"
/// (deprecated, kept for old tools): made absolute here, once, so nothing after sees one.
fn absolute_destinations(v: &mut serde_json::Value) {
    let Some(mounts) = v.get_mut("mounts").and_then(|m| m.as_array_mut()) else {
        return;
    };
    for (i, m) in mounts.iter_mut().enumerate() {
        if let Some(d) = m.get_mut("destination") {
            if let Some(rel) = d.as_str().filter(|s| !s.is_empty() && !s.starts_with('/')) {
                log::warn!(
                    "mounts[{i}].destination {rel:?} is relative: taken as /{rel} (deprecated)"
                );
                *d = serde_json::Value::String(format!("/{rel}"));
            }
        }
    }
}

fn drop_unknown_caps(v: &mut serde_json::Value, pointer: &str) {
    let Some(caps) = v.pointer_mut(pointer).and_then(|c| c.as_object_mut()) else {
        return;
    };
    for (set, list) in caps.iter_mut() {
        if let Some(arr) = list.as_array_mut() {
            arr.retain(|c| {
                let known =
                    serde_json::from_value::<oci_spec::runtime::Capability>(c.clone()).is_ok();
                if !known {
                    log::warn!("process.capabilities.{set}: unknown capability {c} ignored");
                }
                known
            });
        }
    }
}

pub fn load(dir: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(dir).ctx("open bundle", dir.display())?;
    let cfg = dir.join("config.json");
    let raw = std::fs::read(&cfg).ctx("read", cfg.display())?;
    let mut spec = parse_spec(&raw, "config.json")?;
    crate::lsm::label_mounts(&mut spec)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::spec("root", "missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| Error::spec("root.path", format!("{}: {e}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(Error::spec(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    Ok(Bundle {
        dir,
        rootfs,
        spec,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_without_user_is_root() {
        let p = parse_process(br#"{"args":["true"],"cwd":"/"}"#, "p.json").unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        let p = parse_process(
            br#"{"args":["true"],"cwd":"/","user":{"uid":5},"capabilities":{"bounding":["CAP_NOPE","CAP_KILL"]}}"#,
            "p.json",
        )
        .unwrap();
        assert_eq!(p.user().uid(), 5);
        let b = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert_eq!(b.len(), 1);
        let e = parse_process(br#"{"args":["true"]}"#, "p.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cwd"), "{e}");
    }

    #[test]
    fn error_names_the_field() {
        let raw =
            br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"args":"sh"}}"#;
        let e = parse_spec(raw, "config.json").unwrap_err().to_string();
        assert!(
            e.starts_with("config.json: process.args: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn relative_destinations_are_under_root() {
        let raw = br#"{"ociVersion":"1.0.2","mounts":[{"destination":"mnt/x","type":"tmpfs"},{"destination":"/abs","type":"tmpfs"}]}"#;
        let s = parse_spec(raw, "config.json").unwrap();
        let d: Vec<_> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().clone())
            .collect();
        assert_eq!(d, [PathBuf::from("/mnt/x"), PathBuf::from("/abs")]);
    }

    #[test]
    fn truncated_json_is_one_line() {
        let e = parse_spec(br#"{"ociVersion":"1.0"#, "config.json")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config.json:") && !e.contains('\n'), "{e}");
    }
}
