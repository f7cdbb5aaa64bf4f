//! The `Sandbox` builder and `Running`: output, exec, files, kill, waits,
//! timeouts, mounts. Each test checks that nothing is left afterwards.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::require_root;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The module documentation's example, as a test.
#[test]
fn doc_example() {
    require_root!();
    let out = sandbox()
        .args(["/bin/sh", "-c", "echo hello; echo $GREETING >&2; exit 3"])
        .env("GREETING", "hi")
        .memory(64 << 20)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"hi\n");
    assert!(!out.timed_out);
}

/// config.md#process (args, env, cwd, user), config.md#hostname.
#[test]
fn process_settings_apply() {
    require_root!();
    let out = sandbox()
        .args([
            "sh",
            "-c",
            "echo $(id -u):$(id -g) $(pwd) $(hostname) $A $PATH",
        ])
        .env("A", "b c")
        .cwd("/tmp")
        .user(1000, 1001)
        .hostname("box")
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "1000:1001 /tmp box b c /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn exec_files_and_wait_on_a_running_sandbox() {
    require_root!();
    let mut r = sandbox().args(["sleep", "1000"]).spawn().unwrap();
    let (id, pid) = (r.id().to_string(), r.pid());
    assert!(alive(pid));
    assert_eq!(r.wait_timeout(Duration::from_millis(50)).unwrap(), None);
    r.write_file("/tmp/in.txt", b"from the host\n").unwrap();
    let out = r
        .exec([
            "sh",
            "-c",
            "cat /tmp/in.txt; echo made > /tmp/out.txt; exit 4",
        ])
        .unwrap();
    assert_eq!(out.status, 4, "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"from the host\n");
    assert_eq!(r.read_file("/tmp/out.txt").unwrap(), b"made\n");
    let e = r.read_file("/no/such/file").unwrap_err().to_string();
    assert!(e.contains("/no/such/file"), "{e}");
    r.kill().unwrap();
    let out = r.wait().unwrap();
    assert_eq!(out.status, 137, "SIGKILL is 128+9");
    assert!(!out.timed_out);
    // Files stay readable until the sandbox is dropped.
    assert_eq!(r.read_file("/tmp/in.txt").unwrap(), b"from the host\n");
    drop(r);
    assert_gone(Path::new(STATE), &id, pid);
    assert_eq!(hash_tree(rootfs()), rootfs_hash());
}

/// write_file resolves inside the sandbox's root: a symlink planted by the
/// sandbox to the host's / leads back into the sandbox (RESOLVE_IN_ROOT).
#[test]
fn write_file_through_a_hostile_symlink_stays_inside() {
    require_root!();
    let canary = tempfile::tempdir().unwrap();
    let target = canary.path().join("pwned");
    let link_to = canary.path().to_string_lossy().into_owned();
    let mut r = sandbox()
        .args([
            "sh",
            "-c",
            &format!("mkdir -p {link_to} && ln -s {link_to} /esc && ln -s ../../../../.. /up && sleep 1000"),
        ])
        .spawn()
        .unwrap();
    assert!(eventually(10, || r
        .exec(["test", "-L", "/up"])
        .unwrap()
        .status
        == 0));
    r.write_file("/esc/pwned", b"x").unwrap();
    r.write_file("/up/tmp/up-file", b"y").unwrap();
    assert!(
        !target.exists(),
        "write_file followed a link out of the sandbox"
    );
    assert!(
        !Path::new("/tmp/up-file").exists(),
        "write_file escaped via .."
    );
    let inside = r
        .exec(["cat", &format!("{link_to}/pwned"), "/tmp/up-file"])
        .unwrap();
    assert_eq!(inside.stdout, b"xy", "{}", text(&inside.stderr));
}

/// read_file/write_file act on regular files only: the sandbox can put a
/// FIFO where a test looks (its open or read would block the helper, and
/// with it kill and timeouts). Refused naming the path, as a directory is;
/// the sandbox still answers afterwards. (Device nodes do not open at all:
/// the overlay is mounted nodev.)
#[test]
fn read_and_write_file_refuse_fifos_and_directories() {
    require_root!();
    let mut r = sandbox()
        .args(["sh", "-c", "mkfifo /fifo && touch /ready && sleep 1000"])
        .spawn()
        .unwrap();
    assert!(eventually(10, || r
        .exec(["test", "-e", "/ready"])
        .unwrap()
        .status
        == 0));
    for p in ["/fifo", "/tmp"] {
        let e = r.read_file(p).unwrap_err().to_string();
        assert!(
            e.contains(p) && e.contains("not a regular file"),
            "{p}: {e}"
        );
    }
    // No reader: opening the FIFO for writing fails at once (ENXIO).
    let e = r.write_file("/fifo", b"x").unwrap_err().to_string();
    assert!(e.contains("open /fifo"), "{e}");
    let e = r.write_file("/tmp", b"x").unwrap_err().to_string();
    assert!(e.contains("/tmp"), "{e}");
    assert_eq!(r.exec(["echo", "alive"]).unwrap().stdout, b"alive\n");
}

/// read_file/write_file carry files of up to 256 MiB: a larger file (the
/// sandbox chooses its size) is refused by its size before it is read, and
/// a larger write before anything is sent; the sandbox keeps working.
#[test]
fn files_over_the_limit_are_refused_by_size() {
    require_root!();
    let mut r = sandbox().args(["sleep", "1000"]).spawn().unwrap();
    // Sparse: 300 MiB of size, no memory in the tmpfs upper layer.
    let out = r.exec(["truncate", "-s", "300M", "/big"]).unwrap();
    assert_eq!(out.status, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let e = r.read_file("/big").unwrap_err().to_string();
    assert!(
        e.contains("/big") && e.contains("314572800 bytes") && e.contains("at most"),
        "{e}"
    );
    let e = r
        .write_file("/huge", vec![0u8; (256 << 20) + 1])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/huge") && e.contains("at most"), "{e}");
    assert!(r.read_file("/huge").is_err(), "nothing was written");
    r.write_file("/small", b"ok").unwrap();
    assert_eq!(r.read_file("/small").unwrap(), b"ok");
}

/// config.md#mounts: bind mounts (read-only and read-write) and tmpfs.
#[test]
fn mounts_and_tmpfs() {
    require_root!();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("data"), "hello").unwrap();
    let rw = tempfile::tempdir().unwrap();
    let out = sandbox()
        .mount(host.path(), "/ro", true)
        .mount(rw.path(), "/rw", false)
        .tmpfs("/scratch")
        .args([
            "sh",
            "-c",
            "cat /ro/data; echo x > /ro/new 2>/dev/null && echo WROTE; echo out > /rw/f; \
             grep -c ' /scratch tmpfs' /proc/mounts",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "hello1\n", "{}", text(&out.stderr));
    assert!(!host.path().join("new").exists());
    assert_eq!(
        std::fs::read_to_string(rw.path().join("f")).unwrap(),
        "out\n"
    );
}

#[test]
fn timeout_kills_and_is_reported() {
    require_root!();
    let mut r = sandbox()
        .args(["sh", "-c", "echo started; sleep 1000"])
        .timeout(Duration::from_secs(3))
        .spawn()
        .unwrap();
    let (id, pid) = (r.id().to_string(), r.pid());
    let out = r.wait().unwrap();
    assert!(out.timed_out);
    assert_eq!(out.status, cuddy::sandbox::TIMEOUT_STATUS);
    assert_eq!(out.stdout, b"started\n");
    assert!(!alive(pid));
    drop(r);
    assert_gone(Path::new(STATE), &id, pid);
}

/// Writes go to the sandbox's own upper layer: the rootfs is unchanged,
/// and the next sandbox starts clean.
#[test]
fn rootfs_is_copy_on_write() {
    require_root!();
    let before = rootfs_hash();
    let out = sandbox()
        .args([
            "sh",
            "-c",
            "rm -rf /etc/passwd /bin/true; echo x > /etc/hostname; mkdir /newdir",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status, 0, "{}", text(&out.stderr));
    let out = sandbox()
        .args([
            "sh",
            "-c",
            "test -e /etc/passwd && test -e /bin/true && ! test -e /newdir",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status, 0, "a sandbox saw another's changes");
    assert_eq!(hash_tree(rootfs()), before);
}

/// A large write_file while the sandbox ends with a large output: both
/// directions of the helper's socket carry megabytes at once.
#[test]
fn large_files_and_large_output_at_once() {
    require_root!();
    let mut r = sandbox()
        .args(["sh", "-c", "head -c 4000000 /dev/zero; echo done >&2"])
        .spawn()
        .unwrap();
    // By now the helper is sending its `Exited` frame (4 MB), unread.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let big = vec![7u8; 4_000_000];
    r.write_file("/tmp/big", &big).unwrap();
    let out = r.wait().unwrap();
    assert_eq!(out.stdout.len(), 4_000_000);
    assert_eq!(out.stderr, b"done\n");
    assert_eq!(r.read_file("/tmp/big").unwrap(), big);
}
