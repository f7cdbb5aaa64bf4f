//! Static checks on a parsed config.json. Each error names the field and why.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{SpecError, invalid};

/// rlimit names accepted in `process.rlimits`, with their resource numbers.
pub const RLIMITS: &[(&str, u32)] = &[
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

const PROPAGATIONS: &[&str] = &[
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
];

/// Sysctls that belong to the IPC namespace (besides the `fs.mqueue.` prefix).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The largest uid/gid cuddy accepts. `(uid_t)-1` (4294967295) means
/// "leave unchanged" to setresuid(2)/setresgid(2)/fchown(2), so a process
/// asked to run as uid 4294967295 would silently stay root; ids above
/// 2^31-1 are refused as runc does (its ids are Go ints capped at MaxInt32).
pub const MAX_ID: u32 = i32::MAX as u32;

/// Checks `process.user` ids are within 0..=[`MAX_ID`]; on error returns the
/// field (`process.user.uid`, `process.user.gid`,
/// `process.user.additionalGids[N]`) and why.
pub fn check_user_ids(user: &oci_spec::runtime::User) -> Result<(), (String, String)> {
    let bad = |field: String, id: u32| {
        Err((
            field,
            format!(
                "{id} is outside 0..={MAX_ID} (4294967295 would mean \"unchanged\" to setresuid/setresgid)"
            ),
        ))
    };
    if user.uid() > MAX_ID {
        return bad("process.user.uid".into(), user.uid());
    }
    if user.gid() > MAX_ID {
        return bad("process.user.gid".into(), user.gid());
    }
    for (i, g) in user.additional_gids().iter().flatten().enumerate() {
        if *g > MAX_ID {
            return bad(format!("process.user.additionalGids[{i}]"), *g);
        }
    }
    Ok(())
}

/// Checks `spec` and returns the absolute root filesystem path.
pub fn validate(spec: &Spec, bundle: &Path, cfg: &Path) -> Result<PathBuf, SpecError> {
    // config.md "Specification version": cuddy implements 1.x.
    let v = spec.version();
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("");
    if major != "1" || parts.next().is_none_or(|m| m.parse::<u32>().is_err()) {
        return Err(invalid(
            cfg,
            "ociVersion",
            format!(
                "{v:?} is not supported: cuddy implements runtime spec 1.x (up to {})",
                super::OCI_VERSION
            ),
        ));
    }

    // config.md "Root".
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid(cfg, "root", "missing: a container needs a root filesystem"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid(
            cfg,
            "root.path",
            "missing or empty: the path of the container's root filesystem is required",
        ));
    }
    let rootfs = bundle.join(root.path());
    let meta = std::fs::metadata(&rootfs)
        .map_err(|e| invalid(cfg, "root.path", format!("{}: {e}", rootfs.display())))?;
    if !meta.is_dir() {
        return Err(invalid(
            cfg,
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| invalid(cfg, "root.path", format!("{}: {e}", rootfs.display())))?;

    // config.md "Process".
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid(cfg, "process", "missing: create needs a process to run"))?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => {
            return Err(invalid(
                cfg,
                "process.args",
                "must name at least the program to run",
            ));
        }
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            cfg,
            "process.cwd",
            format!("{:?} must be an absolute path", process.cwd()),
        ));
    }
    check_user_ids(process.user()).map_err(|(field, reason)| invalid(cfg, field, reason))?;
    if let Some(c) = process.capabilities() {
        super::caps::check_effective(c).map_err(|(field, reason)| invalid(cfg, field, reason))?;
    }
    if let Some(env) = process.env() {
        for e in env {
            if !e.contains('=') {
                return Err(invalid(
                    cfg,
                    "process.env",
                    format!("{e:?} is not KEY=VALUE"),
                ));
            }
        }
    }
    if let Some(rl) = process.rlimits() {
        let mut seen = HashSet::new();
        for r in rl {
            let name = r.typ().to_string();
            if !seen.insert(name.clone()) {
                return Err(invalid(
                    cfg,
                    "process.rlimits",
                    format!("{name} is listed twice"),
                ));
            }
            if r.soft() > r.hard() {
                return Err(invalid(
                    cfg,
                    "process.rlimits",
                    format!(
                        "{name}: soft limit {} is above hard limit {}",
                        r.soft(),
                        r.hard()
                    ),
                ));
            }
        }
    }
    // Security labels fail closed (src/lsm.rs): a label for a module the
    // host does not run is refused, never silently dropped.
    let sys = std::path::Path::new("/sys");
    let fields = ["process.apparmorProfile", "process.selinuxLabel"];
    crate::lsm::check_process(process, fields, sys)
        .map_err(|e| invalid(cfg, e.field(), e.to_string()))?;
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                cfg,
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..1000"),
            ));
        }
    }

    // config.md "Mounts": destinations are absolute on Linux.
    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            if !m.destination().is_absolute() {
                return Err(invalid(
                    cfg,
                    format!("mounts[{i}].destination"),
                    format!("{:?} must be an absolute path", m.destination()),
                ));
            }
            // Nothing over /proc/self, /proc/sys, ... (runc's checkProcMount;
            // checked again on the resolved destination before mounting).
            use crate::mounts::procsys;
            let typ = m.typ().as_deref().unwrap_or("");
            let opts = m.options().clone().unwrap_or_default();
            let src = m.source().clone().map(|s| bundle.join(s));
            procsys::check(
                &procsys::clean(m.destination()),
                typ,
                procsys::is_bind(typ, &opts),
                || {
                    src.as_deref()
                        .map_or(procsys::Source::Other, procsys::source_kind)
                },
            )
            .map_err(|why| invalid(cfg, format!("mounts[{i}].destination"), why))?;
        }
    }

    // config.md "POSIX-platform Hooks": absolute paths, positive timeouts.
    // Hooks that run in the runtime namespace before the container exists
    // must exist now (a missing one would fail create half-way); a
    // startContainer path resolves inside the container, later.
    if let Some(h) = spec.hooks() {
        for (field, list, must_exist) in [
            ("hooks.prestart", h.prestart(), true),
            ("hooks.createRuntime", h.create_runtime(), true),
            ("hooks.createContainer", h.create_container(), true),
            ("hooks.startContainer", h.start_container(), false),
            ("hooks.poststart", h.poststart(), false),
            ("hooks.poststop", h.poststop(), false),
        ] {
            for (i, hook) in list.iter().flatten().enumerate() {
                let p = hook.path();
                if !p.is_absolute() {
                    return Err(invalid(
                        cfg,
                        format!("{field}[{i}].path"),
                        format!("{} must be an absolute path", p.display()),
                    ));
                }
                if must_exist && !p.exists() {
                    return Err(invalid(
                        cfg,
                        format!("{field}[{i}].path"),
                        format!("{} does not exist", p.display()),
                    ));
                }
                if hook.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        cfg,
                        format!("{field}[{i}].timeout"),
                        "must be greater than zero",
                    ));
                }
                for e in hook.env().iter().flatten() {
                    if !e.contains('=') {
                        return Err(invalid(
                            cfg,
                            format!("{field}[{i}].env"),
                            format!("{e:?} is not KEY=VALUE"),
                        ));
                    }
                }
            }
        }
    }

    let Some(linux) = spec.linux() else {
        return Ok(rootfs);
    };

    // config-linux.md "Namespaces".
    let mut kinds = HashSet::new();
    let mut owned = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !kinds.insert(ns.typ()) {
            return Err(invalid(
                cfg,
                format!("linux.namespaces[{i}]"),
                format!("namespace {} is listed twice", ns.typ()),
            ));
        }
        match ns.path() {
            None => {
                owned.insert(ns.typ());
            }
            Some(p) if !p.is_absolute() => {
                return Err(invalid(
                    cfg,
                    format!("linux.namespaces[{i}].path"),
                    format!("{} must be an absolute path", p.display()),
                ));
            }
            // Not `exists()`: it turns EACCES (e.g. another process's ns
            // files under a restrictive ptrace policy) into "does not exist".
            Some(p) => match std::fs::metadata(p) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(invalid(
                        cfg,
                        format!("linux.namespaces[{i}].path"),
                        format!("{} does not exist", p.display()),
                    ));
                }
                Err(e) => {
                    return Err(invalid(
                        cfg,
                        format!("linux.namespaces[{i}].path"),
                        format!("{}: {e}", p.display()),
                    ));
                }
            },
        }
    }
    let has = |t: LinuxNamespaceType| kinds.contains(&t);
    check_userns_maps(linux, &owned).map_err(|(field, why)| invalid(cfg, field, why))?;
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        if !owned.contains(&LinuxNamespaceType::Time) {
            return Err(invalid(
                cfg,
                "linux.timeOffsets",
                "time offsets need a new time namespace (linux.namespaces type \"time\" without path)",
            ));
        }
        for k in linux.time_offsets().iter().flatten().map(|(k, _)| k) {
            if k != "monotonic" && k != "boottime" {
                return Err(invalid(
                    cfg,
                    "linux.timeOffsets",
                    format!("{k:?}: only \"monotonic\" and \"boottime\" clocks can be offset"),
                ));
            }
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            cfg,
            "hostname",
            "setting the hostname needs a UTS namespace",
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            cfg,
            "domainname",
            "setting the domainname needs a UTS namespace",
        ));
    }
    // config-linux.md "Namespaces": without a mount namespace the container
    // shares the runtime's; cuddy then chroots into the rootfs (as runc and
    // crun do), see mounts/shared_ns.rs.
    if !has(LinuxNamespaceType::Mount) {
        if linux.rootfs_propagation().is_some() {
            return Err(invalid(
                cfg,
                "linux.rootfsPropagation",
                "needs a mount namespace (linux.namespaces type \"mount\"): without one the container shares the runtime's, whose propagation cuddy does not change",
            ));
        }
        if owned.contains(&LinuxNamespaceType::User) {
            return Err(invalid(
                cfg,
                "linux.namespaces",
                "a new user namespace needs a mount namespace too: without one the container's mounts would be made in the runtime's mount namespace, which its user namespace may not change",
            ));
        }
    }
    // config-linux.md "Sysctl": only namespaced keys, and only when the
    // container has that namespace.
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        let need = if IPC_SYSCTLS.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            LinuxNamespaceType::Ipc
        } else if key.starts_with("net.") {
            LinuxNamespaceType::Network
        } else if key == "kernel.hostname" {
            // runc refuses it too: it would race the `hostname` field.
            return Err(invalid(
                cfg,
                "linux.sysctl",
                "\"kernel.hostname\" is not allowed: set the container's hostname with the `hostname` field (it needs a UTS namespace)",
            ));
        } else if key == "kernel.domainname" {
            LinuxNamespaceType::Uts
        } else {
            return Err(invalid(
                cfg,
                "linux.sysctl",
                format!("{key:?} is not in a namespace of the container: it would change the host"),
            ));
        };
        if !has(need) {
            return Err(invalid(
                cfg,
                "linux.sysctl",
                format!(
                    "{key:?} needs a {} namespace, which the container does not have",
                    crate::namespaces::type_name(need)
                ),
            ));
        }
        // A namespace joined by path may be the runtime's own (the host's).
        let joined = linux
            .namespaces()
            .iter()
            .flatten()
            .find(|n| n.typ() == need)
            .and_then(|n| n.path().as_ref());
        if let Some(path) = joined {
            let file = match need {
                LinuxNamespaceType::Network => "net",
                LinuxNamespaceType::Ipc => "ipc",
                _ => "uts",
            };
            let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
            if id(path).is_some() && id(path) == id(&Path::new("/proc/self/ns").join(file)) {
                return Err(invalid(
                    cfg,
                    "linux.sysctl",
                    format!(
                        "{key:?} would change the host: the {need} namespace {} is the host's",
                        path.display()
                    ),
                ));
            }
        }
    }

    if let Some(p) = linux.rootfs_propagation() {
        if !PROPAGATIONS.contains(&p.as_str()) {
            return Err(invalid(
                cfg,
                "linux.rootfsPropagation",
                format!("{p:?} is not one of {}", PROPAGATIONS.join(", ")),
            ));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(invalid(
                cfg,
                format!("linux.devices[{i}].path"),
                format!("{} must be an absolute path", d.path().display()),
            ));
        }
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for p in paths.iter().flatten() {
            if !p.starts_with('/') {
                return Err(invalid(
                    cfg,
                    field,
                    format!("{p:?} must be an absolute path"),
                ));
            }
        }
    }
    if let Some(r) = linux.resources() {
        super::resources::check(r).map_err(|(field, why)| invalid(cfg, field, why))?;
    }
    let ml = linux.mount_label().clone().unwrap_or_default();
    crate::lsm::check("linux.mountLabel", crate::lsm::Module::SELinux, &ml, sys)
        .map_err(|e| invalid(cfg, "linux.mountLabel", e.to_string()))?;
    if let Some(s) = linux.seccomp() {
        crate::seccomp::validate(s).map_err(|(field, reason)| invalid(cfg, field, reason))?;
    }
    // Features of later issues: refuse rather than silently ignore.
    if linux.intel_rdt().is_some() {
        return Err(invalid(
            cfg,
            "linux.intelRdt",
            "Intel RDT is not supported by cuddy",
        ));
    }
    // config-linux.md "Personality": the domain is checked by the parser
    // (LINUX or LINUX32); "currently no flag values are supported".
    if let Some(f) = linux
        .personality()
        .as_ref()
        .and_then(|p| p.flags().as_ref())
    {
        if let Some(flag) = f.first() {
            return Err(invalid(
                cfg,
                "linux.personality.flags",
                format!("{flag:?}: the runtime spec defines no personality flags"),
            ));
        }
    }
    if linux.memory_policy().is_some() {
        return Err(invalid(
            cfg,
            "linux.memoryPolicy",
            "memory policy is not supported yet by cuddy",
        ));
    }
    // config-linux.md "Network Devices": names and the namespace; the
    // interfaces themselves are looked up by create.
    crate::network::netdev::check_config(linux).map_err(|(field, why)| invalid(cfg, field, why))?;
    Ok(rootfs)
}

/// config-linux.md "User namespace mappings": a new user namespace needs
/// both maps (runc: "user namespaces enabled, but no uid/gid mappings"); maps
/// without a new user namespace are refused (a joined one has its own).
fn check_userns_maps(
    linux: &oci_spec::runtime::Linux,
    owned: &HashSet<LinuxNamespaceType>,
) -> Result<(), (String, String)> {
    check_id_maps(linux, owned).map_err(|(f, w)| (f.to_string(), w.to_string()))?;
    for (field, maps) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        super::idmap::check_map(field, maps.as_deref().unwrap_or(&[]))?;
    }
    Ok(())
}

/// Both maps with a new user namespace, none without.
fn check_id_maps(
    linux: &oci_spec::runtime::Linux,
    owned: &HashSet<LinuxNamespaceType>,
) -> Result<(), (&'static str, &'static str)> {
    let empty = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.as_ref().is_none_or(|m| m.is_empty())
    };
    let (no_uid, no_gid) = (empty(linux.uid_mappings()), empty(linux.gid_mappings()));
    if owned.contains(&LinuxNamespaceType::User) {
        if no_uid {
            return Err((
                "linux.uidMappings",
                "a new user namespace (linux.namespaces type \"user\" without path) needs uid mappings: none are given",
            ));
        }
        if no_gid {
            return Err((
                "linux.gidMappings",
                "a new user namespace (linux.namespaces type \"user\" without path) needs gid mappings: none are given",
            ));
        }
    } else if !no_uid || !no_gid {
        return Err((
            if no_uid {
                "linux.gidMappings"
            } else {
                "linux.uidMappings"
            },
            "mappings are only allowed with a new user namespace (linux.namespaces type \"user\" without path)",
        ));
    }
    Ok(())
}
