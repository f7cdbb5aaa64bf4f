//! Shared pieces of the orchestrator suites (podman.rs, docker.rs): a
//! private network + mount namespace that holds the client's daemon(s), a
//! step runner that runs every step and reports each, the steps both
//! clients share (`steps_*`: the same expectations through either CLI), and
//! the checks that nothing is left behind (processes, mounts, cgroups,
//! links, netfilter rules) once a suite is done; systemd_driver.rs borrows
//! a few.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common::*;

/// `unshare -n -m --propagation private` holding a network and mount
/// namespace open (`sleep`), set up by `setup` (a shell script run inside
/// first). Clients run in it with `nsenter -t PID -m -n`; the bridge, veths,
/// netfilter rules and mounts they make die with it.
pub struct Holder {
    child: Child,
    /// Mount IDs present when the namespace was made (copies of the host's).
    initial: Vec<String>,
}

impl Holder {
    pub fn new(dir: &Path, setup: &str) -> Holder {
        let ready = dir.join("holder.ready");
        let script = format!(
            "ip link set lo up && {setup} && : > {} && exec sleep infinity",
            ready.display()
        );
        let child = Command::new("unshare")
            .args(["-n", "-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare");
        let mut h = Holder {
            child,
            initial: Vec::new(),
        };
        wait_until("the namespace holder", || ready.exists());
        h.initial = h.mountinfo().iter().map(|l| mount_id(l)).collect();
        h
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `prog args…` inside the holder's namespaces (absolute paths only:
    /// entering a mount namespace resets the cwd), bounded by `secs`.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid().to_string(), "-m", "-n", "--", prog]);
        c
    }

    /// A path as the holder sees it (its mount namespace's view).
    pub fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{p}", self.pid()))
    }

    fn mountinfo(&self) -> Vec<String> {
        let mi = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap();
        mi.lines().map(str::to_string).collect()
    }

    /// The mount points made in the holder's mount namespace since it was
    /// set up whose filesystem type is `fstype` (e.g. `nsfs`: a network
    /// namespace bound to a file).
    pub fn new_mounts_of_type(&self, fstype: &str) -> Vec<String> {
        self.mountinfo()
            .iter()
            .filter(|l| !self.initial.contains(&mount_id(l)))
            .filter(|l| l.split(" - ").nth(1).and_then(|t| t.split(' ').next()) == Some(fstype))
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .collect()
    }

    /// The processes (other than the holder) in the holder's mount or network
    /// namespace.
    pub fn other_processes(&self) -> Vec<String> {
        let me = self.pid().to_string();
        let ns = |pid: &str, k: &str| {
            std::fs::metadata(format!("/proc/{pid}/ns/{k}"))
                .map(|m| m.ino())
                .ok()
        };
        let (mnt, net) = (ns(&me, "mnt"), ns(&me, "net"));
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = e.file_name().to_string_lossy().to_string();
            if pid == me || pid.parse::<u32>().is_err() {
                continue;
            }
            if ns(&pid, "mnt") == mnt || ns(&pid, "net") == net {
                found.push(format!("{pid} {}", cmdline(&pid)));
            }
        }
        found
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Whatever is still inside is ended by PID, then the holder itself.
        for p in self.other_processes() {
            if let Some(pid) = p.split(' ').next().and_then(|s| s.parse().ok()) {
                kill(pid);
            }
        }
        kill(self.pid() as i32);
        let _ = self.child.wait();
    }
}

fn mount_id(line: &str) -> String {
    line.split(' ').next().unwrap_or("").to_string()
}

pub fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

pub fn cmdline(pid: &str) -> String {
    let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&c).replace('\0', " ")
}

/// The PIDs of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let c = cmdline(&pid.to_string());
        if pid != me && c.contains(needle) {
            v.push((pid, c));
        }
    }
    v
}

/// Runs every step, catching its panic, and reports each on stderr; `finish`
/// fails the test listing the failed steps.
#[derive(Default)]
pub struct Steps {
    failed: Vec<String>,
}

impl Steps {
    pub fn step(&mut self, name: &str, f: impl FnOnce()) {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(()) => eprintln!("  step {name}: ok"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("  step {name}: FAILED: {msg}");
                self.failed.push(name.to_string());
            }
        }
    }

    pub fn finish(self, suite: &str) {
        assert!(
            self.failed.is_empty(),
            "{suite}: failed steps: {:?}",
            self.failed
        );
    }
}

/// `script -qec CMD /dev/null`: CMD gets a terminal (for `-it`), its exit
/// code is script's.
pub fn with_tty(cmd: &str) -> Output {
    let mut s = Command::new("script");
    s.args(["-qec", cmd, "/dev/null"]);
    output_with_timeout(s, 60)
}

pub fn shell_quote(args: &[&str]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A file of process `pid`'s cgroup: the v1 hierarchy of `controller`, or
/// the v2 cgroup.
pub fn cgroup_file(pid: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            return PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}/{v1}"));
        }
        if ctrls.is_empty() && is_v2() {
            return PathBuf::from(format!("/sys/fs/cgroup{path}/{v2}"));
        }
    }
    panic!("no {controller} cgroup for {pid}: {cg}");
}

pub fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The cgroup limit files as seen inside a container (its own cgroup is
/// mounted at /sys/fs/cgroup, v1 or v2).
pub const MEM_LIMIT: &str =
    "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";
pub const PIDS_MAX: &str =
    "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max";

/// Whether this process has CAP_SYS_RESOURCE (bit 24): root on this CI host
/// has not, so no runtime can raise RLIMIT_NPROC above the hard limit.
pub fn has_cap_sys_resource() -> bool {
    let st = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = st
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap_or(0))
        .unwrap_or(0);
    eff & (1 << 24) != 0
}

/// Whether we run in the QEMU cgroup v2 tier (integration/vm).
pub fn in_vm() -> bool {
    std::env::var("CUDDY_VM").as_deref() == Ok("1")
}

/// A cgroup parent directory a suite gives its daemon: removed at the end,
/// after asserting that no container's cgroup was left in it.
pub struct CgroupParent {
    pub name: String,
    /// Children the client itself makes and never removes (podman's
    /// `conmon`).
    pub allowed: Vec<&'static str>,
}

impl CgroupParent {
    fn dirs(&self) -> Vec<PathBuf> {
        if is_v2() {
            return vec![Path::new("/sys/fs/cgroup").join(&self.name)];
        }
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|h| h.path().join(&self.name))
            .collect()
    }

    /// Asserts no container cgroup is left, then removes the parent (and the
    /// allowed children) everywhere.
    pub fn check_and_remove(&self) -> Vec<String> {
        let mut left = Vec::new();
        for d in self.dirs().iter().filter(|d| d.is_dir()) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if !e.path().is_dir() {
                    continue;
                }
                if self.allowed.contains(&n.as_str()) {
                    let _ = std::fs::remove_dir(e.path());
                } else {
                    left.push(e.path().display().to_string());
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        left
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let _ = self.check_and_remove();
    }
}

/// What of the host's network a suite could have changed: interface names
/// and the netfilter rule lines. Taken before and after; must not grow.
pub fn host_net_snapshot() -> (BTreeSet<String>, BTreeSet<String>) {
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| stdout(&o))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    let mut rules = BTreeSet::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        if let Ok(o) = Command::new(tool).output() {
            rules.extend(
                stdout(&o)
                    .lines()
                    // Rules only: a table header (`*nat`) and `COMMIT`
                    // appear when another test's own namespace loads the
                    // table module (legacy iptables), with no rule here.
                    .filter(|l| !l.starts_with(['#', ':', '*']) && *l != "COMMIT")
                    .map(|l| format!("{tool}: {l}")),
            );
        }
    }
    (links, rules)
}

/// Asserts that the host gained no interface and no netfilter rule.
pub fn assert_host_net_unchanged(before: &(BTreeSet<String>, BTreeSet<String>)) {
    let after = host_net_snapshot();
    let new_links: Vec<_> = after.0.difference(&before.0).collect();
    let new_rules: Vec<_> = after.1.difference(&before.1).collect();
    // Other tests make their own (named) namespaces, never host links; a
    // link or rule that appeared here is ours.
    assert!(
        new_links.is_empty(),
        "host interfaces appeared: {new_links:?}"
    );
    assert!(
        new_rules.is_empty(),
        "host netfilter rules appeared: {new_rules:?}"
    );
}

/// Asserts no mount under `dir` in this (the host's) mount namespace.
pub fn assert_no_host_mounts(dir: &Path) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy();
    let left: Vec<_> = mi.lines().filter(|l| l.contains(d.as_ref())).collect();
    assert!(left.is_empty(), "mounts left under {d}: {left:?}");
}

/// stdout, asserting success.
pub fn ok_out(o: &Output, what: &str) -> String {
    assert_ok(o, what);
    stdout(o)
}

/// Asserts the exit code.
pub fn code(o: &Output, want: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(want),
        "{what}: stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// The busybox fixture as a tar in `dir` (what `podman import` and
/// `docker import` take).
pub fn fixture_tar(dir: &Path) -> PathBuf {
    let tar = dir.join("busybox.tar");
    // Other tests running meanwhile may add a mount destination to the
    // shared fixture (cuddy creates missing ones, as runc): GNU tar then
    // exits 1 ("file changed as we read it"); the archive is whole.
    let st = Command::new("tar")
        .arg("--warning=no-file-changed")
        .arg("-C")
        .arg(fixture_rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(
        matches!(st.code(), Some(0 | 1)),
        "tar the fixture rootfs: {st}"
    );
    tar
}

/// What a client's runs must not leave once its containers are gone: cuddy
/// state under `state` (the client's `--root` for cuddy), network
/// namespaces bound to files (podman: /run/netns, dockerd:
/// <exec-root>/netns), processes in the holder, cgroups under the parent.
pub fn assert_client_left_nothing(holder: &Holder, cg: &CgroupParent, state: &Path) {
    let left: Vec<_> = std::fs::read_dir(state)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                // cuddy's compiled-filter cache, not a container
                .filter(|n| n != ".seccomp-cache")
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "cuddy state left: {left:?}");
    let ns = holder.new_mounts_of_type("nsfs");
    assert!(ns.is_empty(), "netns bind mounts left: {ns:?}");
    let procs = holder.other_processes();
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let left = cg.check_and_remove();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

/// After the holder is gone: the host's links and netfilter rules as
/// before, no mount and no process left that mentions the suite's `dir`.
pub fn assert_host_untouched(net_before: &(BTreeSet<String>, BTreeSet<String>), dir: &Path) {
    assert_host_net_unchanged(net_before);
    assert_no_host_mounts(dir);
    let procs = processes_mentioning(&dir.to_string_lossy());
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

/// A client that runs a shell script in a throwaway container of the
/// fixture image (`podman run --rm`, `docker run --rm`) with extra options.
pub trait RunShell {
    fn sh(&self, extra: &[&str], script: &str) -> Output;
    /// The suite's temporary directory (volume sources live there).
    fn scratch(&self) -> &Path;
    /// The client's command line tool with the suite's globals.
    fn cli(&self, args: &[&str]) -> Output;
    /// The same as a shell command line (for `script`: a terminal).
    fn shell(&self, args: &[&str]) -> String;
    /// `inspect --format FMT NAME`, trimmed, asserting success.
    fn inspect(&self, name: &str, fmt: &str) -> String {
        ok_out(&self.cli(&["inspect", "--format", fmt, name]), "inspect")
            .trim()
            .to_string()
    }
}

/// The steps on a running container `d1` (`sleep 1000`) that both clients
/// share: runtime.md#operations through `exec` (exit code, output, the
/// seccomp filter), `exec -it` (the console socket), `ps`/`top`, and
/// `pause`/`unpause` (the freezer in the container's cgroup).
pub fn steps_exec_top_pause(c: &impl RunShell, s: &mut Steps) {
    s.step("exec", || {
        let o = c.cli(&[
            "exec",
            "d1",
            "sh",
            "-c",
            "echo from exec; grep '^Seccomp:' /proc/self/status; exit 4",
        ]);
        code(&o, 4, "exec");
        assert_eq!(stdout(&o), "from exec\nSeccomp:\t2\n");
    });
    s.step("exec-it", || {
        let o = with_tty(&c.shell(&["exec", "-it", "d1", "sh", "-c", "tty; exit 6"]));
        code(&o, 6, "exec -it");
        assert!(stdout(&o).contains("/dev/pts/"), "{}", stdout(&o));
    });
    s.step("ps-top", || {
        let ps = ok_out(&c.cli(&["ps", "--format", "{{.Names}} {{.Status}}"]), "ps");
        assert!(ps.contains("d1 Up"), "{ps}");
        let top = ok_out(&c.cli(&["top", "d1"]), "top");
        assert!(top.contains("sleep 1000"), "{top}");
    });
    s.step("pause-unpause", || {
        let pid = c.inspect("d1", "{{.State.Pid}}");
        let freeze = cgroup_file(&pid, "freezer", "freezer.state", "cgroup.freeze");
        assert_ok(&c.cli(&["pause", "d1"]), "pause");
        assert_eq!(c.inspect("d1", "{{.State.Status}}"), "paused");
        assert!(["FROZEN", "1"].contains(&read(&freeze).as_str()));
        assert_ok(&c.cli(&["unpause", "d1"]), "unpause");
        assert_eq!(c.inspect("d1", "{{.State.Status}}"), "running");
        assert!(["THAWED", "0"].contains(&read(&freeze).as_str()));
    });
}

/// The steps podman and Docker share with the same expectations:
/// config.md#user, config.md#linux-process (capabilities), config.md#mounts
/// (a read-only bind mount).
pub fn steps_user_caps_volume(c: &impl RunShell, s: &mut Steps) {
    s.step("user", || {
        let o = c.sh(
            &["--user", "1000:1000"],
            "id -u; id -g; grep '^Uid:' /proc/1/status",
        );
        assert_eq!(
            ok_out(&o, "--user"),
            "1000\n1000\nUid:\t1000\t1000\t1000\t1000\n"
        );
    });
    s.step("cap-drop-all", || {
        let o = c.sh(
            &["--cap-drop", "ALL"],
            "grep -E '^Cap(Prm|Eff|Bnd|Amb)' /proc/1/status",
        );
        let out = ok_out(&o, "--cap-drop ALL");
        assert_eq!(out.matches("0000000000000000").count(), 4, "{out}");
    });
    s.step("volume-ro", || {
        let vol = c.scratch().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("f"), "data\n").unwrap();
        let v = format!("{}:/data:ro", vol.display());
        let o = c.sh(
            &["-v", &v],
            "cat /data/f; echo x > /data/f 2>/dev/null || echo refused",
        );
        assert_eq!(ok_out(&o, "-v :ro"), "data\nrefused\n");
        assert_eq!(std::fs::read_to_string(vol.join("f")).unwrap(), "data\n");
    });
}

/// config-linux.md#memory: the limit is set and the OOM killer ends the
/// container's process (128 + SIGKILL); config-linux.md#pids: a limit and
/// none (`-1`: "max").
pub fn steps_resources(c: &impl RunShell, s: &mut Steps) {
    s.step("memory-oom", || {
        let o = c.sh(
            &["-m", "32m"],
            &format!("{MEM_LIMIT}; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"),
        );
        code(&o, 137, "run -m 32m (OOM)");
        assert_eq!(stdout(&o), "33554432\n");
    });
    s.step("pids-limit", || {
        assert_eq!(
            ok_out(&c.sh(&["--pids-limit", "50"], PIDS_MAX), "pids 50"),
            "50\n"
        );
        assert_eq!(
            ok_out(&c.sh(&["--pids-limit", "-1"], PIDS_MAX), "pids -1"),
            "max\n"
        );
    });
}
