//! The logger: runc's text or JSON lines on `--log` (stderr when absent), and the `--debug`
//! narration. containerd and podman read the *last* `"level":"error"` JSON line of the log file to
//! tell their user why a call failed, so each record is one `write(2)` of one well-formed line.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Metadata, Record};

pub struct Logger {
    fd: RawFd,
    json: bool,
    level: LevelFilter,
}

impl log::Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format_line(self.json, r.level(), &r.args().to_string(), &now_rfc3339());
        // One write per record: lines from the parent and the container init never interleave.
        let _ = crate::sys::write_all_raw(self.fd, line.as_bytes());
    }

    fn flush(&self) {}
}

/// Install the logger. `path` is `--log`; `json` is `--log-format json`.
pub fn init(path: Option<&str>, json: bool, debug: bool) -> std::io::Result<()> {
    let fd = match path {
        Some(p) if !p.is_empty() => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?;
            let fd: OwnedFd = f.into();
            let raw = fd.as_raw_fd();
            std::mem::forget(fd);
            raw
        }
        _ => 2,
    };
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Warn
    };
    let logger = Box::new(Logger { fd, json, level });
    log::set_max_level(level);
    let _ = log::set_boxed_logger(logger);
    Ok(())
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
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }
}
