//! `docker save` archives without an OCI layout: legacy Docker (< 25) and containers/image's docker-archive.

use serde::Deserialize;

use crate::archive::Archive;
use crate::blob::{self, JSON_LIMIT};
use crate::error::{Error, Result};
use crate::image::{Candidate, Image, ImageConfig, Layer, Origin};

/// One entry of `manifest.json` (an array: one entry per image in the archive).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// The images listed in `manifest.json`.
pub fn candidates(archive: &Archive) -> Result<Vec<Candidate>> {
    let raw = archive.read_small("manifest.json", JSON_LIMIT)?;
    let entries: Vec<Entry> = serde_json::from_slice(&raw)
        .map_err(|e| Error::Format(format!("parse `manifest.json`: {e}")))?;
    Ok(entries
        .into_iter()
        .map(|e| Candidate {
            names: e.repo_tags.unwrap_or_default(),
            platform: None,
            origin: Origin::Docker {
                config: e.config,
                layers: e.layers,
            },
        })
        .collect())
}

/// The hex digest a member is named after (`<hex>.json`, `blobs/sha256/<hex>`), if it is.
fn named_digest(member: &str) -> Option<String> {
    let last = member.rsplit('/').next()?;
    let stem = last.strip_suffix(".json").unwrap_or(last);
    let d = format!("sha256:{stem}");
    if blob::digest_hex(&d).is_ok() {
        Some(d)
    } else {
        None
    }
}

/// Read the config; layers are only located here and verified (by DiffID) while they are applied.
pub fn load(archive: &Archive, cand: &Candidate) -> Result<Image> {
    let Origin::Docker { config, layers } = &cand.origin else {
        return Err(Error::Format(
            "internal: not a docker-save candidate".into(),
        ));
    };
    let config_raw = archive.read_small(config, JSON_LIMIT)?;
    let config_digest = blob::sha256_of(&config_raw);
    // Docker names the config after its own digest (the image ID); hold it to that when it does.
    if let Some(want) = named_digest(config) {
        blob::verify(
            "image config",
            config,
            &want,
            None,
            (&config_digest, config_raw.len() as u64),
        )?;
    }
    let cfg = ImageConfig::parse(&config_raw, config)?;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(i, member)| Layer {
            member: member.clone(),
            digest: None,
            size: None,
            compression: None,
            diff_id: cfg.rootfs.diff_ids.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    Ok(Image {
        names: cand.names.clone(),
        manifest_digest: None,
        config_digest,
        config_raw,
        config: cfg,
        layers,
    })
}
