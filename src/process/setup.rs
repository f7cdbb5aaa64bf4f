//! The process attributes of config.md "Process" applied in the child:
//! rlimits, scheduler, I/O priority, user and groups, capabilities, and the
//! lookup of the executable.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability as Cap};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy, Process};

use super::ProcessError;
use crate::spec::RLIMITS;

fn err(op: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let op = op.into();
    move |source| ProcessError::Sys { op, source }
}

pub fn rlimits(p: &Process) -> Result<(), ProcessError> {
    for r in p.rlimits().iter().flatten() {
        let name = r.typ().to_string();
        let name = if name.starts_with("RLIMIT_") {
            name
        } else {
            format!("RLIMIT_{name}")
        };
        let Some((_, res)) = RLIMITS.iter().find(|(n, _)| *n == name) else {
            return Err(ProcessError::Sys {
                op: format!("setrlimit {name}"),
                source: Errno::EINVAL,
            });
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: valid resource number and rlimit struct.
        if unsafe { libc::setrlimit(*res as _, &lim) } < 0 {
            return Err(err(format!(
                "setrlimit {name} (soft {}, hard {})",
                r.soft(),
                r.hard()
            ))(Errno::last()));
        }
    }
    Ok(())
}

/// `struct sched_attr` for sched_setattr(2).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

pub fn scheduler(p: &Process) -> Result<(), ProcessError> {
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: a valid sched_attr with its size; pid 0 is the caller.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
        return Err(err(format!(
            "sched_setattr (process.scheduler policy {:?})",
            s.policy()
        ))(Errno::last()));
    }
    Ok(())
}

pub fn io_priority(p: &Process) -> Result<(), ProcessError> {
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        return Err(ProcessError::Sys {
            op: format!(
                "ioprio_set (process.ioPriority.priority {} not in 0..7)",
                io.priority()
            ),
            source: Errno::EINVAL,
        });
    }
    let value = (class << 13) | io.priority() as i32;
    // SAFETY: plain syscall; IOPRIO_WHO_PROCESS (1) with pid 0 is the caller.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) } < 0 {
        return Err(err("ioprio_set (process.ioPriority)")(Errno::last()));
    }
    Ok(())
}

/// A new session keyring named after the container, so containers do not
/// share the caller's keys (as runc does unless --no-new-keyring).
pub fn join_session_keyring(id: &str) -> Result<(), ProcessError> {
    let name = CString::new(format!("_ses.{id}")).map_err(|_| err("keyctl")(Errno::EINVAL))?;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING (1) with a NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
    // Kernels without keys, or a user namespace that may not: not fatal.
    if r < 0 && !matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM | Errno::EACCES) {
        return Err(err("keyctl join session keyring")(Errno::last()));
    }
    Ok(())
}

fn to_caps(
    set: Option<&HashSet<oci_spec::runtime::Capability>>,
    field: &str,
) -> Result<caps::CapsHashSet, ProcessError> {
    let mut out = caps::CapsHashSet::new();
    let supported = caps::runtime::thread_all_supported();
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: Cap = name.parse().map_err(|_| ProcessError::Sys {
            op: format!("process.capabilities.{field}: unknown capability {name}"),
            source: Errno::EINVAL,
        })?;
        if supported.contains(&cap) {
            out.insert(cap);
        } else {
            tracing::warn!(
                "process.capabilities.{field}: {name} is not supported by this kernel, ignored"
            );
        }
    }
    Ok(out)
}

/// Drops the bounding set, switches user and groups keeping capabilities,
/// then sets the remaining capability sets. The bounding set goes first
/// because dropping from it needs CAP_SETPCAP, which the user switch may lose.
pub fn user_and_caps(p: &Process, in_userns: bool) -> Result<(), ProcessError> {
    let c = p.capabilities().as_ref();
    let bounding = to_caps(c.and_then(|c| c.bounding().as_ref()), "bounding")?;
    let effective = to_caps(c.and_then(|c| c.effective().as_ref()), "effective")?;
    let permitted = to_caps(c.and_then(|c| c.permitted().as_ref()), "permitted")?;
    let inheritable = to_caps(c.and_then(|c| c.inheritable().as_ref()), "inheritable")?;
    let ambient = to_caps(c.and_then(|c| c.ambient().as_ref()), "ambient")?;
    let cap_err = |op: &str| {
        let op = op.to_string();
        move |e: caps::errors::CapsError| ProcessError::Sys {
            op: format!("{op}: {e}"),
            source: Errno::EPERM,
        }
    };

    for cap in caps::runtime::thread_all_supported() {
        if !bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(cap_err("drop bounding capability"))?;
        }
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0 {
        return Err(err("prctl(PR_SET_KEEPCAPS)")(Errno::last()));
    }
    let user = p.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        // A user namespace with setgroups denied (rootless) cannot set
        // groups; that is fine only when none were asked for.
        Err(Errno::EPERM) if in_userns && gids.is_empty() => {}
        Err(e) => {
            return Err(err(format!(
                "setgroups {:?} (process.user.additionalGids)",
                user.additional_gids()
            ))(e));
        }
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(err(format!("setresgid {} (process.user.gid)", user.gid())))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(err(format!("setresuid {} (process.user.uid)", user.uid())))?;
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };

    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(cap_err("set inheritable capabilities"))?;
    let current =
        caps::read(None, CapSet::Permitted).map_err(cap_err("read permitted capabilities"))?;
    let eff_now: caps::CapsHashSet = effective.intersection(&current).copied().collect();
    caps::set(None, CapSet::Effective, &eff_now).map_err(cap_err("set effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(cap_err(
        "set permitted capabilities (process.capabilities.permitted)",
    ))?;
    caps::set(None, CapSet::Effective, &effective).map_err(cap_err(
        "set effective capabilities (process.capabilities.effective must be within permitted)",
    ))?;
    caps::clear(None, CapSet::Ambient).map_err(cap_err("clear ambient capabilities"))?;
    // The kernel raises an ambient capability only if it is both permitted
    // and inheritable. runc and crun accept configs that list ambient
    // capabilities without inheritable ones (older `runc spec` wrote such
    // configs), so a refused one is a warning, not a failure.
    for cap in ambient {
        if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
            tracing::warn!(
                "process.capabilities.ambient: {cap} not raised (it must be permitted and inheritable): {e}"
            );
        }
    }
    Ok(())
}

/// Changes to `cwd` (process.cwd or `exec --cwd`) resolved inside our root
/// ("/" is the container's root by now): openat2 with RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS, so neither a symlink to `/proc/self/fd/N` nor `..`
/// can lead out (the CVE-2024-21626 class), then fchdir, then getcwd must
/// give an absolute path that is not "(unreachable)..." (as runc's
/// verifyCwd). Runs as the final user, so search permission is checked as a
/// chdir would.
pub fn chdir_in_root(cwd: &Path, field: &str) -> Result<(), String> {
    let fail = |why: String| format!("{field} {}: {why}", cwd.display());
    let root = crate::mounts::openat2(
        libc::AT_FDCWD,
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| fail(format!("open /: {e}")))?;
    let dir = crate::mounts::open_in_root(
        std::os::fd::AsRawFd::as_raw_fd(&root),
        cwd,
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| {
        if e == Errno::ELOOP {
            fail(
                "refusing a /proc magic link (or too many symlinks) in the working directory"
                    .into(),
            )
        } else {
            fail(std::io::Error::from(e).to_string())
        }
    })?;
    nix::unistd::fchdir(&dir).map_err(|e| fail(format!("fchdir: {e}")))?;
    let now = nix::unistd::getcwd().map_err(|e| fail(format!("getcwd: {e}")))?;
    if !now.is_absolute() || now.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        return Err(fail(format!(
            "the working directory is outside the container ({})",
            now.display()
        )));
    }
    Ok(())
}

/// Finds the program like execvp does, in the container, as the final user.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf, String> {
    let check = |p: &Path| -> Result<(), String> {
        // A /proc magic link (/proc/self/exe, /proc/1/exe, an fd link) can
        // name a file outside the container, cuddy's own binary included:
        // refuse to resolve through one (the CVE-2019-5736 class).
        let fd = crate::mounts::openat2(libc::AT_FDCWD, p, libc::O_PATH, libc::RESOLVE_NO_MAGICLINKS).map_err(|e| {
            if e == nix::errno::Errno::ELOOP {
                format!("exec: {p:?}: refusing to execute through a /proc magic link or too many symlinks")
            } else {
                format!("exec: {p:?}: {}", std::io::Error::from(e))
            }
        })?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("exec: {p:?}: {e}"))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(format!("exec: {:?}: is a directory", p));
        }
        if self_exe_id() == Some((st.st_dev, st.st_ino)) {
            return Err(format!(
                "exec: {p:?}: refusing to execute the cuddy binary inside a container"
            ));
        }
        let c =
            CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("exec: {p:?}: bad path"))?;
        // SAFETY: NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
            return Err(format!(
                "exec: {:?}: {}",
                p,
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        check(&p)?;
        return Ok(p);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        if check(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    ))
}

static SELF_EXE: std::sync::OnceLock<Option<(u64, u64)>> = std::sync::OnceLock::new();

/// Records (device, inode) of cuddy's own binary. Called by the parent
/// before it forks a container process (the child inherits the value), so
/// that the child can refuse to exec cuddy itself inside the container.
pub fn remember_self_exe() {
    SELF_EXE.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/exe")
            .ok()
            .map(|m| (m.dev(), m.ino()))
    });
}

fn self_exe_id() -> Option<(u64, u64)> {
    SELF_EXE.get().copied().flatten()
}

/// HOME from the container's /etc/passwd when the config does not set it.
pub fn home_for(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".to_string())
}

/// The program, argv and environment to execve, as C strings.
pub struct ExecTarget {
    pub path: std::ffi::CString,
    pub args: Vec<std::ffi::CString>,
    pub env: Vec<std::ffi::CString>,
}

/// The last steps before execve shared by the container's init and `exec`:
/// HOME when the config has none, the executable looked up as the final user,
/// noNewPrivileges. `env` is the process's environment plus any extras.
pub fn exec_target(p: &Process, mut env: Vec<String>) -> Result<ExecTarget, String> {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_for(p.user().uid())));
    }
    let args = p.args().as_deref().unwrap_or(&[]);
    let arg0 = args.first().map(String::as_str).unwrap_or("");
    let path = find_executable(arg0, &env)?;
    if p.no_new_privileges().unwrap_or(false) {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
            return Err(format!(
                "prctl(PR_SET_NO_NEW_PRIVS): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
    Ok(ExecTarget {
        path: CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{path:?} contains a NUL byte"))?,
        args: args.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?,
        env: env.iter().map(|e| cstr(e)).collect::<Result<_, _>>()?,
    })
}

/// Resets signal handling (Rust ignores SIGPIPE; the parent may have blocked
/// signals), leaves only fds 0, 1, 2 and 3..3+`preserve_fds` open across
/// execve, and execs. Returns only on failure, with the message.
pub fn execve_with_fds(t: &ExecTarget, preserve_fds: u32) -> String {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
    // SAFETY: resetting a disposition to SIG_DFL is always sound.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let first = 3 + preserve_fds;
    if let Err(e) = crate::fds::cloexec_from(preserve_fds) {
        return format!("exec: {e}");
    }
    for fd in 3..first {
        // SAFETY: clearing FD_CLOEXEC on an fd number; harmless if not open.
        unsafe { libc::fcntl(fd as i32, libc::F_SETFD, 0) };
    }
    let e = nix::unistd::execve(&t.path, &t.args, &t.env).err();
    format!(
        "exec {}: {}",
        Path::new(std::ffi::OsStr::from_bytes(t.path.as_bytes())).display(),
        e.map(|e| e.to_string()).unwrap_or_default()
    )
}
