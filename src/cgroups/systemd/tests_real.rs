//! The driver's calls against a real systemd (PID 1 of its own namespaces,
//! booted by `integration/systemd/run.sh`, which runs these ignored tests
//! there): the scope appears in the cgroup hierarchies with the init's pid
//! and the limits, `SetUnitProperties` changes them, `StopUnit` removes it.

use std::path::Path;
use std::process::Command;

use super::unit::{self, Scope};
use super::wire::Value;
use super::{Manager, SystemdError};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The unified hierarchy when systemd runs on v2, else the v1 hierarchy `c`.
fn dir(c: &str, rel: &str) -> std::path::PathBuf {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let base = if v2 {
        "/sys/fs/cgroup".to_string()
    } else {
        format!("/sys/fs/cgroup/{c}")
    };
    Path::new(&base).join(rel.trim_start_matches('/'))
}

// config-linux.md#cgroups-path (runc's systemd form) and #memory / #pids.
#[test]
#[ignore = "needs systemd as PID 1 and the system bus: integration/systemd/run.sh"]
fn real_systemd_scope_lifecycle() {
    let mut mgr = Manager::connect().unwrap();
    assert!(mgr.version >= 232, "systemd {}", mgr.version);
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id();
    // Docker 20.10: "cgroupsPath": "system.slice:docker:<id>", -m 256m --pids-limit 50
    let scope = Scope::parse(Some("system.slice:docker:cuddysd1"), "cuddysd1").unwrap();
    let r: oci_spec::runtime::LinuxResources = serde_json::from_str(
        r#"{"memory":{"limit":268435456},"pids":{"limit":50},"cpu":{"quota":50000,"period":100000}}"#,
    )
    .unwrap();
    // The devices as cuddy's cgroupfs driver writes them below.
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
        r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
    )
    .unwrap();
    let mut props = unit::base_properties(&scope, pid, "cuddy test");
    props.extend(unit::resource_properties(&r, v2, mgr.version, false).unwrap());
    let proc_devices = read(Path::new("/proc/devices"));
    props.extend(unit::device_properties(&rules, &proc_devices).unwrap());
    mgr.start_transient_unit(&scope.unit, props.clone())
        .unwrap();
    let rel = scope.cgroup_path().unwrap();
    assert_eq!(rel, "/system.slice/docker-cuddysd1.scope");
    // The init's pid is in the scope, in every hierarchy (v1: each controller's).
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    assert!(own.lines().any(|l| l.ends_with(&rel)), "{own}");
    let (mem, pids) = if v2 {
        (
            read(&dir("", &format!("{rel}/memory.max"))),
            read(&dir("", &format!("{rel}/pids.max"))),
        )
    } else {
        (
            read(&dir("memory", &format!("{rel}/memory.limit_in_bytes"))),
            read(&dir("pids", &format!("{rel}/pids.max"))),
        )
    };
    assert_eq!((mem.as_str(), pids.as_str()), ("268435456", "50"));
    // What cuddy writes to cgroupfs itself (devices: the default deny-all
    // plus the allow-list), then a daemon-reload: every value stays.
    let devices = dir("devices", &format!("{rel}/devices.list"));
    if !v2 {
        std::fs::write(devices.with_file_name("devices.deny"), "a").unwrap();
        std::fs::write(devices.with_file_name("devices.allow"), "c 1:3 rwm").unwrap();
    }
    let snapshot =
        |files: &[std::path::PathBuf]| -> Vec<String> { files.iter().map(|f| read(f)).collect() };
    let files: Vec<std::path::PathBuf> = if v2 {
        vec![
            dir("", &format!("{rel}/memory.max")),
            dir("", &format!("{rel}/pids.max")),
            dir("", &format!("{rel}/cpu.max")),
        ]
    } else {
        vec![
            dir("memory", &format!("{rel}/memory.limit_in_bytes")),
            dir("pids", &format!("{rel}/pids.max")),
            dir("cpu", &format!("{rel}/cpu.cfs_quota_us")),
            devices.clone(),
        ]
    };
    let before = snapshot(&files);
    mgr.conn
        .call(super::manager_call("Reload", Vec::new()))
        .unwrap();
    assert_eq!(snapshot(&files), before, "daemon-reload changed {files:?}");
    // A second start of the same name: UnitExists, ResetFailedUnit, retry,
    // then the error names the unit and the D-Bus error.
    let e = mgr.start_transient_unit(&scope.unit, props).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SystemdError::Dbus { .. }), "{msg}");
    assert!(
        msg.contains("docker-cuddysd1.scope") && msg.contains("UnitExists"),
        "{msg}"
    );
    // update: SetUnitProperties (runtime).
    let more = vec![unit::prop("TasksMax", Value::U64(60))];
    mgr.set_unit_properties(&scope.unit, more).unwrap();
    assert_eq!(read(&dir("pids", &format!("{rel}/pids.max"))), "60");
    // delete: StopUnit kills the scope's processes and the cgroup goes.
    mgr.stop_unit(&scope.unit).unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the scope's process was killed: {status:?}"
    );
    assert!(
        !dir("pids", &rel).exists(),
        "{} still exists",
        dir("pids", &rel).display()
    );
    // Stopping again: the unit is gone, which is success.
    mgr.stop_unit(&scope.unit).unwrap();
}
