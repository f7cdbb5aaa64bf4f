//! config.md "Root" and "Mounts"; config-linux.md "Devices", "Default
//! Devices", "Masked Paths", "Readonly Paths", "Rootfs Mount Propagation":
//! what the container really sees, through the probe.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// A mount made on the host by the test (under its own temp dir), detached
/// on drop so a failing test leaves nothing behind.
struct HostMount(PathBuf);

impl HostMount {
    /// Binds `dir` onto itself and makes it a shared mount.
    fn shared_bind(dir: &Path) -> HostMount {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .expect("bind");
        let m = HostMount(dir.to_path_buf());
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .expect("make shared");
        m
    }

    fn tmpfs(dir: &Path) -> HostMount {
        std::fs::create_dir_all(dir).unwrap();
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .expect("mount tmpfs");
        HostMount(dir.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// The last (topmost) mount at `mp` in the probe's view.
fn mount_at<'a>(p: &'a Value, mp: &str) -> &'a Value {
    p["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["mount_point"] == mp)
        .unwrap_or_else(|| panic!("no mount at {mp}: {:#}", p["mounts"]))
}

fn has_mount(p: &Value, mp: &str) -> bool {
    p["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mount_point"] == mp)
}

fn opts(m: &Value, key: &str) -> Vec<String> {
    m[key]
        .as_str()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect()
}

fn has_opt(m: &Value, key: &str, o: &str) -> bool {
    opts(m, key).iter().any(|x| x == o)
}

fn dev<'a>(p: &'a Value, path: &str) -> &'a Value {
    p["dev"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in /dev: {:#}", p["dev"]))
}

fn add_mounts(c: &mut Value, extra: Value) {
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .extend(extra.as_array().unwrap().iter().cloned());
}

/// root.readonly true: "/" is a read-only mount; false: writes land in the
/// bundle's rootfs.
#[test]
fn root_readonly_true_and_false() {
    require_root!();
    let ctx = Ctx::new("rootro");
    let p = ctx.probe("ro", ctx.config(&[]), &["/"]);
    assert_eq!(p["paths"]["/"]["fs_readonly"], true);
    assert_eq!(p["paths"]["/"]["writable"], false);
    assert!(has_opt(mount_at(&p, "/"), "options", "ro"));
    let id = ctx.id("rosh");
    let out = ctx.run(&id, &ctx.config(&["/bin/sh", "-c", "echo x > /written"]));
    assert!(
        !out.status.success(),
        "a write to a read-only root succeeded"
    );
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );

    let rootfs = ctx.private_rootfs("rw-rootfs");
    let mut c = ctx.config(&[]);
    c["root"] = json!({"path": rootfs, "readonly": false});
    let p = ctx.probe("rw", c.clone(), &["/"]);
    assert_eq!(p["paths"]["/"]["fs_readonly"], false);
    assert_eq!(p["paths"]["/"]["writable"], true);
    assert!(has_opt(mount_at(&p, "/"), "options", "rw"));
    c["process"]["args"] = json!(["/bin/sh", "-c", "echo hello > /written"]);
    let id = ctx.id("rwsh");
    assert_ok(&ctx.run(&id, &c), "write to a writable root");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("written")).unwrap(),
        "hello\n"
    );
    ctx.assert_no_leftovers(&id);
}

/// root.path relative to the bundle (here a symlink in the bundle to a
/// private rootfs), with --bundle itself absolute and relative.
#[test]
fn root_path_relative_to_bundle() {
    require_root!();
    let ctx = Ctx::new("rootrel");
    let rootfs = ctx.private_rootfs("the-rootfs");
    std::fs::write(rootfs.join("marker"), "rel").unwrap();
    let mut c = ctx.config(&["/bin/probe", "/marker"]);
    c["root"]["path"] = json!("rootfs");
    let b = ctx.bundle("rel", &c);
    std::os::unix::fs::symlink(&rootfs, b.join("rootfs")).unwrap();

    let id = ctx.id("abs");
    let out = ctx.cuddy(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(&out, "run with a relative root.path");
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["paths"]["/marker"]["exists"], true);
    assert_eq!(p["paths"]["/marker"]["size"], 3);
    ctx.assert_no_leftovers(&id);

    // --bundle relative to cuddy's working directory.
    let id = ctx.id("relb");
    let mut cmd = ctx.cmd();
    cmd.current_dir(ctx.dir.path())
        .args(["run", "--bundle", "bundle-rel", &id]);
    let out = output_with_timeout(cmd, 60);
    assert_ok(&out, "run with a relative --bundle");
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["paths"]["/marker"]["exists"], true);
    ctx.assert_no_leftovers(&id);
}

/// Bind mounts (dir, file, recursive, read-only, relative source), flags,
/// tmpfs data, atime flags, missing (nested) destinations, and the order.
#[test]
fn mounts_in_order_with_options() {
    require_root!();
    let ctx = Ctx::new("mnt");
    let d = ctx.dir.path();
    let hostdir = d.join("hostdir");
    std::fs::create_dir(&hostdir).unwrap();
    std::fs::write(hostdir.join("f"), "hello").unwrap();
    let hostfile = d.join("hostfile");
    std::fs::write(&hostfile, "file!!").unwrap();
    // A host dir with a submount: rbind carries it, bind does not.
    let rdir = d.join("rdir");
    std::fs::create_dir(&rdir).unwrap();
    let sub = HostMount::tmpfs(&rdir.join("sub"));
    std::fs::write(rdir.join("sub/in-sub"), "x").unwrap();

    let mut c = ctx.config(&[]);
    c["root"]["readonly"] = json!(false);
    c["root"]["path"] = json!(ctx.private_rootfs("rootfs"));
    add_mounts(
        &mut c,
        json!([
            {"destination": "/mnt/a/b/c", "type": "bind", "source": hostdir, "options": ["bind"]},
            {"destination": "/etc/hostfile", "type": "bind", "source": hostfile, "options": ["bind", "ro"]},
            {"destination": "/rbind", "type": "bind", "source": rdir, "options": ["rbind"]},
            {"destination": "/plainbind", "type": "bind", "source": rdir, "options": ["bind"]},
            {"destination": "/robind", "source": hostdir, "options": ["bind", "ro"]},
            {"destination": "/flags", "type": "bind", "source": hostdir,
             "options": ["bind", "nosuid", "nodev", "noexec"]},
            {"destination": "/relsrc", "type": "bind", "source": "rel-src", "options": ["bind"]},
            {"destination": "/tmpfs/x/y", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m", "mode=1750", "nosuid"]},
            {"destination": "/noatime", "type": "tmpfs", "source": "tmpfs", "options": ["noatime"]},
            {"destination": "/strictatime", "type": "tmpfs", "source": "tmpfs", "options": ["strictatime"]},
            {"destination": "/rro", "type": "bind", "source": rdir, "options": ["rbind", "rro"]},
            // Order: a tmpfs, then a mount inside it, then a second tmpfs on
            // top of the first mount point.
            {"destination": "/order", "type": "tmpfs", "source": "first", "options": []},
            {"destination": "/order/inner", "type": "tmpfs", "source": "second", "options": []},
            {"destination": "/stacked", "type": "tmpfs", "source": "lower", "options": ["size=1m"]},
            {"destination": "/stacked", "type": "tmpfs", "source": "upper", "options": ["size=2m"]}
        ]),
    );
    let b = ctx.bundle("m", &c);
    std::fs::create_dir(b.join("rel-src")).unwrap();
    std::fs::write(b.join("rel-src/rel-marker"), "relative").unwrap();
    let id = ctx.id("m");
    let mut args = vec!["/bin/probe"];
    let paths = [
        "/mnt/a/b/c/f",
        "/etc/hostfile",
        "/rbind/sub/in-sub",
        "/plainbind/sub/in-sub",
        "/robind",
        "/robind/f",
        "/flags/f",
        "/relsrc/rel-marker",
        "/tmpfs/x/y",
        "/order/inner",
        "/rro/sub",
        "/rro",
    ];
    args.extend(paths);
    let mut c2 = c.clone();
    c2["process"]["args"] = json!(args);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&c2).unwrap()).unwrap();
    let out = ctx.cuddy(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(&out, "run probe");
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pa = &p["paths"];

    // bind of a directory, at a nested destination that did not exist.
    assert_eq!(pa["/mnt/a/b/c/f"]["size"], 5);
    assert_eq!(pa["/mnt/a/b/c/f"]["writable"], true);
    // bind of a file (created as a file), read-only.
    assert_eq!(pa["/etc/hostfile"]["type"], "file");
    assert_eq!(pa["/etc/hostfile"]["size"], 6);
    assert_eq!(pa["/etc/hostfile"]["writable"], false);
    assert!(has_opt(mount_at(&p, "/etc/hostfile"), "options", "ro"));
    // rbind carries the submount, bind does not.
    assert_eq!(pa["/rbind/sub/in-sub"]["exists"], true);
    assert!(has_mount(&p, "/rbind/sub"));
    assert_eq!(pa["/plainbind/sub/in-sub"]["exists"], false);
    assert!(!has_mount(&p, "/plainbind/sub"));
    // ro bind (type omitted: "bind" in options is enough).
    assert_eq!(pa["/robind"]["fs_readonly"], true);
    assert_eq!(pa["/robind/f"]["writable"], false);
    assert!(has_opt(mount_at(&p, "/robind"), "options", "ro"));
    // nosuid, nodev, noexec, and still writable.
    let m = mount_at(&p, "/flags");
    for o in ["nosuid", "nodev", "noexec", "rw"] {
        assert!(has_opt(m, "options", o), "/flags lacks {o}: {m}");
    }
    // A source relative to the bundle.
    assert_eq!(pa["/relsrc/rel-marker"]["size"], 8);
    // tmpfs with size= and mode=, nested missing destination.
    let m = mount_at(&p, "/tmpfs/x/y");
    assert_eq!(m["fstype"], "tmpfs");
    assert!(has_opt(m, "super_options", "size=1024k"), "{m}");
    assert!(has_opt(m, "super_options", "mode=1750"), "{m}");
    assert!(has_opt(m, "options", "nosuid"), "{m}");
    assert_eq!(pa["/tmpfs/x/y"]["mode"], "1750");
    // atime flags.
    assert!(has_opt(mount_at(&p, "/noatime"), "options", "noatime"));
    let m = mount_at(&p, "/strictatime");
    assert!(
        !has_opt(m, "options", "relatime") && !has_opt(m, "options", "noatime"),
        "{m}"
    );
    assert!(has_opt(mount_at(&p, "/order"), "options", "relatime"));
    // rro: read-only recursively, the submount included.
    assert!(has_opt(mount_at(&p, "/rro"), "options", "ro"));
    assert!(
        has_opt(mount_at(&p, "/rro/sub"), "options", "ro"),
        "rro did not reach the submount"
    );
    assert_eq!(pa["/rro"]["fs_readonly"], true);
    assert_eq!(pa["/rro/sub"]["fs_readonly"], true);
    // The host's submount stays writable.
    assert!(
        !nix::sys::statvfs::statvfs(&rdir.join("sub"))
            .unwrap()
            .flags()
            .contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
    );

    // Order: /order/inner is mounted inside the /order tmpfs; the second
    // /stacked tmpfs is on top of the first.
    assert_eq!(mount_at(&p, "/order/inner")["source"], "second");
    assert_eq!(pa["/order/inner"]["type"], "dir");
    assert_eq!(mount_at(&p, "/stacked")["source"], "upper");
    let seq: Vec<&str> = p["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            ["/order", "/order/inner", "/stacked"].contains(&m["mount_point"].as_str().unwrap())
        })
        .map(|m| m["source"].as_str().unwrap())
        .collect();
    assert_eq!(seq, ["first", "second", "lower", "upper"]);

    // Nothing of the container's mounts is visible on the host.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(&format!("{}/", c["root"]["path"].as_str().unwrap())),
        "container mount leaked to the host"
    );
    drop(sub);
    ctx.assert_no_leftovers(&id);
}

/// The propagation options of a mount (config.md "Mounts", mount(8)).
#[test]
fn mount_propagation_options() {
    require_root!();
    let ctx = Ctx::new("prop");
    let shared = ctx.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let host = HostMount::shared_bind(&shared);
    let mut c = ctx.config(&[]);
    add_mounts(
        &mut c,
        json!([
            {"destination": "/tmp/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]},
            {"destination": "/tmp/private", "type": "tmpfs", "source": "tmpfs", "options": ["rprivate"]},
            {"destination": "/tmp/slave", "type": "bind", "source": shared, "options": ["rbind", "rslave"]},
            {"destination": "/tmp/priv-bind", "type": "bind", "source": shared, "options": ["rbind", "rprivate"]},
            {"destination": "/tmp/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]}
        ]),
    );
    let p = ctx.probe("p", c, &[]);
    let prop = |mp: &str| {
        mount_at(&p, mp)["propagation"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        prop("/tmp/shared").starts_with("shared:"),
        "{}",
        prop("/tmp/shared")
    );
    assert_eq!(prop("/tmp/private"), "");
    assert!(
        prop("/tmp/slave").starts_with("master:"),
        "{}",
        prop("/tmp/slave")
    );
    assert!(!prop("/tmp/slave").contains("shared:"));
    assert_eq!(prop("/tmp/priv-bind"), "");
    assert_eq!(prop("/tmp/unbindable"), "unbindable");
    drop(host);
}

/// config-linux.md "Rootfs Mount Propagation", seen on "/" with a rootfs that
/// is a shared mount on the host.
#[test]
fn rootfs_propagation() {
    require_root!();
    let ctx = Ctx::new("rprop");
    let rootfs = ctx.private_rootfs("rootfs");
    let host = HostMount::shared_bind(&rootfs);
    for (prop, want_master, want_shared) in [
        (None, true, false),
        (Some("rslave"), true, false),
        (Some("rprivate"), false, false),
        (Some("rshared"), true, true),
    ] {
        let mut c = ctx.config(&[]);
        c["root"]["path"] = json!(rootfs);
        if let Some(v) = prop {
            c["linux"]["rootfsPropagation"] = json!(v);
        }
        let p = ctx.probe(prop.unwrap_or("default"), c, &[]);
        let got = mount_at(&p, "/")["propagation"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            got.contains("master:"),
            want_master,
            "{prop:?}: propagation of / is {got:?}"
        );
        assert_eq!(
            got.contains("shared:"),
            want_shared,
            "{prop:?}: propagation of / is {got:?}"
        );
    }
    // The container's mounts never reached the host's shared mount.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(&format!("{}/proc", rootfs.display())), "{mi}");
    drop(host);
}

/// A symlink in the image pointing at a host directory: mounts and created
/// destinations resolve inside the rootfs, the host dir stays untouched.
#[test]
fn symlinks_in_rootfs_do_not_escape() {
    require_root!();
    let ctx = Ctx::new("escape");
    let outside = ctx.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let rootfs = ctx.private_rootfs("rootfs");
    std::os::unix::fs::symlink(&outside, rootfs.join("escape")).unwrap();
    let hostfile = ctx.dir.path().join("hostfile");
    std::fs::write(&hostfile, "data").unwrap();
    let mut c = ctx.config(&[]);
    c["root"]["path"] = json!(rootfs);
    add_mounts(
        &mut c,
        json!([
            {"destination": "/escape/x", "type": "tmpfs", "source": "tmpfs", "options": []},
            {"destination": "/escape/f", "type": "bind", "source": hostfile, "options": ["bind"]}
        ]),
    );
    let p = ctx.probe("p", c, &["/escape/x", "/escape/f"]);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was created in the host dir"
    );
    // Inside the container /escape/x is where the symlink resolves within
    // the rootfs.
    let inner = outside.to_str().unwrap();
    assert_eq!(mount_at(&p, &format!("{inner}/x"))["fstype"], "tmpfs");
    assert_eq!(p["paths"]["/escape/x"]["type"], "dir");
    assert_eq!(p["paths"]["/escape/f"]["size"], 4);
    let inside = rootfs.join(outside.strip_prefix("/").unwrap());
    assert!(
        inside.join("x").is_dir(),
        "destination not created inside the rootfs"
    );
    assert!(inside.join("f").is_file());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

/// config-linux.md "Default Devices" and the /dev symlinks.
#[test]
fn default_devices_and_symlinks() {
    require_root!();
    let ctx = Ctx::new("defdev");
    let p = ctx.probe("p", ctx.config(&[]), &["/dev/null"]);
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let d = dev(&p, &format!("/dev/{name}"));
        assert_eq!(d["type"], "char", "{d}");
        assert_eq!(
            (d["major"].as_u64().unwrap(), d["minor"].as_u64().unwrap()),
            (major, minor),
            "{d}"
        );
        assert_eq!(d["mode"], "0666", "{d}");
    }
    assert_eq!(
        p["paths"]["/dev/null"]["writable"], true,
        "the device policy must allow /dev/null"
    );
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let d = dev(&p, &format!("/dev/{name}"));
        assert_eq!(d["type"], "symlink", "{d}");
        assert_eq!(d["target"], target, "{d}");
    }
    assert_eq!(dev(&p, "/dev/pts/ptmx")["type"], "char");
    // The defaults are usable.
    let id = ctx.id("use");
    let out = ctx.run(&id, &ctx.config(&["/bin/sh", "-c", "head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo ok"]));
    assert_ok(&out, "use default devices");
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["4", "4", "ok"]
    );
}

/// linux.devices: created with type, numbers, mode and owner; allowed by
/// the device cgroup.
#[test]
fn linux_devices() {
    require_root!();
    let ctx = Ctx::new("devs");
    let mut c = ctx.config(&[]);
    c["linux"]["devices"] = json!([
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 0, "gid": 0},
        {"path": "/dev/owned", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 1234, "gid": 5678},
        {"path": "/dev/sub/dir/myzero", "type": "c", "major": 1, "minor": 5},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620}
    ]);
    let p = ctx.probe(
        "p",
        c.clone(),
        &[
            "/dev/mynull",
            "/dev/owned",
            "/dev/sub/dir/myzero",
            "/dev/myfifo",
        ],
    );
    let d = dev(&p, "/dev/mynull");
    assert_eq!(
        (d["type"].as_str(), d["major"].as_u64(), d["minor"].as_u64()),
        (Some("char"), Some(1), Some(3))
    );
    assert_eq!(d["mode"], "0600");
    let pa = &p["paths"];
    assert_eq!(
        (
            pa["/dev/mynull"]["uid"].as_u64(),
            pa["/dev/mynull"]["gid"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        pa["/dev/mynull"]["writable"], true,
        "the cgroup device policy must allow a configured device"
    );
    assert_eq!(pa["/dev/owned"]["mode"], "0640");
    assert_eq!(
        (
            pa["/dev/owned"]["uid"].as_u64(),
            pa["/dev/owned"]["gid"].as_u64()
        ),
        (Some(1234), Some(5678))
    );
    assert_eq!(pa["/dev/sub/dir/myzero"]["type"], "char");
    assert_eq!(
        pa["/dev/sub/dir/myzero"]["mode"], "0666",
        "fileMode defaults to 0666"
    );
    // A fifo ("p"): the probe reports it as "other" (neither char nor block).
    assert_eq!(pa["/dev/myfifo"]["type"], "other");
    assert_eq!(pa["/dev/myfifo"]["mode"], "0620");

    c["process"]["args"] = json!([
        "/bin/sh",
        "-c",
        "echo hi > /dev/mynull && wc -c < /dev/mynull && head -c 3 /dev/sub/dir/myzero | wc -c && test -p /dev/myfifo && echo fifo"
    ]);
    let id = ctx.id("use");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "use configured devices");
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["0", "3", "fifo"]
    );
}

/// config-linux.md "Masked Paths" and "Readonly Paths"; missing ones are ignored.
#[test]
fn masked_and_readonly_paths() {
    require_root!();
    let ctx = Ctx::new("mask");
    let rootfs = ctx.private_rootfs("rootfs");
    std::fs::write(rootfs.join("etc/secret"), "top secret").unwrap();
    std::fs::create_dir_all(rootfs.join("etc/secretdir")).unwrap();
    std::fs::write(rootfs.join("etc/secretdir/inner"), "hidden").unwrap();
    std::fs::create_dir_all(rootfs.join("etc/rodir")).unwrap();
    std::fs::write(rootfs.join("etc/rodir/file"), "ro").unwrap();
    std::fs::write(rootfs.join("etc/rofile"), "ro").unwrap();
    let mut c = ctx.config(&[]);
    c["root"] = json!({"path": rootfs, "readonly": false});
    c["linux"]["maskedPaths"] = json!(["/etc/secret", "/etc/secretdir", "/does/not/exist"]);
    c["linux"]["readonlyPaths"] = json!(["/etc/rodir", "/etc/rofile", "/not/there/either"]);
    let p = ctx.probe(
        "p",
        c.clone(),
        &[
            "/etc/secret",
            "/etc/secretdir",
            "/etc/secretdir/inner",
            "/etc/rodir",
            "/etc/rodir/file",
            "/etc/rofile",
            "/etc",
            "/does/not/exist",
        ],
    );
    let pa = &p["paths"];
    assert_eq!(pa["/etc/secret"]["size"], 0);
    assert_eq!(
        pa["/etc/secret"]["type"], "char",
        "a masked file is /dev/null bound over it"
    );
    assert_eq!(pa["/etc/secretdir"]["type"], "dir");
    assert_eq!(pa["/etc/secretdir"]["fs_readonly"], true);
    assert_eq!(pa["/etc/secretdir"]["writable"], false);
    assert_eq!(pa["/etc/secretdir/inner"]["exists"], false);
    let m = mount_at(&p, "/etc/secretdir");
    assert_eq!(m["fstype"], "tmpfs");
    assert!(has_opt(m, "options", "ro"), "{m}");
    assert_eq!(pa["/etc/rodir"]["fs_readonly"], true);
    assert_eq!(pa["/etc/rodir"]["writable"], false);
    assert_eq!(pa["/etc/rodir/file"]["writable"], false);
    assert_eq!(
        pa["/etc/rodir/file"]["size"], 2,
        "a read-only path keeps its content"
    );
    assert_eq!(pa["/etc/rofile"]["writable"], false);
    assert_eq!(pa["/etc/rofile"]["fs_readonly"], true);
    assert_eq!(
        pa["/etc"]["writable"], true,
        "only the listed paths are read-only"
    );
    // Missing paths were ignored and not created.
    assert_eq!(pa["/does/not/exist"]["exists"], false);
    assert!(!rootfs.join("does").exists() && !rootfs.join("not").exists());

    c["process"]["args"] = json!([
        "/bin/sh",
        "-c",
        "cat /etc/secret; echo x > /etc/rodir/new && echo WROTE; echo y > /etc/rofile && echo WROTE; echo end"
    ]);
    let id = ctx.id("sh");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "read masked, write read-only");
    assert_eq!(stdout(&out), "end\n", "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/secret")).unwrap(),
        "top secret"
    );
    assert!(!rootfs.join("etc/rodir/new").exists());
}

/// A mount of type "cgroup": /sys/fs/cgroup shows the container's own cgroup,
/// read-only, with and without a cgroup namespace.
#[test]
fn cgroup_mount_shows_own_cgroup() {
    require_root!();
    let ctx = Ctx::new("cgmnt");
    for cgroupns in [true, false] {
        let mut c = ctx.config(&[]);
        if !cgroupns {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "cgroup");
        }
        let tag = if cgroupns { "ns" } else { "nons" };
        let p = ctx.probe(tag, c.clone(), &[]);
        let base = mount_at(&p, "/sys/fs/cgroup");
        assert!(has_opt(base, "options", "ro"), "{base}");
        // The directory whose cgroup.procs to read: the v2 root, or one v1
        // hierarchy (pids when there, else memory, else the first).
        let dir = if base["fstype"] == "cgroup2" {
            "/sys/fs/cgroup".to_string()
        } else {
            let hs: Vec<&Value> = p["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| {
                    m["mount_point"]
                        .as_str()
                        .unwrap()
                        .starts_with("/sys/fs/cgroup/")
                        && m["fstype"] == "cgroup"
                })
                .collect();
            assert!(
                !hs.is_empty(),
                "no v1 hierarchy under /sys/fs/cgroup: {:#}",
                p["mounts"]
            );
            for h in &hs {
                assert!(has_opt(h, "options", "ro"), "{h}");
            }
            let pick = ["pids", "memory"]
                .iter()
                .find_map(|n| {
                    hs.iter()
                        .find(|h| h["mount_point"] == format!("/sys/fs/cgroup/{n}"))
                })
                .unwrap_or(&hs[0]);
            pick["mount_point"].as_str().unwrap().to_string()
        };
        c["process"]["args"] = json!([
            "/bin/sh",
            "-c",
            format!("cat {dir}/cgroup.procs; mkdir {dir}/cuddy-t-sub && echo MKDIR-OK; echo end")
        ]);
        let id = ctx.id(&format!("{tag}sh"));
        let out = ctx.run(&id, &c);
        assert_ok(&out, "read cgroup.procs");
        let s = stdout(&out);
        let pids: Vec<&str> = s.lines().take_while(|l| *l != "end").collect();
        // Only the container's own processes (sh as pid 1 and its cat): the
        // host's processes are in other cgroups.
        assert!(
            pids.contains(&"1"),
            "the container's init is not in {dir}: {s}"
        );
        assert!(
            pids.len() <= 2,
            "{dir} shows processes besides the container's: {s}"
        );
        assert!(!s.contains("MKDIR-OK"), "/sys/fs/cgroup must be read-only");
    }
}
