//! Resolving an image's `User` against the unpacked rootfs's /etc/passwd and /etc/group — never the host's.

use std::io::Read;
use std::path::Path;

use nix::fcntl::OFlag;

use crate::confine::Root;
use crate::error::{Error, Result};
use crate::sys;

/// /etc/passwd or /etc/group bigger than this is not a real account database.
const DB_LIMIT: u64 = 16 << 20;

/// The resolved user of the container process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Read a file of the rootfs; a symlink (even absolute) is resolved inside the rootfs. Missing = empty.
fn read_db(root: &Root, path: &str) -> Result<String> {
    let fd = match sys::open_in_root(root.raw(), Path::new(path), OFlag::O_RDONLY) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(String::new()),
        Err(source) => {
            return Err(Error::Io {
                op: "open",
                path: path.into(),
                source,
            });
        }
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(DB_LIMIT)
        .read_to_string(&mut s)
        .map_err(|source| Error::Io {
            op: "read",
            path: path.into(),
            source,
        })?;
    Ok(s)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 6 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolve `user` (`name`, `uid`, `name:group`, `uid:gid`, `name:gid`, `uid:group`, or empty for root).
pub fn resolve(root: &Root, user: &str) -> Result<User> {
    resolve_in(
        &read_db(root, "/etc/passwd")?,
        &read_db(root, "/etc/group")?,
        user,
    )
}

fn resolve_in(passwd: &str, group: &str, user: &str) -> Result<User> {
    if user.is_empty() {
        return Ok(User::default());
    }
    let pw = parse_passwd(passwd);
    let gr = parse_group(group);
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = match u.parse::<u32>() {
        Ok(uid) => pw.iter().find(|e| e.uid == uid),
        Err(_) => Some(pw.iter().find(|e| e.name == u).ok_or_else(|| {
            Error::Convert(format!("user `{u}`: not found in the image's /etc/passwd"))
        })?),
    };
    let uid = match u.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry.map(|e| e.uid).unwrap_or(0),
    };
    let home = entry.map(|e| e.home.clone()).filter(|h| !h.is_empty());
    let (gid, additional_gids) = match g {
        Some(g) => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => gr
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        Error::Convert(format!("group `{g}`: not found in the image's /etc/group"))
                    })?,
            };
            (gid, Vec::new())
        }
        None => {
            let gid = entry.map(|e| e.gid).unwrap_or(0);
            // Supplementary groups come from membership by name, as login(1) would set them,
            // except for a bare numeric user (the image asked for an id, not an account).
            let mut extra: Vec<u32> = match (u.parse::<u32>(), entry) {
                (Err(_), Some(e)) => gr
                    .iter()
                    .filter(|g| g.members.contains(&e.name) && g.gid != gid)
                    .map(|g| g.gid)
                    .collect(),
                _ => Vec::new(),
            };
            extra.sort_unstable();
            extra.dedup();
            (gid, extra)
        }
    };
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\napp:x:1000:1000:App:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:app\napp:x:1000:\nwheel:x:10:app,root\n";

    fn r(u: &str) -> Result<User> {
        resolve_in(PASSWD, GROUP, u)
    }

    #[test]
    fn forms() -> Result<()> {
        assert_eq!(r("")?, User::default());
        assert_eq!(
            r("app")?,
            User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 33],
                home: Some("/home/app".into())
            }
        );
        assert_eq!(r("1000")?.additional_gids, Vec::<u32>::new());
        assert_eq!(r("1000")?.gid, 1000);
        assert_eq!(
            r("4242")?,
            User {
                uid: 4242,
                gid: 0,
                additional_gids: vec![],
                home: None
            }
        );
        assert_eq!(
            r("app:www")?,
            User {
                uid: 1000,
                gid: 33,
                additional_gids: vec![],
                home: Some("/home/app".into())
            }
        );
        assert_eq!(r("33:7")?.gid, 7);
        assert_eq!(r("www:wheel")?.gid, 10);
        Ok(())
    }

    #[test]
    fn unknown_names_fail() {
        assert!(r("nobody").is_err_and(|e| e.to_string().contains("user `nobody`")));
        assert!(r("app:nogroup").is_err_and(|e| e.to_string().contains("group `nogroup`")));
    }
}
