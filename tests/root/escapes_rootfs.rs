//! Escapes through a hostile rootfs, performed for real: symlinks planted in
//! the image's /dev, a masked path set-up fed a fake /dev/null, a
//! /dev/console symlink, a racing helper swapping a mount destination for a
//! symlink to a host directory, a planted pid file symlink, uid 4294967295,
//! and file capabilities gained through inheritable ones. Each test asserts
//! the host is untouched: a canary file outside the rootfs keeps its content
//! and mode, /proc/sys/kernel/core_pattern is unchanged, no file appears in
//! host directories. See docs/rootfs-safety.md.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// A host file outside any rootfs whose content and mode must never change.
struct Canary {
    path: PathBuf,
}

const CANARY_TEXT: &str = "host canary: must never change\n";

impl Canary {
    fn new(ctx: &Ctx) -> Canary {
        let path = ctx.dir.path().join("host-canary");
        std::fs::write(&path, CANARY_TEXT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Canary { path }
    }

    fn assert_untouched(&self, what: &str) {
        let m = std::fs::symlink_metadata(&self.path).unwrap();
        assert!(m.file_type().is_file(), "{what}: canary replaced");
        assert_eq!(
            m.permissions().mode() & 0o7777,
            0o600,
            "{what}: the host canary's mode was changed"
        );
        assert_eq!(
            std::fs::read_to_string(&self.path).unwrap(),
            CANARY_TEXT,
            "{what}: the host canary was written"
        );
    }
}

fn core_pattern() -> String {
    std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap()
}

/// The default config on `rootfs`, without the tmpfs on /dev: the image's
/// own /dev entries are what cuddy sees.
fn config_without_dev_tmpfs(ctx: &Ctx, rootfs: &Path, args: &[&str]) -> Value {
    let mut c = ctx.config(args);
    c["root"]["path"] = json!(rootfs);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
    c
}

/// Replaces `rootfs/<rel>` by a symlink to `target`.
fn plant(rootfs: &Path, rel: &str, target: &Path) {
    let p = rootfs.join(rel);
    let _ = std::fs::remove_file(&p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, &p).unwrap();
}

/// Item 3 of issue 7 (config-linux.md "Default Devices"): with no tmpfs on
/// /dev, an image whose /dev/null, /dev/zero, ... and /dev/ptmx are symlinks
/// to a host file made cuddy chmod that host file 0666 (mknod's EEXIST was
/// ignored, then chmod followed the link before pivot_root). The devices
/// must be real nodes in the container and the host file untouched.
/// Fails without the fix (the canary becomes 0666).
#[test]
fn dev_symlinks_to_host_files_are_not_followed() {
    require_root!();
    let ctx = Ctx::new("esc-dev");
    let canary = Canary::new(&ctx);
    let rootfs = ctx.private_rootfs("rootfs");
    for d in ["null", "zero", "full", "random", "urandom", "tty", "ptmx"] {
        plant(&rootfs, &format!("dev/{d}"), &canary.path);
    }
    let id = ctx.id("a");
    let c = config_without_dev_tmpfs(
        &ctx,
        &rootfs,
        &[
            "/bin/sh",
            "-c",
            "for d in null zero full random urandom tty; do [ -c /dev/$d ] || echo NOT-A-DEVICE $d; done; \
             [ -L /dev/ptmx ] && echo PTMX-$(readlink /dev/ptmx); echo done > /dev/null; echo OK",
        ],
    );
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run with /dev symlinks");
    let so = stdout(&out);
    assert!(so.contains("OK") && !so.contains("NOT-A-DEVICE"), "{so}");
    assert!(so.contains("PTMX-pts/ptmx"), "{so}");
    canary.assert_untouched("/dev symlinks");
    ctx.assert_no_leftovers(&id);
    // The image's symlinks were replaced in the rootfs, not followed.
    let m = std::fs::symlink_metadata(rootfs.join("dev/null")).unwrap();
    assert!(!m.file_type().is_symlink());

    // A directory where a device belongs is refused clearly.
    std::fs::remove_file(rootfs.join("dev/zero")).unwrap();
    std::fs::create_dir(rootfs.join("dev/zero")).unwrap();
    let id = ctx.id("b");
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "dev/zero");
    assert!(stderr(&out).contains("directory"), "{}", stderr(&out));
    ctx.assert_no_leftovers(&id);
    canary.assert_untouched("/dev/zero directory");
}

/// runc CVE-2025-31133 (config-linux.md "Masked Paths"): masking bind
/// mounts /dev/null over the masked path; if the /dev/null used is one the
/// attacker replaced by a symlink (to a host file, or to
/// /proc/sys/kernel/core_pattern), the masked path becomes that file,
/// writable. cuddy masks only with a /dev/null fd checked to be char 1:3.
/// The attack: the image's /dev/null is a symlink to the canary (written to
/// through the masked path) and, in a second run, to core_pattern (only
/// read, never written: the host's core_pattern is not put at risk).
#[test]
fn masked_paths_never_use_a_fake_dev_null() {
    require_root!();
    let ctx = Ctx::new("esc-mask");
    let canary = Canary::new(&ctx);
    let before = core_pattern();
    let rootfs = ctx.private_rootfs("rootfs");
    std::fs::write(rootfs.join("secret"), "SECRET\n").unwrap();
    plant(&rootfs, "dev/null", &canary.path);
    let mut c = config_without_dev_tmpfs(
        &ctx,
        &rootfs,
        &[
            "/bin/sh",
            "-c",
            "echo [$(cat /secret)]; echo pwned > /secret; echo [$(cat /secret)]",
        ],
    );
    c["linux"]["maskedPaths"] = json!(["/secret", "/proc/kcore"]);
    let id = ctx.id("a");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run with a fake /dev/null");
    assert_eq!(stdout(&out), "[]\n[]\n", "the masked path is not /dev/null");
    canary.assert_untouched("masked path through /dev/null symlink");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("secret")).unwrap(),
        "SECRET\n"
    );
    ctx.assert_no_leftovers(&id);

    // /dev/null -> core_pattern: the masked path must read empty, not the
    // host's core_pattern. Read only.
    plant(
        &rootfs,
        "dev/null",
        Path::new("/proc/sys/kernel/core_pattern"),
    );
    c["process"]["args"] = json!(["/bin/sh", "-c", "echo [$(cat /secret)]"]);
    let id = ctx.id("b");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run with /dev/null -> core_pattern");
    assert_eq!(stdout(&out), "[]\n");
    assert_eq!(core_pattern(), before, "core_pattern changed");
    ctx.assert_no_leftovers(&id);
}

/// Receives the pty master sent over the console socket.
fn recv_fd(sock: RawFd) -> OwnedFd {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this fd for us.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}

/// Reads `fd` (a pty master) until `needle` shows up or EOF/EIO.
fn read_until(fd: RawFd, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(needle) {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 20_000) } <= 0 {
            break;
        }
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// runc CVE-2025-52565 (config.md "Process" terminal; runtime.md "create"):
/// /dev/console is bind mounted from the pty; an image whose /dev/console
/// is a symlink to a host file must not get that file mounted over or
/// written. cuddy removes the entry (never following it), creates a fresh
/// file with O_EXCL|O_NOFOLLOW and mounts onto that fd. The container then
/// writes to /dev/console: the canary must not change.
#[test]
fn dev_console_symlink_is_not_followed() {
    require_root!();
    let ctx = Ctx::new("esc-console");
    let canary = Canary::new(&ctx);
    let rootfs = ctx.private_rootfs("rootfs");
    plant(&rootfs, "dev/console", &canary.path);
    let mut c = config_without_dev_tmpfs(
        &ctx,
        &rootfs,
        &[
            "/bin/sh",
            "-c",
            "echo pwned > /dev/console; [ -c /dev/console ] && echo CONSOLE-$((40+2)); sleep 1",
        ],
    );
    c["process"]["terminal"] = json!(true);
    let sock = ctx.dir.path().join("console.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let id = ctx.id("a");
    let b = ctx.bundle("a", &c);
    let out = ctx.cuddy(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out, "create with a /dev/console symlink");
    let (conn, _) = l.accept().unwrap();
    let master = recv_fd(conn.as_raw_fd());
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let seen = read_until(master.as_raw_fd(), "CONSOLE-42");
    assert!(seen.contains("CONSOLE-42"), "{seen:?}");
    canary.assert_untouched("/dev/console symlink");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// Swaps `a` and `b` atomically (renameat2 RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) {
    let ca = std::ffi::CString::new(a.as_os_str().as_encoded_bytes()).unwrap();
    let cb = std::ffi::CString::new(b.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated paths.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
}

/// runc CVE-2024-45310 (mkdir of mount destinations through a racing
/// symlink creates directories on the host) and CVE-2021-30465 / CVE-2019-19921
/// (a destination swapped for a symlink between check and mount makes the
/// mount, or its read-only remount, land elsewhere); config.md "Mounts". A
/// helper swaps `/mnt/race` between a directory and a symlink to a host
/// directory, and `/mnt/ro` between a directory and a symlink to /proc, in
/// a tight loop while cuddy runs the container 50 times with a tmpfs on
/// /mnt/race/sub/dir and a read-only bind mount on /mnt/ro. Each
/// run may fail (cuddy refuses a destination that changed) but nothing may
/// ever appear in the host directory or in the bind source, and the
/// container can never write into the read-only bind.
#[test]
fn racing_mount_destination_symlinks_stay_inside() {
    require_root!();
    let ctx = Ctx::new("esc-race");
    let rootfs = ctx.private_rootfs("rootfs");
    let host_dir = ctx.dir.path().join("host-dir");
    std::fs::create_dir(&host_dir).unwrap();
    let src = ctx.dir.path().join("bind-src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("marker"), "m").unwrap();
    // Pair A: /mnt/race <-> a symlink to the host dir (mkdir of the tmpfs
    // destination below it). Pair B: /mnt/ro <-> a symlink to /proc (the
    // read-only remount of the bind must not land on another mount).
    let pairs = [
        (
            rootfs.join("mnt/race"),
            rootfs.join("mnt/spare"),
            host_dir.clone(),
        ),
        (
            rootfs.join("mnt/ro"),
            rootfs.join("mnt/spare-ro"),
            PathBuf::from("/proc"),
        ),
    ];
    for (dir, spare, target) in &pairs {
        std::fs::create_dir_all(dir).unwrap();
        symlink(target, spare).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, pairs) = (stop.clone(), pairs.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (dir, spare, _) in &pairs {
                    exchange(dir, spare);
                }
                n += 1;
            }
            n
        })
    };
    let mut c = ctx.config(&[
        "/bin/sh",
        "-c",
        "touch /mnt/ro/pwned /mnt/race/sub/dir/x 2>/dev/null; true",
    ]);
    c["root"]["path"] = json!(rootfs);
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/mnt/race/sub/dir", "type": "tmpfs",
        "source": "tmpfs", "options": ["nosuid"]}));
    mounts.push(json!({"destination": "/mnt/ro", "type": "bind",
        "source": src, "options": ["bind", "ro"]}));
    let (mut ok, mut refused) = (0, 0);
    for i in 0..50 {
        let id = ctx.id(&format!("r{i}"));
        let out = ctx.run(&id, &c);
        if out.status.success() {
            ok += 1;
        } else {
            refused += 1;
            eprintln!("run {i} refused: {}", stderr(&out).trim());
        }
        let _ = ctx.cuddy(&["delete", "--force", &id]);
        let listing: Vec<_> = std::fs::read_dir(&host_dir).unwrap().flatten().collect();
        assert!(
            listing.is_empty(),
            "run {i}: created on the host: {listing:?}"
        );
        let listing: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            listing,
            ["marker"],
            "run {i}: the read-only bind source was written"
        );
        ctx.assert_no_leftovers(&id);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("race: {ok} runs succeeded, {refused} refused, {swaps} swaps");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(host_dir.to_str().unwrap()),
        "host dir got a mount"
    );
}

/// Issue 7 item 4 (runtime.md "create"; runc's --pid-file): the pid file
/// must be written without following a symlink planted at the target or at
/// the temporary name (the old one was predictable: `.NAME.tmp.<pid>`). The
/// attack plants both, the temporary one right after cuddy is spawned, when
/// its pid is known. Fails without the fix (the canary receives the pid).
#[test]
fn pid_file_through_planted_symlinks() {
    require_root!();
    let ctx = Ctx::new("esc-pid");
    let canary = Canary::new(&ctx);
    let dir = ctx.dir.path().join("piddir");
    std::fs::create_dir(&dir).unwrap();
    let pidfile = dir.join("pid");
    symlink(&canary.path, &pidfile).unwrap();
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "100"]));
    let mut cmd = ctx.cmd();
    cmd.args(["create", "--bundle", b.to_str().unwrap(), "--pid-file"])
        .arg(&pidfile)
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let _ = symlink(&canary.path, dir.join(format!(".pid.tmp.{}", child.id())));
    assert!(child.wait().unwrap().success(), "create");
    canary.assert_untouched("pid file");
    let m = std::fs::symlink_metadata(&pidfile).unwrap();
    assert!(m.file_type().is_file(), "the pid file is a regular file");
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, ctx.state(&id)["pid"].as_i64().unwrap());
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// Issue 7 item 5 (config.md "POSIX process" user): uid/gid 4294967295 is
/// `(uid_t)-1`, "unchanged" to setresuid/setresgid, so the process ran as
/// root. Refused in config.json (each field named), `exec --user`, and
/// `exec --process`. Fails without the fix (the process runs as root).
#[test]
fn uid_minus_one_is_refused() {
    require_root!();
    let ctx = Ctx::new("esc-uid");
    for (field, user) in [
        ("process.user.uid", json!({"uid": 4294967295u32, "gid": 0})),
        ("process.user.gid", json!({"uid": 0, "gid": 4294967295u32})),
        ("process.user.uid", json!({"uid": 2147483648u32, "gid": 0})),
        (
            "process.user.additionalGids[1]",
            json!({"uid": 0, "gid": 0, "additionalGids": [1, 4294967295u32]}),
        ),
    ] {
        let mut c = ctx.config(&["/bin/id"]);
        c["process"]["user"] = user;
        let id = ctx.id("c");
        let out = ctx.run(&id, &c);
        assert_fails_with(&out, field);
        assert!(
            stderr(&out).contains("outside 0..=2147483647"),
            "{}",
            stderr(&out)
        );
        ctx.assert_no_leftovers(&id);
    }

    let id = ctx.id("x");
    let b = ctx.bundle("x", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let out = ctx.cuddy(&["exec", "--user", "4294967295", &id, "/bin/id"]);
    assert_fails_with(&out, "process.user.uid");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let out = ctx.cuddy(&["exec", "--user", "0:4294967295", &id, "/bin/id"]);
    assert_fails_with(&out, "process.user.gid");
    let p = ctx.dir.path().join("process.json");
    let mut proc_ = ctx.config(&["/bin/id"])["process"].clone();
    proc_["user"] = json!({"uid": 4294967295u32, "gid": 4294967295u32});
    std::fs::write(&p, proc_.to_string()).unwrap();
    let out = ctx.cuddy(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_fails_with(&out, "--process");
    assert!(
        stderr(&out).contains("process.user.uid"),
        "{}",
        stderr(&out)
    );
    // Only the init is left in the container.
    let ps = ctx.cuddy(&["ps", "--format", "json", &id]);
    assert_ok(&ps, "ps");
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// The ids line of /proc/self/status ("Uid:", "Gid:", "Groups:") as words.
fn status_ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} in {status}"))[key.len()..]
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

/// config.md "POSIX process" user, and cuddy's check after the switch: the
/// process runs with exactly the uid, gid and additional gids asked for
/// (real, effective, saved and fs ids), for create and exec.
#[test]
fn process_runs_with_exactly_the_asked_ids() {
    require_root!();
    let ctx = Ctx::new("esc-ids");
    let mut c = ctx.config(&["/bin/cat", "/proc/self/status"]);
    c["process"]["user"] = json!({"uid": 1234, "gid": 2345, "additionalGids": [20, 10]});
    let id = ctx.id("a");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run as 1234:2345");
    let s = stdout(&out);
    assert_eq!(status_ids(&s, "Uid:"), [1234; 4]);
    assert_eq!(status_ids(&s, "Gid:"), [2345; 4]);
    assert_eq!(status_ids(&s, "Groups:"), [10, 20]);
    ctx.assert_no_leftovers(&id);

    let id = ctx.id("b");
    let b = ctx.bundle("b", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let out = ctx.cuddy(&[
        "exec",
        "--user",
        "77:88",
        "-g",
        "99",
        &id,
        "/bin/cat",
        "/proc/self/status",
    ]);
    assert_ok(&out, "exec --user 77:88");
    let s = stdout(&out);
    assert_eq!(status_ids(&s, "Uid:"), [77; 4]);
    assert_eq!(status_ids(&s, "Gid:"), [88; 4]);
    assert_eq!(status_ids(&s, "Groups:"), [99]);
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// runc GHSA-f3fp-gc8g-vw66 (config.md "POSIX process" capabilities): a
/// process whose config lists no inheritable capabilities must have CapInh
/// 0 and no ambient capabilities (even when `ambient` lists some), so
/// execve of a program with file inheritable capabilities (`+ei`) gains
/// nothing. The attack: a copy of busybox with `cap_net_admin,cap_sys_admin+ei`
/// run as uid 1000 with those capabilities in the bounding set.
#[test]
fn no_capabilities_through_inheritable_file_caps() {
    require_root!();
    let ctx = Ctx::new("esc-inh");
    let rootfs = ctx.private_rootfs("rootfs");
    let capbin = rootfs.join("capbin");
    std::fs::create_dir(&capbin).unwrap();
    std::fs::copy(rootfs.join("bin/busybox"), capbin.join("cat")).unwrap();
    let st = Command::new("setcap")
        .arg("cap_net_admin,cap_sys_admin+ei")
        .arg(capbin.join("cat"))
        .status()
        .unwrap();
    assert!(st.success(), "setcap");
    let mut c = ctx.config(&["/capbin/cat", "/proc/self/status"]);
    c["root"]["path"] = json!(rootfs);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let caps = json!(["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_KILL"]);
    c["process"]["capabilities"] = json!({
        "bounding": caps, "permitted": caps, "effective": caps, "ambient": caps
    });
    let id = ctx.id("a");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run the file-capability program");
    let s = stdout(&out);
    for key in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
        let line = s.lines().find(|l| l.starts_with(key)).unwrap();
        let v = u64::from_str_radix(line[key.len()..].trim(), 16).unwrap();
        assert_eq!(v, 0, "{line} (gained through inheritable file caps)\n{s}");
    }
    ctx.assert_no_leftovers(&id);
}
