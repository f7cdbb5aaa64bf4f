//! Entry points for the `cargo fuzz` targets in `fuzz/` (not an API: hidden
//! from the docs, no behaviour of its own). Each function feeds untrusted
//! bytes to the same parser and checks a verb uses, and must return (with
//! `Ok` or an error) for every input: a panic or a hang is a bug.

use std::path::Path;

/// config.json parsing and static validation, as `create` does them, with
/// the bundle at `/nonexistent-fuzz-bundle` (relative paths in the config do
/// not resolve; validation only reads metadata, it creates nothing).
pub fn config(data: &[u8]) {
    let cfg = Path::new("/nonexistent-fuzz-bundle/config.json");
    if let Ok(mut spec) = crate::spec::parse_config(data, cfg) {
        crate::spec::normalize(&mut spec);
        let _ = crate::spec::validate(&spec, Path::new("/nonexistent-fuzz-bundle"), cfg);
    }
}

/// A state.json as `state`, `list` and every verb load it, then the JSON
/// that `state` prints from it.
pub fn state(data: &[u8]) {
    if let Ok(st) = serde_json::from_slice::<crate::container::State>(data) {
        let _ = crate::container::validate_id(&st.id);
        let _ = serde_json::to_vec(&st);
    }
}

/// Mount options (`mounts[].options`): `data` is split at NUL or ',' into
/// options, as a config's option list.
pub fn mount_options(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let opts: Vec<String> = text.split(['\0', ',']).map(str::to_string).collect();
    if let Ok(o) = crate::mounts::parse_options(&opts) {
        let _ = o.is_bind();
        let _ = o.data_string();
    }
}

/// The process JSON of `exec --process FILE`.
pub fn exec_process(data: &[u8]) {
    let _ = crate::container::parse_exec_process(data, Path::new("fuzz-process.json"));
}

/// The JSON of `update --resources FILE`.
pub fn update_resources(data: &[u8]) {
    let _ = crate::container::parse_update_resources(data);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_entry_point_takes_garbage() {
        for data in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            b"{\"ociVersion\":1}",
            b"\xff\xfe",
        ] {
            super::config(data);
            super::state(data);
            super::mount_options(data);
            super::exec_process(data);
            super::update_resources(data);
        }
    }
}
