//! config.md "POSIX-platform Hooks" and runtime.md "Lifecycle": order,
//! namespaces, stdin state, env, fds and failure semantics of every kind.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// A hook that records into `dir` (seen at `dir_in` by the hook): its kind
/// into `order` with its net namespace, its stdin, its env and its fds.
fn recorder(kind: &str, dir_in: &str) -> Value {
    let script = r#"k=$1; d=$2
cat > "$d/$k.json"
echo "$k $(readlink /proc/self/ns/net)" >> "$d/order"
env > "$d/$k.env"
ls -l /proc/self/fd > "$d/$k.fds" 2>&1
exit 0"#;
    json!({"path": "/bin/sh", "args": ["sh", "-c", script, "sh", kind, dir_in], "env": ["PATH=/usr/bin:/bin", "HOOKVAR=1"]})
}

fn failing(kind: &str, code: i32) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} broke >&2; exit {code}")]})
}

/// The config with every hook kind recording into `rec` (host path), and
/// `rec` bind mounted at /rec for the startContainer hook (which runs in the
/// container).
fn recording_config(ctx: &Ctx, rec: &Path, args: &[&str]) -> Value {
    std::fs::create_dir_all(rec).expect("mkdir rec");
    let r = rec.to_str().expect("utf8");
    let mut c = ctx.config(args);
    c["mounts"].as_array_mut().expect("mounts").push(
        json!({"destination": "/rec", "type": "bind", "source": r, "options": ["rbind", "rw"]}),
    );
    c["hooks"] = json!({
        "prestart": [recorder("prestart", r)],
        "createRuntime": [recorder("createRuntime", r)],
        "createContainer": [recorder("createContainer", r)],
        "startContainer": [recorder("startContainer", "/rec")],
        "poststart": [recorder("poststart", r)],
        "poststop": [recorder("poststop", r)],
    });
    c["annotations"] = json!({"org.example.k": "v"});
    c
}

fn ns_of(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_hook_in_order_with_state_env_and_namespaces() {
    require_root!();
    let ctx = Ctx::new("hooks");
    let id = ctx.id("all");
    let rec = ctx.dir.path().join("rec");
    let b = ctx.bundle(
        "all",
        &recording_config(&ctx, &rec, &["/bin/sleep", "1000"]),
    );
    let mut c = ctx.cmd();
    c.env("CUDDY_TEST_MARK", "leak")
        .args(["create", "--bundle", b.to_str().unwrap(), &id]);
    let out = output_with_timeout(c, 60);
    assert_ok(&out, "create");
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let cnet = ns_of(pid, "net");
    let hnet = ns_of(std::process::id() as i64, "net");
    assert_ne!(cnet, hnet);
    let order = std::fs::read_to_string(rec.join("order")).unwrap();
    assert_eq!(
        order,
        format!("prestart {hnet}\ncreateRuntime {hnet}\ncreateContainer {cnet}\n")
    );

    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
    let order = std::fs::read_to_string(rec.join("order")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("prestart {hnet}"),
            format!("createRuntime {hnet}"),
            format!("createContainer {cnet}"),
            format!("startContainer {cnet}"),
            format!("poststart {hnet}"),
            format!("poststop {hnet}"),
        ]
    );
    let bundle = b.canonicalize().unwrap();
    for (kind, status, has_pid) in [
        ("prestart", "creating", true),
        ("createRuntime", "creating", true),
        ("createContainer", "creating", true),
        ("startContainer", "created", true),
        ("poststart", "running", true),
        ("poststop", "stopped", false),
    ] {
        let st: Value =
            serde_json::from_slice(&std::fs::read(rec.join(format!("{kind}.json"))).unwrap())
                .unwrap_or_else(|e| panic!("{kind} stdin is not the state JSON: {e}"));
        assert_eq!(st["id"], id.as_str(), "{kind}");
        assert_eq!(st["status"], status, "{kind}");
        assert_eq!(st["ociVersion"], "1.3.0", "{kind}");
        assert_eq!(st["bundle"], bundle.to_str().unwrap(), "{kind}");
        assert_eq!(st["annotations"]["org.example.k"], "v", "{kind}");
        if has_pid {
            assert_eq!(
                st["pid"].as_i64(),
                Some(pid),
                "{kind}: the host pid of the init"
            );
        }
        let env = std::fs::read_to_string(rec.join(format!("{kind}.env"))).unwrap();
        assert!(env.contains("HOOKVAR=1"), "{kind}: {env}");
        assert!(
            !env.contains("CUDDY_TEST_MARK"),
            "{kind} got cuddy's environment: {env}"
        );
        // No cuddy fd: above 2 only ls's own directory fd.
        let fds = std::fs::read_to_string(rec.join(format!("{kind}.fds"))).unwrap();
        for l in fds.lines().filter(|l| l.contains("->")) {
            let name: i32 = l
                .split("->")
                .next()
                .unwrap()
                .split_whitespace()
                .last()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                name <= 2 || l.contains("/fd"),
                "{kind} inherited an fd: {l}\n{fds}"
            );
        }
    }
}

/// createRuntime / createContainer / prestart failing: create fails with the
/// hook's message and output, nothing is left behind, poststop still runs.
#[test]
fn failing_create_hooks_fail_create_and_clean_up() {
    require_root!();
    let ctx = Ctx::new("hookfail");
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let id = ctx.id(kind);
        let rec = ctx.dir.path().join(format!("rec-{kind}"));
        let mut c = recording_config(&ctx, &rec, &["/bin/sleep", "1000"]);
        c["hooks"][kind] = json!([failing(kind, 3)]);
        let b = ctx.bundle(kind, &c);
        let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]);
        assert_fails_with(&out, &format!("{kind} hook /bin/sh: exited with status 3"));
        assert!(
            stderr(&out).contains(&format!("{kind} broke")),
            "hook output quoted: {}",
            stderr(&out)
        );
        ctx.assert_no_leftovers(&id);
        let order = std::fs::read_to_string(rec.join("order")).unwrap_or_default();
        assert!(
            order.contains("poststop"),
            "{kind}: poststop must run after a failed create: {order}"
        );
        assert!(!order.contains("startContainer"), "{kind}: {order}");
    }
}

#[test]
fn hook_timeout_kills_it() {
    require_root!();
    let ctx = Ctx::new("hooktime");
    let id = ctx.id("t");
    let mut c = ctx.config(&["/bin/true"]);
    c["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "300"], "timeout": 1}]});
    let b = ctx.bundle("t", &c);
    let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]);
    // The hook was killed at its timeout (the harness's hang guard would
    // have failed the test had cuddy waited for the 300 s sleep).
    assert_fails_with(&out, "createRuntime hook /bin/sleep: timed out after 1s");
    ctx.assert_no_leftovers(&id);
}

/// startContainer failing: start fails with its message, the user process
/// never runs; poststart/poststop failures are warnings only.
#[test]
fn start_and_post_hook_failures() {
    require_root!();
    let ctx = Ctx::new("hookpost");
    let id = ctx.id("sc");
    let rec = ctx.dir.path().join("rec-sc");
    let mut c = recording_config(
        &ctx,
        &rec,
        &["/bin/sh", "-c", "touch /rec/user-ran; sleep 1000"],
    );
    c["hooks"]["startContainer"] = json!([failing("startContainer", 4)]);
    let b = ctx.bundle("sc", &c);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let out = ctx.cuddy(&["start", &id]);
    assert_fails_with(&out, "startContainer hook /bin/sh: exited with status 4");
    assert!(
        !rec.join("user-ran").exists(),
        "the user process must not run"
    );
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);

    let id = ctx.id("post");
    let rec = ctx.dir.path().join("rec-post");
    let mut c = recording_config(&ctx, &rec, &["/bin/sleep", "1000"]);
    c["hooks"]["poststart"] = json!([failing("poststart", 5)]);
    c["hooks"]["poststop"] = json!([
        failing("poststop", 6),
        recorder("poststop", rec.to_str().unwrap())
    ]);
    let b = ctx.bundle("post", &c);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let out = ctx.cuddy(&["start", &id]);
    assert_ok(&out, "start with a failing poststart hook");
    assert!(
        stderr(&out).contains("warning: poststart hook /bin/sh: exited with status 5"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ctx.state(&id)["status"], "running");
    let out = ctx.cuddy(&["delete", "--force", &id]);
    assert_ok(&out, "delete with a failing poststop hook");
    assert!(
        stderr(&out).contains("warning: poststop hook /bin/sh: exited with status 6"),
        "{}",
        stderr(&out)
    );
    // The next poststop hook still ran.
    assert!(
        std::fs::read_to_string(rec.join("order"))
            .unwrap()
            .contains("poststop")
    );
    ctx.assert_no_leftovers(&id);
}

/// Bad hook config: clear error before anything is created.
#[test]
fn bad_hook_config() {
    require_root!();
    let ctx = Ctx::new("hookbad");
    for (hooks, needle) in [
        (
            json!({"createRuntime": [{"path": "/nonexistent/hook"}]}),
            "hooks.createRuntime[0].path: /nonexistent/hook does not exist",
        ),
        (
            json!({"prestart": [{"path": "relative/hook"}]}),
            "hooks.prestart[0].path: relative/hook must be an absolute path",
        ),
        (
            json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}),
            "hooks.poststop[0].timeout: must be greater than zero",
        ),
    ] {
        let id = ctx.id("b");
        let mut c = ctx.config(&["/bin/true"]);
        c["hooks"] = hooks;
        let b = ctx.bundle("b", &c);
        let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]);
        assert_fails_with(&out, needle);
        ctx.assert_no_leftovers(&id);
    }
}
