//! An OCI image layout (image-spec image-layout.md): `oci-layout`,
//! `index.json` → (nested indexes, by platform) → one manifest
//! (manifest.md) → its config (config.md) and layers (layer.md). The
//! result is a `Plan`: what to verify and unpack, in order.

use serde::Deserialize;

use super::digest::Digest;
use super::reference;
use super::source::Source;
use super::{ImageConfig, ImageError};

/// What an import verifies and unpacks.
#[derive(Debug)]
pub struct Plan {
    /// The image's key in the store: the manifest digest (for a legacy
    /// `docker save` tarball, which has no manifest, the config digest).
    pub digest: Digest,
    pub manifest: Vec<u8>,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
    pub layers: Vec<LayerPlan>,
}

/// One layer: where its blob is, what it must hash to, how it is packed.
#[derive(Debug, Clone)]
pub struct LayerPlan {
    pub name: String,
    /// The digest of the blob as stored (compressed), when known.
    pub blob: Option<Digest>,
    pub size: Option<u64>,
    pub media_type: String,
    /// config.md `rootfs.diff_ids`: the digest of the uncompressed tar.
    pub diff_id: Digest,
}

#[derive(Debug, Deserialize)]
pub(super) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    /// The names an index entry carries (reference.rs).
    fn names(&self) -> impl Iterator<Item = &String> {
        reference::NAME_ANNOTATIONS
            .iter()
            .filter_map(|k| self.annotations.as_ref()?.get(*k))
    }
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// config.md: the fields cuddy uses. Docker writes `null` for empty lists.
#[derive(Debug, Deserialize)]
pub(super) struct ConfigFile {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    config: Option<RunConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The image-spec's architecture name of this machine (Go's GOARCH).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

pub(super) fn parse_json<'a, T: Deserialize<'a>>(
    src: &Source,
    what: &str,
    bytes: &'a [u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        path: src.path().to_path_buf(),
        what: what.into(),
        source,
    })
}

pub(super) fn digest_of(src: &Source, what: &str, s: &str) -> Result<Digest, ImageError> {
    Digest::parse(s).map_err(|why| ImageError::BadDigest {
        path: src.path().to_path_buf(),
        what: what.into(),
        digest: s.into(),
        why,
    })
}

/// Reads a small blob and checks its digest and size (descriptor.md).
fn read_blob(src: &Source, d: &Descriptor, what: &str) -> Result<(Digest, Vec<u8>), ImageError> {
    let digest = digest_of(src, what, &d.digest)?;
    let bytes = src
        .read_small(&Source::blob_name(&digest))?
        .ok_or_else(|| ImageError::MissingBlob {
            path: src.path().to_path_buf(),
            what: what.into(),
            digest: d.digest.clone(),
        })?;
    let got = Digest::of(&bytes);
    let why = if got != digest {
        format!("the blob's content hashes to {got}")
    } else if d.size != bytes.len() as i64 {
        format!(
            "the descriptor says {} bytes, the blob has {}",
            d.size,
            bytes.len()
        )
    } else {
        return Ok((digest, bytes));
    };
    Err(ImageError::Invalid {
        path: src.path().to_path_buf(),
        what: what.into(),
        digest: d.digest.clone(),
        why,
    })
}

/// image-index.md: picks the one manifest for linux/<host arch> (entries
/// without a platform match any), descending into nested indexes.
fn select(src: &Source, descs: Vec<Descriptor>, depth: u32) -> Result<Descriptor, ImageError> {
    let arch = host_arch();
    let mut seen = Vec::new();
    let mut picked: Vec<Descriptor> = Vec::new();
    for d in descs {
        let known = d.media_type.is_empty()
            || MANIFEST_TYPES.contains(&d.media_type.as_str())
            || INDEX_TYPES.contains(&d.media_type.as_str());
        if let Some(p) = &d.platform {
            seen.push(format!("{}/{}", p.os, p.architecture));
        }
        let fits = d
            .platform
            .as_ref()
            .is_none_or(|p| p.os == "linux" && p.architecture == arch);
        if known && fits && !picked.iter().any(|o| o.digest == d.digest) {
            picked.push(d);
        }
    }
    let not = |why: String| ImageError::NotAnImage {
        path: src.path().to_path_buf(),
        why,
    };
    let d = match picked.len() {
        1 => picked.remove(0),
        0 => {
            return Err(not(format!(
                "no image for linux/{arch} in its index (platforms: {})",
                if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(", ")
                }
            )));
        }
        n => {
            let mut names: Vec<String> = picked.iter().flat_map(|d| d.names().cloned()).collect();
            names.dedup();
            return Err(not(format!(
                "its index lists {n} images for linux/{arch}; choose one as PATH:NAME ({})",
                reference::listing(&names)
            )));
        }
    };
    if !INDEX_TYPES.contains(&d.media_type.as_str()) {
        return Ok(d);
    }
    if depth >= 4 {
        return Err(not("indexes nested more than 4 deep".into()));
    }
    let (_, bytes) = read_blob(src, &d, "nested index")?;
    let idx: Index = parse_json(src, "nested index", &bytes)?;
    select(src, idx.manifests, depth + 1)
}

/// The index entries `name` names (reference.rs); all of them without one.
fn named(
    src: &Source,
    descs: Vec<Descriptor>,
    name: Option<&str>,
) -> Result<Vec<Descriptor>, ImageError> {
    let Some(wanted) = name else {
        return Ok(descs);
    };
    let all: Vec<String> = descs.iter().flat_map(|d| d.names().cloned()).collect();
    let picked: Vec<Descriptor> = descs
        .into_iter()
        .filter(|d| d.names().any(|n| reference::matches(wanted, n)))
        .collect();
    if picked.is_empty() {
        return Err(ImageError::NotAnImage {
            path: src.path().to_path_buf(),
            why: format!(
                "no image named {wanted:?} in its index.json ({})",
                reference::listing(&all)
            ),
        });
    }
    Ok(picked)
}

/// Plans the import of an image layout (a dir, or packed in a tarball):
/// the image `name` names, or the one it holds.
pub fn plan(src: &Source, name: Option<&str>) -> Result<Plan, ImageError> {
    let not = |why: &str| ImageError::NotAnImage {
        path: src.path().to_path_buf(),
        why: why.into(),
    };
    // image-layout.md#oci-layout-file: "This file MUST exist".
    if !src.has("oci-layout") {
        return Err(not("no oci-layout file (image-layout.md)"));
    }
    let index = src
        .read_small("index.json")?
        .ok_or_else(|| not("no index.json (image-layout.md#indexjson-file)"))?;
    let index: Index = parse_json(src, "index.json", &index)?;
    let desc = select(src, named(src, index.manifests, name)?, 0)?;
    let (digest, manifest) = read_blob(src, &desc, "manifest")?;
    let m: Manifest = parse_json(src, "manifest", &manifest)?;
    if !m.config.media_type.is_empty() && !CONFIG_TYPES.contains(&m.config.media_type.as_str()) {
        return Err(not(&format!(
            "manifest {digest}: config media type {:?} is not a container image config",
            m.config.media_type
        )));
    }
    let (_, config_bytes) = read_blob(src, &m.config, "config")?;
    let (config, diff_ids) = parse_config(src, &config_bytes, m.layers.len())?;
    let mut layers = Vec::new();
    for (d, diff_id) in m.layers.into_iter().zip(diff_ids) {
        let blob = digest_of(src, "layer", &d.digest)?;
        layers.push(LayerPlan {
            name: Source::blob_name(&blob),
            blob: Some(blob),
            size: u64::try_from(d.size).ok(),
            media_type: d.media_type,
            diff_id,
        });
    }
    Ok(Plan {
        digest,
        manifest,
        config_bytes,
        config,
        layers,
    })
}

/// config.md: the run defaults and `rootfs.diff_ids` (as many as layers).
pub(super) fn parse_config(
    src: &Source,
    bytes: &[u8],
    layers: usize,
) -> Result<(ImageConfig, Vec<Digest>), ImageError> {
    let c: ConfigFile = parse_json(src, "image config", bytes)?;
    let bad = |why: String| ImageError::NotAnImage {
        path: src.path().to_path_buf(),
        why: format!("image config: {why}"),
    };
    if let Some(os) = c.os.as_deref().filter(|os| *os != "linux") {
        return Err(bad(format!("os is {os:?}, not linux")));
    }
    if c.rootfs.kind != "layers" {
        return Err(bad(format!(
            "rootfs.type is {:?}, not \"layers\"",
            c.rootfs.kind
        )));
    }
    if c.rootfs.diff_ids.len() != layers {
        return Err(bad(format!(
            "{} rootfs.diff_ids for {layers} layers",
            c.rootfs.diff_ids.len()
        )));
    }
    if layers == 0 {
        return Err(bad("no layers: nothing to run".into()));
    }
    let diff_ids = c
        .rootfs
        .diff_ids
        .iter()
        .map(|d| digest_of(src, "rootfs.diff_ids", d))
        .collect::<Result<Vec<_>, _>>()?;
    let rc = c.config.unwrap_or_default();
    let config = ImageConfig {
        env: rc.env.unwrap_or_default(),
        entrypoint: rc.entrypoint.unwrap_or_default(),
        cmd: rc.cmd.unwrap_or_default(),
        working_dir: rc.working_dir.filter(|w| !w.is_empty()),
        user: rc.user.filter(|u| !u.is_empty()),
    };
    Ok((config, diff_ids))
}
