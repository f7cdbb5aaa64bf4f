//! Issue 8, mounts and the root filesystem: what clients send (podman 4.3's
//! `tmpcopyup`, `rootfsPropagation`, bind sources the container's user may
//! not reach, id-mapped mounts), seen from inside the container.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

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

/// podman 4.3 `--read-only` / `--tmpfs /tmp`, verbatim.
const PODMAN_TMP: &str = r#"{"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["rw","rprivate","nosuid","nodev","tmpcopyup"]}"#;

/// Fills the image's /tmp: a dir, a file, a set-uid file, a fifo, and two
/// symlinks at host objects outside the rootfs (which a copy that follows
/// symlinks would read). Ids are offset by `base` (the userns mapping).
fn hostile_tmp(rootfs: &Path, host: &Path, base: u32) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let t = rootfs.join("tmp");
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir(&t).unwrap();
    std::fs::create_dir(t.join("sub")).unwrap();
    std::fs::write(t.join("sub/f"), "hello").unwrap();
    std::fs::write(t.join("suid"), "x").unwrap();
    nix::unistd::mkfifo(
        &t.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o620),
    )
    .unwrap();
    symlink(host.join("canary"), t.join("evil")).unwrap();
    symlink(host, t.join("evildir")).unwrap();
    let own = |p: &str, uid: u32, gid: u32, mode: u32| {
        let p = t.join(p);
        std::os::unix::fs::lchown(&p, Some(base + uid), Some(base + gid)).unwrap();
        if mode != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    own("sub/f", 1000, 1001, 0o644);
    own("sub", 1234, 2345, 0o705);
    own("suid", 0, 0, 0o4755);
    own("fifo", 5, 6, 0o620);
    own("evil", 7, 8, 0);
    own(".", 0, 0, 0o1777);
    // Fixed times, directories last (filling one changes its mtime).
    let st = std::process::Command::new("touch")
        .args(["-h", "-d", "@1000000000"])
        .args(["sub/f", "suid", "fifo", "evil", "sub", "."].map(|p| t.join(p)))
        .status()
        .unwrap();
    assert!(st.success());
}

const TMP_SCRIPT: &str = "cd /tmp && stat -c '%n %u %g %a %Y %F' . sub sub/f suid fifo evil; \
    echo link=$(readlink evil); cat sub/f; echo; cat evil 2>/dev/null || echo evil-not-followed; \
    ls evildir 2>/dev/null || echo evildir-not-followed; echo new > /tmp/new; \
    grep ' /tmp ' /proc/self/mountinfo";

/// config.md#mounts with crun's/runc's `tmpcopyup` extension: the tmpfs
/// starts with the image's /tmp, ownership, modes, times, fifos and
/// symlinks kept. Attack: symlinks in the image's /tmp at a host file and a
/// host dir are copied as symlinks, never followed (the host canary is not
/// copied and stays untouched); writes stay in the tmpfs.
#[test]
fn tmpcopyup_copies_the_image_dir_without_following_symlinks() {
    require_root!();
    let ctx = Ctx::new("copyup");
    let host = ctx.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("canary"), "HOST SECRET").unwrap();
    let rootfs = ctx.private_rootfs("rootfs");
    for (name, base, userns) in [("plain", 0, false), ("userns", 100000, true)] {
        hostile_tmp(&rootfs, &host, base);
        let mut c = ctx.config(&[]);
        c["root"] = json!({"path": rootfs, "readonly": true});
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::from_str(PODMAN_TMP).unwrap());
        if userns {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
            c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
        }
        let out = sh(&ctx, name, c, TMP_SCRIPT);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[..6],
            &[
                ". 0 0 1777 1000000000 directory",
                "sub 1234 2345 705 1000000000 directory",
                "sub/f 1000 1001 644 1000000000 regular file",
                "suid 0 0 4755 1000000000 regular file",
                "fifo 5 6 620 1000000000 fifo",
                "evil 7 8 777 1000000000 symbolic link",
            ],
            "{name}: {out}"
        );
        assert_eq!(
            lines[6],
            format!("link={}", host.join("canary").display()),
            "{name}"
        );
        assert_eq!(
            &lines[7..10],
            &["hello", "evil-not-followed", "evildir-not-followed"],
            "{name}"
        );
        assert!(
            lines[10].contains(" - tmpfs "),
            "{name}: /tmp is not a tmpfs: {out}"
        );
        assert!(lines[10].contains("nosuid,nodev"), "{name}: {out}");
        assert_eq!(
            std::fs::read_to_string(host.join("canary")).unwrap(),
            "HOST SECRET"
        );
        assert_eq!(
            std::fs::read_dir(&host).unwrap().count(),
            1,
            "host dir changed"
        );
        assert!(
            !rootfs.join("tmp/new").exists(),
            "{name}: the write reached the image"
        );
    }
}

/// tmpcopyup is a tmpfs option: elsewhere it is refused, naming the mount.
#[test]
fn tmpcopyup_on_a_bind_mount_is_refused() {
    require_root!();
    let ctx = Ctx::new("copyupbad");
    let mut c = ctx.config(&["/bin/true"]);
    c["mounts"].as_array_mut().unwrap().push(json!(
        {"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "tmpcopyup"]}
    ));
    let id = ctx.id("bind");
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "tmpcopyup");
    assert_fails_with(&out, "/mnt");
    ctx.assert_no_leftovers(&id);
}

fn userns(c: &mut Value, base: u32) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
}

/// config.md#mounts, runc 1.2's behaviour: a bind source is opened with the
/// runtime's privileges, so a source below a directory of mode 000 (which
/// the container's mapped root cannot traverse) works in a user-namespaced
/// container. The exact mount Docker 20.10 sends for `-v SRC:/mnt`.
#[test]
fn bind_source_behind_mode_000_dir_in_userns() {
    use std::os::unix::fs::PermissionsExt;
    require_root!();
    let ctx = Ctx::new("bind000");
    let locked = ctx.dir.path().join("locked");
    std::fs::create_dir_all(locked.join("data")).unwrap();
    std::fs::write(locked.join("data/f"), "through the runtime").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = ctx.config(&[]);
    userns(&mut c, 100000);
    let docker = format!(
        r#"{{"destination":"/mnt","type":"bind","source":"{}","options":["rbind","rprivate"]}}"#,
        locked.join("data").display()
    );
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::from_str(&docker).unwrap());
    let out = sh(
        &ctx,
        "docker",
        c.clone(),
        "cat /mnt/f; echo; grep ' /mnt ' /proc/self/mountinfo",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("through the runtime"), "{out}");
    // Not a peer of any host mount (the detached copy was made a slave).
    let mi = lines.next().unwrap_or_default();
    assert!(!mi.contains("shared:"), "{mi}");

    // With CAP_SYS_ADMIN the container could undo an attached tree's flags
    // or unmount its submounts (no kernel locks on it): a recursive or
    // read-only bind is then not attached from the runtime's fd, and the
    // unreachable source fails as it would by path.
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_ADMIN"));
    }
    c["process"]["args"] = json!(["/bin/true"]);
    let id = ctx.id("sysadmin");
    let out = ctx.run(&id, &c);
    assert!(
        !out.status.success(),
        "attached with CAP_SYS_ADMIN: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("/mnt"), "{}", stderr(&out));
    ctx.assert_no_leftovers(&id);
}

/// The filesystem type of the mount holding `p`, from mountinfo (for the
/// id-mapped mount tests: tmpfs before Linux 6.3, 9p and others refuse
/// MOUNT_ATTR_IDMAP). Not statfs: a 9p mount (the QEMU tier's shares)
/// reports the host filesystem's magic.
fn fstype(p: &Path) -> String {
    let p = p.canonicalize().unwrap();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut best = (0, String::new());
    for line in mi.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(mp), Some(dash)) = (f.get(4), f.iter().position(|x| *x == "-")) else {
            continue;
        };
        if p.starts_with(mp) && mp.len() >= best.0 {
            best = (mp.len(), f.get(dash + 1).unwrap_or(&"").to_string());
        }
    }
    best.1
}

/// config.md#posix-platform-mounts: `uidMappings`/`gidMappings` on a bind
/// mount (and `idmap` alone, which takes the container's mappings): a file
/// owned by host uid 1000 shows with the mapped ids inside.
#[test]
fn idmapped_bind_mounts() {
    require_root!();
    let ctx = Ctx::new("idmap");
    let src =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("idmap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    std::os::unix::fs::chown(src.join("f"), Some(1000), Some(1001)).unwrap();
    let script = "stat -c '%u %g' /mnt/id/f";
    // crun/podman's form: mappings on the mount, no user namespace.
    let mut c = ctx.config(&[]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt/id", "type": "bind", "source": src,
        "options": ["rbind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 5000, "size": 2000}],
        "gidMappings": [{"containerID": 0, "hostID": 7000, "size": 2000}]
    }));
    let id = ctx.id("maps");
    let b = ctx.bundle("maps", &{
        let mut c = c.clone();
        c["process"]["args"] = json!(["/bin/sh", "-c", script]);
        c
    });
    let out = ctx.cuddy(&["run", "--bundle", b.to_str().unwrap(), &id]);
    let fs = fstype(&src);
    // ext4, xfs, btrfs take id-mapped mounts since 5.12-5.15.
    let supported = ["ext4", "xfs", "btrfs"].contains(&fs.as_str());
    if !out.status.success() && !supported && stderr(&out).contains("MOUNT_ATTR_IDMAP") {
        eprintln!(
            "skipped: the filesystem of {} ({fs}) has no id-mapped mounts",
            src.display()
        );
        let _ = std::fs::remove_dir_all(&src);
        return;
    }
    assert_ok(&out, "id-mapped mount with mappings");
    assert_eq!(stdout(&out).trim(), "6000 8001");
    ctx.assert_no_leftovers(&id);
    // `idmap` alone in a user-namespaced container: the container's maps,
    // so host ids show unchanged inside.
    let mut c = ctx.config(&[]);
    userns(&mut c, 100000);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt/id", "type": "bind", "source": src, "options": ["rbind", "idmap"]
    }));
    assert_eq!(sh(&ctx, "own", c, script).trim(), "1000 1001");
    // On a non-bind mount it is refused, naming the mount.
    let mut c = ctx.config(&["/bin/true"]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt/id", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]
    }));
    let id = ctx.id("bad");
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "bind mounts only");
    ctx.assert_no_leftovers(&id);
    let _ = std::fs::remove_dir_all(&src);
}
