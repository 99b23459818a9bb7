//! Run one CNI plugin the way CNI 1.0 (SPEC.md "Execution protocol") says: the binary named by
//! the config's `type` from `CNI_PATH`, the `CNI_*` variables, the config on stdin, a result or an
//! error document on stdout. Knows nothing of lists, caches or containers.

use crate::error::{Error, Result};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The three operations carte uses (SPEC.md also defines STATUS, GC and VERSION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Del,
    Check,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
            Op::Check => "CHECK",
        }
    }
}

/// What every plugin of one attachment is told besides its config.
pub struct Call<'a> {
    pub op: Op,
    pub container_id: &'a str,
    /// The network namespace path; empty for a DEL after the namespace is gone, which the spec
    /// allows and the plugins treat as "release what you hold outside it".
    pub netns: &'a str,
    pub ifname: &'a str,
    pub cni_path: &'a str,
}

/// The PATH plugins get: hooks run with an empty environment, and the bridge plugin's ipMasq
/// looks `iptables` up in PATH.
const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find `type` in the `:`-separated CNI_PATH.
pub fn locate(kind: &str, cni_path: &str) -> Result<PathBuf> {
    cni_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Other(format!(
                "CNI plugin `{kind}`: not found in {cni_path} (install containernetworking-plugins)"
            ))
        })
}

/// Run the plugin for `config`; returns its result for ADD, `None` for DEL and CHECK.
pub fn exec(call: &Call, config: &Value) -> Result<Option<Value>> {
    let kind = config["type"].as_str().unwrap_or_default().to_string();
    let bin = locate(&kind, call.cni_path)?;
    let what = || format!("CNI {} `{kind}`", call.op.as_str());
    let stdin = serde_json::to_vec(config).map_err(|e| Error::Other(format!("{}: {e}", what())))?;
    let mut child = Command::new(&bin)
        .env_clear()
        .env("CNI_COMMAND", call.op.as_str())
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_PATH", call.cni_path)
        .env("PATH", PLUGIN_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("start CNI plugin", &bin, e))?;
    if let Some(mut w) = child.stdin.take() {
        // A plugin that fails before reading its stdin gives EPIPE; its exit status says why.
        let _ = w.write_all(&stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("wait for CNI plugin", &bin, e))?;
    log::debug!(
        "{} for {} on {:?}: {}",
        what(),
        call.container_id,
        call.netns,
        out.status
    );
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{}: {}",
            what(),
            describe_failure(&out.stdout, &out.stderr, &out.status.to_string())
        )));
    }
    if call.op != Op::Add {
        return Ok(None);
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| Error::Other(format!("{}: result is not JSON: {e}", what())))
}

/// One line from a failed plugin: its error document (`{"code", "msg", "details"}`) when it
/// wrote one, else the last line of its stderr, else its exit status.
pub fn describe_failure(stdout: &[u8], stderr: &[u8], status: &str) -> String {
    if let Ok(doc) = serde_json::from_slice::<Value>(stdout) {
        if let Some(msg) = doc["msg"].as_str() {
            let mut s = msg.to_string();
            if let Some(d) = doc["details"].as_str().filter(|d| !d.is_empty()) {
                s.push_str(": ");
                s.push_str(d);
            }
            if let Some(code) = doc["code"].as_u64() {
                s.push_str(&format!(" (code {code})"));
            }
            return one_line(&s);
        }
    }
    let err = String::from_utf8_lossy(stderr);
    match err.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => one_line(l),
        None => status.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_the_error_document_first() {
        let doc = br#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}"#;
        assert_eq!(
            describe_failure(doc, b"noise\n", "exit status: 1"),
            "failed to allocate: range full (code 11)"
        );
        assert_eq!(
            describe_failure(b"", b"first\nlast words\n\n", "exit status: 1"),
            "last words"
        );
        assert_eq!(
            describe_failure(b"", b"", "exit status: 2"),
            "exit status: 2"
        );
    }

    #[test]
    fn plugins_are_looked_up_in_cni_path_only() {
        let e = locate("no-such-plugin", "/nonexistent:/also-not")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-such-plugin"), "{e}");
    }
}
