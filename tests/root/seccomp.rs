//! seccomp (config-linux.md "Seccomp"): real filters on real containers,
//! observed with the probe's `--syscall NR ARGS` mode (x86-64 numbers) and
//! busybox.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

mod agent;
use agent::{agent, agent_states};

const GETPPID: &str = "110";
const GETPGID: &str = "121";
const GETPRIORITY: &str = "140";
const SCHED_GETSCHEDULER: &str = "145";
const SCHED_GET_PRIORITY_MAX: &str = "146";
const SCHED_GETPARAM: &str = "143";
const CREATE_MODULE: &str = "174"; // not in podman's profile, below its highest
const SYSFS: &str = "139";
const SIGSYS: i32 = 31;

fn podman_profile() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seccomp-podman.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn with_seccomp(ctx: &Ctx, args: &[&str], seccomp: Value) -> Value {
    let mut c = ctx.config(args);
    c["linux"]["seccomp"] = seccomp;
    c
}

/// The probe's `--syscall` result: (ret, errno).
fn syscall(ctx: &Ctx, name: &str, seccomp: &Value, args: &[&str]) -> (i64, i64) {
    let mut a = vec!["--syscall"];
    a.extend_from_slice(args);
    let v = ctx.probe(name, with_seccomp(ctx, &[], seccomp.clone()), &a);
    (v["ret"].as_i64().unwrap(), v["errno"].as_i64().unwrap())
}

fn allow_but(rules: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
}

#[test]
fn errno_with_errno_ret_and_unknown_names_skipped() {
    require_root!();
    let ctx = Ctx::new("scerr");
    // config-linux.md "Seccomp": errnoRet defaults to EPERM; an explicit one
    // is returned as is. A name libseccomp does not know is skipped (runc).
    let sc = allow_but(json!([
        {"names": ["no_such_syscall_cuddy", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}
    ]));
    let c = with_seccomp(
        &ctx,
        &[
            "sh",
            "-c",
            "mkdir /tmp/a; rmdir /tmp; grep Seccomp: /proc/self/status",
        ],
        sc,
    );
    let out = ctx.run(&ctx.id("a"), &c);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(e.contains("Operation not permitted"), "mkdir: {e}");
    assert!(
        e.contains("Disk quota exceeded"),
        "rmdir errnoRet 122 (EDQUOT): {e}"
    );
    assert!(o.contains("Seccomp:\t2"), "filter mode: {o}");
}

#[test]
fn default_errno_ret_and_enosys_stub() {
    require_root!();
    let ctx = Ctx::new("scdef");
    // podman's real default profile (tests/fixtures), with EPERM as default.
    let mut sc = podman_profile();
    sc["defaultErrnoRet"] = json!(1);
    // Below the highest syscall the profile names: the default errno.
    assert_eq!(syscall(&ctx, "low", &sc, &[CREATE_MODULE]).1, 1);
    // Above it (a syscall newer than the profile): ENOSYS from the stub, so
    // libc falls back as for an old kernel (runc's patchbpf).
    assert_eq!(syscall(&ctx, "high", &sc, &["1000"]).1, libc::ENOSYS as i64);
    assert_eq!(syscall(&ctx, "high2", &sc, &["449"]).1, libc::ENOSYS as i64);
    // defaultErrnoRet is what the default action returns.
    sc["defaultErrnoRet"] = json!(122);
    assert_eq!(syscall(&ctx, "edquot", &sc, &[CREATE_MODULE]).1, 122);
}

#[test]
fn kill_process_trap_and_log() {
    require_root!();
    let ctx = Ctx::new("sckill");
    for (action, name) in [
        ("SCMP_ACT_KILL_PROCESS", "kp"),
        ("SCMP_ACT_TRAP", "trap"),
        ("SCMP_ACT_KILL", "kill"),
    ] {
        let c = with_seccomp(
            &ctx,
            &["/bin/probe", "--syscall", GETPPID],
            allow_but(json!([{"names": ["getppid"], "action": action}])),
        );
        let out = ctx.run(&ctx.id(name), &c);
        // Killed by SIGSYS (trap: SIGSYS with no handler); `run` exits 128+N.
        assert_eq!(
            out.status.code(),
            Some(128 + SIGSYS),
            "{action}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{action}: the syscall returned");
    }
    // SCMP_ACT_LOG: allowed (and logged).
    let (ret, errno) = syscall(
        &ctx,
        "log",
        &allow_but(json!([{"names": ["getppid"], "action": "SCMP_ACT_LOG"}])),
        &[GETPPID],
    );
    assert_eq!(
        (ret, errno),
        (0, 0),
        "pid 1's parent is outside its pid namespace"
    );
}

#[test]
fn argument_comparisons() {
    require_root!();
    let ctx = Ctx::new("scargs");
    let arg = |i: u32, op: &str, v: u64| json!({"index": i, "value": v, "op": op});
    let sc = allow_but(json!([
        // Two comparisons of one argument: either matches (OR), as runc.
        {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33,
         "args": [arg(0, "SCMP_CMP_EQ", 7), arg(0, "SCMP_CMP_EQ", 8)]},
        // MASKED_EQ: (arg & value) == valueTwo.
        {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 34,
         "args": [{"index": 0, "value": 0xff00, "valueTwo": 0x1200, "op": "SCMP_CMP_MASKED_EQ"}]},
        // Different arguments: all must match (AND).
        {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 35,
         "args": [arg(0, "SCMP_CMP_EQ", 0), arg(1, "SCMP_CMP_GT", 5000)]},
        {"names": ["sched_getscheduler"], "action": "SCMP_ACT_ERRNO", "errnoRet": 36,
         "args": [arg(0, "SCMP_CMP_LT", 3)]},
        {"names": ["sched_getparam"], "action": "SCMP_ACT_ERRNO", "errnoRet": 37,
         "args": [arg(0, "SCMP_CMP_LE", 4), arg(1, "SCMP_CMP_GE", 0)]},
        {"names": ["sched_get_priority_max"], "action": "SCMP_ACT_ERRNO", "errnoRet": 39,
         "args": [arg(0, "SCMP_CMP_NE", 0)]}
    ]));
    let cases: &[(&str, &[&str], i64, bool)] = &[
        ("or7", &[GETPGID, "7"], 33, true),
        ("or8", &[GETPGID, "8"], 33, true),
        ("or9", &[GETPGID, "9"], 33, false),
        ("mask", &[GETPGID, "0x1234"], 34, true),
        ("mask2", &[GETPGID, "0x1334"], 34, false),
        ("and", &[GETPRIORITY, "0", "5001"], 35, true),
        ("and2", &[GETPRIORITY, "1", "5001"], 35, false),
        ("and3", &[GETPRIORITY, "0", "5000"], 35, false),
        ("lt", &[SCHED_GETSCHEDULER, "2"], 36, true),
        ("lt2", &[SCHED_GETSCHEDULER, "3"], 36, false),
        ("le", &[SCHED_GETPARAM, "4", "0"], 37, true),
        ("le2", &[SCHED_GETPARAM, "5", "0"], 37, false),
        ("ne", &[SCHED_GET_PRIORITY_MAX, "1"], 39, true),
        ("ne2", &[SCHED_GET_PRIORITY_MAX, "0"], 39, false),
    ];
    for (name, args, errno, hit) in cases {
        let (_, e) = syscall(&ctx, name, &sc, args);
        assert_eq!(e == *errno, *hit, "{name} {args:?}: errno {e}");
    }
}

#[test]
fn podman_default_profile_runs_busybox_and_exec_is_filtered() {
    require_root!();
    let ctx = Ctx::new("scpod");
    let id = ctx.id("a");
    let sc = podman_profile();
    let c = with_seccomp(
        &ctx,
        &["sh", "-c", "echo hello; ls /bin >/dev/null && sleep 300"],
        sc,
    );
    let b = ctx.bundle("a", &c);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    // `exec` processes get the container's filter too: sysfs(3) (count of
    // filesystem types) is in the profile's EPERM group.
    let out = ctx.cuddy(&["exec", &id, "sh", "-c", "grep Seccomp: /proc/self/status"]);
    assert!(stdout(&out).contains("Seccomp:\t2"), "{}", stdout(&out));
    let out = ctx.cuddy(&["exec", &id, "/bin/probe", "--syscall", SYSFS, "3"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ret"].as_i64(), v["errno"].as_i64()),
        (Some(-1), Some(1)),
        "{v}"
    );
    // The probe under the profile reports fine (many syscalls, all allowed).
    let v = ctx.probe(
        "probe",
        with_seccomp(&ctx, &[], podman_profile()),
        &["/tmp"],
    );
    assert!(v["pid"].as_i64().is_some());
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

fn cache_entries(ctx: &Ctx) -> Vec<std::path::PathBuf> {
    let d = ctx.root.join(".seccomp-cache");
    let mut v: Vec<_> = std::fs::read_dir(d)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn cache_hit_and_corrupt_entries() {
    require_root!();
    let ctx = Ctx::new("sccache");
    let sc = allow_but(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]));
    let c = with_seccomp(&ctx, &["mkdir", "/tmp/x"], sc.clone());
    let denied = |name: &str| {
        let out = ctx.run(&ctx.id(name), &c);
        assert!(
            stderr(&out).contains("Operation not permitted"),
            "{name}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
    };
    denied("cold");
    let entries = cache_entries(&ctx);
    assert_eq!(entries.len(), 1, "one entry per profile: {entries:?}");
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    let good = std::fs::read(&entries[0]).unwrap();
    denied("warm");
    assert_eq!(
        std::fs::read(&entries[0]).unwrap(),
        good,
        "a hit does not rewrite"
    );
    // Corrupt entries: garbage, truncated, one flipped bit in the program
    // (an allow-all program with a bad checksum): never trusted, rewritten.
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 36] ^= 0x01; // in the last instruction's k: still well-formed
    for (i, bad) in [
        b"garbage".to_vec(),
        good[..good.len() / 2].to_vec(),
        flipped,
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&entries[0], &bad).unwrap();
        denied(&format!("corrupt{i}"));
        assert_eq!(
            std::fs::read(&entries[0]).unwrap(),
            good,
            "entry {i} rewritten"
        );
    }
    // Another errnoRet is another profile: another entry (crun's pitfall).
    let mut sc2 = sc.clone();
    sc2["syscalls"][0]["errnoRet"] = json!(122);
    let out = ctx.run(
        &ctx.id("other"),
        &with_seccomp(&ctx, &["mkdir", "/tmp/x"], sc2),
    );
    assert!(
        stderr(&out).contains("Disk quota exceeded"),
        "{}",
        stderr(&out)
    );
    assert_eq!(cache_entries(&ctx).len(), 2);
}

#[test]
fn cache_fill_is_safe_under_concurrency() {
    require_root!();
    let ctx = Ctx::new("sccon");
    // Eight containers with one profile start at once on an empty cache:
    // each writes a unique temporary file and renames it into place.
    let sc = allow_but(
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]),
    );
    let c = with_seccomp(&ctx, &["mkdir", "/tmp/x"], sc);
    let ids: Vec<String> = (0..8).map(|i| ctx.id(&format!("c{i}"))).collect();
    let bundles: Vec<_> = ids.iter().map(|id| ctx.bundle(id, &c)).collect();
    let children: Vec<_> = ids
        .iter()
        .zip(&bundles)
        .map(|(id, b)| {
            let mut cmd = ctx.cmd();
            cmd.args(["run", "--bundle", b.to_str().unwrap(), id]);
            std::thread::spawn(move || output_with_timeout(cmd, 60))
        })
        .collect();
    for ch in children {
        let out = ch.join().unwrap();
        assert!(
            stderr(&out).contains("Disk quota exceeded"),
            "{}",
            stderr(&out)
        );
    }
    let entries = cache_entries(&ctx);
    assert_eq!(
        entries.len(),
        1,
        "one entry, no temporary files: {entries:?}"
    );
}

fn notify_profile(sock: &Path, names: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "cuddy-test-metadata",
        "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
    })
}

#[test]
fn notify_listener_answers_syscalls() {
    require_root!();
    let ctx = Ctx::new("scnotify");
    for nnp in [true, false] {
        let sock = ctx.dir.path().join(format!("agent-{nnp}.sock"));
        let th = agent(&sock, 1);
        // Without noNewPrivileges the filter loads before the capability
        // drop, so cuddy's own capset and setgroups are notified too: the
        // agent must already have the listener (no deadlock).
        let names = [
            "getppid",
            "capset",
            "setgroups",
            "write",
            "sendto",
            "recvfrom",
        ];
        let mut c = with_seccomp(
            &ctx,
            &["/bin/probe", "--syscall", GETPPID],
            notify_profile(&sock, &names),
        );
        c["process"]["noNewPrivileges"] = json!(nnp);
        let id = ctx.id(&format!("n{nnp}"));
        let out = ctx.run(&id, &c);
        assert_ok(&out, "run with a seccomp agent");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ret"], 4242, "the agent's answer");
        // config-linux.md "The Container Process State".
        let st = agent_states(th).remove(0);
        assert_eq!(st["fds"], json!(["seccompFd"]));
        assert_eq!(st["metadata"], "cuddy-test-metadata");
        assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
        assert!(st["pid"].as_i64().unwrap() > 1);
        assert_eq!(st["state"]["id"], id.as_str());
        assert_eq!(st["state"]["status"], "creating");
        assert_eq!(st["state"]["pid"], st["pid"]);
    }
}

#[test]
fn notify_listener_for_exec_processes() {
    require_root!();
    let ctx = Ctx::new("scnotex");
    let sock = ctx.dir.path().join("agent.sock");
    // One connection for the init, one for the exec'd process: each has its
    // own filter and listener. execve closes the child's listener, so the
    // hand-off must be done before it.
    let th = agent(&sock, 2);
    let id = ctx.id("a");
    let c = with_seccomp(&ctx, &["sleep", "300"], notify_profile(&sock, &["getppid"]));
    let b = ctx.bundle("a", &c);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let out = ctx.cuddy(&["exec", &id, "/bin/probe", "--syscall", GETPPID]);
    assert_ok(&out, "exec");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ret"], 4242, "the agent answered the exec'd process");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    let states = agent_states(th);
    assert_eq!(states[1]["state"]["status"], "running");
    assert_ne!(states[1]["pid"], states[0]["pid"]);
    ctx.assert_no_leftovers(&id);
}

#[test]
fn bad_seccomp_configs_are_refused() {
    require_root!();
    let ctx = Ctx::new("scbad");
    let cases = [
        (
            "act",
            json!({"defaultAction": "SCMP_ACT_FOO"}),
            "SCMP_ACT_FOO",
        ),
        (
            "arch",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_FOO"]}),
            "SCMP_ARCH_FOO",
        ),
        (
            "s390x",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_S390X"]}),
            "linux.seccomp.architectures",
        ),
        (
            "flag",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]}),
            "SECCOMP_FILTER_FLAG_FOO",
        ),
        (
            "op",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}),
            "SCMP_CMP_FOO",
        ),
        (
            "ndef",
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/x.sock"}),
            "linux.seccomp.defaultAction",
        ),
        (
            "nopath",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath",
        ),
        (
            "errno",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (
            "index",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
    ];
    for (name, sc, needle) in cases {
        let id = ctx.id(name);
        let b = ctx.bundle(name, &with_seccomp(&ctx, &["true"], sc));
        let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]);
        assert_fails_with(&out, needle);
        ctx.assert_no_leftovers(&id);
    }
    // An agent that is not there: the runtime MUST generate an error.
    let id = ctx.id("noagent");
    let sc = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": ctx.dir.path().join("none.sock"),
                    "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]});
    let b = ctx.bundle("noagent", &with_seccomp(&ctx, &["true"], sc));
    let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert_fails_with(&out, "listenerPath");
    ctx.assert_no_leftovers(&id);
}
