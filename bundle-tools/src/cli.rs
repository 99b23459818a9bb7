//! The command line: clap structs for `unpack`, `list` and `inspect`, and parsing of id maps and platforms.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use carte_bundle::IdMap;

#[derive(Debug, Parser)]
#[command(
    name = "carte-bundle",
    version,
    about = "Turn image archives (docker save, OCI layouts) into OCI runtime bundles"
)]
pub struct Cli {
    /// No progress on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply an image's layers into BUNDLE_DIR/rootfs and write BUNDLE_DIR/config.json.
    Unpack {
        /// docker-save tar, OCI layout tar (oci-archive) or OCI layout directory.
        archive: PathBuf,
        /// Created if missing, with its missing parents (as mkdir -p); receives rootfs/ and config.json.
        bundle_dir: PathBuf,
        /// NAME[:TAG] of the image, when the archive holds several.
        #[arg(long)]
        image: Option<String>,
        /// os/arch[/variant] to pick from a multi-platform index (default: linux and this machine's arch).
        #[arg(long)]
        platform: Option<String>,
        /// Prepare for an unprivileged container: user namespace, no device nodes, no chown.
        #[arg(long)]
        rootless: bool,
        /// CONTAINER:HOST:SIZE uid range; owners are mapped through it and it goes into config.json.
        #[arg(long = "uid-map", value_parser = parse_map)]
        uid_map: Vec<IdMap>,
        /// CONTAINER:HOST:SIZE gid range (see --uid-map).
        #[arg(long = "gid-map", value_parser = parse_map)]
        gid_map: Vec<IdMap>,
        /// Set process.terminal (and TERM) in config.json.
        #[arg(short, long)]
        tty: bool,
        /// NAME=VALUE added to (or replacing in) the image's environment; repeatable.
        #[arg(short, long)]
        env: Vec<String>,
        /// Replace the rootfs and config.json of a non-empty bundle directory.
        #[arg(short, long)]
        force: bool,
        /// Network the container through CNI: add `carte net` hooks for network NAME (default: carte, the
        /// carte0 bridge) and a network namespace. The hooks run the `carte` next to carte-bundle (or in PATH).
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "carte")]
        net: Option<String>,
        /// The carte state root the --net hooks keep their CNI results under (carte's --root).
        #[arg(
            long = "net-root",
            value_name = "DIR",
            default_value = "/run/carte",
            requires = "net"
        )]
        net_root: PathBuf,
        /// Replace the image's Cmd (after its Entrypoint); everything after --args is taken as is.
        #[arg(long, num_args = 1.., allow_hyphen_values = true)]
        args: Option<Vec<String>>,
    },
    /// List the images an archive holds.
    List {
        archive: PathBuf,
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Print an image's config as JSON.
    Inspect {
        archive: PathBuf,
        #[arg(long)]
        image: Option<String>,
        #[arg(long)]
        platform: Option<String>,
    },
}

/// `container:host:size`.
pub fn parse_map(s: &str) -> Result<IdMap, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let nums: Result<Vec<u32>, _> = parts.iter().map(|p| p.parse::<u32>()).collect();
    match nums.as_deref() {
        Ok([container, host, size]) if *size > 0 => Ok(IdMap {
            container: *container,
            host: *host,
            size: *size,
        }),
        _ => Err(format!("`{s}`: expected CONTAINER:HOST:SIZE with SIZE > 0")),
    }
}
