//! Test harness for root integration tests: real containers through the real
//! `cuddy` binary, from the busybox fixture, observed with the probe.
//!
//! Every test gets its own state root and container ids with a `cuddy-t-`
//! prefix; `Ctx`'s Drop force-deletes its containers and the leak checks
//! assert that no state dir, cgroup, mount or process was left behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

pub const CUDDY: &str = env!("CARGO_BIN_EXE_cuddy");

/// The capability list Docker 20.10 writes into every set of config.json
/// (moby oci/caps/defaults.go, as `docker run` sends it).
pub const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Root tests skip (with a note) when not run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// The fixture rootfs, built once per test binary by rootfs-fixtures/build.sh.
pub fn fixture_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let st = Command::new("bash")
            .arg(repo.join("rootfs-fixtures/build.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run rootfs-fixtures/build.sh");
        assert!(st.success(), "rootfs-fixtures/build.sh failed");
        repo.join("rootfs-fixtures/build/busybox/rootfs")
    })
}

/// One test's world: a state root, bundles, and the containers it made.
pub struct Ctx {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub name: String,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Ctx {
    pub fn new(name: &str) -> Ctx {
        let dir = tempfile::Builder::new()
            .prefix("cuddy-t-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("state");
        Ctx {
            dir,
            root,
            name: name.to_string(),
            ids: Default::default(),
        }
    }

    /// A fresh container id, remembered for cleanup.
    pub fn id(&self, suffix: &str) -> String {
        let id = format!("cuddy-t-{}-{}-{}", self.name, suffix, std::process::id());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// The default config (as `cuddy spec` writes it) pointed at the fixture
    /// rootfs, running `args`.
    pub fn config(&self, args: &[&str]) -> Value {
        let mut c = cuddy::spec::default_spec(false, 0, 0);
        c["root"]["path"] = json!(fixture_rootfs());
        c["process"]["args"] = json!(args);
        // Tests read the container's output on cuddy's own stdio.
        c["process"]["terminal"] = json!(false);
        c
    }

    /// A private, writable copy of the fixture rootfs in the test's dir (for
    /// tests that edit the image or need known content).
    pub fn private_rootfs(&self, name: &str) -> PathBuf {
        let dst = self.dir.path().join(name);
        let st = Command::new("cp")
            .arg("-a")
            .arg(fixture_rootfs())
            .arg(&dst)
            .status()
            .expect("cp -a");
        assert!(st.success(), "cp -a of the fixture rootfs failed");
        dst
    }

    /// Writes a bundle directory with `config` and returns its path.
    pub fn bundle(&self, name: &str, config: &Value) -> PathBuf {
        let b = self.dir.path().join(format!("bundle-{name}"));
        std::fs::create_dir_all(&b).expect("mkdir bundle");
        std::fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(config).expect("json"),
        )
        .expect("write config");
        b
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(CUDDY);
        c.arg("--root").arg(&self.root);
        c
    }

    /// Runs cuddy with `args`, with a hang guard (a test that hangs is a failure).
    pub fn cuddy(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(args);
        output_with_timeout(c, 60)
    }

    /// `cuddy run` of `config` in the foreground; returns the output.
    pub fn run(&self, id: &str, config: &Value) -> Output {
        let b = self.bundle(id, config);
        self.cuddy(&["run", "--bundle", b.to_str().expect("utf8"), id])
    }

    /// Runs the probe with `config` (its args replaced) and parses its JSON.
    pub fn probe(&self, suffix: &str, mut config: Value, probe_args: &[&str]) -> Value {
        let mut args = vec!["/bin/probe"];
        args.extend_from_slice(probe_args);
        config["process"]["args"] = json!(args);
        let id = self.id(suffix);
        let out = self.run(&id, &config);
        assert_ok(&out, "run probe");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "probe output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.cuddy(&["state", id]);
        assert_ok(&out, "state");
        serde_json::from_slice(&out.stdout).expect("state JSON")
    }

    /// Asserts nothing of container `id` is left: state dir, cgroup dirs,
    /// mounts of its bundle.
    pub fn assert_no_leftovers(&self, id: &str) {
        assert!(
            !self.root.join(id).exists(),
            "state dir of {id} left behind"
        );
        assert_no_cgroup(id);
        let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let d = self.dir.path().to_string_lossy().to_string();
        assert!(!mi.contains(&d), "mount under {d} left behind:\n{mi}");
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            if self.root.join(id).exists() {
                let _ = self.cmd().args(["delete", "--force", id]).output();
            }
        }
    }
}

/// No cgroup directory named `id` in any hierarchy under /sys/fs/cgroup.
pub fn assert_no_cgroup(id: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroup root")
        .flatten()
    {
        for parent in ["cuddy", "cuddy-test"] {
            let p = h.path().join(parent).join(id);
            assert!(!p.exists(), "cgroup {} left behind", p.display());
        }
    }
    // Pure v2 host: /sys/fs/cgroup itself is the hierarchy.
    assert!(!Path::new("/sys/fs/cgroup/cuddy").join(id).exists());
}

/// Runs `c` with stdout/stderr going to files (not pipes: a container
/// created in the background keeps cuddy's stdio open, and a pipe would never
/// see EOF), waiting for cuddy itself to exit; a hang guard kills it after
/// `secs` so a hang is a failure, not a stuck suite.
pub fn output_with_timeout(mut c: Command, secs: u64) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let (op, ep) = (dir.path().join("out"), dir.path().join("err"));
    let of = std::fs::File::create(&op).expect("out file");
    let ef = std::fs::File::create(&ep).expect("err file");
    c.stdin(Stdio::null()).stdout(of).stderr(ef);
    let mut child = c.spawn().expect("spawn cuddy");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    let guard = std::thread::spawn(move || {
        if rx
            .recv_timeout(std::time::Duration::from_secs(secs))
            .is_err()
        {
            // End the hung cuddy by PID.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let status = child.wait().expect("wait cuddy");
    let _ = tx.send(());
    let _ = guard.join();
    Output {
        status,
        stdout: std::fs::read(&op).unwrap_or_default(),
        stderr: std::fs::read(&ep).unwrap_or_default(),
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Asserts a clean failure: exit code 1 and `needle` in stderr.
pub fn assert_fails_with(o: &Output, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1; stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    let e = stderr(o);
    assert!(
        e.contains(needle),
        "stderr does not mention {needle:?}: {e}"
    );
    assert_eq!(
        e.matches("cuddy:").count(),
        1,
        "the error must be printed once: {e}"
    );
}

/// The inode of one of this process's namespaces.
pub fn host_ns(kind: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/ns/{kind}"))
        .expect("ns")
        .ino()
}

/// Waits until `f` holds, failing after 60 s: a hang guard, not a speed
/// claim (the suite also runs in an emulated guest, many tests at once).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(f(), "timed out (60 s) waiting for {what}");
}
