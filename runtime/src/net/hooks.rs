//! `--net`: the two OCI hooks that network a container through `carte net`, written into a
//! config.json. Hooks are runtime-agnostic, so the bundle networks the same under runc.
//! The hooks carry `--root`: a hook gets the container's state but not the runtime's flags, and
//! the result cache must be found again by `del` under the same state root.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

const HOOK_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Generous: twenty containers started at once share two cores and one IPAM lock.
const HOOK_TIMEOUT_S: u64 = 120;

/// The hook running `carte --root ROOT net ACTION NETWORK`.
pub fn hook(carte: &Path, root: &Path, action: &str, network: &str) -> Value {
    json!({
        "path": carte,
        "args": ["carte", "--root", root, "net", action, network],
        "env": [HOOK_PATH_ENV],
        "timeout": HOOK_TIMEOUT_S
    })
}

/// Add the createRuntime/poststop hooks and a new network namespace to `spec`.
pub fn add_to_spec(spec: &mut Value, carte: &Path, root: &Path, network: &str) -> Result<()> {
    // Fail now, not at the first `create`, when the network does not exist.
    super::conf::find(network)?;
    let root = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("get", Path::new("current directory"), e))?
            .join(root)
    };
    let ns = &mut spec["linux"]["namespaces"];
    if !ns.is_array() {
        *ns = json!([]);
    }
    if let Some(list) = ns.as_array_mut() {
        if list
            .iter()
            .any(|n| n["type"] == "network" && n.get("path").is_some())
        {
            return Err(Error::spec(
                "linux.namespaces",
                "--net: the container joins an existing network namespace; CNI needs a new one",
            ));
        }
        if !list.iter().any(|n| n["type"] == "network") {
            list.push(json!({"type": "network"}));
        }
    }
    for (kind, action) in [("createRuntime", "add"), ("poststop", "del")] {
        let h = &mut spec["hooks"][kind];
        if !h.is_array() {
            *h = json!([]);
        }
        if let Some(list) = h.as_array_mut() {
            list.push(hook(carte, &root, action, network));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_and_a_network_namespace_are_added() {
        let mut spec = crate::verbs::spec::default_spec(false);
        spec["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]);
        add_to_spec(
            &mut spec,
            Path::new("/usr/bin/carte"),
            Path::new("/run/x"),
            "carte",
        )
        .unwrap();
        assert!(spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "network"})));
        let add = &spec["hooks"]["createRuntime"][0];
        assert_eq!(add["path"], "/usr/bin/carte");
        assert_eq!(
            add["args"],
            json!(["carte", "--root", "/run/x", "net", "add", "carte"])
        );
        assert_eq!(spec["hooks"]["poststop"][0]["args"][4], "del");
        let raw = serde_json::to_vec(&spec).unwrap();
        let parsed = crate::bundle::parse_spec(&raw, "config.json").unwrap();
        crate::validate::check(&parsed).unwrap();
    }

    #[test]
    fn a_joined_network_namespace_is_refused() {
        let mut spec = crate::verbs::spec::default_spec(false);
        spec["linux"]["namespaces"] = json!([{"type": "network", "path": "/run/netns/x"}]);
        let e = add_to_spec(&mut spec, Path::new("/c"), Path::new("/r"), "carte")
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.namespaces"), "{e}");
        assert!(add_to_spec(&mut spec, Path::new("/c"), Path::new("/r"), "no-such-net").is_err());
    }
}
