//! cuddy behind podman (Debian's 4.3, `podman --runtime <cuddy>`), with
//! podman's DEFAULT seccomp profile: one suite of steps over one private
//! podman (its --root/--runroot/--tmpdir in the test's tempdir,
//! `--cgroup-manager cgroupfs`, `--events-backend file`), inside a network +
//! mount namespace the test made (tmpfs over /run and /var/lib/cni there, so
//! podman's CNI bridge, its netfilter rules, netns files and IPAM state and
//! cuddy's state dir /run/cuddy never reach the host). Images come from the
//! busybox fixture (`podman import`). Every run passes
//! `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`: root on the CI host
//! lacks CAP_SYS_RESOURCE, and podman's default RLIMIT_NPROC is above the
//! hard limit (runc fails the same way: the `nproc-host-limit` step shows it).
//! Spec: runtime.md#operations (create/start/kill/delete as podman drives
//! them), config.md#process (terminal, user, rlimits),
//! config-linux.md#seccomp, config-linux.md#control-groups.

use std::process::{Command, Output};

use crate::common::*;
use crate::orch::*;
use crate::require_root;

const IMAGE: &str = "localhost/busybox";

struct Podman {
    dir: tempfile::TempDir,
    holder: Holder,
    cg: CgroupParent,
}

impl Podman {
    fn start() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("cuddy-t-podman-")
            .tempdir()
            .unwrap();
        // /var/lib/cni: the CNI plugins' IPAM state and libcni's cache.
        let holder = Holder::new(
            dir.path(),
            "mount -t tmpfs tmpfs /run && mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni",
        );
        let cg = CgroupParent {
            name: format!("cuddy-t-podman-{}", std::process::id()),
            allowed: vec!["conmon"],
        };
        Podman { dir, holder, cg }
    }

    fn globals(&self, runtime: &str) -> Vec<String> {
        let d = self.dir.path().display();
        [
            "--root",
            &format!("{d}/root"),
            "--runroot",
            &format!("{d}/runroot"),
            "--tmpdir",
            &format!("{d}/tmp"),
            "--runtime",
            runtime,
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn with(&self, runtime: &str, args: &[&str]) -> Output {
        let mut c = self.holder.cmd("podman");
        c.args(self.globals(runtime)).args(args);
        output_with_timeout(c, 120)
    }

    fn p(&self, args: &[&str]) -> Output {
        self.with(CUDDY, args)
    }

    /// The options every `run` gets (see the module comment).
    fn run_opts(&self) -> Vec<String> {
        [
            "--pull",
            "never",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--cgroup-parent",
            &format!("/{}", self.cg.name),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `podman run --rm <opts> <extra> IMAGE cmd…`.
    fn run(&self, extra: &[&str], cmd: &[&str]) -> Output {
        let opts = self.run_opts();
        let mut a: Vec<&str> = vec!["run", "--rm"];
        a.extend(opts.iter().map(|s| s.as_str()));
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.p(&a)
    }

    fn stop_all(&self) {
        let _ = self.p(&["rm", "-a", "-f", "-t", "0"]);
    }
}

impl RunShell for Podman {
    fn sh(&self, extra: &[&str], script: &str) -> Output {
        self.run(extra, &["sh", "-c", script])
    }

    fn scratch(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.p(args)
    }

    /// The shell command line of `podman …` in the holder (for `script`).
    fn shell(&self, args: &[&str]) -> String {
        let g = self.globals(CUDDY);
        let mut all: Vec<&str> = vec!["nsenter", "-t"];
        let pid = self.holder.pid().to_string();
        all.extend([pid.as_str(), "-m", "-n", "--", "podman"]);
        all.extend(g.iter().map(|s| s.as_str()));
        all.extend_from_slice(args);
        shell_quote(&all)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Also on a panic outside the steps: containers first (conmon ends
        // with them), then the holder and the cgroup parent (fields).
        self.stop_all();
    }
}

#[test]
fn podman_runs_cuddy() {
    require_root!();
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: podman is not installed (integration/test.sh installs it)");
        return;
    }
    let net_before = host_net_snapshot();
    let p = Podman::start();
    let tar = fixture_tar(p.dir.path());
    let o = p.p(&["import", tar.to_str().unwrap(), IMAGE]);
    if !o.status.success() && in_vm() {
        eprintln!(
            "skipped in the v2 guest: podman import failed: {}",
            stderr(&o)
        );
        return;
    }
    assert_ok(&o, "podman import");

    let mut s = Steps::default();
    steps_basic(&p, &mut s);
    steps_detached(&p, &mut s);
    steps_resources(&p, &mut s);
    steps_security(&p, &mut s);
    steps_network(&p, &mut s);

    p.stop_all();
    s.step("nothing-left", || {
        let ps = ok_out(&p.p(&["ps", "-a", "-q"]), "podman ps -a");
        assert!(ps.trim().is_empty(), "containers left: {ps}");
        assert_client_left_nothing(&p.holder, &p.cg, &p.holder.path("/run/cuddy"));
    });
    let dir = p.dir.path().to_path_buf();
    drop(p);
    s.step("host-untouched", || {
        assert_host_untouched(&net_before, &dir)
    });
    s.finish("podman");
}

fn steps_basic(p: &Podman, s: &mut Steps) {
    // runtime.md#operations: the exit code and output of the process,
    // config-linux.md#seccomp: podman's default profile is a filter (mode 2).
    s.step("run-output-exit-code-seccomp", || {
        let o = p.sh(&[], "echo hello; grep '^Seccomp:' /proc/1/status; exit 3");
        code(&o, 3, "run");
        assert_eq!(stdout(&o), "hello\nSeccomp:\t2\n");
    });
    // config.md#process: terminal true through conmon's console socket.
    s.step("run-it", || {
        let opts = p.run_opts();
        let mut a: Vec<&str> = vec!["run", "-it", "--rm"];
        a.extend(opts.iter().map(|s| s.as_str()));
        // podman attaches to conmon while it starts the container: output
        // of a container that exits at once can be lost (podman's own
        // suite sleeps first too, containers/podman#9859); seen once here.
        a.extend([IMAGE, "sh", "-c", "sleep 0.5; tty; exit 7"]);
        let o = with_tty(&p.shell(&a));
        code(&o, 7, "run -it");
        assert!(stdout(&o).contains("/dev/pts/0"), "{}", stdout(&o));
    });
    s.step("nproc-host-limit", || {
        // Without --ulimit nproc podman asks for RLIMIT_NPROC 1048576, above
        // this host's hard limit; without CAP_SYS_RESOURCE runc fails too.
        let args = [
            "run",
            "--rm",
            "--pull",
            "never",
            "--ulimit",
            "nofile=1024:1024",
            IMAGE,
            "true",
        ];
        let runc = p.with("runc", &args);
        let cuddy = p.p(&args);
        if has_cap_sys_resource() {
            assert_ok(&runc, "runc without --ulimit nproc");
            assert_ok(&cuddy, "cuddy without --ulimit nproc");
        } else {
            eprintln!(
                "    host limitation: root lacks CAP_SYS_RESOURCE; runc and cuddy both refuse"
            );
            code(&runc, 126, "runc without --ulimit nproc");
            code(&cuddy, 126, "cuddy without --ulimit nproc");
            assert!(
                stderr(&cuddy).contains("RLIMIT_NPROC"),
                "{}",
                stderr(&cuddy)
            );
        }
    });
}

fn steps_detached(p: &Podman, s: &mut Steps) {
    let opts = p.run_opts();
    let mut a: Vec<&str> = vec!["run", "-d", "--name", "d1"];
    a.extend(opts.iter().map(|s| s.as_str()));
    a.extend([IMAGE, "sleep", "1000"]);
    let mut id = String::new();
    s.step("run-d", || {
        id = ok_out(&p.p(&a), "run -d").trim().to_string();
        // cuddy holds the container: its state dir (podman's runtime root
        // is /run/<runtime name>, here the holder's tmpfs).
        let st = p.holder.path(&format!("/run/cuddy/{id}/state.json"));
        assert!(st.exists(), "{} missing", st.display());
        assert_eq!(p.inspect("d1", "{{.State.Status}}"), "running");
    });
    steps_exec_top_pause(p, s);
    // The stats shape differs between the clients.
    s.step("stats", || {
        let st = ok_out(
            &p.p(&[
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}} {{.PIDs}}",
                "d1",
            ]),
            "stats",
        );
        assert_eq!(st.trim(), "d1 1");
    });
    s.step("kill-s", || {
        let mut a: Vec<&str> = vec!["run", "-d", "--name", "k1"];
        a.extend(opts.iter().map(|s| s.as_str()));
        a.extend([
            IMAGE,
            "sh",
            "-c",
            "trap 'echo got USR1; exit 42' USR1; echo up; while :; do sleep 0.1; done",
        ]);
        assert_ok(&p.p(&a), "run -d k1");
        wait_until("k1 up", || stdout(&p.p(&["logs", "k1"])).contains("up"));
        assert_ok(&p.p(&["kill", "-s", "USR1", "k1"]), "kill -s USR1");
        assert_eq!(ok_out(&p.p(&["wait", "k1"]), "wait").trim(), "42");
        assert!(stdout(&p.p(&["logs", "k1"])).contains("got USR1"));
        assert_ok(&p.p(&["rm", "k1"]), "rm k1");
    });
    s.step("stop-t", || {
        // sleep as PID 1 ignores SIGTERM: stop -t 1 ends it with SIGKILL.
        assert_ok(&p.p(&["stop", "-t", "1", "d1"]), "stop -t 1");
        assert_eq!(
            p.inspect("d1", "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 137"
        );
        assert_ok(&p.p(&["rm", "d1"]), "rm d1");
        let st = p.holder.path(&format!("/run/cuddy/{id}"));
        assert!(!st.exists(), "{} left after rm", st.display());
    });
}

fn steps_security(p: &Podman, s: &mut Steps) {
    // config.md#root (readonly); podman adds a tmpfs at /tmp.
    s.step("read-only", || {
        let o = p.sh(
            &["--read-only"],
            "touch /x 2>&1; touch /tmp/y && echo tmp-ok",
        );
        assert_eq!(
            ok_out(&o, "--read-only"),
            "touch: /x: Read-only file system\ntmp-ok\n"
        );
    });
    s.step("tmpfs", || {
        let o = p.sh(
            &["--tmpfs", "/scratch"],
            "awk '$2==\"/scratch\"{print $3}' /proc/mounts; touch /scratch/a && echo ok",
        );
        assert_eq!(ok_out(&o, "--tmpfs"), "tmpfs\nok\n");
    });
    steps_user_caps_volume(p, s);
}

fn steps_network(p: &Podman, s: &mut Steps) {
    // config-linux.md#namespaces: a new network namespace with only lo.
    s.step("network-none", || {
        let o = p.sh(&["--network", "none"], "ls /sys/class/net");
        assert_eq!(ok_out(&o, "--network none"), "lo\n");
    });
    // podman's default network: its CNI bridge (cni-podman0, 10.88.0.0/16)
    // inside the holder's network namespace; the container (namespace made
    // by podman, joined by path by cuddy) reaches the bridge's address.
    s.step("default-network-cni", || {
        let o = p.sh(
            &["--cap-add", "NET_RAW"],
            "ip -o -4 addr show eth0 | awk '{print $4}'; ping -c 1 -W 5 10.88.0.1 >/dev/null && echo reached",
        );
        if !o.status.success() && in_vm() {
            eprintln!("    skipped in the v2 guest: {}", stderr(&o));
            return;
        }
        let out = ok_out(&o, "default network");
        assert!(out.starts_with("10.88.") && out.ends_with("reached\n"), "{out}");
        let links = stdout(&p.holder.cmd("ip").args(["-o", "link"]).output().unwrap());
        assert!(links.contains("cni-podman0"), "{links}");
    });
}
