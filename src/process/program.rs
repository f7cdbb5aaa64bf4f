//! The program a container process executes: found like execvp does, as
//! the final user, vetted (no /proc magic link, a regular executable file,
//! never cuddy's own binary) and executed relative to its pinned directory
//! with `execveat`; and the last steps before it (HOME, noNewPrivileges,
//! signals, the fds the process inherits).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::Process;

use super::setup;
use super::sync::Channel;

/// What the container's init and an `exec` process do last before they wait
/// for `start` or exec, in this order: rlimits, scheduler and I/O priority,
/// the security labels (applied by the
/// kernel at execve; written while every capability is held), seccomp when
/// it must be loaded before the capability drop (no noNewPrivileges, as
/// runc), user, groups and capabilities, umask, the working directory
/// resolved inside the root (`cwd_field` names it in errors), the program
/// found and vetted as the final user, the parent-death signal, seccomp as
/// late as possible otherwise. `env` is the process's environment plus any
/// extras.
pub fn last_steps(
    p: &Process,
    in_userns: bool,
    seccomp: Option<&crate::seccomp::Program>,
    chan: &Channel,
    env: Vec<String>,
    cwd_field: &str,
    parent_death: Option<nix::sys::signal::Signal>,
) -> Result<ExecTarget, String> {
    use crate::seccomp::{Stage, load};
    setup::rlimits(p).map_err(|e| e.to_string())?;
    setup::scheduler(p).map_err(|e| e.to_string())?;
    setup::io_priority(p).map_err(|e| e.to_string())?;
    crate::lsm::apply_exec_labels(p).map_err(|e| e.to_string())?;
    load(seccomp, Stage::BeforeCaps, chan)?;
    setup::user_and_caps(p, in_userns).map_err(|e| e.to_string())?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        p.user().umask().unwrap_or(0o022) as libc::mode_t,
    ));
    setup::chdir_in_root(p.cwd(), cwd_field)?;
    let target = exec_target(p, env)?;
    if let Some(sig) = parent_death {
        setup::parent_death_signal(sig).map_err(|e| e.to_string())?;
    }
    load(seccomp, Stage::Late, chan)?;
    Ok(target)
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
