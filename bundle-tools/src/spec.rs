//! The default runtime config — `runc spec`'s, shared with `carte spec` — for bundles made from
//! images. The one copy lives in `common/default_spec.rs` (see there for why it is included by
//! path); this crate differs only in `process.terminal` being off (an unpacked image runs
//! detached, with no console socket, unless `--tty` asks for one).

#[path = "../../common/default_spec.rs"]
mod common;

pub use common::{DEFAULT_CAPS, DEFAULT_PATH, MASKED_PATHS, OCI_VERSION, READONLY_PATHS};
use serde_json::Value;

/// The default config.json, as `runc spec` (`rootless`: `runc spec --rootless`) writes it, with
/// `terminal` false.
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Value {
    common::default_spec(rootless, false, uid, gid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            assert_eq!(ns.len(), 6);
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
            // Deliberate differences (common/default_spec.rs): terminal off by default, our
            // hostname and OCI version, a cgroup namespace.
            runc["process"]["terminal"] = json!(false);
            runc["hostname"] = json!("carte");
            runc["ociVersion"] = json!(OCI_VERSION);
            if let Some(ns) = ours["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "cgroup");
            }
            if let Some(ns) = runc["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "cgroup");
            }
            assert_eq!(ours, runc, "rootless={rootless}");
        }
        Ok(())
    }
}
