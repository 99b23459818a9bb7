//! Container networking through CNI, for `carte net add|del|check` run as OCI hooks
//! (createRuntime → add, poststop → del). carte configures no address itself: it pins the
//! container's network namespace, runs the plugins of each network (loopback, then the chosen
//! conflist) with CNI 1.0's protocol and caches what they returned, so DEL can undo exactly that —
//! even after the container died hard, and as often as it is asked.

pub mod cache;
pub mod conf;
pub mod hooks;
pub mod pin;
pub mod plugin;

use crate::error::{Error, Result};
use cache::{Attachment, Entry};
use conf::NetList;
use plugin::{Call, Op};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// How often one plugin's DEL is tried before carte gives up and reports it (with the cache and
/// the pin kept, so `carte net del --id ID` can finish the job later).
const DEL_ATTEMPTS: u32 = 3;

fn cni_id(id: &str) -> Result<()> {
    if conf::valid_name(id) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "container id {id:?}: CNI allows only letters, digits and _.- (at most 200)"
        )))
    }
}

/// ADD: attach container `id` (whose init is `pid`) to loopback and to `network`.
/// On failure everything done so far is deleted again before the error is returned.
pub fn add(root: &Path, id: &str, pid: i32, network: &str, ifname: &str) -> Result<Entry> {
    cni_id(id)?;
    if let Some(old) = cache::load(root, id)? {
        return Err(Error::Other(format!(
            "net add {id}: already attached (cache {}); run `carte net del` first",
            cache::path(root, &old.id).display()
        )));
    }
    let lists = [conf::loopback(), conf::find(network)?];
    let netns = pin::pin(pid, id)?;
    log::debug!(
        "pinned the network namespace of pid {pid} on {}",
        netns.display()
    );
    let mut entry = Entry {
        id: id.to_string(),
        ifname: ifname.to_string(),
        netns,
        networks: lists
            .iter()
            .map(|l| Attachment {
                config: l.to_json(),
                result: None,
            })
            .collect(),
    };
    // State before side effects: the pin is already recorded when the first plugin runs.
    if let Err(e) = cache::save(root, &entry) {
        let _ = pin::unpin(id);
        return Err(e);
    }
    for (i, list) in lists.iter().enumerate() {
        match add_list(list, &entry) {
            Ok(result) => {
                entry.networks[i].result = Some(result);
                cache::save(root, &entry)?;
            }
            Err(e) => {
                // CNI: a runtime whose ADD failed must DEL, so partial work is undone.
                if let Err(d) = del(root, id, network) {
                    log::warn!("net add {id}: undo after failure: {d}");
                }
                return Err(e);
            }
        }
    }
    Ok(entry)
}

/// Run a list's plugins in order, each getting the previous one's result; the last result is
/// the list's.
fn add_list(list: &NetList, entry: &Entry) -> Result<Value> {
    let netns = entry.netns.display().to_string();
    let call = Call {
        op: Op::Add,
        container_id: &entry.id,
        netns: &netns,
        ifname: &entry.ifname,
        cni_path: conf::CNI_PATH,
    };
    let mut prev: Option<Value> = None;
    for i in 0..list.plugins.len() {
        let cfg = list.plugin_config(i, prev.as_ref());
        prev = plugin::exec(&call, &cfg)?;
    }
    prev.ok_or_else(|| Error::Other(format!("network {}: no result", list.name)))
}

/// DEL: detach container `id` from everything its cache records (or, with no cache, from
/// `network` with no namespace, which still releases an address host-local holds for the id).
/// Idempotent; each plugin's DEL is retried, and every failure is logged with the plugin's error.
pub fn del(root: &Path, id: &str, network: &str) -> Result<()> {
    cni_id(id)?;
    let entry = match cache::load(root, id)? {
        Some(e) => e,
        None => Entry {
            id: id.to_string(),
            ifname: "eth0".into(),
            netns: pin::path(id),
            networks: vec![Attachment {
                config: conf::find(network)?.to_json(),
                result: None,
            }],
        },
    };
    // The namespace is gone only when the pin is (a reboot, or a DEL that already finished).
    let netns = if pin::is_pinned(&entry.netns) {
        entry.netns.display().to_string()
    } else {
        String::new()
    };
    let call = Call {
        op: Op::Del,
        container_id: id,
        netns: &netns,
        ifname: &entry.ifname,
        cni_path: conf::CNI_PATH,
    };
    let mut failures = Vec::new();
    for att in entry.networks.iter().rev() {
        let list = NetList::from_json(&att.config, &cache::path(root, id).display().to_string())?;
        for i in (0..list.plugins.len()).rev() {
            let cfg = list.plugin_config(i, att.result.as_ref());
            if let Err(e) = del_retried(&call, &cfg, &list.name) {
                failures.push(e);
            }
        }
    }
    if let Some(first) = failures.into_iter().next() {
        return Err(Error::Other(format!(
            "net del {id}: {first}; kept {} for `carte net del --id {id}`",
            cache::path(root, id).display()
        )));
    }
    pin::unpin(id)?;
    cache::remove(root, id)
}

fn del_retried(call: &Call, cfg: &Value, network: &str) -> Result<()> {
    let mut last = None;
    for attempt in 1..=DEL_ATTEMPTS {
        match plugin::exec(call, cfg) {
            Ok(_) => return Ok(()),
            Err(e) => {
                log::warn!(
                    "net del {} (network {network}), attempt {attempt}/{DEL_ATTEMPTS}: {e}",
                    call.container_id
                );
                last = Some(e);
                if attempt < DEL_ATTEMPTS {
                    std::thread::sleep(Duration::from_millis(100 * u64::from(attempt * attempt)));
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Other("DEL never ran".into())))
}

/// CHECK: ask every plugin whether what ADD set up is still in place (CNI ≥ 0.4.0 lists).
pub fn check(root: &Path, id: &str) -> Result<Entry> {
    cni_id(id)?;
    let entry = cache::load(root, id)?
        .ok_or_else(|| Error::Other(format!("net check {id}: not attached to any network")))?;
    if !pin::is_pinned(&entry.netns) {
        return Err(Error::Other(format!(
            "net check {id}: network namespace pin `{}` is gone",
            entry.netns.display()
        )));
    }
    let netns = entry.netns.display().to_string();
    let call = Call {
        op: Op::Check,
        container_id: id,
        netns: &netns,
        ifname: &entry.ifname,
        cni_path: conf::CNI_PATH,
    };
    for att in &entry.networks {
        let list = NetList::from_json(&att.config, &cache::path(root, id).display().to_string())?;
        let result = att.result.as_ref().ok_or_else(|| {
            Error::Other(format!(
                "net check {id}: ADD of network {} never finished",
                list.name
            ))
        })?;
        if matches!(
            list.cni_version.as_str(),
            "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1"
        ) {
            continue;
        }
        for i in 0..list.plugins.len() {
            plugin::exec(&call, &list.plugin_config(i, Some(result)))?;
        }
    }
    Ok(entry)
}

/// One line per network: `NETWORK IFNAME ADDRESS via GATEWAY`, from the cached results.
pub fn summary(entry: &Entry) -> Vec<String> {
    let mut lines = Vec::new();
    for att in &entry.networks {
        let name = att.config["name"].as_str().unwrap_or("?");
        let Some(r) = &att.result else {
            lines.push(format!("{name} (no result)"));
            continue;
        };
        let ifaces = r["interfaces"].as_array().cloned().unwrap_or_default();
        for ip in r["ips"].as_array().cloned().unwrap_or_default() {
            let ifname = ip["interface"]
                .as_u64()
                .and_then(|i| ifaces.get(i as usize))
                .and_then(|i| i["name"].as_str())
                .unwrap_or(&entry.ifname)
                .to_string();
            let mut line = format!("{name} {ifname} {}", ip["address"].as_str().unwrap_or("?"));
            if let Some(gw) = ip["gateway"].as_str() {
                line.push_str(&format!(" via {gw}"));
            }
            lines.push(line);
        }
        if r["ips"].as_array().is_none_or(|a| a.is_empty()) {
            lines.push(format!("{name} lo up"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summary_names_interface_address_and_gateway() {
        let entry = Entry {
            id: "c".into(),
            ifname: "eth0".into(),
            netns: "/x".into(),
            networks: vec![
                Attachment {
                    config: conf::loopback().to_json(),
                    result: Some(json!({"cniVersion": "1.0.0", "interfaces": [{"name": "lo"}]})),
                },
                Attachment {
                    config: conf::default_network().to_json(),
                    result: Some(json!({
                        "interfaces": [{"name": "carte0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
                        "ips": [{"address": "10.89.0.7/24", "gateway": "10.89.0.1", "interface": 2}]
                    })),
                },
            ],
        };
        assert_eq!(
            summary(&entry),
            [
                "carte-loopback lo up",
                "carte eth0 10.89.0.7/24 via 10.89.0.1"
            ]
        );
    }

    #[test]
    fn ids_cni_refuses_are_refused_before_anything_runs() {
        let root = std::env::temp_dir().join(format!("carte-net-ids-{}", std::process::id()));
        let e = add(&root, "a+b", 1, "carte", "eth0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("CNI allows"), "{e}");
        assert!(!root.exists());
    }
}
