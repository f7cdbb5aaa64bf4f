//! Issue 8 items 1-3: `linux.resources` as real clients send them
//! (config-linux.md#control-groups). Zero values mean "not set" as in runc,
//! `pids.limit` 0 depends on the config's ociVersion, and `update` is
//! atomic. Runs on this host's cgroups (v1 hybrid) and in the cgroup v2
//! guest; where the files differ, the test branches on the hierarchy.
//! Effects are read from the container's cgroup files on the host.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup file for `controller` (default cgroupsPath
/// `/cuddy/<id>`): `v1` on a v1 host, `v2` on a pure v2 host.
fn cg_file(id: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
    if is_v2() {
        Path::new("/sys/fs/cgroup/cuddy").join(id).join(v2)
    } else {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("cuddy")
            .join(id)
            .join(v1)
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The values an update must not touch (or must restore).
fn snapshot(id: &str) -> Vec<(PathBuf, String)> {
    let files = [
        cg_file(id, "memory", "memory.limit_in_bytes", "memory.max"),
        cg_file(id, "pids", "pids.max", "pids.max"),
        cg_file(id, "cpu", "cpu.shares", "cpu.weight"),
        cg_file(id, "cpu", "cpu.cfs_quota_us", "cpu.max"),
        cg_file(id, "cpuset", "cpuset.cpus", "cpuset.cpus"),
        cg_file(id, "cpuset", "cpuset.mems", "cpuset.mems"),
    ];
    files
        .into_iter()
        .filter(|f| f.exists())
        .map(|f| {
            let v = read(&f);
            (f, v)
        })
        .collect()
}

fn run_detached(ctx: &Ctx, id: &str, config: &Value) {
    let b = ctx.bundle(id, config);
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), id]),
        "run -d",
    );
}

fn delete(ctx: &Ctx, id: &str) {
    assert_ok(&ctx.cuddy(&["delete", "--force", id]), "delete --force");
    ctx.assert_no_leftovers(id);
}

/// `cuddy update -r -` with `json` on stdin, as containerd's runc shim runs
/// it (under the harness's hang guard).
fn update_stdin(ctx: &Ctx, id: &str, json: &str) -> std::process::Output {
    let f = ctx.dir.path().join(format!("update-{id}.json"));
    std::fs::write(&f, json).unwrap();
    let mut c = std::process::Command::new("sh");
    c.args([
        "-c",
        "exec \"$0\" --root \"$1\" update -r - \"$2\" < \"$3\"",
        CUDDY,
        ctx.root.to_str().unwrap(),
        id,
        f.to_str().unwrap(),
    ]);
    output_with_timeout(c, 60)
}

/// The unlimited value of memory.limit_in_bytes / memory.max.
fn mem_unlimited(v: &str) -> bool {
    v == "max" || v.parse::<u64>().is_ok_and(|n| n >= 1 << 62)
}

/// Docker 20.10's `docker run busybox`: `"blockIO":{"weight":0}`,
/// `"cpu":{"shares":0}` and `"memory":{"disableOOMKiller":false}` on every
/// create (daemon/oci_linux.go WithResources). Item 1: before the fix cuddy
/// wrote 0 to the weight file and failed (ERANGE, or no such file).
// config-linux.md#block-io, config-linux.md#cpu
#[test]
fn docker_create_zero_weight_and_shares_are_not_set() {
    require_root!();
    let ctx = Ctx::new("rcdock");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["ociVersion"] = json!("1.0.2-dev");
    c["linux"]["resources"] = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
        ],
        "memory": {"disableOOMKiller": false},
        "cpu": {"shares": 0},
        "blockIO": {"weight": 0, "leafWeight": 0}
    });
    run_detached(&ctx, &id, &c);
    let shares = read(&cg_file(&id, "cpu", "cpu.shares", "cpu.weight"));
    assert_eq!(shares, if is_v2() { "100" } else { "1024" }, "default kept");
    if is_v2() {
        // io.bfq.weight / io.weight keep their default (100).
        for f in ["io.bfq.weight", "io.weight"] {
            let p = cg_file(&id, "io", f, f);
            if p.exists() {
                assert!(read(&p).contains("100"), "{f}: {}", read(&p));
            }
        }
    }
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running");
    delete(&ctx, &id);
}

/// Every field runc reads as "not set" when it is 0 or "" (libcontainer
/// cgroups fs and fs2), plus Go's uint64(-1) swappiness: the container starts
/// and each setting keeps the parent's/kernel's default.
// config-linux.md#memory, #cpu, #block-io, #network
#[test]
fn every_zero_field_means_not_set() {
    require_root!();
    let ctx = Ctx::new("rczero");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["resources"] = json!({
        "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0,
                   "swappiness": 18446744073709551615u64},
        "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                "realtimePeriod": 0, "cpus": "", "mems": ""},
        "blockIO": {"weight": 0, "leafWeight": 0,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 0, "leafWeight": 0}]},
        "network": {"classID": 0},
        "hugepageLimits": [],
        "rdma": {},
        "unified": {}
    });
    run_detached(&ctx, &id, &c);
    let mem = read(&cg_file(
        &id,
        "memory",
        "memory.limit_in_bytes",
        "memory.max",
    ));
    assert!(mem_unlimited(&mem), "memory limit {mem}");
    let quota = read(&cg_file(&id, "cpu", "cpu.cfs_quota_us", "cpu.max"));
    assert!(quota == "-1" || quota.starts_with("max"), "quota {quota}");
    let cpus = cg_file(&id, "cpuset", "cpuset.cpus", "cpuset.cpus.effective");
    if cpus.exists() {
        assert!(!read(&cpus).is_empty(), "cpuset.cpus kept non-empty");
    }
    let pids = read(&cg_file(&id, "pids", "pids.max", "pids.max"));
    assert_eq!(pids, "max");
    delete(&ctx, &id);
}

/// -1 means unlimited wherever runc accepts it.
// config-linux.md#memory, #cpu, #pids
#[test]
fn minus_one_is_unlimited() {
    require_root!();
    let ctx = Ctx::new("rcneg");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["resources"] = json!({
        "memory": {"limit": -1, "reservation": -1, "swap": -1},
        "cpu": {"quota": -1},
        "pids": {"limit": -1}
    });
    run_detached(&ctx, &id, &c);
    let mem = read(&cg_file(
        &id,
        "memory",
        "memory.limit_in_bytes",
        "memory.max",
    ));
    assert!(mem_unlimited(&mem), "memory limit {mem}");
    let quota = read(&cg_file(&id, "cpu", "cpu.cfs_quota_us", "cpu.max"));
    assert!(quota == "-1" || quota.starts_with("max"), "quota {quota}");
    assert_eq!(read(&cg_file(&id, "pids", "pids.max", "pids.max")), "max");
    delete(&ctx, &id);
}

/// Docker 20.10 `docker update --pids-limit 40` on a container created
/// without other limits: dockerd's toContainerdResources sends every field
/// (Go's encoding: pointers to 0 are kept), containerd 1.6 pipes it to
/// `update -r -`. Only pids.max changes.
// config-linux.md#control-groups, runtime.md (update is runc's)
#[test]
fn docker_update_zero_fields_change_nothing() {
    require_root!();
    let ctx = Ctx::new("rcdupd");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["ociVersion"] = json!("1.0.2-dev");
    c["linux"]["resources"] = json!({
        "memory": {"disableOOMKiller": false}, "cpu": {"shares": 0}, "blockIO": {"weight": 0}
    });
    run_detached(&ctx, &id, &c);
    let pids = cg_file(&id, "pids", "pids.max", "pids.max");
    let before: Vec<_> = snapshot(&id)
        .into_iter()
        .filter(|(f, _)| *f != pids)
        .collect();
    let out = update_stdin(
        &ctx,
        &id,
        r#"{"memory":{"limit":0,"reservation":0,"kernel":0},"cpu":{"shares":0,"quota":0,"period":0},"pids":{"limit":40},"blockIO":{"weight":0}}"#,
    );
    assert_ok(&out, "docker update -r -");
    assert_eq!(read(&pids), "40");
    for (f, v) in &before {
        assert_eq!(&read(f), v, "{} changed", f.display());
    }
    // `docker update --blkio-weight 0 --cpu-shares 0`: flags with runc's zeros.
    let out = ctx.cuddy(&["update", "--blkio-weight", "0", "--cpu-share", "0", &id]);
    assert_ok(&out, "update --blkio-weight 0 --cpu-share 0");
    for (f, v) in &before {
        assert_eq!(&read(f), v, "{} changed", f.display());
    }
    // A real weight is written where the host has a weight file: BFQ takes
    // it as is, io.weight converted (config-linux.md#block-io).
    let weights = [
        ("blkio", "blkio.bfq.weight", "io.bfq.weight", "300"),
        ("blkio", "blkio.weight", "io.weight", "2930"),
    ];
    if let Some((f, want)) = weights
        .iter()
        .map(|(c, v1, v2, w)| (cg_file(&id, c, v1, v2), *w))
        .find(|(f, _)| f.exists())
    {
        assert_ok(
            &ctx.cuddy(&["update", "--blkio-weight", "300", &id]),
            "update --blkio-weight 300",
        );
        assert!(read(&f).contains(want), "{}: {}", f.display(), read(&f));
    }
    // Empty cpuset strings are "not set" too (not an empty cpuset).
    let out = update_stdin(&ctx, &id, r#"{"cpu":{"cpus":"","mems":""}}"#);
    assert_ok(&out, "update with empty cpus/mems");
    for (f, v) in &before {
        assert_eq!(&read(f), v, "{} changed", f.display());
    }
    delete(&ctx, &id);
}

/// podman 4.3 `--pids-limit -1` writes `"pids":{"limit":0}` with ociVersion
/// 1.0.2-dev: unlimited, on create and on update (flag and JSON alike).
// config-linux.md#pids (0 is a limit only from spec 1.3.0 on)
#[test]
fn podman_pids_limit_zero_before_1_3_is_unlimited() {
    require_root!();
    let ctx = Ctx::new("rcpodp");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    c["ociVersion"] = json!("1.0.2-dev");
    c["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "pids": {"limit": 0}
    });
    run_detached(&ctx, &id, &c);
    let pids = cg_file(&id, "pids", "pids.max", "pids.max");
    assert_eq!(read(&pids), "max");
    let cur = cg_file(&id, "pids", "pids.current", "pids.current");
    wait_until("the container forked", || {
        read(&cur).parse::<u64>().unwrap_or(0) >= 3
    });
    assert_ok(
        &ctx.cuddy(&["update", "--pids-limit", "10", &id]),
        "update 10",
    );
    assert_eq!(read(&pids), "10");
    assert_ok(
        &ctx.cuddy(&["update", "--pids-limit", "0", &id]),
        "update 0",
    );
    assert_eq!(read(&pids), "max", "--pids-limit 0 agrees with create");
    assert_ok(
        &ctx.cuddy(&["update", "--pids-limit", "10", &id]),
        "update 10",
    );
    assert_ok(&update_stdin(&ctx, &id, r#"{"pids":{"limit":0}}"#), "-r 0");
    assert_eq!(read(&pids), "max", "-r {{limit:0}} agrees with create");
    delete(&ctx, &id);
}

/// From spec 1.3.0 on, 0 is a real limit and -1 is "max"; `"pids":{}` (no
/// limit) leaves pids.max alone.
// config-linux.md#pids
#[test]
fn pids_limit_from_1_3_follows_the_spec() {
    require_root!();
    let ctx = Ctx::new("rcpid13");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["ociVersion"] = json!("1.3.0");
    c["linux"]["resources"] = json!({"pids": {"limit": 20}});
    run_detached(&ctx, &id, &c);
    let pids = cg_file(&id, "pids", "pids.max", "pids.max");
    assert_eq!(read(&pids), "20");
    assert_ok(
        &ctx.cuddy(&["update", "--pids-limit", "0", &id]),
        "update 0",
    );
    assert_eq!(read(&pids), "0");
    assert_ok(&update_stdin(&ctx, &id, r#"{"pids":{"limit":5}}"#), "-r 5");
    assert_eq!(read(&pids), "5");
    assert_ok(&update_stdin(&ctx, &id, r#"{"pids":{}}"#), "-r {}");
    assert_eq!(read(&pids), "5", "no limit given: unchanged");
    assert_ok(&update_stdin(&ctx, &id, r#"{"pids":{"limit":0}}"#), "-r 0");
    assert_eq!(read(&pids), "0");
    assert_ok(
        &ctx.cuddy(&["update", "--pids-limit", "-1", &id]),
        "update -1",
    );
    assert_eq!(read(&pids), "max");
    delete(&ctx, &id);
}

/// Spec 1.3.0 `"pids":{"limit":0}` on create: pids.max is 0 inside the
/// container and fork fails there (the shell's builtins still run).
// config-linux.md#pids ("0 is a valid limit value ... SHOULD be treated as such")
#[test]
fn pids_limit_zero_from_1_3_is_enforced_inside() {
    require_root!();
    let ctx = Ctx::new("rcpid0");
    let id = ctx.id("a");
    let f = if is_v2() { "pids.max" } else { "pids/pids.max" };
    let script = format!("read v < /sys/fs/cgroup/{f}; echo pids=$v; /bin/true; echo forked");
    let mut c = ctx.config(&["/bin/sh", "-c", &script]);
    c["ociVersion"] = json!("1.3.0");
    c["linux"]["resources"] = json!({"pids": {"limit": 0}});
    let out = ctx.run(&id, &c);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("pids=0") && !o.contains("forked"), "{o} {e}");
    assert!(e.contains("fork"), "the shell cannot fork: {e}");
    ctx.assert_no_leftovers(&id);
}

/// A node one past the last online NUMA node (refused by the kernel's cpuset).
fn missing_mem_node() -> String {
    let online =
        std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_else(|_| "0".into());
    let last = online
        .trim()
        .rsplit([',', '-'])
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    (last + 1).to_string()
}

/// Item 3: a write the kernel refuses part-way through an update (a memory
/// node that does not exist; a CFS quota below the kernel's 1ms minimum)
/// leaves memory, pids and shares as they were, and the error names the file
/// and the value.
// config-linux.md#control-groups
#[test]
fn failed_update_restores_what_it_wrote() {
    require_root!();
    let ctx = Ctx::new("rcatom");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["resources"] = json!({
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 50},
        "cpu": {"shares": 512}
    });
    run_detached(&ctx, &id, &c);
    let before = snapshot(&id);
    assert!(before.len() >= 5, "{before:?}");
    let node = missing_mem_node();
    let cases = [
        (
            json!({"memory": {"limit": 32 << 20}, "pids": {"limit": 7},
                   "cpu": {"shares": 256, "mems": node}}),
            "cpuset.mems",
            format!("{node:?}"),
        ),
        (
            json!({"memory": {"limit": 32 << 20}, "pids": {"limit": 7},
                   "cpu": {"shares": 256, "quota": 500, "period": 100000}}),
            if is_v2() {
                "cpu.max"
            } else {
                "cpu.cfs_quota_us"
            },
            "500".to_string(),
        ),
    ];
    for (req, file, value) in cases {
        let out = update_stdin(&ctx, &id, &req.to_string());
        assert_fails_with(&out, file);
        let err = stderr(&out);
        assert!(err.contains(&value), "value {value} named: {err}");
        assert!(err.contains("restored"), "says it restored: {err}");
        for (f, v) in &before {
            assert_eq!(&read(f), v, "{} not restored after {req}", f.display());
        }
    }
    // Invalid before any write: nothing changes either.
    let out = update_stdin(
        &ctx,
        &id,
        r#"{"memory":{"limit":33554432},"pids":{"limit":7},"cpu":{"shares":1}}"#,
    );
    assert_fails_with(&out, "linux.resources.cpu.shares");
    for (f, v) in &before {
        assert_eq!(&read(f), v, "{} changed by a refused update", f.display());
    }
    delete(&ctx, &id);
}

/// A negative value other than -1 (config-linux.md#memory: -1 is
/// unlimited) is bad input: `create` names the field and leaves nothing
/// behind; `update` names it and changes nothing.
#[test]
fn negative_memory_limit_is_refused() {
    require_root!();
    let ctx = Ctx::new("rcbad");
    let id = ctx.id("c");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["resources"] = json!({"memory": {"limit": -5}});
    assert_fails_with(&ctx.run(&id, &c), "linux.resources.memory.limit");
    ctx.assert_no_leftovers(&id);

    let id = ctx.id("u");
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    run_detached(&ctx, &id, &c);
    let f = cg_file(&id, "memory", "memory.limit_in_bytes", "memory.max");
    let out = update_stdin(&ctx, &id, r#"{"memory":{"limit":-5}}"#);
    assert_fails_with(&out, "memory.limit");
    assert_eq!(read(&f), "67108864", "changed by a refused update");
    delete(&ctx, &id);
}
