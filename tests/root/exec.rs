//! `exec`: namespaces, cgroup, process config, exit codes, detach, fds and
//! refusals.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// Creates and starts a sleeping container; returns its init pid.
pub fn running(ctx: &Ctx, id: &str, config: &Value) -> i64 {
    let b = ctx.bundle(id, config);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().expect("utf8"), id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["start", id]), "start");
    ctx.state(id)["pid"].as_i64().expect("pid")
}

fn probe_json(out: &std::process::Output) -> Value {
    assert_ok(out, "exec probe");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {}", stdout(out)))
}

#[test]
fn exec_joins_namespaces_and_cgroup_with_requested_process() {
    require_root!();
    let ctx = Ctx::new("exec");
    let id = ctx.id("a");
    let pid = running(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    let out = ctx.cuddy(&[
        "exec",
        "-u",
        "1000:1000",
        "--additional-gids",
        "5",
        "--cwd",
        "/tmp",
        "-e",
        "FOO=bar",
        "--cap",
        "CAP_NET_RAW",
        &id,
        "/bin/probe",
        "x",
    ]);
    let p = probe_json(&out);
    for ns in ["pid", "mnt", "net", "uts", "ipc", "cgroup", "user"] {
        let want = std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
            .unwrap()
            .ino();
        assert_eq!(p["namespaces"][ns].as_u64(), Some(want), "{ns} namespace");
    }
    assert!(
        p["pid"].as_i64().unwrap() > 1,
        "a new process in the container's PID namespace: {}",
        p["pid"]
    );
    // The init's cgroup as seen inside the container (its cgroup namespace).
    let out = ctx.cuddy(&["exec", &id, "/bin/cat", "/proc/1/cgroup"]);
    assert_ok(&out, "exec cat");
    let init_cg: Vec<String> = stdout(&out).lines().map(String::from).collect();
    let cg: Vec<String> = p["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cg, init_cg, "same cgroup as init");
    assert_eq!(p["uid"], 1000);
    assert_eq!(p["gid"], 1000);
    assert_eq!(p["groups"], json!([5]));
    assert_eq!(p["cwd"], "/tmp");
    let env: Vec<&str> = p["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"FOO=bar") && env.contains(&"TERM=xterm"),
        "{env:?}"
    );
    assert_eq!(p["args"], json!(["/bin/probe", "x"]));
    assert_eq!(p["no_new_privs"], 1);
    // CAP_NET_RAW is bit 13; inheritable and ambient stay empty. A non-root
    // user loses permitted/effective at execve (no ambient): only bounding.
    let bits = |caps: &Value, k: &str| u64::from_str_radix(caps[k].as_str().unwrap(), 16).unwrap();
    assert_ne!(bits(&p["caps"], "bounding") & (1 << 13), 0, "{}", p["caps"]);
    assert_eq!(bits(&p["caps"], "ambient"), 0);
    let p = probe_json(&ctx.cuddy(&["exec", "--cap", "CAP_NET_RAW", &id, "/bin/probe"]));
    let caps = &p["caps"];
    let bits = |k: &str| bits(caps, k);
    for k in ["effective", "permitted", "bounding"] {
        assert_ne!(bits(k) & (1 << 13), 0, "{k}: {caps}");
        assert_ne!(
            bits(k) & (1 << 5),
            0,
            "{k} keeps the config's CAP_KILL: {caps}"
        );
    }
    assert_eq!(bits("inheritable"), 0, "{caps}");
    assert_eq!(bits("ambient"), 0, "{caps}");
    // Only stdio: no cuddy fd leaks into the process.
    assert_eq!(p["fds"], json!([0, 1, 2]));
    assert_eq!(ctx.state(&id)["status"], "running");
}

#[test]
fn exec_process_json_like_containerd() {
    require_root!();
    let ctx = Ctx::new("execp");
    let id = ctx.id("p");
    running(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    let proc = json!({
        "terminal": false,
        "user": {"uid": 65534, "gid": 65534, "umask": 63},
        "args": ["/bin/probe"],
        "env": ["PATH=/bin", "FROM=json"],
        "cwd": "/dev",
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 77, "soft": 66}],
        "oomScoreAdj": 123,
        "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}
    });
    let f = ctx.dir.path().join("process.json");
    std::fs::write(&f, proc.to_string()).unwrap();
    let p = probe_json(&ctx.cuddy(&["exec", "--process", f.to_str().unwrap(), &id]));
    assert_eq!(p["uid"], 65534);
    assert_eq!(p["cwd"], "/dev");
    assert_eq!(p["umask"], "0077");
    assert_eq!(p["oom_score_adj"], 123);
    assert_eq!(p["rlimits"]["RLIMIT_NOFILE"]["soft"], 66);
    assert!(p["env"].as_array().unwrap().contains(&json!("FROM=json")));
    assert_eq!(p["caps"]["bounding"], "0000000000000001");
}

#[test]
fn exec_exit_codes_and_failures() {
    require_root!();
    let ctx = Ctx::new("execx");
    let id = ctx.id("x");
    let pid = running(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    for (args, code) in [
        (vec!["/bin/true"], 0),
        (vec!["/bin/sh", "-c", "exit 7"], 7),
        (vec!["/bin/probe", "--exit", "42"], 42),
        (vec!["/bin/sh", "-c", "kill -9 $$"], 137),
    ] {
        let mut a = vec!["exec", id.as_str()];
        a.extend(args.iter());
        let out = ctx.cuddy(&a);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }
    // A missing binary: a clear error, and the container is undisturbed.
    let out = ctx.cuddy(&["exec", &id, "/no/such/binary"]);
    assert_fails_with(
        &out,
        "exec failed: exec: \"/no/such/binary\": No such file or directory",
    );
    let out = ctx.cuddy(&["exec", &id, "nosuchcmd"]);
    assert_fails_with(&out, "executable file not found in $PATH");
    assert_eq!(ctx.state(&id)["status"], "running");
    assert_eq!(ctx.state(&id)["pid"].as_i64(), Some(pid));
    // Bad user, bad --process, no command.
    assert_fails_with(
        &ctx.cuddy(&["exec", "-u", "bob", &id, "/bin/true"]),
        "expected UID[:GID]",
    );
    let bad = ctx.dir.path().join("bad.json");
    std::fs::write(&bad, "{\"args\": [").unwrap();
    assert_fails_with(
        &ctx.cuddy(&["exec", "--process", bad.to_str().unwrap(), &id]),
        "parse --process",
    );
    assert_fails_with(
        &ctx.cuddy(&["exec", "--process", "/nonexistent.json", &id]),
        "read --process /nonexistent.json",
    );
    assert_fails_with(&ctx.cuddy(&["exec", &id]), "exec needs a command");
    assert_fails_with(
        &ctx.cuddy(&[
            "exec",
            "--console-socket",
            "/nonexistent.sock",
            "-t",
            &id,
            "/bin/true",
        ]),
        "console socket /nonexistent.sock",
    );
    assert_eq!(ctx.state(&id)["status"], "running");
    // Unknown and stopped containers.
    assert_fails_with(
        &ctx.cuddy(&["exec", "cuddy-t-nope", "/bin/true"]),
        "does not exist",
    );
    assert_ok(&ctx.cuddy(&["kill", &id, "KILL"]), "kill");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_fails_with(
        &ctx.cuddy(&["exec", &id, "/bin/true"]),
        "is stopped: cannot exec",
    );
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn exec_detached_with_pid_file() {
    require_root!();
    let ctx = Ctx::new("execd");
    let id = ctx.id("d");
    let pid = running(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    let pf = ctx.dir.path().join("exec.pid");
    let out = ctx.cuddy(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "/bin/sleep",
        "500",
    ]);
    assert_ok(&out, "exec -d");
    let epid: i32 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{epid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let ns = |p: i64, k: &str| {
        std::fs::metadata(format!("/proc/{p}/ns/{k}"))
            .unwrap()
            .ino()
    };
    assert_eq!(ns(epid as i64, "pid"), ns(pid, "pid"));
    // Gone with the container.
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    wait_until("exec'd process gone", || {
        std::fs::read_to_string(format!("/proc/{epid}/stat"))
            .map(|s| s.contains(" Z "))
            .unwrap_or(true)
    });
    ctx.assert_no_leftovers(&id);
}

#[test]
fn exec_preserve_fds() {
    require_root!();
    let ctx = Ctx::new("execf");
    let id = ctx.id("f");
    running(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    let file = std::fs::File::create(ctx.dir.path().join("passed")).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut c = ctx.cmd();
    c.args(["exec", "--preserve-fds", "1", &id, "/bin/probe"]);
    // SAFETY: dup2 in the forked child before exec (async-signal-safe).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let p = probe_json(&output_with_timeout(c, 60));
    assert_eq!(p["fds"], json!([0, 1, 2, 3]));
}

/// runc's `exec --ignore-paused`: exec into a paused container is refused
/// unless asked for; the container stays paused either way.
#[test]
fn exec_into_paused_container() {
    require_root!();
    let ctx = Ctx::new("execpause");
    let id = ctx.id("p");
    running(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(&ctx.cuddy(&["pause", &id]), "pause");
    let out = ctx.cuddy(&["exec", &id, "/bin/true"]);
    assert_fails_with(&out, "paused");
    assert_eq!(ctx.state(&id)["status"], "paused");
    // With --ignore-paused the process is created (frozen with the rest);
    // detached, so the test does not wait on a frozen process.
    let pf = ctx.dir.path().join("p.pid");
    let out = ctx.cuddy(&[
        "exec",
        "-d",
        "--ignore-paused",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "/bin/sleep",
        "100",
    ]);
    assert_ok(&out, "exec --ignore-paused");
    let epid = std::fs::read_to_string(&pf).unwrap().trim().to_string();
    assert!(std::path::Path::new(&format!("/proc/{epid}")).exists());
    assert_eq!(ctx.state(&id)["status"], "paused");
    // Frozen before execve; after resume it runs the program.
    assert_ok(&ctx.cuddy(&["resume", &id]), "resume");
    wait_until("exec'd sleep runs", || {
        std::fs::read_to_string(format!("/proc/{epid}/comm"))
            .map(|c| c.trim() == "sleep")
            .unwrap_or(false)
    });
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
    ctx.assert_no_leftovers(&id);
}

/// exec into a container with its own user namespace: the process joins it
/// (user first) and is root inside, mapped on the host.
#[test]
fn exec_into_user_namespace() {
    require_root!();
    let ctx = Ctx::new("execuserns");
    let id = ctx.id("u");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let pid = running(&ctx, &id, &c);
    let out = ctx.cuddy(&["exec", &id, "/bin/probe"]);
    let p = probe_json(&out);
    let ns = |k: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/{k}"))
            .unwrap()
            .ino()
    };
    assert_eq!(p["namespaces"]["user"], ns("user"));
    assert_eq!(p["namespaces"]["pid"], ns("pid"));
    assert_eq!(p["namespaces"]["mnt"], ns("mnt"));
    assert_eq!(p["uid"], 0);
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
    ctx.assert_no_leftovers(&id);
}
