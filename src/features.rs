//! `cuddy features` (features.md): what this build of cuddy supports. Only
//! what is implemented is listed; the unit tests below check the lists
//! against the code that implements them (mount option parser, namespace
//! plan, capability names, hooks), so the output stays truthful.

use serde_json::{Value, json};

/// Mount options cuddy understands (flags, propagation, recursive attributes).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "tmpcopyup",
    "unbindable",
];

pub fn features() -> Value {
    let (seccomp, libseccomp) = crate::seccomp::features();
    let caps: Vec<String> = {
        let mut v: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": seccomp,
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true}
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.cuddy.version": env!("CARGO_PKG_VERSION"),
            "io.github.seccomp.libseccomp.version": libseccomp.unwrap_or_default()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// features.md#mount-options: every listed option is one the parser
    /// knows as a flag, propagation or recursive attribute (not passed on
    /// as filesystem data, not refused).
    #[test]
    fn every_mount_option_is_recognized() {
        for o in MOUNT_OPTIONS {
            let parsed = crate::mounts::parse_options(&[o.to_string()])
                .unwrap_or_else(|e| panic!("{o}: {e}"));
            assert!(parsed.data.is_empty(), "{o} is passed as data");
        }
    }

    /// features-linux.md#namespaces: every name parses as a namespace type
    /// (cuddy's plan handles all of them).
    #[test]
    fn namespaces_and_capabilities_parse() {
        let f = features();
        for n in f["linux"]["namespaces"].as_array().unwrap() {
            let t: Result<oci_spec::runtime::LinuxNamespaceType, _> =
                serde_json::from_value(n.clone());
            assert!(t.is_ok(), "{n}");
        }
        // features-linux.md#capabilities: names config.json may use.
        for c in f["linux"]["capabilities"].as_array().unwrap() {
            let t: Result<oci_spec::runtime::Capability, _> = serde_json::from_value(c.clone());
            assert!(t.is_ok(), "{c}");
        }
    }

    /// features.md#hooks: the six kinds cuddy runs (hooks::Kind).
    #[test]
    fn hooks_are_the_kinds_cuddy_runs() {
        use crate::hooks::Kind;
        let names: Vec<&str> = [
            Kind::Prestart,
            Kind::CreateRuntime,
            Kind::CreateContainer,
            Kind::StartContainer,
            Kind::Poststart,
            Kind::Poststop,
        ]
        .iter()
        .map(|k| k.name())
        .collect();
        assert_eq!(features()["hooks"], json!(names));
    }
}
