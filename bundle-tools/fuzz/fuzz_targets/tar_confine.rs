//! A layer tar of hostile entries (any name bytes, `..`, absolute and relative symlinks, hardlinks, whiteouts,
//! directories replaced by files) applied onto a rootfs: applying may fail, but must never panic nor create,
//! change or remove anything outside the rootfs. The rootfs sits three levels deep in a scratch directory whose
//! every other entry is a sentinel checked after each run.
//!
//! Input format (so the fuzzer builds tars rather than learning the tar header): a sequence of records
//! `kind:u8, name_len:u8, name, link_len:u8, link, body_len:u8, body`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn entries(mut data: &[u8]) -> Vec<(u8, Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut take = |d: &mut &[u8]| -> Option<Vec<u8>> {
        let (&n, rest) = d.split_first()?;
        let n = (n as usize).min(rest.len());
        let (v, rest) = rest.split_at(n);
        *d = rest;
        Some(v.to_vec())
    };
    while out.len() < 32 {
        let Some((&kind, rest)) = data.split_first() else {
            break;
        };
        data = rest;
        let (Some(name), Some(link), Some(body)) =
            (take(&mut data), take(&mut data), take(&mut data))
        else {
            break;
        };
        out.push((kind, name, link, body));
    }
    out
}

fn tar_of(list: &[(u8, Vec<u8>, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, link, body) in list {
        let mut h = tar::Header::new_gnu();
        let typ = match kind % 6 {
            0 => tar::EntryType::Regular,
            1 => tar::EntryType::Directory,
            2 => tar::EntryType::Symlink,
            3 => tar::EntryType::Link,
            4 => tar::EntryType::Fifo,
            _ => tar::EntryType::Regular,
        };
        h.set_entry_type(typ);
        // Raw name bytes: the tar crate's `set_path` refuses `..`, which is exactly what we want to send.
        let raw = h.as_old_mut();
        let n = name.len().min(raw.name.len());
        raw.name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(raw.linkname.len());
        raw.linkname[..l].copy_from_slice(&link[..l]);
        h.set_mode(if kind & 0x80 != 0 { 0o4755 } else { 0o644 });
        let body: &[u8] = if typ == tar::EntryType::Regular {
            body
        } else {
            &[]
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        let _ = b.append(&h, body);
    }
    b.into_inner().unwrap_or_default()
}

/// Every path under `dir` (not following symlinks) that is not under `skip`, with its kind and content.
fn snapshot(dir: &Path, skip: &Path, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).ok();
        let content = std::fs::read(&p)
            .map(|c| c.len().to_string())
            .unwrap_or_default();
        out.push((
            p.display().to_string(),
            format!("{:?} {content}", meta.map(|m| m.file_type())),
        ));
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            snapshot(&p, skip, out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(scratch) = tempfile::tempdir() else {
        return;
    };
    let rootfs = scratch.path().join("a/b/c/rootfs");
    for d in ["a/b/c/rootfs/etc", "a/x", "a/b/y", "a/b/c/z"] {
        let _ = std::fs::create_dir_all(scratch.path().join(d));
    }
    for f in [
        "a/x/passwd",
        "a/b/y/keep",
        "a/b/c/z/keep",
        "a/b/c/rootfs/etc/passwd",
    ] {
        let _ = std::fs::write(scratch.path().join(f), b"sentinel");
    }
    let mut before = Vec::new();
    snapshot(scratch.path(), &rootfs, &mut before);
    let layer = tar_of(&entries(data));
    if let Ok(root) = carte_bundle::confine::Root::open(&rootfs) {
        let opts = carte_bundle::layer::ApplyOptions::default();
        let mut applier = carte_bundle::layer::Applier::new(&root, &opts);
        if applier.apply(layer.as_slice(), 1).is_ok() {
            let _ = applier.finish();
        }
    }
    let mut after = Vec::new();
    snapshot(scratch.path(), &rootfs, &mut after);
    assert_eq!(
        before, after,
        "a layer changed something outside the rootfs"
    );
});
