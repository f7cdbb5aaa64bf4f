//! config.md "Process" and config-linux.md "Namespaces", observed with the probe.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

const CAP_CHOWN: u32 = 0;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;
const CAP_KILL: u32 = 5;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_AUDIT_WRITE: u32 = 29;

/// A capability mask as /proc/self/status prints it (16 hex digits).
fn mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | (1u64 << b)))
}

/// Sets `linux.namespaces` to new namespaces of these types.
fn set_namespaces(c: &mut Value, types: &[&str]) {
    c["linux"]["namespaces"] = Value::Array(types.iter().map(|t| json!({"type": t})).collect());
}

fn push_namespace(c: &mut Value, ns: Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(ns);
}

/// The probe's inode of namespace `kind`.
fn ns_of(p: &Value, kind: &str) -> u64 {
    p["namespaces"][kind]
        .as_u64()
        .unwrap_or_else(|| panic!("probe has no {kind} namespace: {}", p["namespaces"]))
}

/// The inode of namespace `kind` of process `pid`, seen from the host.
fn pid_ns(pid: i64, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .expect("ns of pid")
        .ino()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn clock(c: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    assert_eq!(unsafe { libc::clock_gettime(c, &mut ts) }, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
        .trim()
        .to_string()
}

/// Starts `config` detached (`run -d`) and returns its init's host pid.
fn run_detached(ctx: &Ctx, id: &str, config: &Value) -> i64 {
    let b = ctx.bundle(id, config);
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), id]),
        "run -d",
    );
    let st = ctx.state(id);
    assert_eq!(st["status"], "running");
    st["pid"].as_i64().expect("pid")
}

fn stop_and_delete(ctx: &Ctx, id: &str) {
    assert_ok(&ctx.cuddy(&["delete", "--force", id]), "delete --force");
    ctx.assert_no_leftovers(id);
}

/// config.md "User" (uid, gid, additionalGids, umask), "cwd", "env", "args".
#[test]
fn user_groups_umask_cwd_env_args() {
    require_root!();
    let ctx = Ctx::new("user");
    let mut c = ctx.config(&[]);
    c["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 30], "umask": 0o027});
    // cwd is created when missing (runc does; the spec only says absolute):
    // under a tmpfs so the shared fixture is not touched.
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    c["process"]["cwd"] = json!("/tmp/made/for/cwd");
    c["process"]["env"] = json!(["PATH=/bin", "A=1", "WITH SPACE=a b", "EMPTY="]);
    let p = ctx.probe("a", c, &["plain", "two words", "", "--not-an-option"]);
    assert_eq!(
        (p["uid"].as_u64(), p["euid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        (p["gid"].as_u64(), p["egid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        p["groups"],
        json!([10, 20, 30]),
        "additionalGids are exactly the supplementary groups"
    );
    assert_eq!(p["umask"], "0027");
    assert_eq!(p["cwd"], "/tmp/made/for/cwd");
    // env is exactly the config's, in order, plus HOME from the container's
    // /etc/passwd (tester:1000 has /home/tester) since the config has none.
    assert_eq!(
        strings(&p["env"]),
        [
            "PATH=/bin",
            "A=1",
            "WITH SPACE=a b",
            "EMPTY=",
            "HOME=/home/tester"
        ]
    );
    assert_eq!(
        strings(&p["args"]),
        ["/bin/probe", "plain", "two words", "", "--not-an-option"]
    );

    // HOME given by the config is kept as is and not added twice; root
    // without additionalGids has no supplementary groups.
    let mut c = ctx.config(&[]);
    c["process"]["env"] = json!(["HOME=/elsewhere", "PATH=/bin"]);
    let p = ctx.probe("b", c, &[]);
    assert_eq!(strings(&p["env"]), ["HOME=/elsewhere", "PATH=/bin"]);
    assert_eq!((p["uid"].as_u64(), p["gid"].as_u64()), (Some(0), Some(0)));
    assert_eq!(p["groups"], json!([]));
    assert_eq!(p["cwd"], "/");

    // A user with no /etc/passwd entry gets HOME=/.
    let mut c = ctx.config(&[]);
    c["process"]["user"] = json!({"uid": 4242, "gid": 4242});
    let p = ctx.probe("c", c, &[]);
    assert_eq!(p["uid"], 4242);
    assert!(
        strings(&p["env"]).contains(&"HOME=/".to_string()),
        "{}",
        p["env"]
    );
}

/// config.md "cwd": "This value MUST be an absolute path."
#[test]
fn relative_cwd_is_refused() {
    require_root!();
    let ctx = Ctx::new("relcwd");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/true"]);
    c["process"]["cwd"] = json!("tmp");
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "process.cwd");
    assert!(stderr(&out).contains("absolute"), "{}", stderr(&out));
    ctx.assert_no_leftovers(&id);

    // A cwd that exists but is a file: a clean error naming it.
    let id = ctx.id("file");
    let mut c = ctx.config(&["/bin/true"]);
    c["process"]["cwd"] = json!("/etc/passwd");
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "/etc/passwd");
    ctx.assert_no_leftovers(&id);
}

/// config.md "Linux Process" capabilities, as root: root's execve keeps the
/// bounding set as permitted and effective (no file capabilities), so the
/// requested bounding set is what root ends up with.
#[test]
fn capabilities_of_root() {
    require_root!();
    let ctx = Ctx::new("capsroot");
    // The default config: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE.
    let p = ctx.probe("a", ctx.config(&[]), &[]);
    let dflt = mask(&[CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE]);
    assert_eq!(dflt, "0000000020000420");
    for set in ["effective", "permitted", "bounding"] {
        assert_eq!(p["caps"][set], dflt.as_str(), "{set}: {}", p["caps"]);
    }
    assert_eq!(p["caps"]["inheritable"], mask(&[]));
    assert_eq!(p["caps"]["ambient"], mask(&[]));

    // Adding CAP_SYS_ADMIN everywhere adds bit 21 everywhere.
    let mut c = ctx.config(&[]);
    let all = json!([
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_ADMIN"
    ]);
    c["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all, "inheritable": all, "ambient": ["CAP_SYS_ADMIN"]});
    let p = ctx.probe("b", c, &[]);
    let m = mask(&[
        CAP_AUDIT_WRITE,
        CAP_KILL,
        CAP_NET_BIND_SERVICE,
        CAP_SYS_ADMIN,
    ]);
    for set in ["effective", "permitted", "bounding", "inheritable"] {
        assert_eq!(p["caps"][set], m.as_str(), "{set}: {}", p["caps"]);
    }
    assert_eq!(p["caps"]["ambient"], mask(&[CAP_SYS_ADMIN]));

    // No capabilities at all: root is powerless.
    let mut c = ctx.config(&[]);
    c["process"]["capabilities"] = json!({});
    let p = ctx.probe("c", c, &[]);
    for set in [
        "effective",
        "permitted",
        "bounding",
        "inheritable",
        "ambient",
    ] {
        assert_eq!(p["caps"][set], mask(&[]), "{set}: {}", p["caps"]);
    }
}

/// A non-root user keeps only what ambient gives it across execve, so the
/// five sets differ and each one is observable.
#[test]
fn capabilities_of_user_with_ambient() {
    require_root!();
    let ctx = Ctx::new("capsuser");
    let mut c = ctx.config(&[]);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_SYS_ADMIN"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    let p = ctx.probe("a", c, &[]);
    assert_eq!(p["uid"], 1000);
    let caps = &p["caps"];
    assert_eq!(
        caps["bounding"],
        mask(&[
            CAP_KILL,
            CAP_NET_BIND_SERVICE,
            CAP_AUDIT_WRITE,
            CAP_SYS_ADMIN
        ]),
        "{caps}"
    );
    assert_eq!(
        caps["inheritable"],
        mask(&[CAP_KILL, CAP_NET_BIND_SERVICE]),
        "{caps}"
    );
    // execve of a file without capabilities: P' = E' = ambient.
    assert_eq!(caps["ambient"], mask(&[CAP_NET_BIND_SERVICE]), "{caps}");
    assert_eq!(caps["permitted"], mask(&[CAP_NET_BIND_SERVICE]), "{caps}");
    assert_eq!(caps["effective"], mask(&[CAP_NET_BIND_SERVICE]), "{caps}");

    // Without ambient, the user has nothing but bounding and inheritable.
    let mut c = ctx.config(&[]);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let p = ctx.probe("b", c, &[]);
    assert_eq!(
        p["caps"]["bounding"],
        mask(&[CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE])
    );
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        assert_eq!(p["caps"][set], mask(&[]), "{set}: {}", p["caps"]);
    }

    // An ambient capability that is not inheritable can never be raised
    // (capabilities(7)): skipped, named once at debug level, not warned
    // (issue 11 item 8: runc 1.1 ignored these silently), and the process
    // runs without it.
    let id = ctx.id("bad");
    let mut c = ctx.config(&["/bin/probe"]);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
    let b = ctx.bundle(&id, &c);
    let out = ctx.cuddy(&["--debug", "run", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(
        &out,
        "run with an ambient capability that is not inheritable",
    );
    let err = stderr(&out);
    assert!(
        err.contains("CAP_KILL") && err.contains("skipped"),
        "debug line: {err}"
    );
    let quiet = ctx.run(&ctx.id("bad2"), &c);
    assert_ok(&quiet, "run without --debug");
    assert!(
        !stderr(&quiet).contains("CAP_KILL"),
        "no warning: {}",
        stderr(&quiet)
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["caps"]["ambient"], mask(&[]));
    assert_eq!(p["caps"]["effective"], mask(&[]));
    ctx.assert_no_leftovers(&id);
}

/// config.md "noNewPrivileges".
#[test]
fn no_new_privileges() {
    require_root!();
    let ctx = Ctx::new("nnp");
    for (nnp, want) in [(true, 1), (false, 0)] {
        let mut c = ctx.config(&[]);
        c["process"]["noNewPrivileges"] = json!(nnp);
        let p = ctx.probe(&format!("n{nnp}"), c, &[]);
        assert_eq!(p["no_new_privs"], want, "noNewPrivileges {nnp}");
    }
    let mut c = ctx.config(&[]);
    c["process"]
        .as_object_mut()
        .unwrap()
        .remove("noNewPrivileges");
    assert_eq!(
        ctx.probe("unset", c, &[])["no_new_privs"],
        0,
        "unset means false"
    );
}

/// config.md "rlimits", "oomScoreAdj", "scheduler", "ioPriority".
#[test]
fn rlimits_oom_scheduler_ioprio() {
    require_root!();
    let ctx = Ctx::new("limits");
    let mut c = ctx.config(&[]);
    c["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 4567},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 1048576},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 300},
        {"type": "RLIMIT_STACK", "soft": 8388608, "hard": u64::MAX}
    ]);
    // Positive: lowering it below 0 needs CAP_SYS_RESOURCE, which the test
    // environment may lack.
    c["process"]["oomScoreAdj"] = json!(321);
    c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let p = ctx.probe("a", c, &[]);
    let rl = &p["rlimits"];
    assert_eq!(rl["RLIMIT_NOFILE"], json!({"soft": 123, "hard": 4567}));
    assert_eq!(rl["RLIMIT_CORE"], json!({"soft": 0, "hard": 1048576}));
    assert_eq!(rl["RLIMIT_NPROC"], json!({"soft": 300, "hard": 300}));
    // RLIM_INFINITY is printed as -1 by the probe.
    assert_eq!(rl["RLIMIT_STACK"], json!({"soft": 8388608, "hard": -1}));
    assert_eq!(p["oom_score_adj"], 321);
    assert_eq!(p["sched_policy"], libc::SCHED_BATCH);
    assert_eq!(p["nice"], 7);
    // ioprio_get: class << 13 | data; IOPRIO_CLASS_BE = 2.
    assert_eq!(p["ioprio"], (2 << 13) | 6);

    let mut c = ctx.config(&[]);
    c["process"]["oomScoreAdj"] = json!(999);
    c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"});
    c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    let p = ctx.probe("b", c, &[]);
    assert_eq!(p["oom_score_adj"], 999);
    assert_eq!(p["sched_policy"], libc::SCHED_IDLE);
    // IOPRIO_CLASS_IDLE = 3.
    assert_eq!(p["ioprio"], 3 << 13);

    // SCHED_OTHER with a nice value.
    let mut c = ctx.config(&[]);
    c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": -5});
    let p = ctx.probe("c", c, &[]);
    assert_eq!(p["sched_policy"], libc::SCHED_OTHER);
    assert_eq!(p["nice"], -5);
}

/// config.md "Hostname", "Domainname"; config-linux.md "Sysctl": set in the
/// container's own namespaces, the host keeps its values.
#[test]
fn hostname_domainname_sysctl() {
    require_root!();
    let ctx = Ctx::new("uts");
    let host_name = nix::unistd::gethostname().unwrap();
    let host_domain = read_trim("/proc/sys/kernel/domainname");
    let host_fwd = read_trim("/proc/sys/net/ipv4/ip_forward");
    let host_shmmax = read_trim("/proc/sys/kernel/shmmax");
    // A value that differs from the host's, so the check means something.
    let fwd = if host_fwd == "1" { "0" } else { "1" };

    let mut c = ctx.config(&[]);
    c["hostname"] = json!("box.test");
    c["domainname"] = json!("example.org");
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": fwd, "kernel.shmmax": "123456789"});
    let p = ctx.probe("a", c, &[]);
    assert_eq!(p["hostname"], "box.test");
    assert_eq!(p["domainname"], "example.org");
    assert_eq!(p["sysctl"]["kernel.hostname"], "box.test");
    assert_eq!(p["sysctl"]["net.ipv4.ip_forward"], fwd);
    assert_eq!(p["sysctl"]["kernel.shmmax"], "123456789");

    assert_eq!(nix::unistd::gethostname().unwrap(), host_name);
    assert_eq!(read_trim("/proc/sys/kernel/domainname"), host_domain);
    assert_eq!(read_trim("/proc/sys/net/ipv4/ip_forward"), host_fwd);
    assert_eq!(read_trim("/proc/sys/kernel/shmmax"), host_shmmax);

    // A sysctl of a namespace the container does not have is refused
    // before anything runs (it would change the host).
    let id = ctx.id("noipc");
    let mut c = ctx.config(&["/bin/true"]);
    set_namespaces(&mut c, &["mount", "pid", "network", "uts"]);
    c["linux"]["sysctl"] = json!({"kernel.shmmax": "1234"});
    assert_fails_with(&ctx.run(&id, &c), "kernel.shmmax");
    ctx.assert_no_leftovers(&id);
    assert_eq!(read_trim("/proc/sys/kernel/shmmax"), host_shmmax);
}

/// config-linux.md "Namespaces": "If a namespace type is not specified in
/// the namespaces array, the container MUST inherit the runtime namespace of
/// that type."
#[test]
fn new_and_inherited_namespaces() {
    require_root!();
    let ctx = Ctx::new("ns");
    // The default config: pid, network, ipc, uts, mount, cgroup.
    let p = ctx.probe("a", ctx.config(&[]), &[]);
    for (kind, new) in [
        ("pid", true),
        ("net", true),
        ("ipc", true),
        ("uts", true),
        ("mnt", true),
        ("cgroup", true),
        ("user", false),
        ("time", false),
    ] {
        assert_eq!(
            ns_of(&p, kind) != host_ns(kind),
            new,
            "{kind}: new namespace expected: {new}"
        );
    }
    // The first process of a new pid namespace is its pid 1.
    assert_eq!(p["pid"], 1);
    assert_eq!(p["ppid"], 0);

    // Only a mount namespace: everything else is the host's.
    let mut c = ctx.config(&[]);
    set_namespaces(&mut c, &["mount"]);
    c.as_object_mut().unwrap().remove("hostname");
    let p = ctx.probe("b", c, &[]);
    assert_ne!(ns_of(&p, "mnt"), host_ns("mnt"));
    for kind in ["pid", "net", "ipc", "uts", "cgroup", "user", "time"] {
        assert_eq!(ns_of(&p, kind), host_ns(kind), "{kind} must be the host's");
    }
    assert_ne!(p["pid"], 1);
    assert_eq!(
        p["hostname"].as_str(),
        Some(nix::unistd::gethostname().unwrap().to_str().unwrap())
    );
}

/// config-linux.md "Namespaces" `path`: a second container joins the
/// network, UTS and IPC namespaces of a running one.
#[test]
fn join_namespaces_by_path() {
    require_root!();
    let ctx = Ctx::new("join");
    let a = ctx.id("a");
    let mut ca = ctx.config(&["/bin/sleep", "1000"]);
    ca["hostname"] = json!("container-a");
    let pid = run_detached(&ctx, &a, &ca);

    let mut c = ctx.config(&[]);
    c.as_object_mut().unwrap().remove("hostname");
    set_namespaces(&mut c, &["pid", "mount", "cgroup"]);
    for (typ, file) in [("network", "net"), ("uts", "uts"), ("ipc", "ipc")] {
        push_namespace(
            &mut c,
            json!({"type": typ, "path": format!("/proc/{pid}/ns/{file}")}),
        );
    }
    let p = ctx.probe("b", c, &[]);
    for kind in ["net", "uts", "ipc"] {
        assert_eq!(
            ns_of(&p, kind),
            pid_ns(pid, kind),
            "{kind} is container a's"
        );
        assert_ne!(ns_of(&p, kind), host_ns(kind));
    }
    assert_eq!(p["hostname"], "container-a");
    // The namespaces it created itself are its own, not a's.
    for kind in ["pid", "mnt"] {
        assert_ne!(ns_of(&p, kind), pid_ns(pid, kind), "{kind}");
    }

    // A path of the wrong type: a clean error naming the path and both
    // types; nothing of the failed container is left, a is unharmed.
    let bad = ctx.id("bad");
    let mut c = ctx.config(&["/bin/true"]);
    let path = format!("/proc/{pid}/ns/net");
    set_namespaces(&mut c, &["pid", "mount"]);
    push_namespace(&mut c, json!({"type": "uts", "path": path}));
    let out = ctx.run(&bad, &c);
    assert_fails_with(&out, &path);
    let e = stderr(&out);
    assert!(
        e.contains("is a network namespace, not a uts one") && e.contains("type uts"),
        "both types named: {e}"
    );
    ctx.assert_no_leftovers(&bad);
    assert_eq!(ctx.state(&a)["status"], "running");

    // A path that is not a namespace file at all.
    let notns = ctx.id("notns");
    let mut c = ctx.config(&["/bin/true"]);
    set_namespaces(&mut c, &["pid", "mount"]);
    c.as_object_mut().unwrap().remove("hostname");
    push_namespace(&mut c, json!({"type": "network", "path": "/etc/hostname"}));
    let out = ctx.run(&notns, &c);
    assert_fails_with(&out, "path /etc/hostname is not a namespace file");
    ctx.assert_no_leftovers(&notns);

    stop_and_delete(&ctx, &a);
}

/// config-linux.md "User namespace mappings".
#[test]
fn user_namespace_with_mappings() {
    require_root!();
    let ctx = Ctx::new("userns");
    let mut c = ctx.config(&[]);
    push_namespace(&mut c, json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let caps = [
        CAP_CHOWN,
        CAP_SETGID,
        CAP_SETUID,
        CAP_KILL,
        CAP_NET_BIND_SERVICE,
        CAP_NET_ADMIN,
        CAP_SYS_ADMIN,
        CAP_AUDIT_WRITE,
    ];
    let names = json!([
        "CAP_CHOWN",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_ADMIN",
        "CAP_SYS_ADMIN",
        "CAP_AUDIT_WRITE"
    ]);
    c["process"]["capabilities"] =
        json!({"bounding": names, "effective": names, "permitted": names});

    let p = ctx.probe("a", c.clone(), &["/etc/passwd", "/dev/null", "/bin/probe"]);
    assert_eq!(
        (p["uid"].as_u64(), p["euid"].as_u64(), p["gid"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert_ne!(ns_of(&p, "user"), host_ns("user"));
    for set in ["effective", "permitted", "bounding"] {
        assert_eq!(p["caps"][set], mask(&caps), "{set}: {}", p["caps"]);
    }
    // The fixture is owned by host root, which is unmapped: it shows as the
    // overflow id, and is still readable (and /bin/probe ran).
    let passwd = &p["paths"]["/etc/passwd"];
    assert_eq!(passwd["exists"], true, "{passwd}");
    assert_eq!(passwd["readable"], true, "{passwd}");
    assert_eq!(passwd["uid"], 65534, "{passwd}");
    // mknod is not allowed in a user namespace: devices are bind mounts of
    // the host's, and usable.
    let null = &p["paths"]["/dev/null"];
    assert_eq!(
        (&null["type"], &null["readable"], &null["writable"]),
        (&json!("char"), &json!(true), &json!(true)),
        "{null}"
    );
    for dev in [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ] {
        let d = p["dev"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == dev);
        let d = d.unwrap_or_else(|| panic!("{dev} missing: {}", p["dev"]));
        assert_eq!(d["type"], "char", "{d}");
        let host = std::fs::metadata(dev).unwrap().rdev();
        assert_eq!(
            (d["major"].as_u64(), d["minor"].as_u64()),
            (
                Some(libc::major(host) as u64),
                Some(libc::minor(host) as u64)
            ),
            "{dev}"
        );
    }

    // The maps as the host sees them.
    let id = ctx.id("d");
    c["process"]["args"] = json!(["/bin/sleep", "1000"]);
    let pid = run_detached(&ctx, &id, &c);
    let norm = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        norm(read_trim(&format!("/proc/{pid}/uid_map"))),
        "0 100000 65536"
    );
    assert_eq!(
        norm(read_trim(&format!("/proc/{pid}/gid_map"))),
        "0 200000 65536"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["100000"; 4],
        "host view of the init's uid"
    );
    stop_and_delete(&ctx, &id);
}

/// config-linux.md "Time offsets": the container's monotonic and boottime
/// clocks are shifted; the host's are not.
#[test]
fn time_namespace_offsets() {
    require_root!();
    let ctx = Ctx::new("time");
    let off = 10 * 24 * 3600;
    let mut c = ctx.config(&[]);
    push_namespace(&mut c, json!({"type": "time"}));
    c["linux"]["timeOffsets"] =
        json!({"monotonic": {"secs": off, "nanosecs": 0}, "boottime": {"secs": off}});
    let (m0, b0) = (clock(libc::CLOCK_MONOTONIC), clock(libc::CLOCK_BOOTTIME));
    let p = ctx.probe("a", c, &[]);
    let (m1, b1) = (clock(libc::CLOCK_MONOTONIC), clock(libc::CLOCK_BOOTTIME));
    assert_ne!(ns_of(&p, "time"), host_ns("time"));
    assert_eq!(ns_of(&p, "time"), ns_of(&p, "time_for_children"));
    let pm = p["clocks"]["monotonic"].as_f64().unwrap() - off as f64;
    let pb = p["clocks"]["boottime"].as_f64().unwrap() - off as f64;
    // The probe read its clocks between our two readings (the host's
    // clocks, which are not shifted); 1 ms of slack for float rounding.
    assert!(
        m0 - 0.001 <= pm && pm <= m1 + 0.001,
        "monotonic: host {m0}..{m1}, probe {pm} + {off}"
    );
    assert!(
        b0 - 0.001 <= pb && pb <= b1 + 0.001,
        "boottime: host {b0}..{b1}, probe {pb} + {off}"
    );

    // Without a time namespace, the probe's clocks are the host's.
    let p = ctx.probe("b", ctx.config(&[]), &[]);
    let m2 = clock(libc::CLOCK_MONOTONIC);
    assert_eq!(ns_of(&p, "time"), host_ns("time"));
    assert!(p["clocks"]["monotonic"].as_f64().unwrap() <= m2 + 0.001);
}

/// config-linux.md "Namespaces" cgroup: the container sees its cgroup as
/// the root; without the namespace it sees the real path.
#[test]
fn cgroup_namespace() {
    require_root!();
    let ctx = Ctx::new("cgns");
    let p = ctx.probe("a", ctx.config(&[]), &[]);
    let lines = strings(&p["cgroup"]);
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.ends_with(":/"),
            "with a cgroup namespace every path is /: {lines:?}"
        );
    }

    let mut c = ctx.config(&[]);
    set_namespaces(&mut c, &["pid", "network", "ipc", "uts", "mount"]);
    let id = ctx.id("b");
    let b = ctx.bundle(&id, &{
        let mut c = c;
        c["process"]["args"] = json!(["/bin/probe"]);
        c
    });
    let out = ctx.cuddy(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(&out, "run");
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ns_of(&p, "cgroup"), host_ns("cgroup"));
    let lines = strings(&p["cgroup"]);
    assert!(
        lines.iter().any(|l| l.ends_with(&format!("/{id}"))),
        "the real cgroup path names the container: {lines:?}"
    );
}

/// runc's --no-pivot: the rootfs is moved onto / and chrooted into.
#[test]
fn no_pivot() {
    require_root!();
    let ctx = Ctx::new("nopivot");
    let id = ctx.id("a");
    let b = ctx.bundle(
        &id,
        &ctx.config(&["/bin/probe", "/etc/passwd", "/bin/probe"]),
    );
    let out = ctx.cuddy(&["run", "--no-pivot", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(&out, "run --no-pivot");
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["cwd"], "/");
    assert_eq!(p["paths"]["/etc/passwd"]["exists"], true);
    let mounts = p["mounts"].as_array().unwrap();
    assert!(
        mounts.iter().any(|m| m["mount_point"] == "/"),
        "the rootfs is / in the container: {mounts:?}"
    );
    assert!(
        mounts
            .iter()
            .any(|m| m["mount_point"] == "/proc" && m["fstype"] == "proc"),
        "{mounts:?}"
    );
    // Nothing of the host outside the rootfs is visible.
    assert!(
        !mounts.iter().any(|m| m["mount_point"]
            .as_str()
            .unwrap()
            .contains("rootfs-fixtures")),
        "{mounts:?}"
    );
    ctx.assert_no_leftovers(&id);
}

/// `run --preserve-fds N`: fds 3..3+N of the caller are passed on, the
/// others are not.
#[test]
fn preserve_fds() {
    require_root!();
    let ctx = Ctx::new("fds");
    let extra = std::fs::File::open("/etc/hostname")
        .or_else(|_| std::fs::File::open("/proc/self/stat"))
        .unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&extra);
    for (preserve, want) in [
        (Some("1"), json!([0, 1, 2, 3])),
        (None, json!([0, 1, 2])),
        (Some("0"), json!([0, 1, 2])),
    ] {
        let id = ctx.id(&format!("p{}", preserve.unwrap_or("none")));
        let b = ctx.bundle(&id, &ctx.config(&["/bin/probe"]));
        let mut c = ctx.cmd();
        c.arg("run");
        if let Some(n) = preserve {
            c.args(["--preserve-fds", n]);
        }
        c.args(["--bundle", b.to_str().unwrap(), &id]);
        give_fd3(&mut c, raw);
        let out = output_with_timeout(c, 60);
        assert_ok(&out, "run");
        let p: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(p["fds"], want, "--preserve-fds {preserve:?}");
        ctx.assert_no_leftovers(&id);
    }
}

/// Makes `raw` fd 3 of cuddy, without FD_CLOEXEC (what a caller passing
/// --preserve-fds or LISTEN_FDS does).
fn give_fd3(c: &mut std::process::Command, raw: i32) {
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            // dup2(3, 3) keeps FD_CLOEXEC: clear it explicitly.
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A new user namespace together with a time namespace and a non-root
/// user with supplementary groups (mapped ids).
#[test]
fn user_namespace_with_time_and_groups() {
    require_root!();
    let ctx = Ctx::new("usertime");
    let mut c = ctx.config(&[]);
    push_namespace(&mut c, json!({"type": "user"}));
    push_namespace(&mut c, json!({"type": "time"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1000000}});
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
    let b0 = clock(libc::CLOCK_BOOTTIME);
    let p = ctx.probe("a", c, &[]);
    assert_eq!(
        (p["uid"].as_u64(), p["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(p["groups"], json!([10, 20]));
    assert_ne!(ns_of(&p, "user"), host_ns("user"));
    assert_ne!(ns_of(&p, "time"), host_ns("time"));
    assert!(
        p["clocks"]["boottime"].as_f64().unwrap() >= b0 + 1000000.0,
        "{}",
        p["clocks"]
    );
}

/// Joining a running container's user namespace by path. Namespaces that
/// clone3 creates belong to the caller's (host) user namespace, so the init
/// could not mount in its new mount namespace after joining: until cuddy
/// creates them inside the joined user namespace, this is refused up front
/// with a clear error (not an EPERM from deep in the set-up), nothing left.
#[test]
fn join_user_namespace_by_path() {
    require_root!();
    let ctx = Ctx::new("joinuser");
    let a = ctx.id("a");
    let mut ca = ctx.config(&["/bin/sleep", "1000"]);
    push_namespace(&mut ca, json!({"type": "user"}));
    ca["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    ca["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let pid = run_detached(&ctx, &a, &ca);

    let b = ctx.id("b");
    let mut c = ctx.config(&["/bin/true"]);
    c.as_object_mut().unwrap().remove("hostname");
    set_namespaces(&mut c, &["pid", "mount", "ipc"]);
    let path = format!("/proc/{pid}/ns/user");
    push_namespace(&mut c, json!({"type": "user", "path": path}));
    push_namespace(
        &mut c,
        json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}),
    );
    // config-linux.md "Namespaces": the new pid, mount and ipc namespaces
    // belong to the joined user namespace (a middle process joins it first
    // and clones the init from there).
    let p = ctx.probe("b", c, &[]);
    let ns_ino = |kind: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
            .unwrap()
            .ino()
    };
    assert_eq!(p["namespaces"]["user"], ns_ino("user"), "{path}");
    assert_eq!(p["namespaces"]["net"], ns_ino("net"));
    assert_ne!(p["namespaces"]["pid"], ns_ino("pid"));
    assert_ne!(p["namespaces"]["mnt"], ns_ino("mnt"));
    assert_eq!(p["pid"], 1);
    assert_eq!(p["uid"], 0);
    ctx.assert_no_leftovers(&b);
    assert_eq!(ctx.state(&a)["status"], "running");
    stop_and_delete(&ctx, &a);
}

/// config-linux.md "Sysctl" changes the container's namespaces only: a
/// network namespace joined by path that is the host's own must not get
/// net.* sysctls (runc refuses too). The value written would be the host's
/// current one, so even a failing test changes nothing.
#[test]
fn sysctl_in_host_network_namespace_is_refused() {
    require_root!();
    let ctx = Ctx::new("hostnet");
    let host_fwd = read_trim("/proc/sys/net/ipv4/ip_forward");
    let id = ctx.id("a");
    let mut c = ctx.config(&["/bin/true"]);
    set_namespaces(&mut c, &["mount", "pid", "uts"]);
    push_namespace(
        &mut c,
        json!({"type": "network", "path": "/proc/self/ns/net"}),
    );
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": host_fwd});
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "net.ipv4.ip_forward");
    assert!(stderr(&out).contains("host"), "{}", stderr(&out));
    ctx.assert_no_leftovers(&id);
    assert_eq!(read_trim("/proc/sys/net/ipv4/ip_forward"), host_fwd);
}

/// config.md "umask": when unset, cuddy uses 0022 whatever the caller's
/// umask is, as runc does (the spec's SHOULD keep the caller's umask; runc
/// compatibility wins here), and an explicit umask is exact.
#[test]
fn umask_default_and_explicit() {
    require_root!();
    let ctx = Ctx::new("umask");
    for (umask, want) in [(None, "0022"), (Some(0o077), "0077"), (Some(0), "0000")] {
        let id = ctx.id(&format!(
            "u{}",
            umask.map_or("none".into(), |u: u32| u.to_string())
        ));
        let mut c = ctx.config(&["/bin/probe"]);
        if let Some(u) = umask {
            c["process"]["user"]["umask"] = json!(u);
        }
        let b = ctx.bundle(&id, &c);
        let mut cmd = ctx.cmd();
        cmd.args(["run", "--bundle", b.to_str().unwrap(), &id]);
        // SAFETY: umask is async-signal-safe; it only affects cuddy.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o007);
                Ok(())
            });
        }
        let out = output_with_timeout(cmd, 60);
        assert_ok(&out, "run");
        let p: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(p["umask"], want, "umask {umask:?}");
    }
}

/// config-linux.md "Namespaces": joining a PID namespace by path puts the
/// init itself into it (setns(CLONE_NEWPID) affects only children, so the
/// parent joins before cloning).
#[test]
fn join_pid_namespace_by_path() {
    require_root!();
    let ctx = Ctx::new("joinpid");
    let a = ctx.id("a");
    let pid = run_detached(&ctx, &a, &ctx.config(&["/bin/sleep", "1000"]));
    let mut c = ctx.config(&[]);
    set_namespaces(&mut c, &["mount", "uts"]);
    push_namespace(
        &mut c,
        json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}),
    );
    let p = ctx.probe("b", c, &[]);
    let a_pidns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/ns/pid"))
            .unwrap()
            .ino()
    };
    assert_eq!(ns_of(&p, "pid"), a_pidns);
    // A's init is pid 1 there; the probe is another process of that namespace.
    assert!(p["pid"].as_i64().unwrap() > 1, "{}", p["pid"]);
    stop_and_delete(&ctx, &a);
}

/// Socket activation as runc does it: LISTEN_FDS in cuddy's environment
/// passes fds 3.. on, with LISTEN_FDS and LISTEN_PID=1 in the container.
#[test]
fn listen_fds_socket_activation() {
    require_root!();
    let ctx = Ctx::new("listen");
    let extra = std::fs::File::open("/proc/self/stat").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&extra);
    let id = ctx.id("l");
    let b = ctx.bundle(&id, &ctx.config(&["/bin/probe"]));
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", b.to_str().unwrap(), &id]);
    c.env("LISTEN_FDS", "1");
    give_fd3(&mut c, raw);
    let out = output_with_timeout(c, 60);
    assert_ok(&out, "run");
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["fds"], json!([0, 1, 2, 3]));
    let env: Vec<&str> = p["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"LISTEN_FDS=1"), "{env:?}");
    assert!(env.contains(&"LISTEN_PID=1"), "{env:?}");
    ctx.assert_no_leftovers(&id);
}

/// config.md "Process" apparmorProfile / selinuxLabel fail closed: refused
/// (naming the field and why) where the host does not run the module, for
/// `run` and for `exec --apparmor/--process-label`; applied where it does
/// (AppArmor's "unconfined" profile is then what the process runs under, and
/// a profile the kernel does not know is an error).
#[test]
fn security_labels_fail_closed() {
    require_root!();
    let ctx = Ctx::new("labels");
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    let id = ctx.id("aa");
    let mut c = ctx.config(&["/bin/true"]);
    c["process"]["apparmorProfile"] = json!("cuddy-test-profile");
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, "process.apparmorProfile");
    if !apparmor {
        assert_fails_with(&out, "AppArmor is not enabled on this host");
    }
    ctx.assert_no_leftovers(&id);
    if apparmor {
        let id = ctx.id("aa-ok");
        let mut c = ctx.config(&["/bin/cat", "/proc/self/attr/current"]);
        c["process"]["apparmorProfile"] = json!("unconfined");
        let out = ctx.run(&id, &c);
        assert_ok(&out, "run with the unconfined AppArmor profile");
        assert_eq!(stdout(&out).trim(), "unconfined");
        ctx.assert_no_leftovers(&id);
    }

    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    let id = ctx.id("se");
    let mut c = ctx.config(&["/bin/true"]);
    c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    let out = ctx.run(&id, &c);
    if !selinux {
        assert_fails_with(&out, "process.selinuxLabel");
        assert_fails_with(&out, "SELinux is not enabled on this host");
    }
    ctx.assert_no_leftovers(&id);

    // exec's flags: refused the same way where the module is absent.
    let id = ctx.id("ex");
    let b = ctx.bundle("ex", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    if !apparmor {
        let out = ctx.cuddy(&["exec", "--apparmor", "p", &id, "/bin/true"]);
        assert_fails_with(&out, "AppArmor is not enabled on this host");
    }
    if !selinux {
        let out = ctx.cuddy(&["exec", "--process-label", "l", &id, "/bin/true"]);
        assert_fails_with(&out, "SELinux is not enabled on this host");
    }
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}
