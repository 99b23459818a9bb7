//! No fresh, unmasked procfs for the container (issue 14). The kernel lets a process mount procfs or
//! sysfs only where a full one is already visible in its mount namespace without anything mounted
//! over part of it; the container's own /proc has its masked paths mounted over, so it never
//! qualifies. These tests cover the ways around that: the host's procfs left reachable under a
//! `--no-pivot` chroot, and a `/proc` that is a symlink in the image. Each runs against carte and runc.

use carte_tests::*;

/// runc's `tests/integration/no_pivot.bats`: with `--no-pivot` the host's procfs stays in the
/// container's mount namespace (outside the chroot), and a nested user namespace could mount a
/// fresh procfs on the strength of it, without the masked paths. The runtime must hide the host's
/// full procfs and sysfs mounts before the chroot, so the mount is refused.
#[test]
fn no_pivot_does_not_let_a_nested_user_namespace_mount_procfs() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    // Mapping uid 0 in the nested user namespace needs CAP_SETFCAP (Linux ≥ 5.12).
    for set in ["bounding", "permitted", "effective"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SETFCAP"),
        );
    }
    b.args(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc 2>/dev/null && echo mounted || echo refused; \
         mount -t sysfs none /sys 2>/dev/null && echo mounted || echo refused",
    ]);
    let id = ctx.id("nopivproc");
    let out = ctx.rt.run(&id, &b, &["--no-pivot"]).ok();
    assert_eq!(
        out.stdout, "refused\nrefused\n",
        "a nested user namespace mounted procfs or sysfs: {out}"
    );
    ctx.assert_no_leaks(&id);
}

/// The same nested mount, without `--no-pivot`, is refused as well (the container's /proc is
/// partly covered by its masked paths): the control for the test above.
#[test]
fn pivot_root_does_not_let_a_nested_user_namespace_mount_procfs() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    for set in ["bounding", "permitted", "effective"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SETFCAP"),
        );
    }
    b.args(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc 2>/dev/null && echo mounted || echo refused",
    ]);
    let id = ctx.id("pivproc");
    let out = ctx.rt.run(&id, &b, &[]).ok();
    assert_eq!(out.stdout, "refused\n", "{out}");
    ctx.assert_no_leaks(&id);
}
