//! RunPodSandbox, CreateContainer and StartContainer latency through the CRI,
//! cuddy (runtime handler `cuddy`: the runc shim with `BinaryName`) versus
//! runc (handler `runc`: the same shim, `BinaryName` unset), alternating
//! in one containerd. Reports medians; asserts only that each handler ran
//! the runtime it names (the state file its runtime wrote).

use std::time::Instant;

use k8s_cri::v1::*;

use crate::host::{self, verbose_pid};
use crate::scenario::{container_config, container_status, pod_config, sandbox_status};
use crate::{Cri, Opts, call};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One pod and one container with `handler`: [RunPodSandbox,
/// CreateContainer, StartContainer] in ms. Everything is removed again.
/// CreateContainer is containerd's part (the snapshot: the native
/// snapshotter copies the image); StartContainer is where the shim runs the
/// runtime's `create` and `start`; RunPodSandbox does both for the pause
/// container plus the CNI set-up.
fn once(cri: &mut Cri, o: &Opts, handler: &str, i: usize) -> [f64; 3] {
    let name = format!("bench-{handler}-{i}");
    let cfg = pod_config(&name, &o.get("cgroup-parent"), &o.get("log-dir"));
    let t = Instant::now();
    let pod = call!(
        cri,
        run_pod_sandbox,
        RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: handler.into(),
        }
    )
    .pod_sandbox_id;
    let run_pod = t.elapsed().as_secs_f64() * 1e3;
    let c = container_config("c", &o.get("image"), &["/bin/sleep", "1000"]);
    let t = Instant::now();
    let id = call!(
        cri,
        create_container,
        CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(c),
            sandbox_config: Some(cfg),
        }
    )
    .container_id;
    let create = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    call!(
        cri,
        start_container,
        StartContainerRequest {
            container_id: id.clone()
        }
    );
    let start = t.elapsed().as_secs_f64() * 1e3;
    let (_, info) = container_status(cri, &id);
    assert_eq!(host::runtime_of(verbose_pid(&info), &id), handler);
    let pause = verbose_pid(&sandbox_status(cri, &pod).info);
    assert_eq!(host::runtime_of(pause, &pod), handler);
    call!(
        cri,
        stop_container,
        StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        }
    );
    call!(
        cri,
        remove_container,
        RemoveContainerRequest { container_id: id }
    );
    call!(
        cri,
        stop_pod_sandbox,
        StopPodSandboxRequest {
            pod_sandbox_id: pod.clone()
        }
    );
    call!(
        cri,
        remove_pod_sandbox,
        RemovePodSandboxRequest {
            pod_sandbox_id: pod
        }
    );
    [run_pod, create, start]
}

pub fn run(cri: &mut Cri, o: &Opts) {
    let runs: usize = o.get_or("runs", "5").parse().expect("--runs N");
    let handlers = ["cuddy", "runc"];
    let mut t = vec![[Vec::new(), Vec::new(), Vec::new()]; handlers.len()];
    for i in 0..runs {
        for (h, acc) in handlers.iter().zip(t.iter_mut()) {
            for (v, ms) in acc.iter_mut().zip(once(cri, o, h, i)) {
                v.push(ms);
            }
        }
    }
    for (h, [p, c, s]) in handlers.iter().zip(t.iter_mut()) {
        println!(
            "cri-bench {h}: medians of {runs}: RunPodSandbox {:.1} ms, CreateContainer {:.1} ms, StartContainer {:.1} ms",
            median(p),
            median(c),
            median(s)
        );
    }
}
