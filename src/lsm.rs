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
//! The attr file is opened through a procfs instance cuddy made itself
//! (`fsopen("proc")`, never attached anywhere the container can reach), or
//! when that is not allowed (a user namespace whose mount namespace has no
//! fully visible procfs), through the container's `/proc` without following
//! any symlink; either way the opened file is checked to be on procfs
//! (`fstatfs`), so a mount or symlink planted over `/proc` cannot redirect
//! the write (CVE-2019-16884, CVE-2023-28642, CVE-2025-52881).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

/// statfs(2) f_type of procfs (linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

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
        source: nix::Error,
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

/// The labels to apply at the next execve.
#[derive(Debug, Clone, Default)]
pub struct ExecLabels {
    pub apparmor: Option<String>,
    pub selinux: Option<String>,
}

impl ExecLabels {
    pub fn is_empty(&self) -> bool {
        self.apparmor.as_deref().unwrap_or("").is_empty()
            && self.selinux.as_deref().unwrap_or("").is_empty()
    }
}

/// In the container's process, before it drops capabilities: writes the
/// labels that the kernel applies when it execs the user's program.
pub fn apply_exec_labels(l: &ExecLabels) -> Result<(), LsmError> {
    if l.is_empty() {
        return Ok(());
    }
    let procfs = ProcRoot::open();
    if let Some(p) = l.apparmor.as_deref().filter(|p| !p.is_empty()) {
        let data = format!("exec {p}");
        let field = "process.apparmorProfile";
        // Linux 5.1 moved AppArmor's files to attr/apparmor/; the old
        // attr/exec is used when that is absent.
        procfs
            .write_attr("apparmor/exec", data.as_bytes())
            .or_else(|_| procfs.write_attr("exec", data.as_bytes()))
            .map_err(|(path, source)| LsmError::Apply {
                field: field.into(),
                label: p.into(),
                path,
                source,
            })?;
    }
    if let Some(s) = l.selinux.as_deref().filter(|s| !s.is_empty()) {
        procfs
            .write_attr("exec", s.as_bytes())
            .map_err(|(path, source)| LsmError::Apply {
                field: "process.selinuxLabel".into(),
                label: s.into(),
                path,
                source,
            })?;
    }
    Ok(())
}

/// A procfs directory we trust: a private instance, or the process's `/proc`.
enum ProcRoot {
    Private(OwnedFd),
    Visible,
}

impl ProcRoot {
    fn open() -> ProcRoot {
        match private_procfs() {
            Ok(fd) => ProcRoot::Private(fd),
            Err(e) => {
                tracing::debug!("private procfs: {e}; using /proc without symlinks");
                ProcRoot::Visible
            }
        }
    }

    /// Writes `<pid>/task/<tid>/attr/<name>` (no symlink on the way: not
    /// `self` nor `thread-self`), after checking the file is on procfs.
    fn write_attr(&self, name: &str, data: &[u8]) -> Result<(), (String, nix::Error)> {
        let rel = format!(
            "{}/task/{}/attr/{name}",
            std::process::id(),
            nix::unistd::gettid()
        );
        let (dirfd, shown) = match self {
            ProcRoot::Private(fd) => (fd.as_raw_fd(), format!("<private procfs>/{rel}")),
            ProcRoot::Visible => (libc::AT_FDCWD, format!("/proc/{rel}")),
        };
        let path = match self {
            ProcRoot::Private(_) => rel,
            ProcRoot::Visible => format!("/proc/{rel}"),
        };
        let fd = crate::mounts::openat2(
            dirfd,
            Path::new(&path),
            libc::O_WRONLY,
            libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| (shown.clone(), e))?;
        let st = nix::sys::statfs::fstatfs(&fd).map_err(|e| (shown.clone(), e))?;
        if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
            return Err((shown, Errno::EXDEV));
        }
        nix::unistd::write(&fd, data).map_err(|e| (shown, e))?;
        Ok(())
    }
}

/// `fsopen("proc")` + `fsmount`: a procfs of our own PID namespace that is
/// attached nowhere (no mount, symlink or race of the container's can touch it).
fn private_procfs() -> nix::Result<OwnedFd> {
    // SAFETY: fsopen(2) with a NUL-terminated name; FSOPEN_CLOEXEC = 1.
    let ctx = unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), 1u32) };
    if ctx < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd owned by us.
    let ctx = unsafe { OwnedFd::from_raw_fd(ctx as RawFd) };
    // SAFETY: FSCONFIG_CMD_CREATE (6) takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            6u32,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // FSMOUNT_CLOEXEC = 1; MOUNT_ATTR_NOSUID|NODEV|NOEXEC = 2|4|8.
    // SAFETY: fsmount(2) with integer arguments on a created context.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), 1u32, 14u32) };
    if m < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd owned by us.
    let m = unsafe { OwnedFd::from_raw_fd(m as RawFd) };
    let st = nix::sys::statfs::fstatfs(&m)?;
    if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
        return Err(Errno::EXDEV);
    }
    Ok(m)
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
