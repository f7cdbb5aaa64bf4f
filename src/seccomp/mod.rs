//! seccomp (config-linux.md "Seccomp"): `linux.seccomp` validated and
//! normalised (`profile`), compiled with libseccomp in the parent before the
//! clone (`compile`) behind an ENOSYS stub (`stub`), cached in the state
//! root (`cache`), loaded by the child with one seccomp(2) call (`program`),
//! and SCMP_ACT_NOTIFY listeners handed to the agent (`notify`).
//! docs/seccomp.md has the design.

mod cache;
mod compile;
mod notify;
mod profile;
mod program;
mod stub;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxSeccomp, Process};
use serde_json::{Value, json};

pub use notify::{Handoff, recv};
pub use program::{Program, Stage, load};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp: {op}: {source}")]
    Lib {
        op: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("linux.seccomp: {op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    #[error("linux.seccomp.architectures: {0} is not supported by this libseccomp")]
    Arch(String),
    #[error("linux.seccomp: {0} is not a well-formed BPF program")]
    Malformed(&'static str),
    #[error(
        "linux.seccomp: the filter has {0} instructions, more than the kernel's 4096 (BPF_MAXINSNS)"
    )]
    TooLong(usize),
    #[error("linux.seccomp.{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("linux.seccomp.listenerPath: {0}")]
    Listener(String),
    #[error("linux.seccomp.listenerPath {path}: send the seccomp listener: {source}")]
    Agent {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks `linux.seccomp` as far as possible before anything is created;
/// Err is (field, reason).
pub fn validate(s: &LinuxSeccomp) -> Result<(), (String, String)> {
    let p = profile::normalise(s).map_err(|e| (e.field, e.reason))?;
    for &a in &p.archs {
        if !compile::scmp_arch(a).is_some_and(arch_supported) {
            return Err((
                "linux.seccomp.architectures".into(),
                format!(
                    "{} is not supported on this host by libseccomp (see `cuddy features`)",
                    compile::arch_name(a)
                ),
            ));
        }
    }
    Ok(())
}

/// Whether libseccomp can put `a` in a filter beside the native
/// architecture (it refuses, e.g., another endianness).
fn arch_supported(a: libseccomp::ScmpArch) -> bool {
    a == libseccomp::ScmpArch::native()
        || libseccomp::ScmpFilterContext::new(libseccomp::ScmpAction::Allow)
            .and_then(|mut c| c.add_arch(a).map(|_| ()))
            .is_ok()
}

/// Compiles (or fetches from the cache under `state_root`) the filter for
/// the process `process` of a container whose config has `s`.
pub fn prepare(
    state_root: &Path,
    s: Option<&LinuxSeccomp>,
    process: &Process,
) -> Result<Option<Program>, SeccompError> {
    let Some(s) = s else { return Ok(None) };
    let p = profile::normalise(s).map_err(|e| SeccompError::Invalid {
        field: e.field.trim_start_matches("linux.seccomp.").to_string(),
        reason: e.reason,
    })?;
    let key = cache::key(&p);
    let (filter, flags) = match cache::lookup(state_root, &key) {
        Some(hit) => hit,
        None => {
            let filter = compile_profile(&p)?;
            cache::store(state_root, &key, &filter, p.flags);
            (filter, p.flags)
        }
    };
    let stage = if process.no_new_privileges().unwrap_or(false) {
        Stage::Late
    } else {
        Stage::BeforeCaps
    };
    let listener = (flags & profile::FLAG_NEW_LISTENER != 0)
        .then(|| {
            s.listener_path()
                .clone()
                .map(|p| (p, s.listener_metadata().clone()))
        })
        .flatten();
    Ok(Some(Program {
        filter,
        flags,
        stage,
        listener,
    }))
}

/// The ENOSYS stub followed by libseccomp's program.
fn compile_profile(p: &profile::Profile) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut prog = stub::enosys_stub(p);
    prog.extend(compile::libseccomp_bpf(p)?);
    if prog.len() > program::MAX_INSNS {
        return Err(SeccompError::TooLong(prog.len()));
    }
    if !program::well_formed(&prog) {
        return Err(SeccompError::Malformed("the compiled filter"));
    }
    Ok(prog)
}

/// Whether the kernel accepts `flags` for SECCOMP_SET_MODE_FILTER: with a
/// NULL program it fails with EFAULT after the flags were accepted, and
/// with EINVAL when not.
fn kernel_takes(flags: u32) -> bool {
    // SAFETY: a NULL program makes the kernel fail before installing anything.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// `linux.seccomp` of `cuddy features` (features-linux.md), and the
/// libseccomp version annotation runc also reports.
pub fn features() -> (Value, Option<String>) {
    let archs: Vec<&str> = compile::ARCHS
        .iter()
        .filter(|(_, a, _)| arch_supported(*a))
        .map(|a| a.2)
        .collect();
    let known = [
        ("SECCOMP_FILTER_FLAG_TSYNC", profile::FLAG_TSYNC),
        ("SECCOMP_FILTER_FLAG_LOG", profile::FLAG_LOG),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", profile::FLAG_SPEC_ALLOW),
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            profile::FLAG_WAIT_KILLABLE_RECV | profile::FLAG_NEW_LISTENER,
        ),
    ];
    let supported: Vec<&str> = known
        .iter()
        .filter(|(_, f)| kernel_takes(*f))
        .map(|(n, _)| *n)
        .collect();
    let version = libseccomp::ScmpVersion::current()
        .ok()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro));
    (
        json!({
            "enabled": true,
            "actions": [
                "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                "SCMP_ACT_TRAP"
            ],
            "operators": [
                "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
            ],
            "archs": archs,
            "knownFlags": known.iter().map(|k| k.0).collect::<Vec<_>>(),
            "supportedFlags": supported,
        }),
        version,
    )
}

#[cfg(test)]
mod tests;
