//! runtime.md "State" and "Lifecycle" while `create` is still running (issue
//! 8 item 17): runc has no state.json until create returns, so `state`
//! says the container does not exist and `list` skips it; cuddy does the
//! same (naming why), refuses every verb on it, and treats a create that
//! died half-way (its lock is free) as stopped so it can be deleted.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// A createRuntime hook that records its pid in `mark`, then blocks reading
/// the fifo `gate` until the test writes to it: a create that the test holds.
struct SlowCreate {
    gate: PathBuf,
    mark: PathBuf,
}

impl SlowCreate {
    fn new(ctx: &Ctx) -> SlowCreate {
        let gate = ctx.dir.path().join("gate");
        nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        SlowCreate {
            gate,
            mark: ctx.dir.path().join("hook-started"),
        }
    }

    fn config(&self, ctx: &Ctx) -> Value {
        let mut c = ctx.config(&["/bin/probe", "--sleep"]);
        let script = format!(
            "echo $$ > {}.tmp && mv {0}.tmp {0}; read x < {}",
            self.mark.display(),
            self.gate.display()
        );
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
        c
    }

    /// Starts `cuddy create` in the background and waits until the hook runs.
    fn spawn(&self, ctx: &Ctx, id: &str, config: &Value) -> Child {
        let b = ctx.bundle(id, config);
        let mut c = ctx.cmd();
        c.args(["create", "--bundle", b.to_str().unwrap(), id]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        // Bounded (a hang guard, generous for the slow QEMU tier).
        for _ in 0..6000 {
            if self.mark.exists() {
                return child;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the createRuntime hook never ran");
    }

    fn hook_pid(&self) -> i32 {
        std::fs::read_to_string(&self.mark)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn release(&self) {
        std::fs::write(&self.gate, "go\n").unwrap();
    }
}

fn listed(ctx: &Ctx, id: &str) -> Option<Value> {
    let out = ctx.cuddy(&["list", "--format", "json"]);
    assert_ok(&out, "list");
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

fn kill_pid(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Every verb during the wait, then the same container once create returned.
// runtime.md#state, runtime.md#lifecycle (steps 2-3), runtime.md#operations
#[test]
fn a_create_in_progress_is_not_a_container_yet() {
    require_root!();
    let ctx = Ctx::new("lc-slow");
    let slow = SlowCreate::new(&ctx);
    let id = ctx.id("c");
    let mut create = slow.spawn(&ctx, &id, &slow.config(&ctx));
    assert!(
        ctx.root.join(&id).exists(),
        "the state dir exists meanwhile"
    );

    let st = ctx.cuddy(&["state", &id]);
    assert_fails_with(&st, "does not exist yet: it is being created");
    assert_eq!(
        listed(&ctx, &id),
        None,
        "list shows a half-created container"
    );
    let q = ctx.cuddy(&["list", "-q"]);
    assert!(!stdout(&q).contains(&id), "list -q: {}", stdout(&q));
    for verb in [
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["kill", "--all", &id, "KILL"],
        vec!["delete", &id],
        vec!["delete", "--force", &id],
        vec!["pause", &id],
        vec!["exec", &id, "/bin/true"],
    ] {
        let out = ctx.cuddy(&verb);
        assert_fails_with(&out, "it is being created");
    }
    assert!(
        ctx.root.join(&id).exists(),
        "a verb removed a live create's state"
    );

    slow.release();
    assert!(create.wait().unwrap().success(), "create failed");
    let s = ctx.state(&id);
    assert_eq!(s["status"], "created");
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(listed(&ctx, &id).unwrap()["status"], "created");
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    assert_eq!(ctx.state(&id)["status"], "running");
    assert_ok(&ctx.cuddy(&["kill", &id, "KILL"]), "kill");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// A create killed half-way (its hook still blocked): its lock is free, so
/// the container is stopped (pid 0), listed as such, cannot be started or
/// signalled, and `delete --force` removes it, cgroup included.
// runtime.md#state, runtime.md#delete
#[test]
fn an_abandoned_create_is_stopped_and_deletable() {
    require_root!();
    let ctx = Ctx::new("lc-dead");
    let slow = SlowCreate::new(&ctx);
    let id = ctx.id("c");
    let mut create = slow.spawn(&ctx, &id, &slow.config(&ctx));
    kill_pid(create.id() as i32);
    create.wait().unwrap();
    kill_pid(slow.hook_pid());

    let s = ctx.state(&id);
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(s["pid"], 0);
    assert_eq!(listed(&ctx, &id).unwrap()["status"], "stopped");
    assert_fails_with(&ctx.cuddy(&["start", &id]), "stopped");
    assert_fails_with(&ctx.cuddy(&["kill", &id, "TERM"]), "not running");
    assert!(cgroup_exists(&id), "the abandoned create's cgroup");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
    ctx.assert_no_leftovers(&id);
}

fn cgroup_exists(id: &str) -> bool {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .any(|h| {
            ["cuddy", "cuddy-test"]
                .iter()
                .any(|p| h.path().join(p).join(id).exists())
        })
        || Path::new("/sys/fs/cgroup/cuddy").join(id).exists()
}
