//! The compiled-filter cache: `<state root>/.seccomp-cache/<sha256 hex>`.
//!
//! The key is a canonical, length-prefixed encoding of everything the BPF
//! depends on: the normalised profile (every errnoRet, the flags, the
//! architectures, the default action and errno), the host architecture, the
//! libseccomp, kernel, cuddy and stub versions. The file name is its hash;
//! the entry stores the full key and is used only when the key matches
//! byte for byte, the program is well-formed and a checksum over the entry
//! holds. Anything else (corrupt, truncated, foreign, wrong owner or mode)
//! is ignored and overwritten. Entries are written with
//! `utils::write_atomic_at` (a fresh O_TMPFILE inode, or a random
//! O_CREAT|O_EXCL|O_NOFOLLOW name, renamed into place), so concurrent
//! creates never see a partial entry.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use libc::sock_filter;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};

use super::compile::native_token;
use super::profile::{Profile, encode};
use super::program::{MAX_INSNS, decode, encode as encode_prog};
use super::stub::STUB_VERSION;

pub const DIR: &str = ".seccomp-cache";
const MAGIC: &[u8; 8] = b"CUDDYSC1";
/// Far above any real entry (key + 4096 instructions).
const MAX_ENTRY: u64 = 4 << 20;

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field);
}

/// The full cache key of `p` on this host.
pub fn key(p: &Profile) -> Vec<u8> {
    let mut k = Vec::new();
    put(&mut k, b"cuddy seccomp cache");
    put(&mut k, env!("CARGO_PKG_VERSION").as_bytes());
    put(&mut k, &STUB_VERSION.to_le_bytes());
    put(&mut k, &native_token().to_le_bytes());
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    put(&mut k, v.as_bytes());
    put(&mut k, &libseccomp::get_api().to_le_bytes());
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    put(&mut k, kernel.as_bytes());
    let mut prof = Vec::new();
    encode(p, &mut prof);
    put(&mut k, &prof);
    k
}

fn name(key: &[u8]) -> String {
    Sha256::digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn open_dir(dir: &Path) -> Option<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .ok()?;
    let st = nix::sys::stat::fstat(&fd).ok()?;
    // Ours, and nobody else may write into it.
    (st.st_uid == nix::unistd::geteuid().as_raw() && st.st_mode & 0o022 == 0).then_some(fd)
}

/// The cached program for `key` under `root`, when a sound entry exists.
pub fn lookup(root: &Path, key: &[u8]) -> Option<(Vec<sock_filter>, u32)> {
    let dir = open_dir(&root.join(DIR))?;
    let fd = openat(
        &dir,
        name(key).as_str(),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let f = std::fs::File::from(fd);
    let md = f.metadata().ok()?;
    if !md.is_file()
        || md.uid() != nix::unistd::geteuid().as_raw()
        || md.mode() & 0o022 != 0
        || md.len() > MAX_ENTRY
    {
        return None;
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    f.take(MAX_ENTRY).read_to_end(&mut bytes).ok()?;
    let r = parse(&bytes, key);
    if r.is_none() {
        tracing::debug!("seccomp cache: ignoring a bad entry for this profile");
    }
    r
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (h, t) = b.split_at(n);
    *b = t;
    Some(h)
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    take(b, 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

/// Entry: MAGIC, key (u32 length + bytes), flags u32, instruction count u32,
/// instructions, SHA-256 of everything before it.
fn parse(bytes: &[u8], key: &[u8]) -> Option<(Vec<sock_filter>, u32)> {
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(32)?);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut b = body;
    if take(&mut b, 8)? != MAGIC {
        return None;
    }
    let klen = take_u32(&mut b)? as usize;
    if take(&mut b, klen)? != key {
        return None;
    }
    let flags = take_u32(&mut b)?;
    let n = take_u32(&mut b)? as usize;
    if n == 0 || n > MAX_INSNS || b.len() != n * 8 {
        return None;
    }
    Some((decode(b)?, flags))
}

fn entry(key: &[u8], prog: &[sock_filter], flags: u32) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put(&mut out, key);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(prog.len() as u32).to_le_bytes());
    encode_prog(prog, &mut out);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Stores the program; failures only cost the next run a compile.
pub fn store(root: &Path, key: &[u8], prog: &[sock_filter], flags: u32) {
    if let Err(e) = try_store(root, key, prog, flags) {
        tracing::debug!("seccomp cache: not stored: {e}");
    }
}

fn try_store(root: &Path, key: &[u8], prog: &[sock_filter], flags: u32) -> Result<(), String> {
    let path = root.join(DIR);
    match nix::unistd::mkdir(&path, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(format!("mkdir {}: {e}", path.display())),
    }
    let dir =
        open_dir(&path).ok_or_else(|| format!("{} is not a private directory", path.display()))?;
    // A fresh inode renamed into place (O_TMPFILE or a random
    // O_EXCL|O_NOFOLLOW name): concurrent writers never mix, and nothing
    // planted in the directory is followed.
    let n = name(key);
    crate::utils::write_atomic_at(&dir, n.as_ref(), &entry(key, prog, flags), 0o600)
        .map_err(|e| format!("write {n}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog() -> Vec<sock_filter> {
        vec![sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        }]
    }

    #[test]
    fn round_trip_and_rejections() {
        let d = tempfile::tempdir().unwrap();
        let key = b"some key".to_vec();
        assert!(lookup(d.path(), &key).is_none());
        store(d.path(), &key, &prog(), 4);
        let (p, f) = lookup(d.path(), &key).unwrap();
        assert_eq!((p.len(), p[0].k, f), (1, 0x7fff_0000, 4));
        // Another key with the same file name (a foreign entry): ignored.
        let file = d.path().join(DIR).join(name(&key));
        std::fs::write(&file, entry(b"other key", &prog(), 4)).unwrap();
        assert!(lookup(d.path(), &key).is_none());
        // One flipped bit: the checksum fails.
        let mut e = entry(&key, &prog(), 4);
        e[20] ^= 1;
        std::fs::write(&file, &e).unwrap();
        assert!(lookup(d.path(), &key).is_none());
        // A valid checksum over a malformed program (a jump out of range).
        let bad = vec![
            sock_filter {
                code: 0x05,
                jt: 0,
                jf: 0,
                k: 9,
            },
            prog()[0],
        ];
        std::fs::write(&file, entry(&key, &bad, 4)).unwrap();
        assert!(lookup(d.path(), &key).is_none());
        // Overwritten by the next store; no temporary file is left.
        store(d.path(), &key, &prog(), 4);
        assert!(lookup(d.path(), &key).is_some());
        let names: Vec<_> = std::fs::read_dir(d.path().join(DIR)).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn symlinked_entry_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let key = b"k".to_vec();
        store(d.path(), &key, &prog(), 0);
        let file = d.path().join(DIR).join(name(&key));
        let real = d.path().join("real");
        std::fs::rename(&file, &real).unwrap();
        std::os::unix::fs::symlink(&real, &file).unwrap();
        assert!(lookup(d.path(), &key).is_none());
    }
}
