//! `carte create`: make the container and leave its init waiting for `start`.

use crate::cli::{Cli, CreateArgs};
use crate::error::Result;
use crate::process::{self, CreateOpts};

pub fn opts<'a>(cli: &'a Cli, a: &'a CreateArgs) -> CreateOpts<'a> {
    CreateOpts {
        root: &cli.root,
        id: &a.id,
        bundle: &a.bundle,
        console: a.console_socket.as_deref().map(crate::tty::Console::Socket),
        // runc treats `--pid-file ""` as no pid file.
        pid_file: a.pid_file.as_deref().filter(|p| !p.as_os_str().is_empty()),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        systemd: cli.systemd_cgroup,
        rootless_cgroups: crate::rootless::cgroups_rootless(cli.rootless_mode.as_deref()),
        no_new_keyring: a.no_new_keyring,
        outlives_init: false,
    }
}

pub fn run(cli: &Cli, a: &CreateArgs) -> Result<i32> {
    process::create(&opts(cli, a))?;
    Ok(0)
}
