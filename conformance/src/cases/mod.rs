//! The case registry: every case of every spec section, in table order, plus small helpers the cases share.

mod config;
mod features;
mod hooks;
mod lifecycle;
mod linux;
mod process;
mod resources;
mod validation;

use crate::case::{Case, Ctx, Outcome};
use anyhow::Result;
use serde_json::Value;

/// (id prefix, table heading naming the spec file and section).
pub type Section = (&'static str, &'static str);

/// Every case, grouped by section.
pub fn all() -> Vec<Case> {
    let mut v = lifecycle::cases();
    v.extend(hooks::cases());
    v.extend(config::cases());
    v.extend(process::cases());
    v.extend(linux::cases());
    v.extend(resources::cases());
    v.extend(validation::cases());
    v.extend(features::cases());
    v
}

pub fn case(
    section: Section,
    name: &str,
    what: &'static str,
    run: fn(&Ctx) -> Result<Outcome>,
) -> Case {
    Case {
        id: format!("{}.{name}", section.0),
        section: section.1,
        what,
        min_spec: None,
        run,
    }
}

/// A case that needs a spec version the runtime may predate.
pub fn case_since(
    section: Section,
    name: &str,
    what: &'static str,
    since: &'static str,
    run: fn(&Ctx) -> Result<Outcome>,
) -> Case {
    Case {
        min_spec: Some(since),
        ..case(section, name, what, run)
    }
}

/// The base config running a busybox shell script.
pub fn sh_config(script: &str) -> Value {
    crate::bundle::base_config(&["/bin/sh", "-c", script])
}

/// The result of probe operation `key` (e.g. `read:/etc/hostname`) in a report.
pub fn op<'v>(report: &'v Value, key: &str) -> &'v Value {
    &report["ops"][key]
}

/// A probe operation that must have failed: its errno.
pub fn op_errno(report: &Value, key: &str) -> Option<i64> {
    let r = op(report, key);
    if r["ok"] == Value::Bool(false) {
        r["errno"].as_i64()
    } else {
        None
    }
}

/// Skip when the host lacks something the case needs.
pub fn skip(reason: impl Into<String>) -> Result<Outcome> {
    Ok(Outcome::Skip(reason.into()))
}

/// The namespace link (`net:[4026531840]`) of this harness process: the runtime's namespaces.
pub fn host_ns(kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .ok()
        .map(|p| p.display().to_string())
}
