//! Network configurations: carte's built-in default network, finding `NAME` among the CNI
//! configuration files, and turning a `.conf` or `.conflist` into the list of plugin configs that
//! CNI 1.0 (SPEC.md "Network configuration lists") runs in order. Runs nothing itself.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The name of carte's own network (`--net` without a name).
pub const DEFAULT_NETWORK: &str = "carte";
/// Its bridge, subnet and gateway. 10.89.0.0/24 clashes with neither podman's 10.88.0.0/16 nor
/// docker0's 172.17.0.0/16, and is private (RFC 1918), so nothing routes it off this machine.
pub const BRIDGE: &str = "carte0";
pub const SUBNET: &str = "10.89.0.0/24";
pub const GATEWAY: &str = "10.89.0.1";
/// Everything carte keeps for networking outside a state root: the host-local IPAM store and the
/// network namespace pins. Under /run (a tmpfs) on purpose: after a reboot no container and no
/// veth survives, so neither may an address allocation (host-local in /var/lib leaks them).
pub const NET_DIR: &str = "/run/carte-net";
/// Where CNI plugins are looked up: Debian's package, then the upstream default.
pub const CNI_PATH: &str = "/usr/lib/cni:/opt/cni/bin";
/// The directories `--net NAME` searches, in order: the ecosystem's, then carte's own.
pub const CONF_DIRS: [&str; 2] = ["/etc/cni/net.d", "/etc/carte/net.d"];
/// The CNI version carte speaks and writes into its own configs.
pub const CNI_VERSION: &str = "1.0.0";

/// One network to attach: its name, version and plugin configs in execution order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

impl NetList {
    /// The list as a conflist document (what the result cache stores, so DEL runs exactly the
    /// configuration ADD ran even if the file changed or vanished since).
    pub fn to_json(&self) -> Value {
        json!({"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins})
    }

    /// Parse a `.conflist` (`plugins` array) or a single-plugin `.conf` document.
    pub fn from_json(v: &Value, origin: &str) -> Result<NetList> {
        let bad = |field: &str, reason: &str| Error::InvalidSpec {
            file: origin.to_string(),
            field: field.to_string(),
            reason: reason.to_string(),
        };
        let name = v["name"]
            .as_str()
            .filter(|n| valid_name(n))
            .ok_or_else(|| bad("name", "missing, or not letters, digits and _.-"))?;
        let cni_version = v["cniVersion"]
            .as_str()
            .ok_or_else(|| bad("cniVersion", "missing"))?;
        let plugins: Vec<Value> = match v.get("plugins") {
            Some(Value::Array(list)) => list.clone(),
            Some(_) => return Err(bad("plugins", "not an array")),
            // A .conf file is one plugin: its own object is the plugin config.
            None => vec![v.clone()],
        };
        if plugins.is_empty() {
            return Err(bad("plugins", "empty"));
        }
        for (i, p) in plugins.iter().enumerate() {
            let t = p["type"].as_str().unwrap_or("");
            // The type names a binary in CNI_PATH: it must be one plain file name.
            if t.is_empty() || t.contains('/') || t.starts_with('.') {
                return Err(bad(
                    &format!("plugins[{i}].type"),
                    "missing or not a file name",
                ));
            }
        }
        Ok(NetList {
            name: name.to_string(),
            cni_version: cni_version.to_string(),
            plugins,
        })
    }

    /// The config one plugin receives on stdin: its object plus the list's name and version and,
    /// after the first plugin, the previous plugin's result (SPEC.md "Deriving execution
    /// configuration from plugin configuration").
    pub fn plugin_config(&self, i: usize, prev_result: Option<&Value>) -> Value {
        let mut c = self.plugins.get(i).cloned().unwrap_or(Value::Null);
        c["name"] = json!(self.name);
        c["cniVersion"] = json!(self.cni_version);
        if let Some(prev) = prev_result {
            c["prevResult"] = prev.clone();
        }
        c
    }
}

/// CNI's rule for network names and container ids: letters, digits, `_`, `.` and `-`, starting
/// with a letter or digit.
pub fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        && s.len() <= 200
}

/// The loopback network every networked container gets first (as podman and the CRI plugins do:
/// `lo` is not part of any user network, so it is its own one-plugin list).
pub fn loopback() -> NetList {
    NetList {
        name: "carte-loopback".into(),
        cni_version: CNI_VERSION.into(),
        plugins: vec![json!({"type": "loopback"})],
    }
}

/// carte's default network: bridge `carte0` as the gateway, masquerading outbound traffic,
/// host-local addresses from 10.89.0.0/24 with the store under [`NET_DIR`].
pub fn default_network() -> NetList {
    NetList {
        name: DEFAULT_NETWORK.into(),
        cni_version: CNI_VERSION.into(),
        plugins: vec![json!({
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": format!("{NET_DIR}/ipam")
            }
        })],
    }
}

/// `--net NAME`: carte's default for `carte`, else the first file in [`CONF_DIRS`] (sorted by
/// file name, as libcni does) whose `name` is NAME.
pub fn find(name: &str) -> Result<NetList> {
    find_in(name, &CONF_DIRS.map(PathBuf::from))
}

pub fn find_in(name: &str, dirs: &[PathBuf]) -> Result<NetList> {
    if name == DEFAULT_NETWORK {
        return Ok(default_network());
    }
    if !valid_name(name) {
        return Err(Error::Usage(format!(
            "network {name:?}: names are letters, digits and _.- only"
        )));
    }
    for dir in dirs {
        for path in conf_files(dir) {
            let Ok(raw) = std::fs::read(&path) else {
                continue;
            };
            let origin = path.display().to_string();
            let v: Value = serde_json::from_slice(&raw)
                .map_err(|e| Error::Other(format!("parse network config {origin}: {e}")))?;
            if v["name"] == name {
                return NetList::from_json(&v, &origin);
            }
        }
    }
    Err(Error::Usage(format!(
        "network {name}: no .conf or .conflist with that name in {}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|x| x.to_str()),
                        Some("conf" | "conflist" | "json")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_round_trips_and_derives_plugin_configs() {
        let n = default_network();
        let back = NetList::from_json(&n.to_json(), "cache").unwrap();
        assert_eq!(back, n);
        let first = n.plugin_config(0, None);
        assert_eq!(first["name"], "carte");
        assert_eq!(first["cniVersion"], CNI_VERSION);
        assert_eq!(first["bridge"], BRIDGE);
        assert!(first.get("prevResult").is_none());
        let chained = n.plugin_config(0, Some(&json!({"ips": []})));
        assert_eq!(chained["prevResult"], json!({"ips": []}));
    }

    #[test]
    fn conf_and_conflist_are_found_by_name_in_order() {
        let d1 = std::env::temp_dir().join(format!("carte-netconf-{}-1", std::process::id()));
        let d2 = std::env::temp_dir().join(format!("carte-netconf-{}-2", std::process::id()));
        std::fs::create_dir_all(&d1).unwrap();
        std::fs::create_dir_all(&d2).unwrap();
        std::fs::write(
            d1.join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"one","type":"ptp"}"#,
        )
        .unwrap();
        std::fs::write(
            d2.join("10-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"two","plugins":[{"type":"bridge"},{"type":"firewall"}]}"#,
        )
        .unwrap();
        std::fs::write(
            d2.join("20-one.conf"),
            r#"{"cniVersion":"1.0.0","name":"one","type":"x"}"#,
        )
        .unwrap();
        let dirs = [d1.clone(), d2.clone()];
        let one = find_in("one", &dirs).unwrap();
        assert_eq!(one.plugins.len(), 1);
        assert_eq!(one.plugins[0]["type"], "ptp", "the first directory wins");
        let two = find_in("two", &dirs).unwrap();
        assert_eq!(two.plugins.len(), 2);
        assert_eq!(find_in("carte", &dirs).unwrap(), default_network());
        let e = find_in("three", &dirs).unwrap_err().to_string();
        assert!(e.contains("network three"), "{e}");
        assert!(find_in("../x", &dirs).is_err());
        std::fs::remove_dir_all(&d1).unwrap();
        std::fs::remove_dir_all(&d2).unwrap();
    }

    #[test]
    fn bad_lists_name_the_field() {
        for (doc, field) in [
            (json!({"cniVersion": "1.0.0", "plugins": []}), "name"),
            (json!({"name": "n", "plugins": []}), "cniVersion"),
            (
                json!({"name": "n", "cniVersion": "1.0.0", "plugins": []}),
                "plugins",
            ),
            (
                json!({"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "../bin/sh"}]}),
                "plugins[0].type",
            ),
        ] {
            let e = NetList::from_json(&doc, "f.conflist")
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{doc}: {e}");
        }
    }

    #[test]
    fn cni_names() {
        for ok in ["carte", "a-b_c.d", "0x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a/b", "a+b", ".."] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
