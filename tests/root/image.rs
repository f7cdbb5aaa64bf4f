//! The image cache (issue 12 item 3; docs/images.md): OCI image layouts and
//! `docker save` tarballs built here from the busybox fixture, imported
//! into a content-addressed store, stacked with a real overlay mount.
//! Spec references are to the OCI image-spec v1.1 (not in ../shared; cited
//! by file name): image-layout.md, image-index.md, manifest.md, config.md,
//! layer.md, descriptor.md.

pub(crate) mod mkimage;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cuddy::sandbox::image::{ImageConfig, ImageError, ImageStore};
use mkimage::*;
use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

const APP_PASSWD: &str = "app:x:1234:2345:app:/data:/bin/sh\n";

/// The test image, built once per test binary.
struct Fixture {
    layout: PathBuf,
    docker: PathBuf,
    legacy: PathBuf,
    /// A second image sharing only the base layer.
    base_only: PathBuf,
    manifest_digest: String,
    config_digest: String,
    diff_ids: Vec<String>,
}

/// Three layers (layer.md): the fixture (gzip); an upper one adding a user
/// and files (gzip); a top one (zstd) with whiteouts and an opaque dir
/// whose marker comes after its sibling.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rootfs = fixture_rootfs();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap() + APP_PASSWD;
        let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap() + "app:x:2345:\n";
        let base = tar_dir(rootfs);
        let upper = tar_of(&[
            // A trusted.* xattr from a layer is dropped, user.* kept.
            Ent::Pax(&[
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("SCHILY.xattr.user.cuddy", b"kept"),
            ]),
            Ent::Dir("etc/"),
            Ent::File("etc/passwd", passwd.as_bytes()),
            Ent::File("etc/group", group.as_bytes()),
            Ent::File("etc/motd", b"hello\n"),
            Ent::Dir("data/"),
            Ent::File("data/old1", b"1"),
            Ent::File("data/old2", b"2"),
            Ent::HardLink("data/old2-hard", "data/old2"),
            Ent::Symlink("data/abs", "/etc/passwd"),
            Ent::Fifo("data/fifo"),
            Ent::Char("dev/mynull", 1, 3),
        ]);
        let top = tar_of(&[
            Ent::Dir("data/"),
            Ent::File("data/new", b"new"),
            Ent::File("data/.wh..wh..opq", b""),
            Ent::File("etc/.wh.hostname", b""),
            Ent::File("etc/.wh.motd", b""),
        ]);
        let tars = vec![base, upper, top];
        let layers = vec![
            Layer::new(GZIP, tars[0].clone()),
            Layer::new(GZIP, tars[1].clone()),
            Layer::new(ZSTD, tars[2].clone()),
        ];
        let cfg = config(
            &layers,
            json!({"Env": ["PATH=/bin", "GREETING=hello"], "Entrypoint": ["/bin/sh", "-c"],
                   "Cmd": ["echo $GREETING"], "WorkingDir": "/data", "User": "app"}),
        );
        let m = manifest(&layers, &cfg);
        let layout = dir.join("layout");
        let manifest_digest = write_layout(&layout, &layers, &cfg, &m, true);
        let docker = dir.join("docker25.tar");
        write_docker_oci_tar(&docker, &layout, &layers, &cfg);
        let legacy = dir.join("legacy.tar");
        write_docker_legacy_tar(&legacy, &tars, &cfg);
        let base_only = dir.join("base-only");
        let one = vec![Layer::new(GZIP, tars[0].clone())];
        let cfg1 = config(&one, json!({"Cmd": ["/bin/sh"]}));
        write_layout(&base_only, &one, &cfg1, &manifest(&one, &cfg1), false);
        Fixture {
            layout,
            docker,
            legacy,
            base_only,
            manifest_digest,
            config_digest: sha(&cfg),
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
        }
    })
}

pub(crate) fn store() -> (tempfile::TempDir, ImageStore) {
    let d = tempfile::Builder::new()
        .prefix("cuddy-t-img-")
        .tempdir()
        .unwrap();
    let s = ImageStore::open(d.path().join("cache")).unwrap();
    (d, s)
}

/// Nothing in the cache: no layer, no image record, no tmp dir.
pub(crate) fn assert_empty_cache(root: &Path) {
    for d in ["layers", "images", "tmp"] {
        let p = root.join(d);
        if p.exists() {
            assert!(
                entries(&p).is_empty(),
                "{} left: {:?}",
                p.display(),
                entries(&p)
            );
        }
    }
}

pub(crate) fn cuddy_image(cache: &Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(CUDDY);
    c.arg("image").arg("--cache").arg(cache).args(args);
    output_with_timeout(c, 120)
}

#[test]
fn layout_import_unpacks_whiteouts_and_stacks_with_overlay() {
    require_root!();
    let f = fixture();
    let (d, s) = store();
    let img = s.import(&f.layout).unwrap();
    // image-layout.md + image-index.md: the nested index's linux/<host>
    // manifest is chosen; the other platform's (absent) blob is never read.
    assert_eq!(img.digest, f.manifest_digest);
    let want: Vec<PathBuf> = f
        .diff_ids
        .iter()
        .map(|d| s.root().join("layers").join(hex(d)))
        .collect();
    assert_eq!(
        img.layers, want,
        "layers are content-addressed by diffID, bottom first"
    );
    // config.md: the run defaults.
    assert_eq!(
        img.config,
        ImageConfig {
            env: vec!["PATH=/bin".into(), "GREETING=hello".into()],
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo $GREETING".into()],
            working_dir: Some("/data".into()),
            user: Some("app".into()),
        }
    );
    // config.md `User`: a name from the image's own /etc/passwd.
    assert_eq!(img.resolve_user().unwrap(), Some((1234, 2345)));
    let (l1, l2, l3) = (&img.layers[0], &img.layers[1], &img.layers[2]);
    assert!(l1.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(l1.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // layer.md#whiteouts, as overlayfs reads a lower layer: `.wh.NAME` is
    // a 0:0 char device, `.wh..wh..opq` the opaque xattr; the sibling
    // written before the opaque marker is kept.
    // A layer without a `./` entry gets a 0755 root (the merged `/`).
    assert_eq!(l3.metadata().unwrap().mode() & 0o7777, 0o755);
    assert!(is_whiteout(&l3.join("etc/hostname")));
    assert!(is_whiteout(&l3.join("etc/motd")));
    assert_eq!(
        xattr(&l3.join("data"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(std::fs::read(l3.join("data/new")).unwrap(), b"new");
    assert!(!l3.join("data/.wh..wh..opq").exists() && !l3.join("etc/.wh.motd").exists());
    // Links, nodes and xattrs as in the tar; a trusted.* xattr from the
    // layer is not applied, user.* is.
    let m = |p: &str| std::fs::symlink_metadata(l2.join(p)).unwrap();
    assert_eq!(m("data/old2").ino(), m("data/old2-hard").ino());
    assert_eq!(
        std::fs::read_link(l2.join("data/abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(m("data/fifo").file_type().is_fifo());
    assert!(m("dev/mynull").file_type().is_char_device());
    assert_eq!(m("dev/mynull").rdev(), libc::makedev(1, 3));
    assert_eq!(m("data/old1").mtime(), 1_700_000_000);
    assert_eq!(xattr(&l2.join("etc"), "trusted.overlay.opaque"), None);
    if user_xattrs_supported(s.root()) {
        assert_eq!(
            xattr(&l2.join("etc"), "user.cuddy").as_deref(),
            Some(&b"kept"[..])
        );
    }
    // The merged view through a real overlay mount, in a private mount
    // namespace (lowerdir lists the top layer first).
    let mnt = d.path().join("merged");
    std::fs::create_dir(&mnt).unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={} {m} && ls -A {m}/data && \
         ls {m}/etc && grep -c ^app: {m}/etc/passwd && {m}/bin/busybox true && echo ran",
        img.lowerdir(),
        m = mnt.display()
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let out = output_with_timeout(c, 60);
    assert_ok(&out, "overlay mount of the layers");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "new",
        "the opaque /data shows only the top layer: {text}"
    );
    assert!(
        !text.contains("hostname") && !text.contains("motd"),
        "whiteouts: {text}"
    );
    assert!(
        text.contains("passwd") && text.ends_with("1\nran\n"),
        "{text}"
    );
}

#[test]
fn docker_save_tarballs_share_the_layers() {
    require_root!();
    let f = fixture();
    let (_d, s) = store();
    // Docker ≥ 25: the OCI layout inside the tarball gives the manifest
    // digest (image-layout.md); legacy: keyed by the config digest.
    let a = s.import(&f.docker).unwrap();
    assert_eq!(a.digest, f.manifest_digest);
    let b = s.import(&f.legacy).unwrap();
    assert_eq!(b.digest, f.config_digest);
    assert_eq!(a.layers, b.layers, "same diffIDs, same layer dirs");
    assert_eq!(a.config, b.config);
    assert!(is_whiteout(&b.layers[2].join("etc/hostname")));
    assert_eq!(entries(&s.root().join("layers")).len(), 3);
    let mut digests: Vec<String> = s.list().unwrap().into_iter().map(|i| i.digest).collect();
    digests.sort();
    let mut want = vec![a.digest, b.digest];
    want.sort();
    assert_eq!(digests, want);
}

/// `docker save IMAGE | gzip` (or zstd): the tarball is decompressed once
/// into an unnamed file and imported like the plain one (same digests,
/// same layers); nothing is left in the cache's tmp; a truncated one is
/// refused with the tarball's name and leaves nothing.
#[test]
fn compressed_docker_save_tarballs_are_imported() {
    require_root!();
    let f = fixture();
    let (d, s) = store();
    let gz = d.path().join("docker25.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&f.docker).unwrap())).unwrap();
    let zst = d.path().join("legacy.tar.zst");
    std::fs::write(&zst, zstd(&std::fs::read(&f.legacy).unwrap())).unwrap();
    let a = s.import(&gz).unwrap();
    assert_eq!(a.digest, f.manifest_digest);
    let out = cuddy_image(s.root(), &["import", zst.to_str().unwrap()]);
    assert_ok(&out, "cuddy image import legacy.tar.zst");
    assert!(stdout(&out).contains(&f.config_digest), "{}", stdout(&out));
    assert_eq!(entries(&s.root().join("layers")).len(), 3, "layers shared");
    assert!(entries(&s.root().join("tmp")).is_empty());
    let b = s.import(&f.legacy).unwrap();
    assert_eq!(
        b.digest, f.config_digest,
        "the same image as the plain tarball"
    );
    assert_eq!(a.layers, b.layers);

    let (d2, s2) = store();
    let bytes = std::fs::read(&gz).unwrap();
    let cut = d2.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = cuddy_image(s2.root(), &["import", cut.to_str().unwrap()]);
    assert_fails_with(&out, "cut.tar.gz: cannot decompress the tarball (gzip)");
    assert_empty_cache(s2.root());
}

#[test]
fn reimport_is_warm_and_reads_no_layer() {
    require_root!();
    let f = fixture();
    let (d, s) = store();
    let copy = d.path().join("layout");
    copy_dir(&f.layout, &copy);
    let t = std::time::Instant::now();
    let first = s.import(&copy).unwrap();
    let cold = t.elapsed();
    let inodes: Vec<u64> = first
        .layers
        .iter()
        .map(|l| l.metadata().unwrap().ino())
        .collect();
    // Without the layer blobs, a re-import still works: nothing is
    // unpacked again (the store is content-addressed by diffID).
    let man: Value = serde_json::from_slice(
        &std::fs::read(copy.join("blobs/sha256").join(hex(&f.manifest_digest))).unwrap(),
    )
    .unwrap();
    for l in man["layers"].as_array().unwrap() {
        std::fs::remove_file(
            copy.join("blobs/sha256")
                .join(hex(l["digest"].as_str().unwrap())),
        )
        .unwrap();
    }
    let t = std::time::Instant::now();
    let again = s.import(&copy).unwrap();
    let warm = t.elapsed();
    eprintln!("image import of the fixture image: cold {cold:?}, warm {warm:?}");
    assert_eq!(again.digest, first.digest);
    assert_eq!(again.layers, first.layers);
    let after: Vec<u64> = again
        .layers
        .iter()
        .map(|l| l.metadata().unwrap().ino())
        .collect();
    assert_eq!(after, inodes);
    assert!(entries(&s.root().join("tmp")).is_empty());
}

#[test]
fn concurrent_imports_make_one_copy() {
    require_root!();
    let f = fixture();
    let (_d, s) = store();
    // 8 threads of this process and 2 `cuddy image import` processes.
    let barrier = std::sync::Barrier::new(9);
    let (results, procs): (Vec<_>, [_; 2]) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                sc.spawn(|| {
                    let st = ImageStore::open(s.root()).unwrap();
                    barrier.wait();
                    st.import(&f.layout)
                })
            })
            .collect();
        let cli = || {
            let mut c = Command::new(CUDDY);
            c.arg("image")
                .arg("--cache")
                .arg(s.root())
                .arg("import")
                .arg(&f.layout);
            c.stdout(std::process::Stdio::null()).spawn().unwrap()
        };
        barrier.wait();
        let children = [cli(), cli()];
        let procs = children.map(|c| c.wait_with_output().unwrap());
        (hs.into_iter().map(|h| h.join().unwrap()).collect(), procs)
    });
    for p in &procs {
        assert_ok(p, "concurrent cuddy image import");
    }
    for r in &results {
        let img = r.as_ref().unwrap();
        assert_eq!(img.digest, f.manifest_digest);
        assert_eq!(img.layers.len(), 3);
    }
    assert_eq!(
        entries(&s.root().join("layers")).len(),
        3,
        "one copy of each layer"
    );
    assert_eq!(
        entries(&s.root().join("images")),
        vec![hex(&f.manifest_digest).to_string()]
    );
    assert!(
        entries(&s.root().join("tmp")).is_empty(),
        "losers' copies removed"
    );
}

#[test]
fn a_lease_blocks_rm_and_prune_and_shared_layers_stay() {
    require_root!();
    let f = fixture();
    let (_d, s) = store();
    let img = s.import(&f.layout).unwrap();
    let base = s.import(&f.base_only).unwrap();
    assert_eq!(base.layers[0], img.layers[0]);
    // Removing the base-only image keeps its layer: the other uses it.
    s.remove(&base.digest).unwrap();
    assert!(img.layers[0].is_dir());
    s.import(&f.base_only).unwrap();
    let lease = img.lease().unwrap();
    let rows = s.list().unwrap();
    let row = rows.iter().find(|r| r.digest == img.digest).unwrap();
    assert!(row.in_use && row.size_bytes > 1_000_000, "{row:?}");
    assert!(matches!(
        s.remove(&img.digest),
        Err(ImageError::InUse { .. })
    ));
    // Another process (the CLI) sees the lease too.
    let out = cuddy_image(s.root(), &["rm", &img.digest]);
    assert_fails_with(&out, "in use");
    // prune removes the base-only image only; every layer stays.
    s.prune().unwrap();
    let rows = s.list().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].digest, img.digest);
    assert!(img.layers.iter().all(|l| l.is_dir()));
    drop(lease);
    assert!(!s.list().unwrap()[0].in_use);
    s.remove(&img.digest[..20]).unwrap();
    assert_empty_cache(s.root());
    assert!(matches!(img.lease(), Err(ImageError::Gone { .. })));
}

#[test]
fn cli_import_ls_rm_prune() {
    require_root!();
    let f = fixture();
    let (_d, s) = store();
    let cache = s.root();
    let out = cuddy_image(cache, &["import", f.layout.to_str().unwrap()]);
    assert_ok(&out, "image import");
    assert_eq!(stdout(&out), format!("{}\n", f.manifest_digest));
    let out = cuddy_image(cache, &["ls"]);
    assert_ok(&out, "image ls");
    let table = stdout(&out);
    assert!(table.starts_with("DIGEST"), "{table}");
    assert!(
        table.contains(&f.manifest_digest[..19]) && table.contains(" no "),
        "{table}"
    );
    let out = cuddy_image(cache, &["ls", "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["digest"], f.manifest_digest.as_str());
    assert_eq!(v[0]["in_use"], false);
    assert_eq!(
        v[0]["source"],
        f.layout.canonicalize().unwrap().to_str().unwrap()
    );
    assert!(v[0]["size_bytes"].as_u64().unwrap() > 1_000_000);
    let short = &hex(&f.manifest_digest)[..12];
    let out = cuddy_image(cache, &["rm", short]);
    assert_ok(&out, "image rm");
    assert_empty_cache(cache);
    let out = cuddy_image(cache, &["rm", short]);
    assert_fails_with(&out, "not in the cache");
    assert_ok(
        &cuddy_image(cache, &["import", f.legacy.to_str().unwrap()]),
        "import",
    );
    let out = cuddy_image(cache, &["prune"]);
    assert_ok(&out, "image prune");
    assert!(
        stdout(&out).starts_with("removed 1 images"),
        "{}",
        stdout(&out)
    );
    assert_empty_cache(cache);
}

/// A one-layer layout of a tiny tar; `tweak` edits the manifest.
fn tiny(dir: &Path, blob: Option<Vec<u8>>, tweak: impl FnOnce(&mut Value)) -> Layer {
    let mut l = Layer::new(GZIP, tar_of(&[Ent::File("hello", b"hi")]));
    if let Some(b) = blob {
        l.blob = b;
    }
    let cfg = config(std::slice::from_ref(&l), json!({}));
    let mut m = manifest(std::slice::from_ref(&l), &cfg);
    tweak(&mut m);
    write_layout(dir, std::slice::from_ref(&l), &cfg, &m, false);
    l
}

#[test]
fn bad_images_fail_cleanly_and_leave_nothing() {
    require_root!();
    let (d, s) = store();
    let cache = s.root();
    let p = |n: &str| d.path().join(n);
    let check = |path: &Path, needles: &[&str]| {
        let out = cuddy_image(cache, &["import", path.to_str().unwrap()]);
        for n in needles {
            assert_fails_with(&out, n);
        }
        assert_empty_cache(cache);
    };
    check(&p("missing"), &["open image", "missing", "No such file"]);
    // image-layout.md: no oci-layout, no index.json → not a layout.
    check(fixture_rootfs(), &["not an image", "no oci-layout"]);
    std::fs::write(p("junk.tar"), vec![b'x'; 4096]).unwrap();
    check(
        &p("junk.tar"),
        &["junk.tar: not an image: not a tar archive"],
    );
    // layer.md: a gzip layer whose stream is corrupt (its digest matches).
    let mut gz = gzip(&tar_of(&[Ent::File("hello", &[7u8; 5000])]));
    let mid = gz.len() / 2;
    gz[mid..mid + 8].copy_from_slice(b"CORRUPT!");
    let l = tiny(&p("corrupt"), Some(gz.clone()), |m| {
        m["layers"][0]["digest"] = json!(sha(&gz));
        m["layers"][0]["size"] = json!(gz.len());
    });
    check(&p("corrupt"), &["cannot decompress (gzip)", &l.digest()]);
    // descriptor.md#digests: blob bytes changed after the manifest was
    // written → digest mismatch, naming the layer.
    let l = tiny(&p("altered"), None, |_| {});
    let blob = p("altered/blobs/sha256").join(hex(&l.digest()));
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n - 9] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    check(&p("altered"), &["blob digest mismatch", &l.digest()]);
    // An algorithm cuddy does not verify, and a malformed digest.
    tiny(&p("sha512"), None, |m| {
        m["layers"][0]["digest"] = json!(format!("sha512:{}", "a".repeat(128)))
    });
    check(&p("sha512"), &["unsupported digest algorithm \"sha512\""]);
    tiny(&p("malformed"), None, |m| {
        m["layers"][0]["digest"] = json!("sha256:../../etc")
    });
    check(&p("malformed"), &["bad digest \"sha256:../../etc\""]);
    // A blob the manifest names but the layout lacks.
    let l = tiny(&p("noblob"), None, |_| {});
    std::fs::remove_file(p("noblob/blobs/sha256").join(hex(&l.digest()))).unwrap();
    check(
        &p("noblob"),
        &[&format!("blob {} (layer) is missing", l.digest())],
    );
    // config.md rootfs.diff_ids: the uncompressed tar must hash to it.
    let dir = p("diffid");
    let l = Layer::new(GZIP, tar_of(&[Ent::File("hello", b"hi")]));
    let mut lie = Layer::new(GZIP, tar_of(&[Ent::File("other", b"x")]));
    lie.blob = l.blob.clone();
    let cfg = config(std::slice::from_ref(&lie), json!({}));
    write_layout(
        &dir,
        std::slice::from_ref(&l),
        &cfg,
        &manifest(std::slice::from_ref(&l), &cfg),
        false,
    );
    check(&dir, &["diffID mismatch", &lie.diff_id]);
}

/// A layout of one uncompressed layer of these entries.
fn hostile(dir: &Path, ents: &[Ent]) {
    let l = Layer::new(TAR, tar_of(ents));
    let cfg = config(std::slice::from_ref(&l), json!({}));
    write_layout(
        dir,
        std::slice::from_ref(&l),
        &cfg,
        &manifest(std::slice::from_ref(&l), &cfg),
        false,
    );
}

#[test]
fn hostile_layers_cannot_write_outside_the_layer() {
    require_root!();
    let (d, s) = store();
    // The host canary: a directory outside the store with a file in it.
    let canary = tempfile::Builder::new()
        .prefix("cuddy-t-canary-")
        .tempdir()
        .unwrap();
    std::fs::write(canary.path().join("secret"), b"host").unwrap();
    let c = canary
        .path()
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let abs = format!("/{c}");
    let up = format!("../../../../../../../../{c}");
    let secret = format!("{abs}/secret");
    let cases: Vec<(Vec<Ent>, &str)> = vec![
        // A symlink to the host dir, then a file through it.
        (
            vec![Ent::Symlink("evil", &abs), Ent::File("evil/pwned", b"x")],
            "is a symlink",
        ),
        (
            vec![Ent::Symlink("evil", &up), Ent::File("evil/pwned", b"x")],
            "is a symlink",
        ),
        // `..` climbing out of the layer.
        (vec![Ent::File("../../pwned", b"x")], "`..`"),
        (
            vec![Ent::Dir("a/"), Ent::File("a/../../../pwned", b"x")],
            "`..`",
        ),
        // A hard link to a host file (by absolute or climbing path, or
        // through a symlink the layer made).
        (vec![Ent::HardLink("h", &secret)], "not in the layer"),
        (
            vec![
                Ent::Symlink("evil", &abs),
                Ent::HardLink("h", "evil/secret"),
            ],
            "is a symlink",
        ),
        // A bare whiteout, a whiteout of `..`.
        (vec![Ent::File(".wh.", b"")], "a whiteout must name"),
        (vec![Ent::File("etc/.wh...", b"")], "a whiteout must name"),
    ];
    for (i, (ents, needle)) in cases.iter().enumerate() {
        let dir = d.path().join(format!("evil{i}"));
        hostile(&dir, ents);
        let res = s.import(&dir);
        // The host first: without the fix the import "succeeds" by
        // writing through the link.
        assert_eq!(
            entries(canary.path()),
            ["secret"],
            "case {i} touched the host"
        );
        let secret = canary.path().join("secret");
        assert_eq!(std::fs::read(&secret).unwrap(), b"host");
        assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1, "case {i}");
        let above = [d.path().join("pwned"), s.root().join("pwned")];
        assert!(
            !above.iter().any(|p| p.exists()),
            "case {i} wrote above the layer"
        );
        let err = match res {
            Err(e) => e.to_string(),
            Ok(img) => panic!("case {i} was accepted: {img:?}"),
        };
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(err.contains("layer sha256:"), "case {i}: {err}");
        assert_empty_cache(s.root());
    }
    assert!(!Path::new("/pwned").exists() && !d.path().join("pwned").exists());
}
