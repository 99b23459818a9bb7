//! The format-neutral image model: candidates found in an archive, choosing one, and the loaded image.
//!
//! `oci.rs` and `docker.rs` turn their archives into [`Candidate`]s and load the chosen one into an [`Image`];
//! everything after that (listing, layer application, conversion) never looks at the archive format again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::archive::Archive;
use crate::blob::Compression;
use crate::error::{Error, Result};
use crate::{docker, oci};

/// `os/architecture[/variant]`, as in an image index or an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Parse `--platform os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::Usage(format!(
                "--platform `{s}`: expected os/arch[/variant]"
            ))),
        }
    }

    /// linux and the Go name of the architecture this binary runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Whether an image built for `self` satisfies a request for `want` (a missing variant matches any).
    pub fn satisfies(&self, want: &Platform) -> bool {
        self.os == want.os
            && self.architecture == want.architecture
            && (want.variant.is_none() || self.variant == want.variant)
    }
}

/// The `config` object of an image config (Docker and OCI spell it the same way).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub user: Option<String>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub working_dir: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
}

/// The parts of an image config we use. Unknown fields (Docker's `container_config`, …) are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    #[serde(rename = "os.version")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features")]
    pub os_features: Option<Vec<String>>,
    pub created: Option<String>,
    pub author: Option<String>,
    pub config: Option<ExecConfig>,
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parse and check the fields we cannot do without.
    pub fn parse(bytes: &[u8], name: &str) -> Result<ImageConfig> {
        let cfg: ImageConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::Format(format!("parse image config `{name}`: {e}")))?;
        if cfg.rootfs.kind != "layers" {
            return Err(Error::Format(format!(
                "image config `{name}`: rootfs.type is `{}`, expected `layers`",
                cfg.rootfs.kind
            )));
        }
        Ok(cfg)
    }

    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// Where a candidate's manifest lives.
#[derive(Debug, Clone)]
pub enum Origin {
    /// An OCI (or Docker v2) manifest blob in an image layout.
    Oci {
        digest: String,
        size: u64,
        media_type: String,
    },
    /// One entry of a docker-save `manifest.json`.
    Docker { config: String, layers: Vec<String> },
}

/// An image an archive offers, before its blobs are read.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub names: Vec<String>,
    pub platform: Option<Platform>,
    pub origin: Origin,
}

/// One layer of a loaded image.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Archive member holding the (maybe compressed) layer.
    pub member: String,
    /// Digest and size of the stored blob, when the format records them.
    pub digest: Option<String>,
    pub size: Option<u64>,
    /// Compression declared by the media type (`None` = sniff only, docker-save).
    pub compression: Option<Compression>,
    /// sha256 of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: String,
}

impl Layer {
    /// Name used in messages: the digest when known, else the archive member.
    pub fn label(&self) -> &str {
        self.digest.as_deref().unwrap_or(&self.member)
    }
}

/// A chosen image with its config read and verified.
#[derive(Debug, Clone)]
pub struct Image {
    pub names: Vec<String>,
    pub manifest_digest: Option<String>,
    pub config_digest: String,
    pub config_raw: Vec<u8>,
    pub config: ImageConfig,
    pub layers: Vec<Layer>,
}

impl Image {
    /// Total stored size of the layers (compressed where the archive stores them compressed).
    pub fn stored_size(&self, archive: &Archive) -> u64 {
        self.layers
            .iter()
            .map(|l| match l.size {
                Some(s) => s,
                None => archive.open_member(&l.member).map(|(_, s)| s).unwrap_or(0),
            })
            .sum()
    }
}

/// Every image the archive offers, whatever its format.
pub fn candidates(archive: &Archive) -> Result<Vec<Candidate>> {
    // An OCI layout wins even when docker's manifest.json is also present (Docker >= 25 writes both).
    if archive.exists("oci-layout") && archive.exists("index.json") {
        oci::candidates(archive)
    } else if archive.exists("manifest.json") {
        docker::candidates(archive)
    } else {
        Err(Error::Format(format!(
            "archive `{}`: not an OCI layout or docker-save archive (no index.json+oci-layout, no manifest.json)",
            archive.path().display()
        )))
    }
}

/// Read a candidate's manifest and config.
pub fn load(archive: &Archive, cand: &Candidate) -> Result<Image> {
    let img = match &cand.origin {
        Origin::Oci { .. } => oci::load(archive, cand)?,
        Origin::Docker { .. } => docker::load(archive, cand)?,
    };
    if img.layers.len() != img.config.rootfs.diff_ids.len() {
        return Err(Error::Format(format!(
            "image `{}`: {} layers but the config lists {} diff_ids",
            img.config_digest,
            img.layers.len(),
            img.config.rootfs.diff_ids.len()
        )));
    }
    Ok(img)
}

/// Whether `query` (as typed after `--image`) names a candidate called `name`.
pub fn name_matches(name: &str, query: &str) -> bool {
    let (n, q) = (with_tag(name), with_tag(query));
    // Exact (also a bare OCI ref.name tag such as `latest`), the same Docker reference once both are
    // normalised (`busybox` = `docker.io/library/busybox:latest`), or the stored name is the query with
    // a registry prefix (podman's `localhost/example/bb`).
    name == query || normalize(&n) == normalize(&q) || n.ends_with(&format!("/{q}"))
}

/// Add `:latest` to a reference without a tag or digest.
fn with_tag(s: &str) -> String {
    let last = s.rsplit('/').next().unwrap_or(s);
    if last.contains(':') || last.contains('@') {
        s.to_string()
    } else {
        format!("{s}:latest")
    }
}

/// Docker's reference normalisation: a first component that is not a host means Docker Hub,
/// and a single-component name lives under `library/`.
fn normalize(s: &str) -> String {
    match s.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            s.to_string()
        }
        Some(_) => format!("docker.io/{s}"),
        None => format!("docker.io/library/{s}"),
    }
}

/// Pick exactly one candidate, by name and platform, or explain why that is impossible.
pub fn select(
    archive: &Archive,
    image: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Image> {
    let all = candidates(archive)?;
    let list = |c: &[Candidate]| {
        c.iter()
            .map(|c| {
                if c.names.is_empty() {
                    "<unnamed>".to_string()
                } else {
                    c.names.join(",")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if all.is_empty() {
        return Err(Error::Select(format!(
            "archive `{}`: holds no image",
            archive.path().display()
        )));
    }
    let named: Vec<Candidate> = match image {
        Some(q) => all
            .iter()
            .filter(|c| c.names.iter().any(|n| name_matches(n, q)))
            .cloned()
            .collect(),
        None => all.clone(),
    };
    if named.is_empty() {
        return Err(Error::Select(format!(
            "archive `{}`: no image named `{}`; it holds: {}",
            archive.path().display(),
            image.unwrap_or_default(),
            list(&all)
        )));
    }
    if named.len() == 1 && platform.is_none() {
        return load(archive, &named[0]);
    }
    // Several images (or an explicit platform): keep those built for the wanted platform.
    let want = platform.cloned().unwrap_or_else(Platform::host);
    let mut fitting = Vec::new();
    for c in &named {
        let p = match &c.platform {
            Some(p) => p.clone(),
            None => load(archive, c)?.config.platform(),
        };
        if p.satisfies(&want) {
            fitting.push(c.clone());
        }
    }
    match fitting.len() {
        1 => load(archive, &fitting[0]),
        0 => Err(Error::Select(format!(
            "archive `{}`: no image for platform {want}; candidates: {}",
            archive.path().display(),
            list(&named)
        ))),
        _ => Err(Error::Select(format!(
            "archive `{}`: holds several images, choose one with --image: {}",
            archive.path().display(),
            list(&fitting)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_matches("busybox:latest", "busybox"));
        assert!(name_matches("docker.io/library/busybox:latest", "busybox"));
        assert!(name_matches(
            "docker.io/library/busybox:latest",
            "busybox:latest"
        ));
        assert!(name_matches("localhost/example/bb:1.0", "example/bb:1.0"));
        assert!(!name_matches("example/bb:1.0", "example/bb"));
        assert!(!name_matches("notbusybox:latest", "busybox"));
        assert!(name_matches("latest", "latest"));
        assert!(name_matches("busybox:latest", "docker.io/library/busybox"));
        assert!(!name_matches("busybox:latest", "docker.io/other/busybox"));
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").ok();
        assert_eq!(p.map(|p| p.to_string()).as_deref(), Some("linux/arm64/v8"));
        assert!(Platform::parse("linux").is_err());
        let amd = Platform::parse("linux/amd64").ok().unwrap_or_default();
        assert!(amd.satisfies(&amd));
        assert!(!amd.satisfies(&Platform::parse("linux/arm64").ok().unwrap_or_default()));
    }
}
