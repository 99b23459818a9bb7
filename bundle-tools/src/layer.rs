//! Applying layer tars onto a rootfs, as the OCI image spec's layer.md says: whiteouts, opaque directories,
//! hardlinks, symlinks, devices, ownership, modes, xattrs and mtimes. Every path goes through `confine`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{
    fchmodat, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, Gid, Uid};
use tar::EntryType;

use crate::confine::{components, join, lstat_kind, proc_path, remove_all, Root};
use crate::error::{Error, Result};
use crate::idmap::{map_id, IdMap};
use crate::sys;

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// How layers are applied.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    /// Unprivileged: device nodes are skipped, and chown only when it can work.
    pub rootless: bool,
}

/// The metadata of one entry we apply after creating it.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Applies layers one after another onto one rootfs.
pub struct Applier<'a> {
    root: &'a Root,
    opts: &'a ApplyOptions,
    /// Directory mtimes, set in a final pass: creating children would otherwise bump them.
    dir_times: HashMap<Vec<u8>, TimeSpec>,
    /// Messages worth one line each, printed once at the end.
    pub warnings: BTreeSet<String>,
    is_root: bool,
    buf: Vec<u8>,
}

impl<'a> Applier<'a> {
    pub fn new(root: &'a Root, opts: &'a ApplyOptions) -> Self {
        Applier {
            root,
            opts,
            dir_times: HashMap::new(),
            warnings: BTreeSet::new(),
            is_root: nix::unistd::geteuid().is_root(),
            buf: vec![0u8; 256 * 1024],
        }
    }

    /// Apply one uncompressed layer stream. `layer` numbers the layer in messages (1-based).
    /// Returns the number of content bytes written.
    pub fn apply<R: Read>(&mut self, reader: R, layer: usize) -> Result<(u64, R)> {
        // Paths this layer created: whiteouts and opaque markers only hide *lower* layers (layer.md).
        let mut upper: HashSet<Vec<u8>> = HashSet::new();
        let mut written = 0u64;
        let mut ar = tar::Archive::new(PadToBlock {
            inner: reader,
            count: 0,
            pad: 0,
        });
        let read_err = |e: io::Error| Error::Integrity {
            what: "layer",
            name: layer.to_string(),
            reason: format!("read tar: {e}"),
        };
        for entry in ar.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            let name = entry.path_bytes().into_owned();
            written += self
                .apply_entry(&mut entry, &name, layer, &mut upper)
                .map_err(|e| match e {
                    EntryError::Hostile(reason) => Error::Hostile {
                        layer,
                        entry: String::from_utf8_lossy(&name).into_owned(),
                        reason,
                    },
                    // A read error while copying content is a broken layer, not a filesystem problem.
                    EntryError::Read(source) => read_err(source),
                    EntryError::Io(op, source) => Error::Apply {
                        layer,
                        entry: String::from_utf8_lossy(&name).into_owned(),
                        op,
                        source,
                    },
                })?;
        }
        Ok((written, ar.into_inner().inner))
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &[u8],
        layer: usize,
        upper: &mut HashSet<Vec<u8>>,
    ) -> Result<u64, EntryError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(0);
        }
        let comps =
            components(name).ok_or_else(|| EntryError::Hostile("path contains `..`".into()))?;
        let Some((base, parent)) = comps.split_last() else {
            // The entry for the rootfs itself: only a directory may stand there.
            if kind != EntryType::Directory {
                return Err(EntryError::Hostile(
                    "would replace the rootfs directory".into(),
                ));
            }
            let meta = self.meta(entry)?;
            let dir = self
                .root
                .open_dir(std::path::Path::new("."))
                .map_err(io_err("open rootfs"))?;
            self.set_meta(
                dir.as_raw_fd(),
                OsStr::new("."),
                &meta,
                EntryType::Directory,
            )?;
            self.dir_times.insert(Vec::new(), meta.mtime);
            return Ok(0);
        };
        if base.starts_with(WHITEOUT) {
            self.whiteout(parent, base, upper)?;
            return Ok(0);
        }
        let path = join(&comps).into_os_string().into_vec();
        let dir = self
            .root
            .mkdir_all(parent)
            .map_err(io_err("create parent directories"))?;
        let dfd = dir.as_raw_fd();
        let bname = OsStr::from_bytes(base);
        // Replace what is there unless both are directories (then only the attributes change).
        let existing = lstat_kind(dfd, bname).map_err(io_err("stat"))?;
        if existing.is_some() && !(kind == EntryType::Directory && existing == Some(SFlag::S_IFDIR))
        {
            remove_all(dfd, bname).map_err(io_err("remove existing path"))?;
            self.forget_dirs(&path);
        }
        upper.insert(path.clone());
        let mut written = 0;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let meta = self.meta(entry)?;
                let fd = sys::openat(
                    dfd,
                    bname,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(io_err("create file"))?;
                let mut file = File::from(fd);
                written = self.copy_content(entry, &mut file)?;
                self.set_meta(dfd, bname, &meta, kind)?;
            }
            EntryType::Directory => {
                let meta = self.meta(entry)?;
                if existing != Some(SFlag::S_IFDIR) {
                    mkdirat(Some(dfd), bname, Mode::from_bits_truncate(0o700))
                        .map_err(nix_err("create directory"))?;
                }
                self.set_meta(dfd, bname, &meta, kind)?;
                self.dir_times.insert(path, meta.mtime);
            }
            EntryType::Symlink => {
                let meta = self.meta(entry)?;
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                // The target is stored as is: it is only ever resolved inside the container (or by confine).
                symlinkat(OsStr::from_bytes(&target), Some(dfd), bname)
                    .map_err(nix_err("create symlink"))?;
                self.set_meta(dfd, bname, &meta, kind)?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hardlink(&target, dfd, bname)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let meta = self.meta(entry)?;
                if self.opts.rootless && kind != EntryType::Fifo {
                    upper.remove(&path);
                    self.warnings
                        .insert("rootless: device nodes in the image were skipped".into());
                    return Ok(0);
                }
                let (sflag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, self.devnum(entry)),
                    EntryType::Block => (SFlag::S_IFBLK, self.devnum(entry)),
                    _ => (SFlag::S_IFIFO, 0),
                };
                mknodat(
                    Some(dfd),
                    bname,
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    dev,
                )
                .map_err(nix_err("create device node"))?;
                self.set_meta(dfd, bname, &meta, kind)?;
            }
            EntryType::GNUSparse => {
                return Err(EntryError::Hostile(
                    "sparse files are not supported in layers".into(),
                ))
            }
            other => {
                upper.remove(&path);
                self.warnings.insert(format!(
                    "skipped tar entries of type {other:?} (layer {layer})"
                ));
            }
        }
        Ok(written)
    }

    /// Copy an entry's content, telling read errors (a broken layer) from write errors (our disk).
    fn copy_content(&mut self, from: &mut impl Read, to: &mut File) -> Result<u64, EntryError> {
        let mut total = 0u64;
        loop {
            let n = match from.read(&mut self.buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(EntryError::Read(e)),
            };
            to.write_all(&self.buf[..n])
                .map_err(io_err("write content"))?;
            total += n as u64;
        }
    }

    /// `.wh.NAME` removes NAME from lower layers; `.wh..wh..opq` empties the directory of lower content.
    fn whiteout(
        &mut self,
        parent: &[&[u8]],
        base: &[u8],
        upper: &HashSet<Vec<u8>>,
    ) -> Result<(), EntryError> {
        let dir = match self.root.open_dir(&join(parent)) {
            Ok(d) => d,
            // Nothing below to hide.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(())
            }
            Err(e) => return Err(EntryError::Io("open whiteout directory", e)),
        };
        let mut prefix = join(parent).into_os_string().into_vec();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        if base == OPAQUE {
            let listing = std::fs::read_dir(proc_path(dir.as_raw_fd(), OsStr::new(".")))
                .map_err(io_err("list opaque directory"))?;
            for child in listing {
                let child = child.map_err(io_err("list opaque directory"))?;
                let mut p = prefix.clone();
                p.extend_from_slice(child.file_name().as_bytes());
                if !upper.contains(&p) {
                    remove_all(dir.as_raw_fd(), &child.file_name())
                        .map_err(io_err("apply opaque whiteout"))?;
                    self.forget_dirs(&p);
                }
            }
            return Ok(());
        }
        if base.starts_with(b".wh..wh.") {
            // AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content, skipped as moby does.
            return Ok(());
        }
        let target = &base[WHITEOUT.len()..];
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            return Err(EntryError::Hostile("invalid whiteout name".into()));
        }
        let mut p = prefix;
        p.extend_from_slice(target);
        if upper.contains(&p) {
            return Ok(());
        }
        remove_all(dir.as_raw_fd(), OsStr::from_bytes(target)).map_err(io_err("apply whiteout"))?;
        self.forget_dirs(&p);
        Ok(())
    }

    /// Link `dfd/name` to an existing path of this or an earlier layer, resolved inside the rootfs.
    fn hardlink(&self, target: &[u8], dfd: RawFd, name: &OsStr) -> Result<(), EntryError> {
        let comps = components(target)
            .ok_or_else(|| EntryError::Hostile("hardlink target contains `..`".into()))?;
        let Some((tbase, tparent)) = comps.split_last() else {
            return Err(EntryError::Hostile(
                "hardlink to the rootfs directory".into(),
            ));
        };
        let tdir = self
            .root
            .open_dir(&join(tparent))
            .map_err(io_err("open hardlink target directory"))?;
        // Flags 0: link the target itself even if it is a symlink, never what it points to.
        linkat(
            Some(tdir.as_raw_fd()),
            OsStr::from_bytes(tbase),
            Some(dfd),
            name,
            AtFlags::empty(),
        )
        .map_err(nix_err("create hardlink"))
    }

    fn devnum<R: Read>(&self, entry: &tar::Entry<'_, R>) -> u64 {
        let h = entry.header();
        let major = h.device_major().ok().flatten().unwrap_or(0);
        let minor = h.device_minor().ok().flatten().unwrap_or(0);
        makedev(u64::from(major), u64::from(minor))
    }

    /// Read mode, owner, mtime and xattrs from the header and its PAX records.
    fn meta<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Meta, EntryError> {
        let h = entry.header();
        let hdr_err = |e: io::Error| EntryError::Io("read header", e);
        let mut meta = Meta {
            mode: h.mode().map_err(hdr_err)? & 0o7777,
            uid: u32::try_from(h.uid().map_err(hdr_err)?).unwrap_or(u32::MAX),
            gid: u32::try_from(h.gid().map_err(hdr_err)?).unwrap_or(u32::MAX),
            mtime: TimeSpec::new(i64::try_from(h.mtime().map_err(hdr_err)?).unwrap_or(0), 0),
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(hdr_err)? {
            for ext in pax {
                let ext = ext.map_err(hdr_err)?;
                let (Ok(key), value) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                match key {
                    "uid" => meta.uid = parse_u32(value).unwrap_or(meta.uid),
                    "gid" => meta.gid = parse_u32(value).unwrap_or(meta.gid),
                    "mtime" => meta.mtime = parse_pax_time(value).unwrap_or(meta.mtime),
                    k => {
                        if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                            // overlayfs' own attributes would change what a later overlay mount shows.
                            if x.starts_with("trusted.overlay.") || x.starts_with("user.overlay.") {
                                self.warnings.insert(format!("dropped overlayfs xattr {x}"));
                            } else {
                                meta.xattrs.push((x.to_string(), value.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// chown → chmod (chown clears setuid/setgid and file capabilities) → xattrs → mtime.
    fn set_meta(
        &mut self,
        dfd: RawFd,
        name: &OsStr,
        meta: &Meta,
        kind: EntryType,
    ) -> Result<(), EntryError> {
        // `name` was created just now from this entry, so its type is the entry's.
        let is_link = kind == EntryType::Symlink;
        let is_dir = kind == EntryType::Directory;
        let uid = map_id(&self.opts.uid_map, meta.uid);
        let gid = map_id(&self.opts.gid_map, meta.gid);
        if uid.is_none() || gid.is_none() {
            self.warnings.insert("some files are owned by ids outside the id mapping; they were given the mapped root".into());
        }
        let uid = uid.unwrap_or_else(|| map_id(&self.opts.uid_map, 0).unwrap_or(0));
        let gid = gid.unwrap_or_else(|| map_id(&self.opts.gid_map, 0).unwrap_or(0));
        if self.is_root || !self.opts.rootless {
            fchownat(
                Some(dfd),
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(nix_err(if self.is_root {
                "chown"
            } else {
                "chown (not root: use --rootless)"
            }))?;
        }
        if !is_link {
            // Not a symlink (checked above, and we created it), so following is harmless here.
            fchmodat(
                Some(dfd),
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(nix_err("chmod"))?;
        }
        if !meta.xattrs.is_empty() {
            let p = proc_path(dfd, name);
            for (k, v) in &meta.xattrs {
                if let Err(e) = sys::lsetxattr(&p, k, v) {
                    match e.raw_os_error() {
                        Some(libc::ENOTSUP) | Some(libc::EPERM) => {
                            self.warnings
                                .insert(format!("xattr {k} could not be set: {e}"));
                        }
                        _ => return Err(EntryError::Io("set xattr", e)),
                    }
                }
            }
        }
        if !is_dir {
            utimensat(
                Some(dfd),
                name,
                &meta.mtime,
                &meta.mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(nix_err("set mtime"))?;
        }
        Ok(())
    }

    /// Drop recorded directory times at or under `path` (it was removed).
    fn forget_dirs(&mut self, path: &[u8]) {
        if self.dir_times.is_empty() {
            return;
        }
        self.dir_times.retain(|k, _| {
            !(k.as_slice() == path || k.starts_with(path) && k.get(path.len()) == Some(&b'/'))
        });
    }

    /// Set directory mtimes, deepest first, once all layers are applied.
    pub fn finish(&mut self) -> Result<()> {
        let mut dirs: Vec<(&Vec<u8>, &TimeSpec)> = self.dir_times.iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.iter().filter(|b| **b == b'/').count()));
        for (path, t) in dirs {
            let comps = components(path).unwrap_or_default();
            let res = match comps.split_last() {
                None => utimensat(
                    Some(self.root.raw()),
                    ".",
                    t,
                    t,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(io::Error::from),
                Some((base, parent)) => self.root.open_dir(&join(parent)).and_then(|d| {
                    utimensat(
                        Some(d.as_raw_fd()),
                        OsStr::from_bytes(base),
                        t,
                        t,
                        UtimensatFlags::NoFollowSymlink,
                    )
                    .map_err(io::Error::from)
                }),
            };
            // A directory replaced through a symlinked parent may have moved; its time is cosmetic.
            if let Err(e) = res {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    return Err(Error::Apply {
                        layer: 0,
                        entry: String::from_utf8_lossy(path).into_owned(),
                        op: "set directory mtime",
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Supplies the zero padding of a final tar block when the stream stops short of it: umoci 0.4 writes
/// layers that end right after the last file's content. Only the padding is supplied, so a stream cut
/// inside a header or file content still fails (and the DiffID, hashed before this, never matches).
struct PadToBlock<R> {
    inner: R,
    count: u64,
    pad: usize,
}

impl<R: Read> Read for PadToBlock<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pad == 0 {
            let n = self.inner.read(buf)?;
            self.count += n as u64;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.pad = usize::try_from((512 - self.count % 512) % 512).unwrap_or(0);
            if self.pad == 0 {
                return Ok(0);
            }
        }
        let n = self.pad.min(buf.len());
        buf[..n].fill(0);
        self.pad -= n;
        if self.pad == 0 {
            // Count the padding so a second EOF is not padded again.
            self.count = self.count.next_multiple_of(512);
        }
        Ok(n)
    }
}

/// Why one entry failed; the caller adds the layer and entry name.
enum EntryError {
    Hostile(String),
    Read(io::Error),
    Io(&'static str, io::Error),
}

fn io_err(op: &'static str) -> impl Fn(io::Error) -> EntryError {
    move |e| EntryError::Io(op, e)
}

fn nix_err(op: &'static str) -> impl Fn(nix::Error) -> EntryError {
    move |e| EntryError::Io(op, e.into())
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// PAX times are decimal seconds with an optional fraction: `1700000000.123456789`.
fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        // "-1.5" means 1.5 s before the epoch.
        return Some(TimeSpec::new(secs - 1, 1_000_000_000 - nanos));
    }
    Some(TimeSpec::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(TimeSpec::new(1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(
            parse_pax_time(b"-1.5"),
            Some(TimeSpec::new(-2, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
