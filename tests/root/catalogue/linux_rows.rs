//! Catalogue rows: malformed `linux` sections of config.json
//! (config-linux.md), as config_rows.rs.

use serde_json::json;

use super::Row;
use super::config_rows::{c, ns_without, push, userns};

/// config-linux.md: one row per malformed `linux` field.
pub fn rows() -> Vec<Row> {
    vec![
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
