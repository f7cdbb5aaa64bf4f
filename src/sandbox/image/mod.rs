//! The image cache (issue 12, item 3): OCI image layouts and `docker save`
//! tarballs imported once into a content-addressed store, layers unpacked by
//! digest, concurrent-safe. docs/images.md describes the store.
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
//!
//! Files: `digest` (digests, hashing readers), `source` (an image layout
//! dir or a tarball, read blob by blob), `layout` (index.json → manifest →
//! config + layers), `docker` (a `docker save` manifest.json), `reference`
//! (`PATH:NAME`: which image of several), `unpack`
//! (one layer tar → one dir, whiteouts as overlayfs wants them), `store`
//! (the cache dirs, locks, ls/rm/prune), `user` (the config's User).

mod digest;
mod docker;
mod layout;
pub mod reference;
mod source;
mod store;
mod unpack;
mod user;

use std::path::{Path, PathBuf};

pub use digest::Digest;

/// Errors of the image cache: each names the operation, the path or the
/// digest, and why.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an image: {why}")]
    NotAnImage { path: PathBuf, why: String },
    #[error("{path}: {what}: {source}")]
    Json {
        path: PathBuf,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {what}: bad digest {digest:?}: {why}")]
    BadDigest {
        path: PathBuf,
        what: String,
        digest: String,
        why: String,
    },
    #[error("{path}: blob {digest} ({what}) is missing")]
    MissingBlob {
        path: PathBuf,
        what: String,
        digest: String,
    },
    #[error("{path}: {what} {digest}: {why}")]
    Invalid {
        path: PathBuf,
        what: String,
        digest: String,
        why: String,
    },
    #[error("{path}: layer {layer}: {what} mismatch: expected {expected}, got {actual}")]
    Mismatch {
        path: PathBuf,
        layer: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{path}: cannot decompress the tarball ({format}): {source}")]
    DecompressTarball {
        path: PathBuf,
        format: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: layer {layer}: cannot decompress ({format}): {source}")]
    Decompress {
        path: PathBuf,
        layer: String,
        format: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: entry {entry:?}: {why}")]
    Refused {
        layer: String,
        entry: PathBuf,
        why: String,
    },
    #[error("layer {layer}: entry {entry:?}: {op}: {source}")]
    Unpack {
        layer: String,
        entry: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: not a valid tar: {source}")]
    Tar {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("image {digest}: in use (a sandbox holds a lease on it); not removed")]
    InUse { digest: String },
    #[error("image {digest:?}: not in the cache {root}")]
    NotFound { digest: String, root: PathBuf },
    #[error("image {digest:?}: ambiguous in the cache {root}: {count} images start so")]
    Ambiguous {
        digest: String,
        root: PathBuf,
        count: usize,
    },
    #[error("image {digest}: was removed from the cache {root}; import it again")]
    Gone { digest: String, root: PathBuf },
    #[error("image {digest}: user {user:?}: {why}")]
    User {
        digest: String,
        user: String,
        why: String,
    },
}

impl ImageError {
    /// A closure mapping an io::Error to `Io { op, path }`.
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| ImageError::Io { op, path, source }
    }
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
/// The layer dirs live in `<store>/layers/<diffID hex>/`; the store they
/// belong to is found from them (an image has at least one layer).
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: String,
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// A shared lock on an image held while a sandbox uses its layers: `remove`
/// refuses and `prune` skips the image while one is alive. Dropping it
/// releases the lock (so does the death of the process holding it).
#[derive(Debug)]
pub struct Lease {
    _lock: nix::fcntl::Flock<std::fs::File>,
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

    /// Opens (creating, mode 0700) the cache at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ImageError> {
        let root = root.as_ref().to_path_buf();
        store::create_dirs(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports an OCI image layout directory or a `docker save` tarball:
    /// each layer is verified (blob digest and diffID) and unpacked once;
    /// a second import of the same image only reads its manifest.
    ///
    /// A layout or tarball holding several images is refused unless
    /// `path` is `PATH:NAME` (a path that does not exist split at the first
    /// `:` whose left part does, as skopeo's `oci:PATH:NAME`), NAME
    /// matching an index entry's `org.opencontainers.image.ref.name` or
    /// `io.containerd.image.name`, or a legacy tarball's `RepoTags`
    /// ([`reference`]). [`ImageStore::import_named`] takes the name apart.
    pub fn import(&self, path: impl AsRef<Path>) -> Result<Image, ImageError> {
        let (path, name) = reference::split(path.as_ref());
        store::import(&self.root, &path, name.as_deref())
    }

    /// Imports the image `name` names in the layout or tarball at `path`
    /// (the `path` taken as it is: for paths with colons).
    pub fn import_named(&self, path: impl AsRef<Path>, name: &str) -> Result<Image, ImageError> {
        store::import(&self.root, path.as_ref(), Some(name))
    }

    /// The cached images, with their size and whether a lease is held.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        store::list(&self.root)
    }

    /// Removes one image (digest or unique prefix, with or without
    /// `sha256:`) and its layers that no other image uses; refused while
    /// leased.
    pub fn remove(&self, digest: &str) -> Result<(), ImageError> {
        store::remove(&self.root, digest).map(drop)
    }

    /// Removes every image and layer without a live lease, and what an
    /// interrupted import left; returns bytes freed.
    pub fn prune(&self) -> Result<u64, ImageError> {
        store::prune(&self.root)
    }
}

impl Image {
    /// Takes a shared lock on the image's record in the store. Fails with
    /// `Gone` when the image was removed since it was imported.
    pub fn lease(&self) -> Result<Lease, ImageError> {
        let lock = store::lease(self)?;
        Ok(Lease { _lock: lock })
    }

    /// The config's `User` as numeric ids, names looked up in the image's
    /// /etc/passwd and /etc/group; `None` when the config has no user.
    pub fn resolve_user(&self) -> Result<Option<(u32, u32)>, ImageError> {
        user::resolve(self)
    }

    /// The overlayfs `lowerdir=` value: the layer dirs top first, joined
    /// by `:`, with `\`, `:` and `,` escaped by a backslash (overlayfs
    /// unescapes them: Documentation/filesystems/overlayfs.rst).
    pub fn lowerdir(&self) -> String {
        let esc = |p: &PathBuf| {
            let mut out = String::new();
            for c in p.to_string_lossy().chars() {
                if matches!(c, '\\' | ':' | ',') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        };
        let dirs: Vec<String> = self.layers.iter().rev().map(esc).collect();
        dirs.join(":")
    }

    /// The store root this image's layers live in (`<root>/layers/<hex>`).
    pub(crate) fn store_root(&self) -> Option<&Path> {
        self.layers.first()?.parent()?.parent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_is_top_first_and_escaped() {
        let img = Image {
            digest: String::new(),
            layers: vec!["/c/layers/a".into(), "/c:x/layers/b,c".into()],
            config: ImageConfig::default(),
        };
        assert_eq!(img.lowerdir(), "/c\\:x/layers/b\\,c:/c/layers/a");
        assert_eq!(img.store_root(), Some(Path::new("/c")));
    }
}
