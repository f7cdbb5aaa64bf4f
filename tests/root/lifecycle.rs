//! runtime.md "Lifecycle" and "Operations" through the CLI.

use serde_json::json;

use crate::common::*;
use crate::require_root;

/// create -> created (init waits) -> start -> running -> kill -> stopped ->
/// delete -> gone; the init is not cuddy's child after create returns, and
/// the status is still right.
#[test]
fn create_start_kill_delete() {
    require_root!();
    let ctx = Ctx::new("life");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    let pidfile = ctx.dir.path().join("pid");
    let out = ctx.cuddy(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out, "create");
    let st = ctx.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.3.0");
    assert_eq!(st["bundle"], b.canonicalize().unwrap().to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    // The init has not exec'd the user process yet: it is still cuddy.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "cuddy");

    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    assert_eq!(ctx.state(&id)["status"], "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");

    let list = ctx.cuddy(&["list", "--format", "json"]);
    assert_ok(&list, "list");
    let arr: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(arr[0]["id"], id.as_str());
    assert_eq!(arr[0]["status"], "running");
    assert_eq!(stdout(&ctx.cuddy(&["list", "-q"])).trim(), id);
    assert!(stdout(&ctx.cuddy(&["list"])).contains("running"));

    let del = ctx.cuddy(&["delete", &id]);
    assert_fails_with(&del, "is running: stop it first or use delete --force");

    assert_ok(&ctx.cuddy(&["kill", &id, "KILL"]), "kill");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_eq!(ctx.state(&id)["pid"], 0);
    let start = ctx.cuddy(&["start", &id]);
    assert_fails_with(&start, "has stopped");
    // runtime.md#kill: signalling a stopped container is an error. The
    // wording is runc's: containerd's runc shim matches "container not
    // running" (checkKillError) to treat the kill as "already exited"
    // (NotFound); anything else fails the CRI's StopContainer.
    let kill = ctx.cuddy(&["kill", &id, "TERM"]);
    assert_fails_with(&kill, "container not running");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
    assert_fails_with(&ctx.cuddy(&["state", &id]), "does not exist");
}

#[test]
fn run_propagates_exit_codes() {
    require_root!();
    let ctx = Ctx::new("exit");
    for (args, code) in [
        (vec!["/bin/true"], 0),
        (vec!["/bin/sh", "-c", "exit 7"], 7),
        // A child killed by a signal: the shell reports 128+N.
        (
            vec!["/bin/sh", "-c", "/bin/sh -c 'kill -9 $$'; exit $?"],
            137,
        ),
        (vec!["/bin/probe", "--exit", "42"], 42),
    ] {
        let id = ctx.id(&format!("c{code}"));
        let out = ctx.run(&id, &ctx.config(&args));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        ctx.assert_no_leftovers(&id);
    }
}

/// In the foreground, cuddy forwards signals to the container and exits
/// with 128+N when the container is killed by signal N.
#[test]
fn run_forwards_signals_and_reports_signal_death() {
    require_root!();
    let ctx = Ctx::new("fwd");
    for (sig, code) in [("TERM", 143), ("KILL", 137)] {
        let id = ctx.id(sig);
        let b = ctx.bundle(&id, &ctx.config(&["/bin/probe", "--sleep"]));
        let mut c = ctx.cmd();
        c.args(["run", "--bundle", b.to_str().unwrap(), &id]);
        let h = std::thread::spawn(move || output_with_timeout(c, 60));
        // "running" is reported once the init has exec'd the probe; the
        // probe then installs its SIGTERM handler (as pid 1 of its pid
        // namespace, a signal without one is dropped by the kernel). Wait
        // for the handler, as seen in /proc/<pid>/status SigCgt, so the
        // test does not race the probe's first instructions.
        wait_until("running with a SIGTERM handler", || {
            let o = ctx.cuddy(&["state", &id]);
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
                return false;
            };
            o.status.success()
                && v["status"] == "running"
                && v["pid"].as_i64().is_some_and(catches_sigterm)
        });
        if sig == "TERM" {
            // To cuddy itself: forwarded to the container's init (the probe,
            // as pid 1, exits 128+15 on SIGTERM).
            let runs: Vec<i32> = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .filter(|p: &i32| {
                    std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .map(|c| c.contains(&id) && c.contains("run"))
                        .unwrap_or(false)
                })
                .collect();
            assert_eq!(runs.len(), 1, "one cuddy run process");
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(runs[0]),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
        } else {
            assert_ok(&ctx.cuddy(&["kill", &id, sig]), "kill");
        }
        let out = h.join().unwrap();
        assert_eq!(out.status.code(), Some(code), "{sig}: {}", stderr(&out));
        ctx.assert_no_leftovers(&id);
    }
}

/// Whether process `pid` has a handler for SIGTERM (bit 15 of SigCgt).
fn catches_sigterm(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        })
        .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
}

/// A container that exits immediately is never missed (SIGCHLD is blocked
/// before clone): repeated quickly, every run returns.
#[test]
fn immediate_exit_is_not_missed() {
    require_root!();
    let ctx = Ctx::new("fast");
    for i in 0..15 {
        let id = ctx.id(&format!("r{i}"));
        let out = ctx.run(&id, &ctx.config(&["/bin/true"]));
        assert_ok(&out, "run /bin/true");
        ctx.assert_no_leftovers(&id);
    }
}

/// Output of a container without a terminal appears on cuddy's own stdio.
#[test]
fn stdio_is_the_callers() {
    require_root!();
    let ctx = Ctx::new("stdio");
    let id = ctx.id("a");
    let out = ctx.run(
        &id,
        &ctx.config(&["/bin/sh", "-c", "echo out; echo err >&2"]),
    );
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
}

#[test]
fn run_detach_keep_and_kill_all() {
    require_root!();
    let ctx = Ctx::new("detach");
    let id = ctx.id("a");
    let b = ctx.bundle(
        "a",
        &ctx.config(&["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"]),
    );
    let out = ctx.cuddy(&["run", "--detach", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(&out, "run --detach");
    assert_eq!(ctx.state(&id)["status"], "running");
    assert_ok(&ctx.cuddy(&["kill", "--all", &id, "9"]), "kill --all");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);

    // --keep leaves a stopped container to inspect.
    let id = ctx.id("k");
    let b = ctx.bundle("k", &ctx.config(&["/bin/true"]));
    assert_ok(
        &ctx.cuddy(&["run", "--keep", "--bundle", b.to_str().unwrap(), &id]),
        "run --keep",
    );
    assert_eq!(ctx.state(&id)["status"], "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn delete_force_and_created_container() {
    require_root!();
    let ctx = Ctx::new("force");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/comm")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .contains(") Z")
    );
    ctx.assert_no_leftovers(&id);

    // A created (never started) container is deleted without --force.
    let id = ctx.id("c");
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete created");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn kill_signals_by_name_and_number() {
    require_root!();
    let ctx = Ctx::new("sig");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/probe", "--sleep"]));
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let bad = ctx.cuddy(&["kill", &id, "SIGNOPE"]);
    assert_fails_with(&bad, "invalid signal \"SIGNOPE\"");
    assert_eq!(ctx.state(&id)["status"], "running");
    assert_ok(&ctx.cuddy(&["kill", &id, "term"]), "kill term");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_fails_with(&ctx.cuddy(&["kill", &id]), "not running");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
}

#[test]
fn duplicate_id_is_refused() {
    require_root!();
    let ctx = Ctx::new("dup");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let again = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert_fails_with(&again, "already exists");
    // The first container is untouched.
    assert_eq!(ctx.state(&id)["status"], "created");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn log_file_json_has_the_error() {
    require_root!();
    let ctx = Ctx::new("log");
    let log = ctx.dir.path().join("log.json");
    let out = ctx.cuddy(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "cuddy-t-nope",
    ]);
    assert_fails_with(&out, "does not exist");
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"));
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
    let _ = json!(null);
}

/// A created container (init waiting for `start`) ends on SIGTERM, as runc's
/// does, although the init is pid 1 of its namespace.
#[test]
fn kill_created_container_with_term() {
    require_root!();
    let ctx = Ctx::new("killcreated");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["kill", &id, "TERM"]), "kill TERM");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// `/proc/<pid>/stat` fields: (ppid, state).
fn ppid_and_state(pid: i32) -> Option<(i32, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    Some((f.next()?.parse().ok()?, state))
}

/// Children of `parent` whose cmdline is `cmd` (NUL-separated).
fn children(parent: i32, cmd: &str) -> Vec<(i32, char)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| {
            let (pp, st) = ppid_and_state(p)?;
            let c = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
            (pp == parent && (c == cmd || st == 'Z')).then_some((p, st))
        })
        .collect()
}

/// A container without its own PID namespace whose process leaves an
/// orphan: in the foreground `run` is a child subreaper (as runc), so the
/// orphan is reparented to cuddy, reaped when it exits (never a zombie),
/// and `run` still returns the container's exit code. config-linux.md
/// "Namespaces" (pid), runtime.md "Lifecycle".
#[test]
fn run_reaps_orphans_without_a_pid_namespace() {
    require_root!();
    let ctx = Ctx::new("reap");
    let id = ctx.id("o");
    // Runs until SIGUSR1 (then exits 7), so the reaping is seen while run
    // still waits, however slow the machine.
    let mut c = ctx.config(&[
        "/bin/sh",
        "-c",
        "trap 'exit 7' USR1; (sleep 1 &); while :; do sleep 1; done",
    ]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    let b = ctx.bundle(&id, &c);
    let mut cmd = ctx.cmd();
    cmd.args(["run", "--bundle", b.to_str().unwrap(), &id]);
    let h = std::thread::spawn(move || output_with_timeout(cmd, 60));
    let mut run_pid = 0;
    wait_until("cuddy run", || {
        run_pid = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains(&id) && c.contains("run"))
            })
            .unwrap_or(0);
        run_pid > 0
    });
    wait_until("the orphan reparented to cuddy run", || {
        children(run_pid, "sleep\x001\x00")
            .iter()
            .any(|(_, st)| *st != 'Z')
    });
    // The orphan exits after 1 s and is reaped (no zombie child of run).
    wait_until("the orphan reaped by cuddy run", || {
        children(run_pid, "sleep\x001\x00").is_empty()
    });
    assert!(
        ppid_and_state(run_pid).is_some_and(|(_, st)| st != 'Z') && !h.is_finished(),
        "cuddy run ended before the orphan was seen reaped"
    );
    assert_ok(&ctx.cuddy(&["kill", &id, "USR1"]), "kill USR1");
    let out = h.join().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    ctx.assert_no_leftovers(&id);
}
