//! The crash-injection harness: runs one cuddy verb under `strace` and
//! SIGKILLs it before its Nth system call, then checks that what `state` and
//! `list` say is true, that `delete --force` ends within a bound, and that
//! the host is exactly as before.
//!
//! strace counts injections per syscall name (and per tracee: "Accounting of
//! syscalls that are subject to injection is done per syscall and per
//! tracee", strace(1)), so step N of a verb is named by the syscall's name and
//! its occurrence among the calls of that name, read from a normal traced run
//! of the same verb: `-e inject=NAME:signal=SIGKILL:when=K`. The tracer
//! delivers the signal at syscall entry and the kernel skips a syscall with a
//! fatal signal pending: cuddy dies *before* that syscall.
//!
//! Only cuddy's own process is traced (no `-f`): cuddy re-executes itself
//! from a sealed view with `execveat` in the same process (still traced), and
//! the processes it clones (the middle process, the container's init, hooks)
//! are not. An orchestrator's timeout kills the runtime, not the container;
//! a container process that dies during set-up is the ordinary error path
//! that the other tiers test.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

/// The verbs the tier sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Start,
    Exec,
    Kill,
    Delete,
    Run,
}

/// A point to stop cuddy at: the `nth` call (1-based) of `name`.
#[derive(Debug, Clone)]
pub struct Point {
    pub index: usize,
    pub name: String,
    pub nth: usize,
    /// The traced line, for messages.
    pub line: String,
}

/// Is strace there (and does it know `inject=...:when=`)?
pub fn strace_missing() -> Option<String> {
    match Command::new("strace").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("strace is not installed (apt-get install strace)".into()),
    }
}

/// One verb's sweep: a test context, a container id, its bundle.
pub struct Sweep {
    pub ctx: Ctx,
    pub verb: Verb,
    pub id: String,
    pub bundle: PathBuf,
    pub busybox: (u64, u64),
    pub failures: Vec<String>,
    /// Global options before the verb (e.g. `--cgroup-manager disabled`).
    pub global: Vec<String>,
}

/// The container's process: it carries the id in its command line, so a
/// process left behind is found by it.
fn container_args(verb: Verb, id: &str) -> Vec<String> {
    let script = match verb {
        // `run` in the foreground waits for the process: it exits at once.
        Verb::Run => "exit 3",
        _ => "sleep 100000; exit 0",
    };
    vec!["sh".into(), "-c".into(), script.into(), id.into()]
}

impl Sweep {
    pub fn new(verb: Verb, name: &str) -> Sweep {
        let ctx = Ctx::new(name);
        let id = ctx.id("c");
        let args = container_args(verb, &id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let bundle = ctx.bundle("c", &ctx.config(&args));
        let bb = std::fs::metadata(fixture_rootfs().join("bin/busybox")).expect("busybox");
        Sweep {
            ctx,
            verb,
            id,
            bundle,
            busybox: (bb.dev(), bb.ino()),
            failures: Vec::new(),
            global: Vec::new(),
        }
    }

    fn bundle_str(&self) -> &str {
        self.bundle.to_str().expect("utf8")
    }

    /// Brings the container to where the verb starts from.
    pub fn prepare(&self) {
        let b = self.bundle_str();
        let id = self.id.as_str();
        let must = |args: &[&str]| assert_ok(&self.ctx.cuddy(args), &args.join(" "));
        match self.verb {
            Verb::Create | Verb::Run => {}
            Verb::Start => must(&["create", "--bundle", b, id]),
            Verb::Exec | Verb::Kill => {
                must(&["create", "--bundle", b, id]);
                must(&["start", id]);
            }
            Verb::Delete => {
                must(&["create", "--bundle", b, id]);
                must(&["start", id]);
                must(&["kill", id, "KILL"]);
                wait_until("the container to stop", || self.status() == "stopped");
            }
        }
    }

    /// The verb's command line (after `cuddy --root R`).
    pub fn verb_args(&self) -> Vec<String> {
        let id = self.id.clone();
        let b = self.bundle_str().to_string();
        let v: Vec<&str> = match self.verb {
            Verb::Create => vec!["create", "--bundle", &b, &id],
            Verb::Start => vec!["start", &id],
            // exec in the foreground waits for its process: it exits at once.
            Verb::Exec => vec!["exec", &id, "sh", "-c", "exit 0", &id],
            Verb::Kill => vec!["kill", &id, "KILL"],
            Verb::Delete => vec!["delete", &id],
            Verb::Run => vec!["run", "--bundle", &b, &id],
        };
        v.into_iter().map(String::from).collect()
    }

    fn strace(&self, opts: &[String], secs: u64) -> Output {
        let mut c = Command::new("strace");
        c.args(["-qq"]).args(opts).arg(CUDDY).args(&self.global);
        c.arg("--root").arg(&self.ctx.root);
        c.args(self.verb_args());
        output_with_timeout(c, secs)
    }

    /// Every system call of one normal run of the verb, in order.
    pub fn points(&mut self) -> Vec<Point> {
        self.prepare();
        let log = self.ctx.dir.path().join("trace");
        let out = self.strace(&["-o".into(), log.to_string_lossy().into()], 60);
        // `run` exits with the container's status (3).
        if !(self.verb == Verb::Run && out.status.code() == Some(3)) {
            assert_ok(&out, "traced run of the verb");
        }
        self.cleanup_after("the traced run");
        let text = std::fs::read_to_string(&log).expect("strace log");
        parse_points(&text)
    }

    /// Runs the verb with a SIGKILL before `p`; returns whether it died.
    pub fn kill_at(&self, p: &Point) -> bool {
        let inject = format!("inject={}:signal=SIGKILL:when={}", p.name, p.nth);
        let out = self.strace(&["-o".into(), "/dev/null".into(), "-e".into(), inject], 60);
        // strace ends the way its tracee ended: killed by the signal (or,
        // where it cannot, with status 128 + 9).
        out.status.signal_killed() || out.status.code() == Some(137)
    }

    pub fn status(&self) -> String {
        let out = self.ctx.cuddy(&["state", &self.id]);
        if !out.status.success() {
            return String::new();
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["status"].as_str().unwrap_or("").to_string()
    }

    fn fail(&mut self, at: &str, what: String) {
        eprintln!("crash tier: {:?} {at}: {what}", self.verb);
        self.failures.push(format!("{at}: {what}"));
    }

    /// `state` and `list` must say something true about the container. A
    /// process may change status between `state` and the look at /proc
    /// (a killed init dies a moment after the kill returned): an answer that
    /// disagrees with /proc is asked again once; a lie persists.
    pub fn check_truth(&mut self, at: &str) {
        if let Some(why) = self.truth() {
            std::thread::sleep(std::time::Duration::from_millis(200));
            if self.truth().is_some() {
                self.fail(at, why);
            }
        }
    }

    fn truth(&mut self) -> Option<String> {
        let out = self.ctx.cuddy(&["state", &self.id]);
        let list = self.ctx.cuddy(&["list", "--format", "json"]);
        if !list.status.success() {
            return Some(format!("list failed: {}", stderr(&list)));
        }
        let listed: Value = serde_json::from_slice(&list.stdout).unwrap_or(Value::Null);
        let in_list = listed
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"] == self.id.as_str())
            .cloned();
        if !out.status.success() {
            let e = stderr(&out);
            // Nobody creates it any more (the creator is dead): "is being
            // created" would be false.
            if !e.contains("does not exist") || e.contains("being created") {
                return Some(format!("state failed: {e}"));
            }
            return in_list.map(|c| format!("list shows {c} but state says: {e}"));
        }
        let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let status = st["status"].as_str().unwrap_or("").to_string();
        let pid = st["pid"].as_i64().unwrap_or(0) as i32;
        if let Some(why) = self.untrue(&status, pid) {
            return Some(format!("state says {status} (pid {pid}): {why}"));
        }
        match in_list.as_ref().and_then(|c| c["status"].as_str()) {
            Some(s) if s == status || (s == "stopped" && status == "running") => None,
            other => Some(format!("state says {status}, list says {other:?}")),
        }
    }

    /// Why `status` is not true of the init `pid` (None: it is).
    fn untrue(&self, status: &str, pid: i32) -> Option<String> {
        let alive = pid > 0 && proc_alive(pid);
        // runtime.md "State": created = the process has neither exited nor
        // executed the user-specified program; running = it has executed it.
        let execd = || exe_of(pid) == Some(self.busybox);
        match status {
            "stopped" if alive => Some("the init is alive".into()),
            "created" if !alive => Some("the init is not alive".into()),
            "created" if execd() => Some("the init runs the user program".into()),
            "running" | "paused" if !alive => Some("the init is not alive".into()),
            "running" | "paused" if !execd() => Some("the init has not exec'd".into()),
            // A create killed after the init exists: never finished, never
            // startable, its init waits until `delete` (runtime.md "State":
            // "creating").
            "creating" if !alive => Some("the init is not alive".into()),
            "creating" if execd() => Some("the init runs the user program".into()),
            "stopped" | "creating" | "created" | "running" | "paused" => None,
            s => Some(format!("unexpected status {s:?}")),
        }
    }

    /// `delete --force` ends within a bound and leaves the host as before.
    pub fn cleanup_after(&mut self, at: &str) {
        let out = self.ctx.cuddy(&["delete", "--force", &self.id]);
        if !out.status.success() {
            let e = stderr(&out);
            self.fail(at, format!("delete --force failed ({:?}): {e}", out.status));
            return;
        }
        self.check_clean(at);
    }

    pub fn check_clean(&mut self, at: &str) {
        let mut what = Vec::new();
        if self.ctx.root.join(&self.id).exists() {
            what.push("the state directory".to_string());
        }
        let leftovers = self.leftover_entries();
        if !leftovers.is_empty() {
            what.push(format!("state root entries {leftovers:?}"));
        }
        what.extend(cgroup_leftovers(&self.id));
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let d = self.ctx.dir.path().to_string_lossy().to_string();
        if mi.contains(&d) {
            what.push(format!("a mount under {d}"));
        }
        // The init of a killed create ends by itself once its parent is gone
        // (EOF on the sync channel): allow it a moment.
        let mut procs = processes_with(&self.id);
        for _ in 0..100 {
            if procs.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            procs = processes_with(&self.id);
        }
        if !procs.is_empty() {
            what.push(format!("processes {procs:?}"));
            for p in procs {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !what.is_empty() {
            self.fail(at, format!("left behind: {}", what.join(", ")));
        }
    }

    fn leftover_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.ctx.root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses strace's output (one process, no -f) into points.
pub fn parse_points(text: &str) -> Vec<Point> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, _)) = line.split_once('(') else {
            continue;
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        let n = seen.entry(name.to_string()).or_insert(0);
        *n += 1;
        out.push(Point {
            index: out.len() + 1,
            name: name.to_string(),
            nth: *n,
            line: line.to_string(),
        });
    }
    out
}

/// A process's command line, NULs as spaces.
pub fn cmdline(pid: i32) -> String {
    let b = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&b).replace('\0', " ")
}

fn proc_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|c| c != 'Z' && c != 'X'),
        Err(_) => false,
    }
}

fn exe_of(pid: i32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Pids (other than ours) whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || !proc_alive(pid) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Cgroup directories named after the container in any hierarchy (every v1
/// hierarchy and the unified one), under any parent cuddy uses.
pub fn cgroup_leftovers(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |p: &Path| {
        if p.exists() {
            out.push(format!("cgroup {}", p.display()));
        }
    };
    check(&Path::new("/sys/fs/cgroup/cuddy").join(id));
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        check(&h.path().join("cuddy").join(id));
    }
    out
}

/// Every how many calls a kill point is taken. A full sweep (1) kills
/// cuddy ~3000 times (10 min on a loaded 2-core machine, see
/// docs/reliability.md); CI takes every 3rd call on the host and every 32nd
/// in the QEMU guest (TCG), with an offset that changes every day so that
/// successive runs cover every call. CUDDY_CRASH_STRIDE and
/// CUDDY_CRASH_OFFSET override them (CUDDY_CRASH_STRIDE=1: every call).
pub fn stride() -> usize {
    if let Some(n) = env_usize("CUDDY_CRASH_STRIDE").filter(|n| *n > 0) {
        return n;
    }
    if std::env::var("CUDDY_VM").as_deref() == Ok("1") {
        32
    } else {
        3
    }
}

pub fn offset() -> usize {
    env_usize("CUDDY_CRASH_OFFSET").unwrap_or_else(|| {
        let days = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        days as usize % stride().max(PREFIX_STRIDE)
    })
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
}

/// Before cuddy first touches its state root or a cgroup filesystem (the
/// dynamic loader, the runtime's start-up, the sealed re-exec, parsing),
/// nothing of the container exists yet: that prefix is sampled every
/// `PREFIX_STRIDE`th call; from there on every call is a kill point.
const PREFIX_STRIDE: usize = 8;

impl Sweep {
    fn effects_from(&self, points: &[Point]) -> usize {
        let root = self.ctx.root.to_string_lossy().to_string();
        points
            .iter()
            .filter(|p| !p.name.starts_with("execve"))
            .find(|p| p.line.contains(&root) || p.line.contains("/sys/fs/cgroup"))
            .map_or(1, |p| p.index)
    }
}

/// The whole sweep of one verb: every `stride()`th point, each checked; panics with every failure found.
pub fn sweep(verb: Verb, name: &str) {
    if let Some(why) = strace_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut s = Sweep::new(verb, name);
    let points = s.points();
    let (step, from, off) = (stride(), s.effects_from(&points), offset());
    let t0 = std::time::Instant::now();
    let mut killed = 0;
    let chosen = points.iter().filter(|p| {
        let i = p.index + off;
        i % step.max(PREFIX_STRIDE) == 0 || (p.index >= from && i % step == 0)
    });
    for p in chosen {
        s.prepare();
        let line: String = p.line.chars().take(120).collect();
        let at = format!(
            "step {}/{} ({} #{}: {line})",
            p.index,
            points.len(),
            p.name,
            p.nth
        );
        if s.kill_at(p) {
            killed += 1;
        }
        s.after_kill(&at);
        s.check_truth(&at);
        s.cleanup_after(&at);
        if s.failures.len() > 20 {
            break;
        }
    }
    eprintln!(
        "crash tier: {verb:?}: {} syscalls (effects from #{from}), every {step}th (offset {off}): {killed} kills in {:.1}s, {} failures",
        points.len(),
        t0.elapsed().as_secs_f64(),
        s.failures.len()
    );
    assert!(
        s.failures.is_empty(),
        "{verb:?}: {} failures:\n{}",
        s.failures.len(),
        s.failures.join("\n")
    );
}

impl Sweep {
    /// Verb-specific checks after a kill: a second `start` ends (bounded)
    /// and a plain `delete` never removes a running container.
    pub fn after_kill(&mut self, at: &str) {
        if self.verb != Verb::Start {
            return;
        }
        self.check_truth(at);
        let mut c = self.ctx.cmd();
        c.args(["start", &self.id]);
        let again = output_with_timeout(c, 15);
        if again.status.signal_killed() {
            return self.fail(at, "a second start hung".into());
        }
        let before = self.status();
        let del = self.ctx.cuddy(&["delete", &self.id]);
        if (before == "running" || before == "paused") && del.status.success() {
            self.fail(at, format!("a plain delete removed a {before} container"));
        }
    }
}

trait Killed {
    fn signal_killed(&self) -> bool;
}

impl Killed for std::process::ExitStatus {
    fn signal_killed(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal() == Some(9)
    }
}
