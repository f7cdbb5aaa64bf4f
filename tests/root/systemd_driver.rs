//! The systemd cgroup driver (`--systemd-cgroup`, `--cgroup-manager
//! systemd`) against a real systemd. Ignored in the plain suite (this host
//! has no systemd as PID 1): `integration/systemd/run.sh` boots one and runs
//! these with `--ignored`. Each feeds cgroupsPath as Docker 20.10 and podman
//! 4.3 send it with their systemd driver, and observes the scope (systemctl,
//! /proc/PID/cgroup, the cgroup files); podman itself and (in `docker`)
//! dockerd itself drive cuddy with their systemd driver.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::*;
use crate::orch::{in_vm, is_v2 as v2, read};
use crate::require_root;

mod containerd;
mod docker;

fn systemctl(args: &[&str]) -> String {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The host's cgroup namespace (Docker and podman on v1), so the paths in
/// /proc/PID/cgroup are absolute.
fn host_cgroupns(c: &mut serde_json::Value) {
    let ns = c["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .clone();
    let ns: Vec<_> = ns.into_iter().filter(|n| n["type"] != "cgroup").collect();
    c["linux"]["namespaces"] = json!(ns);
}

/// A file of the scope in controller `c`'s hierarchy (v1) or the unified one.
fn file(c: &str, rel: &str, name: &str) -> PathBuf {
    let base = if v2() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(c)
    };
    base.join(rel.trim_start_matches('/')).join(name)
}

/// `cuddy --systemd-cgroup run [-d] --bundle BUNDLE ID`.
fn sd_run(ctx: &Ctx, bundle: &Path, id: &str, detach: bool) -> std::process::Output {
    let mut args = vec!["--systemd-cgroup", "run"];
    if detach {
        args.push("-d");
    }
    args.extend(["--bundle", bundle.to_str().unwrap(), id]);
    ctx.cuddy(&args)
}

// config-linux.md#cgroups-path (runc's systemd form "slice:prefix:name"),
// #memory, #pids, #allowed-device-list; runtime.md#delete.
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn docker_container_is_a_transient_scope() {
    require_root!();
    let ctx = Ctx::new("sd");
    let id = ctx.id("docker");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    // Docker 20.10 with "exec-opts": ["native.cgroupdriver=systemd"]:
    // docker run -m 256m --pids-limit 50 --cpu-shares 512
    c["linux"]["cgroupsPath"] = json!(format!("system.slice:docker:{id}"));
    host_cgroupns(&mut c);
    c["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
        "memory": {"limit": 268435456, "swap": 536870912},
        "cpu": {"shares": 512},
        "pids": {"limit": 50},
        // Docker sends it for "not set": no BlockIOWeight (systemd refuses 0).
        "blockIO": {"weight": 0}
    });
    let b = ctx.bundle("docker", &c);
    let out = sd_run(&ctx, &b, &id, true);
    assert_ok(&out, "--systemd-cgroup run -d");
    let unit = format!("docker-{id}.scope");
    let rel = format!("/system.slice/{unit}");
    assert_eq!(systemctl(&["is-active", &unit]), "active");
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    for l in own.lines() {
        assert!(
            l.ends_with(&rel),
            "the init is not in the scope in every hierarchy: {own}"
        );
    }
    let (mem, mem_file) = if v2() {
        ("memory", "memory.max")
    } else {
        ("memory", "memory.limit_in_bytes")
    };
    let files = [file(mem, &rel, mem_file), file("pids", &rel, "pids.max")];
    let values: Vec<String> = files.iter().map(|f| read(f)).collect();
    assert_eq!(values, ["268435456", "50"]);
    assert_eq!(
        systemctl(&["show", "-p", "TasksMax", "--value", &unit]),
        "50"
    );
    let devices = file("devices", &rel, "devices.list");
    // The rules, then cuddy's default allow-list (as the cgroupfs driver).
    let device_list = if v2() { String::new() } else { read(&devices) };
    if !v2() {
        assert!(
            device_list.starts_with("c 1:3 rwm\nc *:* m\n"),
            "{device_list}"
        );
        assert!(!device_list.contains("a *:* rwm"), "{device_list}");
    }
    // daemon-reload makes systemd write the scope's cgroup again: nothing changes.
    Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .expect("daemon-reload");
    let after: Vec<String> = files.iter().map(|f| read(f)).collect();
    assert_eq!(after, values, "daemon-reload changed the limits");
    if !v2() {
        assert_eq!(
            read(&devices),
            device_list,
            "daemon-reload changed the devices"
        );
    }
    // exec joins the scope; pause/resume freeze it (cgroupfs, v1 freezer
    // made by cuddy as systemd leaves that hierarchy alone).
    let out = ctx.cuddy(&["exec", &id, "/bin/cat", "/proc/self/cgroup"]);
    assert_ok(&out, "exec");
    assert!(
        stdout(&out).lines().all(|l| l.ends_with(&rel)),
        "{}",
        stdout(&out)
    );
    assert_ok(&ctx.cuddy(&["pause", &id]), "pause");
    assert_eq!(ctx.state(&id)["status"], "paused");
    assert_ok(&ctx.cuddy(&["resume", &id]), "resume");
    assert_eq!(ctx.state(&id)["status"], "running");
    // update: cgroupfs and the unit property.
    assert_ok(&ctx.cuddy(&["update", "--pids-limit", "70", &id]), "update");
    assert_eq!(read(&file("pids", &rel, "pids.max")), "70");
    assert_eq!(
        systemctl(&["show", "-p", "TasksMax", "--value", &unit]),
        "70"
    );
    // delete: the unit is stopped and gone, and so is its cgroup.
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
    assert_ne!(systemctl(&["is-active", &unit]), "active");
    assert!(!file("pids", &rel, "").exists(), "{rel} left behind");
    ctx.assert_no_leftovers(&id);
}

// podman 4.3 --cgroup-manager systemd: "machine.slice:libpod:ID"; a
// foreground run of /bin/true, and a second container with the same name
// after the first is gone (no stale unit).
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn podman_foreground_run_and_reuse() {
    require_root!();
    let ctx = Ctx::new("sdp");
    let id = ctx.id("podman");
    let mut c = ctx.config(&["/bin/sh", "-c", "cat /proc/self/cgroup"]);
    c["linux"]["cgroupsPath"] = json!(format!("machine.slice:libpod:{id}"));
    host_cgroupns(&mut c);
    let b = ctx.bundle("podman", &c);
    for round in 0..2 {
        let args = [
            "--cgroup-manager",
            "systemd",
            "run",
            "--bundle",
            b.to_str().unwrap(),
            &id,
        ];
        let out = ctx.cuddy(&args);
        assert_ok(&out, &format!("run, round {round}"));
        let want = format!("/machine.slice/libpod-{id}.scope");
        assert!(
            stdout(&out).lines().all(|l| l.ends_with(&want)),
            "{}",
            stdout(&out)
        );
        assert_ne!(
            systemctl(&["is-active", &format!("libpod-{id}.scope")]),
            "active"
        );
        assert!(
            !ctx.root.join(&id).exists(),
            "round {round}: state dir left; run's stderr: {}",
            stderr(&out)
        );
        ctx.assert_no_leftovers(&id);
    }
}

// config-linux.md#user-namespace-mappings, #namespaces (a path): a
// container in a new user namespace, and one joining it by path; the second
// is forked by a middle process (two-stage), which the scope is started
// with, so its init is born inside.
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn user_namespace_containers_in_scopes() {
    require_root!();
    let ctx = Ctx::new("sdu");
    let maps = |c: &mut serde_json::Value| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    };
    let first = ctx.id("userns");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["cgroupsPath"] = json!(format!("system.slice:cuddy:{first}"));
    host_cgroupns(&mut c);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    maps(&mut c);
    let b = ctx.bundle("userns", &c);
    assert_ok(
        &sd_run(&ctx, &b, &first, true),
        "run -d with a user namespace",
    );
    let pid = ctx.state(&first)["pid"].as_i64().unwrap();
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    let want = format!("/system.slice/cuddy-{first}.scope");
    assert!(own.lines().all(|l| l.ends_with(&want)), "{own}");

    let second = ctx.id("joined");
    let mut c = ctx.config(&["/bin/cat", "/proc/self/cgroup"]);
    c["linux"]["cgroupsPath"] = json!(format!("system.slice:cuddy:{second}"));
    host_cgroupns(&mut c);
    let userns = format!("/proc/{pid}/ns/user");
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": userns}));
    let b = ctx.bundle("joined", &c);
    let out = sd_run(&ctx, &b, &second, false);
    assert_ok(&out, "run joining the user namespace");
    let want = format!("/system.slice/cuddy-{second}.scope");
    assert!(
        stdout(&out).lines().all(|l| l.ends_with(&want)),
        "{}",
        stdout(&out)
    );
    ctx.assert_no_leftovers(&second);
    assert_ok(&ctx.cuddy(&["delete", "--force", &first]), "delete --force");
    ctx.assert_no_leftovers(&first);
}

// config-linux.md#pids (spec 1.3.0: a limit of 0 is a limit): systemd
// refuses TasksMax=0, so a reload would lose it: refused, nothing left.
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn pids_limit_zero_is_refused() {
    require_root!();
    let ctx = Ctx::new("sdz");
    let id = ctx.id("zero");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["ociVersion"] = json!("1.3.0");
    c["linux"]["cgroupsPath"] = json!(format!("system.slice:cuddy:{id}"));
    c["linux"]["resources"] = json!({"pids": {"limit": 0}});
    let b = ctx.bundle("zero", &c);
    let out = sd_run(&ctx, &b, &id, true);
    assert_fails_with(&out, "linux.resources.pids.limit 0");
    assert!(stderr(&out).contains("TasksMax"), "{}", stderr(&out));
    assert_ne!(
        systemctl(&["is-active", &format!("cuddy-{id}.scope")]),
        "active"
    );
    ctx.assert_no_leftovers(&id);
}

/// The scope's directory in every hierarchy (v1) or the unified one.
fn scope_dirs(rel: &str) -> Vec<PathBuf> {
    if v2() {
        return vec![Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'))];
    }
    std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroup root")
        .flatten()
        .map(|h| h.path().join(rel.trim_start_matches('/')))
        .collect()
}

// runtime.md#create, #delete; issue 11's write intent with the systemd
// driver: a create killed after StartTransientUnit (held there by a
// createRuntime hook, config.md#createruntime-hooks) leaves a running
// scope; its "creating" record names the unit, and delete --force kills
// the scope's processes, stops the unit and removes its directories.
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn create_killed_after_the_scope_started_is_cleaned_by_delete() {
    require_root!();
    let ctx = Ctx::new("sdk");
    let id = ctx.id("killed");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["cgroupsPath"] = json!(format!("system.slice:cuddy:{id}"));
    host_cgroupns(&mut c);
    let hook_pid = ctx.dir.path().join("hook.pid");
    let script = format!(
        "echo $$ > {}.tmp; mv {0}.tmp {0}; exec sleep 60",
        hook_pid.display()
    );
    c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    let b = ctx.bundle("killed", &c);
    let mut create = ctx.cmd();
    create
        .args(["--systemd-cgroup", "create", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = create.spawn().expect("spawn cuddy create");
    let unit = format!("cuddy-{id}.scope");
    let mut hook = None;
    for _ in 0..600 {
        hook = std::fs::read_to_string(&hook_pid)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if hook.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let hook = hook.expect("the createRuntime hook did not run within 30 s");
    assert_eq!(systemctl(&["is-active", &unit]), "active");
    // Before the kill: the init exits on its own once its creator is gone
    // (its sync channel reads EOF), and systemd then drops the empty scope.
    let rel = format!("/system.slice/{unit}");
    let pids = read(&file("pids", &rel, "cgroup.procs"));
    assert!(!pids.is_empty(), "the init is not in the scope");
    // SIGKILL of cuddy create (by pid), then of its hook.
    child.kill().expect("kill cuddy create");
    child.wait().expect("wait cuddy create");
    // SAFETY: kill(2) of the hook's pid (our grandchild, still alive: it
    // sleeps 60 s); no memory is involved.
    unsafe { libc::kill(hook, libc::SIGKILL) };
    let record: String = std::fs::read_dir(ctx.root.join(&id))
        .expect("state dir")
        .flatten()
        // Regular files only (the exec FIFO would block a reader).
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    assert!(
        record.contains(&unit),
        "the state record does not name the unit: {record}"
    );
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
    assert_ne!(systemctl(&["is-active", &unit]), "active");
    for d in scope_dirs(&rel) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    for p in pids.lines() {
        let proc = format!("/proc/{p}");
        wait_until(&format!("pid {p} to be gone"), || {
            !Path::new(&proc).exists()
        });
    }
    ctx.assert_no_leftovers(&id);
}

/// `podman` with private state under `dir`, cuddy as its runtime and the
/// systemd cgroup manager (the tier's own systemd; its network namespace
/// is the tier's, and only `--network none` is used).
fn podman(dir: &Path, args: &[&str]) -> std::process::Output {
    let d = dir.display();
    let mut c = Command::new("podman");
    c.args(["--root", &format!("{d}/root"), "--runroot"])
        .arg(format!("{d}/runroot"))
        .args(["--tmpdir", &format!("{d}/tmp"), "--runtime", CUDDY])
        .args(["--cgroup-manager", "systemd", "--events-backend", "file"])
        .args(args);
    output_with_timeout(c, 120)
}

// podman 4.3 `--cgroup-manager systemd` with cuddy as its runtime (podman
// passes --systemd-cgroup and cgroupsPath "machine.slice:libpod:<id>"),
// podman's default seccomp profile: run -d with -m and --pids-limit (the
// scope and its limits, in cgroupfs and as unit properties), exec in the
// scope, stop, rm (unit and directories gone), a foreground run's exit
// code. config-linux.md#cgroups-path, #memory, #pids; runtime.md#operations.
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn podman_cgroup_manager_systemd() {
    require_root!();
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: podman is not installed (integration/test.sh installs it)");
        return;
    }
    // Under TCG podman alone takes minutes: in the v2 guest only on request.
    if in_vm() && std::env::var_os("CUDDY_SYSTEMD_PODMAN").is_none() {
        eprintln!("skipped in the v2 guest (CUDDY_SYSTEMD_PODMAN=1 runs it)");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("cuddy-t-sdpodman-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let tar = crate::orch::fixture_tar(d);
    let image = "localhost/busybox";
    assert_ok(
        &podman(d, &["import", tar.to_str().unwrap(), image]),
        "podman import",
    );
    // Root here lacks CAP_SYS_RESOURCE: explicit nofile and nproc limits.
    let opts = [
        "--pull",
        "never",
        "--network",
        "none",
        // /proc/self/cgroup with the full path (v2's default is private).
        "--cgroupns",
        "host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ];
    let mut a = vec![
        "run",
        "-d",
        "--name",
        "sdc",
        "-m",
        "64m",
        "--pids-limit",
        "40",
    ];
    a.extend(opts);
    a.extend([image, "sleep", "1000"]);
    let o = podman(d, &a);
    assert_ok(&o, "podman run -d -m 64m --pids-limit 40");
    let id = stdout(&o).trim().to_string();
    let unit = format!("libpod-{id}.scope");
    let rel = format!("/machine.slice/{unit}");
    assert_eq!(systemctl(&["is-active", &unit]), "active");
    let mem = if v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(read(&file("memory", &rel, mem)), "67108864");
    assert_eq!(read(&file("pids", &rel, "pids.max")), "40");
    assert_eq!(
        systemctl(&["show", "-p", "TasksMax", "--value", &unit]),
        "40"
    );
    let mem_prop = if v2() { "MemoryMax" } else { "MemoryLimit" };
    assert_eq!(
        systemctl(&["show", "-p", mem_prop, "--value", &unit]),
        "67108864"
    );
    let o = podman(d, &["exec", "sdc", "cat", "/proc/self/cgroup"]);
    assert_ok(&o, "podman exec");
    assert!(
        stdout(&o).lines().all(|l| l.ends_with(&rel)),
        "exec is not in the scope: {}",
        stdout(&o)
    );
    assert_ok(&podman(d, &["stop", "-t", "1", "sdc"]), "podman stop");
    assert_ne!(systemctl(&["is-active", &unit]), "active");
    assert_ok(&podman(d, &["rm", "sdc"]), "podman rm");
    for dir in scope_dirs(&rel) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    let mut a = vec!["run", "--rm"];
    a.extend(opts);
    a.extend([
        image,
        "sh",
        "-c",
        "grep -q '^Seccomp:.2' /proc/1/status && exit 5; exit 1",
    ]);
    let o = podman(d, &a);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let ps = podman(d, &["ps", "-a", "-q"]);
    assert!(stdout(&ps).trim().is_empty(), "containers left");
    let _ = podman(d, &["rmi", "-a", "-f"]);
}

// runtime.md#create (the id is unique per state root only): a second
// cuddy with another --root creating a container of the same id gets the
// same scope name; the scope already holds the first container's init, so
// the create is refused before anything starts, and the first container's
// unit is not stopped by the failed create's clean-up.
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn a_scope_in_use_is_refused_and_left_running() {
    require_root!();
    let ctx = Ctx::new("sdx");
    let other = Ctx::new("sdx2");
    let id = ctx.id("twice");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["cgroupsPath"] = json!(format!("system.slice:cuddy:{id}"));
    host_cgroupns(&mut c);
    let b = ctx.bundle("twice", &c);
    assert_ok(&sd_run(&ctx, &b, &id, true), "first run -d");
    let unit = format!("cuddy-{id}.scope");
    let out = sd_run(&other, &b, &id, true);
    assert_fails_with(&out, "holds processes");
    assert_eq!(systemctl(&["is-active", &unit]), "active");
    assert_eq!(ctx.state(&id)["status"], "running");
    assert!(
        !other.root.join(&id).exists(),
        "state of the refused create left"
    );
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
    assert_ne!(systemctl(&["is-active", &unit]), "active");
    ctx.assert_no_leftovers(&id);
}

// config-linux.md#namespaces (cgroup) and the "cgroup" mount: a container
// with its own cgroup namespace, in a scope, sees its scope as the root of
// every hierarchy at /sys/fs/cgroup, its limit there. Here cuddy runs where
// the tier's hierarchies are mounted over the host's (a nested setup, as in
// a container or systemd-nspawn): only the visible set is mounted (the
// hidden one too made every mount fail with EBUSY).
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn own_cgroup_namespace_in_a_scope() {
    require_root!();
    let ctx = Ctx::new("sdns");
    let id = ctx.id("ns");
    let limit = if v2() {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let mut c = ctx.config(&["/bin/sh", "-c", &format!("cat /proc/self/cgroup {limit}")]);
    c["linux"]["cgroupsPath"] = json!(format!("system.slice:cuddy:{id}"));
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    assert!(
        c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "cgroup")
    );
    let b = ctx.bundle("ns", &c);
    let out = sd_run(&ctx, &b, &id, false);
    assert_ok(&out, "--systemd-cgroup run with a cgroup namespace");
    let text = stdout(&out);
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.pop(), Some("67108864"), "{text}");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.ends_with(":/")),
        "not the root of its cgroup namespace: {text}"
    );
    ctx.assert_no_leftovers(&id);
}
