//! Docker's default seccomp profile (config-linux.md "Seccomp"), exactly as
//! dockerd 20.10.24 (Debian 12's docker.io) puts it in config.json for a
//! default `docker run` on amd64: tests/fixtures/seccomp-docker.json, made by
//! integration/seccomp/docker_profile.py (see tests/fixtures/README.md).
//!
//! The container gets what Docker gives it: Docker's default capabilities
//! (bounding, effective, permitted; moby oci/caps/defaults.go) and
//! `noNewPrivileges` false, so the filter is loaded before the capabilities
//! are dropped and must allow cuddy's own remaining set-up. Observed with
//! busybox and the probe's `--syscall NR ARGS` mode (x86-64 numbers).

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

// x86-64 syscall numbers.
const PERSONALITY: &str = "135";
const KEYCTL: &str = "250";
const UNSHARE: &str = "272";
const CLONE3: &str = "435";
/// fchmodat2 (Linux 6.6): newer than the profile, whose highest x86-64
/// syscall is futex_waitv (449).
const FCHMODAT2: &str = "452";
const EPERM: i64 = libc::EPERM as i64;
const ENOSYS: i64 = libc::ENOSYS as i64;

fn docker_profile() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seccomp-docker.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// A config as `docker run` would shape it: Docker's capabilities, no
/// no_new_privs, a writable /tmp (Docker's rootfs is writable; the fixture's
/// is shared and read-only), and `seccomp` when given.
fn docker_config(ctx: &Ctx, args: &[&str], seccomp: Option<Value>) -> Value {
    let mut c = ctx.config(args);
    let caps = json!(DOCKER_CAPS);
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    c["process"]["noNewPrivileges"] = json!(false);
    c["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                     "options": ["nosuid", "nodev", "mode=1777"]}),
    );
    if let Some(sc) = seccomp {
        c["linux"]["seccomp"] = sc;
    }
    c
}

/// The probe's `--syscall` result (ret, errno), with or without the profile.
fn syscall(ctx: &Ctx, name: &str, seccomp: Option<Value>, args: &[&str]) -> (i64, i64) {
    let mut a = vec!["--syscall"];
    a.extend_from_slice(args);
    let v = ctx.probe(name, docker_config(ctx, &[], seccomp), &a);
    // The same id again (`Ctx::id` is deterministic): the run left nothing.
    ctx.assert_no_leftovers(&ctx.id(name));
    (v["ret"].as_i64().unwrap(), v["errno"].as_i64().unwrap())
}

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let r = nix::sys::utsname::uname().unwrap();
    let rel = r.release().to_string_lossy().to_string();
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    let n = |s: Option<&str>| s.and_then(|s| s.parse().ok()).unwrap_or(0);
    (n(it.next()), n(it.next()))
}

#[test]
fn docker_profile_fixture_is_as_dockerd_sends_it() {
    // No root needed: the fixture's shape (dockerd's resolution for amd64
    // with the default capabilities; moby seccomp_linux.go setupSeccomp).
    let p = docker_profile();
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
    // 20.10 has no defaultErrnoRet: the spec's default, EPERM.
    assert!(p.get("defaultErrnoRet").is_none());
    assert_eq!(
        p["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    let names: Vec<&str> = p["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["names"].as_array().unwrap().iter())
        .map(|n| n.as_str().unwrap())
        .collect();
    // CAP_SYS_ADMIN rules dropped (unshare, mount), CAP_SYS_CHROOT kept
    // (chroot), amd64-only kept (arch_prctl), other arches dropped.
    for absent in ["unshare", "mount", "setns", "keyctl", "s390_runtime_instr"] {
        assert!(!names.contains(&absent), "{absent} must not be allowed");
    }
    for present in ["chroot", "arch_prctl", "ptrace", "clone", "clone3"] {
        assert!(names.contains(&present), "{present} must be in a rule");
    }
    // No Docker-only keys left for the runtime to reject.
    for r in p["syscalls"].as_array().unwrap() {
        for k in r.as_object().unwrap().keys() {
            assert!(
                ["names", "action", "errnoRet", "args"].contains(&k.as_str()),
                "{k}"
            );
        }
    }
}

#[test]
fn docker_profile_runs_busybox_and_exec() {
    require_root!();
    let ctx = Ctx::new("scdock");
    // Common commands of a Docker container's life, in the foreground.
    let script = "ls / >/dev/null && cat /etc/passwd >/dev/null && mkdir /tmp/d \
                  && ls -d /tmp/d && echo x > /tmp/d/f && cat /tmp/d/f && ps >/dev/null \
                  && sleep 0.1 && id -u && grep Seccomp: /proc/self/status";
    let run_id = ctx.id("run");
    let out = ctx.run(
        &run_id,
        &docker_config(&ctx, &["sh", "-c", script], Some(docker_profile())),
    );
    assert_ok(&out, "run busybox under Docker's profile");
    let o = stdout(&out);
    assert!(o.contains("/tmp/d\nx\n0\n"), "{o}");
    assert!(o.contains("Seccomp:\t2"), "filter mode: {o}");
    ctx.assert_no_leftovers(&run_id);

    // A long-running container and `exec` processes in it: they get the
    // container's linux.seccomp too.
    let id = ctx.id("a");
    let c = docker_config(&ctx, &["sleep", "300"], Some(docker_profile()));
    let b = ctx.bundle("a", &c);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let out = ctx.cuddy(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ps | grep -c 'sleep 300'; ls /proc/1 >/dev/null && grep Seccomp: /proc/self/status",
    ]);
    assert_ok(&out, "exec");
    assert!(stdout(&out).contains("Seccomp:\t2"), "{}", stdout(&out));
    // unshare(0) is denied in the exec process as well (no CAP_SYS_ADMIN).
    let out = ctx.cuddy(&["exec", &id, "/bin/probe", "--syscall", UNSHARE, "0"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ret"].as_i64(), v["errno"].as_i64()),
        (Some(-1), Some(EPERM)),
        "{v}"
    );
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn docker_profile_denies_with_eperm() {
    require_root!();
    let ctx = Ctx::new("scdkep");
    let sc = || Some(docker_profile());
    // Without the profile (same capabilities) these succeed, so the EPERM
    // below is the filter's: unshare(0) does nothing; personality(0xffffffff)
    // only reads the persona.
    assert_eq!(syscall(&ctx, "un0", None, &[UNSHARE, "0"]), (0, 0));
    // Not allowed without CAP_SYS_ADMIN: the default action, ERRNO with the
    // spec's default errno EPERM (20.10 sends no defaultErrnoRet).
    assert_eq!(syscall(&ctx, "un", sc(), &[UNSHARE, "0"]), (-1, EPERM));
    // CLONE_NEWUSER: the classic container-escape starting point.
    assert_eq!(
        syscall(&ctx, "unuser", sc(), &[UNSHARE, "0x10000000"]),
        (-1, EPERM)
    );
    // keyctl is not in the profile at all (below its highest syscall: the
    // default action, not the ENOSYS stub). KEYCTL_GET_KEYRING_ID of the
    // process keyring.
    assert_eq!(
        syscall(&ctx, "key", sc(), &[KEYCTL, "0", "-2", "0"]),
        (-1, EPERM)
    );
    // personality: only the listed values are allowed (SCMP_CMP_EQ rules).
    assert_eq!(
        syscall(&ctx, "persq", sc(), &[PERSONALITY, "0xffffffff"]).1,
        0
    );
    assert_eq!(
        syscall(&ctx, "persrx", sc(), &[PERSONALITY, "0x0400000"]),
        (-1, EPERM),
        "READ_IMPLIES_EXEC"
    );
}

#[test]
fn docker_profile_enosys_for_clone3_and_newer_syscalls() {
    require_root!();
    let ctx = Ctx::new("scdkns");
    let sc = || Some(docker_profile());
    // clone3: the profile's own rule, ERRNO 38 (ENOSYS) without
    // CAP_SYS_ADMIN, so glibc falls back to clone.
    assert_eq!(
        syscall(&ctx, "clone3", sc(), &[CLONE3, "0", "0"]),
        (-1, ENOSYS)
    );
    // Newer than the profile: the ENOSYS stub, not the default EPERM, so
    // libc falls back as on an old kernel. fchmodat2 exists from Linux 6.6:
    // there, unfiltered, it fails with another errno (bad fd/pointer).
    let (_, native) = syscall(&ctx, "fchm0", None, &[FCHMODAT2, "-1", "0", "0", "0"]);
    if kernel_version() >= (6, 6) {
        assert_ne!(native, ENOSYS, "fchmodat2 exists on this kernel");
    }
    assert_eq!(
        syscall(&ctx, "fchm", sc(), &[FCHMODAT2, "-1", "0", "0", "0"]),
        (-1, ENOSYS)
    );
    assert_eq!(syscall(&ctx, "high", sc(), &["1000"]), (-1, ENOSYS));
}
