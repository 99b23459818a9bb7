//! `carte-bundle`: parse the command line, run one command, print its error once as one line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use carte_bundle::{ConvertOptions, Error, Platform, UnpackOptions};
use cli::{Cli, Command, Format};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carte-bundle: {e}");
            ExitCode::FAILURE
        }
    }
}

fn platform(p: Option<&str>) -> Result<Option<Platform>, Error> {
    p.map(Platform::parse).transpose()
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Unpack {
            archive,
            bundle_dir,
            image,
            platform: p,
            rootless,
            uid_map,
            gid_map,
            tty,
            env,
            force,
            args,
            net,
            net_root,
        } => {
            let opts = UnpackOptions {
                image,
                platform: platform(p.as_deref())?,
                force,
                quiet: cli.quiet,
                convert: ConvertOptions {
                    args,
                    env,
                    terminal: tty,
                    rootless,
                    uid_map,
                    gid_map,
                    net: net
                        .map(|network| carte_bundle::convert::NetHooks::new(network, net_root))
                        .transpose()?,
                },
            };
            let report = carte_bundle::unpack(&archive, &bundle_dir, &opts)?;
            for w in &report.warnings {
                eprintln!("carte-bundle: warning: {w}");
            }
            Ok(())
        }
        Command::List { archive, format } => {
            let images = carte_bundle::list(&archive)?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&images)
                        .map_err(|e| Error::Format(e.to_string()))?
                ),
                Format::Table => {
                    println!(
                        "{:<40} {:<19} {:<14} {:>10} {:>6}  CREATED",
                        "NAME", "DIGEST", "PLATFORM", "SIZE", "LAYERS"
                    );
                    for i in images {
                        let name = if i.names.is_empty() {
                            "<none>".to_string()
                        } else {
                            i.names.join(",")
                        };
                        let digest = i.digest.get(..19).unwrap_or(&i.digest);
                        println!(
                            "{name:<40} {digest:<19} {:<14} {:>10} {:>6}  {}",
                            i.platform,
                            human(i.size),
                            i.layers,
                            i.created.as_deref().unwrap_or("-")
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Inspect {
            archive,
            image,
            platform: p,
        } => {
            let v = carte_bundle::inspect(
                &archive,
                image.as_deref(),
                platform(p.as_deref())?.as_ref(),
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| Error::Format(e.to_string()))?
            );
            Ok(())
        }
    }
}

fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
