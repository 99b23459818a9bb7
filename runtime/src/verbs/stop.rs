//! `carte stop` (owned by the networking/lab work; placeholder until it lands).

use crate::cli::Cli;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    pub id: String,
    /// Grace period in seconds before SIGKILL
    #[arg(short, long, default_value_t = 10)]
    pub time: u64,
}

pub fn run(_cli: &Cli, a: &StopArgs) -> Result<i32> {
    Err(Error::Other(format!("stop {}: not built yet", a.id)))
}
