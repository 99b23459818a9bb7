//! Signals: names and numbers for `kill`, the dispositions a container process must start with,
//! and the mask `run` uses so it can never miss its container's exit.

use crate::error::{Error, Result};
use nix::sys::signal::{SigSet, Signal};

/// `TERM`, `SIGTERM`, `term`, `15`, `RTMIN+3` or `37` → the signal number. `0` is accepted, as
/// runc and kill(1) accept it: it sends nothing and only asks whether the process is there.
pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Usage(format!(
            "invalid signal {s:?}: numbers go from 0 to {}",
            libc::SIGRTMAX()
        )));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rest) = name.strip_prefix("SIGRTMIN+") {
        if let Ok(n) = rest.parse::<i32>() {
            let v = libc::SIGRTMIN() + n;
            if v <= libc::SIGRTMAX() {
                return Ok(v);
            }
        }
    }
    name.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Usage(format!("invalid signal {s:?}: not a signal name or number")))
}

/// A signal that is really sent (not the liveness probe 0), for `stop`.
pub fn nonzero(n: i32) -> Result<i32> {
    if n == 0 {
        return Err(Error::Usage(
            "invalid signal \"0\": it sends nothing".into(),
        ));
    }
    Ok(n)
}

/// Dispositions and mask as a fresh process expects them.
pub fn reset_defaults() -> Result<()> {
    for s in [
        Signal::SIGPIPE,
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        crate::sys::reset_signal(s).map_err(|e| Error::sys("reset signal", s, e))?;
    }
    SigSet::empty()
        .thread_set_mask()
        .map_err(|e| Error::sys("sigprocmask", "empty set", e))
}

/// The signals `run` forwards to its container (everything a terminal or supervisor may send).
pub fn forwarded() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCONT,
        Signal::SIGALRM,
    ] {
        s.add(sig);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), 15);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("kill").unwrap(), 9);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse("37").unwrap(), 37);
        assert_eq!(parse("0").unwrap(), 0);
        assert!(nonzero(0).is_err());
        for bad in ["FOO", "65", "-1", "SIG"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid signal"), "{bad}: {e}");
        }
    }
}
