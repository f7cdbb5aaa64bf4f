//! clone3(2), falling back to clone(2) on kernels (or seccomp filters) without it.
//!
//! Without CLONE_VM the child gets a copy of the parent's memory, like fork:
//! it continues in Rust right here, with the parsed spec in memory, so cuddy
//! never re-executes itself. That is only sound because cuddy is
//! single-threaded at this point (no lock can be held by a thread that does
//! not exist in the child), which `ensure_single_threaded` checks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::ProcessError;
use crate::fds::{Keep, close_all_except};

/// `struct clone_args` (linux/sched.h), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub enum Forked {
    Parent { pid: Pid, pidfd: Option<OwnedFd> },
    Child,
}

/// Counts our threads through /proc (a fork with other threads alive could
/// inherit a lock held forever).
pub fn ensure_single_threaded() -> Result<(), ProcessError> {
    let n = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if n > 1 {
        return Err(ProcessError::Threads(n));
    }
    Ok(())
}

/// Forks into new namespaces, optionally straight into a cgroup (v2,
/// CLONE_INTO_CGROUP) and returning a pidfd. The child keeps only the fds in
/// `keep` (plus stdio and the preserved range): everything else it inherited
/// (the state directory's lock, the cgroup fd, the caller's leaked fds, the
/// parent's other handles) is closed before it returns from here.
pub fn clone(
    flags: CloneFlags,
    cgroup_fd: Option<RawFd>,
    keep: &Keep,
) -> Result<Forked, ProcessError> {
    ensure_single_threaded()?;
    super::program::remember_self_exe();
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags.bits() as u64 | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if flags.contains(CloneFlags::CLONE_PARENT) {
        // clone3 refuses an exit signal with CLONE_PARENT (EINVAL): the
        // child gets the caller's own exit signal (SIGCHLD, to our parent).
        args.exit_signal = 0;
    }
    if let Some(fd) = cgroup_fd {
        args.flags |= 0x2_0000_0000; // CLONE_INTO_CGROUP
        args.cgroup = fd as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size we pass; without
    // CLONE_VM the child runs on a copy of our memory and stack (fork
    // semantics), and we are single-threaded (checked above).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let r = if r < 0 && matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM) && cgroup_fd.is_none()
    {
        // SAFETY: raw clone(2) without a new stack behaves like fork(2); same
        // single-threaded argument as above.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags.bits() as libc::c_long | libc::SIGCHLD as libc::c_long,
                0,
                0,
                0,
                0,
            )
        }
    } else {
        r
    };
    if r < 0 {
        return Err(ProcessError::Clone {
            flags: format!("{flags:?}"),
            source: Errno::last(),
        });
    }
    if r == 0 {
        // Until it execs the user's program, the child runs cuddy's binary
        // near or inside the container: make it non-dumpable so that no
        // container process (without CAP_SYS_PTRACE over us) can open
        // /proc/<pid>/exe or /proc/<pid>/fd of it (the CVE-2019-5736 class).
        // execve of a normal program makes a process dumpable again.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        // Without re-exec the child holds every fd of the parent until its
        // own execve (close-on-exec does not help before that), and the
        // container can see it (a CAP_SYS_PTRACE process opens
        // /proc/PID/fd/N): close all but what it needs, now.
        if let Err(e) = close_all_except(keep) {
            eprintln!("cuddy: container process: {e}");
            // SAFETY: _exit skips the copied parent's destructors.
            unsafe { libc::_exit(1) };
        }
        return Ok(Forked::Child);
    }
    let pid = Pid::from_raw(r as i32);
    let pidfd = if pidfd >= 0 {
        // SAFETY: the kernel wrote a new pidfd for us (CLONE_PIDFD).
        Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
    } else {
        pidfd_open(pid).ok()
    };
    Ok(Forked::Parent { pid, pidfd })
}

/// pidfd_open(2): a handle on a process that stays valid across pid reuse.
pub fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// pidfd_send_signal(2).
pub fn pidfd_signal(pidfd: &OwnedFd, sig: i32) -> nix::Result<()> {
    // SAFETY: valid pidfd; null siginfo means "as kill(2)".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
