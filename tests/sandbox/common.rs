//! Shared helpers: the fixture rootfs, a configured `Sandbox`, and the
//! checks that nothing of a sandbox is left.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cuddy::Sandbox;

/// The state root all tests of this crate share (sandboxes of live
/// owners are never touched by another's sweep).
pub const STATE: &str = "/run/cuddy-sandbox-tests";

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

/// The busybox fixture rootfs, built once by rootfs-fixtures/build.sh.
pub fn rootfs() -> &'static Path {
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

/// A sandbox over the fixture, with this build's cuddy binary.
pub fn sandbox() -> Sandbox {
    Sandbox::rootfs(rootfs())
        .binary(env!("CARGO_BIN_EXE_cuddy"))
        .state_root(STATE)
}

/// A hash of a directory tree: names, types, modes, owners, sizes,
/// contents and link targets.
pub fn hash_tree(dir: &Path) -> u64 {
    fn walk(p: &Path, h: &mut DefaultHasher) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.mode(), m.uid(), m.gid(), m.len()).hash(h);
        if m.file_type().is_symlink() {
            std::fs::read_link(p).unwrap().hash(h);
        } else if m.is_file() {
            std::fs::read(p).unwrap().hash(h);
        } else if m.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                n.hash(h);
                walk(&p.join(&n), h);
            }
        }
    }
    let mut h = DefaultHasher::new();
    walk(dir, &mut h);
    h.finish()
}

/// The fixture's hash before any test changed anything (or tried to).
pub fn rootfs_hash() -> u64 {
    static HASH: OnceLock<u64> = OnceLock::new();
    *HASH.get_or_init(|| hash_tree(rootfs()))
}

/// Is `pid` a live (non-zombie) process?
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
        .flatten()
        .is_some_and(|st| st != 'Z' && st != 'X')
}

/// Polls `f` for up to `secs` seconds.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing of sandbox `id` (init `pid`) is left: its process, its
/// container state, its bundle, its cgroup in any hierarchy, any mount of
/// it in this (the host's) mount namespace.
pub fn assert_gone(state: &Path, id: &str, pid: i32) {
    assert!(!id.is_empty() && id.starts_with("sbx-"), "bad id {id:?}");
    assert!(!alive(pid), "sandbox {id}: init {pid} still alive");
    assert!(!state.join(id).exists(), "sandbox {id}: state dir left");
    assert!(
        !state.join(".sandbox").join(id).exists(),
        "sandbox {id}: bundle dir left"
    );
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for p in [h.path().join("cuddy").join(id), h.path().join(id)] {
            assert!(!p.exists(), "sandbox {id}: cgroup {} left", p.display());
        }
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(id), "sandbox {id}: mount left:\n{mi}");
}
