//! Capability names the runtime cannot apply: config.md#linux-process says
//! "If the runtime cannot map a capability name to a capability, it MUST log
//! a warning and SHOULD NOT fail". oci-spec's `Capability` enum refuses a
//! name it does not know, so names are filtered on the JSON value, before
//! typed deserialisation: names this build does not know (a newer spec, a
//! typo) and names the running kernel does not know (CAP_CHECKPOINT_RESTORE
//! needs Linux 5.9, CAP_BPF and CAP_PERFMON 5.8) are dropped with a warning,
//! as runc does.

use serde_json::Value;

/// The five capability sets of a process (config.md#linux-process).
pub const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// Is `name` (e.g. `CAP_CHOWN`) one this build and the running kernel know?
/// `Err` says why not.
pub fn check(name: &str) -> Result<(), &'static str> {
    let known: Result<oci_spec::runtime::Capability, _> =
        serde_json::from_value(Value::String(name.to_string()));
    if known.is_err() {
        return Err("unknown capability");
    }
    let cap: caps::Capability = name.parse().map_err(|_| "unknown capability")?;
    if !kernel_caps().contains(&cap) {
        return Err("not supported by the running kernel");
    }
    Ok(())
}

/// The capabilities the running kernel knows, probed once per process: the
/// bounding set lists them (PR_CAPBSET_READ fails with EINVAL above
/// /proc/sys/kernel/cap_last_cap).
fn kernel_caps() -> &'static caps::CapsHashSet {
    static KNOWN: std::sync::OnceLock<caps::CapsHashSet> = std::sync::OnceLock::new();
    KNOWN.get_or_init(caps::runtime::thread_all_supported)
}

/// Does the running kernel know every capability this build does? Then no
/// name that parses can be refused by the kernel check.
pub fn kernel_knows_all() -> bool {
    caps::all().is_subset(kernel_caps())
}

/// The kernel keeps effective capabilities within the permitted set
/// (capabilities(7); capset(2) fails with EPERM otherwise): a name in
/// `effective` that is not in `permitted` is refused, naming it, instead of
/// failing in the container's init as "set permitted capabilities: EPERM".
pub fn check_effective(c: &oci_spec::runtime::LinuxCapabilities) -> Result<(), (String, String)> {
    let permitted = c.permitted().clone().unwrap_or_default();
    let mut outside: Vec<String> = c
        .effective()
        .iter()
        .flatten()
        .filter(|cap| !permitted.contains(cap))
        .map(|cap| match serde_json::to_value(cap) {
            Ok(Value::String(name)) => name,
            _ => format!("CAP_{cap}"),
        })
        .collect();
    outside.sort();
    match outside.first() {
        None => Ok(()),
        Some(_) => Err((
            "process.capabilities.effective".to_string(),
            format!(
                "{} not in process.capabilities.permitted: the kernel allows effective capabilities only within the permitted set",
                outside.join(", ")
            ),
        )),
    }
}

/// Removes, from the capability sets of the `capabilities` object of a
/// process, every name `ok` refuses; returns one warning per name removed,
/// naming `field` (e.g. `process.capabilities`). A value that is not an
/// array of strings is left alone (typed deserialisation reports it).
pub fn filter(
    capabilities: &mut Value,
    field: &str,
    ok: &dyn Fn(&str) -> Result<(), &'static str>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(obj) = capabilities.as_object_mut() else {
        return warnings;
    };
    for set in SETS {
        let Some(Value::Array(names)) = obj.get_mut(set) else {
            continue;
        };
        if names.iter().any(|n| !n.is_string()) {
            continue;
        }
        names.retain(|n| {
            let name = n.as_str().unwrap_or_default();
            match ok(name) {
                Ok(()) => true,
                Err(why) => {
                    warnings.push(format!("{field}.{set}: {name}: {why}, ignored"));
                    false
                }
            }
        });
    }
    warnings
}

/// [`filter`] on `process.capabilities` of a whole config.json value.
pub fn filter_config(config: &mut Value) -> Vec<String> {
    match config
        .get_mut("process")
        .and_then(|p| p.get_mut("capabilities"))
    {
        Some(c) => filter(c, "process.capabilities", &check),
        None => Vec::new(),
    }
}

/// Logs a warning through cuddy's logging (the --log file in its format,
/// else stderr).
pub fn warn_all(source: &std::path::Path, warnings: &[String]) {
    for w in warnings {
        crate::logging::warn(&format!("{}: {w}", source.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_names_are_dropped_with_a_warning_each() {
        // config.md#linux-process: MUST log a warning, SHOULD NOT fail.
        let mut c = json!({
            "bounding": ["CAP_CHOWN", "CAP_NOT_A_THING"],
            "effective": ["CAP_NOT_A_THING", "CAP_KILL"],
            "ambient": [],
        });
        let w = filter(&mut c, "process.capabilities", &|n: &str| {
            if n == "CAP_NOT_A_THING" {
                Err("unknown capability")
            } else {
                Ok(())
            }
        });
        assert_eq!(c["bounding"], json!(["CAP_CHOWN"]));
        assert_eq!(c["effective"], json!(["CAP_KILL"]));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("process.capabilities.bounding: CAP_NOT_A_THING"),
            "{w:?}"
        );
    }

    #[test]
    fn a_kernel_without_a_capability_drops_it() {
        // An old kernel (< 5.9) has no CAP_CHECKPOINT_RESTORE.
        let mut c = json!({"permitted": ["CAP_CHECKPOINT_RESTORE", "CAP_CHOWN"]});
        let w = filter(&mut c, "x", &|n: &str| {
            if n == "CAP_CHECKPOINT_RESTORE" {
                Err("not supported by the running kernel")
            } else {
                Ok(())
            }
        });
        assert_eq!(c["permitted"], json!(["CAP_CHOWN"]));
        assert!(w[0].contains("running kernel"), "{w:?}");
    }

    #[test]
    fn check_knows_real_names_and_refuses_others() {
        assert!(check("CAP_CHOWN").is_ok());
        assert_eq!(check("CAP_FOO"), Err("unknown capability"));
        assert_eq!(check("chown"), Err("unknown capability"));
    }

    #[test]
    fn effective_must_be_within_permitted() {
        // capabilities(7): the effective set is a subset of the permitted.
        let c: oci_spec::runtime::LinuxCapabilities = serde_json::from_value(json!({
            "effective": ["CAP_KILL", "CAP_SYS_ADMIN", "CAP_CHOWN"],
            "permitted": ["CAP_KILL"],
        }))
        .unwrap();
        let (field, why) = check_effective(&c).unwrap_err();
        assert_eq!(field, "process.capabilities.effective");
        assert!(
            why.starts_with("CAP_CHOWN, CAP_SYS_ADMIN not in process.capabilities.permitted"),
            "{why}"
        );
        let ok: oci_spec::runtime::LinuxCapabilities =
            serde_json::from_value(json!({"effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}))
                .unwrap();
        assert!(check_effective(&ok).is_ok());
    }

    #[test]
    fn non_string_members_are_left_for_the_parser() {
        let mut c = json!({"bounding": [1, "CAP_FOO"]});
        let w = filter(&mut c, "x", &check);
        assert!(w.is_empty());
        assert_eq!(c["bounding"], json!([1, "CAP_FOO"]));
    }
}
