//! `carte update` (being written).
use crate::cli::Cli;
use crate::error::{Error, Result};
pub fn run(_cli: &Cli, a: &crate::cli::UpdateArgs) -> Result<i32> {
    Err(Error::Other(format!("update {}: not built yet", a.id)))
}
