//! The cache on disk (docs/images.md):
//!
//! ```text
//! <root>/lock                     flock: imports and leases shared, rm/prune exclusive
//! <root>/layers/<diffID hex>/     one unpacked layer, shared by every image using it
//! <root>/images/<digest hex>/     record.json, manifest.json, config.json; flocked by leases
//! <root>/tmp/                     work dirs, renamed into place when complete
//! ```
//!
//! Everything appears by `renameat2(RENAME_NOREPLACE)` of a complete tmp
//! dir, so a reader never sees half a layer; when two importers race, the
//! loser finds the name taken, drops its copy and uses the winner's.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, RenameFlags};
use serde::{Deserialize, Serialize};

use super::digest::{Compression, Digest, Hashing, ZstdFrames};
use super::layout::{LayerPlan, Plan};
use super::source::Source;
use super::{Image, ImageError, ImageSummary, docker, layout, unpack};

/// What `<root>/images/<hex>/record.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    digest: String,
    source: PathBuf,
    /// diffIDs, bottom first.
    layers: Vec<String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A work dir under `<root>/tmp`, removed on drop unless `keep`.
struct TmpDir {
    path: PathBuf,
    keep: bool,
}

impl TmpDir {
    fn new(root: &Path, what: &str) -> Result<TmpDir, ImageError> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = root
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()));
        mkdir(&path)?;
        Ok(TmpDir { path, keep: false })
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn mkdir(p: &Path) -> Result<(), ImageError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(ImageError::io("mkdir", p)(e))
        }
        _ => Ok(()),
    }
}

/// Creates the root (mode 0700: only root reads the layers) and its dirs.
pub fn create_dirs(root: &Path) -> Result<(), ImageError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(root)
        .map_err(ImageError::io("mkdir", root))?;
    for d in ["layers", "images", "tmp"] {
        mkdir(&root.join(d))?;
    }
    Ok(())
}

/// The store-wide lock: shared by imports and leases, exclusive for
/// rm/prune (which must not delete a layer an import is about to use).
fn store_lock(root: &Path, exclusive: bool) -> Result<Flock<File>, ImageError> {
    let p = root.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .map_err(ImageError::io("open", &p))?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(f, arg).map_err(|(_, e)| ImageError::io("lock", &p)(e.into()))
}

/// `renameat2(RENAME_NOREPLACE)`: `Ok(false)` when `to` already exists.
fn rename_noreplace(from: &Path, to: &Path) -> Result<bool, ImageError> {
    match nix::fcntl::renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EEXIST) | Err(Errno::ENOTEMPTY) => Ok(false),
        Err(e) => Err(ImageError::io("rename", to)(e.into())),
    }
}

/// Imports the image at `path` (the one `name` names, reference.rs; see
/// `ImageStore::import`).
pub fn import(root: &Path, path: &Path, name: Option<&str>) -> Result<Image, ImageError> {
    create_dirs(root)?;
    let src = Source::open(path, &root.join("tmp"))?;
    let plan = match &src {
        Source::Dir(_) => layout::plan(&src, name)?,
        Source::Tar(_) => docker::plan(&src, name)?,
    };
    let _lock = store_lock(root, false)?;
    // Every layer is verified and unpacked (into tmp) before any is
    // published: a failed import leaves nothing in the cache.
    let mut staged = Vec::new();
    let mut layers = Vec::new();
    for l in &plan.layers {
        let dest = root.join("layers").join(l.diff_id.hex());
        if !std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
            let tmp = TmpDir::new(root, "layer")?;
            // A layer whose tar has no `./` entry keeps this mode for its
            // root, which overlayfs shows as the container's `/`: 0755 as
            // the usual rootfs (inside the 0700 store, nobody else sees it).
            let perm = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(&tmp.path, perm)
                .map_err(ImageError::io("chmod", &tmp.path))?;
            unpack_verified(&src, l, &tmp.path)?;
            staged.push((tmp, dest.clone()));
        }
        layers.push(dest);
    }
    for (mut tmp, dest) in staged {
        // Another importer may have published the same layer meanwhile:
        // then its copy is used and this one dropped.
        if rename_noreplace(&tmp.path, &dest)? {
            tmp.keep = true;
        }
    }
    write_record(root, &plan, path, name)?;
    Ok(Image {
        digest: plan.digest.to_string(),
        layers,
        config: plan.config,
    })
}

fn write_record(
    root: &Path,
    plan: &Plan,
    source: &Path,
    name: Option<&str>,
) -> Result<(), ImageError> {
    let dest = root.join("images").join(plan.digest.hex());
    if dest.join("record.json").is_file() {
        return Ok(());
    }
    let tmp = TmpDir::new(root, "image")?;
    let record = Record {
        digest: plan.digest.to_string(),
        source: {
            let path = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
            match name {
                Some(n) => format!("{}:{n}", path.display()).into(),
                None => path,
            }
        },
        layers: plan
            .layers
            .iter()
            .map(|l| l.diff_id.hex().to_string())
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    for (name, bytes) in [
        ("manifest.json", &plan.manifest),
        ("config.json", &plan.config_bytes),
        ("record.json", &json),
    ] {
        let p = tmp.path.join(name);
        // A fresh file in our own fresh dir: O_EXCL|O_NOFOLLOW all the same.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(ImageError::io("write", &p))?;
    }
    rename_noreplace(&tmp.path, &dest)?;
    Ok(())
}

/// The compression a layer media type declares (image-spec
/// media-types.md, layer.md); `None` for the plain and generic ones,
/// whose blob is sniffed (Docker ≥ 25 labels its uncompressed layers
/// `…layer.v1.tar`; legacy `docker save` has no media type).
fn declared(media_type: &str) -> Result<Option<Compression>, String> {
    Ok(match media_type {
        ""
        | "application/octet-stream"
        | "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Compression::Zstd),
        other => return Err(format!("unsupported layer media type {other:?}")),
    })
}

/// Streams the blob once: sha256 of the compressed bytes, decompression,
/// sha256 of the tar (the diffID), unpacking; then checks both digests
/// (and the size). On any failure the caller's tmp dir is dropped.
fn unpack_verified(src: &Source, l: &LayerPlan, dir: &Path) -> Result<(), ImageError> {
    let path = src.path().to_path_buf();
    let layer = l.blob.as_ref().unwrap_or(&l.diff_id).to_string();
    let invalid = |why: String| ImageError::Invalid {
        path: path.clone(),
        what: "layer".into(),
        digest: layer.clone(),
        why,
    };
    let blob = src
        .reader(&l.name)?
        .ok_or_else(|| ImageError::MissingBlob {
            path: path.clone(),
            what: "layer".into(),
            digest: l.blob.as_ref().map_or(l.name.clone(), |d| d.to_string()),
        })?;
    let mut compressed = BufReader::with_capacity(256 << 10, Hashing::new(blob));
    let comp = Compression::sniff(&mut compressed).map_err(ImageError::io("read", &path))?;
    match declared(&l.media_type).map_err(&invalid)? {
        Some(d) if d != comp => {
            return Err(invalid(format!(
                "its media type says {}, its bytes are {}",
                d.name(),
                comp.name()
            )));
        }
        _ => {}
    }
    let decomp_err = |source| ImageError::Decompress {
        path: path.clone(),
        layer: layer.clone(),
        format: comp.name(),
        source,
    };
    let noted = std::cell::RefCell::new(None);
    let outcome = {
        let decoder: Box<dyn Read + '_> = match comp {
            Compression::None => Box::new(&mut compressed),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut compressed)),
            Compression::Zstd => Box::new(ZstdFrames::new(&mut compressed).map_err(decomp_err)?),
        };
        let mut diff = Hashing::new(Noting {
            inner: decoder,
            noted: &noted,
        });
        match unpack::unpack(&mut diff, dir, &layer) {
            Ok(()) => diff.finish().map_err(decomp_err),
            // The tar reader failed because the decompressor did (now, or
            // at its end: a gzip CRC): say so.
            Err(e) => {
                let _ = std::io::copy(&mut diff, &mut std::io::sink());
                let noted = noted.borrow_mut().take();
                Err(noted.map_or(e, decomp_err))
            }
        }
    };
    // Whatever happened, a blob that is not what the manifest names is the
    // first thing to report (a corrupt or altered blob fails to unpack too).
    let (blob_digest, blob_size) = compressed
        .into_inner()
        .finish()
        .map_err(ImageError::io("read", &path))?;
    let mismatch = |what, expected: String, actual: String| ImageError::Mismatch {
        path: path.clone(),
        layer: layer.clone(),
        what,
        expected,
        actual,
    };
    if let Some(want) = l.blob.as_ref().filter(|w| **w != blob_digest) {
        return Err(mismatch(
            "blob digest",
            want.to_string(),
            blob_digest.to_string(),
        ));
    }
    if let Some(size) = l.size.filter(|s| *s != blob_size) {
        return Err(mismatch("size", size.to_string(), blob_size.to_string()));
    }
    let (diff_id, _) = outcome?;
    if diff_id != l.diff_id {
        return Err(mismatch(
            "diffID",
            l.diff_id.to_string(),
            diff_id.to_string(),
        ));
    }
    Ok(())
}

/// A reader that keeps (a copy of) the first error of the reader it wraps.
struct Noting<'a, R> {
    inner: R,
    noted: &'a std::cell::RefCell<Option<std::io::Error>>,
}

impl<R: Read> Read for Noting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let mut n = self.noted.borrow_mut();
            if n.is_none() {
                *n = Some(std::io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

fn read_record(root: &Path, hex: &str) -> Result<Record, ImageError> {
    let p = root.join("images").join(hex).join("record.json");
    let bytes = std::fs::read(&p).map_err(ImageError::io("read", &p))?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        path: p,
        what: "image record".into(),
        source,
    })
}

/// The hex names of the records in the store.
fn record_names(root: &Path) -> Result<Vec<String>, ImageError> {
    let dir = root.join("images");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(ImageError::io("read dir", &dir))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| Digest::from_hex(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Opens an image record dir (for its flock).
fn open_record(root: &Path, hex: &str) -> std::io::Result<File> {
    File::open(root.join("images").join(hex))
}

/// Whether a lease is held on the record (a non-blocking exclusive flock
/// fails), and the lock when it is not.
fn try_exclusive(root: &Path, hex: &str) -> Result<Option<Flock<File>>, ImageError> {
    let p = root.join("images").join(hex);
    let f = open_record(root, hex).map_err(ImageError::io("open", &p))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(ImageError::io("lock", &p)(e.into())),
    }
}

/// Bytes of the regular files under `dir` (symlinks not followed).
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

pub fn list(root: &Path) -> Result<Vec<ImageSummary>, ImageError> {
    create_dirs(root)?;
    // Shared: no rm/prune moves a record away while it is looked at.
    let _lock = store_lock(root, false)?;
    let mut out = Vec::new();
    for hex in record_names(root)? {
        let Ok(rec) = read_record(root, &hex) else {
            continue;
        };
        let in_use = try_exclusive(root, &hex)?.is_none();
        let size_bytes = rec
            .layers
            .iter()
            .map(|l| du(&root.join("layers").join(l)))
            .sum();
        out.push(ImageSummary {
            digest: rec.digest,
            source: rec.source,
            size_bytes,
            in_use,
        });
    }
    Ok(out)
}

/// The one record whose hex starts with `prefix` (`sha256:` optional).
fn find(root: &Path, prefix: &str) -> Result<String, ImageError> {
    let p = prefix.strip_prefix("sha256:").unwrap_or(prefix);
    let hits: Vec<String> = record_names(root)?
        .into_iter()
        .filter(|n| !p.is_empty() && n.starts_with(p))
        .collect();
    match hits.len() {
        1 => Ok(hits.into_iter().next().unwrap_or_default()),
        0 => Err(ImageError::NotFound {
            digest: prefix.into(),
            root: root.into(),
        }),
        count => Err(ImageError::Ambiguous {
            digest: prefix.into(),
            root: root.into(),
            count,
        }),
    }
}

/// Moves `p` into tmp (it disappears at once) and deletes it.
fn delete(root: &Path, p: &Path) -> Result<(), ImageError> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let gone = root
        .join("tmp")
        .join(format!("rm-{}-{n}", std::process::id()));
    std::fs::rename(p, &gone).map_err(ImageError::io("rename", p))?;
    std::fs::remove_dir_all(&gone).map_err(ImageError::io("remove", &gone))
}

/// Removes one record unless leased (`InUse`). Store lock held (EX).
fn remove_record(root: &Path, hex: &str) -> Result<(), ImageError> {
    let Some(_lock) = try_exclusive(root, hex)? else {
        return Err(ImageError::InUse {
            digest: format!("sha256:{hex}"),
        });
    };
    delete(root, &root.join("images").join(hex))
}

/// Removes the layers no record names; returns their bytes. Store lock
/// held (EX): no import is between unpacking a layer and recording it.
fn gc_layers(root: &Path) -> Result<u64, ImageError> {
    let mut used = std::collections::HashSet::new();
    for hex in record_names(root)? {
        used.extend(read_record(root, &hex)?.layers);
    }
    let dir = root.join("layers");
    let mut freed = 0;
    for e in std::fs::read_dir(&dir).map_err(ImageError::io("read dir", &dir))? {
        let e = e.map_err(ImageError::io("read dir", &dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !used.contains(&name) {
            freed += du(&e.path());
            delete(root, &e.path())?;
        }
    }
    Ok(freed)
}

pub fn remove(root: &Path, prefix: &str) -> Result<u64, ImageError> {
    create_dirs(root)?;
    let _lock = store_lock(root, true)?;
    let hex = find(root, prefix)?;
    remove_record(root, &hex)?;
    gc_layers(root)
}

pub fn prune(root: &Path) -> Result<u64, ImageError> {
    create_dirs(root)?;
    let _lock = store_lock(root, true)?;
    for hex in record_names(root)? {
        match remove_record(root, &hex) {
            Ok(()) | Err(ImageError::InUse { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // What an import killed mid-way left (imports hold the lock shared,
    // so none is running now).
    let tmp = root.join("tmp");
    for e in std::fs::read_dir(&tmp).map_err(ImageError::io("read dir", &tmp))? {
        let p = e.map_err(ImageError::io("read dir", &tmp))?.path();
        std::fs::remove_dir_all(&p).map_err(ImageError::io("remove", &p))?;
    }
    gc_layers(root)
}

/// A shared flock on the image's record (see `Image::lease`).
pub fn lease(image: &Image) -> Result<Flock<File>, ImageError> {
    let digest = Digest::parse(&image.digest).map_err(|why| ImageError::BadDigest {
        path: PathBuf::new(),
        what: "image".into(),
        digest: image.digest.clone(),
        why,
    })?;
    let root = image.store_root().ok_or_else(|| ImageError::Gone {
        digest: image.digest.clone(),
        root: PathBuf::new(),
    })?;
    // Shared store lock while taking the lease: no rm/prune in between.
    let _lock = store_lock(root, false)?;
    let p = root.join("images").join(digest.hex());
    let f = match open_record(root, digest.hex()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::Gone {
                digest: image.digest.clone(),
                root: root.into(),
            });
        }
        Err(e) => return Err(ImageError::io("open", &p)(e)),
    };
    Flock::lock(f, FlockArg::LockShared).map_err(|(_, e)| ImageError::io("lock", &p)(e.into()))
}
