//! Catalogue rows: malformed bundles. Each edits the default config
//! (`cuddy spec`, running /bin/true) or replaces config.json's text; `create`
//! must fail with exit 1 and a message naming the field or path.

use std::path::Path;

use serde_json::{Value, json};

use super::{Input, Row};

pub(super) fn c(
    name: &'static str,
    edit: fn(&mut Value, &Path),
    expect: &'static [&'static str],
) -> Row {
    Row {
        name,
        input: Input::Config(edit),
        expect,
        code: 1,
    }
}

fn t(name: &'static str, text: &'static str, expect: &'static [&'static str]) -> Row {
    Row {
        name,
        input: Input::Text(text),
        expect,
        code: 1,
    }
}

pub(super) fn ns_without(c: &mut Value, t: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != t);
}

pub(super) fn push(c: &mut Value, at: &str, v: Value) {
    let (a, b) = at.split_once('.').unwrap_or((at, ""));
    let list = if b.is_empty() {
        &mut c[a]
    } else {
        &mut c[a][b]
    };
    if !list.is_array() {
        *list = json!([]);
    }
    list.as_array_mut().expect("array").push(v);
}

pub(super) fn userns(c: &mut Value) {
    push(c, "linux.namespaces", json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

/// config.md: one row per malformed config (the `linux` section's rows
/// are in linux_rows.rs).
pub fn rows() -> Vec<Row> {
    vec![
        // Not an object, not JSON (config.md: config.json is a JSON object).
        t(
            "array",
            "[]",
            &["must be a JSON object", "an array", "line 1 column 1"],
        ),
        t(
            "array-of-ints",
            "\n  [1, 2]",
            &["must be a JSON object", "line 2 column 3"],
        ),
        t("null", "null", &["must be a JSON object", "null"]),
        t(
            "string",
            "\"1.0.0\"",
            &["must be a JSON object", "a string"],
        ),
        t("empty-file", "", &["must be a JSON object", "empty file"]),
        t(
            "syntax",
            "{\n \"ociVersion\": \"1.0.2\",\n \"root\": ,\n}",
            &["config.json", "line 3 column"],
        ),
        t(
            "trailing",
            "{\"ociVersion\": \"1.0.2\"} }",
            &["config.json", "trailing characters", "line 1"],
        ),
        t(
            "truncated",
            "{\"ociVersion\": \"1.0\u{fffd}\"",
            &["config.json", "EOF"],
        ),
        // config.md "Specification version".
        c(
            "version-missing",
            |c, _| {
                c.as_object_mut().expect("obj").remove("ociVersion");
            },
            &["ociVersion: missing"],
        ),
        c(
            "version-number",
            |c, _| c["ociVersion"] = json!(1),
            &["ociVersion", "invalid type: integer"],
        ),
        c(
            "version-2",
            |c, _| c["ociVersion"] = json!("2.0.0"),
            &["ociVersion", "\"2.0.0\" is not supported"],
        ),
        c(
            "version-empty",
            |c, _| c["ociVersion"] = json!(""),
            &["ociVersion", "\"\" is not supported"],
        ),
        c(
            "version-banana",
            |c, _| c["ociVersion"] = json!("banana"),
            &["ociVersion", "\"banana\""],
        ),
        // config.md "Root".
        c(
            "root-missing",
            |c, _| {
                c.as_object_mut().expect("obj").remove("root");
            },
            &["root: missing"],
        ),
        c(
            "root-path-missing",
            |c, _| c["root"] = json!({"readonly": true}),
            &["root.path", "missing or empty"],
        ),
        c(
            "root-path-absent",
            |c, d| c["root"]["path"] = json!(d.join("no-rootfs")),
            &["root.path", "no-rootfs", "No such file"],
        ),
        c(
            "root-path-file",
            |c, d| {
                std::fs::write(d.join("f"), "").expect("write");
                c["root"]["path"] = json!(d.join("f"))
            },
            &["root.path", "is not a directory"],
        ),
        c(
            "root-readonly-string",
            |c, _| c["root"]["readonly"] = json!("yes"),
            &["root.readonly", "invalid type"],
        ),
        // config.md "Process".
        c(
            "process-missing",
            |c, _| {
                c.as_object_mut().expect("obj").remove("process");
            },
            &["process: missing"],
        ),
        c(
            "args-string",
            |c, _| c["process"]["args"] = json!("/bin/true"),
            &["process.args", "invalid type"],
        ),
        c(
            "args-empty",
            |c, _| c["process"]["args"] = json!([]),
            &["process.args", "must name"],
        ),
        c(
            "args-empty-program",
            |c, _| c["process"]["args"] = json!([""]),
            &["process.args", "must name"],
        ),
        c(
            "cwd-relative",
            |c, _| c["process"]["cwd"] = json!("tmp"),
            &["process.cwd", "\"tmp\"", "absolute"],
        ),
        c(
            "cwd-missing",
            |c, _| {
                c["process"].as_object_mut().expect("obj").remove("cwd");
            },
            &["process", "cwd"],
        ),
        c(
            "env-no-equals",
            |c, _| c["process"]["env"] = json!(["PATH=/bin", "JUSTNAME"]),
            &["process.env", "JUSTNAME", "KEY=VALUE"],
        ),
        c(
            "env-number",
            |c, _| c["process"]["env"] = json!([1]),
            &["process.env[0]", "invalid type"],
        ),
        c(
            "terminal-string",
            |c, _| c["process"]["terminal"] = json!("yes"),
            &["process.terminal", "invalid type"],
        ),
        c(
            "uid-negative",
            |c, _| c["process"]["user"]["uid"] = json!(-1),
            &["process.user.uid", "invalid value"],
        ),
        c(
            "uid-name",
            |c, _| c["process"]["user"]["uid"] = json!("root"),
            &["process.user.uid", "invalid type"],
        ),
        c(
            "uid-unchanged",
            |c, _| c["process"]["user"]["uid"] = json!(4294967295u32),
            &["process.user.uid", "4294967295", "outside"],
        ),
        c(
            "gid-too-big",
            |c, _| c["process"]["user"]["gid"] = json!(2147483648u32),
            &["process.user.gid", "outside"],
        ),
        c(
            "additional-gid",
            |c, _| c["process"]["user"]["additionalGids"] = json!([10, 4294967295u32]),
            &["process.user.additionalGids[1]", "outside"],
        ),
        c(
            "oom-low",
            |c, _| c["process"]["oomScoreAdj"] = json!(-1001),
            &["process.oomScoreAdj", "-1001"],
        ),
        c(
            "caps-effective-not-permitted",
            |c, _| {
                push(
                    &mut c["process"],
                    "capabilities.effective",
                    json!("CAP_SYS_ADMIN"),
                )
            },
            &[
                "process.capabilities.effective",
                "CAP_SYS_ADMIN",
                "not in process.capabilities.permitted",
            ],
        ),
        c(
            "caps-not-array",
            |c, _| c["process"]["capabilities"]["bounding"] = json!("CAP_KILL"),
            &["process.capabilities.bounding", "invalid type"],
        ),
        c(
            "scheduler-policy",
            |c, _| c["process"]["scheduler"] = json!({"policy": "SCHED_FAST"}),
            &["process.scheduler.policy", "SCHED_FAST"],
        ),
        c(
            "iopriority-class",
            |c, _| {
                c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_FAST", "priority": 1})
            },
            &["process.ioPriority.class", "IOPRIO_CLASS_FAST"],
        ),
        // config.md "POSIX process": rlimits.
        c(
            "rlimit-unknown",
            |c, _| {
                c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])
            },
            &["process.rlimits[0].type", "RLIMIT_BOGUS"],
        ),
        c(
            "rlimit-twice",
            |c, _| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
            &["process.rlimits", "RLIMIT_NOFILE is listed twice"],
        ),
        c(
            "rlimit-negative",
            |c, _| {
                c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1}])
            },
            &["process.rlimits[0].soft", "invalid value"],
        ),
        c(
            "rlimit-no-hard",
            |c, _| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1}]),
            &["process.rlimits", "RLIMIT_NOFILE", "above hard limit 0"],
        ),
        // config.md "Mounts".
        c(
            "mounts-object",
            |c, _| c["mounts"] = json!({"destination": "/x"}),
            &["mounts", "invalid type"],
        ),
        c(
            "mount-no-destination",
            |c, _| push(c, "mounts", json!({"type": "tmpfs", "source": "tmpfs"})),
            &["mounts[", "destination"],
        ),
        c(
            "mount-options-string",
            |c, _| {
                push(
                    c,
                    "mounts",
                    json!({"destination": "/x", "type": "tmpfs", "options": "ro"}),
                )
            },
            &["mounts[", "].options", "invalid type"],
        ),
        c(
            "mount-over-proc-self",
            |c, _| {
                push(
                    c,
                    "mounts",
                    json!({"destination": "/proc/self", "type": "tmpfs", "source": "tmpfs"}),
                )
            },
            &["mounts[", "].destination", "/proc/self"],
        ),
        c(
            "mount-dest-dotdot",
            |c, _| {
                push(
                    c,
                    "mounts",
                    json!({"destination": "../../etc", "type": "tmpfs", "source": "tmpfs"}),
                )
            },
            &["mounts[", "].destination", "absolute"],
        ),
    ]
}
