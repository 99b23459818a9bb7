//! Test helpers: build layer tars and image archives offline with the `tar` crate, snapshot rootfs trees,
//! and find the external tools (umoci, skopeo, runc) that some tests compare against.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_carte-bundle");

/// A fixed, distinctive mtime so a test can tell "applied" from "now".
pub const T0: u64 = 1_600_000_000;

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Whether an external tool is installed; prints a skip message when it is not.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: `{tool}` is not installed");
    }
    ok
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Run a command, fail with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `carte-bundle ARGS…` → (success, stderr).
pub fn carte_bundle(args: &[&std::ffi::OsStr]) -> Result<(bool, String, String)> {
    let out = Command::new(BIN).args(args).output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Builds one layer tar.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(T0);
        h
    }

    /// Append with a raw name (and link name) written straight into the header, bypassing the `tar`
    /// crate's own refusal of `..` and absolute paths — hostile archives need exactly those.
    pub fn raw(&mut self, mut h: tar::Header, name: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
        let g = h.as_gnu_mut().expect("gnu header");
        g.name = [0; 100];
        g.name[..name.len()].copy_from_slice(name);
        g.linkname = [0; 100];
        g.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.b.append(&h, data).expect("append");
        self
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .expect("pax");
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.dir_owned(name, mode, 0, 0)
    }

    pub fn dir_owned(&mut self, name: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let h = Self::header(tar::EntryType::Directory, mode, uid, gid, 0);
        self.raw(h, name.as_bytes(), b"", &[])
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.file_owned(name, data, mode, 0, 0)
    }

    pub fn file_owned(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let h = Self::header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.raw(h, name.as_bytes(), b"", data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.raw(h, name.as_bytes(), target.as_bytes(), &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.raw(h, name.as_bytes(), target.as_bytes(), &[])
    }

    pub fn node(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = Self::header(kind, mode, 0, 0, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.raw(h, name.as_bytes(), b"", &[])
    }

    /// `.wh.NAME` next to NAME.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, base) = path.rsplit_once('/').map_or(("", path), |(d, b)| (d, b));
        let name = if dir.is_empty() {
            format!(".wh.{base}")
        } else {
            format!("{dir}/.wh.{base}")
        };
        self.file(&name, b"", 0o644)
    }

    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("finish tar")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

pub fn compress(data: &[u8], c: Comp) -> Vec<u8> {
    match c {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        Comp::Zstd => zstd::encode_all(data, 1).expect("zstd"),
    }
}

/// An image to write in some archive format.
pub struct Image {
    pub layers: Vec<Vec<u8>>,
    pub comp: Comp,
    /// The `config` object of the image config.
    pub exec: Value,
    pub arch: String,
}

impl Image {
    pub fn new(layers: Vec<Vec<u8>>, comp: Comp) -> Image {
        Image {
            layers,
            comp,
            exec: json!({"Cmd": ["/bin/sh"]}),
            arch: carte_bundle::Platform::host().architecture,
        }
    }

    pub fn config_json(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("sha256:{}", sha256_hex(l)))
            .collect();
        serde_json::to_vec(&json!({
            "created": "2024-01-02T03:04:05Z",
            "architecture": self.arch,
            "os": "linux",
            "config": self.exec,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("config json")
    }
}

fn layer_media_type(c: Comp) -> &'static str {
    match c {
        Comp::None => "application/vnd.oci.image.layer.v1.tar",
        Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// Write a blob into `layout/blobs/sha256`, return its descriptor.
pub fn put_blob(layout: &Path, media_type: &str, data: &[u8]) -> Result<Value> {
    let hex = sha256_hex(data);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(&hex), data)?;
    Ok(json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": data.len()}))
}

/// Write the image's manifest (and blobs) into an OCI layout dir; returns the manifest descriptor.
pub fn put_image(layout: &Path, img: &Image) -> Result<Value> {
    let mut layers = Vec::new();
    for l in &img.layers {
        layers.push(put_blob(
            layout,
            layer_media_type(img.comp),
            &compress(l, img.comp),
        )?);
    }
    let config = put_blob(
        layout,
        "application/vnd.oci.image.config.v1+json",
        &img.config_json(),
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    });
    put_blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest)?,
    )
}

/// Write `oci-layout` and `index.json` listing `manifests`.
pub fn put_index(layout: &Path, manifests: Vec<Value>) -> Result<()> {
    fs::create_dir_all(layout)?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests}))?,
    )?;
    Ok(())
}

/// A one-image OCI layout directory tagged `tag`.
pub fn oci_layout(layout: &Path, img: &Image, tag: &str) -> Result<()> {
    let mut desc = put_image(layout, img)?;
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    put_index(layout, vec![desc])
}

/// Tar a directory (the `oci-archive` form of a layout).
pub fn tar_dir(dir: &Path, out: &Path) -> Result<()> {
    let mut b = tar::Builder::new(fs::File::create(out)?);
    b.append_dir_all(".", dir)?;
    b.finish()?;
    Ok(())
}

/// A legacy (Docker < 25) `docker save` archive: `<id>/layer.tar`, `<id>.json`, `manifest.json`, `repositories`.
pub fn docker_legacy(out: &Path, img: &Image, tag: &str) -> Result<()> {
    let mut b = tar::Builder::new(fs::File::create(out)?);
    let add = |b: &mut tar::Builder<fs::File>, name: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data)?;
        Ok(())
    };
    let config = img.config_json();
    let config_name = format!("{}.json", sha256_hex(&config));
    let mut layer_names = Vec::new();
    for (i, l) in img.layers.iter().enumerate() {
        let id = sha256_hex(format!("v1-{i}").as_bytes());
        add(&mut b, &format!("{id}/VERSION"), b"1.0")?;
        add(&mut b, &format!("{id}/layer.tar"), &compress(l, img.comp))?;
        layer_names.push(format!("{id}/layer.tar"));
    }
    add(&mut b, &config_name, &config)?;
    let manifest = json!([{"Config": config_name, "RepoTags": [tag], "Layers": layer_names}]);
    add(&mut b, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    b.finish()?;
    Ok(())
}

/// A busybox-static rootfs directory: /bin/busybox, a few applet links, /etc/passwd and /etc/group.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir.join("bin"))?;
    fs::create_dir_all(dir.join("etc"))?;
    fs::copy("/bin/busybox", dir.join("bin/busybox"))?;
    for a in ["sh", "ls", "cat", "echo", "id", "true", "stat", "readlink"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a))?;
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )?;
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
    )?;
    Ok(())
}

/// One line per path describing everything layer application must reproduce. Hardlinked files
/// are described by the first path (in sorted order) of their inode.
pub fn snapshot(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut paths = Vec::new();
    walk(root, root, &mut paths)?;
    paths.sort();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for rel in paths {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let m = fs::symlink_metadata(&p)?;
        let ft = m.file_type();
        let mut d = format!(
            "mode={:o} uid={} gid={}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        );
        if ft.is_dir() {
            d = format!("dir {d} mtime={}.{}", m.mtime(), m.mtime_nsec());
        } else if ft.is_symlink() {
            d = format!(
                "symlink -> {} uid={} gid={} mtime={}",
                fs::read_link(&p)?.display(),
                m.uid(),
                m.gid(),
                m.mtime()
            );
        } else if ft.is_file() {
            let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
            let link = if first != rel {
                format!(" hardlink-of={first}")
            } else {
                String::new()
            };
            d = format!(
                "file {d} size={} sha={} mtime={}.{}{link}",
                m.len(),
                &sha256_hex(&fs::read(&p)?)[..16],
                m.mtime(),
                m.mtime_nsec()
            );
        } else if ft.is_char_device() || ft.is_block_device() {
            d = format!(
                "dev c={} {d} rdev={:x} mtime={}",
                ft.is_char_device(),
                m.rdev(),
                m.mtime()
            );
        } else if ft.is_fifo() {
            d = format!("fifo {d} mtime={}", m.mtime());
        }
        let xattrs = carte_bundle::sys::lgetxattrs(&p).unwrap_or_default();
        for (k, v) in xattrs {
            d.push_str(&format!(" xattr:{k}={}", &sha256_hex(&v)[..8]));
        }
        out.insert(if rel.is_empty() { ".".into() } else { rel }, d);
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let rel = dir.strip_prefix(root)?.to_string_lossy().into_owned();
    out.push(rel);
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            walk(root, &e.path(), out)?;
        } else {
            out.push(e.path().strip_prefix(root)?.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Differences between two snapshots, one line each (empty = identical).
pub fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in first: {k}: {v}")),
            Some(w) if w != v => out.push(format!("{k}:\n   first:  {v}\n   second: {w}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push(format!("only in second: {k}: {v}"));
        }
    }
    out
}

/// Paths of a tempdir.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Result<Dirs> {
        Ok(Dirs {
            tmp: tempfile::Builder::new()
                .prefix("carte-bundle-test")
                .tempdir()?,
        })
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
}

/// Every file below `dir`, for "nothing was written outside" checks.
pub fn listing(dir: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut v)?;
    }
    v.sort();
    Ok(v)
}
