//! cuddy's own binary is never reachable from inside a container (the
//! CVE-2019-5736 class): no exec through /proc magic links, no exec of the
//! cuddy binary, and cuddy's processes near the container are non-dumpable
//! until they exec the user's program.

use serde_json::json;

use crate::common::*;
use crate::require_root;

#[test]
fn no_exec_through_proc_magic_links() {
    require_root!();
    let ctx = Ctx::new("magic");
    let id = ctx.id("a");
    let out = ctx.run(&id, &ctx.config(&["/proc/self/exe"]));
    assert_fails_with(&out, "refusing to execute through a /proc magic link");
    ctx.assert_no_leftovers(&id);

    // Nor through exec into a running container.
    let id = ctx.id("b");
    let b = ctx.bundle("b", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let out = ctx.cuddy(&["exec", &id, "/proc/self/exe", "--version"]);
    assert_fails_with(&out, "magic link");
    assert_eq!(ctx.state(&id)["status"], "running");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn no_exec_of_the_cuddy_binary() {
    require_root!();
    let ctx = Ctx::new("selfexe");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/mnt/rt"]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt/rt", "type": "bind", "source": CUDDY, "options": ["bind", "ro"]
    }));
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "refusing to execute the cuddy binary");
    ctx.assert_no_leftovers(&id);
}

/// `readlink /proc/PID/exe` as root without CAP_SYS_PTRACE (dropped from
/// the bounding set, so execve does not give it back): what container root
/// with runc's default capabilities could try.
fn readlink_without_ptrace(pid: i64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new("readlink");
    c.arg("-v").arg(format!("/proc/{pid}/exe"));
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_CAPBSET_DROP, 19 /* CAP_SYS_PTRACE */, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().unwrap()
}

/// While a created container's init waits for `start` it runs cuddy's
/// binary; it is non-dumpable, so a process without CAP_SYS_PTRACE cannot
/// reach its /proc/PID/exe (the host's cuddy binary), even with the same
/// uid. After execve of the user's program that is possible as usual.
#[test]
fn waiting_init_is_not_dumpable() {
    require_root!();
    let ctx = Ctx::new("dump");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let out = readlink_without_ptrace(pid);
    assert!(
        !out.status.success(),
        "the waiting init's exe is reachable: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let out = readlink_without_ptrace(pid);
    assert_ok(&out, "readlink of the user's program");
    assert!(stdout(&out).contains("busybox"), "{}", stdout(&out));
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// Builds a copy of the fixture rootfs that carries the CVE-2019-5736 attack:
/// `/evil.sh` (`#!/proc/self/exe`), a fake dynamic loader at
/// `/lib64/ld-linux-x86-64.so.2` (tests/root/attack/fake_ld.c) and `/stage2`,
/// which tries to reopen the runtime's binary for writing through the O_PATH
/// fd the loader got from `/proc/self/exe`, and writes what happened to
/// `/result`: the kernel's error ("Read-only file system" when cuddy runs
/// sealed), or WRITABLE / BUSY when it reached the host binary's inode.
fn cve_2019_5736_rootfs(ctx: &Ctx) -> std::path::PathBuf {
    let rootfs = ctx.dir.path().join("evil-rootfs");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture_rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a the fixture");
    std::fs::create_dir_all(rootfs.join("lib64")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/root/attack/fake_ld.c");
    let out = std::process::Command::new("gcc")
        .args(["-static-pie", "-nostdlib", "-fPIE", "-O0", "-o"])
        .arg(rootfs.join("lib64/ld-linux-x86-64.so.2"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "gcc fake_ld.c: {}", stderr(&out));
    std::fs::write(rootfs.join("evil.sh"), "#!/proc/self/exe\n").unwrap();
    std::fs::write(
        rootfs.join("stage2"),
        r#"for i in $(seq 1 200); do
  if (exec 3<>/proc/self/fd/$1) 2>/tmp/err; then
    # Opened: write its own first byte back (no change if it works).
    if head -c1 /proc/self/fd/$1 | dd of=/proc/self/fd/$1 bs=1 count=1 conv=notrunc 2>/tmp/err; then
      echo WRITABLE > /result
    else
      cat /tmp/err > /result
    fi
    exit 0
  fi
  if ! grep -q busy /tmp/err; then cat /tmp/err > /result; exit 0; fi
  sleep 0.05
done
echo BUSY > /result
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    for f in ["evil.sh", "stage2"] {
        std::fs::set_permissions(rootfs.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    rootfs
}

fn wait_result(rootfs: &std::path::Path, started: &std::process::Output) -> String {
    let f = rootfs.join("result");
    // Bounded, but generous: under the QEMU tier's emulation the kernel
    // loads a debug cuddy over 9p as the "interpreter" before stage 2 runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(&f).is_ok_and(|s| s.ends_with('\n')) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out (120 s) waiting for the attack's /result; its start: {:?} {} {}; rootfs: {:?}",
            started.status,
            stdout(started),
            stderr(started),
            std::fs::read_dir(rootfs).map(|d| d
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let s = std::fs::read_to_string(&f).unwrap();
    std::fs::remove_file(&f).unwrap();
    s
}

/// CVE-2019-5736, as an image would do it with default capabilities: a
/// script whose interpreter is `#!/proc/self/exe` makes the kernel load the
/// exec'ing process's own binary (cuddy's, until it execs) with the image's
/// dynamic loader, which keeps an fd on it and later reopens it for writing.
/// cuddy runs container-side code only from a sealed view of its binary
/// (src/exeseal.rs): the reopen fails with EROFS, and the host binary is
/// unchanged. Both the entrypoint (`run`) and `exec` are attacked, with
/// each sealing method (the overlay view: EROFS on open; the sealed memfd:
/// EPERM on write).
#[test]
fn cve_2019_5736_host_binary_cannot_be_reopened_for_writing() {
    cve_2019_5736(None, "Read-only file system");
}

#[test]
fn cve_2019_5736_with_the_memfd_seal() {
    cve_2019_5736(Some("memfd"), "Operation not permitted");
}

fn cve_2019_5736(method: Option<&str>, want: &str) {
    require_root!();
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: the fake loader is x86-64 only");
        return;
    }
    let before = std::fs::read(CUDDY).unwrap();
    let ctx = Ctx::new(if method.is_some() {
        "cve5736m"
    } else {
        "cve5736"
    });
    let rootfs = cve_2019_5736_rootfs(&ctx);
    let cuddy = |args: &[&str]| {
        let mut c = ctx.cmd();
        c.args(args);
        if let Some(m) = method {
            c.env("CUDDY_EXESEAL", m);
        }
        output_with_timeout(c, 60)
    };

    // The entrypoint.
    let id = ctx.id("run");
    let mut c = ctx.config(&["/evil.sh"]);
    c["root"] = json!({"path": rootfs, "readonly": false});
    let b = ctx.bundle("run", &c);
    let started = cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(&started, "run -d");
    let r = wait_result(&rootfs, &started);
    assert!(r.contains(want), "entrypoint attack: {r}");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);

    // exec into a running container.
    let id = ctx.id("exec");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["root"] = json!({"path": rootfs, "readonly": false});
    let b = ctx.bundle("exec", &c);
    assert_ok(
        &cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let started = cuddy(&["exec", "-d", &id, "/evil.sh"]);
    assert_ok(&started, "exec -d");
    let r = wait_result(&rootfs, &started);
    assert!(r.contains(want), "exec attack: {r}");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);

    assert!(
        std::fs::read(CUDDY).unwrap() == before,
        "the cuddy binary changed"
    );
}

/// A container process with CAP_SYS_PTRACE can open /proc/<init>/exe of the
/// created-state init (it is then the container's own pid 1): that must be
/// the sealed view, which refuses writes.
#[test]
fn waiting_init_exe_is_sealed() {
    require_root!();
    let ctx = Ctx::new("sealed");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let exe = format!("/proc/{pid}/exe");
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .expect_err("the waiting init's exe opened for writing");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// A seccomp profile older than openat2/faccessat2 hides them behind the
/// ENOSYS stub (config-linux.md "Seccomp"): the checks made after the filter
/// is loaded (the working directory, the program) fall back to the classic
/// calls, and the container still runs, in its own directory, as the
/// process's user (`exec` too).
#[test]
fn program_and_cwd_checks_work_under_a_profile_without_openat2() {
    require_root!();
    let ctx = Ctx::new("noopenat2");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sh", "-c", "pwd; exec sleep 1000"]);
    c["process"]["cwd"] = json!("/etc");
    c["process"]["noNewPrivileges"] = json!(false);
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["openat2", "faccessat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    });
    let b = ctx.bundle("a", &c);
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let out = ctx.cuddy(&["exec", "--cwd", "/bin", &id, "/bin/sh", "-c", "pwd"]);
    assert_ok(&out, "exec under the profile");
    assert_eq!(stdout(&out).trim(), "/bin");
    let out = ctx.cuddy(&["exec", &id, "/proc/self/exe", "--version"]);
    assert!(!out.status.success(), "exec of the sealed cuddy binary ran");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}
