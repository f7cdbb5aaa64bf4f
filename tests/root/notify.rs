//! NOTIFY_SOCKET (sd_notify) relayed as runc does it (issue 8 item 18): the
//! container sees `NOTIFY_SOCKET=/run/notify/notify.sock` (a read-only bind
//! of `<state dir>/notify`), and its `READY=1` reaches the caller's socket
//! with `MAINPID` and `BARRIER=1`, for `run`, `run -d` and `create`+`start`.
//! Not in the runtime spec: runc's notify_socket.go is the reference
//! (runtime.md#lifecycle step 8 is the start it hooks into).

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// The caller's socket (what systemd gives a Type=notify unit).
fn host_socket(ctx: &Ctx) -> (UnixDatagram, String) {
    let p = ctx.dir.path().join("host-notify.sock");
    let s = UnixDatagram::bind(&p).unwrap();
    // A hang guard, not a timing assertion.
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    (s, p.to_str().unwrap().to_string())
}

/// Receives the three datagrams cuddy relays; returns MAINPID. Receiving
/// BARRIER=1 without a control buffer closes its pipe: the acknowledgement.
fn relayed(sock: &UnixDatagram) -> i64 {
    let mut buf = [0u8; 4096];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a datagram from cuddy");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1\n");
    let main = next();
    let pid = main
        .strip_prefix("MAINPID=")
        .and_then(|m| m.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("MAINPID line: {main:?}"));
    assert_eq!(next(), "BARRIER=1");
    pid.parse().unwrap()
}

fn spawn(ctx: &Ctx, notify: &str, args: &[&str], out: &std::path::Path) -> Child {
    let mut c = ctx.cmd();
    c.env("NOTIFY_SOCKET", notify).args(args);
    c.stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::inherit());
    c.spawn().unwrap()
}

/// What the container saw: its env and the /run/notify mount.
fn assert_saw_socket(probe: &Value) {
    assert_eq!(probe["notify_errno"], 0, "send from the container");
    let env: Vec<&str> = probe["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        env.contains(&"NOTIFY_SOCKET=/run/notify/notify.sock"),
        "{env:?}"
    );
    let m = probe["mounts"].to_string();
    assert!(m.contains("/run/notify"), "no /run/notify mount: {m}");
}

fn config(ctx: &Ctx, sleep: bool) -> Value {
    let mut args = vec!["/bin/probe", "--notify", "READY=1"];
    if sleep {
        args.push("--sleep");
    }
    ctx.config(&args)
}

// runtime.md#lifecycle (start), runc notify_socket.go: foreground `run`
// relays READY with MAINPID = cuddy's own pid (systemd watches cuddy).
#[test]
fn run_foreground_relays_ready_with_cuddys_pid() {
    require_root!();
    let ctx = Ctx::new("nt-run");
    let (sock, path) = host_socket(&ctx);
    let id = ctx.id("c");
    let b = ctx.bundle(&id, &config(&ctx, false));
    let out = ctx.dir.path().join("out");
    let mut child = spawn(
        &ctx,
        &path,
        &["run", "--bundle", b.to_str().unwrap(), &id],
        &out,
    );
    assert_eq!(relayed(&sock), i64::from(child.id()));
    assert!(child.wait().unwrap().success());
    let probe: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_saw_socket(&probe);
    ctx.assert_no_leftovers(&id);
}

// runc: `run -d` and `create`+`start` relay MAINPID = the init's host pid,
// and `create` alone binds nothing (the socket appears at start).
#[test]
fn detached_and_create_start_relay_the_init_pid() {
    require_root!();
    let ctx = Ctx::new("nt-d");
    let (sock, path) = host_socket(&ctx);
    for (n, split) in [(0, false), (1, true)] {
        let id = ctx.id(&format!("c{n}"));
        let mut cfg = config(&ctx, true);
        cfg["process"]["args"]
            .as_array_mut()
            .unwrap()
            .extend([json!("--write"), json!("/run/probe.json")]);
        cfg["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
        }));
        let b = ctx.bundle(&id, &cfg);
        let b = b.to_str().unwrap();
        let out = ctx.dir.path().join(format!("out{n}"));
        let mut child = if split {
            let mut c = spawn(&ctx, &path, &["create", "--bundle", b, &id], &out);
            assert!(c.wait().unwrap().success(), "create");
            let sockdir = ctx.root.join(&id).join("notify");
            assert!(sockdir.is_dir(), "create makes the notify dir");
            assert!(
                !sockdir.join("notify.sock").exists(),
                "create binds nothing"
            );
            spawn(&ctx, &path, &["start", &id], &out)
        } else {
            spawn(&ctx, &path, &["run", "-d", "--bundle", b, &id], &out)
        };
        let main = relayed(&sock);
        assert!(child.wait().unwrap().success());
        assert_eq!(main, ctx.state(&id)["pid"].as_i64().unwrap());
        let json = ctx.cuddy(&["exec", &id, "/bin/cat", "/run/probe.json"]);
        assert_ok(&json, "exec cat");
        assert_saw_socket(&serde_json::from_slice(&json.stdout).unwrap());
        assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
        ctx.assert_no_leftovers(&id);
    }
}

// runc notify_socket.go; config-linux.md#user-namespace-mappings,
// config.md#root (readonly): a non-root container user in a user namespace
// with a read-only rootfs can still send (socket mode 0777, the mount is
// made before the rootfs turns read-only).
#[test]
fn userns_readonly_rootfs_and_non_root_user_can_notify() {
    require_root!();
    let ctx = Ctx::new("nt-userns");
    let (sock, path) = host_socket(&ctx);
    let id = ctx.id("c");
    let mut c = config(&ctx, false);
    c["root"]["readonly"] = json!(true);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let b = ctx.bundle(&id, &c);
    let out = ctx.dir.path().join("out");
    let mut child = spawn(
        &ctx,
        &path,
        &["run", "--bundle", b.to_str().unwrap(), &id],
        &out,
    );
    assert_eq!(relayed(&sock), i64::from(child.id()));
    assert!(child.wait().unwrap().success());
    let probe: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(probe["uid"], 1000);
    assert_saw_socket(&probe);
    ctx.assert_no_leftovers(&id);
}
