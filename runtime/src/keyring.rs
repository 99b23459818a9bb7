//! The container's own kernel session keyring, `_ses.<id>`, as runc makes it: the container's
//! processes never share the runtime's session keyring (and the keys the host put in it) unless
//! `--no-new-keyring` asks for that. Joined by the init, and by `exec`'d processes by name.

use crate::error::{Error, Result};
use crate::sys;

/// The keyring's name; the same for the init and every `exec`, so they share one keyring.
fn name(id: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(format!("_ses.{id}"))
        .map_err(|_| Error::Other(format!("keyring name for {id:?} contains NUL")))
}

/// Join (creating it the first time) the container's session keyring. The init also opens it to
/// searching, as runc does: by the owner's uid, or by anyone inside a new user namespace (where
/// the container's uids are not the keyring's owner), so an `exec` can find and join it.
pub fn join(id: &str, init: Option<bool>) -> Result<()> {
    let serial = match sys::join_session_keyring(&name(id)?) {
        Ok(s) => s,
        // No keyrings in this kernel: best effort, as runc (the protection is marginal).
        Err(nix::errno::Errno::ENOSYS) => return Ok(()),
        Err(e) => return Err(Error::sys("join session keyring", format!("_ses.{id}"), e)),
    };
    log::debug!("joined session keyring _ses.{id} ({serial})");
    let Some(userns) = init else { return Ok(()) };
    // KEY_USR_SEARCH (0x00080000) without a user namespace, KEY_OTH_SEARCH (0x08) with one.
    let extra: u32 = if userns { 0x08 } else { 0x0008_0000 };
    let desc = sys::keyctl_describe(serial)
        .map_err(|e| Error::sys("describe session keyring", format!("_ses.{id}"), e))?;
    let perm = desc
        .split(';')
        .nth(3)
        .and_then(|p| u32::from_str_radix(p, 16).ok())
        .ok_or_else(|| {
            Error::Other(format!(
                "session keyring _ses.{id}: bad description {desc:?}"
            ))
        })?;
    sys::keyctl_setperm(serial, perm | extra).map_err(|e| {
        Error::sys(
            "set permissions of session keyring",
            format!("_ses.{id}"),
            e,
        )
    })
}
