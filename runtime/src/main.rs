//! `carte`: parse the command line, set up logging, run one verb, report its error once.

use carte::cli::{Cli, Verb};
use carte::{log, verbs};
use clap::Parser;

fn version() -> String {
    format!(
        "carte version {}\nspec: {}\nseccomp: seccompiler 0.5 (stacked filters)\n",
        env!("CARGO_PKG_VERSION"),
        verbs::spec::OCI_VERSION
    )
}

fn main() {
    let cli = Cli::parse();
    if cli.version {
        print!("{}", version());
        return;
    }
    if let Err(e) = log::init(
        cli.log.as_deref(),
        cli.log_format == "json",
        cli.debug,
        cli.trace_file.as_deref(),
    ) {
        eprintln!("carte: open log {}: {e}", cli.log.as_deref().unwrap_or(""));
        std::process::exit(1);
    }
    let Some(verb) = &cli.verb else {
        eprintln!("carte: no command given; see `carte --help`");
        std::process::exit(2);
    };
    if let Err(e) = carte::rootless::prepare_default_root(&cli.root) {
        ::log::error!("{e}");
        std::process::exit(1);
    }
    // The processes that enter a container run from a protected copy of this binary.
    if matches!(verb, Verb::Create(_) | Verb::Run(_) | Verb::Exec(_)) {
        if let Err(e) = carte::selfexe::protect() {
            ::log::error!("{e}");
            std::process::exit(1);
        }
    }
    let res = match verb {
        Verb::Spec(a) => verbs::spec::run(&cli, a),
        Verb::Create(a) => verbs::create::run(&cli, a),
        Verb::Start(a) => verbs::start::run(&cli, a),
        Verb::State(a) => verbs::state::run(&cli, a),
        Verb::Kill(a) => verbs::kill::run(&cli, a),
        Verb::Delete(a) => verbs::delete::run(&cli, a),
        Verb::Run(a) => verbs::run::run(&cli, a),
        Verb::List(a) => verbs::list::run(&cli, a),
        Verb::Exec(a) => verbs::exec::run(&cli, a),
        Verb::Ps(a) => verbs::ps::run(&cli, a),
        Verb::Pause(a) => verbs::pause::run(&cli, a, true),
        Verb::Resume(a) => verbs::pause::run(&cli, a, false),
        Verb::Update(a) => verbs::update::run(&cli, a),
        Verb::Events(a) => verbs::events::run(&cli, a),
        Verb::Features => verbs::features::run(&cli),
        Verb::Stop(a) => verbs::stop::run(&cli, a),
        Verb::Net(a) => verbs::net::run(&cli, a),
        Verb::Checkpoint(a) => verbs::checkpoint::run(&cli, a),
        Verb::Restore(a) => verbs::restore::run(&cli, a),
    };
    match res {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // The engines read the log file's last error line; a person reads stderr.
            ::log::error!("{e}");
            if cli.log.is_some() {
                eprintln!("carte: {e}");
            }
            std::process::exit(1);
        }
    }
}
