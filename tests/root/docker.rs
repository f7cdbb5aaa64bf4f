//! cuddy behind Docker (Debian's docker.io 20.10: dockerd, its containerd
//! and containerd-shim-runc-v2, `--add-runtime cuddy=<cuddy>`,
//! `docker run --runtime cuddy`), with Docker's default seccomp profile:
//! one suite of steps over one private dockerd (--data-root, --exec-root,
//! -H unix://…, --pidfile, --config-file in the test's tempdir,
//! `--cgroup-parent` of its own), inside a network + mount namespace the test
//! made (tmpfs over /run and /etc/docker there: dockerd writes its key.json
//! to /etc/docker). dockerd keeps its default bridge (docker0, made inside
//! that namespace, never on the host) for the bridge step, with
//! `--iptables=false --ip6tables=false`; every other step runs with
//! `--network none`. The image is `docker import` of the busybox fixture.
//! Spec: runtime.md#operations, config.md#process, config-linux.md#seccomp,
//! config-linux.md#control-groups, runtime.md#update (docker update).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use crate::common::*;
use crate::orch::*;
use crate::require_root;

pub(crate) const IMAGE: &str = "busybox:fixture";
pub(crate) const DOCKER: &str = "/usr/bin/docker"; // Debian's 20.10 client

/// dockerd's cgroup driver.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    /// The main suite's: cgroupfs, under a parent of the test's own, and a
    /// private /run in the holder.
    Cgroupfs,
    /// The systemd tier's: `"exec-opts": ["native.cgroupdriver=systemd"]`
    /// (containers as transient scopes under system.slice, cuddy called
    /// with --systemd-cgroup) and the tier's own /run, where its D-Bus
    /// socket is.
    Systemd,
}

pub(crate) struct Docker {
    pub(crate) dir: tempfile::TempDir,
    holder: Holder,
    cg: CgroupParent,
    daemon: Option<Child>,
}

impl Docker {
    pub(crate) fn start(driver: Driver) -> Result<Docker, String> {
        let dir = tempfile::Builder::new()
            .prefix("cuddy-t-docker-")
            .tempdir()
            .unwrap();
        // dockerd writes its key.json to /etc/docker: never the host's.
        let etc = "{ [ ! -d /etc/docker ] || mount -t tmpfs tmpfs /etc/docker; }";
        let setup = match driver {
            Driver::Cgroupfs => format!("mount -t tmpfs tmpfs /run && {etc}"),
            Driver::Systemd => etc.to_string(),
        };
        let holder = Holder::new(dir.path(), &setup);
        let cg = CgroupParent {
            name: format!("cuddy-t-docker-{}", std::process::id()),
            allowed: vec![],
        };
        let d = dir.path().display().to_string();
        let (config, parent) = match driver {
            Driver::Cgroupfs => (
                "{}",
                vec!["--cgroup-parent".into(), format!("/{}", cg.name)],
            ),
            Driver::Systemd => (r#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#, vec![]),
        };
        std::fs::write(dir.path().join("daemon.json"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let daemon = holder
            .cmd("dockerd")
            .args(["--data-root", &format!("{d}/data")])
            .args(["--exec-root", &format!("{d}/exec")])
            .args(["-H", &format!("unix://{d}/docker.sock")])
            .args(["--pidfile", &format!("{d}/docker.pid")])
            .args(["--config-file", &format!("{d}/daemon.json")])
            .args(["--iptables=false", "--ip6tables=false"])
            .args(["--add-runtime", &format!("cuddy={CUDDY}")])
            .args(["--default-ulimit", "nofile=1024:1024"])
            .args(parent)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("dockerd: {e}"))?;
        let mut dk = Docker {
            dir,
            holder,
            cg,
            daemon: Some(daemon),
        };
        for _ in 0..120 {
            if dk.d(&["version"]).status.success() {
                return Ok(dk);
            }
            if let Some(Ok(Some(st))) = dk.daemon.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(dk.dir.path().join("dockerd.log"));
                return Err(format!(
                    "dockerd exited ({st}): {}",
                    log.unwrap_or_default()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        Err("dockerd did not answer within 60 s".into())
    }

    fn client(&self) -> Vec<String> {
        let d = self.dir.path().display();
        vec![
            DOCKER.into(),
            "-H".into(),
            format!("unix://{d}/docker.sock"),
        ]
    }

    pub(crate) fn d(&self, args: &[&str]) -> Output {
        let cl = self.client();
        let mut c = Command::new(&cl[0]);
        c.args(&cl[1..])
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("client"));
        output_with_timeout(c, 120)
    }

    /// `docker run --rm --runtime cuddy --network none <extra> IMAGE cmd…`.
    fn run(&self, extra: &[&str], cmd: &[&str]) -> Output {
        let mut a = vec!["run", "--rm", "--runtime", "cuddy", "--network", "none"];
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.d(&a)
    }

    fn state_dir(&self, id: &str) -> PathBuf {
        // dockerd 20.10 gives every runtime the shim option
        // root = <exec-root>/runtime-runc (+ containerd namespace "moby").
        self.dir.path().join(format!("exec/runtime-runc/moby/{id}"))
    }

    /// Removes every container, then stops dockerd by PID (SIGTERM: it stops
    /// its containerd and the shims), bounded.
    fn stop(&mut self) {
        let ids = stdout(&self.d(&["ps", "-a", "-q"]));
        for id in ids.split_whitespace() {
            let _ = self.d(&["rm", "-f", id]);
        }
        if let Some(mut c) = self.daemon.take() {
            // nsenter execs dockerd: the child's PID is dockerd's.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            for _ in 0..300 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            kill(c.id() as i32);
            let _ = c.wait();
        }
    }
}

impl RunShell for Docker {
    fn sh(&self, extra: &[&str], script: &str) -> Output {
        self.run(extra, &["sh", "-c", script])
    }

    fn scratch(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.d(args)
    }

    /// The shell command line of `docker …` (for `script`).
    fn shell(&self, args: &[&str]) -> String {
        let cl = self.client();
        let d = self.dir.path().join("client");
        let mut all: Vec<&str> = vec!["env"];
        let env = format!("DOCKER_CONFIG={}", d.display());
        all.push(&env);
        all.extend(cl.iter().map(|s| s.as_str()));
        all.extend_from_slice(args);
        shell_quote(&all)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn docker_runs_cuddy() {
    require_root!();
    if !std::path::Path::new(DOCKER).exists() {
        eprintln!("skipped: docker.io is not installed (integration/test.sh installs it)");
        return;
    }
    let net_before = host_net_snapshot();
    let mut dk = match Docker::start(Driver::Cgroupfs) {
        Ok(d) => d,
        Err(e) if in_vm() => {
            eprintln!("skipped in the v2 guest: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let tar = fixture_tar(dk.dir.path());
    assert_ok(
        &dk.d(&["import", tar.to_str().unwrap(), IMAGE]),
        "docker import",
    );

    let mut s = Steps::default();
    steps_basic(&dk, &mut s);
    steps_detached(&dk, &mut s);
    steps_lifecycle(&dk, &mut s);
    steps_resources(&dk, &mut s);
    steps_security(&dk, &mut s);
    steps_network(&dk, &mut s);

    s.step("nothing-left", || {
        let ps = ok_out(&dk.d(&["ps", "-a", "-q"]), "docker ps -a");
        assert!(ps.trim().is_empty(), "containers left: {ps}");
    });
    dk.stop();
    s.step("daemon-stopped-nothing-left", || {
        let rt = dk.dir.path().join("exec/runtime-runc/moby");
        assert_client_left_nothing(&dk.holder, &dk.cg, &rt);
    });
    let dir = dk.dir.path().to_path_buf();
    drop(dk);
    s.step("host-untouched", || {
        assert_host_untouched(&net_before, &dir)
    });
    s.finish("docker");
}

fn steps_basic(dk: &Docker, s: &mut Steps) {
    // runtime.md#operations + config-linux.md#seccomp (Docker's default
    // profile: a filter, mode 2).
    s.step("run-output-exit-code-seccomp", || {
        let o = dk.sh(
            &[],
            "echo hello; echo err >&2; grep '^Seccomp:' /proc/1/status; exit 3",
        );
        code(&o, 3, "run");
        assert_eq!(stdout(&o), "hello\nSeccomp:\t2\n");
        assert_eq!(stderr(&o), "err\n");
    });
    // config.md#process: terminal through containerd-shim's console socket.
    s.step("run-it", || {
        let a = [
            "run",
            "-it",
            "--rm",
            "--runtime",
            "cuddy",
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "tty; exit 7",
        ];
        let o = with_tty(&dk.shell(&a));
        code(&o, 7, "run -it");
        assert!(stdout(&o).contains("/dev/pts/0"), "{}", stdout(&o));
    });
    s.step("privileged-host-limit", || {
        // runc (dockerd's default runtime) is the reference: where it cannot
        // run --privileged (capset EPERM: this host's root lacks
        // capabilities), neither can any runtime.
        let runc = dk.d(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--privileged",
            IMAGE,
            "true",
        ]);
        if !runc.status.success() {
            eprintln!(
                "    skipped (host limitation: runc fails too): {}",
                stderr(&runc).trim()
            );
            return;
        }
        let o = dk.sh(&["--privileged"], "grep '^CapEff:' /proc/1/status");
        assert!(!ok_out(&o, "--privileged").contains("0000000000000000"));
    });
}

fn run_d(dk: &Docker, name: &str, extra: &[&str], cmd: &[&str]) -> String {
    let mut a = vec![
        "run",
        "-d",
        "--name",
        name,
        "--runtime",
        "cuddy",
        "--network",
        "none",
    ];
    a.extend_from_slice(extra);
    a.push(IMAGE);
    a.extend_from_slice(cmd);
    ok_out(&dk.d(&a), "run -d").trim().to_string()
}

fn steps_detached(dk: &Docker, s: &mut Steps) {
    s.step("run-d", || {
        let id = run_d(dk, "d1", &["-m", "64m"], &["sleep", "1000"]);
        let st = dk.state_dir(&id).join("state.json");
        assert!(st.exists(), "{} missing", st.display());
        // The shim's options: cuddy is its runc binary.
        let opts = dk.dir.path().join(format!(
            "exec/containerd/daemon/io.containerd.runtime.v2.task/moby/{id}/options.json"
        ));
        let opts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(opts).unwrap()).unwrap();
        assert_eq!(opts["binary_name"], CUDDY, "{opts}");
        assert_eq!(dk.inspect("d1", "{{.State.Status}}"), "running");
    });
    steps_exec_top_pause(dk, s);
    // The stats shape differs between the clients.
    s.step("stats", || {
        let st = ok_out(
            &dk.d(&[
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}} {{.PIDs}} {{.MemUsage}}",
                "d1",
            ]),
            "stats",
        );
        assert!(st.starts_with("d1 1 ") && st.contains("/ 64MiB"), "{st}");
    });
    // runtime.md#update (cuddy update -r): in the container's cgroup.
    s.step("update-memory", || {
        assert_ok(
            &dk.d(&["update", "--memory", "128m", "--memory-swap", "256m", "d1"]),
            "update",
        );
        let o = dk.d(&["exec", "d1", "sh", "-c", MEM_LIMIT]);
        assert_eq!(ok_out(&o, "exec cat limit"), "134217728\n");
        let pid = dk.inspect("d1", "{{.State.Pid}}");
        let f = cgroup_file(&pid, "memory", "memory.limit_in_bytes", "memory.max");
        assert_eq!(read(&f), "134217728");
    });
    s.step("restart", || {
        let pid = dk.inspect("d1", "{{.State.Pid}}");
        assert_ok(&dk.d(&["restart", "-t", "1", "d1"]), "restart");
        assert_eq!(dk.inspect("d1", "{{.State.Status}}"), "running");
        let pid2 = dk.inspect("d1", "{{.State.Pid}}");
        assert_ne!(pid, pid2, "restart kept the old process");
        assert_eq!(cmdline(&pid2).trim(), "sleep 1000");
    });
    s.step("stop-t", || {
        // sleep as PID 1 ignores SIGTERM: stop -t 1 ends it with SIGKILL.
        assert_ok(&dk.d(&["stop", "-t", "1", "d1"]), "stop -t 1");
        assert_eq!(
            dk.inspect("d1", "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 137"
        );
        let id = dk.inspect("d1", "{{.Id}}");
        assert_ok(&dk.d(&["rm", "d1"]), "rm d1");
        assert!(!dk.state_dir(&id).exists(), "state of d1 left after rm");
    });
}

fn steps_lifecycle(dk: &Docker, s: &mut Steps) {
    s.step("kill-s", || {
        run_d(
            dk,
            "k1",
            &[],
            &[
                "sh",
                "-c",
                "trap 'echo got USR1; exit 42' USR1; echo up; while :; do sleep 0.1; done",
            ],
        );
        wait_until("k1 up", || stdout(&dk.d(&["logs", "k1"])).contains("up"));
        assert_ok(&dk.d(&["kill", "-s", "USR1", "k1"]), "kill -s USR1");
        assert_eq!(ok_out(&dk.d(&["wait", "k1"]), "wait").trim(), "42");
        assert!(stdout(&dk.d(&["logs", "k1"])).contains("got USR1"));
        assert_ok(&dk.d(&["rm", "k1"]), "rm k1");
    });
    s.step("logs-wait", || {
        run_d(
            dk,
            "l1",
            &[],
            &["sh", "-c", "echo out1; echo err1 >&2; exit 9"],
        );
        assert_eq!(ok_out(&dk.d(&["wait", "l1"]), "wait").trim(), "9");
        let o = dk.d(&["logs", "l1"]);
        assert_eq!((stdout(&o), stderr(&o)), ("out1\n".into(), "err1\n".into()));
        assert_ok(&dk.d(&["rm", "l1"]), "rm l1");
    });
    // --init: docker-init (tini) is PID 1 and runs the command.
    s.step("init", || {
        let o = dk.sh(&["--init"], "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$");
        let out = ok_out(&o, "--init");
        assert!(out.starts_with("/sbin/docker-init -- sh -c"), "{out}");
        assert!(!out.ends_with("\n1\n"), "the shell is not PID 1: {out}");
    });
}

fn steps_security(dk: &Docker, s: &mut Steps) {
    s.step("read-only-tmpfs", || {
        let o = dk.sh(
            &["--read-only", "--tmpfs", "/scratch"],
            "touch /x 2>&1; awk '$2==\"/scratch\"{print $3}' /proc/mounts; touch /scratch/a && echo ok",
        );
        assert_eq!(
            ok_out(&o, "--read-only --tmpfs"),
            "touch: /x: Read-only file system\ntmpfs\nok\n"
        );
    });
    steps_user_caps_volume(dk, s);
}

fn steps_network(dk: &Docker, s: &mut Steps) {
    s.step("network-none", || {
        assert_eq!(
            ok_out(&dk.sh(&[], "ls /sys/class/net"), "--network none"),
            "lo\n"
        );
    });
    // Docker's default bridge (docker0 in the holder's namespace): the
    // container's namespace is made by dockerd (libnetwork), joined by path.
    s.step("bridge-network", || {
        let o = dk.d(&[
            "run", "--rm", "--runtime", "cuddy", IMAGE, "sh", "-c",
            "ip -o -4 addr show eth0 | awk '{print $4}'; gw=$(ip route | awk '/default/{print $3}'); ping -c 1 -W 5 $gw >/dev/null && echo reached $gw",
        ]);
        if !o.status.success() && in_vm() {
            eprintln!("    skipped in the v2 guest: {}", stderr(&o));
            return;
        }
        let out = ok_out(&o, "bridge network");
        assert!(out.starts_with("172.17.") && out.contains("reached 172.17.0.1"), "{out}");
        let links = stdout(&dk.holder.cmd("ip").args(["-o", "link"]).output().unwrap());
        assert!(links.contains("docker0"), "{links}");
    });
}
