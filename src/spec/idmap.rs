//! config-linux.md "User namespace mappings": the checks the kernel makes
//! when uid_map/gid_map is written (user_namespaces(7), kernel/user_namespace.c
//! map_write), made before anything is created so that a bad map names its
//! field and index instead of failing as `write /proc/PID/uid_map: EINVAL`
//! half-way through create.

use oci_spec::runtime::LinuxIdMapping;

/// The kernel's limit on lines in one map (UID_GID_MAP_MAX_EXTENTS, Linux
/// 4.15+; 5 before).
pub const MAX_LINES: usize = 340;

/// The kernel takes a map in one write of less than a page
/// (map_write: `count >= PAGE_SIZE` is EINVAL).
const MAX_BYTES: usize = 4096;

/// The text written to uid_map/gid_map: one "ID-inside ID-outside length"
/// line per mapping.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Checks one map (`field` is `linux.uidMappings` or `linux.gidMappings`);
/// on error returns the field, with the index where one is to blame, and why.
pub fn check_map(field: &str, maps: &[LinuxIdMapping]) -> Result<(), (String, String)> {
    if maps.len() > MAX_LINES {
        return Err((
            field.to_string(),
            format!(
                "{} mappings: the kernel accepts at most {MAX_LINES}",
                maps.len()
            ),
        ));
    }
    let len = map_text(maps).len();
    if len >= MAX_BYTES {
        return Err((
            field.to_string(),
            format!(
                "the map is {len} bytes as text: the kernel takes less than {MAX_BYTES} (one page) in one write"
            ),
        ));
    }
    for (i, m) in maps.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if m.size() == 0 {
            return Err((format!("{at}.size"), "must be greater than zero".into()));
        }
        // The kernel refuses a range whose end wraps around 2^32.
        for (name, first) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            if u64::from(first) + u64::from(m.size()) > u64::from(u32::MAX) {
                return Err((
                    at.clone(),
                    format!(
                        "{name} {first} + size {} goes past {}: ids are 32-bit",
                        m.size(),
                        u32::MAX
                    ),
                ));
            }
        }
        // Neither the inside nor the outside ranges may overlap.
        for (j, n) in maps.iter().enumerate().take(i) {
            let overlap = |a: u32, b: u32| {
                let (a, b, s, t) = (
                    u64::from(a),
                    u64::from(b),
                    u64::from(m.size()),
                    u64::from(n.size()),
                );
                a < b + t && b < a + s
            };
            let side = if overlap(m.container_id(), n.container_id()) {
                "containerID"
            } else if overlap(m.host_id(), n.host_id()) {
                "hostID"
            } else {
                continue;
            };
            return Err((
                at,
                format!(
                    "its {side} range overlaps that of {field}[{j}] ({} {} {} and {} {} {}): the kernel refuses overlapping ranges",
                    m.container_id(),
                    m.host_id(),
                    m.size(),
                    n.container_id(),
                    n.host_id(),
                    n.size()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(v: &[(u32, u32, u32)]) -> Vec<LinuxIdMapping> {
        let j: Vec<_> = v
            .iter()
            .map(|(c, h, s)| serde_json::json!({"containerID": c, "hostID": h, "size": s}))
            .collect();
        serde_json::from_value(serde_json::Value::Array(j)).unwrap()
    }

    fn err(v: &[(u32, u32, u32)]) -> (String, String) {
        check_map("linux.uidMappings", &maps(v)).unwrap_err()
    }

    #[test]
    fn good_maps_pass() {
        check_map("linux.uidMappings", &maps(&[(0, 100000, 65536)])).unwrap();
        check_map("x", &maps(&[(0, 1000, 1), (1, 100000, 65535)])).unwrap();
        check_map("x", &maps(&[(0, 0, u32::MAX)])).unwrap();
    }

    #[test]
    fn bad_maps_name_field_and_index() {
        let (f, why) = err(&[(0, 1000, 10), (5, 2000, 10)]);
        assert_eq!(f, "linux.uidMappings[1]");
        assert!(
            why.contains("containerID range overlaps") && why.contains("[0]"),
            "{why}"
        );
        let (f, why) = err(&[(0, 1000, 10), (100, 1005, 10)]);
        assert_eq!(f, "linux.uidMappings[1]");
        assert!(why.contains("hostID range overlaps"), "{why}");
        assert_eq!(err(&[(0, 1000, 0)]).0, "linux.uidMappings[0].size");
        let (f, why) = err(&[(1, 0, u32::MAX)]);
        assert_eq!(f, "linux.uidMappings[0]");
        assert!(why.contains("containerID 1 + size 4294967295"), "{why}");
        let many: Vec<_> = (0..341).map(|i| (i, 1000 + i, 1)).collect();
        assert!(err(&many).1.contains("at most 340"));
        let long: Vec<_> = (0..200)
            .map(|i| (i * 10_000_000, i * 10_000_000, 1))
            .collect();
        assert!(err(&long).1.contains("one page"), "{:?}", err(&long));
    }
}
