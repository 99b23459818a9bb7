//! OCI image layouts (directory or tar, also Docker >= 25's `docker save`): index walking and manifest loading.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;

use crate::archive::Archive;
use crate::blob::{self, Compression, Hashing, JSON_LIMIT};
use crate::error::{Error, IoCtx, Result};
use crate::image::{Candidate, Image, ImageConfig, Layer, Origin, Platform};

const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Nested indexes deeper than this are refused (a hostile index could point at itself).
const MAX_INDEX_DEPTH: usize = 4;

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// Archive member of a blob.
fn blob_path(digest: &str) -> Result<String> {
    Ok(format!("blobs/sha256/{}", blob::digest_hex(digest)?))
}

/// Read a JSON blob whole and check its size and digest against the descriptor.
pub fn read_blob(
    archive: &Archive,
    what: &'static str,
    digest: &str,
    size: u64,
) -> Result<Vec<u8>> {
    let member = blob_path(digest)?;
    if size > JSON_LIMIT {
        return Err(Error::Format(format!(
            "{what} `{digest}`: {size} bytes is too large for metadata"
        )));
    }
    let (r, _) = archive.open_member(&member)?;
    let mut h = Hashing::new(r.take(size + 1));
    let mut buf = Vec::new();
    h.read_to_end(&mut buf)
        .ctx("read blob", archive.path().join(&member))?;
    let (got, n, _) = h.finish();
    blob::verify(what, digest, digest, Some(size), (&got, n))?;
    Ok(buf)
}

/// Names of an index entry: Docker/containerd's full reference and the OCI `ref.name` (often just a tag).
fn names_of(d: &Descriptor) -> Vec<String> {
    [
        "io.containerd.image.name",
        "org.opencontainers.image.ref.name",
    ]
    .iter()
    .filter_map(|k| d.annotations.get(*k).cloned())
    .collect()
}

fn walk(
    archive: &Archive,
    manifests: &[Descriptor],
    inherited: &[String],
    depth: usize,
    out: &mut Vec<Candidate>,
) -> Result<()> {
    if depth > MAX_INDEX_DEPTH {
        return Err(Error::Format(format!(
            "archive `{}`: image indexes nested more than {MAX_INDEX_DEPTH} deep",
            archive.path().display()
        )));
    }
    for d in manifests {
        let mut names = names_of(d);
        if names.is_empty() {
            names = inherited.to_vec();
        }
        match d.media_type.as_str() {
            MT_INDEX | MT_DOCKER_LIST => {
                let raw = read_blob(archive, "image index", &d.digest, d.size)?;
                let idx: Index = serde_json::from_slice(&raw)
                    .map_err(|e| Error::Format(format!("parse image index `{}`: {e}", d.digest)))?;
                walk(archive, &idx.manifests, &names, depth + 1, out)?;
            }
            MT_MANIFEST | MT_DOCKER_MANIFEST => {
                // The same manifest under two tags is one image with two names.
                if let Some(prev) = out.iter_mut().find(
                    |c| matches!(&c.origin, Origin::Oci { digest, .. } if *digest == d.digest),
                ) {
                    for n in names {
                        if !prev.names.contains(&n) {
                            prev.names.push(n);
                        }
                    }
                    continue;
                }
                out.push(Candidate {
                    names,
                    platform: d.platform.clone(),
                    origin: Origin::Oci {
                        digest: d.digest.clone(),
                        size: d.size,
                        media_type: d.media_type.clone(),
                    },
                });
            }
            // The spec says unknown media types in an index must be ignored (attestations, artifacts…).
            _ => {}
        }
    }
    Ok(())
}

/// Every manifest reachable from `index.json`.
pub fn candidates(archive: &Archive) -> Result<Vec<Candidate>> {
    let layout = archive.read_small("oci-layout", JSON_LIMIT)?;
    let v: serde_json::Value = serde_json::from_slice(&layout)
        .map_err(|e| Error::Format(format!("parse `oci-layout`: {e}")))?;
    if v.get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(Error::Format("`oci-layout`: no imageLayoutVersion".into()));
    }
    let raw = archive.read_small("index.json", JSON_LIMIT)?;
    let idx: Index = serde_json::from_slice(&raw)
        .map_err(|e| Error::Format(format!("parse `index.json`: {e}")))?;
    let mut out = Vec::new();
    walk(archive, &idx.manifests, &[], 0, &mut out)?;
    Ok(out)
}

/// Read the candidate's manifest and config blobs.
pub fn load(archive: &Archive, cand: &Candidate) -> Result<Image> {
    let Origin::Oci { digest, size, .. } = &cand.origin else {
        return Err(Error::Format("internal: not an OCI candidate".into()));
    };
    let raw = read_blob(archive, "manifest", digest, *size)?;
    let m: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| Error::Format(format!("parse manifest `{digest}`: {e}")))?;
    if let Some(mt) = &m.media_type {
        if mt != MT_MANIFEST && mt != MT_DOCKER_MANIFEST {
            return Err(Error::Format(format!(
                "manifest `{digest}`: unexpected media type `{mt}`"
            )));
        }
    }
    let config_raw = read_blob(archive, "image config", &m.config.digest, m.config.size)?;
    let config = ImageConfig::parse(&config_raw, &m.config.digest)?;
    let mut layers = Vec::with_capacity(m.layers.len());
    for (i, l) in m.layers.iter().enumerate() {
        let compression = Compression::from_media_type(&l.media_type).ok_or_else(|| {
            Error::Format(format!(
                "layer {i} `{}`: unknown layer media type `{}`",
                l.digest, l.media_type
            ))
        })?;
        layers.push(Layer {
            member: blob_path(&l.digest)?,
            digest: Some(l.digest.clone()),
            size: Some(l.size),
            compression: Some(compression),
            diff_id: config.rootfs.diff_ids.get(i).cloned().unwrap_or_default(),
        });
    }
    Ok(Image {
        names: cand.names.clone(),
        manifest_digest: Some(digest.clone()),
        config_digest: m.config.digest.clone(),
        config_raw,
        config,
        layers,
    })
}
