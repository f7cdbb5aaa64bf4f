//! The race tier (issue 11): many cuddy processes at once, as orchestrators
//! run them: 20 concurrent commands of each kind on one id, 100 concurrent
//! lifecycles on distinct ids, and `list` during the churn. Only outcomes
//! the state machine allows (runtime.md "Lifecycle" and "Operations"), no
//! hang (every cuddy is killed after 60 s, and a killed one fails the test),
//! nothing left behind.
//!
//! Counts are scaled down in the QEMU guest (`CUDDY_VM`, set by
//! integration/vm), where TCG makes every process start slow.

use std::process::{Command, Output};
use std::sync::Barrier;

use serde_json::Value;

use crate::common::*;
use crate::require_root;

/// `n`, or a quarter of it (at least 4) in the QEMU guest.
fn scaled(n: usize) -> usize {
    if std::env::var_os("CUDDY_VM").is_some() {
        (n / 4).max(4)
    } else {
        n
    }
}

/// Runs `n` cuddy commands (`args(i)`) at once (released together by a
/// barrier) and returns their outputs, in order.
fn together(ctx: &Ctx, n: usize, args: impl Fn(usize) -> Vec<String> + Sync) -> Vec<Output> {
    let barrier = Barrier::new(n);
    let root = &ctx.root;
    let (args, barrier) = (&args, &barrier);
    let outs: Vec<Output> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                s.spawn(move || {
                    let mut c = Command::new(CUDDY);
                    c.arg("--root").arg(root).args(args(i));
                    barrier.wait();
                    output_with_timeout(c, 60)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, o) in outs.iter().enumerate() {
        assert!(
            o.status.code().is_some(),
            "cuddy {:?} hung and was killed after 60 s (or died of a signal): {:?}: {}",
            args(i),
            o.status,
            stderr(o)
        );
    }
    outs
}

/// `cuddy --root ROOT args...` with the hang guard (usable from any thread).
fn cuddy_at(root: &std::path::Path, args: &[&str]) -> Output {
    let mut c = Command::new(CUDDY);
    c.arg("--root").arg(root).args(args);
    output_with_timeout(c, 60)
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Splits outputs into successes and failures, asserting that every
/// failure is a clean one (exit 1, one error line) mentioning one of `allowed`.
fn winners(outs: &[Output], what: &str, allowed: &[&str]) -> usize {
    let mut ok = 0;
    for o in outs {
        if o.status.success() {
            ok += 1;
            continue;
        }
        let e = stderr(o);
        assert_eq!(o.status.code(), Some(1), "{what}: {e}");
        assert!(
            allowed.iter().any(|a| e.contains(a)),
            "{what} failed with an outcome the state machine does not allow: {e}"
        );
    }
    ok
}

const STATUSES: [&str; 5] = ["creating", "created", "running", "paused", "stopped"];

/// runtime.md "Lifecycle" and "Operations", verb by verb, 20 at once on one
/// id: create (exactly one wins; the rest: "already exists"), start (exactly
/// one; the rest: not "created" any more), state (all, each a valid
/// status), exec (all run), kill (the first wins; later ones may find it
/// stopped: "not running"), delete of the stopped container (exactly one;
/// the rest: "does not exist"), and nothing left.
#[test]
fn twenty_of_each_verb_on_one_id() {
    require_root!();
    let ctx = Ctx::new("rt1");
    let n = scaled(20);
    let id = ctx.id("c");
    let b = ctx.bundle(&id, &ctx.config(&["/bin/probe", "--sleep"]));
    let b = b.to_str().unwrap();

    let outs = together(&ctx, n, |_| argv(&["create", "--bundle", b, &id]));
    assert_eq!(winners(&outs, "create", &["already exists"]), 1);
    assert_eq!(ctx.state(&id)["status"], "created");

    let outs = together(&ctx, n, |_| argv(&["start", &id]));
    assert_eq!(winners(&outs, "start", &["is running"]), 1);
    assert_eq!(ctx.state(&id)["status"], "running");

    let outs = together(&ctx, n, |_| argv(&["state", &id]));
    assert_eq!(winners(&outs, "state", &[]), n);
    for o in &outs {
        let v: Value = serde_json::from_slice(&o.stdout).expect("state JSON");
        assert_eq!(v["status"], "running");
    }

    let outs = together(&ctx, n, |i| {
        argv(&["exec", &id, "/bin/sh", "-c", &format!("echo exec-{i}")])
    });
    assert_eq!(winners(&outs, "exec", &[]), n);
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(stdout(o).trim(), format!("exec-{i}"));
    }

    let outs = together(&ctx, n, |_| argv(&["kill", &id, "KILL"]));
    assert!(winners(&outs, "kill", &["not running"]) >= 1);
    wait_until("the container to stop", || {
        ctx.state(&id)["status"] == "stopped"
    });

    let outs = together(&ctx, n, |_| argv(&["delete", &id]));
    assert_eq!(winners(&outs, "delete", &["does not exist"]), 1);
    ctx.assert_no_leftovers(&id);
}

/// Every verb at once on one container (runtime.md "Lifecycle"): creates,
/// starts, states, execs, kills, deletes and delete --force race each
/// other. Whatever order they land in, each outcome is one the state
/// machine allows, `state` only ever reports a valid status, and after a
/// final `delete --force` nothing is left.
#[test]
fn all_verbs_at_once_on_one_id() {
    require_root!();
    let ctx = Ctx::new("rt2");
    let per = scaled(20) / 4;
    for round in 0..3 {
        let id = ctx.id(&format!("m{round}"));
        let b = ctx.bundle(&id, &ctx.config(&["/bin/probe", "--sleep"]));
        let b = b.to_str().unwrap();
        assert_ok(&ctx.cuddy(&["create", "--bundle", b, &id]), "create");
        let verbs: Vec<Vec<String>> = [
            argv(&["create", "--bundle", b, &id]),
            argv(&["start", &id]),
            argv(&["state", &id]),
            argv(&["exec", &id, "/bin/true"]),
            argv(&["kill", &id, "KILL"]),
            argv(&["delete", &id]),
            argv(&["delete", "--force", &id]),
        ]
        .into_iter()
        .flat_map(|v| std::iter::repeat_n(v, per))
        .collect();
        let outs = together(&ctx, verbs.len(), |i| verbs[i].clone());
        for (v, o) in verbs.iter().zip(&outs) {
            // Once a delete has won, a create may win again: any verb may
            // then meet a container being created.
            let allowed: &[&str] = match v[0].as_str() {
                "create" => &["already exists"],
                // Not "created" any more (started, stopped or gone), or
                // killed while it was being started.
                "start" => &[
                    "is running",
                    "is stopped",
                    "does not exist",
                    "exited before it could start",
                ],
                "state" | "kill" => &["does not exist", "not running"],
                "exec" => &["does not exist", "is stopped", "not running"],
                "delete" if v.len() == 2 => &["does not exist", "is running", "is created"],
                _ => &[],
            };
            let what = v.join(" ");
            // An exec'd process killed with its container: 128 + SIGKILL.
            if v[0] == "exec" && o.status.code() == Some(137) {
                continue;
            }
            winners(
                std::slice::from_ref(o),
                &what,
                &[allowed, &["being created"]].concat(),
            );
            if v[0] == "state" && o.status.success() {
                let s: Value = serde_json::from_slice(&o.stdout).expect("state JSON");
                assert!(STATUSES.contains(&s["status"].as_str().unwrap_or("")));
            }
        }
        // `delete --force` of something already gone succeeds.
        assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "final delete");
        ctx.assert_no_leftovers(&id);
    }
}

/// 100 lifecycles on distinct ids at once (create, start, kill, delete:
/// runtime.md "Lifecycle" steps 1-12), while `list --format json` runs in a
/// loop: every lifecycle succeeds, every list parses and shows only valid
/// statuses, and nothing of any container is left.
#[test]
fn hundred_concurrent_lifecycles_with_list_churn() {
    require_root!();
    let ctx = Ctx::new("rt3");
    let n = scaled(100);
    let ids: Vec<String> = (0..n).map(|i| ctx.id(&format!("l{i}"))).collect();
    let b = ctx.bundle("shared", &ctx.config(&["/bin/probe", "--sleep"]));
    let b = b.to_str().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (root, done) = (&ctx.root, &done);
    let lists = std::thread::scope(|s| {
        let lister = s.spawn(|| {
            let mut seen = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let o = cuddy_at(root, &["list", "--format", "json"]);
                assert_ok(&o, "list during churn");
                let v: Value = serde_json::from_slice(&o.stdout)
                    .unwrap_or_else(|e| panic!("list output is not JSON ({e}): {}", stdout(&o)));
                for c in v.as_array().into_iter().flatten() {
                    let st = c["status"].as_str().unwrap_or("");
                    assert!(STATUSES.contains(&st), "list shows status {st:?}: {c}");
                }
                seen += 1;
            }
            seen
        });
        let lifecycle = |id: &String| {
            for args in [
                ["create", "--bundle", b, id].as_slice(),
                &["start", id],
                &["kill", id, "KILL"],
            ] {
                assert_ok(&cuddy_at(root, args), &args.join(" "));
            }
            wait_until("the container to stop", || {
                let o = cuddy_at(root, &["state", id]);
                serde_json::from_slice::<Value>(&o.stdout).is_ok_and(|v| v["status"] == "stopped")
            });
            assert_ok(&cuddy_at(root, &["delete", id]), "delete");
        };
        let hs: Vec<_> = ids
            .iter()
            .map(|id| s.spawn(move || lifecycle(id)))
            .collect();
        let results: Vec<_> = hs.into_iter().map(|h| h.join()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let lists = lister.join().unwrap();
        for r in results {
            if let Err(p) = r {
                std::panic::resume_unwind(p);
            }
        }
        lists
    });
    assert!(lists > 0);
    for id in &ids {
        ctx.assert_no_leftovers(id);
    }
    let o = ctx.cuddy(&["list", "--format", "json"]);
    assert_eq!(stdout(&o).trim(), "[]", "list after the churn");
}
