//! cuddy behind Kubernetes' CRI: containerd's CRI plugin (Debian's 1.6)
//! with cuddy as the runc shim's `BinaryName`, driven by the kubelet's calls
//! from `integration/cri/client` (the `cuddy-cri` driver: `k8s-cri` +
//! tonic, its own crate and target dir, since cuddy links no async runtime).
//! containerd runs with a private config, root, state and socket inside a
//! network + mount namespace the test made (tmpfs over /run and
//! /var/lib/cni there), so the CNI bridge, the pod netns files, the shim
//! sockets and the runtime's state never reach the host. The pause image
//! is `integration/cri/pause.c` built static, the containers' image the
//! busybox fixture, both imported with `ctr -n k8s.io images import` (no
//! registry is reachable). What the driver asserts: runtime.md#operations
//! as the CRI drives them, config-linux.md#namespaces (net and IPC joined
//! by path from the sandbox), config-linux.md#control-groups (memory and
//! CPU limits under the pod's cgroup parent), config-linux.md#seccomp
//! (RuntimeDefault), ExecSync, ContainerStats, StopContainer exit codes,
//! logs; this file then asserts that nothing is left (processes, mounts,
//! netns files, state dirs, cgroups, IPAM leases, host links or rules).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::orch::*;
use crate::require_root;

const IMAGE: &str = "cuddy.test/busybox:latest";
const PAUSE: &str = "cuddy.test/pause:latest";
const SUBNET: &str = "10.88.77.";
const BRIDGE: &str = "cuddycri0";

/// The containerd config (version 2, as containerd 1.6 reads it). The part
/// that makes Kubernetes use cuddy is `runtimes.cuddy.options.BinaryName`;
/// `runtimes.runc` (no BinaryName: /usr/sbin/runc) is the bench baseline.
/// `restrict_oom_score_adj`: root here lacks CAP_SYS_RESOURCE, and the
/// pause container's oom_score_adj (-998) is refused even to runc without
/// it.
fn config(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/ctrd.sock"
[ttrpc]
  address = "{d}/ctrd.ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "cuddy"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cuddy]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cuddy.options]
        BinaryName = "{CUDDY}"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
    max_conf_num = 1
"#
    )
}

/// Debian's CNI plugins: a bridge (in the holder's netns only) and
/// host-local IPAM with its leases in the test's dir.
fn cni_conflist(d: &Path) -> String {
    format!(
        r#"{{"cniVersion": "0.4.0", "name": "cuddy-cri", "plugins": [
  {{"type": "bridge", "bridge": "{BRIDGE}", "isGateway": true, "ipMasq": false,
    "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{SUBNET}0/24"}}]],
             "routes": [{{"dst": "0.0.0.0/0"}}], "dataDir": "{}/ipam"}}}}]}}
"#,
        d.display()
    )
}

/// What a genuinely missing prerequisite is (the test then skips, loudly).
fn missing_prerequisite() -> Option<String> {
    // runc: the bench's baseline (host only); gcc: the pause binary.
    let mut bins = vec!["containerd", "ctr", "containerd-shim-runc-v2"];
    if !in_vm() {
        bins.extend(["gcc", "runc"]);
    }
    for bin in bins {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("{bin} not found (integration/test.sh installs it)"));
        }
    }
    for p in ["bridge", "host-local", "loopback"] {
        if !Path::new("/usr/lib/cni").join(p).is_file() {
            return Some(format!(
                "/usr/lib/cni/{p} missing (Debian's containernetworking-plugins)"
            ));
        }
    }
    None
}

/// The driver binary and the pause image's rootfs (`/pause` only, as
/// registry.k8s.io/pause is), built here into `target/cri-client` (the
/// driver's own target dir, next to cuddy's), or in the QEMU guest (no
/// cargo; gcc -static is slow under TCG) the ones the host built.
fn client() -> Result<(PathBuf, PathBuf), String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
        .join("cri-client");
    let bin = target.join("debug/cuddy-cri");
    let pause = target.join("pause-rootfs");
    if in_vm() {
        return if bin.is_file() && pause.join("pause").is_file() {
            Ok((bin, pause))
        } else {
            Err(format!(
                "{} or {}/pause not built (the host's run of this test builds them; the guest has no cargo)",
                bin.display(),
                pause.display()
            ))
        };
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "--quiet", "--manifest-path"])
        .arg(repo.join("integration/cri/client/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target);
    let out = output_with_timeout(c, 1200);
    assert_ok(&out, "cargo build of integration/cri/client");
    std::fs::create_dir_all(&pause).unwrap();
    let gcc = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(pause.join("pause"))
        .arg(repo.join("integration/cri/pause.c"))
        .output()
        .unwrap();
    assert_ok(&gcc, "gcc -static integration/cri/pause.c");
    Ok((bin, pause))
}

/// containerd in the holder's namespaces, stopped by PID on drop (the
/// container processes are ended by `PodCgroups`, the shims by `Holder`).
struct Containerd {
    dir: PathBuf,
    child: Child,
    cg_name: String,
}

impl Containerd {
    fn start(dir: &Path, holder: &Holder, cg_name: &str) -> Containerd {
        std::fs::write(dir.join("config.toml"), config(dir)).unwrap();
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        std::fs::write(dir.join("cni/10-cuddy.conflist"), cni_conflist(dir)).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        // nsenter without -p execs containerd itself: the child's PID is
        // containerd's.
        let child = holder
            .cmd("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            dir: dir.to_path_buf(),
            child,
            cg_name: cg_name.to_string(),
        };
        let t = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "containerd did not come up: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let plugins = ok_out(&c.ctr(&["plugins", "ls"]), "ctr plugins ls");
        assert!(
            plugins
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .any(|f| f == ["io.containerd.grpc.v1", "cri", "linux/amd64", "ok"]),
            "the CRI plugin did not load: {plugins}\n{}",
            c.log()
        );
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.dir.join("ctrd.sock"))
            .args(["-n", "k8s.io"])
            .args(args);
        output_with_timeout(c, 120)
    }

    fn import(&self, rootfs: &Path, name: &str, cmd: &str) {
        let tar = self
            .dir
            .join(format!("{}.tar", name.replace(['/', ':'], "_")));
        let mk = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/containerd/mkimage.py"))
            .arg(rootfs)
            .arg(&tar)
            .arg(name)
            .arg(cmd)
            .status()
            .unwrap();
        assert!(mk.success(), "mkimage.py {name} failed");
        let t = tar.to_str().unwrap();
        let out = self.ctr(&["images", "import", "--snapshotter", "native", t]);
        assert_ok(&out, "ctr -n k8s.io images import");
    }

    fn driver(&self, bin: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(bin);
        c.args(args)
            .arg("--socket")
            .arg(self.dir.join("ctrd.sock"))
            .args(["--image", IMAGE, "--pause-image", PAUSE])
            .arg("--cgroup-parent")
            .arg(format!("/{}", self.cg_name))
            .arg("--log-dir")
            .arg(self.dir.join("pods"));
        output_with_timeout(c, 600)
    }

    /// SIGTERM by PID, then (bounded) SIGKILL.
    fn stop(&mut self) {
        let pid = self.child.id() as i32;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill(pid);
        let _ = self.child.wait();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pods' cgroup parent (`/cuddy-t-cri-PID` in every hierarchy). On
/// drop (a failed run) whatever is left in it is killed by PID and its
/// directories removed; a passing run has asserted it empty first.
struct PodCgroups {
    name: String,
}

impl PodCgroups {
    fn dirs(&self) -> Vec<PathBuf> {
        let base = Path::new("/sys/fs/cgroup");
        let mut v = vec![base.join(&self.name)];
        if !is_v2() {
            v = std::fs::read_dir(base)
                .unwrap()
                .flatten()
                .map(|h| h.path().join(&self.name))
                .collect();
        }
        v.into_iter().filter(|d| d.is_dir()).collect()
    }

    /// The container cgroups still under the parent.
    fn children(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for d in self.dirs() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    v.push(e.path());
                }
            }
        }
        v
    }
}

impl Drop for PodCgroups {
    fn drop(&mut self) {
        for _ in 0..100 {
            let pids = processes_in_cgroup(&self.name);
            if pids.is_empty() {
                break;
            }
            pids.into_iter().for_each(kill);
            std::thread::sleep(Duration::from_millis(50));
        }
        for c in self.children() {
            let _ = std::fs::remove_dir(c);
        }
        for d in self.dirs() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// PIDs whose cgroup path names `name` (the pod's cgroup parent).
fn processes_in_cgroup(name: &str) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cg.contains(&format!("/{name}/")) {
            v.push(pid);
        }
    }
    v
}

/// Before containerd stops: host-local released every lease (only its
/// lock and last-reserved files remain), no netns file, no container state
/// dir under the runc shim's root, no mount of a pod's rootfs or shm in
/// containerd's mount namespace.
fn assert_nothing_left_in(dir: &Path, holder: &Holder) {
    let leases: Vec<_> = std::fs::read_dir(dir.join("ipam/cuddy-cri"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leases.iter().any(|n| n.starts_with("last_reserved_ip")),
        "host-local did not keep its state in the test's dir: {leases:?}"
    );
    assert!(
        leases.iter().all(|n| !n.starts_with(SUBNET)),
        "IPAM leases left: {leases:?}"
    );
    let entries = |p: &str| -> Vec<String> {
        std::fs::read_dir(holder.path(p))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        entries("/run/netns").is_empty(),
        "netns files left: {:?}",
        entries("/run/netns")
    );
    // A container's state dir is named by its ID; cuddy's own caches
    // (`.seccomp-cache`: compiled filters) are dot-names and stay.
    let state: Vec<_> = entries("/run/containerd/runc/k8s.io")
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    let mi = std::fs::read_to_string(format!("/proc/{}/mountinfo", holder.pid())).unwrap();
    let d = dir.to_string_lossy();
    let mounts: Vec<_> = mi.lines().filter(|l| l.contains(d.as_ref())).collect();
    assert!(
        mounts.is_empty(),
        "mounts left in containerd's namespace: {mounts:?}"
    );
}

/// The kubelet's calls through containerd's CRI, with cuddy as the runtime
/// (the driver's `scenario`; see integration/cri/client/src/scenario.rs),
/// then the cuddy-vs-runc latency through the same CRI (host only), then
/// nothing left.
#[test]
fn cri_pod_lifecycle_with_cuddy_as_binary_name() {
    require_root!();
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED cri_pod_lifecycle_with_cuddy_as_binary_name: {why}");
        return;
    }
    let (bin, pause_root) = match client() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED cri_pod_lifecycle_with_cuddy_as_binary_name: {why}");
            return;
        }
    };
    let tmp = tempfile::Builder::new()
        .prefix("cuddy-t-cri-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let host_net = host_net_snapshot();
    let cg = PodCgroups {
        name: format!("cuddy-t-cri-{}", std::process::id()),
    };
    std::fs::create_dir_all(dir.join("pods")).unwrap();

    let holder = Holder::new(
        dir,
        "mount -t tmpfs tmpfs /run && mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni",
    );
    let mut ctrd = Containerd::start(dir, &holder, &cg.name);
    ctrd.import(&pause_root, PAUSE, r#"["/pause"]"#);
    ctrd.import(fixture_rootfs(), IMAGE, r#"["/bin/sh"]"#);

    // CUDDY_CRI_HANDLER=runc runs the same scenario with runc (the
    // reference: every assertion holds for it too).
    let handler = std::env::var("CUDDY_CRI_HANDLER").unwrap_or_else(|_| "cuddy".into());
    let out = ctrd.driver(
        &bin,
        &["scenario", "--handler", &handler, "--subnet", SUBNET],
    );
    eprintln!("{}", stderr(&out));
    assert_ok(
        &out,
        &format!("cuddy-cri scenario\ncontainerd log:\n{}", ctrd.log()),
    );
    // The bridge the CNI plugin made is in the holder's netns, not the host's.
    let link = holder
        .cmd("ip")
        .args(["link", "show", BRIDGE])
        .output()
        .unwrap();
    assert_ok(&link, "the CNI bridge in the test's netns");
    let host_link = Command::new("ip")
        .args(["link", "show", BRIDGE])
        .output()
        .unwrap();
    assert!(!host_link.status.success(), "{BRIDGE} on the host");

    if !in_vm() {
        let runs = std::env::var("CUDDY_CRI_BENCH_RUNS").unwrap_or_else(|_| "5".into());
        let out = ctrd.driver(&bin, &["bench", "--runs", &runs]);
        assert_ok(&out, "cuddy-cri bench");
        eprint!("{}", stdout(&out));
    }

    assert_nothing_left_in(dir, &holder);
    ctrd.stop();
    let procs = processes_mentioning(&dir.to_string_lossy());
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let others = holder.other_processes();
    assert!(
        others.is_empty(),
        "processes left in the test's namespaces: {others:?}"
    );
    let in_cg = processes_in_cgroup(&cg.name);
    assert!(
        in_cg.is_empty(),
        "processes left in the pods' cgroups: {in_cg:?}"
    );
    drop(ctrd);
    drop(holder);
    assert_no_host_mounts(dir);
    let left = cg.children();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    drop(cg);
    assert_host_net_unchanged(&host_net);
}
