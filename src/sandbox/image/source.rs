//! Where an image is read from: an OCI image layout directory, or a tarball
//! (`docker save`, or an image layout packed in a tar) read in place: its
//! headers are indexed once (seeking over the data) and each blob is then
//! read straight from its offset, so nothing is extracted twice. A gzip or
//! zstd compressed tarball (`docker save IMAGE | gzip`) is decompressed
//! once into an unnamed file (`O_TMPFILE`) first: a tar is indexed by
//! seeking, which a compressed stream cannot do.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::ImageError;
use super::digest::{Compression, Digest, ZstdFrames};

/// Metadata files (index, manifests, configs) larger than this are refused
/// (registries refuse manifests over 4 MiB; configs are kilobytes).
const SMALL_LIMIT: u64 = 16 << 20;

/// An image source, read by archive-relative names.
pub enum Source {
    Dir(PathBuf),
    Tar(TarIndex),
}

/// The regular files of a tarball (offset and size of their data) and its
/// links, by normalised name.
pub struct TarIndex {
    path: PathBuf,
    /// The tarball, opened once (a decompressed one has no name at all);
    /// blobs are read with pread, so readers never share a file offset.
    file: Arc<File>,
    files: HashMap<String, (u64, u64)>,
    links: HashMap<String, String>,
}

/// Bytes `pos..end` of a file, read with pread (`FileExt::read_at`).
struct Slice {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// `a/./b/../c` → `a/c`; `None` when it leaves the top (`..` past it).
fn normalize(p: &Path) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_str()?),
            Component::ParentDir => {
                out.pop()?;
            }
            _ => {}
        }
    }
    Some(out.join("/"))
}

impl Source {
    /// Opens a layout directory or indexes a tarball; a compressed tarball
    /// is decompressed into an unnamed file in `scratch` (same filesystem
    /// as the cache, not a tmpfs), which goes with the source.
    pub fn open(path: &Path, scratch: &Path) -> Result<Source, ImageError> {
        let meta = std::fs::metadata(path).map_err(ImageError::io("open image", path))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let f = File::open(path).map_err(ImageError::io("open image", path))?;
        let mut head = BufReader::new(f);
        let f = match Compression::sniff(&mut head).map_err(ImageError::io("read", path))? {
            Compression::None => {
                // The sniffing read ahead: the index starts from the beginning.
                let mut f = head.into_inner();
                f.seek(SeekFrom::Start(0))
                    .map_err(ImageError::io("seek", path))?;
                f
            }
            c => decompress(path, head, c, scratch)?,
        };
        Ok(Source::Tar(TarIndex::build(path, f)?))
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) => p,
            Source::Tar(t) => &t.path,
        }
    }

    /// Whether `name` exists (following the tarball's links).
    pub fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => safe_rel(name).is_some_and(|r| d.join(r).is_file()),
            Source::Tar(t) => t.resolve(name).is_some(),
        }
    }

    /// A reader of `name`, or `None` when it does not exist.
    pub fn reader(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>, ImageError> {
        match self {
            Source::Dir(d) => {
                let Some(rel) = safe_rel(name) else {
                    return Ok(None);
                };
                let p = d.join(rel);
                match File::open(&p) {
                    Ok(f) => Ok(Some(Box::new(f))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(ImageError::io("open", &p)(e)),
                }
            }
            Source::Tar(t) => {
                let Some((off, size)) = t.resolve(name) else {
                    return Ok(None);
                };
                Ok(Some(Box::new(Slice {
                    file: Arc::clone(&t.file),
                    pos: off,
                    end: off + size,
                })))
            }
        }
    }

    /// The bytes of a small metadata file, or `None` when it is missing.
    pub fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>, ImageError> {
        let Some(r) = self.reader(name)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        let shown = self.path().join(name);
        r.take(SMALL_LIMIT + 1)
            .read_to_end(&mut buf)
            .map_err(ImageError::io("read", &shown))?;
        if buf.len() as u64 > SMALL_LIMIT {
            return Err(ImageError::NotAnImage {
                path: shown,
                why: format!("larger than {SMALL_LIMIT} bytes"),
            });
        }
        Ok(Some(buf))
    }

    /// The name of a blob in an image layout (image-layout.md#blobs).
    pub fn blob_name(d: &Digest) -> String {
        format!("blobs/sha256/{}", d.hex())
    }
}

/// The whole of a compressed tarball, decompressed into an unnamed file
/// (`O_TMPFILE`: no name to clean up, nothing left if cuddy is killed) in
/// `scratch`, positioned at its start.
fn decompress(
    path: &Path,
    input: BufReader<File>,
    c: Compression,
    scratch: &Path,
) -> Result<File, ImageError> {
    let fd = nix::fcntl::open(
        scratch,
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| ImageError::io("create an unnamed file (O_TMPFILE) in", scratch)(e.into()))?;
    let mut out = File::from(fd);
    let err = |source| ImageError::DecompressTarball {
        path: path.to_path_buf(),
        format: c.name(),
        source,
    };
    let mut r: Box<dyn Read> = match c {
        Compression::Zstd => Box::new(ZstdFrames::new(input).map_err(err)?),
        // (None is not passed here.)
        Compression::Gzip | Compression::None => {
            Box::new(flate2::bufread::MultiGzDecoder::new(input))
        }
    };
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(ImageError::io("write the decompressed tarball in", scratch))?;
    }
    out.seek(SeekFrom::Start(0))
        .map_err(ImageError::io("seek", scratch))?;
    Ok(out)
}

/// A relative name without `..` (what cuddy reads in a layout dir).
fn safe_rel(name: &str) -> Option<&Path> {
    let p = Path::new(name);
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then_some(p)
}

impl TarIndex {
    fn build(path: &Path, f: File) -> Result<TarIndex, ImageError> {
        let not_tar = |e: std::io::Error| ImageError::NotAnImage {
            path: path.into(),
            why: format!("not a tar archive ({e})"),
        };
        let mut ar = tar::Archive::new(&f);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for entry in ar.entries_with_seek().map_err(not_tar)? {
            let entry = entry.map_err(not_tar)?;
            let Some(name) = entry.path().ok().and_then(|p| normalize(&p)) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let size = entry.header().size().map_err(not_tar)?;
                files.insert(name, (entry.raw_file_position(), size));
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Ok(Some(target)) = entry.link_name() else {
                    continue;
                };
                // A symlink is relative to its directory; a hard link names
                // another member of the archive.
                let full = if kind.is_symlink() {
                    Path::new(&name)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(&target)
                } else {
                    target.into_owned()
                };
                if let Some(t) = normalize(&full) {
                    links.insert(name, t);
                }
            }
        }
        Ok(TarIndex {
            path: path.into(),
            file: Arc::new(f),
            files,
            links,
        })
    }

    /// Offset and size of `name`'s data, following links (bounded).
    fn resolve(&self, name: &str) -> Option<(u64, u64)> {
        let mut cur = normalize(Path::new(name))?;
        for _ in 0..16 {
            if let Some(&f) = self.files.get(&cur) {
                return Some(f);
            }
            cur = self.links.get(&cur)?.clone();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_confined() {
        assert_eq!(normalize(Path::new("./a/./b/../c")).unwrap(), "a/c");
        assert_eq!(normalize(Path::new("/blobs/x")).unwrap(), "blobs/x");
        assert!(normalize(Path::new("../x")).is_none());
        assert!(safe_rel("../x").is_none());
        assert!(safe_rel("blobs/sha256/ab").is_some());
    }
}
