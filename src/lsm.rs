//! Linux security modules: `process.apparmorProfile` and
//! `process.selinuxLabel` (config.md "Process", "Linux Process"), failing
//! closed.
//!
//! A label for a module the host does not run is refused (as runc and crun
//! do): a container must never start without the confinement its config
//! asks for. Where the module runs, the label is written to the process's
//! `attr/.../exec` file in procfs, which the kernel applies at the next
//! execve (the user's program): AppArmor takes `exec PROFILE`, SELinux the
//! context itself.
//!
//! The attr file is opened through a verified procfs handle
//! (`fds::procfs::ProcFs`: a private instance made with `fsopen("proc")`,
//! else the mounted `/proc` checked to be a procfs root), walked without
//! magic links or mount crossings and checked with `fstatfs`, so a mount or
//! symlink planted over `/proc` cannot redirect the write (CVE-2019-16884,
//! CVE-2023-28642, CVE-2025-52881).

use std::path::Path;

use crate::fds::procfs::{ProcError, ProcFs};

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error(
        "{field} {label:?}: {module} is not enabled on this host ({why}); refusing to run the container unconfined"
    )]
    NotEnabled {
        field: String,
        label: String,
        module: &'static str,
        why: String,
    },
    #[error("{field} {label:?}: write {path}: {source}")]
    Apply {
        field: String,
        label: String,
        path: String,
        #[source]
        source: ProcError,
    },
}

/// The security modules cuddy applies labels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    AppArmor,
    SELinux,
}

impl Module {
    fn name(self) -> &'static str {
        match self {
            Module::AppArmor => "AppArmor",
            Module::SELinux => "SELinux",
        }
    }
}

/// Whether the module runs on the host whose /sys is `sys_root`: why not,
/// when it does not.
pub fn enabled(m: Module, sys_root: &Path) -> Result<(), String> {
    match m {
        Module::AppArmor => {
            let p = sys_root.join("module/apparmor/parameters/enabled");
            match std::fs::read_to_string(&p) {
                Ok(v) if v.trim() == "Y" => Ok(()),
                Ok(v) => Err(format!("{} says {:?}", p.display(), v.trim())),
                Err(e) => Err(format!("{}: {e}", p.display())),
            }
        }
        Module::SELinux => {
            let p = sys_root.join("fs/selinux/enforce");
            if p.exists() {
                Ok(())
            } else {
                Err(format!("{} does not exist (no selinuxfs)", p.display()))
            }
        }
    }
}

/// Refuses a non-empty label for a module the host does not run.
pub fn check(field: &str, m: Module, label: &str, sys_root: &Path) -> Result<(), LsmError> {
    if label.is_empty() {
        return Ok(());
    }
    enabled(m, sys_root).map_err(|why| LsmError::NotEnabled {
        field: field.into(),
        label: label.into(),
        module: m.name(),
        why,
    })
}

/// The labels of a Process (config.md "Process"), each refused where its
/// module is absent; `fields` names them as the caller's input does
/// (config fields, or exec's flags).
pub fn check_process(
    p: &oci_spec::runtime::Process,
    fields: [&str; 2],
    sys_root: &Path,
) -> Result<(), LsmError> {
    let aa = p.apparmor_profile().clone().unwrap_or_default();
    check(fields[0], Module::AppArmor, &aa, sys_root)?;
    let se = p.selinux_label().clone().unwrap_or_default();
    check(fields[1], Module::SELinux, &se, sys_root)
}

impl LsmError {
    /// The config field (or flag) the error is about.
    pub fn field(&self) -> &str {
        match self {
            LsmError::NotEnabled { field, .. } | LsmError::Apply { field, .. } => field,
        }
    }
}

/// In the container's process, before it drops capabilities: writes the
/// process's labels, which the kernel applies when it execs the user's
/// program.
pub fn apply_exec_labels(p: &oci_spec::runtime::Process) -> Result<(), LsmError> {
    let apparmor = p.apparmor_profile().as_deref().filter(|l| !l.is_empty());
    let selinux = p.selinux_label().as_deref().filter(|l| !l.is_empty());
    if apparmor.is_none() && selinux.is_none() {
        return Ok(());
    }
    let apply = |field: &str, label: &str, attr: &str, data: &[u8]| -> Result<(), LsmError> {
        let fail = |source: ProcError| LsmError::Apply {
            field: field.into(),
            label: label.into(),
            path: format!("/proc/thread-self/attr/{attr}"),
            source,
        };
        let procfs = ProcFs::for_pids().map_err(fail)?;
        procfs
            .write(&format!("thread-self/attr/{attr}"), data)
            .map_err(fail)
    };
    if let Some(p) = apparmor {
        let data = format!("exec {p}");
        // Linux 5.1 moved AppArmor's files to attr/apparmor/; the old
        // attr/exec is used where that is absent.
        apply(
            "process.apparmorProfile",
            p,
            "apparmor/exec",
            data.as_bytes(),
        )
        .or_else(|_| apply("process.apparmorProfile", p, "exec", data.as_bytes()))?;
    }
    if let Some(s) = selinux {
        apply("process.selinuxLabel", s, "exec", s.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_labels_for_modules_the_host_does_not_run() {
        let sys = tempfile::tempdir().unwrap();
        let e = check("process.apparmorProfile", Module::AppArmor, "p", sys.path()).unwrap_err();
        assert!(e.to_string().contains("AppArmor is not enabled"), "{e}");
        assert!(e.to_string().contains("process.apparmorProfile"), "{e}");
        let e = check("process.selinuxLabel", Module::SELinux, "l", sys.path()).unwrap_err();
        assert!(e.to_string().contains("SELinux is not enabled"), "{e}");
        // Empty labels ask for nothing.
        check("process.selinuxLabel", Module::SELinux, "", sys.path()).unwrap();
    }

    #[test]
    fn accepts_labels_for_modules_the_host_runs() {
        let sys = tempfile::tempdir().unwrap();
        let aa = sys.path().join("module/apparmor/parameters");
        std::fs::create_dir_all(&aa).unwrap();
        std::fs::write(aa.join("enabled"), "Y\n").unwrap();
        check("process.apparmorProfile", Module::AppArmor, "p", sys.path()).unwrap();
        std::fs::write(aa.join("enabled"), "N\n").unwrap();
        assert!(check("process.apparmorProfile", Module::AppArmor, "p", sys.path()).is_err());
        std::fs::create_dir_all(sys.path().join("fs/selinux")).unwrap();
        std::fs::write(sys.path().join("fs/selinux/enforce"), "1").unwrap();
        check("process.selinuxLabel", Module::SELinux, "l", sys.path()).unwrap();
    }
}
