//! Config fields whose meaning the runtime spec fixes, where carte once read them differently from
//! runc or from the spec: each test names the sentence it checks and runs against carte and runc.

use carte_tests::*;

/// config.md (1.1+): a relative mount destination "MUST be interpreted as relative to `/`"
/// (deprecated). runc 1.1.5 accepts it too.
#[test]
fn a_relative_mount_destination_is_relative_to_root() {
    let Some(ctx) = Ctx::new() else { return };
    let mut b = ctx.bundle();
    b.mount(
        json!({"destination": "mnt/reldest", "type": "tmpfs", "source": "tmpfs",
                   "options": ["size=1m"]}),
    );
    let id = ctx.id("reldest");
    let out = ctx
        .rt
        .run_sh(&id, &mut b, "grep -c ' /mnt/reldest ' /proc/self/mountinfo");
    assert_eq!(out.trim(), "1", "tmpfs not at /mnt/reldest");
    ctx.assert_no_leaks(&id);
}

/// config.md (1.2): "If the `idmap` option is specified ... and the container does not have a
/// user namespace ... an error MUST be returned". runc 1.1.5 predates idmapped mounts and passes
/// the word to the kernel as data, which a bind mount ignores: it runs the container.
#[test]
fn idmap_without_a_user_namespace_is_an_error() {
    let Some(ctx) = Ctx::new() else { return };
    let src = ctx.tempdir();
    let mut b = ctx.bundle();
    b.mount(json!({"destination": "/m", "type": "bind",
                   "source": src.display().to_string(), "options": ["rbind", "idmap"]}));
    b.args(&["true"]);
    let id = ctx.id("idmap");
    let out = ctx.rt.create(&id, &b, &[]);
    if is_carte() {
        let out = out.fails();
        assert!(
            out.stderr.contains("mounts[") && out.stderr.contains("idmap"),
            "{out}"
        );
    } else {
        out.ok();
        ctx.rt.delete_force(&id).ok();
    }
    ctx.assert_no_leaks(&id);
}
