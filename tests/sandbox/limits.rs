//! Resource limits are enforced (config-linux.md#control-groups): the
//! effect is observed inside the sandbox.

use crate::common::*;
use crate::require_root;

/// config-linux.md#pids: with pids(8), the shell cannot fork its 20th
/// process (EAGAIN); without the limit the same script runs to its end.
#[test]
fn pids_limit_makes_fork_fail() {
    require_root!();
    let script = [
        "sh",
        "-c",
        "for i in $(seq 20); do sleep 5 & done; echo all started",
    ];
    let out = sandbox().pids(8).args(script).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("can't fork"),
        "pids(8) let 20 processes start: {out:?}"
    );
    assert_ne!(out.status, 0);
    let out = sandbox()
        .args([
            "sh",
            "-c",
            "for i in $(seq 20); do true & done; wait; echo all started",
        ])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"all started\n", "{out:?}");
}

/// config-linux.md#memory: beyond memory() the OOM killer ends it (137).
#[test]
fn memory_limit_ooms() {
    require_root!();
    // One process (the sandbox's first) doubling a string without end.
    let out = sandbox()
        .memory(16 << 20)
        .args([
            "awk",
            "BEGIN { s = \"0123456789abcdef\"; for (;;) s = s s; print \"survived\" }",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status, 137, "expected an OOM kill: {out:?}");
    assert!(!out.stdout.starts_with(b"survived"));
}

/// config-linux.md#cpu: cpus(0.5) is a quota of half the period, as the
/// sandbox's own cgroup (cgroup namespace) shows.
#[test]
fn cpus_become_a_cfs_quota() {
    require_root!();
    let out = sandbox()
        .cpus(0.5)
        .args([
            "sh",
            "-c",
            "cat /sys/fs/cgroup/cpu.max 2>/dev/null || \
             cat /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null | head -1",
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("50000"), "cpu quota: {s:?} {out:?}");
}
