//! Sandboxes from an OCI image layout built here from the fixture: the
//! image config's Cmd, Env, WorkingDir and User are the defaults, explicit
//! settings win, upper-layer whiteouts apply, the image dir is unchanged.
//! (The cache itself — docker-save tarballs, opaque dirs, corrupt layers,
//! digests — is tested by tests/root/image.rs.)

use std::path::Path;
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::*;
use crate::require_root;

/// Stores `data` as a blob; returns its descriptor fields (digest, size).
fn blob(layout: &Path, data: &[u8]) -> (String, usize) {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(layout.join("blobs/sha256").join(&hex), data).unwrap();
    (format!("sha256:{hex}"), data.len())
}

/// An uncompressed layer: `tar` of `dir` (GNU tar, numeric owners).
fn tar_of(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Two layers: the fixture, then /etc/motd added and /etc/hostname
/// whited out (`.wh.hostname`, image-spec layer.md#whiteouts).
fn make_layout(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let upper = dir.join("upper");
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::write(upper.join("etc/motd"), "layer two\n").unwrap();
    std::fs::write(upper.join("etc/.wh.hostname"), "").unwrap();
    let layers = [tar_of(rootfs()), tar_of(&upper)];
    let diff_ids: Vec<String> = layers.iter().map(|l| blob(&layout, l).0).collect();
    let config = json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin:/sbin", "FROM_IMAGE=yes"],
            "Cmd": ["sh", "-c", "echo $FROM_IMAGE $(pwd) $(id -u):$(id -g); cat /etc/motd; test -e /etc/hostname || echo whited-out"],
            "WorkingDir": "/tmp",
            "User": "1234:55"
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    });
    let (cd, cs) = blob(&layout, config.to_string().as_bytes());
    let layer_descs: Vec<_> = diff_ids
        .iter()
        .zip(&layers)
        .map(|(d, l)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layer_descs
    });
    let (md, ms) = blob(&layout, manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms}
    ]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

fn image_sandbox(layout: &Path, cache: &Path) -> cuddy::Sandbox {
    cuddy::Sandbox::image(layout)
        .binary(env!("CARGO_BIN_EXE_cuddy"))
        .state_root(STATE)
        .image_cache(cache)
}

/// image-spec config.md: Env, Cmd, WorkingDir, User as defaults.
#[test]
fn image_config_supplies_the_defaults() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let cache = dir.path().join("cache");
    let before = hash_tree(&layout);
    let out = image_sandbox(&layout, &cache).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "yes /tmp 1234:55\nlayer two\nwhited-out\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Explicit settings win; the image is unchanged by a sandbox's writes.
    let out = image_sandbox(&layout, &cache)
        .env("FROM_IMAGE", "mine")
        .cwd("/")
        .user(0, 0)
        .args([
            "sh",
            "-c",
            "echo $FROM_IMAGE $PATH $(pwd) $(id -u); rm -rf /bin/true /etc/motd",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mine /bin:/sbin / 0\n"
    );
    let out = image_sandbox(&layout, &cache)
        .args(["sh", "-c", "test -e /bin/true && cat /etc/motd"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout, b"layer two\n",
        "a sandbox saw another's deletions"
    );
    assert_eq!(hash_tree(&layout), before);
}
