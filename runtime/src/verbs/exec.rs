//! `carte exec` (being written).
use crate::cli::{Cli, ExecArgs};
use crate::error::{Error, Result};
pub fn run(_cli: &Cli, a: &ExecArgs) -> Result<i32> {
    Err(Error::Other(format!("exec {}: not built yet", a.id)))
}
