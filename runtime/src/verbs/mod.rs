//! One module per command-line verb. Each follows the same shape: lock → load → check status →
//! act → save, and returns the process exit code.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod net;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod stop;
pub mod update;

use crate::error::{Error, Result};
use crate::state::{ContainerDir, State};

/// Load a locked container's state; for a corrupt state file, say so with the container's id.
pub fn load(dir: &ContainerDir) -> Result<State> {
    dir.load()
        .map_err(|e| Error::Other(format!("container {}: {e}", dir.id)))
}

/// Print one line on stdout. A closed pipe (`carte list | head -1`) is not an error worth a panic:
/// the reader has all it wanted. Returns false when stdout is gone.
pub fn out(line: impl std::fmt::Display) -> bool {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}").and_then(|_| o.flush()).is_ok()
}
