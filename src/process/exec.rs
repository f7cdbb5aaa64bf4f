//! The child side of `exec`: a process that joins every namespace of a
//! running container and execs a new program there.
//!
//! Two processes are involved, both forked (clone3) from cuddy, never
//! re-executed:
//! - the *joiner*, cloned into the container's cgroup (CLONE_INTO_CGROUP on
//!   v2; the parent writes cgroup.procs on v1 before releasing it), joins the
//!   namespaces with setns(2): the user namespace first, because joining it
//!   grants the capabilities that the other setns calls check against the
//!   namespaces' owner. setns(CLONE_NEWPID) (and CLONE_NEWTIME) only changes
//!   the namespace of the caller's *future children*, so
//! - the joiner forks the *process* with CLONE_PARENT: it is born in the
//!   container's PID namespace, as cuddy's own child (cuddy can wait for it and
//!   gets its SIGCHLD). The joiner reports its pid and exits.
//!
//! The process then applies the process config (terminal, rlimits,
//! oomScoreAdj, user, groups, capabilities, umask, cwd, noNewPrivileges) and
//! execs. Errors go to cuddy over the sync channel (close-on-exec, so EOF
//! after the last message means execve succeeded).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::Process;

use super::clone::{Forked, clone};
use super::program;
use super::sync::{Channel, Msg};
use crate::console;
use crate::fds::Keep;
use crate::fds::procfs::ProcFs;
use crate::namespaces::{self, JoinNs};

/// What the exec child needs, prepared by the parent.
pub struct ExecContext<'a> {
    pub process: &'a Process,
    /// The container's namespaces (opened from /proc/<init>/ns), user first.
    pub join: Vec<JoinNs>,
    /// The container's root directory when it has no mount namespace: the
    /// joiner chroots into it (O_PATH, from /proc/<init>/root).
    pub chroot: Option<OwnedFd>,
    /// The container is in a user namespace.
    pub in_userns: bool,
    pub chan: Channel,
    /// Connected console socket when `process.terminal` is true.
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
    /// Extra environment (LISTEN_FDS).
    pub extra_env: Vec<String>,
    /// Set LISTEN_PID to the process's own pid (socket activation).
    pub listen_pid: bool,
    /// The container is paused (`--ignore-paused`): the process joins the
    /// (frozen) cgroup only when set up, right before execve, moved there by
    /// the parent; it freezes there until the container is resumed.
    pub late_cgroup: bool,
    /// linux.seccomp of the container, compiled by the parent.
    pub seccomp: Option<crate::seccomp::Program>,
}

impl ExecContext<'_> {
    /// The fds the joiner keeps after its clone (the namespace fds are
    /// closed once joined, before the process is forked).
    pub fn keep(&self) -> Keep {
        let mut fds = vec![self.chan.as_fd().as_raw_fd()];
        fds.extend(self.console.as_ref().map(AsRawFd::as_raw_fd));
        fds.extend(self.join.iter().map(|j| j.fd.as_raw_fd()));
        fds.extend(self.chroot.as_ref().map(AsRawFd::as_raw_fd));
        Keep {
            preserve: self.preserve_fds,
            fds,
        }
    }
}

/// process.oomScoreAdj, written by the joiner for itself, before it joins
/// anything, through a procfs handle it verified (never the container's
/// /proc, which a container process may have mounted over: CVE-2025-52881);
/// the process forked next inherits it (fork copies oom_score_adj).
fn oom_score_adj(p: &Process) -> Result<(), String> {
    let Some(adj) = p.oom_score_adj() else {
        return Ok(());
    };
    let proc = ProcFs::for_pids().map_err(|e| format!("process.oomScoreAdj {adj}: {e}"))?;
    proc.write("self/oom_score_adj", adj.to_string().as_bytes())
        .map_err(|e| format!("process.oomScoreAdj {adj}: {e}"))
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and destructors of the parent's
    // copied memory.
    unsafe { libc::_exit(code) }
}

/// Runs in the joiner; never returns.
pub fn run_joiner(mut ctx: ExecContext) -> ! {
    match ctx.chan.recv() {
        Ok(Some(Msg::Go)) => {}
        _ => exit(1),
    }
    if let Err(e) = oom_score_adj(ctx.process) {
        let _ = ctx.chan.send(&Msg::Error(e));
        exit(1);
    }
    for j in &ctx.join {
        if let Err(e) = namespaces::join(j) {
            let _ = ctx.chan.send(&Msg::Error(e.to_string()));
            exit(1);
        }
    }
    if let Some(dir) = ctx.chroot.take() {
        if let Err(e) = chroot_into(dir) {
            let _ = ctx.chan.send(&Msg::Error(e));
            exit(1);
        }
    }
    // Joined: the namespace fds are of no use to the process, which the
    // container can see from its birth.
    ctx.join.clear();
    match clone(CloneFlags::CLONE_PARENT, None, &ctx.keep()) {
        Ok(Forked::Child) => run_process(ctx),
        Ok(Forked::Parent { pid, .. }) => {
            let _ = ctx.chan.send(&Msg::Pid(pid.as_raw()));
            exit(0)
        }
        Err(e) => {
            let _ = ctx.chan.send(&Msg::Error(format!(
                "fork into the container's PID namespace: {e}"
            )));
            exit(1)
        }
    }
}

/// fchdir + chroot(".") into the container's root (no mount namespace to
/// join); the fd is closed before the process is forked.
fn chroot_into(dir: OwnedFd) -> Result<(), String> {
    nix::unistd::fchdir(&dir).map_err(|e| format!("fchdir to the container's root: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot into the container's root: {e}"))?;
    drop(dir);
    Ok(())
}

fn run_process(mut ctx: ExecContext) -> ! {
    match prepare(&mut ctx) {
        Ok(p) => {
            let e = exec(&ctx, p);
            let _ = ctx.chan.send(&Msg::Error(e));
            exit(127)
        }
        Err(e) => {
            let _ = ctx.chan.send(&Msg::Error(e));
            exit(1)
        }
    }
}

fn prepare(ctx: &mut ExecContext) -> Result<program::ExecTarget, String> {
    let p = ctx.process;
    if ctx.in_userns {
        // Be root of the user namespace until the process's own user is set.
        let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
        let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
    }
    if let Some(sock) = ctx.console.take() {
        // setns(CLONE_NEWNS) made the container's root our "/".
        // The console socket is dropped once the master is sent.
        let root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("open /: {e}"))?;
        let pty = console::open_pty(root.as_fd(), std::path::Path::new("/"))
            .map_err(|e| e.to_string())?;
        if let Some(sz) = p.console_size() {
            console::set_size(pty.slave.as_fd(), sz.height() as u16, sz.width() as u16)
                .map_err(|e| e.to_string())?;
        }
        console::send_master(&sock, &pty.master).map_err(|e| e.to_string())?;
        drop(pty.master);
        console::become_tty_owner(&pty.slave).map_err(|e| e.to_string())?;
    }
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    env.extend(ctx.extra_env.iter().cloned());
    if ctx.listen_pid {
        env.push(format!("LISTEN_PID={}", std::process::id()));
    }
    program::last_steps(
        p,
        ctx.in_userns,
        ctx.seccomp.as_ref(),
        &ctx.chan,
        env,
        "cwd",
        None,
    )
}

/// Returns only when execve failed, with the message.
fn exec(ctx: &ExecContext, p: program::ExecTarget) -> String {
    if ctx.late_cgroup {
        if let Err(e) = ctx.chan.send(&Msg::Ready) {
            return format!("sync: {e}");
        }
        // The parent moves us into the frozen cgroup: this returns after resume.
        match ctx.chan.recv() {
            Ok(Some(Msg::Go)) => {}
            other => return format!("sync: expected Go from parent, got {other:?}"),
        }
    }
    program::execve_with_fds(&p, ctx.preserve_fds)
}
