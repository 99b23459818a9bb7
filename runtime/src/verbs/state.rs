//! `carte state`: the OCI state plus runc's rootfs/created/owner. Never blocks on the lock:
//! state.json is replaced atomically, so reading it unlocked is safe.

use crate::cli::{Cli, IdArg};
use crate::error::{Error, Result};
use crate::state::{self, State};

pub fn json(dir: &std::path::Path, st: &State) -> serde_json::Value {
    let status = state::status(dir, st);
    let mut v = st.oci_value(status);
    v["pid"] = st.pid.unwrap_or(0).into();
    v["rootfs"] = st.rootfs.display().to_string().into();
    v["created"] = st.created.clone().into();
    v["owner"] = st.owner.clone().into();
    v
}

pub fn run(cli: &Cli, a: &IdArg) -> Result<i32> {
    state::validate_id(&a.id)?;
    let dir = cli.root.join(&a.id);
    if !dir.is_dir() {
        return Err(Error::NotFound { id: a.id.clone() });
    }
    let st = match state::load_state(&dir) {
        Ok(st) => st,
        // A `delete` renamed it away after our check: the container is gone, not corrupt.
        Err(_) if !dir.exists() => return Err(Error::NotFound { id: a.id.clone() }),
        Err(e) => return Err(Error::Other(format!("container {}: {e}", a.id))),
    };
    let out =
        serde_json::to_string_pretty(&json(&dir, &st)).map_err(|e| Error::Other(e.to_string()))?;
    super::out(out);
    Ok(0)
}
