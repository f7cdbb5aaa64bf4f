//! POSIX-platform hooks (config.md "POSIX-platform Hooks", runtime.md
//! "Lifecycle").
//!
//! Where each kind runs, and what its failure does:
//! - `prestart` (deprecated) and `createRuntime`: in the runtime namespace,
//!   by the `create` parent, once the init has made the container's
//!   namespaces and mounts and is waiting on the sync channel (before
//!   pivot_root). Failure fails `create`, which stops and cleans up.
//! - `createContainer`: by the init, in the container's namespaces, after the
//!   mounts and before pivot_root (so its path resolves in the runtime's
//!   filesystem). Failure fails `create`.
//! - `startContainer`: by the init after `start` released it, just before
//!   execve of the user process, in the container (path resolved there).
//!   Failure fails `start`; the process is never exec'd.
//! - `poststart`: by `start` after the process runs; `poststop`: by
//!   `delete`. Their failures are logged as warnings only.
//!
//! Each hook gets the container state (runtime.md "State") on stdin; exactly
//! its own `env` when the hook has that field (nothing of cuddy's, even an
//! empty list), else the runtime's own environment, as runc (Go's exec.Cmd
//! with a nil Env inherits) and crun do; `args` as argv (args[0] is argv[0]),
//! and no cuddy file descriptor: every fd above 2 is made close-on-exec in the
//! child before execve. A `timeout` kills the hook with SIGKILL. Its stdout and
//! stderr are captured (in a memfd) and quoted in the error when it fails.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use oci_spec::runtime::{Hook, Hooks};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: start: {source}")]
    Spawn {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} hook {path}: {op}: {source}")]
    Io {
        kind: &'static str,
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} hook {path}: timed out after {secs}s and was killed")]
    Timeout {
        kind: &'static str,
        path: PathBuf,
        secs: i64,
    },
    #[error("{kind} hook {path}: {status}{output}")]
    Failed {
        kind: &'static str,
        path: PathBuf,
        status: String,
        output: String,
    },
}

/// The hook kinds, with their name in config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn of(self, h: &Hooks) -> &[Hook] {
        let v = match self {
            Kind::Prestart => h.prestart(),
            Kind::CreateRuntime => h.create_runtime(),
            Kind::CreateContainer => h.create_container(),
            Kind::StartContainer => h.start_container(),
            Kind::Poststart => h.poststart(),
            Kind::Poststop => h.poststop(),
        };
        v.as_deref().unwrap_or(&[])
    }
}

/// Does `hooks` hold any hook of `kinds`?
pub fn any(hooks: Option<&Hooks>, kinds: &[Kind]) -> bool {
    hooks.is_some_and(|h| kinds.iter().any(|k| !k.of(h).is_empty()))
}

/// The state document (runtime.md "State") given to hooks on stdin.
pub fn state(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::HashMap<String, String>,
) -> Value {
    let mut v = json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": id,
        "status": status,
        "bundle": bundle,
    });
    if pid > 0 {
        v["pid"] = json!(pid);
    }
    if !annotations.is_empty() {
        v["annotations"] = json!(annotations);
    }
    v
}

/// Runs every hook of `kind` in order; the first failure stops the rest.
pub fn run(kind: Kind, hooks: Option<&Hooks>, state: &[u8]) -> Result<(), HookError> {
    let Some(h) = hooks else { return Ok(()) };
    for hook in kind.of(h) {
        run_one(kind.name(), hook, state)?;
    }
    Ok(())
}

/// Runs the hooks of `kind`, logging failures as warnings (poststart, poststop).
pub fn run_warn(kind: Kind, hooks: Option<&Hooks>, state: &[u8]) {
    let Some(h) = hooks else { return };
    for hook in kind.of(h) {
        if let Err(e) = run_one(kind.name(), hook, state) {
            crate::logging::warn(&e.to_string());
        }
    }
}

fn memfd(kind: &'static str, path: &std::path::Path) -> Result<std::fs::File, HookError> {
    // SAFETY: a NUL-terminated name and valid flags; returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"cuddy-hook-output".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(HookError::Io {
            kind,
            path: path.to_path_buf(),
            op: "memfd_create",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn run_one(kind: &'static str, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| HookError::Io {
            kind,
            path,
            op,
            source,
        }
    };
    let mut cmd = Command::new(&path);
    let args = hook.args().as_deref().unwrap_or(&[]);
    if let Some((a0, rest)) = args.split_first() {
        cmd.arg0(a0).args(rest);
    }
    // config.md#posix-platform-hooks: env "has the same semantics as
    // IEEE Std 1003.1-2008's environ"; without the field, the hook inherits.
    if let Some(env) = hook.env() {
        cmd.env_clear();
        for e in env {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            cmd.env(k, v);
        }
    }
    let mut out = memfd(kind, &path)?;
    let err = out.try_clone().map_err(io("dup output"))?;
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(io("dup output"))?)
        .stderr(err);
    // SAFETY: the closure runs in the forked child before execve and only
    // makes one async-signal-safe syscall (close_range with the CLOEXEC flag:
    // std's own exec-error pipe is already close-on-exec, and every other fd
    // of cuddy, including inherited non-CLOEXEC ones, must not reach the hook).
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook need not read its stdin (EPIPE is fine).
        let _ = stdin.write_all(state);
    }
    let timeout = hook.timeout().filter(|t| *t > 0);
    if let Some(secs) = timeout {
        let pidfd =
            crate::process::clone::pidfd_open(nix::unistd::Pid::from_raw(child.id() as i32))
                .map_err(|e| io("pidfd_open")(e.into()))?;
        let ms = secs.saturating_mul(1000).min(i32::MAX as i64) as i32;
        if !wait_readable(&pidfd, ms) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout { kind, path, secs });
        }
    }
    let status = child.wait().map_err(io("wait"))?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let _ = out.rewind();
    let _ = Read::by_ref(&mut out).take(4096).read_to_string(&mut text);
    let text = text.trim();
    let output = if text.is_empty() {
        String::new()
    } else {
        format!(" (output: {text})")
    };
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => format!("{status}"),
    };
    Err(HookError::Failed {
        kind,
        path,
        status,
        output,
    })
}

/// Polls a pidfd until the process exits or `ms` pass; true when it exited.
fn wait_readable(pidfd: &OwnedFd, ms: i32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms as u64);
    loop {
        let left = deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_millis() as i32;
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left) };
        if r > 0 {
            return true;
        }
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}
