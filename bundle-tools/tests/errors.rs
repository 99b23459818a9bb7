//! Broken inputs: each gives one clear line on stderr, a non-zero exit, and leaves no bundle behind.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use common::*;
use serde_json::Value;

/// Unpack and expect failure with `needle` in a one-line error and no bundle dir left.
fn fails(d: &Dirs, archive: &Path, needle: &str) -> Result<()> {
    let bundle = d.path("bundle");
    let (ok, _, err) = carte_bundle(&[
        "-q".as_ref(),
        "unpack".as_ref(),
        archive.as_os_str(),
        bundle.as_os_str(),
    ])?;
    ensure!(!ok, "unpack of {} succeeded", archive.display());
    ensure!(err.contains(needle), "error lacks `{needle}`: {err}");
    ensure!(
        err.trim_end().lines().count() == 1 && err.starts_with("carte-bundle: "),
        "not one line: {err}"
    );
    ensure!(!bundle.exists(), "bundle dir left behind");
    Ok(())
}

fn simple_layers() -> Vec<Vec<u8>> {
    let mut l = Layer::new();
    l.dir("etc/", 0o755)
        .file("etc/hello", &vec![b'x'; 70_000], 0o644)
        .file("etc/tail", b"end", 0o644);
    vec![l.finish()]
}

/// The manifest of a one-image layout, and where its JSON lives.
fn manifest(lay: &Path) -> Result<(Value, PathBuf)> {
    let idx: Value = serde_json::from_slice(&fs::read(lay.join("index.json"))?)?;
    let digest = idx["manifests"][0]["digest"]
        .as_str()
        .context("digest")?
        .to_string();
    let path = lay
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    Ok((serde_json::from_slice(&fs::read(&path)?)?, path))
}

/// Replace the manifest with `m` (new blob, index updated).
fn set_manifest(lay: &Path, m: &Value) -> Result<()> {
    let desc = put_blob(
        lay,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(m)?,
    )?;
    put_index(lay, vec![desc])
}

fn layer_blob(lay: &Path) -> Result<PathBuf> {
    let (m, _) = manifest(lay)?;
    let d = m["layers"][0]["digest"].as_str().context("layer digest")?;
    Ok(lay
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:")))
}

/// Store `data` as the only layer blob, with a descriptor that matches it (so only decoding can fail).
fn replace_layer(lay: &Path, data: &[u8], media_type: &str) -> Result<()> {
    let (mut m, _) = manifest(lay)?;
    m["layers"][0] = put_blob(lay, media_type, data)?;
    set_manifest(lay, &m)
}

#[test]
fn corrupt_gzip() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    oci_layout(&lay, &Image::new(simple_layers(), Comp::Gzip), "latest")?;
    let mut gz = fs::read(layer_blob(&lay)?)?;
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 16] {
        *b ^= 0x5a;
    }
    replace_layer(&lay, &gz, "application/vnd.oci.image.layer.v1.tar+gzip")?;
    fails(&d, &lay, "read tar")
}

#[test]
fn corrupt_zstd() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    oci_layout(&lay, &Image::new(simple_layers(), Comp::Zstd), "latest")?;
    let mut z = fs::read(layer_blob(&lay)?)?;
    z.truncate(z.len() - 7);
    let n = z.len();
    z[n - 10..].fill(0xff);
    replace_layer(&lay, &z, "application/vnd.oci.image.layer.v1.tar+zstd")?;
    fails(&d, &lay, "layer `sha256:")
}

#[test]
fn truncated_tar() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    let mut layers = simple_layers();
    layers[0].truncate(40_000); // inside etc/hello's content
    oci_layout(&lay, &Image::new(layers, Comp::None), "latest")?;
    fails(&d, &lay, "read tar")
}

#[test]
fn digest_and_size_mismatch() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    oci_layout(&lay, &Image::new(simple_layers(), Comp::None), "latest")?;
    let blob = layer_blob(&lay)?;
    let mut data = fs::read(&blob)?;
    data[20_000] ^= 1; // inside etc/hello's content: the tar still parses

    fs::write(&blob, &data)?;
    fails(&d, &lay, "digest is sha256:")?;
    let (mut m, _) = manifest(&lay)?;
    fs::write(&blob, &simple_layers()[0])?;
    m["layers"][0]["size"] = Value::from(12);
    set_manifest(&lay, &m)?;
    fails(&d, &lay, "descriptor says 12")
}

#[test]
fn diff_id_mismatch() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    let mut img = Image::new(simple_layers(), Comp::Gzip);
    // The config's DiffIDs are computed over other content than the layer carries.
    let cfg_layers = img.layers.clone();
    img.layers[0] = Layer::new().finish();
    let mut bad = Image::new(cfg_layers, Comp::Gzip);
    bad.layers = img.layers.clone();
    let good_cfg = Image::new(simple_layers(), Comp::Gzip).config_json();
    oci_layout(&lay, &bad, "latest")?;
    let (mut m, _) = manifest(&lay)?;
    m["config"] = put_blob(&lay, "application/vnd.oci.image.config.v1+json", &good_cfg)?;
    set_manifest(&lay, &m)?;
    fails(&d, &lay, "layer DiffID")
}

#[test]
fn missing_blob_and_missing_manifest() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    oci_layout(&lay, &Image::new(simple_layers(), Comp::Gzip), "latest")?;
    fs::remove_file(layer_blob(&lay)?)?;
    fails(&d, &lay, "open archive member")?;
    let (_, mpath) = manifest(&lay)?;
    fs::remove_file(mpath)?;
    fails(&d, &lay, "open archive member")?;
    // A tar that is neither format.
    let mut b = tar::Builder::new(fs::File::create(d.path("nothing.tar"))?);
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_cksum();
    b.append_data(&mut h, "readme", &b"hi"[..])?;
    b.finish()?;
    drop(b);
    fails(
        &d,
        &d.path("nothing.tar"),
        "not an OCI layout or docker-save archive",
    )?;
    // A docker archive whose layer is missing.
    docker_legacy(
        &d.path("d.tar"),
        &Image::new(simple_layers(), Comp::None),
        "x:1",
    )?;
    let mut b = tar::Builder::new(fs::File::create(d.path("d2.tar"))?);
    let mut ar = tar::Archive::new(fs::File::open(d.path("d.tar"))?);
    for e in ar.entries()? {
        let mut e = e?;
        if !e.path()?.to_string_lossy().ends_with("layer.tar") {
            let mut h = e.header().clone();
            let p = e.path()?.into_owned();
            b.append_data(&mut h, p, &mut e)?;
        }
    }
    b.finish()?;
    drop(b);
    fails(&d, &d.path("d2.tar"), "missing member")
}

#[test]
fn unknown_or_lying_media_types() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    oci_layout(&lay, &Image::new(simple_layers(), Comp::None), "latest")?;
    let (mut m, _) = manifest(&lay)?;
    m["layers"][0]["mediaType"] = Value::from("application/vnd.example.layer.v9+squashfs");
    set_manifest(&lay, &m)?;
    fails(
        &d,
        &lay,
        "unknown layer media type `application/vnd.example.layer.v9+squashfs`",
    )?;
    m["layers"][0]["mediaType"] = Value::from("application/vnd.oci.image.layer.v1.tar+gzip");
    set_manifest(&lay, &m)?;
    fails(&d, &lay, "media type says Gzip")
}

#[test]
fn garbage_and_compressed_archives() -> Result<()> {
    let d = Dirs::new()?;
    fs::write(d.path("garbage"), vec![7u8; 3000])?;
    let (ok, _, err) = carte_bundle(&[
        "unpack".as_ref(),
        d.path("garbage").as_os_str(),
        d.path("bundle").as_os_str(),
    ])?;
    ensure!(
        !ok && err.lines().count() == 1 && !d.path("bundle").exists(),
        "{err}"
    );
    docker_legacy(
        &d.path("d.tar"),
        &Image::new(simple_layers(), Comp::None),
        "x:1",
    )?;
    fs::write(
        d.path("d.tar.gz"),
        compress(&fs::read(d.path("d.tar"))?, Comp::Gzip),
    )?;
    // A compressed outer archive is fine (decompressed to a temp file first)…
    for (name, c) in [("d.tar.zst", Comp::Zstd), ("d.tar.gz", Comp::Gzip)] {
        fs::write(d.path(name), compress(&fs::read(d.path("d.tar"))?, c))?;
        let out = d.path(&format!("ok-{name}"));
        let (ok, _, err) = carte_bundle(&[
            "-q".as_ref(),
            "unpack".as_ref(),
            d.path(name).as_os_str(),
            out.as_os_str(),
        ])?;
        ensure!(ok && out.join("rootfs/etc/tail").is_file(), "{name}: {err}");
    }
    // …unless it is cut short.
    let gz = fs::read(d.path("d.tar.gz"))?;
    fs::write(d.path("cut.tar.gz"), &gz[..gz.len() / 2])?;
    fails(&d, &d.path("cut.tar.gz"), "decompress archive")?;
    fails(&d, &d.path("does-not-exist.tar"), "open archive")
}

#[test]
fn bundle_dir_rules() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    oci_layout(&lay, &Image::new(simple_layers(), Comp::Gzip), "latest")?;
    let bundle = d.path("bundle");
    fs::create_dir(&bundle)?;
    fs::write(bundle.join("keep"), b"mine")?;
    let (ok, _, err) = carte_bundle(&["unpack".as_ref(), lay.as_os_str(), bundle.as_os_str()])?;
    ensure!(
        !ok && err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    let (ok, _, err) = carte_bundle(&[
        "-q".as_ref(),
        "unpack".as_ref(),
        lay.as_os_str(),
        bundle.as_os_str(),
        "--force".as_ref(),
    ])?;
    ensure!(ok && err.is_empty(), "{err}");
    ensure!(bundle.join("rootfs/etc/tail").is_file() && bundle.join("keep").is_file());
    // A failed --force unpack leaves the previous bundle as it was, and no staging files.
    let before = listing(&bundle)?;
    fs::remove_file(layer_blob(&lay)?)?;
    let (ok, _, _) = carte_bundle(&[
        "unpack".as_ref(),
        lay.as_os_str(),
        bundle.as_os_str(),
        "--force".as_ref(),
    ])?;
    ensure!(!ok && listing(&bundle)? == before);
    let (ok, _, err) = carte_bundle(&[
        "unpack".as_ref(),
        lay.as_os_str(),
        d.path("x").as_os_str(),
        "--env".as_ref(),
        "NOEQUALS".as_ref(),
    ])?;
    ensure!(
        !ok && err.contains("--env `NOEQUALS`") && !d.path("x").exists(),
        "{err}"
    );
    Ok(())
}

#[test]
fn unrunnable_configs() -> Result<()> {
    let d = Dirs::new()?;
    let mut img = Image::new(simple_layers(), Comp::None);
    img.exec = serde_json::json!({"Env": ["A=1"]});
    oci_layout(&d.path("nocmd"), &img, "latest")?;
    fails(&d, &d.path("nocmd"), "neither Entrypoint nor Cmd")?;
    // Resolved only after the layers are applied: the partial rootfs must go too.
    img.exec = serde_json::json!({"Cmd": ["/bin/sh"], "User": "ghost"});
    oci_layout(&d.path("ghost"), &img, "latest")?;
    fails(
        &d,
        &d.path("ghost"),
        "user `ghost`: not found in the image's /etc/passwd",
    )
}

/// `make demo` unpacks into `target/demo/bundle` after removing `target/demo`: missing parents are created,
/// as `mkdir -p` and `umoci unpack` do, and a failed unpack removes every directory it created.
#[test]
fn missing_parents_are_created_and_removed_on_failure() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    oci_layout(&lay, &Image::new(simple_layers(), Comp::None), "latest")?;
    let bundle = d.path("a/b/bundle");
    let (ok, _, err) = carte_bundle(&[
        "-q".as_ref(),
        "unpack".as_ref(),
        lay.as_os_str(),
        bundle.as_os_str(),
    ])?;
    ensure!(ok, "unpack into missing parents failed: {err}");
    ensure!(bundle.join("config.json").is_file() && bundle.join("rootfs/etc/tail").is_file());
    // The same with a layer that fails half-way: neither the bundle nor its new parents stay.
    let mut layers = simple_layers();
    layers[0].truncate(40_000);
    let bad = d.path("bad");
    oci_layout(&bad, &Image::new(layers, Comp::None), "latest")?;
    let bundle = d.path("x/y/bundle");
    let (ok, _, err) = carte_bundle(&[
        "-q".as_ref(),
        "unpack".as_ref(),
        bad.as_os_str(),
        bundle.as_os_str(),
    ])?;
    ensure!(!ok && err.contains("read tar"), "{err}");
    ensure!(
        !d.path("x").exists(),
        "the created parents were left behind"
    );
    Ok(())
}
