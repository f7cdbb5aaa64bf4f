//! RunPodSandbox and CreateContainer+StartContainer latency through the CRI,
//! cuddy (runtime handler `cuddy`: the runc shim with `BinaryName`) versus
//! runc (handler `runc`: the same shim, `BinaryName` unset), alternating
//! in one containerd. Reports medians; asserts only that each handler ran
//! the runtime it names (the state file its runtime wrote).

use std::time::Instant;

use k8s_cri::v1::*;

use crate::host::{self, verbose_pid};
use crate::scenario::{
    container_config, container_status, create_start, pod_config, sandbox_status,
};
use crate::{Cri, Opts, call};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One pod and one container with `handler`: (RunPodSandbox ms,
/// CreateContainer+StartContainer ms). Everything is removed again.
fn once(cri: &mut Cri, o: &Opts, handler: &str, i: usize) -> (f64, f64) {
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
    let id = create_start(cri, &pod, &cfg, c);
    let create_start_ms = t.elapsed().as_secs_f64() * 1e3;
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
    (run_pod, create_start_ms)
}

pub fn run(cri: &mut Cri, o: &Opts) {
    let runs: usize = o.get_or("runs", "5").parse().expect("--runs N");
    let handlers = ["cuddy", "runc"];
    let mut t: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); handlers.len()];
    for i in 0..runs {
        for (h, acc) in handlers.iter().zip(t.iter_mut()) {
            let (p, c) = once(cri, o, h, i);
            acc.0.push(p);
            acc.1.push(c);
        }
    }
    for (h, (p, c)) in handlers.iter().zip(t.iter_mut()) {
        println!(
            "cri-bench {h}: RunPodSandbox median {:.1} ms, CreateContainer+StartContainer median {:.1} ms ({runs} runs)",
            median(p),
            median(c)
        );
    }
}
