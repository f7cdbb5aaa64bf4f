//! The transient scope of a container: its name and slice from the systemd
//! form of `cgroupsPath`, its cgroupfs path, and its unit properties.
//!
//! Facts (runc's specconv and libcontainer/cgroups/systemd, systemd.resource-control(5)):
//! - `cgroupsPath` is `slice:prefix:name`; the unit is `<prefix>-<name>.scope`,
//!   or `<name>` itself when it ends in `.slice`; an empty slice is
//!   `system.slice`; an empty cgroupsPath is `system.slice:cuddy:<id>` (runc
//!   uses its own name as the prefix);
//! - a slice `a-b-c.slice` lives at `/a.slice/a-b.slice/a-b-c.slice`; `-.slice`
//!   is the root;
//! - `CPUQuotaPerSecUSec` is quota * 1 s / period, rounded *up* to 10 ms
//!   (systemd's granularity), `u64::MAX` meaning no limit;
//!   `CPUQuotaPeriodUSec` needs systemd 242, `AllowedCPUs` /
//!   `AllowedMemoryNodes` 244 (cgroup v2 only);
//! - v2 names: `MemoryMax`, `MemoryLow`, `MemorySwapMax`, `CPUWeight`,
//!   `IOWeight`; v1 names: `MemoryLimit`, `CPUShares`, `BlockIOWeight`;
//!   `TasksMax` both.

use oci_spec::runtime::LinuxResources;

use super::wire::Value;
use crate::cgroups::{blkio_weight_to_io_weight, shares_to_weight};

/// systemd's "infinity" for the u64 properties.
pub const INFINITY: u64 = u64::MAX;

/// Errors of the unit properties: the configuration field and why.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// A configuration value that cannot become a unit property.
    #[error("invalid {field} {value:?} for the systemd cgroup driver: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
}

fn invalid(field: &str, value: &str, reason: impl Into<String>) -> UnitError {
    UnitError::Invalid {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The container's unit and where it lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    /// The parent slice unit (`system.slice`).
    pub slice: String,
    /// The unit (`docker-ID.scope`).
    pub unit: String,
}

/// A unit name part: non-empty, no `/`, no NUL, not `.`/`..`.
fn check_part(field: &str, whole: &str, part: &str) -> Result<(), UnitError> {
    if part.contains(['/', '\0']) || part == "." || part == ".." {
        return Err(invalid(
            field,
            whole,
            format!("{part:?} cannot be part of a unit name"),
        ));
    }
    Ok(())
}

impl Scope {
    /// Parse `slice:prefix:name` (None: `system.slice:cuddy:<id>`).
    pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Scope, UnitError> {
        const F: &str = "linux.cgroupsPath";
        let default = format!("system.slice:cuddy:{id}");
        let path = cgroups_path.unwrap_or(&default);
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(invalid(
                F,
                path,
                "expected \"slice:prefix:name\" for systemd cgroups",
            ));
        };
        for p in [slice, prefix, name] {
            check_part(F, path, p)?;
        }
        if name.is_empty() {
            return Err(invalid(F, path, "the name part is empty"));
        }
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        if !slice.ends_with(".slice") {
            return Err(invalid(F, path, format!("{slice:?} is not a .slice unit")));
        }
        let unit = if name.ends_with(".slice") {
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        Ok(Scope {
            slice: slice.to_string(),
            unit,
        })
    }

    /// The unit's path relative to a cgroup hierarchy's root
    /// (`/system.slice/docker-ID.scope`).
    pub fn cgroup_path(&self) -> Result<String, UnitError> {
        Ok(format!("{}/{}", expand_slice(&self.slice)?, self.unit))
    }
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` → `` (the root).
pub fn expand_slice(slice: &str) -> Result<String, UnitError> {
    const F: &str = "linux.cgroupsPath";
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(invalid(F, slice, "a slice name ends in .slice"));
    };
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(invalid(
            F,
            slice,
            "a slice name has no empty dash-separated part",
        ));
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// One `(sv)` property.
pub fn prop(name: &str, v: Value) -> Value {
    Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
}

/// The name of a `(sv)` property.
pub fn prop_name(p: &Value) -> Option<&str> {
    match p {
        Value::Struct(f) => f.first().and_then(Value::as_str),
        _ => None,
    }
}

/// The properties every container scope gets: the slice, the init's pid,
/// delegation, no default dependencies (so stopping needs no ordering) and
/// accounting for each controller cuddy sets.
pub fn base_properties(scope: &Scope, pid: u32, description: &str) -> Vec<Value> {
    let mut props = vec![
        prop("Description", Value::Str(description.into())),
        prop("Slice", Value::Str(scope.slice.clone())),
        prop("PIDs", Value::Array("u".into(), vec![Value::U32(pid)])),
        prop("Delegate", Value::Bool(true)),
        prop("DefaultDependencies", Value::Bool(false)),
    ];
    for acct in [
        "MemoryAccounting",
        "CPUAccounting",
        "IOAccounting",
        "TasksAccounting",
    ] {
        props.push(prop(acct, Value::Bool(true)));
    }
    props
}

/// The CPU quota per second, rounded up to 10 ms as systemd stores it.
pub fn quota_per_sec_usec(quota: i64, period: u64) -> u64 {
    let Ok(quota) = u64::try_from(quota) else {
        return INFINITY;
    };
    if quota == 0 || period == 0 {
        return INFINITY;
    }
    let per_sec = quota.saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000).saturating_mul(10_000)
}

/// systemd's CPU set: byte i bit j is CPU (or node) 8i+j.
pub fn cpu_set_bits(field: &str, list: &str) -> Result<Vec<u8>, UnitError> {
    let mut bits: Vec<u8> = Vec::new();
    for range in list.trim().split(',').filter(|r| !r.is_empty()) {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let num = |s: &str| -> Result<usize, UnitError> {
            let n: usize = s
                .trim()
                .parse()
                .map_err(|_| invalid(field, list, format!("{s:?} is not a number")))?;
            if n >= 8192 {
                return Err(invalid(field, list, format!("{n} is beyond 8191")));
            }
            Ok(n)
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(invalid(field, list, format!("range {range:?} is reversed")));
        }
        for n in lo..=hi {
            if bits.len() <= n / 8 {
                bits.resize(n / 8 + 1, 0);
            }
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bits)
}

fn bytes(v: Vec<u8>) -> Value {
    Value::Array("y".into(), v.into_iter().map(Value::Byte).collect())
}

/// The resource properties systemd knows for `r`, for cgroup v2 (`v2`) or v1,
/// on systemd `version`. The rest of `linux.resources` is written to cgroupfs
/// by the caller (and these too, so that a reload changes nothing).
pub fn resource_properties(
    r: &LinuxResources,
    v2: bool,
    version: u32,
    pids_zero_unlimited: bool,
) -> Result<Vec<Value>, UnitError> {
    let mut props = Vec::new();
    let limit = |v: i64| u64::try_from(v).unwrap_or(INFINITY);
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            let name = if v2 { "MemoryMax" } else { "MemoryLimit" };
            props.push(prop(name, Value::U64(limit(l))));
        }
        if v2 {
            if let Some(l) = m.reservation().filter(|l| *l > 0) {
                props.push(prop("MemoryLow", Value::U64(limit(l))));
            }
            if let Ok(Some(s)) = crate::cgroups::v2::convert_memory_swap(m.swap(), m.limit()) {
                props.push(prop("MemorySwapMax", Value::U64(limit(s))));
            }
        }
    }
    if let Some(c) = r.cpu() {
        cpu_properties(&mut props, c, v2, version)?;
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        if l < 0 || (l == 0 && pids_zero_unlimited) {
            props.push(prop("TasksMax", Value::U64(INFINITY)));
        } else {
            props.push(prop("TasksMax", Value::U64(limit(l))));
        }
    }
    // Docker sends `blockIO.weight: 0` for "not set" (as every zero field
    // of config-linux.md#block-io); systemd refuses 0 ("out of range":
    // BlockIOWeight is 10–1000, IOWeight 1–10000), so, as runc, none.
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        if v2 {
            let w = blkio_weight_to_io_weight(u64::from(w));
            props.push(prop("IOWeight", Value::U64(w)));
        } else {
            props.push(prop("BlockIOWeight", Value::U64(u64::from(w))));
        }
    }
    Ok(props)
}

fn cpu_properties(
    props: &mut Vec<Value>,
    c: &oci_spec::runtime::LinuxCpu,
    v2: bool,
    version: u32,
) -> Result<(), UnitError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        if v2 {
            props.push(prop("CPUWeight", Value::U64(shares_to_weight(s))));
        } else {
            props.push(prop("CPUShares", Value::U64(s)));
        }
    }
    let period = c.period().filter(|p| *p != 0);
    if let Some(p) = period.filter(|_| version >= 242) {
        props.push(prop("CPUQuotaPeriodUSec", Value::U64(p)));
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        let usec = quota_per_sec_usec(q, period.unwrap_or(100_000));
        props.push(prop("CPUQuotaPerSecUSec", Value::U64(usec)));
    }
    if v2 && version >= 244 {
        let sets = [
            ("AllowedCPUs", "linux.resources.cpu.cpus", c.cpus()),
            ("AllowedMemoryNodes", "linux.resources.cpu.mems", c.mems()),
        ];
        for (name, field, list) in sets {
            if let Some(list) = list.as_deref().filter(|l| !l.trim().is_empty()) {
                props.push(prop(name, bytes(cpu_set_bits(field, list)?)));
            }
        }
    }
    Ok(())
}

/// A device rule's major or minor: `None` or negative is the wildcard.
fn dev_num(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

/// The name `/proc/devices` gives to a major number (`char-<name>` and
/// `block-<name>` are how systemd's `DeviceAllow=` names a whole major).
fn major_name(proc_devices: &str, block: bool, major: u64) -> Option<String> {
    let section = if block {
        "Block devices:"
    } else {
        "Character devices:"
    };
    proc_devices
        .split("\n\n")
        .find(|s| s.trim_start().starts_with(section))?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (num, name) = l.trim().split_once(' ')?;
            (num.parse::<u64>().ok()? == major).then(|| name.trim().to_string())
        })
}

/// `DevicePolicy` and `DeviceAllow` for the device rules, in order, as the
/// cgroupfs driver applies them (so a `daemon-reload`, which makes systemd
/// write the scope's devices cgroup again, changes nothing; without them it
/// writes `a *:* rwm`: every device). Facts (systemd.resource-control(5)):
/// `/dev/char/M:m` and `/dev/block/M:m` are parsed without a device node;
/// `char-<name>`/`block-<name>` match `/proc/devices` names (globs allowed).
/// systemd cannot express "everything but X", so a deny rule other than
/// "deny all" while everything is allowed is refused.
pub fn device_properties(
    rules: &[oci_spec::runtime::LinuxDeviceCgroup],
    proc_devices: &str,
) -> Result<Vec<Value>, UnitError> {
    use oci_spec::runtime::LinuxDeviceType as T;
    const F: &str = "linux.resources.devices";
    let mut allow_all = false;
    let mut allowed: Vec<(String, String)> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let access = r.access().clone().unwrap_or_else(|| "rwm".to_string());
        let typ = r.typ().unwrap_or(T::A);
        let (major, minor) = (dev_num(r.major()), dev_num(r.minor()));
        let entry = match typ {
            T::A => None,
            T::B | T::C | T::U => {
                let (kind, block) = if typ == T::B {
                    ("block", true)
                } else {
                    ("char", false)
                };
                match (major, minor) {
                    (None, _) => Some(format!("{kind}-*")),
                    (Some(ma), Some(mi)) => Some(format!("/dev/{kind}/{ma}:{mi}")),
                    (Some(ma), None) => match major_name(proc_devices, block, ma) {
                        Some(name) => Some(format!("{kind}-{name}")),
                        None => {
                            tracing::warn!(
                                "{F}[{i}]: major {ma} is not in /proc/devices: not in DeviceAllow"
                            );
                            continue;
                        }
                    },
                }
            }
            // FIFOs are not device nodes: nothing for systemd to allow.
            T::P => continue,
        };
        match (r.allow(), entry) {
            (true, None) => {
                allow_all = true;
                allowed.clear();
            }
            (false, None) => {
                allow_all = false;
                allowed.clear();
            }
            // Already allowed (a later "deny all" starts a new list).
            (true, Some(_)) if allow_all => {}
            (true, Some(e)) => allowed.push((e, access)),
            (false, Some(e)) if !allow_all => allowed.retain(|(a, _)| *a != e),
            (false, Some(e)) => {
                return Err(invalid(
                    &format!("{F}[{i}]"),
                    &e,
                    "systemd cannot deny one device while allowing all (DevicePolicy has no deny list)",
                ));
            }
        }
    }
    let policy = if allow_all { "auto" } else { "strict" };
    let list = allowed
        .into_iter()
        .map(|(p, a)| Value::Struct(vec![Value::Str(p), Value::Str(a)]))
        .collect();
    Ok(vec![
        prop("DevicePolicy", Value::Str(policy.into())),
        prop("DeviceAllow", Value::Array("(ss)".into(), list)),
    ])
}
