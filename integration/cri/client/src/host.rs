//! What the host sees of a CRI container: its namespaces, cgroup files,
//! seccomp mode and the runtime's state file, all read under /proc.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The inode of `/proc/PID/ns/KIND` (namespace identity).
pub fn ns_ino(pid: u32, kind: &str) -> u64 {
    let p = format!("/proc/{pid}/ns/{kind}");
    std::fs::metadata(&p)
        .unwrap_or_else(|e| panic!("stat {p}: {e}"))
        .ino()
}

/// The init PID that containerd reports in a verbose status's `info`.
pub fn verbose_pid(info: &HashMap<String, String>) -> u32 {
    let raw = info
        .get("info")
        .unwrap_or_else(|| panic!("verbose status without info: {info:?}"));
    let v: serde_json::Value =
        serde_json::from_str(raw).unwrap_or_else(|e| panic!("verbose info is not JSON ({e})"));
    v["pid"]
        .as_u64()
        .filter(|p| *p > 0)
        .unwrap_or_else(|| panic!("no pid in verbose info: {raw}")) as u32
}

pub fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The cgroup directory of `pid` for `controller` (v1) or its v2 cgroup.
pub fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let cg = read(&format!("/proc/{pid}/cgroup"));
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if is_v2() && ctrls.is_empty() {
            return PathBuf::from(format!("/sys/fs/cgroup{path}"));
        }
        if !is_v2() && ctrls.split(',').any(|c| c == controller) {
            return PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}"));
        }
    }
    panic!("no {controller} cgroup for {pid}: {cg}");
}

/// The cgroup path of `pid` (v2, or v1's memory hierarchy).
pub fn cgroup_path(pid: u32) -> String {
    let cg = read(&format!("/proc/{pid}/cgroup"));
    cg.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next(), f.next()?, f.next()?);
            let hit = if is_v2() {
                c.is_empty()
            } else {
                c.split(',').any(|c| c == "memory")
            };
            hit.then(|| p.to_string())
        })
        .unwrap_or_else(|| panic!("no cgroup path for {pid}: {cg}"))
}

/// `Seccomp:` of /proc/PID/status (0 off, 1 strict, 2 filter).
pub fn seccomp_mode(pid: u32) -> String {
    read(&format!("/proc/{pid}/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// Field 4 of /proc/PID/stat (after the parenthesised command).
pub fn ppid(pid: u32) -> u32 {
    let st = read(&format!("/proc/{pid}/stat"));
    st.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no ppid in /proc/{pid}/stat: {st}"))
}

/// Which OCI runtime holds container `id`: the state file the shim's
/// runtime wrote under its root (`/run/containerd/runc/k8s.io/ID`, seen
/// through the shim's own mount namespace). cuddy's `state.json` records
/// `pid_start`, runc's `init_process_pid`.
pub fn runtime_of(init_pid: u32, id: &str) -> &'static str {
    let shim = ppid(init_pid);
    let p = format!("/proc/{shim}/root/run/containerd/runc/k8s.io/{id}/state.json");
    let st = read(&p);
    if st.contains("\"pid_start\"") {
        "cuddy"
    } else if st.contains("\"init_process_pid\"") {
        "runc"
    } else {
        panic!("{p} is neither cuddy's nor runc's state: {st}")
    }
}

/// The OCI config the shim handed the runtime for container `id`. The
/// shim's working directory is the bundle of the pod's sandbox (one runc
/// shim serves the whole pod); the bundles are siblings named by ID.
pub fn bundle_config(init_pid: u32, id: &str) -> serde_json::Value {
    let p = format!("/proc/{}/cwd/../{id}/config.json", ppid(init_pid));
    serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The `path` of the namespace of `kind` in a config ("" when it has none,
/// None when the namespace is not listed).
pub fn ns_path(config: &serde_json::Value, kind: &str) -> Option<String> {
    config["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == kind)
        .map(|n| n["path"].as_str().unwrap_or("").to_string())
}

pub fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {p}: {e}"))
}

pub fn read_trim(p: &Path) -> String {
    read(&p.to_string_lossy()).trim().to_string()
}
