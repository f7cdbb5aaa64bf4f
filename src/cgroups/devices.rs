//! Device access rules: v1 devices.allow / devices.deny, and the default
//! allow-list every container gets (as runc).

use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;
use super::fsutil::set;

const FIELD: &str = "linux.resources.devices";

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// The devices every container may use, appended after the configured rules
/// (runc's list): mknod of any device, /dev/null, zero, full, random, urandom,
/// tty, ptmx, /dev/pts/*, /dev/net/tun.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"),
        rule(true, C, Some(1), Some(8), "rwm"),
        rule(true, C, Some(1), Some(7), "rwm"),
        rule(true, C, Some(5), Some(0), "rwm"),
        rule(true, C, Some(1), Some(5), "rwm"),
        rule(true, C, Some(1), Some(9), "rwm"),
        rule(true, C, Some(136), None, "rwm"),
        rule(true, C, Some(5), Some(2), "rwm"),
        rule(true, C, Some(10), Some(200), "rwm"),
    ]
}

/// Allow rules (rwm) for the `linux.devices` entries of a config, to append to
/// `linux.resources.devices` so the container can use the devices it is given
/// (as runc does).
pub fn allow_rules_for(devs: &[LinuxDevice]) -> Vec<LinuxDeviceCgroup> {
    devs.iter()
        .filter(|d| d.typ() != LinuxDeviceType::P)
        .map(|d| rule(true, d.typ(), Some(d.major()), Some(d.minor()), "rwm"))
        .collect()
}

/// The rule denying every device access.
pub(crate) fn deny_all() -> Option<LinuxDeviceCgroup> {
    Some(rule(false, LinuxDeviceType::A, None, None, "rwm"))
}

/// A rule's access string, checked: a non-empty subset of "rwm" ("rwm" if unset).
pub(crate) fn access(r: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let a = r.access().as_deref().unwrap_or("");
    if a.is_empty() {
        return Ok("rwm".to_string());
    }
    if !a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(CgroupError::Invalid {
            field: format!("{FIELD}.access"),
            reason: format!("{a:?} is not made of r, w and m"),
        });
    }
    Ok(a.to_string())
}

/// The v1 line for a rule ("c 1:3 rwm"); `None` for FIFO rules, which the
/// device controller does not govern (FIFOs are never checked).
pub(crate) fn v1_line(r: &LinuxDeviceCgroup) -> Result<Option<String>, CgroupError> {
    let t = match r.typ().unwrap_or_default() {
        LinuxDeviceType::A => "a",
        LinuxDeviceType::B => "b",
        LinuxDeviceType::C | LinuxDeviceType::U => "c",
        LinuxDeviceType::P => return Ok(None),
    };
    let num = |v: Option<i64>, what: &str| -> Result<String, CgroupError> {
        match v {
            None | Some(-1) => Ok("*".to_string()),
            Some(n) if n >= 0 => Ok(n.to_string()),
            Some(n) => Err(CgroupError::Invalid {
                field: format!("{FIELD}.{what}"),
                reason: format!("{n} is negative"),
            }),
        }
    };
    Ok(Some(format!(
        "{t} {}:{} {}",
        num(r.major(), "major")?,
        num(r.minor(), "minor")?,
        access(r)?
    )))
}

/// Write rules in order to devices.allow / devices.deny.
pub(crate) fn apply_v1(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    for r in rules {
        let Some(line) = v1_line(r)? else {
            continue;
        };
        let file = if r.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        set(FIELD, &dir.join(file), &line)?;
    }
    Ok(())
}

/// cgroup v2: device rules need an eBPF program.
pub(crate) fn apply_v2(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    super::bpf::attach_device_filter(dir, rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        let deny_all = rule(false, LinuxDeviceType::A, None, None, "rwm");
        assert_eq!(v1_line(&deny_all).unwrap().unwrap(), "a *:* rwm");
        let mut r = rule(true, LinuxDeviceType::U, Some(4), Some(64), "");
        r.set_access(None);
        assert_eq!(v1_line(&r).unwrap().unwrap(), "c 4:64 rwm");
        assert!(
            v1_line(&rule(true, LinuxDeviceType::P, None, None, "r"))
                .unwrap()
                .is_none()
        );
        assert!(v1_line(&rule(true, LinuxDeviceType::C, None, None, "rx")).is_err());
        assert!(v1_line(&rule(true, LinuxDeviceType::C, Some(-5), None, "r")).is_err());
        // The spec's default rule, parsed from JSON (no type).
        let j: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        assert_eq!(v1_line(&j).unwrap().unwrap(), "a *:* rwm");
    }

    #[test]
    fn defaults_include_null() {
        let lines: Vec<String> = default_allowed_devices()
            .iter()
            .map(|r| v1_line(r).unwrap().unwrap())
            .collect();
        assert!(lines.contains(&"c 1:3 rwm".to_string()));
        assert!(lines.contains(&"c 136:* rwm".to_string()));
    }
}
