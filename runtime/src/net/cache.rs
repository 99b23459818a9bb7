//! The result cache: one file per networked container, `ROOT/.net:cni/ID.json`, under the state
//! root named by the hook's `--root`. It is written *before* the first plugin runs (the configs,
//! the pin, no results) and updated after each network, so a `carte net add` killed halfway still
//! leaves DEL everything it needs. The directory's name holds `:`, which no container id may
//! contain, and starts with `.`, which `list` skips: it can never be mistaken for a container.

use crate::error::{Context, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const DIR: &str = ".net:cni";

/// One network a container was attached to: the conflist ADD ran, and its final result.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Attachment {
    pub config: Value,
    pub result: Option<Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub id: String,
    pub ifname: String,
    /// The pinned namespace path given to the plugins as CNI_NETNS.
    pub netns: PathBuf,
    /// In ADD order (loopback first); DEL walks them backwards.
    pub networks: Vec<Attachment>,
}

pub fn path(root: &Path, id: &str) -> PathBuf {
    root.join(DIR).join(format!("{id}.json"))
}

pub fn load(root: &Path, id: &str) -> Result<Option<Entry>> {
    let p = path(root, id);
    match std::fs::read(&p) {
        Ok(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: corrupt CNI cache: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &p, e)),
    }
}

pub fn save(root: &Path, e: &Entry) -> Result<()> {
    let d = root.join(DIR);
    let data = serde_json::to_vec_pretty(e)
        .map_err(|err| Error::Other(format!("encode CNI cache: {err}")))?;
    let mut attempt = 0;
    loop {
        std::fs::create_dir_all(&d).ctx("create", d.display())?;
        match crate::state::write_atomic(&path(root, &e.id), &data) {
            // Another container's `remove` took the directory while it looked empty: make it again.
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempt < 3 =>
            {
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Remove the entry, and the directory when it was the last one.
pub fn remove(root: &Path, id: &str) -> Result<()> {
    let p = path(root, id);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &p, e)),
    }
    // ENOTEMPTY when other containers are networked: expected, not an error.
    let _ = std::fs::remove_dir(root.join(DIR));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_the_last_one_takes_the_directory() {
        let root = std::env::temp_dir().join(format!("carte-netcache-{}", std::process::id()));
        let e = Entry {
            id: "c1".into(),
            ifname: "eth0".into(),
            netns: "/run/carte-net/netns/c1".into(),
            networks: vec![Attachment {
                config: serde_json::json!({"name": "carte"}),
                result: None,
            }],
        };
        assert_eq!(load(&root, "c1").unwrap(), None);
        save(&root, &e).unwrap();
        assert_eq!(load(&root, "c1").unwrap(), Some(e));
        remove(&root, "c1").unwrap();
        remove(&root, "c1").unwrap();
        assert!(!root.join(DIR).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
