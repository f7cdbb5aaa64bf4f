//! runtime.md "Errors": bad input fails cleanly with one message naming what,
//! where and why, exit code 1, and nothing left behind (no state dir, cgroup,
//! mount or process).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// The pid file, if one was written, must not name a live process.
fn assert_no_process(pidfile: &Path) {
    if let Ok(s) = std::fs::read_to_string(pidfile) {
        let pid: i32 = s.trim().parse().unwrap();
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true);
        assert!(
            !alive || zombie,
            "pid file {} names live process {pid}",
            pidfile.display()
        );
    }
}

/// No leftover cuddy init whose command line names `id`.
fn assert_no_init_of(id: &str) {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(id) && !cmd.contains(" delete ") {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                stat.is_empty() || stat.contains(") Z"),
                "process {pid} ({cmd}) of {id} is left"
            );
        }
    }
}

/// `create` of a bundle with `config` fails with exit 1, stderr containing
/// every one of `needles` (the error once), and leaves nothing behind.
fn create_fails(ctx: &Ctx, name: &str, config: &Value, needles: &[&str]) -> String {
    let b = ctx.bundle(name, config);
    create_bundle_fails(ctx, name, &b, needles)
}

fn create_bundle_fails(ctx: &Ctx, name: &str, b: &Path, needles: &[&str]) -> String {
    let id = ctx.id(name);
    let pidfile = ctx.dir.path().join(format!("{name}.pid"));
    let out = ctx.cuddy(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert_fails_with(&out, needles[0]);
    let e = stderr(&out);
    for n in &needles[1..] {
        assert!(e.contains(n), "{name}: stderr does not mention {n:?}: {e}");
    }
    ctx.assert_no_leftovers(&id);
    assert_no_process(&pidfile);
    assert_no_init_of(&id);
    assert_fails_with(&ctx.cuddy(&["state", &id]), "does not exist");
    e
}

fn cfg(ctx: &Ctx) -> Value {
    ctx.config(&["/bin/true"])
}

fn ns_without(c: &mut Value, t: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != t);
}

#[test]
fn bundle_and_json_errors() {
    require_root!();
    let ctx = Ctx::new("badjson");
    // No config.json.
    let b = ctx.dir.path().join("empty-bundle");
    std::fs::create_dir(&b).unwrap();
    create_bundle_fails(
        &ctx,
        "noconfig",
        &b,
        &["config.json", "No such file or directory"],
    );

    // Invalid JSON: the message names the line and column.
    let b = ctx.dir.path().join("badjson-bundle");
    std::fs::create_dir(&b).unwrap();
    std::fs::write(
        b.join("config.json"),
        "{\n  \"ociVersion\": \"1.3.0\",\n  \"root\": ,\n}\n",
    )
    .unwrap();
    create_bundle_fails(&ctx, "badjson", &b, &["config.json", "line 3 column"]);

    // A bundle directory that does not exist.
    create_bundle_fails(
        &ctx,
        "nobundle",
        &ctx.dir.path().join("no-such-bundle"),
        &["no-such-bundle", "No such file"],
    );
}

// root.path and ociVersion errors are rows of the catalogue (catalogue.rs).

#[test]
fn process_errors() {
    require_root!();
    let ctx = Ctx::new("badproc");
    let mut c = cfg(&ctx);
    c.as_object_mut().unwrap().remove("process");
    create_fails(&ctx, "noproc", &c, &["process", "missing"]);

    let mut c = cfg(&ctx);
    c["process"]["args"] = json!([]);
    create_fails(&ctx, "noargs", &c, &["process.args"]);

    let mut c = cfg(&ctx);
    c["process"]["cwd"] = json!("relative/dir");
    create_fails(
        &ctx,
        "cwd",
        &c,
        &["process.cwd", "relative/dir", "absolute"],
    );

    let mut c = cfg(&ctx);
    c["process"]["env"] = json!(["PATH=/bin", "NOEQUALS"]);
    create_fails(&ctx, "env", &c, &["process.env", "NOEQUALS"]);

    let mut c = cfg(&ctx);
    c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]);
    create_fails(
        &ctx,
        "rlimit",
        &c,
        &[
            "process.rlimits",
            "RLIMIT_NOFILE",
            "soft limit 2048 is above hard limit 1024",
        ],
    );

    let mut c = cfg(&ctx);
    c["process"]["oomScoreAdj"] = json!(5000);
    create_fails(&ctx, "oom", &c, &["process.oomScoreAdj", "5000"]);

    let mut c = cfg(&ctx);
    c["process"]["terminal"] = json!(true);
    create_fails(
        &ctx,
        "tty",
        &c,
        &[
            "bundle-tty/config.json: process.terminal",
            "--console-socket",
        ],
    );
}

/// An executable that does not exist fails `create` (as runc does), not
/// `start`, and leaves nothing.
#[test]
fn executable_not_found() {
    require_root!();
    let ctx = Ctx::new("noexec");
    let c = ctx.config(&["/nonexistent"]);
    create_fails(
        &ctx,
        "abs",
        &c,
        &["/nonexistent", "No such file or directory"],
    );
    let c = ctx.config(&["nosuchcmd", "arg"]);
    create_fails(&ctx, "path", &c, &["nosuchcmd", "PATH"]);
    // `run` too.
    let id = ctx.id("run");
    let out = ctx.run(&id, &ctx.config(&["/nonexistent"]));
    assert_fails_with(&out, "/nonexistent");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn namespace_errors() {
    require_root!();
    let ctx = Ctx::new("badns");
    let mut c = cfg(&ctx);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    create_fails(
        &ctx,
        "unknown",
        &c,
        &[
            "config.json",
            "linux.namespaces[",
            "].type: unknown variant `bogus`",
            " at line ",
        ],
    );

    let mut c = cfg(&ctx);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "pid"}));
    create_fails(
        &ctx,
        "dup",
        &c,
        &["linux.namespaces[6]", "pid", "listed twice"],
    );

    let mut c = cfg(&ctx);
    ns_without(&mut c, "uts");
    create_fails(&ctx, "hostname", &c, &["hostname", "UTS namespace"]);

    let mut c = cfg(&ctx);
    c["linux"]["sysctl"] = json!({"kernel.panic": "1"});
    create_fails(
        &ctx,
        "sysctl",
        &c,
        &["linux.sysctl", "kernel.panic", "host"],
    );

    let mut c = cfg(&ctx);
    ns_without(&mut c, "network");
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    create_fails(
        &ctx,
        "netsysctl",
        &c,
        &["linux.sysctl", "net.ipv4.ip_forward", "network namespace"],
    );

    let mut c = cfg(&ctx);
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    create_fails(&ctx, "maps", &c, &["linux.uidMappings", "user namespace"]);

    let mut c = cfg(&ctx);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    create_fails(
        &ctx,
        "nomaps",
        &c,
        &["linux.uidMappings", "needs uid mappings"],
    );

    let mut c = cfg(&ctx);
    c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 10, "nanosecs": 0}});
    create_fails(
        &ctx,
        "timeoff",
        &c,
        &["linux.timeOffsets", "time namespace"],
    );

    let mut c = cfg(&ctx);
    let missing = ctx.dir.path().join("no-such-ns");
    ns_without(&mut c, "network");
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "network", "path": missing}));
    create_fails(
        &ctx,
        "nspath",
        &c,
        &[
            "linux.namespaces[5].path",
            missing.to_str().unwrap(),
            "does not exist",
        ],
    );

    // A namespace file of the wrong type.
    let mut c = cfg(&ctx);
    ns_without(&mut c, "network");
    let uts = format!("/proc/{}/ns/uts", std::process::id());
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "network", "path": uts}));
    create_fails(
        &ctx,
        "nstype",
        &c,
        &[
            &uts,
            "is a uts namespace",
            "is a uts namespace, not a network one",
        ],
    );

    // Not a namespace file at all.
    let mut c = cfg(&ctx);
    ns_without(&mut c, "ipc");
    let plain = ctx.dir.path().join("plain-file");
    std::fs::write(&plain, "").unwrap();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "ipc", "path": plain}));
    create_fails(
        &ctx,
        "nsfile",
        &c,
        &[plain.to_str().unwrap(), "not a namespace"],
    );
}

#[test]
fn mount_errors() {
    require_root!();
    let ctx = Ctx::new("badmnt");
    let n = cfg(&ctx)["mounts"].as_array().unwrap().len();
    let with = |m: Value| {
        let mut c = cfg(&ctx);
        c["mounts"].as_array_mut().unwrap().push(m);
        c
    };
    let c = with(json!({"destination": "relative/dest", "type": "tmpfs", "source": "tmpfs"}));
    create_fails(
        &ctx,
        "reldest",
        &c,
        &[
            &format!("mounts[{n}].destination"),
            "relative/dest",
            "absolute",
        ],
    );

    // idmap with no mappings anywhere (no user namespace either).
    let c = with(
        json!({"destination": "/idm", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}),
    );
    create_fails(
        &ctx,
        "idmap",
        &c,
        &[&format!("mounts[{n}]"), "/idm", "idmap", "uidMappings"],
    );

    let missing = ctx.dir.path().join("no-such-source");
    let c = with(
        json!({"destination": "/bsrc", "type": "bind", "source": missing, "options": ["bind"]}),
    );
    create_fails(
        &ctx,
        "bindsrc",
        &c,
        &[
            &format!("mounts[{n}]"),
            "/bsrc",
            missing.to_str().unwrap(),
            "No such file or directory",
        ],
    );

    // A mount the kernel refuses in the child: the child's error reaches
    // the user once (assert_fails_with counts "cuddy:"), with the destination.
    let c = with(
        json!({"destination": "/banana", "type": "tmpfs", "source": "tmpfs", "options": ["size=banana"]}),
    );
    let e = create_fails(
        &ctx,
        "child",
        &c,
        &[&format!("mounts[{n}]"), "/banana", "tmpfs", "EINVAL"],
    );
    assert_eq!(e.matches("/banana").count(), 1, "{e}");

    // An option refused in the child: tmpcopyup on a bind mount.
    let c = with(
        json!({"destination": "/tcu", "type": "bind", "source": "/tmp", "options": ["bind", "tmpcopyup"]}),
    );
    create_fails(
        &ctx,
        "tmpcopyup",
        &c,
        &[&format!("mounts[{n}]"), "/tcu", "tmpcopyup"],
    );
}

#[test]
fn unsupported_features() {
    require_root!();
    let ctx = Ctx::new("unsup");
    let mut c = cfg(&ctx);
    c["hooks"] = json!({"createRuntime": [{"path": "/nonexistent/hook"}]});
    create_fails(
        &ctx,
        "hooks",
        &c,
        &[
            "hooks.createRuntime[0].path",
            "/nonexistent/hook",
            "does not exist",
        ],
    );

    let mut c = cfg(&ctx);
    c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY"});
    create_fails(&ctx, "seccomp", &c, &["linux.seccomp.defaultAction"]);

    // --systemd-cgroup where systemd does not answer (this host, the v2
    // guest): a clear error before anything is created.
    let id = ctx.id("systemd");
    let b = ctx.bundle("systemd", &cfg(&ctx));
    let out = ctx.cuddy(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    assert_fails_with(&out, "systemd cgroup driver");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn bad_ids() {
    require_root!();
    let ctx = Ctx::new("badid");
    let b = ctx.bundle("b", &cfg(&ctx));
    for id in ["a/b", "..", ".", "", "x y"] {
        let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), id]);
        assert_fails_with(&out, &format!("{id:?}"));
        assert!(stderr(&out).contains("id"), "{}", stderr(&out));
    }
    // Nothing was created in the state root or next to it.
    let entries: Vec<PathBuf> = std::fs::read_dir(&ctx.root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "{entries:?}");
    assert!(!ctx.dir.path().join("b").exists());
}

#[test]
fn operations_on_wrong_containers() {
    require_root!();
    let ctx = Ctx::new("ops");
    let ghost = ctx.id("ghost");
    for op in [
        vec!["start", &ghost],
        vec!["kill", &ghost, "KILL"],
        vec!["delete", &ghost],
        vec!["state", &ghost],
    ] {
        let out = ctx.cuddy(&op);
        assert_fails_with(&out, &format!("container {ghost:?} does not exist"));
    }
    // As runc: `delete --force` of a container that is gone succeeds (what
    // containerd's shim relies on when it cleans up).
    assert_ok(
        &ctx.cuddy(&["delete", "--force", &ghost]),
        "delete --force of a gone container",
    );

    // Duplicate id: the second create fails, the first container is intact.
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert_fails_with(&out, "already exists");
    assert_eq!(ctx.state(&id)["status"], "created");
    assert_eq!(ctx.state(&id)["pid"], pid);
    let out = ctx.cuddy(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_fails_with(&out, "already exists");

    // Bad signals, by name and by number; the container keeps running.
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    for sig in ["SIGNOPE", "99", "65", "KILLL"] {
        assert_fails_with(&ctx.cuddy(&["kill", &id, sig]), "signal");
    }
    assert_eq!(ctx.state(&id)["status"], "running");
    // Delete of a running container without --force.
    assert_fails_with(&ctx.cuddy(&["delete", &id]), "is running");
    assert_eq!(ctx.state(&id)["status"], "running");
    // Start of a running container.
    assert_fails_with(&ctx.cuddy(&["start", &id]), "running");

    assert_ok(&ctx.cuddy(&["kill", &id, "KILL"]), "kill");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    // Start of a stopped container.
    assert_fails_with(&ctx.cuddy(&["start", &id]), "stopped");
    assert_fails_with(&ctx.cuddy(&["kill", &id, "TERM"]), "not running");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// Issue 11 item 8: the capabilities `runc spec` wrote up to runc 1.1
/// (ambient = permitted, no inheritable: runc's commit 98fe566c dropped
/// inheritable but kept ambient), verbatim. The kernel can raise no ambient
/// capability without its inheritable bit (capabilities(7)); runc 1.1
/// ignored them silently, and cuddy used to print one "not raised" warning
/// per name on every start. Now: no warning, a debug line, nothing raised.
/// config.md#linux-process.
#[test]
fn runc_1_1_spec_ambient_caps_start_quietly() {
    require_root!();
    let ctx = Ctx::new("ambient");
    let mut c = ctx.config(&["/bin/sh", "-c", "grep -E '^Cap(Amb|Eff)' /proc/self/status"]);
    c["process"]["capabilities"] = serde_json::from_str(
        r#"{
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        }"#,
    )
    .unwrap();
    let id = ctx.id("quiet");
    let out = ctx.run(&id, &c);
    assert_ok(&out, "run");
    assert_eq!(stderr(&out), "", "no warning on a plain start");
    // Nothing ambient; the effective set is the three (bits 5, 10, 29).
    assert!(
        stdout(&out).contains("CapAmb:\t0000000000000000"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("CapEff:\t0000000020000420"),
        "{}",
        stdout(&out)
    );
    ctx.assert_no_leftovers(&id);

    // With --debug, one line names the three.
    let id = ctx.id("debug");
    let b = ctx.bundle("debug", &c);
    let out = ctx.cuddy(&["--debug", "run", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(&out, "run --debug");
    let e = stderr(&out);
    let lines: Vec<&str> = e.lines().filter(|l| l.contains("ambient")).collect();
    assert_eq!(lines.len(), 1, "{e}");
    assert!(
        lines[0].contains("level=debug")
            && lines[0].contains("CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE skipped"),
        "{e}"
    );
    ctx.assert_no_leftovers(&id);
}
