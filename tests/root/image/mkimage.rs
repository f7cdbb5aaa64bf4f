//! Test-side image builder: OCI image layouts (image-spec image-layout.md)
//! and `docker save` tarballs made in the test from the busybox fixture,
//! no network, no other tool.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MTIME: u64 = 1_700_000_000;

pub fn sha(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// One entry of a hand-made layer tar. Names are written raw into the
/// header, so hostile names (`../x`) are possible.
pub enum Ent<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
    Char(&'a str, u32, u32),
    /// PAX extended header records (key, value) for the next entry.
    Pax(&'a [(&'a str, &'a [u8])]),
}

/// PAX records: "LEN key=value\n", LEN counting the whole record.
fn pax_records(recs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in recs {
        let body = [format!(" {k}=").as_bytes(), v, b"\n"].concat();
        let mut n = body.len() + 1;
        while n != body.len() + n.to_string().len() {
            n = body.len() + n.to_string().len();
        }
        out.extend(n.to_string().as_bytes());
        out.extend(body);
    }
    out
}

fn header(kind: tar::EntryType, name: &str, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    let raw = &mut h.as_gnu_mut().unwrap().name;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    h
}

fn link(h: &mut tar::Header, target: &str) {
    let raw = &mut h.as_gnu_mut().unwrap().linkname;
    raw[..target.len()].copy_from_slice(target.as_bytes());
}

/// A layer tar of these entries, in this order.
pub fn tar_of(ents: &[Ent]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    for e in ents {
        let (mut h, data): (tar::Header, &[u8]) = match e {
            Ent::Dir(n) => (header(T::Directory, n, 0o755, 0), &[]),
            Ent::File(n, d) => (header(T::Regular, n, 0o644, d.len() as u64), d),
            Ent::Symlink(n, t) => {
                let mut h = header(T::Symlink, n, 0o777, 0);
                link(&mut h, t);
                (h, &[])
            }
            Ent::HardLink(n, t) => {
                let mut h = header(T::Link, n, 0o644, 0);
                link(&mut h, t);
                (h, &[])
            }
            Ent::Pax(recs) => {
                let data = pax_records(recs);
                let mut h = header(T::XHeader, "PaxHeader", 0o644, data.len() as u64);
                h.set_cksum();
                b.append(&h, &data[..]).unwrap();
                continue;
            }
            Ent::Fifo(n) => (header(T::Fifo, n, 0o600, 0), &[]),
            Ent::Char(n, maj, min) => {
                let mut h = header(T::Char, n, 0o666, 0);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                (h, &[])
            }
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar of a whole directory (the fixture rootfs), symlinks kept.
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

/// One layer: its media type, blob bytes, and uncompressed tar.
pub struct Layer {
    pub media_type: &'static str,
    pub blob: Vec<u8>,
    pub diff_id: String,
}

impl Layer {
    pub fn new(media_type: &'static str, tar: Vec<u8>) -> Layer {
        let diff_id = sha(&tar);
        let blob = match media_type {
            GZIP => gzip(&tar),
            ZSTD => zstd(&tar),
            _ => tar,
        };
        Layer {
            media_type,
            blob,
            diff_id,
        }
    }

    pub fn digest(&self) -> String {
        sha(&self.blob)
    }
}

/// An image config (config.md) with these run defaults.
pub fn config(layers: &[Layer], run: Value) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    serde_json::to_vec(&json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// The manifest (manifest.md) of these layers and config.
pub fn manifest(layers: &[Layer], config: &[u8]) -> Value {
    let ls: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": l.digest(), "size": l.blob.len()}))
        .collect();
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": config.len()},
        "layers": ls,
    })
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = sha(bytes);
    put(dir, &format!("blobs/sha256/{}", hex(&d)), bytes);
    d
}

fn desc(media_type: &str, bytes: &[u8], platform: Option<&str>) -> Value {
    let mut d = json!({"mediaType": media_type, "digest": sha(bytes), "size": bytes.len()});
    if let Some(arch) = platform {
        d["platform"] = json!({"architecture": arch, "os": "linux"});
    }
    d
}

/// Writes an image layout dir; `nested` puts the manifest behind a nested
/// index with a second platform (whose blobs are absent: never read).
/// Returns the manifest digest.
pub fn write_layout(
    dir: &Path,
    layers: &[Layer],
    config: &[u8],
    m: &Value,
    nested: bool,
) -> String {
    std::fs::create_dir_all(dir).unwrap();
    put(dir, "oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#);
    for l in layers {
        put_blob(dir, &l.blob);
    }
    put_blob(dir, config);
    let mbytes = serde_json::to_vec(m).unwrap();
    let mdigest = put_blob(dir, &mbytes);
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let top = if nested {
        let other = json!({"mediaType": mt, "digest": format!("sha256:{}", "e".repeat(64)),
                           "size": 100, "platform": {"architecture": "mips64le", "os": "linux"}});
        let inner = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [other, desc(mt, &mbytes, Some(host_arch()))]});
        let ibytes = serde_json::to_vec(&inner).unwrap();
        put_blob(dir, &ibytes);
        desc("application/vnd.oci.image.index.v1+json", &ibytes, None)
    } else {
        desc(mt, &mbytes, None)
    };
    let index = json!({"schemaVersion": 2, "manifests": [top]});
    put(dir, "index.json", &serde_json::to_vec(&index).unwrap());
    mdigest
}

/// Writes `index.json` of `dir` listing these manifests (their blobs
/// written too), each with its annotations (image-layout.md "index.json
/// file": `org.opencontainers.image.ref.name`).
pub fn write_index(dir: &Path, entries: &[(&Value, Value)]) {
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(m, annotations)| {
            let bytes = serde_json::to_vec(m).unwrap();
            put_blob(dir, &bytes);
            let mut d = desc(mt, &bytes, None);
            d["annotations"] = annotations.clone();
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    put(dir, "index.json", &serde_json::to_vec(&index).unwrap());
}

/// One image of a legacy `docker save`: layer tars, config, tag.
pub type LegacyImage<'a> = (&'a [Vec<u8>], &'a [u8], &'a str);

/// A legacy `docker save` of several images (layers uncompressed, each in
/// its own `<id>/layer.tar`), each entry with its `RepoTags`.
pub fn write_docker_legacy_multi(out: &Path, images: &[LegacyImage]) {
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (n, (tars, config, tag)) in images.iter().enumerate() {
        let mut names = Vec::new();
        for (i, t) in tars.iter().enumerate() {
            let id = hex(&sha(format!("v1-{n}-{i}").as_bytes())).to_string();
            files.push((format!("{id}/layer.tar"), t.clone()));
            names.push(format!("{id}/layer.tar"));
        }
        let cname = format!("{}.json", hex(&sha(config)));
        files.push((cname.clone(), config.to_vec()));
        entries.push(json!({"Config": cname, "RepoTags": [tag], "Layers": names}));
    }
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&entries).unwrap(),
    ));
    pack(out, &files, &[]);
}

/// Packs `files` (name, bytes) and symlinks (name, target) into a tarball.
fn pack(out: &Path, files: &[(String, Vec<u8>)], links: &[(String, String)]) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(MTIME);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.finish().unwrap();
}

/// `docker save` of Docker ≥ 25: an OCI layout plus manifest.json naming
/// the blobs.
pub fn write_docker_oci_tar(out: &Path, layout: &Path, layers: &[Layer], config: &[u8]) {
    let mut files = Vec::new();
    for e in walk(layout) {
        let rel = e
            .strip_prefix(layout)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        files.push((rel, std::fs::read(&e).unwrap()));
    }
    let ls: Vec<String> = layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", hex(&l.digest())))
        .collect();
    let m = json!([{"Config": format!("blobs/sha256/{}", hex(&sha(config))),
                    "RepoTags": ["cuddy-test:latest"], "Layers": ls}]);
    files.push(("manifest.json".into(), serde_json::to_vec(&m).unwrap()));
    pack(out, &files, &[]);
}

/// Legacy `docker save` (Docker < 25): `<id>/layer.tar` (uncompressed),
/// `<config hex>.json`, manifest.json; the last layer.tar is a symlink to
/// another dir's copy, as Docker writes for a layer saved twice.
pub fn write_docker_legacy_tar(out: &Path, tars: &[Vec<u8>], config: &[u8]) {
    let mut files = Vec::new();
    let mut links = Vec::new();
    let mut names = Vec::new();
    for (i, t) in tars.iter().enumerate() {
        let id = hex(&sha(format!("v1-{i}").as_bytes())).to_string();
        let name = format!("{id}/layer.tar");
        if i + 1 == tars.len() {
            files.push((format!("shared-{id}/layer.tar"), t.clone()));
            links.push((name.clone(), format!("../shared-{id}/layer.tar")));
        } else {
            files.push((name.clone(), t.clone()));
        }
        files.push((format!("{id}/VERSION"), b"1.0".to_vec()));
        names.push(name);
    }
    let cname = format!("{}.json", hex(&sha(config)));
    files.push((cname.clone(), config.to_vec()));
    let m = json!([{"Config": cname, "RepoTags": ["cuddy-test:legacy"], "Layers": names}]);
    files.push(("manifest.json".into(), serde_json::to_vec(&m).unwrap()));
    pack(out, &files, &links);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and a writable buffer of the given length.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

pub fn is_whiteout(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Whether the filesystem of `dir` takes `user.*` xattrs (tmpfs only
/// since Linux 6.6).
pub fn user_xattrs_supported(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let p = dir.join("xattr-probe");
    std::fs::write(&p, b"").unwrap();
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings and a readable value of the given length.
    let r = unsafe {
        libc::setxattr(
            cp.as_ptr(),
            c"user.probe".as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    };
    std::fs::remove_file(&p).unwrap();
    r == 0
}
