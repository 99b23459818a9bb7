//! The fields of a `/proc/PID/stat` line, numbered as proc(5) numbers them. The command (field 2)
//! may hold spaces and parentheses, so the fields are read after the last `)`.

/// The fields from 3 (the state) on.
pub struct StatFields<'a>(Vec<&'a str>);

impl<'a> StatFields<'a> {
    pub fn parse(stat: &'a str) -> Option<Self> {
        let rest = &stat[stat.rfind(')')? + 1..];
        Some(StatFields(rest.split_ascii_whitespace().collect()))
    }

    /// Field `n` (3 or more) as proc(5) numbers it.
    pub fn get(&self, n: usize) -> Option<&'a str> {
        self.0.get(n.checked_sub(3)?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command() {
        let f = StatFields::parse("42 (a) b) (c) R 1 2 3").unwrap();
        assert_eq!(
            (f.get(3), f.get(4), f.get(6)),
            (Some("R"), Some("1"), Some("3"))
        );
        assert_eq!((f.get(2), f.get(7)), (None, None));
        assert!(StatFields::parse("42 no command").is_none());
    }
}
