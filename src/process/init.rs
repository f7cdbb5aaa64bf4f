//! The container's init: what the cloned child does, in order, from its birth
//! in the new namespaces to execve of the user process.
//!
//! Every failure is sent to the parent over the sync channel and the child
//! exits; the parent prints the message once. After `Ready`, the child blocks
//! opening the exec fifo for writing until `cuddy start` opens it for
//! reading, then execs.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::stat::Mode;

use super::sync::{Channel, Msg};
use super::{program, setup};
use crate::console;
use crate::fds::Keep;
use crate::fds::procfs::ProcFs;
use crate::hooks;
use crate::mounts::{RootfsConfig, finish_rootfs, prepare_rootfs};
use crate::namespaces::{self, NsPlan};
use crate::spec::Bundle;
use oci_spec::runtime::LinuxNamespaceType;

/// Everything the child needs, prepared by the parent before clone.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub ns: &'a NsPlan,
    /// The child's end of the sync channel.
    pub chan: Channel,
    /// O_PATH fd of the exec fifo in the state directory.
    pub fifo: OwnedFd,
    /// The host's /proc (verified procfs root): sysctls, time offsets,
    /// mountinfo. Closed before pivot_root (`take`n), never seen by the
    /// container's processes.
    pub proc: Option<ProcFs>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Extra fds 3..3+N that the process inherits.
    pub preserve_fds: u32,
    /// Extra environment (LISTEN_FDS/LISTEN_PID for socket activation).
    pub extra_env: Vec<String>,
    /// The config has prestart/createRuntime/createContainer/startContainer
    /// hooks: stop before pivot_root and let the parent run its hooks.
    pub hooks_sync: bool,
    /// Connected console socket when `process.terminal` is true.
    pub console: Option<OwnedFd>,
    /// linux.seccomp, compiled by the parent.
    pub seccomp: Option<crate::seccomp::Program>,
    /// Bind sources (and id-mapped mounts) opened by the parent.
    pub mount_sources: crate::mounts::MountSources,
    /// `CreateOptions::parent_death_signal`: set by `program::last_steps`.
    pub parent_death_signal: Option<nix::sys::signal::Signal>,
}

impl InitContext<'_> {
    /// The fds the middle process and the init keep after the clone; every
    /// other fd is closed (`crate::fds::close_all_except`).
    pub fn keep(&self) -> Keep {
        let mut fds: Vec<RawFd> = vec![self.chan.as_fd().as_raw_fd(), self.fifo.as_raw_fd()];
        fds.extend(self.proc.as_ref().map(ProcFs::as_raw_fd));
        fds.extend(self.console.as_ref().map(AsRawFd::as_raw_fd));
        fds.extend(self.ns.join.iter().map(|j| j.fd.as_raw_fd()));
        fds.extend(self.mount_sources.raw_fds());
        Keep {
            preserve: self.preserve_fds,
            fds,
        }
    }
}

/// Runs in the child; never returns.
pub fn run(mut ctx: InitContext) -> ! {
    let code = match setup_container(&mut ctx) {
        Ok(prepared) => exec(ctx, prepared),
        Err(e) => {
            let _ = ctx.chan.send(&Msg::Error(e));
            1
        }
    };
    // SAFETY: _exit skips Rust/libc atexit handlers and destructors, which
    // belong to the parent whose memory we copied.
    unsafe { libc::_exit(code) }
}

/// The middle process of a container that joins a user namespace by path:
/// it waits for Go (it is in the container's cgroup by then, which the init
/// inherits), joins the user namespace, clones the init into the new
/// namespaces (now owned by the joined user namespace) as a sibling
/// (CLONE_PARENT: the init is cuddy's child, so `run` can wait for it),
/// reports the init's pid and exits. Never returns.
pub fn run_middle(ctx: InitContext) -> ! {
    let code = match middle(&ctx) {
        Ok(None) => 0,
        Ok(Some(())) => run(ctx),
        Err(e) => {
            let _ = ctx.chan.send(&Msg::Error(e));
            1
        }
    };
    // SAFETY: see `run`.
    unsafe { libc::_exit(code) }
}

/// Returns Some(()) in the cloned init, None in the middle process when done.
fn middle(ctx: &InitContext) -> Result<Option<()>, String> {
    match ctx.chan.recv() {
        Ok(Some(Msg::Go)) => {}
        Ok(other) => return Err(format!("sync: expected Go from parent, got {other:?}")),
        Err(e) => return Err(format!("sync: {e}")),
    }
    if let Some(j) = ctx
        .ns
        .join
        .iter()
        .find(|j| j.typ == LinuxNamespaceType::User)
    {
        namespaces::join(j).map_err(|e| e.to_string())?;
    }
    let flags = ctx.ns.clone_flags | nix::sched::CloneFlags::CLONE_PARENT;
    let pidfd = match super::clone::clone(flags, None, &ctx.keep()).map_err(|e| e.to_string())? {
        super::clone::Forked::Child => return Ok(Some(())),
        super::clone::Forked::Parent { pidfd, .. } => {
            pidfd.ok_or("clone: no pidfd for the init")?
        }
    };
    // The pid clone3 returned is in our PID namespace, which may be one the
    // container joined; the host procfs shows it in the parent's namespace.
    let proc = ctx.proc.as_ref().ok_or("no procfs handle")?;
    let info = proc
        .read_to_string(&format!("self/fdinfo/{}", pidfd.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or("cannot read the init's pid from its pidfd")?;
    ctx.chan
        .send(&Msg::Pid(pid))
        .map_err(|e| format!("sync: {e}"))?;
    Ok(None)
}

struct Prepared {
    /// State JSON for the startContainer hooks (status "created").
    start_state: Option<String>,
    target: program::ExecTarget,
    /// A detached procfs of the container's own PID namespace (subset=pid),
    /// to reopen the exec fifo after pivot_root: it shows nothing the
    /// container's own /proc does not (docs/fds.md).
    fifo_proc: ProcFs,
}

/// Closes the fds of the namespaces joined by path, once joined.
fn close_joined(ctx: &InitContext) {
    for j in &ctx.ns.join {
        // SAFETY: the NsPlan belongs to the parent's stack frame, which this
        // child never returns to (it execs or _exits): its OwnedFds are never
        // dropped or used here again.
        unsafe { libc::close(j.fd.as_raw_fd()) };
    }
}

fn setup_container(ctx: &mut InitContext) -> Result<Prepared, String> {
    let spec = &ctx.bundle.spec;
    let Some(process) = spec.process() else {
        return Err("config.json: process: missing".into());
    };

    // 1. Wait for the parent: id maps written, cgroup joined.
    match ctx.chan.recv() {
        Ok(Some(Msg::Go)) => {}
        Ok(other) => return Err(format!("sync: expected Go from parent, got {other:?}")),
        Err(e) => return Err(format!("sync: {e}")),
    }

    // 2. Namespaces by path (user first), then root in a new user namespace.
    for j in &ctx.ns.join {
        // The PID namespace was joined by the parent (for its children), and a
        // joined user namespace by the middle process that cloned us.
        if j.typ == LinuxNamespaceType::Pid
            || (j.typ == LinuxNamespaceType::User && ctx.ns.two_stage)
        {
            continue;
        }
        namespaces::join(j).map_err(|e| e.to_string())?;
    }
    close_joined(ctx);
    let host_proc = ctx.proc.take().ok_or("no procfs handle")?;
    // The time namespace before the switch to the mapped root: that switch
    // makes us non-dumpable, which leaves /proc/self/timens_offsets owned by
    // the (unmapped) host root and unwritable for us.
    if let Some(offsets) = &ctx.ns.new_time {
        namespaces::new_time_ns(&host_proc, offsets).map_err(|e| e.to_string())?;
    }
    // Inside a user namespace (new, or joined by the middle process) become
    // its root, so files we create are owned by a mapped id.
    if ctx.ns.in_userns {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(|e| format!("setresgid 0 in the user namespace: {e}"))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(|e| format!("setresuid 0 in the user namespace: {e}"))?;
    }
    if ctx.ns.new_cgroup {
        namespaces::new_cgroup_ns().map_err(|e| e.to_string())?;
    }
    if ctx
        .ns
        .clone_flags
        .contains(nix::sched::CloneFlags::CLONE_NEWNET)
    {
        namespaces::loopback_up().map_err(|e| e.to_string())?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| format!("sethostname {h:?} (hostname): {e}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        let c = CString::new(d).map_err(|_| "domainname contains NUL".to_string())?;
        // SAFETY: valid pointer and length of a NUL-free string.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } < 0 {
            return Err(format!(
                "setdomainname {d:?} (domainname): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if !ctx.no_new_keyring {
        setup::join_session_keyring(ctx.id).map_err(|e| e.to_string())?;
    }

    // 3. The root filesystem. mknod and mount modes must not be masked.
    nix::sys::stat::umask(Mode::empty());
    let cfg = RootfsConfig {
        spec,
        bundle: &ctx.bundle.dir,
        rootfs: &ctx.bundle.rootfs,
        no_pivot: ctx.no_pivot,
        userns: ctx.ns.in_userns,
        cgroupns: ctx.ns.new_cgroup,
        mountns: ctx.ns.mountns(),
        mountinfo: host_proc
            .read_to_string("self/mountinfo")
            .map_err(|e| e.to_string())?,
        self_cgroup: host_proc
            .read_to_string("self/cgroup")
            .map_err(|e| e.to_string())?,
        sources: &ctx.mount_sources,
    };
    let root = prepare_rootfs(&cfg).map_err(|e| e.to_string())?;
    ctx.mount_sources.close();
    // sysctl through the verified host procfs handle (never the
    // container's /proc, which its config or image may redirect): the
    // values are those of the namespaces of the writer (us).
    for (k, v) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let rel = format!("sys/{}", k.replace('.', "/"));
        host_proc
            .write(&rel, v.as_bytes())
            .map_err(|e| format!("linux.sysctl {k:?} = {v:?}: {e}"))?;
    }
    // Hooks: the parent runs prestart and createRuntime (runtime namespace)
    // while we wait; then createContainer runs here, in the container's
    // namespaces, before pivot_root (its path resolves in the runtime's
    // filesystem, config.md "createContainer Hooks").
    let mut start_state = None;
    if ctx.hooks_sync {
        ctx.chan
            .send(&Msg::RunHooks)
            .map_err(|e| format!("sync: send: {e}"))?;
        let state = match ctx.chan.recv() {
            Ok(Some(Msg::HooksDone(s))) => s,
            Ok(other) => {
                return Err(format!(
                    "sync: expected HooksDone from parent, got {other:?}"
                ));
            }
            Err(e) => return Err(format!("sync: {e}")),
        };
        hooks::run(
            hooks::Kind::CreateContainer,
            spec.hooks().as_ref(),
            state.as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        if hooks::any(spec.hooks().as_ref(), &[hooks::Kind::StartContainer]) {
            let mut v: serde_json::Value =
                serde_json::from_str(&state).map_err(|e| format!("sync: hook state: {e}"))?;
            v["status"] = "created".into();
            start_state = Some(v.to_string());
        }
    }
    // The terminal: a pty from the container's devpts, /dev/console bound
    // to it (still through the host's /proc, before pivot_root), the master
    // sent over the console socket, the slave our controlling tty and stdio.
    if let Some(sock) = ctx.console.take() {
        let pty = console::open_pty(root.fd.as_fd(), &root.path).map_err(|e| e.to_string())?;
        if let Some(sz) = process.console_size() {
            console::set_size(pty.slave.as_fd(), sz.height() as u16, sz.width() as u16)
                .map_err(|e| e.to_string())?;
        }
        console::mount_console(root.fd.as_fd(), &root.path, &pty.slave)
            .map_err(|e| e.to_string())?;
        console::send_master(&sock, &pty.master).map_err(|e| e.to_string())?;
        drop(pty.master);
        drop(sock);
        console::become_tty_owner(&pty.slave).map_err(|e| e.to_string())?;
    }
    // The exec fifo is reopened later through a procfs of our own PID
    // namespace (made now, while we still may mount), never the host's:
    // the host procfs handle is closed here, before pivot_root, so no
    // process of the container ever finds it in our fd table.
    let fifo_proc = ProcFs::detached_pids(true)
        .map_err(|e| format!("a procfs of the container's PID namespace for the exec fifo: {e}"))?;
    drop(host_proc);
    finish_rootfs(&cfg, root).map_err(|e| e.to_string())?;

    // 4. The process.
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(ctx.extra_env.iter().cloned());
    // Before seccomp, which may filter personality(2).
    setup::personality(spec.linux().as_ref().and_then(|l| l.personality().as_ref()))
        .map_err(|e| e.to_string())?;
    let seccomp = ctx.seccomp.as_ref();
    let mut target = program::last_steps(
        process,
        ctx.ns.in_userns,
        seccomp,
        &ctx.chan,
        env,
        "process.cwd",
        ctx.parent_death_signal,
    )?;
    // Found and checked now (errors belong to `create`), executed after
    // `start` once vetted again: no directory fd is held meanwhile.
    target.release();
    Ok(Prepared {
        start_state,
        target,
        fifo_proc,
    })
}

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

fn wait_signals_terminate() {
    use nix::sys::signal::{
        SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask,
    };
    let act = SigAction::new(
        SigHandler::Handler(exit_on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        // SAFETY: the handler only calls _exit, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
        set.add(sig);
    }
    // `run` blocked these in the parent before cloning us.
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
}

/// Reports Ready and waits until `create` has recorded the container
/// ("created" in state.json): an init whose creator is killed before that
/// dies with it instead of waiting forever for a `start` of a container
/// that was never created (issue 11). A dead creator shows as EPIPE on the
/// send or EOF on the receive (the parent's end is close-on-exec and closed
/// in every other child, so only the creator holds it); the receive blocks
/// from Ready until `Committed`, so there is no window in between.
fn committed(chan: &crate::process::sync::Channel) -> bool {
    chan.send(&Msg::Ready).is_ok() && chan.recv().ok().flatten() == Some(Msg::Committed)
}

fn exec(ctx: InitContext, p: Prepared) -> i32 {
    if !committed(&ctx.chan) {
        return 1;
    }
    drop(ctx.chan);
    // While it waits for `start`, the init is the container's pid 1, which
    // the kernel protects from every signal it has no handler for: `kill` of
    // a created container would do nothing. Terminating signals end it, as
    // they end runc's waiting init; execve resets these handlers.
    wait_signals_terminate();
    // Block until `cuddy start` opens the fifo for reading. The fifo lives in
    // the host's state directory; we reach it through our own fd table via
    // our private procfs (the container's /proc may not exist, and may be
    // anything). Then both the O_PATH fd and that procfs are closed.
    let w = match p.fifo_proc.reopen(ctx.fifo.as_fd(), libc::O_WRONLY) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("cuddy: open exec fifo: {e}");
            return 1;
        }
    };
    drop(p.fifo_proc);
    drop(ctx.fifo);
    // startContainer hooks: after `start`, before execve, in the container.
    // `start` waits for our byte on the fifo: "0" when the process is about
    // to be exec'd, otherwise the hook's error, which `start` reports.
    if let Some(state) = &p.start_state {
        let hooks = ctx.bundle.spec.hooks().as_ref();
        if let Err(e) = hooks::run(hooks::Kind::StartContainer, hooks, state.as_bytes()) {
            let msg = format!("E{e}");
            let _ = nix::unistd::write(&w, &msg.as_bytes()[..msg.len().min(libc::PIPE_BUF)]);
            return 1;
        }
    }
    if nix::unistd::write(&w, b"0").is_err() {
        return 1;
    }
    let e = program::execve_with_fds(&p.target, ctx.preserve_fds);
    eprintln!("cuddy: {e}");
    127
}
