//! A `docker save` tarball. Docker ≥ 25 writes an OCI image layout in the
//! tar (oci-layout, index.json, blobs/sha256/…) beside its own
//! manifest.json: then the layout is read (`layout::plan`), giving the real
//! manifest digest. Older Docker writes only manifest.json:
//! `[{"Config": "<hex>.json", "RepoTags": [...], "Layers":
//! ["<id>/layer.tar", ...]}]`, layers uncompressed, their diffIDs in the
//! config; such an image has no manifest and is keyed by its config digest
//! (Docker's image ID).

use serde::Deserialize;

use super::ImageError;
use super::digest::Digest;
use super::layout::{self, LayerPlan, Plan, parse_config, parse_json};
use super::reference;
use super::source::Source;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    layers: Vec<String>,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

impl Entry {
    fn tags(&self) -> impl Iterator<Item = &String> {
        self.repo_tags.iter().flatten()
    }
}

/// The hex digest a `docker save` name carries (`<hex>.json`,
/// `blobs/sha256/<hex>`), if any.
fn hex_of(name: &str) -> Option<Digest> {
    let base = name.strip_prefix("blobs/sha256/").unwrap_or(name);
    Digest::from_hex(base.strip_suffix(".json").unwrap_or(base)).ok()
}

/// Plans the import of a tarball: an image layout inside (Docker ≥ 25,
/// `skopeo copy … oci-archive:`), else a legacy `docker save`; the image
/// `name` names (a `RepoTags` entry, reference.rs), or the one it holds.
pub fn plan(src: &Source, name: Option<&str>) -> Result<Plan, ImageError> {
    if src.has("oci-layout") && src.has("index.json") {
        return layout::plan(src, name);
    }
    let not = |why: String| ImageError::NotAnImage {
        path: src.path().to_path_buf(),
        why,
    };
    let Some(bytes) = src.read_small("manifest.json")? else {
        return Err(not(
            "neither an OCI image layout (oci-layout, index.json) nor a `docker save` \
             tarball (manifest.json)"
                .into(),
        ));
    };
    let entries: Vec<Entry> = parse_json(src, "manifest.json", &bytes)?;
    let entry = pick(entries, name).map_err(not)?;
    let config_bytes = src
        .read_small(&entry.config)?
        .ok_or_else(|| ImageError::MissingBlob {
            path: src.path().to_path_buf(),
            what: "config".into(),
            digest: entry.config.clone(),
        })?;
    let digest = Digest::of(&config_bytes);
    if let Some(named) = hex_of(&entry.config).filter(|n| *n != digest) {
        return Err(ImageError::Invalid {
            path: src.path().to_path_buf(),
            what: "config".into(),
            digest: named.to_string(),
            why: format!("the file {} hashes to {digest}", entry.config),
        });
    }
    let (config, diff_ids) = parse_config(src, &config_bytes, entry.layers.len())?;
    let layers = entry
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(name, diff_id)| LayerPlan {
            name: name.clone(),
            blob: name
                .starts_with("blobs/sha256/")
                .then(|| hex_of(name))
                .flatten(),
            size: None,
            media_type: String::new(),
            diff_id,
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "Config": entry.config,
        "Layers": entry.layers,
    }))
    .unwrap_or_default();
    Ok(Plan {
        digest,
        manifest,
        config_bytes,
        config,
        layers,
    })
}

/// The one entry of manifest.json, or the one `name` names.
fn pick(mut entries: Vec<Entry>, name: Option<&str>) -> Result<Entry, String> {
    let all: Vec<String> = entries.iter().flat_map(|e| e.tags().cloned()).collect();
    if let Some(wanted) = name {
        entries.retain(|e| e.tags().any(|t| reference::matches(wanted, t)));
        if entries.is_empty() {
            return Err(format!(
                "no image named {wanted:?} in manifest.json ({})",
                reference::listing(&all)
            ));
        }
    }
    match entries.len() {
        1 => Ok(entries.remove(0)),
        0 => Err("manifest.json lists no image".into()),
        n => Err(format!(
            "manifest.json lists {n} images; choose one as PATH:NAME ({})",
            reference::listing(&all)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_digests() {
        let h = "a".repeat(64);
        assert_eq!(hex_of(&format!("{h}.json")).unwrap().hex(), h);
        assert_eq!(hex_of(&format!("blobs/sha256/{h}")).unwrap().hex(), h);
        assert!(hex_of("abc/layer.tar").is_none());
    }
}
