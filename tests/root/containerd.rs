//! cuddy behind a real orchestrator: containerd (Debian's package) with its
//! runc shim v2 calling cuddy as the runc binary (`ctr run --runc-binary`).
//! containerd runs with a private config, socket, root and state under the
//! test's tempdir and a `cuddy-test-…` namespace; everything is stopped by
//! PID and removed at the end, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common::*;
use crate::require_root;

pub(crate) const IMAGE: &str = "cuddy.test/busybox:latest";

pub(crate) struct Containerd {
    dir: PathBuf,
    child: Child,
    pub(crate) ns: String,
}

impl Containerd {
    pub(crate) fn start(dir: &Path) -> Containerd {
        let dir = dir.join("containerd");
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/ctrd.sock\"\n[ttrpc]\n  address = \"{d}/ctrd.ttrpc.sock\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n"
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (integration/test.sh installs Debian's containerd)");
        let c = Containerd {
            dir,
            child,
            ns: format!("cuddy-test-{}", std::process::id()),
        };
        wait_until("containerd's socket", || {
            c.ctr(&["version"]).status.success()
        });
        c
    }

    pub(crate) fn ctr(&self, args: &[&str]) -> Output {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.dir.join("ctrd.sock"))
            .args(["-n", &self.ns])
            .args(args);
        output_with_timeout(c, 60)
    }

    /// `ctr run` with cuddy as the runc binary.
    pub(crate) fn run(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Output {
        let mut a = vec!["run", "--snapshotter", "native", "--runc-binary", CUDDY];
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.push(id);
        a.extend_from_slice(cmd);
        self.ctr(&a)
    }
}

impl Containerd {
    /// The busybox fixture as the image `IMAGE` (made in `dir`), imported.
    pub(crate) fn import_fixture(&self, dir: &Path) {
        let image = dir.join("image.tar");
        let mk = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/containerd/mkimage.py"))
            .arg(fixture_rootfs())
            .arg(&image)
            .arg(IMAGE)
            .status()
            .unwrap();
        assert!(mk.success(), "mkimage.py failed");
        assert_ok(
            &self.ctr(&["image", "import", image.to_str().unwrap()]),
            "ctr image import",
        );
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks first (their shims exit with them), then the daemon.
        for line in stdout(&self.ctr(&["task", "ls", "-q"])).lines() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", line]);
            let _ = self.ctr(&["task", "delete", "--force", line]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // Any shim of our namespace still alive is ended by its PID.
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&self.ns) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// run (output, exit code), run -d + exec (exit code), pause/resume, ps,
/// metrics (events --stats), kill and delete, all through containerd.
#[test]
fn containerd_runs_cuddy_as_its_runc() {
    require_root!();
    let ctx = Ctx::new("ctrd");
    let c = Containerd::start(ctx.dir.path());
    c.import_fixture(ctx.dir.path());

    let out = c.run(
        &["--rm"],
        "c1",
        &["/bin/sh", "-c", "echo hello from cuddy; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "ctr run: {}", stderr(&out));
    assert_eq!(stdout(&out), "hello from cuddy\n");

    // config-linux.md#seccomp: `ctr run --seccomp` sends containerd's default
    // profile (contrib/seccomp: unshare only with CAP_SYS_ADMIN, which ctr's
    // default capability set lacks): a filter (mode 2) that refuses
    // unshare(CLONE_NEWUSER) with EPERM, in the process and in an exec.
    let probe = "grep '^Seccomp:' /proc/self/status; unshare -U true 2>/dev/null && echo unshared || echo refused";
    let out = c.run(&["--rm"], "c4", &["/bin/sh", "-c", probe]);
    assert_ok(&out, "ctr run without --seccomp");
    assert_eq!(stdout(&out), "Seccomp:\t0\nunshared\n");
    let out = c.run(&["--rm", "--seccomp"], "c5", &["/bin/sh", "-c", probe]);
    assert_ok(&out, "ctr run --seccomp");
    assert_eq!(stdout(&out), "Seccomp:\t2\nrefused\n");
    assert_ok(
        &c.run(&["-d", "--seccomp"], "c6", &["/bin/sleep", "1000"]),
        "ctr run -d --seccomp",
    );
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e6",
        "c6",
        "/bin/sh",
        "-c",
        probe,
    ]);
    assert_ok(&out, "ctr task exec (seccomp)");
    assert_eq!(stdout(&out), "Seccomp:\t2\nrefused\n");
    assert_ok(&c.ctr(&["task", "kill", "-s", "SIGKILL", "c6"]), "kill c6");
    wait_until("c6 stopped", || {
        stdout(&c.ctr(&["task", "ls"])).contains("STOPPED")
    });
    assert_ok(&c.ctr(&["task", "delete", "c6"]), "task delete c6");
    assert_ok(&c.ctr(&["container", "rm", "c6"]), "container rm c6");

    // -t: the shim hands cuddy a console socket and reads the pty master
    // from it; `script` gives ctr the terminal it insists on.
    let ctr_t = format!(
        "ctr -a {} -n {} run -t --rm --snapshotter native --runc-binary {CUDDY} {IMAGE} c3 /bin/sh -c 'tty; exit 5'",
        c.dir.join("ctrd.sock").display(),
        c.ns
    );
    let mut script = Command::new("script");
    script.args(["-qec", &ctr_t, "/dev/null"]);
    let out = output_with_timeout(script, 60);
    assert_eq!(
        out.status.code(),
        Some(5),
        "ctr run -t: {} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("/dev/pts/0"), "{}", stdout(&out));

    assert_ok(&c.run(&["-d"], "c2", &["/bin/sleep", "1000"]), "ctr run -d");
    let tasks = stdout(&c.ctr(&["task", "ls"]));
    assert!(tasks.contains("c2") && tasks.contains("RUNNING"), "{tasks}");
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c2",
        "/bin/sh",
        "-c",
        "echo from exec; exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "ctr task exec: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "from exec\n");

    assert_ok(&c.ctr(&["task", "pause", "c2"]), "pause");
    assert!(stdout(&c.ctr(&["task", "ls"])).contains("PAUSED"));
    assert_ok(&c.ctr(&["task", "resume", "c2"]), "resume");
    assert!(stdout(&c.ctr(&["task", "ls"])).contains("RUNNING"));
    let ps = c.ctr(&["task", "ps", "c2"]);
    assert_ok(&ps, "ps");
    let metrics = c.ctr(&["task", "metrics", "c2"]);
    assert_ok(&metrics, "metrics");
    assert!(
        stdout(&metrics).contains("memory") || stdout(&metrics).contains("pids"),
        "{}",
        stdout(&metrics)
    );

    assert_ok(&c.ctr(&["task", "kill", "-s", "SIGKILL", "c2"]), "kill");
    wait_until("task stopped", || {
        stdout(&c.ctr(&["task", "ls"])).contains("STOPPED")
    });
    assert_ok(&c.ctr(&["task", "delete", "c2"]), "task delete");
    assert_ok(&c.ctr(&["container", "rm", "c2"]), "container rm");
    assert!(!stdout(&c.ctr(&["task", "ls"])).contains("c2"));

    // Nothing left: no task, no shim or daemon, no mount, no cgroup (ctr
    // puts each container in /<namespace>/<id>; the parent is removed here
    // after checking that it is empty).
    assert!(stdout(&c.ctr(&["task", "ls", "-q"])).trim().is_empty());
    let ns = c.ns.clone();
    drop(c);
    let procs = crate::orch::processes_mentioning(&ns);
    assert!(procs.is_empty(), "processes left: {procs:?}");
    crate::orch::assert_no_host_mounts(ctx.dir.path());
    let cg = crate::orch::CgroupParent {
        name: ns,
        allowed: vec![],
    };
    let left = cg.check_and_remove();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}
