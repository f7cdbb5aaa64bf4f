//! Concurrent commands on one container id (issue 11's race tier): only
//! outcomes the state machine allows (runtime.md "Lifecycle"), no hang,
//! nothing left behind.

use crate::common::*;
use crate::require_root;

/// Twenty `delete --force` of one container at once: every one succeeds
/// (runc: `delete --force` of a container that is already gone succeeds),
/// whichever removes it; the losers, which waited on the lock of a
/// directory that is gone by then, must not fail with ENOENT.
#[test]
fn concurrent_delete_force_of_one_container_all_succeed() {
    require_root!();
    let ctx = Ctx::new("rdel");
    for round in 0..5 {
        let id = ctx.id(&format!("r{round}"));
        let b = ctx.bundle(&id, &ctx.config(&["/bin/probe", "--sleep"]));
        assert_ok(
            &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
            "create",
        );
        let root = &ctx.root;
        let outs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..20)
                .map(|_| {
                    let id = &id;
                    s.spawn(move || {
                        let mut c = std::process::Command::new(CUDDY);
                        c.arg("--root").arg(root).args(["delete", "--force", id]);
                        output_with_timeout(c, 60)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &outs {
            assert_ok(o, "concurrent delete --force");
        }
        ctx.assert_no_leftovers(&id);
    }
}

/// The seconds of a `sleep` that marks one test's leftover child, found by
/// its command line: `slot` (one per use, 1–9) then this test process's
/// pid, so two tests running at once never see each other's child (slots
/// once overlapped, and a run test found the delete test's child alive).
fn marker_secs(slot: u32) -> String {
    format!("{slot}{:07}", std::process::id() % 10_000_000)
}

/// The pids of every process whose command line is exactly `argv`.
pub(crate) fn pids_with_cmdline(argv: &[&str]) -> Vec<i32> {
    let want: String = argv.iter().map(|a| format!("{a}\0")).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

/// A config without a PID namespace whose init leaves a child behind:
/// `sleep <secs>` keeps running in the container's cgroup after the init
/// exits with 3 (issue 11 item 5).
fn orphaning_config(ctx: &Ctx, secs: &str) -> serde_json::Value {
    let script = format!("sleep {secs} & exit 3");
    let mut c = ctx.config(&["/bin/sh", "-c", &script]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    c
}

/// runtime.md "Operations" (delete): "deleting a container MUST delete the
/// resources that were created during the create step"; without a PID
/// namespace the init's death kills nothing else (config-linux.md#namespaces),
/// so the runtime kills what is left in the container's cgroup. `run` still
/// exits with the container's code (3), and no process, cgroup or state
/// survives it.
#[test]
fn run_without_pid_namespace_kills_leftover_child_and_keeps_exit_code() {
    require_root!();
    let ctx = Ctx::new("orun");
    let id = ctx.id("o");
    let secs = marker_secs(1);
    let started = std::time::Instant::now();
    let out = ctx.run(&id, &orphaning_config(&ctx, &secs));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        pids_with_cmdline(&["sleep", &secs]).is_empty(),
        "the container's child survived run"
    );
    // Not the 3 s rmdir timeout nor the 10 s wait: delete killed at once.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    ctx.assert_no_leftovers(&id);
}

/// runtime.md "Operations" (delete) of a stopped container: the init is
/// gone but its child still runs in the cgroup; `delete` (no --force: the
/// container is "stopped") and `delete --force` both kill it and remove
/// everything.
#[test]
fn delete_of_stopped_container_kills_processes_left_in_its_cgroup() {
    require_root!();
    let ctx = Ctx::new("odel");
    for (i, force) in [false, true].into_iter().enumerate() {
        let id = ctx.id(&format!("d{i}"));
        let secs = marker_secs(2 + i as u32);
        let b = ctx.bundle(&id, &orphaning_config(&ctx, &secs));
        assert_ok(
            &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
            "create",
        );
        assert_ok(&ctx.cuddy(&["start", &id]), "start");
        wait_until("the init to exit", || ctx.state(&id)["status"] == "stopped");
        assert_eq!(
            pids_with_cmdline(&["sleep", &secs]).len(),
            1,
            "the child should outlive the init"
        );
        let args: &[&str] = if force {
            &["delete", "--force", &id]
        } else {
            &["delete", &id]
        };
        assert_ok(&ctx.cuddy(args), "delete");
        assert!(
            pids_with_cmdline(&["sleep", &secs]).is_empty(),
            "delete left the container's child running"
        );
        ctx.assert_no_leftovers(&id);
    }
}

/// Concurrent runs whose cgroupsPath share a parent that did not exist
/// (config-linux.md#control-groups: the runtime creates the path): the
/// parent cuddy made is removed by whichever container goes last
/// (issue 11 item 6), in every hierarchy.
#[test]
fn concurrent_runs_sharing_a_new_cgroup_parent_leave_no_parent() {
    require_root!();
    let ctx = Ctx::new("cgpar");
    let top = format!("cuddy-t-cgpar-{}", std::process::id());
    let n = if std::env::var_os("CUDDY_VM").is_some() {
        6
    } else {
        16
    };
    let jobs: Vec<_> = (0..n)
        .map(|i| {
            let id = ctx.id(&format!("c{i}"));
            let mut c = ctx.config(&["/bin/true"]);
            c["linux"]["cgroupsPath"] = serde_json::json!(format!("/{top}/parent/c{i}"));
            (id.clone(), ctx.bundle(&id, &c))
        })
        .collect();
    let root = &ctx.root;
    let outs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = jobs
            .iter()
            .map(|(id, b)| {
                s.spawn(move || {
                    let mut c = std::process::Command::new(CUDDY);
                    c.arg("--root").arg(root).arg("run").arg("--bundle").arg(b);
                    c.arg(id);
                    output_with_timeout(c, 60)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert_ok(o, "concurrent run");
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for p in [
            h.path().join(&top),
            std::path::PathBuf::from("/sys/fs/cgroup").join(&top),
        ] {
            assert!(!p.exists(), "cgroup parent {} left behind", p.display());
        }
    }
    for (id, _) in &jobs {
        ctx.assert_no_leftovers(id);
    }
}

/// `run` whose cleanup fails still exits with the container's code
/// (issue 11 item 5): the container's child is moved (from the host) into a
/// frozen v1 sub-cgroup, where SIGKILL stays pending, so `run`'s delete
/// cannot remove the cgroup. The error is reported, the state stays, and a
/// later `delete` (after the sub-cgroup is thawed) finishes the job.
/// config-linux.md#control-groups; runtime.md "Operations" (delete).
#[test]
fn run_keeps_exit_code_when_cleanup_fails_and_delete_retries() {
    require_root!();
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer");
    if !freezer.join("freezer.state").exists() && !freezer.join("cgroup.procs").exists() {
        eprintln!("skipped: needs a v1 freezer hierarchy (cgroup.kill kills frozen tasks on v2)");
        return;
    }
    let ctx = Ctx::new("oclean");
    let id = ctx.id("o");
    let secs = marker_secs(4);
    let mut c = orphaning_config(&ctx, &secs);
    c["process"]["args"] =
        serde_json::json!(["/bin/sh", "-c", format!("sleep {secs} & sleep 2; exit 3")]);
    let b = ctx.bundle(&id, &c);
    let mut cmd = ctx.cmd();
    cmd.args(["run", "--bundle", b.to_str().unwrap(), &id]);
    let h = std::thread::spawn(move || output_with_timeout(cmd, 60));
    let mut pid = 0;
    wait_until("the container's child", || {
        pid = pids_with_cmdline(&["sleep", &secs])
            .first()
            .copied()
            .unwrap_or(0);
        pid > 0
    });
    let stuck = freezer.join("cuddy").join(&id).join("stuck");
    std::fs::create_dir(&stuck).unwrap();
    std::fs::write(stuck.join("cgroup.procs"), pid.to_string()).unwrap();
    std::fs::write(stuck.join("freezer.state"), "FROZEN").unwrap();
    let out = h.join().unwrap();
    // Thaw first, whatever happened, so the child can die.
    std::fs::write(stuck.join("freezer.state"), "THAWED").unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cleanup failed"),
        "the cleanup error must be reported: {}",
        stderr(&out)
    );
    assert!(
        ctx.root.join(&id).exists(),
        "the state must stay for a retry"
    );
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete (retry)");
    assert!(pids_with_cmdline(&["sleep", &secs]).is_empty());
    ctx.assert_no_leftovers(&id);
}

/// A create killed between making its private state directory and renaming
/// it into place leaves `.creating-PID` (empty) in the state root; the next
/// create removes it once PID is gone (runtime.md "Lifecycle": a failed
/// create leaves nothing behind).
#[test]
fn next_create_sweeps_the_private_dir_of_a_killed_create() {
    require_root!();
    let ctx = Ctx::new("sweep");
    let mut dead = std::process::Command::new("/bin/true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = ctx.root.join(format!(".creating-{dead_pid}"));
    std::fs::create_dir_all(&stale).unwrap();
    let id = ctx.id("c");
    let b = ctx.bundle(&id, &ctx.config(&["/bin/true"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert!(!stale.exists(), "{} left behind", stale.display());
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}
