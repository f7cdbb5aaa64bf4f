//! Issue 8, mounts and the root filesystem: what clients send (podman 4.3's
//! `tmpcopyup`, `rootfsPropagation`, bind sources the container's user may
//! not reach, id-mapped mounts), seen from inside the container.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// A private, writable copy of the fixture rootfs inside the test's dir.
fn private_rootfs(ctx: &Ctx, name: &str) -> PathBuf {
    let dst = ctx.dir.path().join(name);
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture_rootfs())
        .arg(&dst)
        .status()
        .expect("cp -a");
    assert!(st.success(), "cp -a of the fixture rootfs failed");
    dst
}

/// The optional fields of the mount at `mp` (topmost) in the probe's view.
fn propagation_of(p: &Value, mp: &str) -> String {
    p["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["mount_point"] == mp)
        .unwrap_or_else(|| panic!("no mount at {mp}: {:#}", p["mounts"]))["propagation"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `sh -c script` in a container of config `c`; returns its stdout.
fn sh(ctx: &Ctx, suffix: &str, mut c: Value, script: &str) -> String {
    c["process"]["args"] = json!(["/bin/sh", "-c", script]);
    let id = ctx.id(suffix);
    let out = ctx.run(&id, &c);
    assert_ok(&out, script);
    ctx.assert_no_leftovers(&id);
    stdout(&out)
}

/// config-linux.md#rootfs-mount-propagation: every value of
/// `rootfsPropagation`, "unbindable" included (the kernel refuses to bind
/// an unbindable mount, so it must be applied after the rootfs bind).
#[test]
fn rootfs_propagation_every_value() {
    require_root!();
    let ctx = Ctx::new("rpropall");
    for (prop, want) in [
        ("unbindable", "unbindable"),
        ("runbindable", "unbindable"),
        ("shared", "shared:"),
        ("private", ""),
    ] {
        let mut c = ctx.config(&[]);
        c["linux"]["rootfsPropagation"] = json!(prop);
        let p = ctx.probe(prop, c, &[]);
        let got = propagation_of(&p, "/");
        if want.is_empty() {
            assert_eq!(got, "", "{prop}: propagation of / is {got:?}");
        } else {
            assert!(got.contains(want), "{prop}: propagation of / is {got:?}");
        }
    }
    // slave: "/" takes no mount event of its own back to the host.
    let mut c = ctx.config(&[]);
    c["linux"]["rootfsPropagation"] = json!("slave");
    let p = ctx.probe("slave", c, &[]);
    let got = propagation_of(&p, "/");
    assert!(
        !got.contains("shared:"),
        "slave: propagation of / is {got:?}"
    );
}
