//! `carte spec`: write the default config.json, the same as `runc spec` (busybox-ready: `sh`,
//! a terminal, runc's namespaces plus cgroup, masked and read-only paths and capabilities).

use crate::cli::{Cli, SpecArgs};
use crate::error::{Context, Error, Result};
use serde_json::Value;

#[path = "../../../common/default_spec.rs"]
mod common;

/// The runtime-spec version carte implements (`features`' ociVersionMax, `--version`).
pub use common::OCI_VERSION;

/// `runc spec`'s default config (`rootless`: `runc spec --rootless`'s), terminal on as in runc.
/// The one copy is `common/default_spec.rs`, shared with carte-bundle.
pub fn default_spec(rootless: bool) -> Value {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    common::default_spec(rootless, true, uid, gid)
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
