//! The `--console-socket` receiving end: a unix socket that accepts one connection and takes the pty master
//! the runtime sends with SCM_RIGHTS; and the terminals the tests give a runtime as its own stdio, for the
//! terminal it relays itself when there is no console socket.

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{tcgetattr, LocalFlags};
use std::fs::OpenOptions;
use std::io::{ErrorKind, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::runtime::Out;

/// A listening console socket; the master is received on a background thread so that a runtime which waits
/// for the transfer cannot deadlock against the test.
pub struct ConsoleSocket {
    path: PathBuf,
    receiver: JoinHandle<Result<OwnedFd>>,
}

impl ConsoleSocket {
    /// Binds `dir/console.sock` and starts waiting (up to `timeout`) for the runtime to connect.
    pub fn listen(dir: &Path, timeout: Duration) -> Result<ConsoleSocket> {
        let path = dir.join("console.sock");
        let listener =
            UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let receiver = std::thread::spawn(move || receive(listener, timeout));
        Ok(ConsoleSocket { path, receiver })
    }

    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// The received pty master.
    pub fn master(self) -> Result<OwnedFd> {
        self.receiver
            .join()
            .map_err(|_| anyhow!("console receiver thread panicked"))?
    }
}

fn receive(listener: UnixListener, timeout: Duration) -> Result<OwnedFd> {
    let deadline = Instant::now() + timeout;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accept on console socket"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("recvmsg on console socket")?;
    for cmsg in msg.cmsgs().context("read control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us via SCM_RIGHTS; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    bail!("console socket message carried no file descriptor")
}

/// Reads everything the container writes to the pty until the slave side closes (EIO) or `timeout` passes.
pub fn read_until_closed(master: &OwnedFd, timeout: Duration) -> Result<String> {
    let (out, closed) = read_master(master, timeout, |_| false)?;
    if !closed {
        bail!("pty still open after {timeout:?}; read so far: {out:?}");
    }
    Ok(out)
}

/// Reads what the container writes to the pty until `needle` appears (Ok, all read so far); an error when
/// `timeout` passes or the slave side closes first, with what was read.
pub fn read_until(master: &OwnedFd, needle: &str, timeout: Duration) -> Result<String> {
    let (out, _) = read_master(master, timeout, |s| s.contains(needle))?;
    if !out.contains(needle) {
        bail!("no {needle:?} on the pty within {timeout:?} (or it closed); read: {out:?}");
    }
    Ok(out)
}

/// Reads the pty until `done` says so of what was read, the slave side closes (true) or `timeout` passes.
fn read_master(
    master: &OwnedFd,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<(String, bool)> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&out).to_string();
        let left = deadline.saturating_duration_since(Instant::now());
        if done(&text) || left.is_zero() {
            return Ok((text, false));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).context("poll pty master")?;
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => {
                return Ok((String::from_utf8_lossy(&out).to_string(), true))
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("read pty master"),
        }
    }
}

/// A new pseudo-terminal `(master, slave)` of `rows` x `cols`, both close-on-exec so that no concurrently
/// spawned process of another test inherits them (which would keep the slave open and the reader waiting).
pub fn pty_pair(rows: u16, cols: u16) -> Result<(OwnedFd, OwnedFd)> {
    let master: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/ptmx")
        .context("open /dev/ptmx")?
        .into();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one c_int through the pointer, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(std::io::Error::last_os_error()).context("unlock pty");
    }
    set_pty_size(&master, rows, cols)?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new descriptor (or -1).
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if slave < 0 {
        return Err(std::io::Error::last_os_error()).context("open pty peer");
    }
    // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

/// Resizes the pty of `master` (as a terminal emulator does when its window changes).
pub fn set_pty_size(master: &OwnedFd, rows: u16, cols: u16) -> Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
        return Err(std::io::Error::last_os_error()).context("set pty size");
    }
    Ok(())
}

/// What a command run on a terminal of ours did.
pub struct OnPty {
    /// Its exit status, with everything it wrote to the terminal as stdout.
    pub out: Out,
    /// Whether the terminal's line discipline (canonical mode, echo) was as we made it once the command had
    /// exited: a runtime that puts its terminal in raw mode must put it back.
    pub restored: bool,
}

/// Runs `cmd` with a `rows` x `cols` terminal on stdin, stdout and stderr, writing nothing to it; fails after
/// `timeout` (the command is killed).
pub fn run_on_pty(cmd: Command, rows: u16, cols: u16, timeout: Duration) -> Result<OnPty> {
    run_on_pty_with(cmd, rows, cols, timeout, |_, _| Ok(()))
}

/// Like [`run_on_pty`], calling `during(pid, master)` once the command is started (to signal it, resize its
/// terminal); the command is killed when `during` fails.
pub fn run_on_pty_with(
    mut cmd: Command,
    rows: u16,
    cols: u16,
    timeout: Duration,
    during: impl FnOnce(u32, &OwnedFd) -> Result<()>,
) -> Result<OnPty> {
    let (master, slave) = pty_pair(rows, cols)?;
    let cooked = tcgetattr(&slave).context("tcgetattr on the test's pty")?;
    cmd.stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave.try_clone()?);
    let args = shown(&cmd);
    let mut child = cmd.spawn().with_context(|| format!("spawn {args}"))?;
    // The Command holds copies of the slave: only ours may remain, so the reader sees EIO once it is dropped.
    drop(cmd);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let master = master.try_clone()?;
        std::thread::spawn(move || read_pty(&master, &done))
    };
    if let Err(e) = during(child.id(), &master) {
        let _ = child.kill();
        let _ = child.wait();
        done.store(true, Ordering::Relaxed);
        return Err(e);
    }
    let status = wait_bounded(&mut child, &args, timeout);
    let after = tcgetattr(&slave).context("tcgetattr on the test's pty after the run");
    drop(slave);
    // Whatever else still holds the slave (nothing should) gets a few seconds before we stop reading.
    let stop_at = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Relaxed);
    let text = reader.join().map_err(|_| anyhow!("pty reader panicked"))?;
    let (status, after) = (status?, after?);
    let line_flags = LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG;
    Ok(OnPty {
        out: Out {
            args: vec![args],
            status,
            stdout: text,
            stderr: String::new(),
        },
        restored: after.local_flags & line_flags == cooked.local_flags & line_flags
            && after.input_flags == cooked.input_flags
            && after.output_flags == cooked.output_flags,
    })
}

/// Runs `cmd` with `input` on a pipe as its stdin (closed after it: end of file) and its stdout and stderr
/// captured; fails after `timeout` (the command is killed).
pub fn run_with_input(mut cmd: Command, input: &[u8], timeout: Duration) -> Result<Out> {
    let stdout = tempfile::tempfile().context("create stdout capture file")?;
    let stderr = tempfile::tempfile().context("create stderr capture file")?;
    cmd.stdin(Stdio::piped())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?);
    let args = shown(&cmd);
    let mut child = cmd.spawn().with_context(|| format!("spawn {args}"))?;
    let mut pipe = child.stdin.take().context("stdin pipe")?;
    let written = pipe.write_all(input).context("write the command's stdin");
    drop(pipe);
    let status = wait_bounded(&mut child, &args, timeout)?;
    written?;
    Ok(Out {
        args: vec![args],
        status,
        stdout: read_back(stdout)?,
        stderr: read_back(stderr)?,
    })
}

fn read_back(mut f: std::fs::File) -> Result<String> {
    use std::io::{Read, Seek};
    f.rewind()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).to_string())
}

/// Waits for `child`; kills it (only it, by its pid) and fails once `timeout` has passed.
fn wait_bounded(child: &mut Child, args: &str, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().context("wait for the command")? {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{args}` timed out and was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The command line, for messages.
pub(crate) fn shown(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().to_string();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Everything written to the pty until its slave is closed everywhere (EIO) or `done` is set.
pub(crate) fn read_pty(master: &OwnedFd, done: &AtomicBool) -> String {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut out = Vec::new();
    while !done.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(50u16)).unwrap_or(0) == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).to_string()
}
