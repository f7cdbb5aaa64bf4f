//! Issue 8, process items: capability names cuddy cannot apply (warned and
//! skipped), environment overrides (exec --env, duplicates in process.env),
//! the environment of hooks, security labels on exec --process, and crun's
//! command line (--cgroup-manager, --config, delete --regex). Each test feeds
//! the JSON a client sends and observes the effect inside the container
//! (the probe, busybox `env`) or on the host (/proc, cgroup files).

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

/// Bit numbers of DOCKER_CAPS (linux/capability.h).
const DOCKER_BITS: [u32; 14] = [0, 1, 4, 3, 27, 13, 6, 7, 31, 8, 10, 18, 5, 29];
const CAP_NET_ADMIN: u32 = 12;

fn mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | (1u64 << b)))
}

fn probe_of(out: &std::process::Output) -> Value {
    assert_ok(out, "probe");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {}", stdout(out)))
}

fn run_detached(ctx: &Ctx, id: &str, config: &Value) -> i64 {
    let b = ctx.bundle(id, config);
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), id]),
        "run -d",
    );
    ctx.state(id)["pid"].as_i64().expect("pid")
}

/// The lines of busybox `env` output.
fn env_lines(out: &std::process::Output) -> Vec<String> {
    assert_ok(out, "env");
    stdout(out).lines().map(str::to_string).collect()
}

/// Every entry of `env` whose name is `name`.
fn entries<'a>(env: &'a [String], name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}=");
    env.iter()
        .filter(|e| e.starts_with(&prefix))
        .map(String::as_str)
        .collect()
}

/// config.md#linux-process: "If the runtime cannot map a capability name to
/// a capability, it MUST log a warning and SHOULD NOT fail." Docker 20.10's
/// capability sets with a name this runtime does not know (a newer client's
/// capability) in every set: the container runs with exactly the known
/// ones, and the warning reaches --log in JSON and stderr.
#[test]
fn unknown_capability_names_are_warned_and_skipped() {
    require_root!();
    let ctx = Ctx::new("capunk");
    let mut c = ctx.config(&["/bin/probe"]);
    let mut set: Vec<&str> = DOCKER_CAPS.to_vec();
    set.push("CAP_FUTURE_THING");
    for s in ["bounding", "effective", "inheritable", "permitted"] {
        c["process"]["capabilities"][s] = json!(set);
    }
    c["process"]["capabilities"]["ambient"] = json!(["CAP_FUTURE_THING"]);
    let id = ctx.id("cfg");
    let b = ctx.bundle("cfg", &c);
    let log = ctx.dir.path().join("log.json");
    let out = ctx.cuddy(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    let p = probe_of(&out);
    for s in ["bounding", "effective", "permitted", "inheritable"] {
        assert_eq!(p["caps"][s], mask(&DOCKER_BITS), "{s}: {}", p["caps"]);
    }
    assert_eq!(p["caps"]["ambient"], mask(&[]));
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "warning")
        .collect();
    for s in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        let want = format!("process.capabilities.{s}: CAP_FUTURE_THING: unknown capability");
        assert!(
            warnings
                .iter()
                .any(|w| w["msg"].as_str().unwrap_or("").contains(&want)),
            "no JSON warning {want:?} in the log: {text}"
        );
    }
    assert!(
        stderr(&out).contains("CAP_FUTURE_THING"),
        "no warning on stderr: {}",
        stderr(&out)
    );
    ctx.assert_no_leftovers(&id);
}

/// Same rule for `exec --cap` (runc's flag, `CAP_` optional) and for the
/// capabilities of `exec --process` (containerd's process JSON).
#[test]
fn exec_cap_and_process_with_unknown_capability() {
    require_root!();
    let ctx = Ctx::new("capexec");
    let id = ctx.id("x");
    run_detached(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    let out = ctx.cuddy(&[
        "exec",
        "--cap",
        "CAP_FUTURE_THING",
        "--cap",
        "net_admin",
        &id,
        "/bin/probe",
    ]);
    let p = probe_of(&out);
    let eff = u64::from_str_radix(p["caps"]["effective"].as_str().unwrap(), 16).unwrap();
    assert_ne!(
        eff & (1 << CAP_NET_ADMIN),
        0,
        "NET_ADMIN added: {}",
        p["caps"]
    );
    assert_fails_with_ok_stderr(&out, "CAP_FUTURE_THING");
    assert_fails_with_ok_stderr(&out, "unknown capability, ignored");

    // containerd 1.6's exec process (fields as it sends them).
    let proc_json = json!({
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/probe"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_FUTURE_THING", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_FUTURE_THING", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_FUTURE_THING", "CAP_KILL"]
        },
        "noNewPrivileges": true
    });
    let f = ctx.dir.path().join("process.json");
    std::fs::write(&f, proc_json.to_string()).unwrap();
    let out = ctx.cuddy(&["exec", "--process", f.to_str().unwrap(), &id]);
    let p = probe_of(&out);
    assert_eq!(p["caps"]["effective"], mask(&[0, 5]), "{}", p["caps"]);
    assert_eq!(p["caps"]["bounding"], mask(&[0, 5]), "{}", p["caps"]);
    assert_fails_with_ok_stderr(&out, "capabilities.effective: CAP_FUTURE_THING");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// The command succeeded and its stderr says `needle`.
fn assert_fails_with_ok_stderr(out: &std::process::Output, needle: &str) {
    assert!(out.status.success(), "failed: {}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "stderr lacks {needle:?}: {}",
        stderr(out)
    );
}

/// config.md#posix-process env (environ semantics: one value per name) and
/// runc/crun `exec --env`: a later duplicate in process.env overrides an
/// earlier one, and `-e`/`--env` (mixed spellings) override process.env,
/// HOME and PATH included. podman 4.3's env shape, plus a duplicate.
#[test]
fn env_overrides_leave_one_entry_per_name() {
    require_root!();
    let ctx = Ctx::new("envdup");
    let mut c = ctx.config(&["/bin/env"]);
    c["process"]["env"] = json!([
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=xterm",
        "container=podman",
        "A=first",
        "HOME=/root",
        "HOSTNAME=envdup",
        "A=second"
    ]);
    let id = ctx.id("run");
    let env = env_lines(&ctx.run(&id, &c));
    assert_eq!(entries(&env, "A"), ["A=second"], "{env:?}");
    assert_eq!(entries(&env, "HOME"), ["HOME=/root"], "{env:?}");
    ctx.assert_no_leftovers(&id);

    let id = ctx.id("exec");
    c["process"]["args"] = json!(["/bin/sleep", "1000"]);
    run_detached(&ctx, &id, &c);
    let out = ctx.cuddy(&[
        "exec",
        "-e",
        "HOME=/home/x",
        "--env",
        "PATH=/bin",
        "-e",
        "A=third",
        "--env",
        "NEW=1",
        "-e",
        "NEW=2",
        &id,
        "/bin/env",
    ]);
    let env = env_lines(&out);
    for (name, want) in [
        ("HOME", "HOME=/home/x"),
        ("PATH", "PATH=/bin"),
        ("A", "A=third"),
        ("NEW", "NEW=2"),
        ("TERM", "TERM=xterm"),
    ] {
        assert_eq!(entries(&env, name), [want], "{env:?}");
    }

    // exec --process: a duplicate in its env, the later one wins.
    let f = ctx.dir.path().join("p.json");
    let pj = json!({"user": {"uid": 0, "gid": 0}, "args": ["/bin/env"], "cwd": "/",
        "env": ["PATH=/bin", "B=1", "B=2", "PATH=/sbin:/bin"]});
    std::fs::write(&f, pj.to_string()).unwrap();
    let env = env_lines(&ctx.cuddy(&["exec", "--process", f.to_str().unwrap(), &id]));
    assert_eq!(entries(&env, "B"), ["B=2"], "{env:?}");
    assert_eq!(entries(&env, "PATH"), ["PATH=/sbin:/bin"], "{env:?}");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// A hook that writes its environment to `dir/<name>.env`.
fn env_hook(name: &str, dir: &Path, env: Option<&[&str]>) -> Value {
    let script = format!("/usr/bin/env > {}/{name}.env", dir.display());
    let mut h = json!({"path": "/bin/sh", "args": ["sh", "-c", script]});
    if let Some(e) = env {
        h["env"] = json!(e);
    }
    h
}

/// config.md#posix-platform-hooks: a hook without `env` gets the runtime's
/// own environment (runc: Go's exec.Cmd with a nil Env; crun likewise); a
/// hook with `env` gets exactly that list. Every kind that runs in the
/// runtime namespace: prestart, createRuntime, poststart, poststop.
#[test]
fn hooks_without_env_inherit_the_runtimes() {
    require_root!();
    let ctx = Ctx::new("hookenv");
    let rec = ctx.dir.path().join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    let mut hooks = serde_json::Map::new();
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        hooks.insert(
            kind.to_string(),
            json!([
                env_hook(&format!("{kind}-inherit"), &rec, None),
                env_hook(&format!("{kind}-own"), &rec, Some(&["ONLY=1", "PATH=/bin"])),
            ]),
        );
    }
    c["hooks"] = Value::Object(hooks);
    let id = ctx.id("h");
    let b = ctx.bundle("h", &c);
    let with_mark = |args: &[&str]| {
        let mut cmd = ctx.cmd();
        cmd.env("CUDDY_TEST_MARK", "from-runtime").args(args);
        output_with_timeout(cmd, 60)
    };
    assert_ok(
        &with_mark(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&with_mark(&["start", &id]), "start");
    assert_ok(&with_mark(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        let inherit = std::fs::read_to_string(rec.join(format!("{kind}-inherit.env")))
            .unwrap_or_else(|e| panic!("{kind} hook without env did not run: {e}"));
        assert!(
            inherit.contains("CUDDY_TEST_MARK=from-runtime"),
            "{kind} without env lacks the runtime's environment: {inherit}"
        );
        let own = std::fs::read_to_string(rec.join(format!("{kind}-own.env"))).unwrap();
        let mut lines: Vec<&str> = own.lines().filter(|l| !l.starts_with("PWD=")).collect();
        lines.sort();
        assert_eq!(lines, ["ONLY=1", "PATH=/bin"], "{kind} with env: {own}");
    }
}

/// config.md#process apparmorProfile / selinuxLabel fail closed also when
/// they come in containerd's `exec --process` JSON (the flags and config.json
/// are covered by process::security_labels_fail_closed).
#[test]
fn exec_process_labels_fail_closed() {
    require_root!();
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let ctx = Ctx::new("lblproc");
    let id = ctx.id("x");
    run_detached(&ctx, &id, &ctx.config(&["/bin/sleep", "1000"]));
    for (field, value, enabled, module) in [
        (
            "apparmorProfile",
            "cuddy-test-profile",
            apparmor,
            "AppArmor",
        ),
        (
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            selinux,
            "SELinux",
        ),
    ] {
        if enabled {
            continue;
        }
        let mut pj = json!({"user": {"uid": 0, "gid": 0}, "args": ["/bin/touch", "/tmp/ran"],
            "cwd": "/", "env": ["PATH=/bin"]});
        pj[field] = json!(value);
        let f = ctx.dir.path().join(format!("{field}.json"));
        std::fs::write(&f, pj.to_string()).unwrap();
        let out = ctx.cuddy(&["exec", "--process", f.to_str().unwrap(), &id]);
        assert_fails_with(&out, &format!("{module} is not enabled on this host"));
        let ran = ctx.cuddy(&["exec", &id, "/bin/ls", "/tmp/ran"]);
        assert!(!ran.status.success(), "the unconfined process ran");
    }
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// The caller's cgroup lines, as /proc/<pid>/cgroup prints them.
fn cgroup_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

/// crun's `--cgroup-manager disabled`: no cgroup at all; the container's
/// init stays in the caller's cgroup, linux.resources is ignored with a
/// warning (crun ignores it silently), and delete still removes everything.
/// `cgroupfs` is the default; `systemd` without systemd fails cleanly.
#[test]
fn cgroup_manager_disabled_keeps_the_callers_cgroup() {
    require_root!();
    let ctx = Ctx::new("cgmgr");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    // A resources fragment as Docker 20.10 sends it for --pids-limit 100
    // (config-linux.md#control-groups).
    c["linux"]["resources"] = json!({"pids": {"limit": 100}});
    let id = ctx.id("off");
    let b = ctx.bundle("off", &c);
    let out = ctx.cuddy(&[
        "--cgroup-manager",
        "disabled",
        "run",
        "-d",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out, "run -d --cgroup-manager disabled");
    assert!(
        stderr(&out).contains("linux.resources is ignored"),
        "{}",
        stderr(&out)
    );
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        cgroup_of(&pid.to_string()),
        cgroup_of("self"),
        "the init left the caller's cgroup"
    );
    assert_no_cgroup(&id);
    // exec joins no cgroup either.
    assert_ok(&ctx.cuddy(&["exec", &id, "/bin/true"]), "exec");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);

    let id = ctx.id("fs");
    let b = ctx.bundle("fs", &c);
    let out = ctx.cuddy(&[
        "--cgroup-manager",
        "cgroupfs",
        "run",
        "-d",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out, "run --cgroup-manager cgroupfs");
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    assert!(
        cgroup_of(&pid.to_string()).contains(&id),
        "{}",
        cgroup_of(&pid.to_string())
    );
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);

    let id = ctx.id("sd");
    let out = ctx.cuddy(&[
        "--cgroup-manager",
        "systemd",
        "create",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    assert_fails_with(&out, "systemd cgroup driver");
    ctx.assert_no_leftovers(&id);
    let out = ctx.cuddy(&["--cgroup-manager", "bogus", "list"]);
    assert!(!out.status.success());
}

/// crun's `create/run --config FILE`: the spec comes from FILE, relative
/// paths in it (root.path) stay relative to the bundle (config.md#root), and
/// `exec` uses that spec, not the bundle's config.json.
#[test]
fn config_flag_reads_another_file() {
    require_root!();
    let ctx = Ctx::new("cfgflag");
    let bundle = ctx.dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::os::unix::fs::symlink(fixture_rootfs(), bundle.join("rootfs")).unwrap();
    // The bundle's own config.json would run something else.
    let mut other = ctx.config(&["/bin/false"]);
    other["root"]["path"] = json!("does-not-exist");
    std::fs::write(bundle.join("config.json"), other.to_string()).unwrap();
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["root"]["path"] = json!("rootfs");
    c["process"]["env"] = json!(["PATH=/bin", "FROM=config-flag"]);
    let file = ctx.dir.path().join("elsewhere.json");
    std::fs::write(&file, c.to_string()).unwrap();
    let id = ctx.id("x");
    let out = ctx.cuddy(&[
        "run",
        "-d",
        "--config",
        file.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out, "run --config");
    assert_eq!(ctx.state(&id)["status"], "running");
    let env = env_lines(&ctx.cuddy(&["exec", &id, "/bin/env"]));
    assert_eq!(entries(&env, "FROM"), ["FROM=config-flag"], "{env:?}");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);

    // A missing file: a clear error naming it, nothing left behind.
    let id = ctx.id("missing");
    let out = ctx.cuddy(&[
        "create",
        "-f",
        "/nonexistent/cfg.json",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    assert_fails_with(&out, "/nonexistent/cfg.json");
    ctx.assert_no_leftovers(&id);
}

/// crun's `delete --regex`: the id is a POSIX extended regular expression;
/// every container it matches is deleted; running ones only with --force.
#[test]
fn delete_regex_deletes_every_match() {
    require_root!();
    let ctx = Ctx::new("delre");
    let a1 = ctx.id("a1");
    let a2 = ctx.id("a2");
    let b1 = ctx.id("b1");
    for id in [&a1, &a2, &b1] {
        let b = ctx.bundle(id, &ctx.config(&["/bin/sleep", "1000"]));
        assert_ok(
            &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), id]),
            "create",
        );
    }
    assert_ok(&ctx.cuddy(&["start", &a2]), "start a2");
    let pattern = format!("^cuddy-t-delre-a[0-9]-{}$", std::process::id());
    // a2 runs: without --force it is kept, a1 is deleted, non-zero exit.
    let out = ctx.cuddy(&["delete", "--regex", &pattern]);
    assert_fails_with(&out, &a2);
    ctx.assert_no_leftovers(&a1);
    assert_eq!(ctx.state(&a2)["status"], "running");
    assert_eq!(ctx.state(&b1)["status"], "created");
    assert_ok(
        &ctx.cuddy(&["delete", "-r", "-f", &pattern]),
        "delete -r -f",
    );
    ctx.assert_no_leftovers(&a2);
    assert_eq!(ctx.state(&b1)["status"], "created");
    let out = ctx.cuddy(&["delete", "--regex", "a("]);
    assert_fails_with(&out, "invalid regular expression");
    assert_ok(&ctx.cuddy(&["delete", &b1]), "delete b1");
    ctx.assert_no_leftovers(&b1);
}
