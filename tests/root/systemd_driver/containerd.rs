//! containerd's runc shim with `SystemdCgroup = true`, for real: what the
//! CRI plugin sets when the kubelet uses the systemd cgroup driver
//! (kubeadm's default). `ctr run --runc-systemd-cgroup --cgroup
//! system.slice:ctr:<id>` sets the same shim option: the shim calls
//! `cuddy --systemd-cgroup create|delete` (config-linux.md#cgroups-path,
//! runc's systemd form; runtime.md#operations).

use super::{file, scope_dirs, systemctl, v2};
use crate::common::*;
use crate::containerd::Containerd;
use crate::orch::read;
use crate::require_root;

/// `ctr run -d --memory-limit` is a transient scope `ctr-<id>.scope` in
/// system.slice with the limit in cgroupfs and as a unit property; an exec
/// joins it; kill + `task delete` stop the unit and leave no directory.
#[test]
#[ignore = "needs systemd as PID 1: integration/systemd/run.sh"]
fn containerd_shim_with_systemd_cgroup() {
    require_root!();
    let ctx = Ctx::new("sdctrd");
    let c = Containerd::start(ctx.dir.path());
    c.import_fixture(ctx.dir.path());
    let id = ctx.id("c");
    let path = format!("system.slice:ctr:{id}");
    let flags = [
        "-d",
        "--runc-systemd-cgroup",
        "--cgroup",
        &path,
        "--memory-limit",
        "67108864",
    ];
    assert_ok(&c.run(&flags, &id, &["/bin/sleep", "1000"]), "ctr run -d");
    let unit = format!("ctr-{id}.scope");
    let rel = format!("/system.slice/{unit}");
    assert_eq!(systemctl(&["is-active", &unit]), "active");
    let (mem, prop) = if v2() {
        ("memory.max", "MemoryMax")
    } else {
        ("memory.limit_in_bytes", "MemoryLimit")
    };
    assert_eq!(read(&file("memory", &rel, mem)), "67108864");
    assert_eq!(
        systemctl(&["show", "-p", prop, "--value", &unit]),
        "67108864"
    );
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "/bin/cat",
        "/proc/self/cgroup",
    ]);
    assert_ok(&o, "ctr task exec");
    assert!(
        stdout(&o).lines().all(|l| l.ends_with(&rel)),
        "exec is not in the scope: {}",
        stdout(&o)
    );
    assert_ok(&c.ctr(&["task", "kill", "-s", "SIGKILL", &id]), "kill");
    wait_until("the task stopped", || {
        stdout(&c.ctr(&["task", "ls"])).contains("STOPPED")
    });
    assert_ok(&c.ctr(&["task", "delete", &id]), "task delete");
    assert_ne!(systemctl(&["is-active", &unit]), "active");
    for dir in scope_dirs(&rel) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert_ok(&c.ctr(&["container", "rm", &id]), "container rm");
    let ns = c.ns.clone();
    drop(c);
    let procs = crate::orch::processes_mentioning(&ns);
    assert!(procs.is_empty(), "processes left: {procs:?}");
}
