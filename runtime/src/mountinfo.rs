//! `/proc/self/mountinfo`, parsed (proc(5)): the one reader of the mount table, for the code that
//! must know what is mounted where (cgroup hierarchies, the rootfs's parent mount, procfs and sysfs
//! to hide before a `--no-pivot` chroot). Fields are unescaped (`\040` is a space in a path).

use crate::error::{Context, Result};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `major:minor` of the filesystem: one per superblock, shared by its bind mounts.
    pub dev: String,
    /// The path of the filesystem that is mounted (`/` for a full mount, a subdirectory for a bind).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Optional fields such as `shared:N` and `master:N`.
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// The filesystem's own options (for cgroup v1: its controllers).
    pub super_options: String,
}

/// The calling process's mount table.
pub fn read_self() -> Result<Vec<Entry>> {
    let path = "/proc/self/mountinfo";
    let text = crate::kernel_text::read(path).ctx("read", path)?;
    Ok(parse(&text))
}

/// Lines that do not have the documented shape are skipped, not guessed at.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter_map(|l| parse_line(l, None)).collect()
}

/// The mounts of the filesystem types `types` only (`cgroup`, `proc`…). The type is looked at
/// before anything is copied: a node with hundreds of overlay and tmpfs mounts costs their
/// lines' scan, not an entry each.
pub fn parse_types(text: &str, types: &[&str]) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| parse_line(l, Some(types)))
        .collect()
}

fn parse_line(line: &str, types: Option<&[&str]>) -> Option<Entry> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (left, right) = line.split_once(" - ")?;
    let mut r = right.split(' ');
    let fs_type = r.next()?;
    if types.is_some_and(|t| !t.contains(&fs_type)) {
        return None;
    }
    let source = r.next()?;
    let super_options = r.next().unwrap_or_default();
    // id, parent id, major:minor, root, mount point, options, then the optional fields.
    let mut l = left.split(' ');
    let (_, _, dev, root, mount_point, _) = (
        l.next()?,
        l.next()?,
        l.next()?,
        l.next()?,
        l.next()?,
        l.next()?,
    );
    Some(Entry {
        dev: dev.to_string(),
        root: unescape(root).into(),
        mount_point: unescape(mount_point).into(),
        optional: l.map(str::to_string).collect(),
        fs_type: fs_type.to_string(),
        source: unescape(source),
        super_options: super_options.to_string(),
    })
}

/// The kernel escapes space, tab, newline and backslash as three octal digits.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_line_and_escapes() {
        let t = "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                 22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                 garbage\n";
        let v = parse(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].root, PathBuf::from("/mnt1"));
        assert_eq!(v[0].mount_point, PathBuf::from("/mnt 2"));
        assert_eq!(v[0].optional, ["master:1", "shared:2"]);
        assert_eq!(v[0].fs_type, "ext3");
        assert_eq!(v[0].dev, "98:0");
        assert_eq!(v[0].super_options, "rw,errors=continue");
        assert_eq!(v[1].fs_type, "proc");
        assert_eq!(v[1].mount_point, PathBuf::from("/proc"));
        assert_eq!(v[1].optional, Vec::<String>::new());
        let only = parse_types(t, &["proc", "sysfs"]);
        assert_eq!(only, [v[1].clone()]);
        // Too few fields on either side: skipped, whatever the filter.
        assert!(parse("1 2 0:3 / - proc proc rw").is_empty());
        assert!(parse_types("1 2 0:3 / /p rw - proc", &["proc"]).is_empty());
    }
}
