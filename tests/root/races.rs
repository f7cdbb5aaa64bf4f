//! Concurrent commands on one container id (issue 11's race tier): only
//! outcomes the state machine allows (runtime.md "Lifecycle"), no hang,
//! nothing left behind.

use crate::common::*;
use crate::require_root;

/// Twenty `delete --force` of one container at once: every one succeeds
/// (runc: `delete --force` of a container that is already gone succeeds),
/// whichever removes it; the losers, which waited on the lock of a
/// directory that is gone by then, must not fail with ENOENT.
#[test]
fn concurrent_delete_force_of_one_container_all_succeed() {
    require_root!();
    let ctx = Ctx::new("rdel");
    for round in 0..5 {
        let id = ctx.id(&format!("r{round}"));
        let b = ctx.bundle(&id, &ctx.config(&["/bin/probe", "--sleep"]));
        assert_ok(
            &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
            "create",
        );
        let root = &ctx.root;
        let outs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..20)
                .map(|_| {
                    let id = &id;
                    s.spawn(move || {
                        let mut c = std::process::Command::new(CUDDY);
                        c.arg("--root").arg(root).args(["delete", "--force", id]);
                        output_with_timeout(c, 60)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &outs {
            assert_ok(o, "concurrent delete --force");
        }
        ctx.assert_no_leftovers(&id);
    }
}
