//! The image cache (issue 12, item 3): OCI image layouts and `docker save`
//! tarballs imported once into a content-addressed store, layers unpacked by
//! digest, concurrent-safe.
//!
//! INTERFACE CONTRACT between the sandbox and image work (do not change the
//! signatures without telling the coordinator; adding is fine):
//!
//! - `ImageStore::open(root)` / `ImageStore::default_root()`
//! - `ImageStore::import(path) -> Image` (idempotent, concurrent-safe)
//! - `Image { digest, layers (unpacked dirs, BOTTOM first), config }`
//! - `Image::lease() -> Lease` (a shared flock held while a sandbox uses the
//!   image: `prune`/`remove` skip or refuse images with a live lease)
//! - `Image::resolve_user(&self) -> Result<Option<(u32, u32)>, ImageError>`
//! - `ImageStore::list / remove / prune`

use std::path::{Path, PathBuf};

/// Errors of the image cache: each names the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Placeholder until the cache is implemented (replaced by the image work).
    #[error("{op} {path}: the image cache is not built yet")]
    NotBuilt { op: &'static str, path: PathBuf },
}

/// The image config's defaults (OCI image-spec config.md: `config.Env`,
/// `Entrypoint`, `Cmd`, `WorkingDir`, `User`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// An imported image: its manifest digest, its unpacked layer directories
/// (bottom first: overlayfs wants them reversed in `lowerdir`) and config.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: String,
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// A shared lock on an image held while a sandbox uses its layers.
#[derive(Debug)]
pub struct Lease {
    _private: (),
}

/// One row of `cuddy image ls`.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub digest: String,
    pub source: PathBuf,
    pub size_bytes: u64,
    pub in_use: bool,
}

/// The content-addressed cache rooted at one directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// `$CUDDY_IMAGE_CACHE`, else `/var/lib/cuddy/images`.
    pub fn default_root() -> PathBuf {
        std::env::var_os("CUDDY_IMAGE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/lib/cuddy/images"))
    }

    pub fn open(root: impl AsRef<Path>) -> Result<Self, ImageError> {
        Ok(Self {
            root: root.as_ref().to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports an OCI image layout directory or a `docker save` tarball.
    pub fn import(&self, path: impl AsRef<Path>) -> Result<Image, ImageError> {
        Err(ImageError::NotBuilt {
            op: "import",
            path: path.as_ref().to_path_buf(),
        })
    }

    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        Err(ImageError::NotBuilt {
            op: "list",
            path: self.root.clone(),
        })
    }

    /// Removes one image (digest or unique prefix); refused while leased.
    pub fn remove(&self, digest: &str) -> Result<(), ImageError> {
        Err(ImageError::NotBuilt {
            op: "remove",
            path: self.root.join(digest),
        })
    }

    /// Removes every image and layer without a live lease; returns bytes freed.
    pub fn prune(&self) -> Result<u64, ImageError> {
        Err(ImageError::NotBuilt {
            op: "prune",
            path: self.root.clone(),
        })
    }
}

impl Image {
    pub fn lease(&self) -> Result<Lease, ImageError> {
        Ok(Lease { _private: () })
    }

    /// The config's `User` as numeric ids, names looked up in the image's
    /// /etc/passwd and /etc/group; `None` when the config has no user.
    pub fn resolve_user(&self) -> Result<Option<(u32, u32)>, ImageError> {
        Ok(None)
    }
}
