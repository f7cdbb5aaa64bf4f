//! The command-line surface that needs no root: --version, --help, `spec`,
//! `features` (checked against features-schema.json by hand) and errors.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::Value;

const CUDDY: &str = env!("CARGO_BIN_EXE_cuddy");

fn cuddy(args: &[&str]) -> Output {
    Command::new(CUDDY).args(args).output().expect("run cuddy")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// runc prints `runc version 1.x.y` then `spec: 1.x.y` (among other lines).
#[test]
fn version_has_runc_shape() {
    for flag in ["--version", "-v"] {
        let out = cuddy(&[flag]);
        assert!(out.status.success(), "{flag}: {}", text(&out.stderr));
        let s = text(&out.stdout);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            format!("cuddy version {}", env!("CARGO_PKG_VERSION")),
            "{s}"
        );
        assert!(lines.contains(&"spec: 1.3.0"), "no spec line: {s}");
    }
}

/// crun's `--version` ends with its feature line (`+SYSTEMD +SELINUX
/// +APPARMOR +CAP +SECCOMP +EBPF +CRIU +YAJL`, each only where built in);
/// cuddy's lists what this build really has: no systemd driver, no CRIU.
/// `-V` is crun's alias.
#[test]
fn version_has_crun_feature_line() {
    for flag in ["--version", "-V"] {
        let out = cuddy(&[flag]);
        assert!(out.status.success(), "{flag}: {}", text(&out.stderr));
        let s = text(&out.stdout);
        let last = s.lines().last().unwrap_or_default();
        assert_eq!(
            last, "+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF",
            "{s}"
        );
        assert!(!s.contains("+CRIU"), "{s}");
    }
}

/// crun's flags: --cgroup-manager takes cgroupfs|systemd|disabled only;
/// create/run take --config/-f; delete takes --regex/-r.
#[test]
fn crun_flags_are_parsed() {
    let out = cuddy(&["--cgroup-manager", "bogus", "list"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cgroupfs"),
        "{}",
        text(&out.stderr)
    );
    for (sub, flag) in [
        ("create", "--config"),
        ("run", "--config"),
        ("delete", "--regex"),
    ] {
        let out = cuddy(&[sub, "--help"]);
        assert!(out.status.success());
        assert!(
            text(&out.stdout).contains(flag),
            "{sub} --help lacks {flag}"
        );
    }
    let out = cuddy(&["--help"]);
    assert!(text(&out.stdout).contains("--cgroup-manager"));
}

#[test]
fn help_lists_subcommands() {
    let out = cuddy(&["--help"]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    for sub in [
        "create", "start", "run", "state", "kill", "delete", "list", "spec", "features",
    ] {
        assert!(
            s.lines()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "--help does not list {sub}: {s}"
        );
    }
}

#[test]
fn unknown_subcommand_fails() {
    let out = cuddy(&["frobnicate"]);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("frobnicate"),
        "{}",
        text(&out.stderr)
    );
    // No subcommand at all is an error too.
    assert!(!cuddy(&[]).status.success());
}

fn spec_in(dir: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["spec", "--bundle", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    cuddy(&args)
}

#[test]
fn spec_writes_runc_defaults_and_refuses_to_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let out = spec_in(d.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = d.path().join("config.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["ociVersion"], "1.3.0");
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["root"]["readonly"], true);
    assert_eq!(v["process"]["cwd"], "/");
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["process"]["user"]["uid"], 0);
    let env: Vec<&str> = v["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    let caps = &v["process"]["capabilities"]["bounding"];
    assert_eq!(
        caps,
        &serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
    assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    let dests: Vec<&str> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup"
        ]
    );
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for t in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        assert!(ns.contains(&t), "namespace {t} missing: {ns:?}");
    }
    assert!(!ns.contains(&"user"));
    assert!(
        v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore")
    );
    assert!(
        v["linux"]["readonlyPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/sys")
    );
    assert!(v["linux"].get("uidMappings").is_none());
    // It is also a config cuddy itself accepts (deserializes as a Spec).
    let _: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();

    // A second `spec` refuses to overwrite and leaves the file alone.
    std::fs::write(&path, b"{\"mine\": true}").unwrap();
    let again = spec_in(d.path(), &[]);
    assert!(!again.status.success());
    let e = text(&again.stderr);
    assert!(e.contains("config.json") && e.contains("exists"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"mine\": true}");
}

#[test]
fn spec_rootless_has_user_namespace_and_mappings() {
    let d = tempfile::tempdir().unwrap();
    let out = spec_in(d.path(), &["--rootless"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user"), "{ns:?}");
    assert!(
        !ns.contains(&"network"),
        "rootless cannot set up a network namespace: {ns:?}"
    );
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    for (key, host) in [("uidMappings", uid), ("gidMappings", gid)] {
        let m = v["linux"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(m.len(), 1, "{key}: {m:?}");
        assert_eq!(m[0]["containerID"], 0);
        assert_eq!(m[0]["hostID"], host);
        assert_eq!(m[0]["size"], 1);
    }
    assert!(
        v["linux"]
            .get("resources")
            .is_none_or(|r| r.get("devices").is_none()),
        "{}",
        v["linux"]
    );
    let _: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
}

// ---- features (features.md, schema/features-schema.json) ----

fn is_oci_version(s: &str) -> bool {
    // defs.json only says "string"; features.md says a SemVer version.
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn semver(s: &str) -> (u64, u64, u64) {
    let core = s.split(['-', '+']).next().unwrap();
    let p: Vec<u64> = core.split('.').map(|x| x.parse().unwrap()).collect();
    (p[0], p[1], p[2])
}

fn assert_array_of_strings(v: &Value, what: &str) -> Vec<String> {
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {v}"));
    a.iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("{what} has a non-string: {x}"))
                .to_string()
        })
        .collect()
}

fn assert_bool_fields(v: &Value, what: &str, fields: &[&str]) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    for (k, x) in o {
        if fields.contains(&k.as_str()) {
            assert!(x.is_boolean(), "{what}.{k} is not a boolean: {x}");
        }
    }
}

/// The schema's NamespaceType enum, read from the spec's own schema files.
fn namespace_enum() -> Vec<String> {
    // The spec text sits beside the checkout (../shared), as on CI.
    let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/oci-runtime-spec/schema/defs-linux.json");
    let p = if beside.exists() {
        beside
    } else {
        std::path::PathBuf::from("/work/shared/oci-runtime-spec/schema/defs-linux.json")
    };
    match std::fs::read(&p) {
        Ok(b) => {
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_array_of_strings(
                &v["definitions"]["NamespaceType"]["enum"],
                "NamespaceType.enum",
            )
        }
        // The spec checkout is not part of the repository: fall back to the
        // enum as published in runtime-spec 1.3.0.
        Err(_) => [
            "mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time",
        ]
        .map(String::from)
        .to_vec(),
    }
}

#[test]
fn features_matches_schema() {
    let out = cuddy(&["features"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("features prints JSON");
    let o = v.as_object().expect("features is an object");

    // required: ociVersionMin, ociVersionMax (strings, versions).
    let min = o["ociVersionMin"].as_str().expect("ociVersionMin string");
    let max = o["ociVersionMax"].as_str().expect("ociVersionMax string");
    assert!(is_oci_version(min), "ociVersionMin {min:?}");
    assert!(is_oci_version(max), "ociVersionMax {max:?}");
    assert!(semver(min) <= semver(max), "{min} > {max}");
    assert_eq!(max, "1.3.0");

    for k in [
        "hooks",
        "mountOptions",
        "potentiallyUnsafeConfigAnnotations",
    ] {
        if let Some(x) = o.get(k) {
            assert_array_of_strings(x, k);
        }
    }
    // Every hook kind of config.md "POSIX-platform Hooks" is implemented.
    let hooks = assert_array_of_strings(&o["hooks"], "hooks");
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|x| x == h), "hooks lacks {h}");
    }
    let mo = assert_array_of_strings(&o["mountOptions"], "mountOptions");
    for m in ["ro", "rw", "bind", "rbind", "nosuid", "rro", "rprivate"] {
        assert!(mo.iter().any(|x| x == m), "mountOptions lacks {m}");
    }
    // Supported since issue 8 (id-mapped mounts, tmpcopyup).
    for m in ["idmap", "ridmap", "tmpcopyup"] {
        assert!(mo.iter().any(|x| x == m), "mountOptions lacks {m}");
    }
    if let Some(a) = o.get("annotations") {
        for (k, x) in a.as_object().expect("annotations object") {
            assert!(x.is_string(), "annotation {k} is not a string");
        }
    }

    let linux = o["linux"].as_object().expect("linux object");
    let allowed = namespace_enum();
    let ns = assert_array_of_strings(&linux["namespaces"], "linux.namespaces");
    assert!(!ns.is_empty());
    for n in &ns {
        assert!(
            allowed.contains(n),
            "linux.namespaces: {n:?} is not in the schema's enum {allowed:?}"
        );
    }
    for c in assert_array_of_strings(&linux["capabilities"], "linux.capabilities") {
        let rest = c
            .strip_prefix("CAP_")
            .unwrap_or_else(|| panic!("capability {c:?}"));
        assert!(
            !rest.is_empty() && rest.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
            "capability {c:?} does not match ^CAP_[A-Z_]+$"
        );
    }
    if let Some(cg) = linux.get("cgroup") {
        assert_bool_fields(
            cg,
            "linux.cgroup",
            &["v1", "v2", "systemd", "systemdUser", "rdma"],
        );
        // The systemd driver (integration/systemd/run.sh tests it).
        assert_eq!(cg["systemd"], true);
    }
    for k in ["seccomp", "apparmor", "selinux", "intelRdt", "netDevices"] {
        if let Some(x) = linux.get(k) {
            assert_bool_fields(x, &format!("linux.{k}"), &["enabled"]);
        }
    }
    if let Some(sc) = linux.get("seccomp") {
        // seccomp is implemented: every action and operator of the spec.
        assert_eq!(sc["enabled"], true);
        assert_eq!(sc["actions"].as_array().map(|a| a.len()), Some(9));
        assert_eq!(sc["operators"].as_array().map(|a| a.len()), Some(7));
        for k in [
            "actions",
            "operators",
            "archs",
            "knownFlags",
            "supportedFlags",
        ] {
            if let Some(x) = sc.get(k) {
                assert_array_of_strings(x, &format!("linux.seccomp.{k}"));
            }
        }
    }
    if let Some(me) = linux.get("mountExtensions") {
        if let Some(id) = me.get("idmap") {
            assert_bool_fields(id, "linux.mountExtensions.idmap", &["enabled"]);
            assert_eq!(id["enabled"], true, "idmap mounts are supported");
        }
    }
}

/// `cuddy features | head -1`: the reader goes away before cuddy writes;
/// cuddy must not panic on EPIPE (Rust ignores SIGPIPE, so print! would).
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let out = Command::new(env!("CARGO_BIN_EXE_cuddy"))
        .arg("features")
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
