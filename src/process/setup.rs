//! The process attributes of config.md "Process" applied in the child:
//! rlimits, scheduler, I/O priority, user and groups, capabilities, and the
//! lookup of the executable.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
    let groups_set = match nix::unistd::setgroups(&gids) {
        Ok(()) => true,
        // A user namespace with setgroups denied (rootless) cannot set
        // groups; that is fine only when none were asked for.
        Err(Errno::EPERM) if in_userns && gids.is_empty() => false,
        Err(e) => {
            return Err(err(format!(
                "setgroups {:?} (process.user.additionalGids)",
                user.additional_gids()
            ))(e));
        }
    };
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(err(format!("setresgid {} (process.user.gid)", user.gid())))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(err(format!("setresuid {} (process.user.uid)", user.uid())))?;
    verify_ids(user, groups_set.then_some(gids.as_slice()))?;
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

/// Checks that the switch really gave the ids asked for (real, effective
/// and saved uid/gid, and the supplementary groups): a value the kernel
/// reads as "unchanged" (`(uid_t)-1`) or any other surprise is an error, not
/// a process left running as root.
fn verify_ids(user: &oci_spec::runtime::User, gids: Option<&[Gid]>) -> Result<(), ProcessError> {
    let r = nix::unistd::getresuid().map_err(err("getresuid"))?;
    let want = Uid::from_raw(user.uid());
    if [r.real, r.effective, r.saved] != [want; 3] {
        return Err(err(format!(
            "verify uid: asked for {} (process.user.uid), running as {}/{}/{}",
            user.uid(),
            r.real,
            r.effective,
            r.saved
        ))(Errno::EPERM));
    }
    let g = nix::unistd::getresgid().map_err(err("getresgid"))?;
    let want = Gid::from_raw(user.gid());
    if [g.real, g.effective, g.saved] != [want; 3] {
        return Err(err(format!(
            "verify gid: asked for {} (process.user.gid), running as {}/{}/{}",
            user.gid(),
            g.real,
            g.effective,
            g.saved
        ))(Errno::EPERM));
    }
    // Rootless with setgroups denied keeps the inherited groups (None).
    let Some(gids) = gids else { return Ok(()) };
    let mut have = nix::unistd::getgroups().map_err(err("getgroups"))?;
    let mut want: Vec<Gid> = gids.to_vec();
    have.sort_unstable_by_key(|g| g.as_raw());
    have.dedup();
    want.sort_unstable_by_key(|g| g.as_raw());
    want.dedup();
    if have != want {
        return Err(err(format!(
            "verify additional gids: asked for {want:?} (process.user.additionalGids), have {have:?}"
        ))(Errno::EPERM));
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
    let root = match crate::mounts::openat2(
        libc::AT_FDCWD,
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    ) {
        // A seccomp profile older than openat2 (its ENOSYS stub): chdir, and
        // the getcwd check below still refuses a directory outside the root.
        Err(Errno::ENOSYS) => {
            nix::unistd::chdir(cwd).map_err(|e| fail(format!("chdir: {e}")))?;
            return verify_cwd(cwd, field);
        }
        r => r.map_err(|e| fail(format!("open /: {e}")))?,
    };
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
    verify_cwd(cwd, field)
}

/// getcwd must give an absolute path inside our root (not "(unreachable)").
fn verify_cwd(cwd: &Path, field: &str) -> Result<(), String> {
    let fail = |why: String| format!("{field} {}: {why}", cwd.display());
    let now = nix::unistd::getcwd().map_err(|e| fail(format!("getcwd: {e}")))?;
    if !now.is_absolute() || now.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        return Err(fail(format!(
            "the working directory is outside the container ({})",
            now.display()
        )));
    }
    Ok(())
}

/// The program to execute, found and vetted inside the container.
///
/// The directory holding it is pinned by an O_PATH fd resolved without /proc
/// magic links, and the program is executed relative to that fd
/// (`execveat(dir, name)`): nothing can swap a directory of the path between
/// the check and the exec. When the name itself was not a symlink at check
/// time it is executed with `AT_SYMLINK_NOFOLLOW`, so it cannot be swapped
/// for one either. The process gets `name` as its comm, as with execve.
pub struct Program {
    /// None once released (`ExecTarget::release`): vetted again before exec.
    pub dir: Option<OwnedFd>,
    pub name: CString,
    pub nofollow: bool,
    /// The path as found, for messages and for scripts (below).
    pub path: CString,
}

/// Checks one candidate path: resolved without magic links, a regular file,
/// executable by the current (final) user, never cuddy's own binary.
fn vet(p: &Path) -> Result<Program, String> {
    let magic = |e: Errno| {
        if e == Errno::ELOOP {
            format!(
                "exec: {p:?}: refusing to execute through a /proc magic link or too many symlinks"
            )
        } else {
            format!("exec: {p:?}: {}", std::io::Error::from(e))
        }
    };
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = p.file_name() else {
        return Err(format!("exec: {p:?}: not a file name"));
    };
    let dir =
        open_no_magic(libc::AT_FDCWD, parent, libc::O_PATH | libc::O_DIRECTORY).map_err(magic)?;
    let fd = open_no_magic(dir.as_raw_fd(), Path::new(name), libc::O_PATH).map_err(magic)?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("exec: {p:?}: {e}"))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(format!("exec: {p:?}: is a directory"));
    }
    if is_cuddy(st.st_dev, st.st_ino) {
        return Err(format!(
            "exec: {p:?}: refusing to execute the cuddy binary inside a container"
        ));
    }
    // faccessat2(fd, "", X_OK, AT_EMPTY_PATH) checks the file we hold, with
    // the real ids, which are the final user's by now.
    // SAFETY: plain syscall on a valid fd with an empty NUL-terminated path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::X_OK,
            libc::AT_EMPTY_PATH,
        )
    };
    let name_c = CString::new(name.as_bytes()).map_err(|_| format!("exec: {p:?}: bad path"))?;
    if r != 0 && Errno::last() == Errno::ENOSYS {
        // A seccomp profile older than faccessat2 (its ENOSYS stub): the
        // classic call checks the same name in the pinned directory.
        nix::unistd::faccessat(
            &dir,
            name_c.as_c_str(),
            nix::unistd::AccessFlags::X_OK,
            nix::fcntl::AtFlags::empty(),
        )
        .map_err(|e| format!("exec: {p:?}: {}", std::io::Error::from(e)))?;
    } else if r != 0 {
        return Err(format!("exec: {p:?}: {}", std::io::Error::last_os_error()));
    }
    let link = nix::sys::stat::fstatat(
        &dir,
        name_c.as_c_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map(|l| l.st_mode & libc::S_IFMT == libc::S_IFLNK)
    .map_err(|e| format!("exec: {p:?}: {e}"))?;
    Ok(Program {
        dir: Some(dir),
        name: name_c,
        nofollow: !link,
        path: CString::new(p.as_os_str().as_bytes())
            .map_err(|_| format!("exec: {p:?}: bad path"))?,
    })
}

/// openat2(RESOLVE_NO_MAGICLINKS). Where a seccomp profile older than
/// openat2 hides it (ENOSYS, the stub for syscalls newer than the profile),
/// plain openat: it may follow a magic link, which is then a file of the
/// container's own or cuddy's sealed binary (src/exeseal.rs), and the result
/// is still checked not to be cuddy's binary.
fn open_no_magic(dirfd: i32, p: &Path, flags: i32) -> nix::Result<OwnedFd> {
    match crate::mounts::openat2(dirfd, p, flags, libc::RESOLVE_NO_MAGICLINKS) {
        Err(Errno::ENOSYS) => {
            let f = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_CLOEXEC;
            if dirfd == libc::AT_FDCWD {
                return nix::fcntl::open(p, f, nix::sys::stat::Mode::empty());
            }
            // SAFETY: dirfd is a valid fd the caller holds for this call.
            let d = unsafe { std::os::fd::BorrowedFd::borrow_raw(dirfd) };
            nix::fcntl::openat(d, p, f, nix::sys::stat::Mode::empty())
        }
        r => r,
    }
}

/// Finds the program like execvp does, in the container, as the final user.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<Program, String> {
    if arg0.contains('/') {
        return vet(Path::new(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        if let Ok(p) = vet(&Path::new(dir).join(arg0)) {
            return Ok(p);
        }
    }
    Err(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    ))
}

static SELF_EXE: std::sync::OnceLock<Option<(u64, u64)>> = std::sync::OnceLock::new();

/// Records (device, inode) of the binary cuddy runs from (its sealed view,
/// src/exeseal.rs). Called by the parent before it forks a container
/// process (the child inherits the value), so that the child can refuse to
/// exec cuddy itself inside the container.
pub fn remember_self_exe() {
    SELF_EXE.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/exe")
            .ok()
            .map(|m| (m.dev(), m.ino()))
    });
}

/// The running binary, or the host file it was sealed from.
fn is_cuddy(dev: u64, ino: u64) -> bool {
    SELF_EXE.get().copied().flatten() == Some((dev, ino))
        || crate::exeseal::original_identity() == Some((dev, ino))
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
    pub program: Program,
    pub args: Vec<std::ffi::CString>,
    pub env: Vec<std::ffi::CString>,
}

impl ExecTarget {
    /// Drops the vetted directory fd: the created-state init holds no fd but
    /// the exec fifo's while the container can see it; `execve_with_fds`
    /// vets the same path again right before the exec.
    pub fn release(&mut self) {
        self.program.dir = None;
    }
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
    let program = find_executable(arg0, &env)?;
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
        program,
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
    let revetted;
    let program = if t.program.dir.is_some() {
        &t.program
    } else {
        let path = Path::new(std::ffi::OsStr::from_bytes(t.program.path.as_bytes()));
        match vet(path) {
            Ok(p) => {
                revetted = p;
                &revetted
            }
            Err(e) => return e,
        }
    };
    let e = execveat(program, &t.args, &t.env);
    format!(
        "exec {}: {}",
        Path::new(std::ffi::OsStr::from_bytes(t.program.path.as_bytes())).display(),
        e
    )
}

/// Executes the vetted program relative to its pinned directory. A script
/// run that way fails with ENOENT (the kernel cannot give its interpreter a
/// path through a close-on-exec fd, and keeping the fd open would leak it
/// and need /proc in the container): scripts are executed by their path.
/// That is sound because what the kernel may load instead, after a swap or
/// through the interpreter line (`#!/proc/self/exe`), is either a file of
/// the container's own or cuddy's *sealed* binary (src/exeseal.rs), and no
/// host fd is open (only stdio, the preserved fds and close-on-exec fds of
/// cuddy's that are not executable).
fn execveat(p: &Program, args: &[CString], env: &[CString]) -> Errno {
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv, envp) = (ptrs(args), ptrs(env));
    let flags = if p.nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: NUL-terminated argv/envp arrays of C strings that outlive the
    // call; execveat returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            p.dir.as_ref().map_or(libc::AT_FDCWD, |d| d.as_raw_fd()),
            p.name.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            flags,
        )
    };
    match Errno::last() {
        Errno::ENOENT => nix::unistd::execve(&p.path, args, env)
            .err()
            .unwrap_or(Errno::ENOENT),
        e => e,
    }
}
