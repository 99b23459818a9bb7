//! Protection without re-executing: this process moves onto the read-only view of its binary.
//! Every mapping of the binary is re-made from the view (code and read-only data: the same
//! pages of the same inode, through the view's mount) or from anonymous memory (the data the
//! start-up relocated), and `/proc/self/exe` is pointed at the view. The result is what
//! `execveat` of the view gives — no mapping and no exe link that reaches the writable file —
//! without a second start-up: on the VM of bench/README.md a start-up of carte costs about
//! 0.9 ms (glibc's CPU feature probe alone is ~70 `cpuid`s, each a trap to the hypervisor), the
//! move about 0.2 ms with the copy and the code it faults in again. On x86-64 `early` has usually
//! done the re-mapping before the start-up, and only `point_exe_at` is left.

use crate::proc_stat::StatFields;
use crate::sys::remap::{self, Mapping, MmLayout};
use nix::errno::Errno;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// Moves this process onto `view` (the O_PATH fd of the detached read-only mount of our binary).
/// On an error the process is still whole (each step keeps every byte in place) but maybe not
/// protected: the caller falls back to re-executing from the view.
pub fn adopt(view: &OwnedFd) -> Result<(), Errno> {
    // mmap and PR_SET_MM_EXE_FILE want a readable fd; the view's is O_PATH.
    let file = File::open(format!("/proc/self/fd/{}", view.as_raw_fd()))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let meta = file.metadata().map_err(|_| Errno::EIO)?;
    let maps = crate::kernel_text::read("/proc/self/maps").map_err(|_| Errno::EIO)?;
    let ours = mappings_of(&maps, meta.dev(), meta.ino());
    let writable = remap::writable_segments()?;
    for m in &ours {
        if writable.iter().any(|&(s, e)| m.start < e && s < m.end) {
            remap::make_anonymous(m)?;
        } else {
            remap::remap_from(m, file.as_fd())?;
        }
    }
    point_exe_at(&file)
}

/// Points `/proc/self/exe` at `file` (the readable view), once no mapping of the old file is left.
pub fn point_exe_at(file: &File) -> Result<(), Errno> {
    match remap::set_exe_file(file.as_fd()) {
        Err(Errno::EPERM) => {
            let stat = crate::kernel_text::read("/proc/self/stat").map_err(|_| Errno::EIO)?;
            let layout = layout_of(&stat).ok_or(Errno::EINVAL)?;
            remap::set_exe_file_with_layout(file.as_fd(), &layout)
        }
        r => r,
    }
}

/// The layout fields of a `/proc/self/stat` line: startcode, endcode, startstack (26–28) and
/// start_data … env_end (45–51). None if any is missing or zero (the kernel hides them from a
/// reader without access).
fn layout_of(stat: &str) -> Option<MmLayout> {
    let f = StatFields::parse(stat)?;
    let field = |n: usize| f.get(n)?.parse::<u64>().ok().filter(|&v| v != 0);
    Some(MmLayout {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
    })
}

/// The mappings of `/proc/self/maps` text whose file is device `dev`, inode `ino`.
fn mappings_of(maps: &str, dev: u64, ino: u64) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|l| parse_line(l, dev, ino))
        .collect()
}

/// `start-end perms offset major:minor inode [path]`, when the file is `dev`/`ino`.
fn parse_line(line: &str, dev: u64, ino: u64) -> Option<Mapping> {
    let mut f = line.split_ascii_whitespace();
    let (range, perms, offset, device, inode) =
        (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    if inode.parse::<u64>().ok()? != ino {
        return None;
    }
    let (major, minor) = device.split_once(':')?;
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let (major, minor) = (hex(major)?, hex(minor)?);
    if libc::makedev(major as u32, minor as u32) != dev {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let p = perms.as_bytes();
    let bit = |i: usize, c: u8, v: libc::c_int| if p.get(i) == Some(&c) { v } else { 0 };
    Some(Mapping {
        start: usize::from_str_radix(start, 16).ok()?,
        end: usize::from_str_radix(end, 16).ok()?,
        prot: bit(0, b'r', libc::PROT_READ)
            | bit(1, b'w', libc::PROT_WRITE)
            | bit(2, b'x', libc::PROT_EXEC),
        offset: hex(offset)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_mappings_of_one_file() {
        let maps = "\
55d0c4a00000-55d0c4b00000 r--p 00000000 fe:01 1234 /usr/bin/carte
55d0c4b00000-55d0c4c00000 r-xp 00100000 fe:01 1234 /usr/bin/carte
55d0c4c00000-55d0c4c10000 rw-p 00200000 fe:01 1234 /usr/bin/carte
55d0c4c10000-55d0c4c20000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7f0000000000-7f0000001000 r--p 00000000 fe:02 1234 /other/dev/same/inode
";
        let dev = libc::makedev(0xfe, 1);
        let got = mappings_of(maps, dev, 1234);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[1],
            Mapping {
                start: 0x55d0c4b00000,
                end: 0x55d0c4c00000,
                prot: libc::PROT_READ | libc::PROT_EXEC,
                offset: 0x100000
            }
        );
        assert_eq!(got[2].prot, libc::PROT_READ | libc::PROT_WRITE);
        assert!(mappings_of(maps, dev, 99).is_empty());
    }

    #[test]
    fn reads_the_layout_after_the_command() {
        // A command with a space and a parenthesis in it; fields 26-28 and 45-51 numbered.
        let mut fields: Vec<String> = (3..=52).map(|n| (n * 1000).to_string()).collect();
        fields[0] = "R".into();
        let stat = format!("42 (a) b) {}", fields.join(" "));
        let l = layout_of(&stat).unwrap();
        assert_eq!(
            (l.start_code, l.end_code, l.start_stack),
            (26000, 27000, 28000)
        );
        assert_eq!((l.start_data, l.env_end), (45000, 51000));
        let hidden = stat.replace(" 26000 ", " 0 ");
        assert_eq!(layout_of(&hidden), None);
        assert_eq!(layout_of("42 (a) R 1 2"), None);
    }
}
