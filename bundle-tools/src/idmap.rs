//! User-namespace id mappings, and the one lookup shared by the layer code (owners) and the config writer.

/// One range of a user-namespace id mapping (`container host size`, as in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// Map a container id to a host id; `None` when no range covers it.
pub fn map_id(maps: &[IdMap], id: u32) -> Option<u32> {
    if maps.is_empty() {
        return Some(id);
    }
    maps.iter()
        .find(|m| id >= m.container && id - m.container < m.size)
        .and_then(|m| m.host.checked_add(id - m.container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_mapping() {
        let maps = [IdMap {
            container: 0,
            host: 100000,
            size: 65536,
        }];
        assert_eq!(map_id(&maps, 0), Some(100000));
        assert_eq!(map_id(&maps, 1000), Some(101000));
        assert_eq!(map_id(&maps, 65536), None);
        assert_eq!(map_id(&[], 42), Some(42));
    }
}
