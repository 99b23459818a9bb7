//! `carte events` (being written).
use crate::cli::Cli;
use crate::error::{Error, Result};
pub fn run(_cli: &Cli, a: &crate::cli::EventsArgs) -> Result<i32> {
    Err(Error::Other(format!("events {}: not built yet", a.id)))
}
