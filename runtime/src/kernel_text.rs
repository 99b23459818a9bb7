//! The kernel's generated text files (procfs, cgroupfs) read whole in as few `read(2)`s as the
//! text allows. They report a size of 0, so `std::fs::read_to_string` starts with 32-byte probe
//! reads and doubles: seven reads for a `/proc/PID/stat`, nine for this VM's mountinfo. One
//! 8 KiB read, then the one that says end of file, takes most of them whole. A short read does
//! not mean the end: a seq_file stops at its own page-sized buffer, so the rest is read on.
//! A single value (`cpuset.cpus`) is read with `read_trimmed`: one read, no look for the end.

use std::io::Read;
use std::path::Path;

const FIRST_READ: usize = 8 * 1024;

/// The whole text of `path` (invalid UTF-8 is an error, as with `std::fs::read_to_string`).
pub fn read(path: impl AsRef<Path>) -> std::io::Result<String> {
    read_path(path.as_ref())
}

/// One copy of the code for every caller's kind of path (it is on the start-up layout's list).
fn read_path(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(FIRST_READ);
    // Through `take`: `File`'s own read_to_end first asks for the file's size (a statx, and the
    // answer 0 brings back the probe reads); the generic one reads straight into the capacity.
    file.take(u64::MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A one-value file (a cgroup's `cpuset.cpus`), trimmed: open, one read, close. A value that fills
/// the buffer is read on to its end, so a long list is never cut.
pub fn read_trimmed(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let n = file.read(&mut buf)?;
    buf.truncate(n);
    if n == 4096 {
        file.read_to_end(&mut buf)?;
    }
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_whole_files_the_first_read_does_not_hold() {
        // Longer than the first read: the buffer grows.
        let long = std::env::temp_dir().join(format!("kernel-text-{}", std::process::id()));
        let text: String = (0..3000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&long, &text).unwrap();
        assert_eq!(super::read(&long).unwrap(), text);
        std::fs::remove_file(&long).unwrap();
        let ours = super::read("/proc/self/mountinfo").unwrap();
        let std = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(ours, std);
        assert!(super::read("/proc/self/no-such-file").is_err());
    }

    #[test]
    fn a_trimmed_value_longer_than_one_read_is_whole() {
        let f = std::env::temp_dir().join(format!("kernel-text-trim-{}", std::process::id()));
        let long: String = (0..2000).map(|i| format!("{i},")).collect();
        std::fs::write(&f, format!("{long}\n")).unwrap();
        assert_eq!(super::read_trimmed(&f).unwrap(), long);
        std::fs::write(&f, "0-1\n").unwrap();
        assert_eq!(super::read_trimmed(&f).unwrap(), "0-1");
        std::fs::remove_file(&f).unwrap();
    }
}
