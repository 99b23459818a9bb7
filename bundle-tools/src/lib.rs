//! carte-bundle: image archives (docker save, OCI layouts) → OCI runtime bundles, as a library and a CLI.
//!
//! `unpack` is the whole story: open the archive, choose the image, apply its verified layers into a staging
//! rootfs inside the bundle, write config.json, then move both into place — or remove everything it made.

pub mod archive;
pub mod blob;
pub mod confine;
pub mod convert;
pub mod docker;
pub mod error;
pub mod idmap;
pub mod image;
pub mod layer;
pub mod oci;
pub mod passwd;
pub mod spec;
#[doc(hidden)]
pub mod sys;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use convert::ConvertOptions;
pub use error::{Error, Result};
pub use idmap::IdMap;
pub use image::Platform;

use archive::Archive;
use blob::Hashing;
use confine::Root;
use error::IoCtx;
use layer::{Applier, ApplyOptions};

/// Everything `carte-bundle unpack` can be asked.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    pub image: Option<String>,
    pub platform: Option<Platform>,
    /// Replace the rootfs and config.json of a non-empty bundle directory.
    pub force: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
    pub convert: ConvertOptions,
}

/// What an unpack did.
#[derive(Debug, Clone, Serialize)]
pub struct UnpackReport {
    pub names: Vec<String>,
    pub config_digest: String,
    pub layers: usize,
    pub bytes: u64,
    pub warnings: Vec<String>,
}

/// One image of an archive, for `list`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    pub names: Vec<String>,
    /// Manifest digest (OCI layouts) or config digest = image ID (docker-save archives).
    pub digest: String,
    pub platform: String,
    /// Stored size of the layers in bytes.
    pub size: u64,
    pub layers: usize,
    pub created: Option<String>,
}

/// The images an archive holds.
pub fn list(archive: &Path) -> Result<Vec<ImageSummary>> {
    let ar = Archive::open(archive)?;
    let mut out = Vec::new();
    for cand in image::candidates(&ar)? {
        let img = image::load(&ar, &cand)?;
        out.push(ImageSummary {
            names: img.names.clone(),
            digest: img
                .manifest_digest
                .clone()
                .unwrap_or_else(|| img.config_digest.clone()),
            platform: img.config.platform().to_string(),
            size: img.stored_size(&ar),
            layers: img.layers.len(),
            created: img.config.created.clone(),
        });
    }
    Ok(out)
}

/// The chosen image's config, as stored.
pub fn inspect(
    archive: &Path,
    image: Option<&str>,
    platform: Option<&Platform>,
) -> Result<serde_json::Value> {
    let ar = Archive::open(archive)?;
    let img = image::select(&ar, image, platform)?;
    serde_json::from_slice(&img.config_raw)
        .map_err(|e| Error::Format(format!("parse image config `{}`: {e}", img.config_digest)))
}

/// Files `unpack` creates in the bundle dir; removed again if it fails.
struct Staging {
    rootfs: PathBuf,
    config: PathBuf,
    /// The directories we created for the bundle (itself and missing parents), outermost first.
    created_dirs: Vec<PathBuf>,
    done: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Best effort: the error that brought us here is the one worth reporting.
        let _ = std::fs::remove_dir_all(&self.rootfs);
        let _ = std::fs::remove_file(&self.config);
        for d in self.created_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Prepare the bundle dir: create it (and its missing parents, as `mkdir -p` and `umoci unpack`
/// do), or accept it empty (or non-empty with `force`).
fn prepare_bundle(bundle: &Path, force: bool) -> Result<Staging> {
    let created_dirs = match std::fs::symlink_metadata(bundle) {
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(bundle).ctx("read bundle directory", bundle)?;
            if entries.next().is_some() && !force {
                return Err(Error::Usage(format!(
                    "bundle directory `{}` is not empty (use --force to replace its rootfs and config.json)",
                    bundle.display()
                )));
            }
            vec![]
        }
        Ok(_) => {
            return Err(Error::Usage(format!(
                "bundle directory `{}` exists and is not a directory",
                bundle.display()
            )))
        }
        Err(_) => create_dirs(bundle)?,
    };
    let pid = std::process::id();
    let staging = Staging {
        rootfs: bundle.join(format!(".rootfs.carte-bundle-{pid}")),
        config: bundle.join(format!(".config.json.carte-bundle-{pid}")),
        created_dirs,
        done: false,
    };
    std::fs::create_dir(&staging.rootfs).ctx("create staging rootfs", &staging.rootfs)?;
    Ok(staging)
}

/// Create `dir` and each missing ancestor; the ones created, outermost first. On failure the ones
/// already made are removed again, so a failed unpack leaves nothing behind.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = vec![];
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    for (i, d) in missing.iter().enumerate() {
        if let Err(e) = std::fs::create_dir(d) {
            for made in missing[..i].iter().rev() {
                let _ = std::fs::remove_dir(made);
            }
            return Err(e).ctx("create bundle directory", d);
        }
    }
    Ok(missing)
}

/// A progress line is printed each time this much more of a layer has been decompressed.
const PROGRESS_STEP: u64 = 64 << 20;

/// Counts a layer's uncompressed bytes and reports long layers on stderr as they go.
struct Progress<R> {
    inner: R,
    read: u64,
    next: u64,
    what: String,
    quiet: bool,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read >= self.next {
            self.next += PROGRESS_STEP;
            if !self.quiet {
                eprintln!("{}: {} MiB…", self.what, self.read >> 20);
            }
        }
        Ok(n)
    }
}

fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

/// Unpack the chosen image of `archive` into the bundle directory `bundle` (`rootfs/` + `config.json`).
pub fn unpack(archive: &Path, bundle: &Path, opts: &UnpackOptions) -> Result<UnpackReport> {
    for kv in &opts.convert.env {
        if !kv.contains('=') || kv.starts_with('=') {
            return Err(Error::Usage(format!("--env `{kv}`: expected NAME=VALUE")));
        }
    }
    // Everything that can fail without writing happens before the bundle dir is touched.
    let ar = Archive::open(archive)?;
    let img = image::select(&ar, opts.image.as_deref(), opts.platform.as_ref())?;
    let mut convert = opts.convert.clone();
    if convert.rootless {
        // runc's rootless mapping: the invoking user is the container's root, and nobody else exists.
        let one = |host| {
            vec![IdMap {
                container: 0,
                host,
                size: 1,
            }]
        };
        if convert.uid_map.is_empty() {
            convert.uid_map = one(nix::unistd::geteuid().as_raw());
        }
        if convert.gid_map.is_empty() {
            convert.gid_map = one(nix::unistd::getegid().as_raw());
        }
    }
    convert::process_args(&img, &convert)?;
    let mut staging = prepare_bundle(bundle, opts.force)?;
    let root = Root::open(&staging.rootfs).ctx("open staging rootfs", &staging.rootfs)?;
    let apply_opts = ApplyOptions {
        uid_map: convert.uid_map.clone(),
        gid_map: convert.gid_map.clone(),
        rootless: convert.rootless,
    };
    let mut applier = Applier::new(&root, &apply_opts);
    let started = Instant::now();
    let total = img.layers.len();
    let mut bytes = 0;
    for (i, layer) in img.layers.iter().enumerate() {
        let label = layer.label().to_string();
        let broken = |reason: String| Error::Integrity {
            what: "layer",
            name: label.clone(),
            reason,
        };
        let (r, _) = ar.open_member(&layer.member)?;
        let mut raw = Hashing::new(r);
        let (written, diff_got) = {
            let decoded = blob::decoder(&mut raw, layer.compression, &label)?;
            let decoded = Progress {
                inner: decoded,
                read: 0,
                next: PROGRESS_STEP,
                what: format!("layer {}/{total} {}", i + 1, short(&label)),
                quiet: opts.quiet,
            };
            let (written, mut diff) =
                applier
                    .apply(Hashing::new(decoded), i + 1)
                    .map_err(|e| match e {
                        Error::Integrity { reason, .. } => broken(reason),
                        other => other,
                    })?;
            // The DiffID covers the whole uncompressed stream, end-of-archive blocks included.
            diff.drain().map_err(|e| broken(format!("read: {e}")))?;
            let (got, n, _) = diff.finish();
            (written, (got, n))
        };
        raw.drain().map_err(|e| broken(format!("read: {e}")))?;
        let (got, n, _) = raw.finish();
        // The stored blob first: a blob that is not what the manifest names explains any later mismatch.
        if let Some(d) = &layer.digest {
            blob::verify("layer", &label, d, layer.size, (&got, n))?;
        }
        blob::verify(
            "layer DiffID",
            &label,
            &layer.diff_id,
            None,
            (&diff_got.0, diff_got.1),
        )?;
        bytes += written;
        if !opts.quiet {
            eprintln!(
                "layer {}/{total} {}: {:.1} MiB applied",
                i + 1,
                short(&label),
                written as f64 / 1048576.0
            );
        }
    }
    applier.finish()?;
    let mut warnings: Vec<String> = std::mem::take(&mut applier.warnings).into_iter().collect();
    let (built, host) = (img.config.platform(), Platform::host());
    if built.os != host.os || built.architecture != host.architecture {
        warnings.push(format!(
            "the image is built for {built}, this machine is {host}"
        ));
    }

    let config = convert::runtime_config(&img, &root, &convert)?;
    let text = serde_json::to_vec_pretty(&config).map_err(|e| Error::Convert(e.to_string()))?;
    let mut f = std::fs::File::create(&staging.config).ctx("create", &staging.config)?;
    f.write_all(&text)
        .and_then(|_| f.write_all(b"\n"))
        .ctx("write", &staging.config)?;
    drop(root);

    // Swap in the new rootfs and config only now, so a failure above leaves an existing bundle as it was.
    let rootfs = bundle.join("rootfs");
    if std::fs::symlink_metadata(&rootfs).is_ok() {
        if std::fs::symlink_metadata(&rootfs)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            std::fs::remove_dir_all(&rootfs).ctx("remove old rootfs", &rootfs)?;
        } else {
            std::fs::remove_file(&rootfs).ctx("remove old rootfs", &rootfs)?;
        }
    }
    std::fs::rename(&staging.rootfs, &rootfs).ctx("move rootfs into place", &rootfs)?;
    std::fs::rename(&staging.config, bundle.join("config.json"))
        .ctx("move config.json into place", bundle.join("config.json"))?;
    staging.done = true;
    if !opts.quiet {
        eprintln!(
            "unpacked {} layers ({:.1} MiB) in {:.2}s",
            total,
            bytes as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(UnpackReport {
        names: img.names,
        config_digest: img.config_digest,
        layers: total,
        bytes,
        warnings,
    })
}
