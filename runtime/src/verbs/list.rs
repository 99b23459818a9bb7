//! `carte list`: every container under the root; one unreadable state does not hide the others.

use crate::cli::{Cli, ListArgs};
use crate::error::Result;
use crate::state;

pub fn run(cli: &Cli, a: &ListArgs) -> Result<i32> {
    let mut rows = vec![];
    for id in state::list_ids(&cli.root)? {
        let dir = cli.root.join(&id);
        match state::load_state(&dir) {
            Ok(st) => rows.push(super::state::json(&dir, &st)),
            // Deleted since we listed the root: gone, not broken.
            Err(_) if !dir.exists() => {}
            Err(e) => eprintln!("carte: container {id}: {e}"),
        }
    }
    if a.quiet {
        for r in &rows {
            super::out(r["id"].as_str().unwrap_or_default());
        }
    } else if a.format == "json" {
        super::out(format!("{}", serde_json::Value::Array(rows)));
    } else {
        super::out(format!(
            "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"
        ));
        for r in &rows {
            super::out(format!(
                "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                r["id"].as_str().unwrap_or_default(),
                r["pid"],
                r["status"].as_str().unwrap_or_default(),
                r["bundle"].as_str().unwrap_or_default(),
                r["created"].as_str().unwrap_or_default(),
                r["owner"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(0)
}
