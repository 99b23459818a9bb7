//! `carte net` (owned by the networking work; placeholder until it lands).

use crate::cli::Cli;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct NetArgs {
    pub action: String,
}

pub fn run(_cli: &Cli, a: &NetArgs) -> Result<i32> {
    Err(Error::Other(format!("net {}: not built yet", a.action)))
}
