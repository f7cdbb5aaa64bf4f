//! From inside a tokio runtime (issue 12 item 2): a multi-threaded process
//! whose worker threads are alive the whole time. `Sandbox` never forks in
//! the caller, so it works from a worker (blocking it, as any blocking call
//! would) and, as recommended, from `spawn_blocking`.

use std::path::Path;

use crate::common::*;
use crate::require_root;

#[test]
fn sandboxes_from_a_tokio_runtime() {
    require_root!();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        // Directly on a worker thread: the process has 4 + 1 threads.
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
        assert!(threads >= 5, "{threads} threads");
        let out = sandbox().args(["sh", "-c", "echo $$"]).output().unwrap();
        assert_eq!(out.status, 0, "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");

        // The recommended way: 8 at once, each on tokio's blocking pool.
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                tokio::task::spawn_blocking(move || {
                    let mut r = sandbox().args(["sleep", "30"]).spawn().unwrap();
                    let (id, pid) = (r.id().to_string(), r.pid());
                    let exec = r
                        .exec(["sh", "-c", &format!("echo {n} > /mine; cat /mine")])
                        .unwrap();
                    let file = r.read_file("/mine").unwrap();
                    r.kill().unwrap();
                    let out = r.wait().unwrap();
                    drop(r);
                    (n, id, pid, out, exec, file)
                })
            })
            .collect();
        for t in tasks {
            let (n, id, pid, out, exec, file) = t.await.unwrap();
            assert_eq!(String::from_utf8_lossy(&exec.stdout), format!("{n}\n"));
            assert_eq!(file, format!("{n}\n").as_bytes());
            assert_eq!(out.status, 128 + 9, "killed: 128 + SIGKILL");
            assert_gone(Path::new(STATE), &id, pid);
        }
    });
}
