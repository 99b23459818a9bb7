//! Protection of the carte binary from the containers it enters (CVE-2019-5736). `create`, `run`
//! and `exec`, before doing anything else, move onto a read-only view of their own binary (or
//! re-execute from it); every process they clone into a container (the init, which carte does not
//! re-exec) then runs from that view. A container that reaches one of them — `/proc/<pid>/exe`
//! of a carte process in its pid namespace, or `args: ["/proc/self/exe"]`, which makes the init
//! execve the carte binary as the container's process — can open the file but never for writing.
//!
//! The view is crun's: a detached bind mount of `/proc/self/exe` (`open_tree(OPEN_TREE_CLONE)`)
//! made read-only with `mount_setattr`. It copies nothing and appears in no mount table (so
//! nothing on the host is woken or has to clean it up); the kernel drops it when the last process
//! running from it exits. carte moves onto it in place: on x86-64 its segments are mapped again
//! from the view at the ELF entry point, before glibc's start-up has written a page (`early`),
//! elsewhere (or when that declined) after it (`in_place`, which must copy the relocated data);
//! then `/proc/self/exe` is pointed at the view (needs CAP_SYS_RESOURCE, CAP_CHECKPOINT_RESTORE
//! or CAP_SYS_ADMIN). Both spare a second start-up; where they fail, carte executes the view
//! through its fd with `execveat`. Where the mount API is missing or refused, a sealed memfd copy
//! of the binary (runc's 2019 fix) is executed instead.
//! Other verbs never enter a container and skip all of this.

use crate::error::{Context, Error, Result};
use crate::sys;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::statvfs::{fstatvfs, FsFlags};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

mod early;
mod in_place;

/// Set in the environment of the re-executed process, so a view that turns out not to protect
/// (which `is_protected` would catch) is an error instead of an endless re-exec loop.
const REEXECUTED: &str = "_CARTE_SELFEXE_PROTECTED";

/// Called by `create`, `run` and `exec` before anything else: returns when this process runs
/// from a binary no container can write (already, or after moving onto one); otherwise replaces
/// the process with one that does.
pub fn protect() -> Result<()> {
    let reexecuted = std::env::var_os(REEXECUTED).is_some();
    if reexecuted {
        // Nothing below us (hooks, the container) should see our marker. Single-threaded here.
        std::env::remove_var(REEXECUTED);
    }
    let early = finish_early_move();
    let exe = File::open("/proc/self/exe").ctx("open", "/proc/self/exe")?;
    if is_protected(&exe) {
        if early.is_ok() {
            log::debug!(
                "carte moved onto a read-only view of its binary before start-up (CVE-2019-5736)"
            );
        } else if MOVED_BEFORE_PARSING.load(Ordering::Relaxed) {
            log::debug!("carte moved onto a read-only view of its binary (CVE-2019-5736)");
        } else {
            log::debug!("carte runs from a read-only or sealed binary (CVE-2019-5736)");
        }
        return Ok(());
    }
    if let Err(Some(e)) = early {
        log::debug!("pointing /proc/self/exe at the view mapped before start-up: {e}");
    }
    if reexecuted {
        return Err(Error::Other(
            "re-executed carte from a protected view of its binary, but /proc/self/exe is still writable"
                .into(),
        ));
    }
    let first = match readonly_view() {
        Ok(view) => match move_or_reexec(&view) {
            Ok(()) => {
                log::debug!("carte moved onto a read-only view of its binary (CVE-2019-5736)");
                return Ok(());
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    // Only reached when the read-only view could not be made or executed.
    log::debug!("read-only view of /proc/self/exe: {first}; using a sealed memfd copy");
    let (argv, envp) = args_and_env()?;
    let copy = sealed_copy(&exe)?;
    let e = sys::execveat_fd(copy.as_fd(), &argv, &envp);
    Err(Error::sys(
        "re-execute carte from a sealed copy",
        "/proc/self/exe",
        e,
    ))
}

/// `protect`'s work, tried before the command line is parsed when it plainly names a verb that
/// enters a container (`cli::enters_container`): a re-execution then spends nothing on clap and
/// logging. On any failure it returns, and `protect`, which runs after parsing either way, tries
/// again and reports.
pub fn protect_early() {
    if std::env::var_os(REEXECUTED).is_some() || finish_early_move().is_ok() {
        return;
    }
    let protected = File::open("/proc/self/exe").map(|exe| is_protected(&exe));
    if protected.unwrap_or(true) {
        return;
    }
    if let Ok(view) = readonly_view() {
        if move_or_reexec(&view).is_ok() {
            MOVED_BEFORE_PARSING.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether `protect_early` moved this process (before logging was set up, so `protect` says it).
static MOVED_BEFORE_PARSING: AtomicBool = AtomicBool::new(false);

/// Completes the move `early` made before start-up, if it made one: `/proc/self/exe` pointed at
/// the view every mapping already comes from. Ok once done (by this call or an earlier one); the
/// error when it failed; Err(None) when there was no early move. Its result is remembered.
fn finish_early_move() -> std::result::Result<(), Option<nix::errno::Errno>> {
    static DONE: std::sync::OnceLock<std::result::Result<(), Option<nix::errno::Errno>>> =
        std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        let file = File::from(early::take().ok_or(None)?);
        in_place::point_exe_at(&file).map_err(Some)
    })
}

/// Moves this process onto `view` (`in_place`); where that is refused, or leaves `/proc/self/exe`
/// unprotected, re-executes it. Returns Ok after a move, and the error of a failed re-execution.
fn move_or_reexec(view: &OwnedFd) -> std::result::Result<(), nix::errno::Errno> {
    let moved = in_place::adopt(view);
    if moved.is_ok() && File::open("/proc/self/exe").is_ok_and(|exe| is_protected(&exe)) {
        return Ok(());
    }
    log::debug!("moving onto the read-only view of /proc/self/exe: {moved:?}; re-executing it");
    // A NUL in an argument: `protect` reports it when it builds them again for the memfd copy.
    let (argv, envp) = args_and_env().map_err(|_| nix::errno::Errno::EINVAL)?;
    Err(sys::execveat_fd(view.as_fd(), &argv, &envp))
}

/// Whether no write can reach the file we run from: it sits on a read-only mount (our view, or
/// a binary installed on a read-only filesystem), or it is a memfd sealed against writes.
fn is_protected(exe: &File) -> bool {
    if let Ok(st) = fstatvfs(exe) {
        if st.flags().contains(FsFlags::ST_RDONLY) {
            return true;
        }
    }
    fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS)
        .map(|s| SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE))
        .unwrap_or(false)
}

/// A detached, read-only bind mount of our own binary, as an O_PATH fd to move onto or execute.
fn readonly_view() -> std::result::Result<OwnedFd, nix::errno::Errno> {
    let view = sys::open_tree_clone(Path::new("/proc/self/exe"))?;
    sys::mount_setattr(
        view.as_fd(),
        sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
    )?;
    Ok(view)
}

/// A memfd holding a copy of the binary, sealed so that neither we nor a container can change it.
fn sealed_copy(exe: &File) -> Result<OwnedFd> {
    let mem = match sys::memfd_create(c"carte", true) {
        // Kernels before 6.3 do not know MFD_EXEC (and their memfds are executable anyway).
        Err(nix::errno::Errno::EINVAL) => sys::memfd_create(c"carte", false),
        r => r,
    }
    .ctx("memfd_create", "carte")?;
    let mut dst = File::from(mem);
    let mut src = exe;
    std::io::copy(&mut src, &mut dst).ctx("copy carte into", "memfd")?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).ctx("seal", "carte memfd")?;
    Ok(dst.into())
}

/// Our own argv and environment (plus the re-exec marker), for execveat.
fn args_and_env() -> Result<(Vec<CString>, Vec<CString>)> {
    let c = |b: &[u8]| CString::new(b).map_err(|_| Error::Usage("argument contains NUL".into()));
    let argv = std::env::args_os()
        .map(|a| c(a.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let mut envp = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            c(&kv)
        })
        .collect::<Result<Vec<_>>>()?;
    envp.push(c(format!("{REEXECUTED}=1").as_bytes())?);
    Ok((argv, envp))
}
