//! `carte net add|del|check [NETWORK]`: the CNI client, written to run as OCI hooks
//! (createRuntime → add, poststop → del) with the container state on stdin, or by hand with
//! `--id` for del and check. The result cache lives under the state root this carte was given
//! with `--root` (the hooks that `spec --net` writes carry it), see `net::cache`.

use crate::cli::Cli;
use crate::error::{Error, Result};
use std::io::Read;

#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// add, del or check
    #[arg(value_parser = ["add", "del", "check"])]
    pub action: String,
    /// Network name: carte's own bridge network, or a conflist's name in /etc/cni/net.d or /etc/carte/net.d
    #[arg(default_value = crate::net::conf::DEFAULT_NETWORK)]
    pub network: String,
    /// The container id, instead of reading the OCI state from stdin (del and check only)
    #[arg(long)]
    pub id: Option<String>,
    /// Interface name inside the container (add)
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
}

/// The two fields of the OCI state a hook needs.
fn state_from_stdin(action: &str) -> Result<(String, Option<i32>)> {
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw).map_err(|e| {
        Error::Other(format!(
            "net {action}: read the container state on stdin: {e}"
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&raw).map_err(|e| {
        Error::Usage(format!(
            "net {action}: stdin is not an OCI state document ({e}); run as a hook or give --id"
        ))
    })?;
    let id = v["id"]
        .as_str()
        .ok_or_else(|| Error::Usage(format!("net {action}: the state on stdin has no id")))?;
    let pid = v["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
    Ok((id.to_string(), pid))
}

pub fn run(cli: &Cli, a: &NetArgs) -> Result<i32> {
    let (id, pid) = match &a.id {
        Some(id) if a.action != "add" => (id.clone(), None),
        Some(_) => {
            return Err(Error::Usage(
                "net add: needs the container state (with its pid) on stdin, not --id".into(),
            ))
        }
        None => state_from_stdin(&a.action)?,
    };
    crate::state::validate_id(&id)?;
    match a.action.as_str() {
        "add" => {
            let pid = pid.filter(|p| *p > 0).ok_or_else(|| {
                Error::Usage(format!("net add {id}: the state on stdin has no pid"))
            })?;
            let entry = crate::net::add(&cli.root, &id, pid, &a.network, &a.ifname)?;
            for line in crate::net::summary(&entry) {
                log::debug!("net add {id}: {line}");
            }
        }
        "del" => crate::net::del(&cli.root, &id, &a.network)?,
        _ => {
            let entry = crate::net::check(&cli.root, &id)?;
            for line in crate::net::summary(&entry) {
                println!("{id}: {line}: ok");
            }
        }
    }
    Ok(0)
}
