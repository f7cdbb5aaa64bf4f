//! The kubelet's calls for one pod of two containers, each checked against
//! what really happened on the host and inside the containers.

use std::collections::HashMap;
use std::path::Path;

use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::*;

use crate::host::{self, cgroup_dir, ns_ino, read_trim, verbose_pid};
use crate::{Cri, Opts, call, step};

const MEMORY_LIMIT: i64 = 64 << 20;
const CPU_SHARES: i64 = 512;
const CPU_QUOTA: i64 = 50_000;
const CPU_PERIOD: i64 = 100_000;

/// The kubelet's defaults: network and IPC shared by the pod (joined by
/// path from the sandbox), a PID namespace per container.
pub fn ns_options() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn runtime_default() -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    })
}

pub fn pod_config(name: &str, cgroup_parent: &str, log_dir: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "cuddy-test".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.into(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(ns_options()),
                seccomp: runtime_default(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container with the kubelet's fields for limits and RuntimeDefault
/// seccomp (config-linux.md#memory, #cpu, #seccomp).
pub fn container_config(name: &str, image: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_period: CPU_PERIOD,
                cpu_quota: CPU_QUOTA,
                cpu_shares: CPU_SHARES,
                memory_limit_in_bytes: MEMORY_LIMIT,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(ns_options()),
                seccomp: runtime_default(),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

pub fn exec(cri: &mut Cri, id: &str, cmd: &[&str]) -> ExecSyncResponse {
    call!(
        cri,
        exec_sync,
        ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        }
    )
}

/// `sh -c script` in the container; asserts exit 0 and returns stdout.
fn sh(cri: &mut Cri, id: &str, script: &str) -> String {
    let r = exec(cri, id, &["/bin/sh", "-c", script]);
    let out = String::from_utf8_lossy(&r.stdout).to_string();
    assert_eq!(
        r.exit_code,
        0,
        "exec {script:?} in {id}: stdout {out:?} stderr {:?}",
        String::from_utf8_lossy(&r.stderr)
    );
    out
}

pub fn container_status(cri: &mut Cri, id: &str) -> (ContainerStatus, HashMap<String, String>) {
    let r = call!(
        cri,
        container_status,
        ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }
    );
    (r.status.expect("ContainerStatus without status"), r.info)
}

pub fn sandbox_status(cri: &mut Cri, id: &str) -> PodSandboxStatusResponse {
    call!(
        cri,
        pod_sandbox_status,
        PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        }
    )
}

/// Everything the scenario found, for the next steps.
pub struct Pod {
    id: String,
    pid: u32,
    ip: String,
}

pub fn run(cri: &mut Cri, o: &Opts) {
    let handler = o.get_or("handler", "cuddy");
    step("Version", || version(cri));
    step("ImageStatus (imported with ctr, no registry)", || {
        images(cri, &[o.get("image"), o.get("pause-image")])
    });
    let cfg = pod_config("cuddy-pod", &o.get("cgroup-parent"), &o.get("log-dir"));
    let pod = step("RunPodSandbox", || run_pod(cri, &cfg, &handler, o));
    let image = o.get("image");
    // c1 ignores SIGTERM (sleep as PID 1), c2 exits 42 on it.
    let c1 = container_config("c1", &image, &["/bin/sleep", "1000"]);
    let c2 = container_config(
        "c2",
        &image,
        &[
            "/bin/sh",
            "-c",
            "echo hello from c2; trap 'exit 42' TERM; while :; do sleep 1 & wait $!; done",
        ],
    );
    let mut ids = Vec::new();
    for (name, c) in [("c1", c1), ("c2", c2)] {
        let id = step(&format!("CreateContainer+StartContainer {name}"), || {
            create_start(cri, &pod.id, &cfg, c)
        });
        ids.push(id);
    }
    let mut cgroups = Vec::new();
    for id in &ids {
        let dir = step(&format!("observe {id:.12}"), || {
            observe(cri, id, &pod, &o.get("cgroup-parent"), &handler)
        });
        cgroups.push(dir);
    }
    step("pod shares net+ipc, not pid", || pod_shares(cri, &ids));
    step("ExecSync output and exit code", || {
        let r = exec(
            cri,
            &ids[1],
            &["/bin/sh", "-c", "echo out; echo err >&2; exit 7"],
        );
        assert_eq!(r.exit_code, 7);
        assert_eq!(r.stdout, b"out\n");
        assert_eq!(r.stderr, b"err\n");
    });
    step("ContainerStats", || stats(cri, &ids[0]));
    step("container log (CRI format)", || {
        let log = Path::new(&o.get("log-dir")).join("c2.log");
        let text = host::read(&log.to_string_lossy());
        assert!(
            text.lines().any(|l| l.ends_with(" stdout F hello from c2")),
            "{}: {text}",
            log.display()
        );
    });
    step("StopContainer c2 (SIGTERM, trapped: exit 42)", || {
        stop(cri, &ids[1], 10, 42)
    });
    step(
        "StopContainer c1 (SIGTERM ignored, SIGKILL after 1 s: 137)",
        || stop(cri, &ids[0], 1, 137),
    );
    step("RemoveContainer", || remove_containers(cri, &ids, &cgroups));
    step("StopPodSandbox + RemovePodSandbox", || {
        remove_pod(cri, &pod)
    });
}

fn version(cri: &mut Cri) {
    let v = call!(
        cri,
        version,
        VersionRequest {
            version: "v1".into()
        }
    );
    eprintln!(
        "    {} {} CRI {}",
        v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(v.runtime_api_version, "v1");
}

/// The images are known to the CRI by the names they were imported with.
fn images(cri: &mut Cri, names: &[String]) {
    for image in names {
        let r = call!(
            cri,
            is: image_status,
            ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.clone(),
                    ..Default::default()
                }),
                verbose: false,
            }
        );
        let img = r
            .image
            .unwrap_or_else(|| panic!("{image} unknown to the CRI"));
        assert!(img.repo_tags.contains(image), "{:?}", img.repo_tags);
    }
}

pub fn create_start(
    cri: &mut Cri,
    pod: &str,
    cfg: &PodSandboxConfig,
    c: ContainerConfig,
) -> String {
    let r = call!(
        cri,
        create_container,
        CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(c),
            sandbox_config: Some(cfg.clone()),
        }
    );
    call!(
        cri,
        start_container,
        StartContainerRequest {
            container_id: r.container_id.clone(),
        }
    );
    r.container_id
}

/// The two containers share the pod's network and IPC namespaces (the
/// same inodes; a SysV shm segment made in c1, shmget x86_64 NR 29 with
/// IPC_CREAT|0600, is found by its key from c2), each has its own PID
/// namespace.
fn pod_shares(cri: &mut Cri, ids: &[String]) {
    let (_, i1) = container_status(cri, &ids[0]);
    let (_, i2) = container_status(cri, &ids[1]);
    let (p1, p2) = (verbose_pid(&i1), verbose_pid(&i2));
    assert_eq!(ns_ino(p1, "net"), ns_ino(p2, "net"));
    assert_eq!(ns_ino(p1, "ipc"), ns_ino(p2, "ipc"));
    assert_ne!(ns_ino(p1, "pid"), ns_ino(p2, "pid"));
    let key = "0x43554459";
    let made = sh(
        cri,
        &ids[0],
        &format!("/bin/probe --syscall 29 {key} 4096 0x380"),
    );
    let found = sh(cri, &ids[1], &format!("/bin/probe --syscall 29 {key} 0 0"));
    assert!(made.contains("\"errno\": 0"), "shmget in c1: {made}");
    assert_eq!(made, found, "c2 sees another IPC namespace");
}

/// RemoveContainer: each container's cgroup directory goes with it.
fn remove_containers(cri: &mut Cri, ids: &[String], cgroups: &[std::path::PathBuf]) {
    for (id, dir) in ids.iter().zip(cgroups) {
        call!(
            cri,
            remove_container,
            RemoveContainerRequest {
                container_id: id.clone()
            }
        );
        assert!(
            !dir.exists(),
            "{} left after RemoveContainer",
            dir.display()
        );
    }
    let left = call!(cri, list_containers, ListContainersRequest { filter: None });
    assert!(left.containers.is_empty(), "{:?}", left.containers);
}

fn run_pod(cri: &mut Cri, cfg: &PodSandboxConfig, handler: &str, o: &Opts) -> Pod {
    let r = call!(
        cri,
        run_pod_sandbox,
        RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: handler.into(),
        }
    );
    let st = sandbox_status(cri, &r.pod_sandbox_id);
    let s = st.status.clone().expect("PodSandboxStatus without status");
    assert_eq!(s.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(s.runtime_handler, handler);
    let ip = s.network.map(|n| n.ip).unwrap_or_default();
    let subnet = o.get("subnet");
    assert!(ip.starts_with(&subnet), "pod IP {ip:?} not in {subnet}0/24");
    let pid = verbose_pid(&st.info);
    assert_eq!(
        host::runtime_of(pid, &r.pod_sandbox_id),
        handler,
        "the sandbox's runtime"
    );
    // The pause process: its own network namespace (made by the CRI plugin,
    // set up by the CNI bridge plugin), not the host's, joined by the path
    // of the netns file the CRI plugin bound it to.
    assert_ne!(ns_ino(pid, "net"), ns_ino(std::process::id(), "net"));
    let net = host::ns_path(&host::bundle_config(pid, &r.pod_sandbox_id), "network");
    let net = net.unwrap_or_default();
    assert!(
        net.starts_with("/var/run/netns/cni-"),
        "sandbox netns {net:?}"
    );
    assert_eq!(host::seccomp_mode(pid), "2");
    eprintln!("    pod {:.12} ip {ip} pause pid {pid}", r.pod_sandbox_id);
    Pod {
        id: r.pod_sandbox_id,
        pid,
        ip,
    }
}

/// A running container as the kubelet would see it and as it really is:
/// returns its memory cgroup directory (checked gone after removal).
fn observe(cri: &mut Cri, id: &str, pod: &Pod, parent: &str, handler: &str) -> std::path::PathBuf {
    let (st, info) = container_status(cri, id);
    assert_eq!(st.state, ContainerState::ContainerRunning as i32);
    let pid = verbose_pid(&info);
    assert_eq!(host::runtime_of(pid, id), handler, "{id}'s runtime");
    // config-linux.md#namespaces: network and IPC joined by path from the
    // sandbox (/proc/PAUSE/ns/…, the CRI netns file), PID its own.
    for kind in ["net", "ipc"] {
        assert_eq!(ns_ino(pid, kind), ns_ino(pod.pid, kind), "{kind} namespace");
    }
    assert_ne!(ns_ino(pid, "pid"), ns_ino(pod.pid, "pid"));
    // … and how: the config.json the shim gave the runtime names the pause
    // process's network and IPC namespaces by path; a new PID namespace (no
    // path).
    let config = host::bundle_config(pid, id);
    for (kind, proc_name) in [("network", "net"), ("ipc", "ipc")] {
        let want = format!("/proc/{}/ns/{proc_name}", pod.pid);
        assert_eq!(host::ns_path(&config, kind), Some(want), "{kind} path");
    }
    assert_eq!(host::ns_path(&config, "pid"), Some(String::new()));
    let inside = sh(
        cri,
        id,
        "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc",
    );
    assert_eq!(
        inside,
        format!(
            "net:[{}]\nipc:[{}]\n",
            ns_ino(pod.pid, "net"),
            ns_ino(pod.pid, "ipc")
        )
    );
    // The pod's IP from the CNI bridge, on the container's eth0.
    let addr = sh(cri, id, "ip -o -4 addr show dev eth0");
    assert!(addr.contains(&format!("inet {}/", pod.ip)), "{addr}");
    // config-linux.md#seccomp: RuntimeDefault is containerd's default
    // profile: a filter (mode 2) that refuses unshare(CLONE_NEWUSER)
    // without CAP_SYS_ADMIN (not in the CRI's default capabilities).
    assert_eq!(host::seccomp_mode(pid), "2");
    assert_eq!(
        sh(
            cri,
            id,
            "grep ^Seccomp: /proc/self/status; unshare -U true 2>/dev/null && echo unshared || echo refused"
        ),
        "Seccomp:\t2\nrefused\n"
    );
    // config-linux.md#memory / #cpu, in the cgroup under the pod's parent.
    let path = host::cgroup_path(pid);
    assert!(path.starts_with(parent), "cgroup {path} not under {parent}");
    let mem = cgroup_dir(pid, "memory");
    let cpu = cgroup_dir(pid, "cpu");
    let limit = MEMORY_LIMIT.to_string();
    if host::is_v2() {
        assert_eq!(read_trim(&mem.join("memory.max")), limit);
        // cpu.shares 512 as cpu.weight: 59 with the log-quadratic mapping
        // of runc >= 1.3.2 and crun >= 1.23 (ceil(10^((l*l + 125*l)/612 -
        // 7/34)), l = log2(512) = 9), which cuddy follows; Debian's runc
        // 1.1 maps linearly: 1 + (512 - 2) * 9999 / 262142 = 20.
        let weight = if handler == "runc" { "20" } else { "59" };
        assert_eq!(read_trim(&cpu.join("cpu.weight")), weight);
        assert_eq!(
            read_trim(&cpu.join("cpu.max")),
            format!("{CPU_QUOTA} {CPU_PERIOD}")
        );
    } else {
        assert_eq!(read_trim(&mem.join("memory.limit_in_bytes")), limit);
        assert_eq!(read_trim(&cpu.join("cpu.shares")), CPU_SHARES.to_string());
        assert_eq!(
            read_trim(&cpu.join("cpu.cfs_quota_us")),
            CPU_QUOTA.to_string()
        );
    }
    let seen = sh(
        cri,
        id,
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    );
    assert_eq!(seen.trim(), limit, "memory limit seen inside");
    mem
}

fn stats(cri: &mut Cri, id: &str) {
    let r = call!(
        cri,
        container_stats,
        ContainerStatsRequest {
            container_id: id.into()
        }
    );
    let s = r.stats.expect("ContainerStats without stats");
    let ws = s
        .memory
        .and_then(|m| m.working_set_bytes.or(m.usage_bytes))
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(ws > 0, "memory usage {ws}");
    let cpu = s
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(cpu > 0, "cpu usage {cpu}");
    eprintln!("    memory working set {ws} B, cpu {cpu} ns");
}

fn stop(cri: &mut Cri, id: &str, timeout: i64, want: i32) {
    call!(
        cri,
        stop_container,
        StopContainerRequest {
            container_id: id.into(),
            timeout,
        }
    );
    let (st, _) = container_status(cri, id);
    assert_eq!(st.state, ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, want, "exit code (reason {:?})", st.reason);
    assert!(st.finished_at > 0);
}

pub fn remove_pod(cri: &mut Cri, pod: &Pod) {
    call!(
        cri,
        stop_pod_sandbox,
        StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone()
        }
    );
    let st = sandbox_status(cri, &pod.id).status.expect("status");
    assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);
    assert!(
        !Path::new(&format!("/proc/{}", pod.pid)).exists(),
        "pause {} still alive",
        pod.pid
    );
    call!(
        cri,
        remove_pod_sandbox,
        RemovePodSandboxRequest {
            pod_sandbox_id: pod.id.clone()
        }
    );
    let left = call!(
        cri,
        list_pod_sandbox,
        ListPodSandboxRequest { filter: None }
    );
    assert!(left.items.is_empty(), "{:?}", left.items);
}
