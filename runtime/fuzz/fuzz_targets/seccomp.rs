//! A `linux.seccomp` object → the stacked-filter compiler. Compiling must never panic, and a profile it
//! accepts must produce programs within the kernel's 4,096-instruction limit per filter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = serde_json::from_slice::<LinuxSeccomp>(data) else {
        return;
    };
    match carte::seccomp::compile(&profile) {
        Ok(c) => {
            for n in c.instruction_counts() {
                assert!(n <= 4096, "a filter of {n} instructions cannot be loaded");
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
});
