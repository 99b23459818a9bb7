//! Mount option words → flags, flags to clear, propagation and filesystem data. Never panics, parses the same
//! words the same way twice, and never makes more data words than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let words: Vec<String> = data
        .split(|b| *b == b',')
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let a = carte::rootfs::mount::parse_options(&words);
    let b = carte::rootfs::mount::parse_options(&words);
    assert_eq!(a, b);
    assert!(a.data.len() <= words.len());
    for w in &words {
        let _ = carte::rootfs::mount::propagation(w);
    }
});
