//! Rendering results: the human table (rows by spec section, one column per runtime, reasons as numbered
//! notes), TAP for CI, and JSON for machines; plus the per-runtime totals line.

use crate::case::{Case, Outcome};
use crate::runtime::Runtime;
use serde_json::json;
use std::fmt::Write;

/// `results[case][runtime]`.
pub type Results = Vec<Vec<Outcome>>;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

pub fn totals(results: &Results, rt: usize) -> Totals {
    let mut t = Totals::default();
    for row in results {
        match row.get(rt) {
            Some(Outcome::Pass) => t.passed += 1,
            Some(Outcome::Fail(_)) => t.failed += 1,
            Some(Outcome::Skip(_)) => t.skipped += 1,
            None => {}
        }
    }
    t
}

pub fn totals_line(label: &str, t: Totals) -> String {
    format!(
        "{label}: {} passed, {} failed, {} skipped",
        t.passed, t.failed, t.skipped
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn table(cases: &[Case], runtimes: &[Runtime], results: &Results) -> String {
    let mut out = String::new();
    for rt in runtimes {
        let spec = rt.spec_version.as_deref().unwrap_or("unknown");
        let _ = writeln!(out, "# {} = {} (spec {spec})", rt.label, rt.path.display());
    }
    let id_w = cases.iter().map(|c| c.id.len()).max().unwrap_or(4).max(4);
    let col_w: Vec<usize> = runtimes.iter().map(|r| r.label.len().max(10)).collect();
    let mut notes: Vec<String> = Vec::new();
    let mut section = "";
    for (ci, case) in cases.iter().enumerate() {
        if case.section != section {
            section = case.section;
            let _ = write!(out, "\n{:id_w$}", format!("## {section}"));
            for (rt, w) in runtimes.iter().zip(&col_w) {
                let _ = write!(out, " | {:w$}", rt.label);
            }
            out.push('\n');
        }
        let _ = write!(out, "{:id_w$}", case.id);
        for (ri, w) in col_w.iter().enumerate() {
            let cell = match results.get(ci).and_then(|r| r.get(ri)) {
                Some(Outcome::Pass) => "pass".to_string(),
                Some(Outcome::Fail(why)) => format!("FAIL [{}]", note(&mut notes, why)),
                Some(Outcome::Skip(why)) => format!("skip [{}]", note(&mut notes, why)),
                None => "-".to_string(),
            };
            let _ = write!(out, " | {cell:w$}");
        }
        out.push('\n');
    }
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        for (i, n) in notes.iter().enumerate() {
            let _ = writeln!(out, "[{}] {n}", i + 1);
        }
    }
    out.push('\n');
    for (ri, rt) in runtimes.iter().enumerate() {
        let _ = writeln!(out, "{}", totals_line(&rt.label, totals(results, ri)));
    }
    out
}

/// Number a reason, reusing the number of an identical one (a runtime failing everything for one cause stays short).
fn note(notes: &mut Vec<String>, why: &str) -> usize {
    let why = one_line(why);
    match notes.iter().position(|n| *n == why) {
        Some(i) => i + 1,
        None => {
            notes.push(why);
            notes.len()
        }
    }
}

pub fn tap(cases: &[Case], runtimes: &[Runtime], results: &Results) -> String {
    let mut out = format!("TAP version 13\n1..{}\n", cases.len() * runtimes.len());
    let mut n = 0;
    for (ci, case) in cases.iter().enumerate() {
        for (ri, rt) in runtimes.iter().enumerate() {
            n += 1;
            let name = format!("{} [{}]", case.id, rt.label);
            let line = match results.get(ci).and_then(|r| r.get(ri)) {
                Some(Outcome::Pass) => format!("ok {n} - {name}"),
                Some(Outcome::Fail(why)) => format!("not ok {n} - {name}: {}", one_line(why)),
                Some(Outcome::Skip(why)) => format!("ok {n} - {name} # SKIP {}", one_line(why)),
                None => format!("not ok {n} - {name}: not run"),
            };
            let _ = writeln!(out, "{line}");
        }
    }
    for (ri, rt) in runtimes.iter().enumerate() {
        let _ = writeln!(out, "# {}", totals_line(&rt.label, totals(results, ri)));
    }
    out
}

pub fn json(cases: &[Case], runtimes: &[Runtime], results: &Results) -> String {
    let rts: Vec<_> = runtimes
        .iter()
        .enumerate()
        .map(|(ri, rt)| {
            let t = totals(results, ri);
            json!({"label": rt.label, "path": rt.path, "spec": rt.spec_version, "cgroup2Masked": rt.mask_cgroup2.is_some(),
                   "passed": t.passed, "failed": t.failed, "skipped": t.skipped})
        })
        .collect();
    let rows: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let cells: Vec<_> = (0..runtimes.len())
                .map(|ri| match results.get(ci).and_then(|r| r.get(ri)) {
                    Some(Outcome::Pass) => json!({"result": "pass"}),
                    Some(Outcome::Fail(w)) => json!({"result": "fail", "reason": w}),
                    Some(Outcome::Skip(w)) => json!({"result": "skip", "reason": w}),
                    None => json!({"result": "not-run"}),
                })
                .collect();
            json!({"id": c.id, "section": c.section, "requirement": c.what, "results": cells})
        })
        .collect();
    format!("{}\n", json!({"runtimes": rts, "cases": rows}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_each_outcome() {
        let r = vec![
            vec![Outcome::Pass, Outcome::Fail("x".into())],
            vec![Outcome::Skip("y".into()), Outcome::Pass],
        ];
        assert_eq!(
            totals(&r, 0),
            Totals {
                passed: 1,
                failed: 0,
                skipped: 1
            }
        );
        assert_eq!(
            totals(&r, 1),
            Totals {
                passed: 1,
                failed: 1,
                skipped: 0
            }
        );
        assert_eq!(
            totals_line("carte", totals(&r, 1)),
            "carte: 1 passed, 1 failed, 0 skipped"
        );
    }

    #[test]
    fn identical_reasons_share_a_note() {
        let mut notes = Vec::new();
        assert_eq!(note(&mut notes, "a  b"), 1);
        assert_eq!(note(&mut notes, "c"), 2);
        assert_eq!(note(&mut notes, "a b"), 1);
    }
}
