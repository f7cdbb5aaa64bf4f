//! config-linux.md "Control groups" and runc's cgroup verbs (pause, resume,
//! update, events, ps), observed from inside the container and enforced.
//! Runs on the host's cgroups (v1, hybrid or v2) and in the cgroup v2 guest
//! (integration/vm/test-v2.sh); where the files differ the test branches on
//! what the host has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// A pure cgroup v2 host (the unified hierarchy at /sys/fs/cgroup).
pub(crate) fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup directory that holds `controller` on the host, for
/// the cgroups path `cg` (absolute, e.g. `/cuddy/<id>`).
fn host_dir(controller: &str, cg: &str) -> PathBuf {
    let rel = cg.trim_start_matches('/');
    if is_v2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    }
}

/// The file of a setting, by version: (controller, v1 file, v2 file).
fn file(controller: &str, v1: &str, v2: &str) -> String {
    if is_v2() {
        v2.to_string()
    } else {
        format!("{controller}/{v1}")
    }
}

pub(crate) fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Runs `sh -c` printing `path=<contents>` for each path under the
/// container's /sys/fs/cgroup; returns the map.
fn cat_inside(
    ctx: &Ctx,
    suffix: &str,
    mut config: Value,
    files: &[String],
) -> BTreeMap<String, String> {
    let script: String = files
        .iter()
        .map(|f| format!("echo \"{f}=$(cat /sys/fs/cgroup/{f})\";"))
        .collect();
    config["process"]["args"] = json!(["/bin/sh", "-c", script]);
    let id = ctx.id(suffix);
    let out = ctx.run(&id, &config);
    assert_ok(&out, "run cat");
    ctx.assert_no_leftovers(&id);
    stdout(&out)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// `run -d` of `config`; returns the init pid.
pub(crate) fn run_detached(ctx: &Ctx, id: &str, config: &Value) -> i64 {
    let b = ctx.bundle(id, config);
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), id]),
        "run -d",
    );
    ctx.state(id)["pid"].as_i64().unwrap()
}

pub(crate) fn stop_and_delete(ctx: &Ctx, id: &str) {
    assert_ok(&ctx.cuddy(&["delete", "--force", id]), "delete --force");
    ctx.assert_no_leftovers(id);
}

#[test]
fn limits_are_observed_inside() {
    require_root!();
    let ctx = Ctx::new("cglim");
    let mut c = ctx.config(&[]);
    c["linux"]["resources"] = json!({
        "memory": {"limit": 48 << 20},
        "pids": {"limit": 37},
        "cpu": {"quota": 25000, "period": 100000, "cpus": "0"},
    });
    let mem = file("memory", "memory.limit_in_bytes", "memory.max");
    let pids = file("pids", "pids.max", "pids.max");
    let cpuset = file("cpuset", "cpuset.cpus", "cpuset.cpus");
    let mut files = vec![mem.clone(), pids.clone(), cpuset.clone()];
    if is_v2() {
        files.push("cpu.max".into());
    } else {
        files.extend([
            "cpu/cpu.cfs_quota_us".to_string(),
            "cpu/cpu.cfs_period_us".to_string(),
        ]);
    }
    let got = cat_inside(&ctx, "a", c, &files);
    assert_eq!(got[&mem], (48u64 << 20).to_string(), "{got:?}");
    assert_eq!(got[&pids], "37", "{got:?}");
    assert_eq!(got[&cpuset], "0", "{got:?}");
    if is_v2() {
        assert_eq!(got["cpu.max"], "25000 100000", "{got:?}");
    } else {
        assert_eq!(got["cpu/cpu.cfs_quota_us"], "25000", "{got:?}");
        assert_eq!(got["cpu/cpu.cfs_period_us"], "100000", "{got:?}");
    }
}

/// Adds memory+swap = limit where the host accounts swap, so the limit is
/// really hit (no escape into swap).
fn memory_limit(limit: i64) -> Value {
    let swap = is_v2() || Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    if swap {
        json!({"limit": limit, "swap": limit})
    } else {
        json!({"limit": limit})
    }
}

/// A process that allocates past the memory limit is OOM-killed (137), and
/// `events` reports an `oom` event.
#[test]
fn memory_limit_oom_kills_with_an_event() {
    require_root!();
    let ctx = Ctx::new("cgoom");
    let dd = [
        "/bin/dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ];
    let mut c = ctx.config(&dd);
    c["linux"]["resources"] = json!({"memory": memory_limit(16 << 20)});
    let id = ctx.id("run");
    let out = ctx.run(&id, &c);
    assert_eq!(
        out.status.code(),
        Some(137),
        "dd under a 16 MiB limit: {}",
        stderr(&out)
    );
    ctx.assert_no_leftovers(&id);

    // The event stream, started before the container starts.
    let id = ctx.id("ev");
    let b = ctx.bundle(&id, &c);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let log = ctx.dir.path().join("events.out");
    let mut ev = ctx.cmd();
    ev.args(["events", "--interval", "100ms", &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap());
    /// Ends `cuddy events` (by PID) if the test fails before it exits.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut events = Reap(ev.spawn().unwrap());
    // events takes its OOM baseline before its loop; its first stats event
    // (one interval later) says the baseline is taken: start only then.
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the first stats event", || text().contains("\"stats\""));
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    wait_until("events to end with the container", || {
        events.0.try_wait().unwrap().is_some()
    });
    assert!(events.0.wait().unwrap().success(), "events failed");
    let events: Vec<Value> = text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events.contains(&json!({"type": "oom", "id": id})),
        "no oom event: {}",
        text()
    );
    assert_eq!(ctx.state(&id)["status"], "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// Past pids.max, fork fails inside the container.
#[test]
fn pids_limit_makes_fork_fail() {
    require_root!();
    let ctx = Ctx::new("cgpids");
    let mut c = ctx.config(&["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo done; kill $(jobs -p) 2>/dev/null; true"]);
    c["linux"]["resources"] = json!({"pids": {"limit": 4}});
    let id = ctx.id("a");
    let out = ctx.run(&id, &c);
    let err = stderr(&out);
    assert!(
        err.contains("fork"),
        "no fork failure under pids.max 4: stdout {} stderr {err}",
        stdout(&out)
    );
    ctx.assert_no_leftovers(&id);
}

/// The devices cgroup: a device outside the allow-list cannot be opened
/// (EPERM), one a rule allows can (here: no driver, so ENXIO, not EPERM).
/// mknod itself is allowed for every device, as runc's default rules do.
#[test]
fn device_rules_refuse_open() {
    require_root!();
    let ctx = Ctx::new("cgdev");
    // Char major 42 is reserved for demos: no driver ever claims it.
    let script = "mknod /dev/t-denied c 42 0 && echo denied=made; mknod /dev/t-allowed c 42 1 && echo allowed=made; \
                  echo \"denied=$(head -c1 /dev/t-denied 2>&1)\"; echo \"allowed=$(head -c1 /dev/t-allowed 2>&1)\"; \
                  head -c1 /dev/null && echo null=ok";
    let mut c = ctx.config(&["/bin/sh", "-c", script]);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    c["linux"]["resources"] =
        json!({"devices": [{"allow": true, "type": "c", "major": 42, "minor": 1, "access": "rw"}]});
    let id = ctx.id("a");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run");
    let o = stdout(&out);
    let lines: Vec<&str> = o.lines().collect();
    for want in ["denied=made", "allowed=made", "null=ok"] {
        assert!(
            lines.contains(&want),
            "{want} missing: {o} / {}",
            stderr(&out)
        );
    }
    let get = |k: &str| {
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        get("denied").contains("Operation not permitted"),
        "open of c 42:0 not refused: {o}"
    );
    assert!(
        !get("allowed").contains("Operation not permitted"),
        "open of the allowed c 42:1 refused: {o}"
    );
    ctx.assert_no_leftovers(&id);
}

/// The counter the container writes into its /dev/shm, read from the host.
fn counter(pid: i64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/root/dev/shm/c"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn pause_and_resume() {
    require_root!();
    let ctx = Ctx::new("cgpause");
    let id = ctx.id("a");
    let c = ctx.config(&[
        "/bin/sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/c; sleep 0.02; done",
    ]);
    let pid = run_detached(&ctx, &id, &c);
    wait_until("the counter runs", || counter(pid) > 2);
    assert_fails_with(
        &ctx.cuddy(&["resume", &id]),
        "is running: only a paused container can be resumed",
    );

    assert_ok(&ctx.cuddy(&["pause", &id]), "pause");
    assert_eq!(ctx.state(&id)["status"], "paused");
    let dir = host_dir("freezer", &format!("/cuddy/{id}"));
    if is_v2() {
        assert_eq!(read(&dir.join("cgroup.freeze")), "1");
    } else {
        assert_eq!(read(&dir.join("freezer.state")), "FROZEN");
    }
    assert_fails_with(
        &ctx.cuddy(&["pause", &id]),
        "is paused: it is already paused",
    );
    let frozen = counter(pid);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(counter(pid), frozen, "the counter advanced while paused");
    }
    let list = ctx.cuddy(&["list", "--format", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&list.stdout).unwrap()[0]["status"],
        "paused"
    );

    assert_ok(&ctx.cuddy(&["resume", &id]), "resume");
    assert_eq!(ctx.state(&id)["status"], "running");
    wait_until("the counter advances again", || counter(pid) > frozen);

    // Paused containers can be force-deleted (thawed to die).
    assert_ok(&ctx.cuddy(&["pause", &id]), "pause again");
    stop_and_delete(&ctx, &id);

    // A created container and a stopped one are refused, clearly.
    let id = ctx.id("c");
    let b = ctx.bundle("c", &ctx.config(&["/bin/true"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_fails_with(
        &ctx.cuddy(&["pause", &id]),
        "is created: only a running container can be paused",
    );
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_fails_with(
        &ctx.cuddy(&["pause", &id]),
        "is stopped: only a running container can be paused",
    );
    assert_fails_with(
        &ctx.cuddy(&["resume", &id]),
        "is stopped: only a paused container can be resumed",
    );
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
    assert_fails_with(&ctx.cuddy(&["pause", "cuddy-t-nope"]), "does not exist");
}

#[test]
fn update_changes_live_limits() {
    require_root!();
    let ctx = Ctx::new("cgupd");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}, "cpu": {"quota": 50000, "period": 100000}});
    run_detached(&ctx, &id, &c);
    let cg = format!("/cuddy/{id}");
    let mem = host_dir("memory", &cg).join(if is_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    });
    let pids = host_dir("pids", &cg).join("pids.max");
    assert_eq!(read(&mem), (64u64 << 20).to_string());

    let out = ctx.cuddy(&[
        "update",
        "--memory",
        "32m",
        "--pids-limit",
        "20",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "200000",
        &id,
    ]);
    assert_ok(&out, "update flags");
    assert_eq!(read(&mem), (32u64 << 20).to_string());
    assert_eq!(read(&pids), "20");
    if is_v2() {
        assert_eq!(read(&host_dir("cpu", &cg).join("cpu.max")), "30000 200000");
    } else {
        assert_eq!(
            read(&host_dir("cpu", &cg).join("cpu.cfs_quota_us")),
            "30000"
        );
        assert_eq!(
            read(&host_dir("cpu", &cg).join("cpu.cfs_period_us")),
            "200000"
        );
    }

    // --resources FILE and --resources - (stdin), as containerd sends it.
    let f = ctx.dir.path().join("res.json");
    std::fs::write(
        &f,
        r#"{"memory": {"limit": 25165824}, "pids": {"limit": 11}}"#,
    )
    .unwrap();
    assert_ok(
        &ctx.cuddy(&["update", "--resources", f.to_str().unwrap(), &id]),
        "update --resources FILE",
    );
    assert_eq!(read(&mem), "25165824");
    assert_eq!(read(&pids), "11");
    let out = ctx
        .cmd()
        .args(["update", "-r", "-", &id])
        .stdin(
            std::fs::File::open({
                std::fs::write(&f, r#"{"pids": {"limit": 12}}"#).unwrap();
                &f
            })
            .unwrap(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_ok(&out, "update -r -");
    assert_eq!(read(&pids), "12");
    assert_eq!(
        read(&mem),
        "25165824",
        "an update leaves unnamed settings alone"
    );

    // Bad values: a clear error naming the flag, the limit unchanged.
    assert_fails_with(&ctx.cuddy(&["update", "--memory", "12x", &id]), "--memory");
    assert_fails_with(&ctx.cuddy(&["update", "--cpuset-cpus", "999", &id]), "cpus");
    std::fs::write(&f, "{not json").unwrap();
    assert_fails_with(
        &ctx.cuddy(&["update", "-r", f.to_str().unwrap(), &id]),
        "--resources",
    );
    assert_eq!(read(&pids), "12");

    assert_ok(&ctx.cuddy(&["kill", &id, "KILL"]), "kill");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_fails_with(
        &ctx.cuddy(&["update", "--pids-limit", "5", &id]),
        "is stopped",
    );
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn events_stats_and_ps() {
    require_root!();
    let ctx = Ctx::new("cgstat");
    let id = ctx.id("a");
    let pid = run_detached(
        &ctx,
        &id,
        &ctx.config(&["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"]),
    );
    let cg = format!("/cuddy/{id}");
    let procs = host_dir("pids", &cg).join("cgroup.procs");
    wait_until("three processes", || read(&procs).lines().count() == 3);
    let mut want: Vec<i64> = read(&procs).lines().map(|l| l.parse().unwrap()).collect();
    want.sort();

    let out = ctx.cuddy(&["events", "--stats", &id]);
    assert_ok(&out, "events --stats");
    assert_eq!(stdout(&out).lines().count(), 1, "one JSON line");
    let ev: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    let d = &ev["data"];
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "memory usage: {d}"
    );
    assert_eq!(d["pids"]["current"].as_u64().unwrap(), 3, "pids: {d}");
    assert!(
        d["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "cpu usage: {d}"
    );
    for k in ["blkio", "hugetlb"] {
        assert!(d.get(k).is_some(), "{k} missing: {d}");
    }

    let out = ctx.cuddy(&["ps", "--format", "json", &id]);
    assert_ok(&out, "ps json");
    let got: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, want);
    assert!(got.contains(&pid));
    let out = ctx.cuddy(&["ps", &id]);
    assert_ok(&out, "ps");
    let table = stdout(&out);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .expect("PID column");
    let mut listed: Vec<i64> = lines
        .map(|l| l.split_whitespace().nth(col).unwrap().parse().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, want, "{table}");

    // Streaming: stats events every --interval until the container stops.
    let evf = ctx.dir.path().join("events.out");
    let mut child = ctx
        .cmd()
        .args(["events", "--interval", "100ms", &id])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&evf).unwrap())
        .spawn()
        .unwrap();
    wait_until("two stats events", || {
        std::fs::read_to_string(&evf)
            .unwrap_or_default()
            .lines()
            .count()
            >= 2
    });
    assert_ok(&ctx.cuddy(&["kill", &id, "KILL"]), "kill");
    let mut status = None;
    for _ in 0..1000 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("events did not end when the container stopped");
    };
    assert!(status.success());
    for l in std::fs::read_to_string(&evf).unwrap().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["type"], "stats", "{l}");
        assert_eq!(v["id"], id.as_str());
    }
    assert_fails_with(&ctx.cuddy(&["events", "--stats", &id]), "is stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
    assert_fails_with(
        &ctx.cuddy(&["events", "--interval", "0s", &id]),
        "--interval",
    );
}

/// A container whose init is killed from outside (a crash) still leaves
/// nothing behind after delete.
#[test]
fn delete_after_a_crash_cleans_the_cgroup() {
    require_root!();
    let ctx = Ctx::new("cgcrash");
    let id = ctx.id("a");
    let pid = run_detached(
        &ctx,
        &id,
        &ctx.config(&["/bin/sh", "-c", "sleep 1000 & sleep 1000"]),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// Bad resources: exit 1, a message naming the field, nothing left behind.
#[test]
fn bad_resources_are_refused_clearly() {
    require_root!();
    let ctx = Ctx::new("cgbad");
    for (i, (res, field)) in [
        (
            json!({"memory": {"limit": -5}}),
            "invalid linux.resources.memory.limit: -5 is negative",
        ),
        (
            json!({"memory": {"limit": 4096, "swap": 4096}}),
            "linux.resources.memory.limit is too small",
        ),
        (
            json!({"memory": {"limit": 4096}}),
            "linux.resources.memory.limit",
        ),
        (json!({"cpu": {"cpus": "999"}}), "linux.resources.cpu.cpus"),
        (
            json!({"cpu": {"quota": 1, "period": 100000}}),
            "linux.resources.cpu",
        ),
        (
            json!({"unified": {"nope.max": "1"}}),
            "linux.resources.unified",
        ),
        (
            json!({"network": {"classID": 5}}),
            "linux.resources.network.classID",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = ctx.id(&format!("b{i}"));
        let mut c = ctx.config(&["/bin/true"]);
        c["linux"]["resources"] = res.clone();
        let out = ctx.run(&id, &c);
        eprintln!("bad resources: {res}");
        assert_fails_with(&out, field);
        ctx.assert_no_leftovers(&id);
    }
}

/// The smallest memory limit cuddy works under is far below runc's 4 MiB:
/// /bin/true starts under 512 KiB.
#[test]
fn true_runs_under_512k() {
    require_root!();
    let ctx = Ctx::new("cgmin");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/true"]);
    c["linux"]["resources"] = json!({"memory": memory_limit(512 << 10)});
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run /bin/true under 512 KiB");
    ctx.assert_no_leftovers(&id);
}
