//! config.json bytes → parse (oci-spec, field-named errors) → validate → the seccomp and mount-option steps
//! of the plan. Nothing here may panic, whatever the bytes; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = carte::bundle::parse_spec(data, "config.json") else {
        return;
    };
    // Errors must render as one line: that is what the user (and containerd's log reader) gets.
    if let Err(e) = carte::validate::check(&spec) {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
        return;
    }
    if let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        if let Err(e) = carte::seccomp::compile(seccomp) {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
        }
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let _ = carte::rootfs::mount::parse_options(m.options().as_deref().unwrap_or_default());
    }
});
