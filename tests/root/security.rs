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
