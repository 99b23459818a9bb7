//! A terminal without `--console-socket`: foreground `run` and `exec -t` allocate the pty themselves and relay
//! it to their own stdio (runc's behaviour); detached, they refuse.

use carte_tests::console::{run_on_pty, run_on_pty_with, run_with_input, set_pty_size, OnPty};
use carte_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::Command;

/// The size of the terminal the tests give the runtime: unusual, so that it cannot be a default.
const ROWS: u16 = 33;
const COLS: u16 = 111;

/// `RUNTIME --root ROOT <args>`.
fn command(ctx: &Ctx, args: &[&str]) -> Command {
    let mut cmd = Command::new(ctx.rt.bin());
    cmd.arg("--root").arg(ctx.rt.root()).args(args);
    cmd
}

/// The lines of terminal output, without the carriage returns the pty adds.
fn lines(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.trim_end_matches('\r')).collect()
}

/// Whether `stty size` printed the size of the terminal we gave the runtime.
fn shows_our_size(text: &str) -> bool {
    lines(text).contains(&format!("{ROWS} {COLS}").as_str())
}

#[track_caller]
fn write(b: &Bundle) {
    if let Err(e) = b.write() {
        panic!("{e:#}");
    }
}

#[track_caller]
fn on_pty(ctx: &Ctx, args: &[&str]) -> OnPty {
    match run_on_pty(command(ctx, args), ROWS, COLS, runtime::TIMEOUT) {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    }
}

#[track_caller]
fn with_input(ctx: &Ctx, args: &[&str], input: &str) -> Out {
    match run_with_input(command(ctx, args), input.as_bytes(), runtime::TIMEOUT) {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    }
}

/// runc 1.1 needs a terminal among its stdio (or a controlling one) to relay a pty; carte only copies.
fn runc_needs_a_terminal() -> bool {
    if !is_carte() {
        eprintln!(
            "skipped for the reference runtime: it needs a terminal on its stdio to relay one"
        );
        return true;
    }
    false
}

const TTY_SCRIPT: &str = "test -t 0 && test -t 1 && echo TTY-OK; stty size; exit 3";

#[test]
fn run_relays_a_terminal_on_a_tty() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    b.args(&["sh", "-c", TTY_SCRIPT]);
    write(&b);
    let id = ctx.id("ttyrun");
    let r = on_pty(&ctx, &["run", &id, "--bundle", b.path_str()]);
    let text = &r.out.stdout;
    assert_eq!(r.out.code(), 3, "{}", r.out);
    assert!(lines(text).contains(&"TTY-OK"), "{text:?}");
    assert!(shows_our_size(text), "{text:?}");
    assert!(r.restored, "the terminal was left in raw mode: {}", r.out);
    assert!(ctx.rt.list_json().is_empty(), "run left its container");
}

#[test]
fn run_relays_output_written_just_before_exit() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    // Far more than a pty buffers: the runtime must keep reading until the pty is drained, not stop at exit.
    b.args(&["sh", "-c", "yes line | head -n 5000; echo END-OF-OUTPUT"]);
    write(&b);
    let id = ctx.id("ttydrain");
    let r = on_pty(&ctx, &["run", &id, "--bundle", b.path_str()]);
    assert_eq!(r.out.code(), 0, "{}", r.out);
    let all = lines(&r.out.stdout);
    assert_eq!(all.iter().filter(|l| **l == "line").count(), 5000);
    assert_eq!(all.last(), Some(&"END-OF-OUTPUT"));
}

/// Waits (bounded) for the container to create `name` in the shared directory.
fn wait_for(dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    if !poll_until(runtime::TIMEOUT, || path.exists()) {
        anyhow::bail!("the container never created {}", path.display());
    }
    Ok(())
}

#[test]
fn run_resizes_the_pty_and_forwards_signals() {
    let Some(ctx) = Ctx::new() else { return };
    let shared = ctx.tempdir();
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    b.mount(json!({"destination": "/mnt", "type": "bind", "source": shared, "options": ["bind"]}));
    // Waits for the size to change (however long the runtime takes to pass SIGWINCH on), then for TERM.
    // A reading that failed is not a change: once, under runc in CI, busybox's stty failed (a stale errno,
    // "No child processes") and the loop ended before the resize.
    let script = format!(
        "trap 'echo got-term; exit 7' TERM; touch /mnt/ready; \
         while :; do s=$(stty size); [ -n \"$s\" ] && [ \"$s\" != '{ROWS} {COLS}' ] && break; sleep 0.05; done; \
         echo now $s; touch /mnt/resized; while :; do sleep 0.05; done"
    );
    b.args(&["sh", "-c", &script]);
    write(&b);
    let id = ctx.id("ttywinch");
    let cmd = command(&ctx, &["run", &id, "--bundle", b.path_str()]);
    let r = run_on_pty_with(cmd, ROWS, COLS, runtime::TIMEOUT, |pid, master| {
        let pid = Pid::from_raw(pid as i32);
        wait_for(&shared, "ready")?;
        // The runtime has no controlling terminal: the kernel signals nobody, a terminal emulator would.
        set_pty_size(master, 44, 55)?;
        kill(pid, Signal::SIGWINCH)?;
        wait_for(&shared, "resized")?;
        kill(pid, Signal::SIGTERM)?;
        Ok(())
    });
    let r = match r {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    };
    assert_eq!(r.out.code(), 7, "{}", r.out);
    let all = lines(&r.out.stdout);
    assert!(all.contains(&"now 44 55"), "{}", r.out);
    assert!(all.contains(&"got-term"), "{}", r.out);
    assert!(r.restored, "the terminal was left in raw mode: {}", r.out);
}

#[test]
fn run_relays_a_terminal_from_a_pipe() {
    let Some(ctx) = Ctx::new() else { return };
    if runc_needs_a_terminal() {
        return;
    }
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    b.set("/process/consoleSize", json!({"height": 12, "width": 34}));
    b.args(&[
        "sh",
        "-c",
        "test -t 0 && echo tty-in; stty size; (cd /proc/self/fd && echo fds *); \
         read x; echo got:$x; read y; echo got:$y; exit 5",
    ]);
    write(&b);
    let id = ctx.id("ttypipe");
    // Our stdin ends after two lines: the pty stays open, and the shell exits on its own.
    let out = with_input(
        &ctx,
        &["run", &id, "--bundle", b.path_str()],
        "first\nsecond\n",
    );
    assert_eq!(out.code(), 5, "{out}");
    let all = lines(&out.stdout);
    // Only the pty as stdio (3 is the directory the shell is listing): nothing of the relay leaks in.
    for want in ["tty-in", "12 34", "fds 0 1 2 3", "got:first", "got:second"] {
        assert!(all.contains(&want), "{want}: {out}");
    }
    assert!(ctx.rt.list_json().is_empty(), "run left its container");
}

/// A detached container without a terminal, for `exec -t`.
fn sleeper(ctx: &Ctx) -> String {
    let mut b = ctx.bundle();
    b.args(&["sleep", "1000"]);
    let id = ctx.id("ttyexec");
    ctx.rt.run(&id, &b, &["-d"]).ok();
    id
}

#[test]
fn exec_t_relays_a_terminal_on_a_tty() {
    let Some(ctx) = Ctx::new() else { return };
    let id = sleeper(&ctx);
    let r = on_pty(&ctx, &["exec", "-t", &id, "sh", "-c", TTY_SCRIPT]);
    let text = &r.out.stdout;
    assert_eq!(r.out.code(), 3, "{}", r.out);
    assert!(lines(text).contains(&"TTY-OK"), "{text:?}");
    // runc 1.1 sizes the pty only after the process has started, racing with `stty`; carte sizes it first.
    if is_carte() {
        assert!(shows_our_size(text), "{text:?}");
    }
    assert!(r.restored, "the terminal was left in raw mode: {}", r.out);
    assert_eq!(ctx.rt.status(&id), "running");
}

#[test]
fn exec_t_relays_a_terminal_from_a_pipe() {
    let Some(ctx) = Ctx::new() else { return };
    if runc_needs_a_terminal() {
        return;
    }
    let id = sleeper(&ctx);
    let script = "test -t 0 && test -t 1 && echo tty-in; read x; echo got:$x; exit 6";
    let out = with_input(&ctx, &["exec", "-t", &id, "sh", "-c", script], "hello\n");
    assert_eq!(out.code(), 6, "{out}");
    let all = lines(&out.stdout);
    assert!(all.contains(&"tty-in"), "{out}");
    assert!(all.contains(&"got:hello"), "{out}");
    assert_eq!(ctx.rt.status(&id), "running");
}

#[test]
fn detached_terminal_without_console_socket_is_refused() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.set("/process/terminal", json!(true));
    b.args(&["sleep", "1000"]);
    let id = ctx.id("ttydetach");
    let out = ctx.rt.run(&id, &b, &["-d"]).fails();
    if is_carte() {
        assert!(out.stderr.contains("--console-socket"), "{out}");
    }
    ctx.assert_no_leaks(&id);
}

#[test]
fn detached_exec_t_without_console_socket_is_refused() {
    let Some(ctx) = Ctx::new() else { return };
    let id = sleeper(&ctx);
    let out = ctx
        .rt
        .cmd(&["exec", "-d", "-t", &id, "sleep", "1000"])
        .fails();
    if is_carte() {
        assert!(out.stderr.contains("--console-socket"), "{out}");
    }
    let ps = ctx.rt.cmd(&["ps", &id]).ok();
    assert_eq!(
        ps.stdout.lines().filter(|l| l.contains("sleep")).count(),
        1,
        "only the container's own sleep may run: {ps}"
    );
}
