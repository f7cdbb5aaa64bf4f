//! The crash-injection tier (issue 11): cuddy SIGKILLed before a system call
//! of a verb, as an orchestrator kills a runtime on a timeout. After every
//! kill, `state` and `list` must say something true (runtime.md "State"),
//! `delete --force` must end within a bound, and the host must be exactly as
//! before: no process, no cgroup directory in any hierarchy, no mount, no
//! state entry, no fifo. See harness.rs for the mechanism (strace
//! `-e inject=NAME:signal=SIGKILL:when=K`) and docs/reliability.md.
//!
//! The targeted tests kill at the points issue 11 names (each failed before
//! its fix); the sweeps kill at every system call of create, start, exec,
//! kill, delete and run (every 8th in the QEMU guest).

mod harness;

use harness::{Point, Sweep, Verb, strace_missing, sweep};

use crate::common::*;
use crate::require_root;

/// The first point after the traced line that `after` matches.
fn point_after(points: &[Point], after: impl Fn(&str) -> bool) -> Point {
    let i = points
        .iter()
        .position(|p| after(&p.line))
        .unwrap_or_else(|| panic!("no such syscall in the trace"));
    points[i + 1].clone()
}

/// The first call named `name` after the first line `after` matches: its
/// count among calls of that name does not depend on timing (unlike reads
/// of a non-blocking fifo).
fn first_after(
    points: &[Point],
    after: impl Fn(&str) -> bool,
    name: impl Fn(&str) -> bool,
) -> Point {
    let i = points
        .iter()
        .position(|p| after(&p.line))
        .unwrap_or_else(|| panic!("no such syscall in the trace"));
    points[i + 1..]
        .iter()
        .find(|p| name(&p.name))
        .unwrap_or_else(|| panic!("no such call after {}", points[i].line))
        .clone()
}

macro_rules! require_strace {
    () => {
        require_root!();
        if let Some(why) = strace_missing() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Issue 11 item 2: a create killed between the first cgroup mkdir and the
/// first state write left cgroup directories that `delete --force` could not
/// find (config-linux.md "Control groups": the runtime creates the cgroup;
/// runtime.md "Lifecycle" step 12 / "Operations" delete: its resources go).
#[test]
fn create_killed_after_first_cgroup_mkdir_leaks_nothing() {
    require_strace!();
    let mut s = Sweep::new(Verb::Create, "crmk");
    let points = s.points();
    let p = point_after(&points, |l| {
        l.starts_with("mkdir(\"/sys/fs/cgroup/") && l.contains(&s.id) && l.ends_with("= 0")
    });
    assert!(s.kill_at(&p), "cuddy was not killed at {}", p.line);
    s.check_truth("after the first cgroup mkdir");
    s.cleanup_after("after the first cgroup mkdir");
    assert!(s.failures.is_empty(), "{:#?}", s.failures);
}

/// Issue 11 item 1: a create killed after the init was released (it sent
/// Ready and waits on the exec fifo) must not leave a container that cannot
/// be deleted, started or killed: no lock is inherited by the init, and
/// every verb is bounded (runtime.md "Lifecycle", "Operations").
#[test]
fn create_killed_after_the_init_is_ready_is_deletable() {
    require_strace!();
    let mut s = Sweep::new(Verb::Create, "crrdy");
    let points = s.points();
    // The final state.json goes in with a rename after Ready.
    let p = point_after(&points, |l| {
        l.contains("clone3(") || l.starts_with("clone(")
    });
    let last = points
        .iter()
        .rev()
        .find(|q| q.name == "renameat" || q.name == "rename")
        .expect("the final state write");
    for q in [p, last.clone()] {
        s.prepare();
        assert!(s.kill_at(&q), "cuddy was not killed at {}", q.line);
        s.check_truth(&q.line);
        let at = format!("killed before {}", q.line);
        // Bounded: the harness kills a hung cuddy after 60 s (a failure).
        let start = s.ctx.cuddy(&["start", &s.id]);
        assert!(start.status.code().is_some(), "{at}: start hung");
        let kill = s.ctx.cuddy(&["kill", &s.id, "KILL"]);
        assert!(kill.status.code().is_some(), "{at}: kill hung");
        assert!(
            !stderr(&kill).contains("creat"),
            "{at}: kill refuses a dead create: {}",
            stderr(&kill)
        );
        s.cleanup_after(&at);
    }
    assert!(s.failures.is_empty(), "{:#?}", s.failures);
}

/// Issue 11 item 1 where no cgroup finds the init (crun's
/// `--cgroup-manager disabled`): a create killed after the init reported
/// Ready, before the final state write, left an init blocked on the exec
/// fifo forever that nothing recorded. It now dies with its creator (and its
/// pid is recorded for `delete`).
#[test]
fn create_killed_after_the_init_is_ready_leaves_no_init_without_a_cgroup() {
    require_strace!();
    let mut s = Sweep::new(Verb::Create, "crnocg");
    s.global = vec!["--cgroup-manager".into(), "disabled".into()];
    let points = s.points();
    let last = points
        .iter()
        .rev()
        .find(|q| q.name == "renameat" || q.name == "rename")
        .expect("the final state write")
        .clone();
    assert!(s.kill_at(&last), "cuddy was not killed at {}", last.line);
    s.check_truth("no cgroup, killed before the final state write");
    s.cleanup_after("no cgroup, killed before the final state write");
    assert!(s.failures.is_empty(), "{:#?}", s.failures);
}

/// Issue 11 item 3: a start killed after the init read its go-ahead (the
/// fifo opened, "0" read) but before start finished: the container runs, so
/// `state` must not say "created", a second `start` must end (refused: it is
/// running), and a plain `delete` must refuse it (runtime.md "State":
/// created = the process "has neither exited nor executed the
/// user-specified program"; "Operations": delete of a running container is
/// an error).
#[test]
fn start_killed_after_the_init_was_released_reads_running() {
    require_strace!();
    let mut s = Sweep::new(Verb::Start, "strel");
    let points = s.points();
    // Killed at the fifo's removal, the first unlink after the read of "0":
    // the init is released, the fifo still there. (Not "the read after the
    // '0'": how many EAGAIN reads come before the "0" depends on timing, so
    // the n-th read of the reference trace may never come under load.)
    let p = first_after(
        &points,
        |l| l.starts_with("read(") && l.contains("\"0\""),
        |name| name.starts_with("unlink"),
    );
    s.prepare();
    assert!(s.kill_at(&p), "cuddy was not killed at {}", p.line);
    wait_until("the user program to run", || {
        harness::processes_with(&s.id)
            .iter()
            .any(|p| harness::cmdline(*p).starts_with("sh"))
    });
    s.check_truth("start killed after it read \"0\"");
    assert_eq!(s.status(), "running");
    let again = s.ctx.cuddy(&["start", &s.id]);
    assert_fails_with(&again, "running");
    let del = s.ctx.cuddy(&["delete", &s.id]);
    assert_fails_with(&del, "running");
    assert_eq!(s.status(), "running", "the plain delete must leave it");
    s.cleanup_after("start killed after it read \"0\"");
    assert!(s.failures.is_empty(), "{:#?}", s.failures);
}

#[test]
fn sweep_create() {
    require_root!();
    sweep(Verb::Create, "swcr");
}

#[test]
fn sweep_start() {
    require_root!();
    sweep(Verb::Start, "swst");
}

#[test]
fn sweep_exec() {
    require_root!();
    sweep(Verb::Exec, "swex");
}

#[test]
fn sweep_kill() {
    require_root!();
    sweep(Verb::Kill, "swki");
}

#[test]
fn sweep_delete() {
    require_root!();
    sweep(Verb::Delete, "swde");
}

#[test]
fn sweep_run() {
    require_root!();
    sweep(Verb::Run, "swru");
}
