//! One layer tar → one directory, as overlayfs stacks it (image-spec
//! layer.md). The tar is hostile input: every entry is created relative to
//! a directory fd reached one component at a time with
//! O_NOFOLLOW|O_DIRECTORY, so a symlink the layer made is never followed
//! (an entry under one is refused), `..` is refused, and ownership, modes
//! and times are set on fds or with AT_SYMLINK_NOFOLLOW.
//!
//! Whiteouts (layer.md#whiteouts) become what overlayfs reads in a lower
//! layer, as containerd's overlay snapshotter applier does
//! (containerd/archive/tar_opts_linux.go `OverlayConvertWhiteout`):
//! `.wh.NAME` → a char device 0:0 named NAME; `.wh..wh..opq` → the xattr
//! `trusted.overlay.opaque=y` on its directory. Nothing of the layer itself
//! is deleted: a whiteout hides lower layers only (layer.md: "Files that
//! are present in the same layer as a whiteout file can only be hidden by
//! whiteout files in subsequent layers"), so the opaque marker may come
//! after its siblings.

use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mkdirat, mknodat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use super::ImageError;

/// The overlayfs opaque-directory xattr (Documentation/filesystems/overlayfs.rst).
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WH_PREFIX: &str = ".wh.";
const WH_OPAQUE: &str = ".wh..wh..opq";

/// Extended attributes taken from a layer (PAX `SCHILY.xattr.NAME`): file
/// capabilities and POSIX ACLs, and `user.*`. Everything else is skipped:
/// `trusted.*` would let a layer forge overlayfs metadata (opaque, redirect,
/// metacopy) and `security.selinux` labels are the host's business.
fn xattr_allowed(name: &str) -> bool {
    name.starts_with("user.")
        || matches!(
            name,
            "security.capability" | "system.posix_acl_access" | "system.posix_acl_default"
        )
}

/// Unpacks the tar read from `r` into the (empty) directory `dir`.
pub fn unpack(r: impl Read, dir: &Path, layer: &str) -> Result<(), ImageError> {
    let root = open_dir_fd(dir).map_err(ImageError::io("open", dir))?;
    let mut u = Unpacker {
        root,
        layer,
        dirs: Vec::new(),
    };
    let mut ar = tar::Archive::new(r);
    let entries = ar
        .entries()
        .map_err(|e| u.err(Path::new(""), "read tar", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| u.err(Path::new(""), "read tar", e))?;
        u.entry(&mut entry)?;
    }
    // Directory times last, deepest first: creating entries inside a
    // directory changes its mtime.
    for (comps, shown, mtime) in std::mem::take(&mut u.dirs).into_iter().rev() {
        let fd = u.walk(&comps, &shown, false)?;
        let t = TimeSpec::new(mtime, 0);
        nix::sys::stat::futimens(&fd, &t, &t).map_err(|e| u.err(&shown, "set times", e.into()))?;
    }
    Ok(())
}

fn open_dir_fd(dir: &Path) -> io::Result<OwnedFd> {
    let f = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(nix::fcntl::open(dir, f, Mode::empty())?)
}

/// Ownership, mode, time and xattrs of one entry.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    /// Directories whose mtime is set at the end.
    dirs: Vec<(Vec<OsString>, PathBuf, i64)>,
}

/// The components of an entry's path: `./a/b` → [a, b]; `/a` → [a]
/// (a leading `/` is relative to the layer, as tar strips it); `..`
/// anywhere is refused.
fn clean(p: &Path) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::ParentDir => {
                return Err("`..` in a layer path (it would leave the layer)".into());
            }
            _ => {}
        }
    }
    Ok(out)
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

impl Unpacker<'_> {
    fn err(&self, entry: &Path, op: &'static str, source: io::Error) -> ImageError {
        ImageError::Unpack {
            layer: self.layer.into(),
            entry: entry.into(),
            op,
            source,
        }
    }

    fn refuse(&self, entry: &Path, why: impl Into<String>) -> ImageError {
        ImageError::Refused {
            layer: self.layer.into(),
            entry: entry.into(),
            why: why.into(),
        }
    }

    /// Opens the directory `comps` of the layer one component at a time
    /// with O_NOFOLLOW|O_DIRECTORY (creating missing ones, 0755, when
    /// `create`): a symlink or non-directory on the way is refused.
    fn walk(&self, comps: &[OsString], shown: &Path, create: bool) -> Result<OwnedFd, ImageError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut cur = openat(&self.root, ".", flags, Mode::empty())
            .map_err(|e| self.err(shown, "open layer dir", e.into()))?;
        for c in comps {
            let next = match openat(&cur, c.as_os_str(), flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&cur, c.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(self.err(shown, "mkdir", e.into())),
                    }
                    openat(&cur, c.as_os_str(), flags, Mode::empty())
                }
                r => r,
            };
            cur = match next {
                Ok(fd) => fd,
                Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                    return Err(self.refuse(
                        shown,
                        format!(
                            "its parent {:?} is a symlink or not a directory (cuddy never \
                             follows a link a layer made)",
                            c
                        ),
                    ));
                }
                Err(Errno::ENOENT) => {
                    return Err(self.refuse(shown, format!("{c:?} is not in the layer")));
                }
                Err(e) => return Err(self.err(shown, "open parent", e.into())),
            };
        }
        Ok(cur)
    }

    fn meta(&self, e: &mut tar::Entry<impl Read>, shown: &Path) -> Result<Meta, ImageError> {
        let h = e.header();
        let io_err = |err: io::Error| self.err(shown, "read header", err);
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| self.refuse(shown, format!("{what} {v} out of range")))
        };
        let mut m = Meta {
            uid: id(h.uid().map_err(io_err)?, "uid")?,
            gid: id(h.gid().map_err(io_err)?, "gid")?,
            mode: h.mode().map_err(io_err)? & 0o7777,
            mtime: i64::try_from(h.mtime().map_err(io_err)?).unwrap_or(0),
            xattrs: Vec::new(),
        };
        let Some(exts) = e.pax_extensions().map_err(io_err)? else {
            return Ok(m);
        };
        for ext in exts {
            let ext = ext.map_err(io_err)?;
            let Ok(key) = ext.key() else { continue };
            let num = || {
                ext.value()
                    .ok()
                    .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
            };
            match key {
                "uid" => m.uid = num().and_then(|v| u32::try_from(v).ok()).unwrap_or(m.uid),
                "gid" => m.gid = num().and_then(|v| u32::try_from(v).ok()).unwrap_or(m.gid),
                "mtime" => m.mtime = num().map(|v| v as i64).unwrap_or(m.mtime),
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        if xattr_allowed(name) {
                            m.xattrs.push((name.into(), ext.value_bytes().to_vec()));
                        } else {
                            tracing::debug!(
                                layer = self.layer,
                                "skipped xattr {name} on {shown:?}"
                            );
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    fn entry(&mut self, e: &mut tar::Entry<impl Read>) -> Result<(), ImageError> {
        let path = e
            .path()
            .map_err(|err| self.err(Path::new("?"), "read name", err))?
            .into_owned();
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
            return Ok(());
        }
        let mut comps = clean(&path).map_err(|why| self.refuse(&path, why))?;
        let meta = self.meta(e, &path)?;
        let Some(name) = comps.pop() else {
            // The layer's root itself (`./`).
            if !kind.is_dir() {
                return Err(self.refuse(&path, "the layer root must be a directory"));
            }
            let fd = self.walk(&[], &path, false)?;
            self.set_meta(&fd, &meta, &path)?;
            self.dirs.push((Vec::new(), path, meta.mtime));
            return Ok(());
        };
        let parent = self.walk(&comps, &path, true)?;
        if let Some(target) = name.to_str().and_then(|n| n.strip_prefix(WH_PREFIX)) {
            return self.whiteout(&parent, target, &path);
        }
        if kind.is_dir() {
            self.dir(&parent, &name, &meta, &path)?;
            comps.push(name);
            self.dirs.push((comps, path, meta.mtime));
            return Ok(());
        }
        self.replace(&parent, &name, &path)?;
        if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            self.file(e, &parent, &name, &meta, &path)
        } else if kind.is_symlink() {
            self.symlink(e, &parent, &name, &meta, &path)
        } else if kind.is_hard_link() {
            self.hard_link(e, &parent, &name, &path)
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            self.node(e, &parent, &name, &meta, &path)
        } else {
            Err(self.refuse(&path, format!("unsupported tar entry type {:?}", kind)))
        }
    }

    /// layer.md#whiteouts: `.wh..wh..opq` marks its directory opaque;
    /// `.wh.NAME` hides NAME of the layers below. Other `.wh..wh.` names
    /// are aufs bookkeeping and are skipped.
    fn whiteout(&self, parent: &OwnedFd, target: &str, shown: &Path) -> Result<(), ImageError> {
        if format!("{WH_PREFIX}{target}") == WH_OPAQUE {
            return set_xattr(parent, OPAQUE_XATTR, b"y")
                .map_err(|e| self.err(shown, "set trusted.overlay.opaque", e));
        }
        if target.starts_with(WH_PREFIX) {
            return Ok(());
        }
        if target.is_empty() || target == "." || target == ".." || target.contains('/') {
            return Err(self.refuse(shown, "a whiteout must name an entry of its directory"));
        }
        // The overlayfs whiteout: a character device with device number 0/0.
        match mknodat(parent, target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)) {
            // The same layer has the entry: it stays (whiteouts hide lower layers).
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(self.err(shown, "mknod whiteout", e.into())),
        }
    }

    /// A later entry of the same name replaces an earlier one (tar
    /// semantics); a directory is never replaced by a non-directory.
    fn replace(&self, parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<(), ImageError> {
        match nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => Err(self.refuse(shown, "replaces a directory of the same layer")),
            Err(e) => Err(self.err(shown, "unlink", e.into())),
        }
    }

    fn dir(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        m: &Meta,
        shown: &Path,
    ) -> Result<(), ImageError> {
        match mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(self.err(shown, "mkdir", e.into())),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                return Err(self.refuse(shown, "a non-directory of the same layer is in the way"));
            }
            Err(e) => return Err(self.err(shown, "open dir", e.into())),
        };
        self.set_meta(&fd, m, shown)
    }

    /// chown (first: it clears set-id bits and file capabilities), chmod,
    /// xattrs, on an fd.
    fn set_meta(&self, fd: &OwnedFd, m: &Meta, shown: &Path) -> Result<(), ImageError> {
        nix::unistd::fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)))
            .map_err(|e| self.err(shown, "chown", e.into()))?;
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(m.mode))
            .map_err(|e| self.err(shown, "chmod", e.into()))?;
        for (k, v) in &m.xattrs {
            match set_xattr(fd, k, v) {
                // A store filesystem without that namespace (user.* on
                // tmpfs before Linux 6.6): skipped, as containerd does.
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    tracing::warn!(
                        layer = self.layer,
                        "xattr {k} on {shown:?} not supported here"
                    );
                }
                r => r.map_err(|e| self.err(shown, "set xattr", e))?,
            }
        }
        Ok(())
    }

    fn file(
        &self,
        e: &mut tar::Entry<impl Read>,
        parent: &OwnedFd,
        name: &OsStr,
        m: &Meta,
        shown: &Path,
    ) -> Result<(), ImageError> {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        let fd = openat(parent, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|err| self.err(shown, "create", err.into()))?;
        let mut f = std::fs::File::from(fd);
        io::copy(e, &mut f).map_err(|err| self.err(shown, "write", err))?;
        let fd = OwnedFd::from(f);
        self.set_meta(&fd, m, shown)?;
        let t = TimeSpec::new(m.mtime, 0);
        nix::sys::stat::futimens(&fd, &t, &t)
            .map_err(|err| self.err(shown, "set times", err.into()))
    }

    fn symlink(
        &self,
        e: &mut tar::Entry<impl Read>,
        parent: &OwnedFd,
        name: &OsStr,
        m: &Meta,
        shown: &Path,
    ) -> Result<(), ImageError> {
        // The target is stored as it is and never followed here.
        let target = e
            .link_name()
            .map_err(|err| self.err(shown, "read link name", err))?
            .ok_or_else(|| self.refuse(shown, "a symlink without a target"))?;
        nix::unistd::symlinkat(target.as_os_str(), parent, name)
            .map_err(|err| self.err(shown, "symlink", err.into()))?;
        self.at_meta(parent, name, m, shown, false)
    }

    /// Owner and times (and for device nodes the mode) by name, never
    /// following a symlink.
    fn at_meta(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        m: &Meta,
        shown: &Path,
        chmod: bool,
    ) -> Result<(), ImageError> {
        nix::unistd::fchownat(
            parent,
            name,
            Some(Uid::from_raw(m.uid)),
            Some(Gid::from_raw(m.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err(shown, "chown", e.into()))?;
        if chmod {
            // A node this unpacker just made with mknodat in its private
            // directory (not a symlink: fchmodat has no working NOFOLLOW
            // before Linux 6.6).
            nix::sys::stat::fchmodat(
                parent,
                name,
                Mode::from_bits_truncate(m.mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| self.err(shown, "chmod", e.into()))?;
        }
        let t = TimeSpec::new(m.mtime, 0);
        nix::sys::stat::utimensat(parent, name, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| self.err(shown, "set times", e.into()))
    }

    fn hard_link(
        &self,
        e: &mut tar::Entry<impl Read>,
        parent: &OwnedFd,
        name: &OsStr,
        shown: &Path,
    ) -> Result<(), ImageError> {
        let target = e
            .link_name()
            .map_err(|err| self.err(shown, "read link name", err))?
            .ok_or_else(|| self.refuse(shown, "a hard link without a target"))?
            .into_owned();
        let mut tcomps = clean(&target).map_err(|why| self.refuse(shown, why))?;
        let tname = tcomps
            .pop()
            .ok_or_else(|| self.refuse(shown, "a hard link to the layer root"))?;
        let tparent = self.walk(&tcomps, shown, false)?;
        // Flags 0: linkat does not follow a symlink source (it links the
        // symlink itself), so the link stays inside the layer.
        match nix::unistd::linkat(&tparent, tname.as_os_str(), parent, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::ENOENT) => Err(self.refuse(
                shown,
                format!("a hard link to {target:?}, which is not in the layer before it"),
            )),
            Err(err) => Err(self.err(shown, "link", err.into())),
        }
    }

    fn node(
        &self,
        e: &mut tar::Entry<impl Read>,
        parent: &OwnedFd,
        name: &OsStr,
        m: &Meta,
        shown: &Path,
    ) -> Result<(), ImageError> {
        let h = e.header();
        let kind = h.entry_type();
        let (sflag, dev) = if kind.is_fifo() {
            (SFlag::S_IFIFO, 0)
        } else {
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            let f = if kind.is_block_special() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFCHR
            };
            (f, makedev(u64::from(major), u64::from(minor)))
        };
        mknodat(parent, name, sflag, Mode::from_bits_truncate(m.mode), dev)
            .map_err(|err| self.err(shown, "mknod", err.into()))?;
        self.at_meta(parent, name, m, shown, true)
    }
}

/// fsetxattr(2) on an fd.
pub fn set_xattr(fd: &OwnedFd, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cstr(OsStr::new(name))?;
    // SAFETY: valid fd, NUL-terminated name, and a pointer/length pair from
    // a live slice that the kernel only reads.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// fgetxattr(2) on an fd; `None` when the attribute is absent.
pub fn get_xattr(fd: &OwnedFd, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c = cstr(OsStr::new(name))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid fd, NUL-terminated name, and a writable buffer of the
    // length passed.
    let r = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(r as usize);
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean(Path::new("./a/b")).unwrap(), vec!["a", "b"]);
        assert_eq!(clean(Path::new("/etc/x")).unwrap(), vec!["etc", "x"]);
        assert!(clean(Path::new("a/../../x")).is_err());
        assert!(clean(Path::new("./")).unwrap().is_empty());
    }

    #[test]
    fn only_safe_xattrs_are_kept() {
        assert!(xattr_allowed("user.foo"));
        assert!(xattr_allowed("security.capability"));
        assert!(!xattr_allowed("trusted.overlay.opaque"));
        assert!(!xattr_allowed("trusted.overlay.redirect"));
        assert!(!xattr_allowed("security.selinux"));
    }
}
