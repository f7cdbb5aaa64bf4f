//! `cuddy sandbox run` and `cuddy sandbox prune` (issue 12 item 5): the
//! command's stdio and exit status, limits, bind mounts, bad input, and
//! nothing left afterwards. (The library, `cuddy::Sandbox`, is tested by
//! the tests/sandbox crate.)

use std::io::Write;
use std::process::{Output, Stdio};

use crate::common::*;
use crate::require_root;

/// `cuddy --root <ctx root> sandbox run --rootfs <fixture> ARGS...` with
/// `input` on its stdin; a hang guard kills it after 60 s.
fn sandbox_run(ctx: &Ctx, args: &[&str], input: &[u8]) -> Output {
    let mut c = ctx.cmd();
    c.args(["sandbox", "run", "--rootfs"])
        .arg(fixture_rootfs())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn cuddy");
    // The owner (this `cuddy sandbox run`) names its sandbox after its pid
    // and start time; read while it cannot be reaped yet.
    OWNERS.with(|o| o.borrow_mut().push(owner_name(child.id())));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(input);
    drop(stdin);
    let guard = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    });
    let out = child.wait_with_output().expect("wait cuddy");
    drop(guard);
    out
}

thread_local! {
    /// The sandbox names of the `cuddy sandbox run`s this test started
    /// (each test runs in a thread of its own).
    static OWNERS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `sbx-PID-START`, the name a sandbox owned by process `pid` gets
/// (src/sandbox/sweep.rs): START is field 22 of /proc/PID/stat.
fn owner_name(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("owner's stat");
    let after = &stat[stat.rfind(')').expect("stat comm") + 2..];
    let start = after.split(' ').nth(19).expect("stat field 22");
    format!("sbx-{pid}-{start}")
}

/// Nothing left in the state root, and no cgroup of a sandbox this test
/// ran. (Only this test's: another test may hold a dead owner's cgroup on
/// purpose, as the prune test does until its prune.)
fn assert_nothing_left(ctx: &Ctx) {
    let left: Vec<_> = std::fs::read_dir(&ctx.root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let bundles: Vec<_> = std::fs::read_dir(ctx.root.join(".sandbox"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == ".sandbox") && bundles.is_empty(),
        "left in the state root: {left:?} {bundles:?}"
    );
    for name in OWNERS.with(|o| std::mem::take(&mut *o.borrow_mut())) {
        assert_no_cgroup(&name);
    }
}

/// runtime.md "Lifecycle" as a throwaway: stdin, stdout, stderr and the
/// exit code are the command's; the rootfs is not written to.
#[test]
fn stdio_and_exit_status_are_the_commands() {
    require_root!();
    let ctx = Ctx::new("sbx-stdio");
    let out = sandbox_run(
        &ctx,
        &[
            "--",
            "sh",
            "-c",
            "cat; echo to-err >&2; echo x > /etc/dirty; exit 7",
        ],
        b"from stdin\n",
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from stdin\n");
    assert_eq!(stderr(&out), "to-err\n");
    assert!(!fixture_rootfs().join("etc/dirty").exists());
    assert_nothing_left(&ctx);
}

/// config.md#process: -e, -w, -u reach the process.
#[test]
fn env_workdir_user_flags() {
    require_root!();
    let ctx = Ctx::new("sbx-flags");
    let out = sandbox_run(
        &ctx,
        &[
            "-e",
            "A=b c",
            "-w",
            "/tmp",
            "-u",
            "1000:1001",
            "--hostname",
            "h1",
            "--",
            "sh",
            "-c",
            "echo $A $(pwd) $(id -u):$(id -g) $(hostname)",
        ],
        b"",
    );
    assert_ok(&out, "sandbox run");
    assert_eq!(stdout(&out), "b c /tmp 1000:1001 h1\n");
    assert_nothing_left(&ctx);
}

/// 128+N for a command killed by signal N: the OOM killer's SIGKILL under
/// -m (config-linux.md#memory); 124 when --timeout kills it.
#[test]
fn signal_and_timeout_statuses() {
    require_root!();
    let ctx = Ctx::new("sbx-status");
    let out = sandbox_run(
        &ctx,
        &[
            "-m",
            "16m",
            "--",
            "awk",
            "BEGIN { s = \"0123456789abcdef\"; for (;;) s = s s }",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let out = sandbox_run(&ctx, &["--timeout", "0.3", "--", "sleep", "100"], b"");
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert_nothing_left(&ctx);
}

/// config.md#mounts: -v SRC:DST:ro is read-only, -v SRC:DST writable.
#[test]
fn volumes_ro_and_rw() {
    require_root!();
    let ctx = Ctx::new("sbx-vol");
    let ro = ctx.dir.path().join("ro");
    let rw = ctx.dir.path().join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("data"), "ro-data").unwrap();
    let vro = format!("{}:/ro:ro", ro.display());
    let vrw = format!("{}:/rw", rw.display());
    let out = sandbox_run(
        &ctx,
        &[
            "-v",
            &vro,
            "-v",
            &vrw,
            "--",
            "sh",
            "-c",
            "cat /ro/data; touch /ro/new 2>/dev/null && echo WROTE; echo out > /rw/f",
        ],
        b"",
    );
    assert_ok(&out, "sandbox run -v");
    assert_eq!(stdout(&out), "ro-data");
    assert!(!ro.join("new").exists());
    assert_eq!(std::fs::read_to_string(rw.join("f")).unwrap(), "out\n");
    assert_nothing_left(&ctx);
}

/// Bad input: a clear message, exit 1 (runtime) or 2 (usage), nothing left.
#[test]
fn bad_input_is_named() {
    require_root!();
    let ctx = Ctx::new("sbx-bad");
    let out = ctx.cuddy(&[
        "sandbox",
        "run",
        "--rootfs",
        "/nonexistent/rootfs",
        "--",
        "true",
    ]);
    assert_fails_with(&out, "/nonexistent/rootfs");
    let missing = "/nonexistent/src:/x";
    let r = fixture_rootfs().to_str().unwrap();
    let out = ctx.cuddy(&["sandbox", "run", "--rootfs", r, "-v", missing, "--", "true"]);
    assert_fails_with(&out, "/nonexistent/src");
    let out = ctx.cuddy(&["sandbox", "run", "--rootfs", r, "-v", "/a", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("SRC:DST"), "{}", stderr(&out));
    let out = ctx.cuddy(&["sandbox", "run", "--rootfs", r, "-m", "lots", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("lots"), "{}", stderr(&out));
    let out = ctx.cuddy(&["sandbox", "run", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_nothing_left(&ctx);
}

/// A SIGKILLed `cuddy sandbox run` leaves its container; `cuddy sandbox
/// prune` removes it (process, state, cgroup, bundle).
#[test]
fn prune_removes_what_a_killed_run_left() {
    require_root!();
    let ctx = Ctx::new("sbx-prune");
    let mut c = ctx.cmd();
    c.args(["sandbox", "run", "--rootfs"])
        .arg(fixture_rootfs())
        .args(["--", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    /// Kills the `cuddy sandbox run` (by pid) if the test fails early.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(c.spawn().expect("spawn"));
    let name = |pid: u32| -> Option<String> {
        std::fs::read_dir(&ctx.root)
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(&format!("sbx-{pid}-")))
    };
    wait_until("the sandbox to run", || {
        name(child.0.id()).is_some_and(|n| {
            let out = ctx.cuddy(&["state", &n]);
            out.status.success() && stdout(&out).contains("\"running\"")
        })
    });
    let id = name(child.0.id()).unwrap();
    let init: i32 = ctx.state(&id)["pid"].as_i64().unwrap() as i32;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // The init dies with its owner (its parent-death signal is SIGKILL);
    // the state, the cgroup and the bundle stay until the prune.
    wait_until("the sandbox's init to die with its owner", || {
        std::fs::read_to_string(format!("/proc/{init}/stat")).map_or(true, |s| s.contains(") Z"))
    });
    assert!(ctx.root.join(&id).exists(), "the state is left for prune");
    let out = ctx.cuddy(&["sandbox", "prune"]);
    assert_ok(&out, "sandbox prune");
    assert_eq!(stdout(&out), format!("{id}\n"));
    assert_no_cgroup(&id);
    assert_nothing_left(&ctx);
}
