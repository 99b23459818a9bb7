//! Parses `/proc/<pid>/mountinfo` text (host or container) into records tests can query.

/// One mountinfo line (proc(5) field names).
#[derive(Debug, Clone)]
pub struct Mount {
    pub root: String,
    pub mount_point: String,
    pub options: Vec<String>,
    /// Optional fields such as `shared:5` or `master:3`.
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl Mount {
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }

    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options.iter().any(|o| o == opt)
    }

    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 4 {
        return None;
    }
    let split = |s: &str| s.split(',').map(unescape).collect::<Vec<_>>();
    Some(Mount {
        root: unescape(fields[3]),
        mount_point: unescape(fields[4]),
        options: split(fields[5]),
        optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
        fstype: fields[sep + 1].to_string(),
        source: unescape(fields[sep + 2]),
        super_options: split(fields[sep + 3]),
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The last mount at `mount_point` (the visible one when mounts are stacked).
pub fn find<'a>(mounts: &'a [Mount], mount_point: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == mount_point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_optional_fields_and_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n";
        let m = parse(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point, "/mnt x");
        assert!(m[0].is_shared() && m[0].is_slave());
        assert!(m[0].has_option("noatime"));
        assert_eq!(m[0].fstype, "ext3");
        assert!(m[0].has_super_option("errors=continue"));
    }

    #[test]
    fn parses_line_without_optional_fields() {
        let m = parse("1 0 0:1 / / ro - tmpfs none size=1024k,mode=1770");
        assert_eq!(m[0].root, "/");
        assert!(m[0].optional.is_empty());
        assert!(m[0].has_option("ro"));
        assert!(m[0].has_super_option("mode=1770"));
    }
}
