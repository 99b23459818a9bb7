//! The logger: runc's text or JSON lines on `--log` (stderr when absent), and the `--debug`
//! narration. containerd and podman read the *last* `"level":"error"` JSON line of the log file to
//! tell their user why a call failed, so each record is one `write(2)` of one well-formed line.
//!
//! `--debug` lines carry `elapsed=`, the time since this `carte` was started (the container init
//! and exec'd processes inherit the clock), so the narration doubles as a per-step timing.
//! `--trace-file` writes every step as a Chrome trace event, one timeline per process (the
//! runtime, the bridge, the container's init), which Perfetto and chrome://tracing open.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Metadata, Record};

pub struct Logger {
    fd: RawFd,
    json: bool,
    level: LevelFilter,
    trace: Option<RawFd>,
    start: Instant,
}

/// The process whose name was last written to the trace: each process names itself once.
static TRACE_NAMED: AtomicI32 = AtomicI32::new(0);

impl log::Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level || (self.trace.is_some() && m.level() <= Level::Debug)
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        if let Some(t) = self.trace {
            let _ = crate::sys::write_all_raw(t, trace_events(&msg).as_bytes());
        }
        if r.level() > self.level {
            return;
        }
        let mut line = format_line(self.json, r.level(), &msg, &now_rfc3339());
        if r.level() == Level::Debug {
            line = with_elapsed(line, self.json, self.start.elapsed());
        }
        // One write per record: lines from the parent and the container init never interleave.
        let _ = crate::sys::write_all_raw(self.fd, line.as_bytes());
    }

    fn flush(&self) {}
}

/// Open a log file for appending, its fd kept for the life of the process (and its children).
fn open_append(p: &str) -> std::io::Result<(RawFd, u64)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)?;
    let len = f.metadata()?.len();
    let fd: OwnedFd = f.into();
    let raw = fd.as_raw_fd();
    std::mem::forget(fd);
    Ok((raw, len))
}

/// Install the logger. `path` is `--log`; `json` is `--log-format json`; `trace` is `--trace-file`.
pub fn init(
    path: Option<&str>,
    json: bool,
    debug: bool,
    trace: Option<&str>,
) -> std::io::Result<()> {
    let fd = match path {
        Some(p) if !p.is_empty() => open_append(p)?.0,
        _ => 2,
    };
    let trace = match trace {
        Some(p) if !p.is_empty() => {
            let (fd, len) = open_append(p)?;
            // The JSON array format; its closing bracket may be left off, so several carte
            // calls can append to one file.
            if len == 0 {
                crate::sys::write_all_raw(fd, b"[\n")?;
            }
            Some(fd)
        }
        _ => None,
    };
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Warn
    };
    let logger = Box::new(Logger {
        fd,
        json,
        level,
        trace,
        start: Instant::now(),
    });
    log::set_max_level(if trace.is_some() {
        LevelFilter::Debug
    } else {
        level
    });
    let _ = log::set_boxed_logger(logger);
    Ok(())
}

/// A debug line with the time since start: `elapsed=1.234ms` before `msg=` (text), or
/// `"elapsed":"1.234ms"` (JSON).
fn with_elapsed(line: String, json: bool, d: std::time::Duration) -> String {
    let e = format!("{:.3}ms", d.as_secs_f64() * 1000.0);
    let body = line.trim_end_matches('\n');
    if json {
        match body.strip_suffix('}') {
            Some(b) => format!("{b},\"elapsed\":\"{e}\"}}\n"),
            None => line,
        }
    } else {
        // Before msg, so a line still ends with its message.
        match body.split_once(" msg=") {
            Some((head, msg)) => format!("{head} elapsed={e} msg={msg}\n"),
            None => line,
        }
    }
}

/// One step as a Chrome trace instant event (and, the first time a process writes, its name).
fn trace_events(msg: &str) -> String {
    let pid = std::process::id() as i32;
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as f64
        / 1000.0;
    let mut out = String::new();
    if TRACE_NAMED.swap(pid, Ordering::Relaxed) != pid {
        let name = nix::sys::prctl::get_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "carte".into());
        let meta = serde_json::json!({"ph": "M", "name": "process_name", "pid": pid, "tid": pid,
                                      "args": {"name": format!("{name} ({pid})")}});
        out.push_str(&format!("{meta},\n"));
    }
    let ev = serde_json::json!({"name": msg, "cat": "carte", "ph": "i", "s": "p",
                                "ts": ts, "pid": pid, "tid": pid});
    out.push_str(&format!("{ev},\n"));
    out
}

/// runc's formats: JSON `{"level":"error","msg":"…","time":"…"}`, text `time="…" level=error msg="…"`.
pub fn format_line(json: bool, level: Level, msg: &str, time: &str) -> String {
    let lvl = match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    };
    if json {
        let obj = serde_json::json!({ "level": lvl, "msg": msg, "time": time });
        format!("{obj}\n")
    } else {
        format!(
            "time=\"{time}\" level={lvl} msg={}\n",
            serde_json::Value::from(msg)
        )
    }
}

/// RFC 3339 in UTC with nanoseconds, without pulling in a date crate.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_runc_keys() {
        let l = format_line(
            true,
            Level::Error,
            "bad \"x\"",
            "2026-01-02T03:04:05.000000000Z",
        );
        let v: serde_json::Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "bad \"x\"");
        assert_eq!(v["time"], "2026-01-02T03:04:05.000000000Z");
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
    }

    #[test]
    fn text_line_quotes_message() {
        let l = format_line(false, Level::Warn, "a b", "T");
        assert_eq!(l, "time=\"T\" level=warning msg=\"a b\"\n");
    }

    #[test]
    fn debug_lines_carry_elapsed() {
        let d = std::time::Duration::from_micros(1500);
        let t = with_elapsed(format_line(false, Level::Debug, "m", "T"), false, d);
        assert_eq!(t, "time=\"T\" level=debug elapsed=1.500ms msg=\"m\"\n");
        let j = with_elapsed(format_line(true, Level::Debug, "m", "T"), true, d);
        let v: serde_json::Value = serde_json::from_str(j.trim_end()).unwrap();
        assert_eq!(v["elapsed"], "1.500ms");
        assert_eq!(v["msg"], "m");
    }

    #[test]
    fn trace_events_name_the_process_once() {
        TRACE_NAMED.store(0, Ordering::Relaxed);
        let first = trace_events("step one");
        let second = trace_events("step two");
        assert_eq!(first.lines().count(), 2, "{first}");
        assert_eq!(second.lines().count(), 1, "{second}");
        let ev: serde_json::Value =
            serde_json::from_str(second.trim_end().trim_end_matches(',')).unwrap();
        assert_eq!(ev["name"], "step two");
        assert_eq!(ev["ph"], "i");
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }
}
