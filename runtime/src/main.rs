//! `carte`: parse the command line, set up logging, run one verb, report its error once.
//!
//! No Rust `main`: std's start-up reads /proc/self/maps to place a stack guard and installs
//! SIGSEGV/SIGBUS handlers on an alternate stack — a tenth of `carte --version`'s instructions and
//! a dozen syscalls, paid twice by `run`, `create` and `exec` where they re-execute (`selfexe`). carte keeps
//! what it needs of it: SIGPIPE ignored, and stdout flushed by `std::process::exit`. A stack
//! overflow then dies of SIGSEGV without std's message. std's `env::args` works without it (glibc
//! hands argv to std through `.init_array`).
// `cargo test --bins` builds a harness from this file, with the harness's own main: ours stays out
// of it, and what only ours calls is then unused.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

use carte::cli::{Cli, Verb};
use carte::{log, verbs};
use clap::{CommandFactory, FromArgMatches};

fn version() -> String {
    format!(
        "carte version {}\nspec: {}\nseccomp: seccompiler 0.5 (stacked filters)\n",
        env!("CARGO_PKG_VERSION"),
        verbs::spec::OCI_VERSION
    )
}

/// `Cli::parse()` of `args` (the command line, program name first), without freeing the command
/// tree: a process that lives one verb need not walk and free hundreds of clap allocations (an
/// eighth of `carte --version`'s instructions).
fn parse(args: Vec<std::ffi::OsString>) -> Cli {
    let mut cmd = Cli::command();
    let matches = cmd
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit());
    std::mem::forget(cmd);
    cli
}

/// The C entry point (see the module doc).
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    if let Err(e) = carte::sys::ignore_sigpipe() {
        eprintln!("carte: ignore SIGPIPE: {e}");
        std::process::exit(1);
    }
    // The release build aborts on a panic (Cargo.toml: no unwinding tables in the shipped binary),
    // after the panic hook has printed the message. A debug build unwinds, and a panic must not
    // unwind out of a C function: it exits with std's code for it, 101.
    let _ = std::panic::catch_unwind(|| -> () { verb() });
    std::process::exit(101)
}

fn verb() -> ! {
    use std::os::unix::ffi::OsStrExt;
    // Read once: for the hint here, then for clap.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if carte::cli::enters_container(args.iter().map(|a| a.as_bytes())) {
        carte::selfexe::protect_early();
    }
    let cli = parse(args);
    if cli.version {
        print!("{}", version());
        std::process::exit(0);
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
