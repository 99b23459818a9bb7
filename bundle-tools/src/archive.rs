//! Read-only access to an image archive: a tar file (indexed once, then read by offset; a gzip/zstd-compressed
//! tar is first decompressed into an unnamed temporary file) or a layout directory.
//!
//! Names inside the archive are normalised and confined here: `..`, absolute names and symlinks that leave
//! the archive are refused, so the format modules can trust every path they ask for.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::blob;
use crate::error::{Error, IoCtx, Result};

/// How many symlinks inside an archive we follow for one lookup (containers/image adds one level).
const MAX_LINK_HOPS: usize = 8;

/// An archive entry we can read: where its bytes sit in the tar file, or what it points to.
#[derive(Debug, Clone)]
enum Entry {
    File { offset: u64, size: u64 },
    Link(String),
}

/// An opened archive.
pub struct Archive {
    path: PathBuf,
    kind: Kind,
}

enum Kind {
    Dir,
    Tar {
        file: File,
        entries: HashMap<String, Entry>,
    },
}

/// A reader over one member of a tar archive, using positional reads so members never share a cursor.
pub struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive member is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Normalise an archive-relative name: strip `./`, collapse `//`, refuse `..` and absolute names.
pub fn clean_name(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Join a symlink target to the directory of the link, staying inside the archive root.
fn join_link(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl Archive {
    /// Open `path`: a directory is used as is; a file must be a (plain) tar, which is indexed once.
    pub fn open(path: &Path) -> Result<Archive> {
        let meta = std::fs::metadata(path).ctx("open archive", path)?;
        if meta.is_dir() {
            return Ok(Archive {
                path: path.to_path_buf(),
                kind: Kind::Dir,
            });
        }
        let mut file = File::open(path).ctx("open archive", path)?;
        let mut magic = [0u8; 4];
        let n = file.read_at(&mut magic, 0).ctx("read archive", path)?;
        if blob::Compression::sniff(&magic[..n]) != blob::Compression::None {
            file = decompress_to_temp(file, path)?;
        }
        let entries = index_tar(&file, path)?;
        Ok(Archive {
            path: path.to_path_buf(),
            kind: Kind::Tar { file, entries },
        })
    }

    /// The archive's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the archive holds a readable member `name`.
    pub fn exists(&self, name: &str) -> bool {
        match clean_name(name) {
            Some(n) => match &self.kind {
                Kind::Dir => self.path.join(&n).is_file(),
                Kind::Tar { entries, .. } => self.resolve(entries, &n).is_ok(),
            },
            None => false,
        }
    }

    /// Open member `name` for reading; returns the reader and the member's size.
    pub fn open_member(&self, name: &str) -> Result<(Box<dyn Read + '_>, u64)> {
        let clean = clean_name(name).ok_or_else(|| {
            Error::Format(format!(
                "archive `{}`: member name `{name}` leaves the archive",
                self.path.display()
            ))
        })?;
        match &self.kind {
            Kind::Dir => {
                let p = self.path.join(&clean);
                let f = File::open(&p).ctx("open archive member", &p)?;
                let size = f.metadata().ctx("stat archive member", &p)?.len();
                Ok((Box::new(io::BufReader::with_capacity(256 * 1024, f)), size))
            }
            Kind::Tar { file, entries } => {
                let (offset, size) = self.resolve(entries, &clean)?;
                let section = Section {
                    file,
                    pos: offset,
                    end: offset + size,
                };
                Ok((
                    Box::new(io::BufReader::with_capacity(256 * 1024, section)),
                    size,
                ))
            }
        }
    }

    /// Read a small member (JSON metadata) whole, refusing anything over `limit` bytes.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let (mut r, size) = self.open_member(name)?;
        if size > limit {
            return Err(Error::Format(format!(
                "archive `{}`: member `{name}` is {size} bytes, more than the {limit} allowed for metadata",
                self.path.display()
            )));
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        r.read_to_end(&mut buf)
            .ctx("read archive member", self.path.join(name))?;
        Ok(buf)
    }

    /// Follow symlinks/hardlinks inside the tar index to a regular member.
    fn resolve(&self, entries: &HashMap<String, Entry>, name: &str) -> Result<(u64, u64)> {
        let mut cur = name.to_string();
        for _ in 0..MAX_LINK_HOPS {
            match entries.get(&cur) {
                Some(Entry::File { offset, size }) => return Ok((*offset, *size)),
                Some(Entry::Link(next)) => cur = next.clone(),
                None => {
                    return Err(Error::Format(format!(
                        "archive `{}`: missing member `{name}`",
                        self.path.display()
                    )))
                }
            }
        }
        Err(Error::Format(format!(
            "archive `{}`: member `{name}`: too many levels of links",
            self.path.display()
        )))
    }
}

/// `docker save | gzip` and friends: members are read by offset, so the tar is first decompressed into an
/// unnamed temporary file (`O_TMPFILE`: it vanishes with the process, whatever happens).
fn decompress_to_temp(file: File, path: &Path) -> Result<File> {
    let dir = std::env::temp_dir();
    let mut tmp = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
        .ctx("create temporary file in", &dir)?;
    let name = path.display().to_string();
    let mut dec = blob::decoder(file, None, &name)?;
    io::copy(&mut dec, &mut tmp)
        .map_err(|e| Error::Format(format!("decompress archive `{name}`: {e}")))?;
    Ok(tmp)
}

/// Walk the tar once, remembering where each regular member's data starts and where links point.
fn index_tar(file: &File, path: &Path) -> Result<HashMap<String, Entry>> {
    let mut entries = HashMap::new();
    // Indexing reads through the file's cursor (member data is later read by offset): start at 0.
    let mut f = file;
    f.seek(io::SeekFrom::Start(0)).ctx("read archive", path)?;
    let mut ar = tar::Archive::new(f);
    let iter = ar.entries_with_seek().ctx("read archive", path)?;
    for entry in iter {
        let entry = entry.ctx("read archive", path)?;
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let Some(clean) = clean_name(&name) else {
            // A member we would never look up cannot hurt us; we only refuse to resolve it.
            continue;
        };
        let kind = entry.header().entry_type();
        let value = if kind.is_file() || kind == tar::EntryType::Continuous {
            Entry::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            }
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            // Symlinks are relative to the link's directory, hardlinks to the archive root.
            let joined = if kind.is_symlink() {
                join_link(&clean, &target)
            } else {
                clean_name(&target)
            };
            match joined {
                Some(t) => Entry::Link(t),
                None => continue, // escapes the archive: leave it unresolvable
            }
        } else {
            continue;
        };
        entries.insert(clean, value);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_names() {
        assert_eq!(
            clean_name("./blobs//sha256/x").as_deref(),
            Some("blobs/sha256/x")
        );
        assert_eq!(clean_name("../x"), None);
        assert_eq!(clean_name("a/../../x"), None);
        assert_eq!(clean_name("/etc/passwd"), None);
    }

    #[test]
    fn link_joins() {
        assert_eq!(
            join_link("v1/layer.tar", "../abc.tar").as_deref(),
            Some("abc.tar")
        );
        assert_eq!(join_link("layer.tar", "../abc.tar"), None);
        assert_eq!(join_link("a/l", "/abs"), None);
    }
}
