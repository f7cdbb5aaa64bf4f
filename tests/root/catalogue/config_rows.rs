//! Catalogue rows: malformed bundles. Each edits the default config
//! (`cuddy spec`, running /bin/true) or replaces config.json's text; `create`
//! must fail with exit 1 and a message naming the field or path.

use std::path::Path;

use serde_json::{Value, json};

use super::{Input, Row};

fn c(name: &'static str, edit: fn(&mut Value, &Path), expect: &'static [&'static str]) -> Row {
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

fn ns_without(c: &mut Value, t: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != t);
}

fn push(c: &mut Value, at: &str, v: Value) {
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

fn userns(c: &mut Value) {
    push(c, "linux.namespaces", json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

/// config.md, config-linux.md: one row per malformed config.
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
            "not-utf8",
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
        // config-linux.md "Namespaces".
        c(
            "ns-not-array",
            |c, _| c["linux"]["namespaces"] = json!("pid"),
            &["linux.namespaces", "invalid type"],
        ),
        c(
            "ns-no-type",
            |c, _| push(c, "linux.namespaces", json!({"path": "/proc/1/ns/net"})),
            &["linux.namespaces[6]", "type"],
        ),
        c(
            "ns-path-relative",
            |c, _| {
                ns_without(c, "network");
                push(
                    c,
                    "linux.namespaces",
                    json!({"type": "network", "path": "proc/1/ns/net"}),
                )
            },
            &["linux.namespaces[5].path", "absolute"],
        ),
        c(
            "userns-without-mountns",
            |c, _| {
                userns(c);
                ns_without(c, "mount")
            },
            &["linux.namespaces", "needs a mount namespace"],
        ),
        c(
            "propagation-bogus",
            |c, _| c["linux"]["rootfsPropagation"] = json!("sideways"),
            &["linux.rootfsPropagation", "sideways"],
        ),
        c(
            "propagation-without-mountns",
            |c, _| {
                ns_without(c, "mount");
                c["linux"]["rootfsPropagation"] = json!("private")
            },
            &["linux.rootfsPropagation", "mount namespace"],
        ),
        c(
            "domainname-without-uts",
            |c, _| {
                ns_without(c, "uts");
                c["hostname"] = json!(null);
                c["domainname"] = json!("example.org")
            },
            &["domainname", "UTS namespace"],
        ),
        c(
            "time-offset-clock",
            |c, _| {
                push(c, "linux.namespaces", json!({"type": "time"}));
                c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1, "nanosecs": 0}})
            },
            &["linux.timeOffsets", "realtime"],
        ),
        // config-linux.md "User namespace mappings" (issue 11 item 8).
        c(
            "uidmap-overlap",
            |c, _| {
                userns(c);
                c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 500, "hostID": 300000, "size": 10}])
            },
            &[
                "linux.uidMappings[1]",
                "containerID range overlaps",
                "linux.uidMappings[0]",
            ],
        ),
        c(
            "gidmap-host-overlap",
            |c, _| {
                userns(c);
                c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 5000, "hostID": 100999, "size": 10}])
            },
            &["linux.gidMappings[1]", "hostID range overlaps"],
        ),
        c(
            "uidmap-zero-size",
            |c, _| {
                userns(c);
                c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 0}])
            },
            &["linux.uidMappings[0].size", "greater than zero"],
        ),
        c(
            "uidmap-341-lines",
            |c, _| {
                userns(c);
                c["linux"]["uidMappings"] = json!(
                    (0..341)
                        .map(|i| json!({"containerID": i, "hostID": 100000 + i, "size": 1}))
                        .collect::<Vec<_>>()
                )
            },
            &["linux.uidMappings", "341 mappings", "at most 340"],
        ),
        c(
            "gidmap-wraps",
            |c, _| {
                userns(c);
                c["linux"]["gidMappings"] =
                    json!([{"containerID": 4294967000u32, "hostID": 100000, "size": 65536}])
            },
            &[
                "linux.gidMappings[0]",
                "containerID 4294967000 + size 65536",
            ],
        ),
        c(
            "gidmap-missing",
            |c, _| {
                userns(c);
                c["linux"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("gidMappings");
            },
            &["linux.gidMappings", "needs gid mappings"],
        ),
        c(
            "uidmap-negative",
            |c, _| {
                userns(c);
                c["linux"]["uidMappings"][0]["hostID"] = json!(-1)
            },
            &["linux.uidMappings[0].hostID", "invalid value"],
        ),
        // config-linux.md "Control groups".
        c(
            "cgroups-path-dotdot",
            |c, _| c["linux"]["cgroupsPath"] = json!("../../../escape"),
            &["cgroupsPath", ".."],
        ),
        c(
            "cgroups-path-inner-dotdot",
            |c, _| c["linux"]["cgroupsPath"] = json!("/cuddy/../../escape"),
            &["cgroupsPath", ".."],
        ),
        c(
            "cgroups-path-number",
            |c, _| c["linux"]["cgroupsPath"] = json!(5),
            &["linux.cgroupsPath", "invalid type"],
        ),
        // config-linux.md "Devices" and "Allowed device list".
        c(
            "device-relative",
            |c, _| {
                c["linux"]["devices"] =
                    json!([{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}])
            },
            &["linux.devices[0].path", "absolute"],
        ),
        c(
            "device-type",
            |c, _| {
                c["linux"]["devices"] =
                    json!([{"path": "/dev/fuse", "type": "x", "major": 10, "minor": 229}])
            },
            &["linux.devices[0].type", "unknown variant"],
        ),
        c(
            "device-filemode-string",
            |c, _| c["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": "rw"}]),
            &["linux.devices[0].fileMode", "invalid type"],
        ),
        c(
            "resources-array",
            |c, _| push(&mut c["linux"], "resources", json!(null)),
            &["linux.resources", "must be a JSON object", "found an array"],
        ),
        c(
            "device-rule-access",
            |c, _| {
                c["linux"]["resources"]["devices"] =
                    json!([{"allow": true, "type": "q", "access": "rwm"}])
            },
            &["linux.resources.devices[0].type", "unknown variant"],
        ),
        // config-linux.md "Sysctl".
        c(
            "sysctl-host",
            |c, _| c["linux"]["sysctl"] = json!({"vm.swappiness": "10"}),
            &["linux.sysctl", "vm.swappiness", "host"],
        ),
        c(
            "sysctl-hostname",
            |c, _| c["linux"]["sysctl"] = json!({"kernel.hostname": "x"}),
            &["linux.sysctl", "kernel.hostname", "not allowed"],
        ),
        c(
            "sysctl-mqueue-no-ipc",
            |c, _| {
                ns_without(c, "ipc");
                c["linux"]["sysctl"] = json!({"fs.mqueue.msg_max": "20"})
            },
            &["linux.sysctl", "fs.mqueue.msg_max", "ipc namespace"],
        ),
        c(
            "sysctl-number",
            |c, _| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": 1}),
            &["linux.sysctl", "invalid type"],
        ),
        // config-linux.md resources.
        c(
            "memory-negative",
            |c, _| c["linux"]["resources"]["memory"] = json!({"limit": -5}),
            &["linux.resources.memory.limit", "-5"],
        ),
        c(
            "memory-string",
            |c, _| c["linux"]["resources"]["memory"] = json!({"limit": "1g"}),
            &["linux.resources.memory.limit", "invalid type"],
        ),
        c(
            "swappiness",
            |c, _| c["linux"]["resources"]["memory"] = json!({"swappiness": 200}),
            &["linux.resources.memory.swappiness"],
        ),
        c(
            "cpu-shares",
            |c, _| c["linux"]["resources"]["cpu"] = json!({"shares": 1}),
            &["linux.resources.cpu.shares", "outside"],
        ),
        c(
            "cpuset-cpus",
            |c, _| c["linux"]["resources"]["cpu"] = json!({"cpus": "zero-three"}),
            &["linux.resources.cpu.cpus", "zero-three"],
        ),
        c(
            "pids-string",
            |c, _| c["linux"]["resources"]["pids"] = json!({"limit": "many"}),
            &["linux.resources.pids.limit", "invalid type"],
        ),
        c(
            "blkio-weight",
            |c, _| c["linux"]["resources"]["blockIO"] = json!({"weight": 5}),
            &["linux.resources.blockIO.weight", "5 is out of range"],
        ),
        c(
            "blkio-weight-device",
            |c, _| {
                c["linux"]["resources"]["blockIO"] =
                    json!({"weightDevice": [{"major": 8, "minor": 0, "weight": 2000}]})
            },
            &["linux.resources.blockIO.weightDevice[0].weight", "2000"],
        ),
        c(
            "hugepage-size",
            |c, _| {
                c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "3MB", "limit": 0}])
            },
            &["linux.resources.hugepageLimits"],
        ),
        // config-linux.md "Seccomp".
        c(
            "seccomp-action",
            |c, _| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_MAYBE"}),
            &["linux.seccomp.defaultAction", "SCMP_ACT_MAYBE"],
        ),
        c(
            "seccomp-arch",
            |c, _| {
                c["linux"]["seccomp"] =
                    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]})
            },
            &["linux.seccomp.architectures[0]", "SCMP_ARCH_Z80"],
        ),
        c(
            "seccomp-syscall-action",
            |c, _| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOPE"}]}),
            &["linux.seccomp.syscalls[0].action", "SCMP_ACT_NOPE"],
        ),
        c(
            "seccomp-arg-op",
            |c, _| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}),
            &["linux.seccomp.syscalls[0].args[0].op", "SCMP_CMP_ABOUT"],
        ),
        c(
            "seccomp-arg-index",
            |c, _| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            &["linux.seccomp.syscalls[0].args[0].index", "9"],
        ),
        // config.md "POSIX-platform Hooks".
        c(
            "hook-relative",
            |c, _| c["hooks"] = json!({"prestart": [{"path": "bin/true"}]}),
            &["hooks.prestart[0].path", "absolute"],
        ),
        c(
            "hook-timeout-zero",
            |c, _| c["hooks"] = json!({"poststart": [{"path": "/bin/true", "timeout": 0}]}),
            &["hooks.poststart[0].timeout", "greater than zero"],
        ),
        c(
            "hook-env",
            |c, _| c["hooks"] = json!({"poststop": [{"path": "/bin/true", "env": ["NOEQUALS"]}]}),
            &["hooks.poststop[0].env", "NOEQUALS"],
        ),
        c(
            "hook-container-missing",
            |c, _| c["hooks"] = json!({"createContainer": [{"path": "/nonexistent/hook"}]}),
            &["hooks.createContainer[0].path", "does not exist"],
        ),
        c(
            "hooks-not-array",
            |c, _| c["hooks"] = json!({"prestart": {"path": "/bin/true"}}),
            &["hooks.prestart", "invalid type"],
        ),
        // config-linux.md: paths, personality, unsupported features.
        c(
            "masked-relative",
            |c, _| push(c, "linux.maskedPaths", json!("proc/kcore")),
            &["linux.maskedPaths", "proc/kcore", "absolute"],
        ),
        c(
            "readonly-relative",
            |c, _| push(c, "linux.readonlyPaths", json!("proc/sys")),
            &["linux.readonlyPaths", "proc/sys", "absolute"],
        ),
        c(
            "personality-flags",
            |c, _| {
                c["linux"]["personality"] =
                    json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})
            },
            &["linux.personality.flags", "ADDR_NO_RANDOMIZE"],
        ),
        c(
            "personality-domain",
            |c, _| c["linux"]["personality"] = json!({"domain": "WINDOWS"}),
            &["linux.personality.domain", "WINDOWS"],
        ),
        c(
            "intel-rdt",
            |c, _| c["linux"]["intelRdt"] = json!({"closID": "x"}),
            &["linux.intelRdt", "not supported"],
        ),
    ]
}
