//! Crash safety (issue 12 item 4): a panicking test and a SIGKILLed test
//! binary leave nothing behind.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::require_root;

/// A test body that panics while it holds a running sandbox: unwinding
/// drops the `Running`, which removes everything.
#[test]
fn a_panicking_test_leaves_nothing() {
    require_root!();
    let mut seen = None;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let r = sandbox().args(["sleep", "1000"]).spawn().unwrap();
        seen = Some((r.id().to_string(), r.pid()));
        panic!("the test failed while its sandbox ran");
    }));
    assert!(res.is_err());
    let (id, pid) = seen.unwrap();
    assert_gone(Path::new(STATE), &id, pid);
}

/// Env var that turns this test binary into the victim below.
const VICTIM: &str = "CUDDY_SANDBOX_TEST_VICTIM";
/// The uid (and gid) the victim's sandbox runs as, when set.
const VICTIM_UID: &str = "CUDDY_SANDBOX_TEST_VICTIM_UID";

/// Not a test of its own: the process the next test SIGKILLs. It starts a
/// sandbox on the state root given in the env var, prints its id and init
/// pid, and waits to be killed. Ignored: it is no test, and runs only as
/// that child (`--ignored --exact`).
#[test]
#[ignore = "the child process of the crash tests, started by start_victim"]
fn victim_holds_a_sandbox_until_killed() {
    let Some(state) = std::env::var_os(VICTIM) else {
        return;
    };
    let mut b = sandbox().state_root(state).args(["sleep", "1000"]);
    if let Some(uid) = std::env::var(VICTIM_UID).ok().and_then(|u| u.parse().ok()) {
        b = b.user(uid, uid);
    }
    let r = b.spawn().unwrap();
    println!("SANDBOX {} {}", r.id(), r.pid());
    std::thread::sleep(std::time::Duration::from_secs(600));
}

/// Starts the victim (this binary, one test, VICTIM set) and reads the
/// sandbox it made (as `uid` when given): (child, id, init pid).
fn start_victim(state: &Path, uid: Option<u32>) -> (std::process::Child, String, i32) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    if let Some(uid) = uid {
        cmd.env(VICTIM_UID, uid.to_string());
    }
    let mut child = cmd
        .args([
            "--ignored",
            "--exact",
            "crash::victim_holds_a_sandbox_until_killed",
            "--nocapture",
        ])
        .env(VICTIM, state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("SANDBOX ") {
            let (id, pid) = rest.split_once(' ').unwrap();
            return (child, id.to_string(), pid.parse().unwrap());
        }
    }
    let _ = child.kill();
    panic!("the victim printed no sandbox: {:?}", child.wait());
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

fn sigkill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// The test binary is SIGKILLed mid-sandbox: its helper sees the socket's
/// EOF and removes the sandbox at once.
#[test]
fn a_sigkilled_test_binary_takes_its_sandbox_down() {
    require_root!();
    let state = tempfile::Builder::new()
        .prefix("cuddy-sbx-kill-")
        .tempdir_in("/run")
        .unwrap();
    let (mut victim, id, pid) = start_victim(state.path(), None);
    assert!(alive(pid));
    sigkill(victim.id() as i32);
    let _ = victim.wait();
    assert!(
        eventually(20, || !alive(pid)),
        "sandbox init {pid} outlived its owner"
    );
    assert!(eventually(20, || !state
        .path()
        .join(".sandbox")
        .join(&id)
        .exists()));
    assert_gone(state.path(), &id, pid);
}

/// Both the test binary and the sandbox's helper are SIGKILLed: the
/// container's init dies with the helper (its parent-death signal, SIGKILL),
/// what is on disk stays, and the next sandbox on the same state root
/// removes it (state, cgroup, bundle).
#[test]
fn what_a_sigkilled_helper_leaves_is_swept_by_the_next_sandbox() {
    require_root!();
    helper_sigkilled(None);
}

/// The same as a non-root user: the parent-death signal is set after the
/// uid change (which clears it) and survives the execve of `sleep`.
#[test]
fn a_non_root_sandbox_dies_with_its_sigkilled_helper() {
    require_root!();
    helper_sigkilled(Some(65534));
}

fn helper_sigkilled(uid: Option<u32>) {
    let state = tempfile::Builder::new()
        .prefix("cuddy-sbx-sweep-")
        .tempdir_in("/run")
        .unwrap();
    let (mut victim, id, pid) = start_victim(state.path(), uid);
    if let Some(uid) = uid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.contains(&uid.to_string())),
            "{status}"
        );
    }
    let helper = parent_of(pid);
    assert_ne!(helper, victim.id() as i32);
    sigkill(helper);
    assert!(
        eventually(10, || !alive(pid)),
        "sandbox init {pid} outlived its SIGKILLed helper {helper}"
    );
    sigkill(victim.id() as i32);
    let _ = victim.wait();
    assert!(
        state.path().join(&id).exists(),
        "the state is left until the sweep"
    );
    let out = sandbox()
        .state_root(state.path())
        .args(["true"])
        .output()
        .unwrap();
    assert_eq!(out.status, 0);
    assert!(eventually(10, || !alive(pid)));
    assert_gone(state.path(), &id, pid);
    let left: Vec<_> = std::fs::read_dir(state.path().join(".sandbox"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
