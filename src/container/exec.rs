//! `exec`: run a new process in a created or running container (runc's
//! `exec`). See `crate::process::exec` for the child side.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, LinuxNamespaceType, Process};

use super::create::write_pid_file;
use super::{ContainerError, Result, Root, Status, init_pidfd, io_err, sys_err};
use crate::console;
use crate::namespaces::JoinNs;
use crate::process::clone::{Forked, clone};
use crate::process::exec::{ExecContext, run_joiner};
use crate::process::sync::{Channel, Msg};
use crate::spec;

/// Options of `exec`, as runc's flags.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub id: String,
    /// A JSON Process (config.md "Process"); replaces the flags below.
    pub process: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// UID[:GID]
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// `--apparmor`: the AppArmor profile of the process.
    pub apparmor: Option<String>,
    /// `--process-label`: the SELinux label of the process.
    pub process_label: Option<String>,
    pub args: Vec<String>,
}

fn bad(what: impl Into<String>) -> ContainerError {
    ContainerError::Unsupported(what.into())
}

/// The process to run: `--process` as given, or the container's own process
/// with the flags applied (as runc does).
fn build_process(opts: &ExecOptions, bundle: &spec::Bundle) -> Result<Process> {
    let p = if let Some(path) = &opts.process {
        let text = if path.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                .map_err(io_err("read --process", path))?;
            v
        } else {
            std::fs::read(path).map_err(io_err("read --process", path))?
        };
        parse_process(&text, path)?
    } else {
        let mut p = bundle
            .spec
            .process()
            .clone()
            .ok_or_else(|| bad("config.json has no process"))?;
        if opts.args.is_empty() {
            return Err(bad("exec needs a command to run (or --process FILE)"));
        }
        p.set_args(Some(opts.args.clone()));
        p.set_terminal(Some(opts.tty));
        // `--env` overrides a variable of the same name from process.env,
        // HOME and PATH included (spec::dedup_env: the last one wins).
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(opts.env.iter().cloned());
        p.set_env(Some(spec::dedup_env(&env)));
        if let Some(c) = &opts.cwd {
            p.set_cwd(c.clone());
        }
        let mut user = p.user().clone();
        if let Some(u) = &opts.user {
            let (uid, gid) = match u.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (u.as_str(), None),
            };
            let uid: u32 = uid
                .parse()
                .map_err(|_| bad(format!("-u {u:?}: expected UID[:GID] as numbers")))?;
            user.set_uid(uid);
            if let Some(g) = gid {
                user.set_gid(
                    g.parse()
                        .map_err(|_| bad(format!("-u {u:?}: expected UID[:GID] as numbers")))?,
                );
            }
        }
        if !opts.additional_gids.is_empty() {
            user.set_additional_gids(Some(opts.additional_gids.clone()));
        }
        p.set_user(user);
        if opts.no_new_privs {
            p.set_no_new_privileges(Some(true));
        }
        if !opts.caps.is_empty() {
            // Added to bounding, effective and permitted only: never to
            // inheritable or ambient (runc adds to ambient only when the
            // config already has inheritable capabilities; cuddy never widens
            // what is passed on across execve of unprivileged programs).
            let add = cap_flags(&opts.caps);
            let mut caps = p.capabilities().clone().unwrap_or_default();
            let with = |set: Option<HashSet<Capability>>| {
                let mut set = set.unwrap_or_default();
                set.extend(add.iter().copied());
                Some(set)
            };
            caps.set_bounding(with(caps.bounding().clone()));
            caps.set_effective(with(caps.effective().clone()));
            caps.set_permitted(with(caps.permitted().clone()));
            p.set_capabilities(Some(caps));
        }
        p
    };
    let mut p = p;
    if let Some(a) = &opts.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &opts.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    // Fail closed: a label for a security module the host does not run.
    let fields = [
        "apparmorProfile (--apparmor)",
        "selinuxLabel (--process-label)",
    ];
    crate::lsm::check_process(&p, fields, std::path::Path::new("/sys"))
        .map_err(|e| bad(e.to_string()))?;
    crate::spec::check_user_ids(p.user()).map_err(|(field, reason)| {
        let from = match &opts.process {
            Some(f) => format!("--process {}", f.display()),
            None => "--user/--additional-gids".into(),
        };
        bad(format!("exec {from}: {field}: {reason}"))
    })?;
    if let Some(c) = p.capabilities() {
        spec::caps::check_effective(c)
            .map_err(|(field, reason)| bad(format!("exec: {field}: {reason}")))?;
    }
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(bad("exec: process.args must name the program to run")),
    }
    if !p.cwd().is_absolute() {
        return Err(bad(format!(
            "exec: cwd {:?} must be an absolute path",
            p.cwd()
        )));
    }
    for e in p.env().iter().flatten() {
        if !e.contains('=') {
            return Err(bad(format!("exec: env {e:?} is not KEY=VALUE")));
        }
    }
    Ok(p)
}

/// `--process FILE`: a JSON Process. Capability names that cannot be applied
/// are dropped with a warning (config.md#linux-process), a duplicate
/// variable in `env` is overridden by the later one.
pub(crate) fn parse_process(text: &[u8], path: &Path) -> Result<Process> {
    let parse_err = |e| io_err("parse --process", path)(std::io::Error::other(e));
    let mut p: Process = spec::json::parse_object(text, "", |v| {
        if let Some(c) = v.get_mut("capabilities") {
            let field = format!("--process {}: capabilities", path.display());
            for w in spec::caps::filter(c, &field, &spec::caps::check) {
                crate::logging::warn(&w);
            }
        }
    })
    .map_err(parse_err)?;
    if let Some(env) = p.env() {
        p.set_env(Some(spec::dedup_env(env)));
    }
    Ok(p)
}

/// `--cap NAME` (repeatable; `CAP_` optional, any case, as runc and crun):
/// the capabilities to add. A name this build or the running kernel does not
/// know is skipped with a warning (config.md#linux-process).
fn cap_flags(names: &[String]) -> Vec<Capability> {
    let mut out = Vec::new();
    for c in names {
        let upper = c.to_ascii_uppercase();
        let name = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        let cap = spec::caps::check(&name)
            .map_err(|why| why.to_string())
            .and_then(|()| {
                serde_json::from_value(serde_json::Value::String(name)).map_err(|e| e.to_string())
            });
        match cap {
            Ok(cap) => out.push(cap),
            Err(why) => crate::logging::warn(&format!("--cap {c:?}: {why}, ignored")),
        }
    }
    out
}

fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Runs the exec; returns cuddy's exit code (the process's status in the
/// foreground, 0 when detached).
pub fn exec(root: &Root, opts: &ExecOptions) -> Result<i32> {
    match exec_checked(root, opts) {
        Err(e)
            if !matches!(
                e,
                ContainerError::BadStatus { .. } | ContainerError::NotFound(_)
            ) =>
        {
            Err(stopped_meanwhile(root, &opts.id).unwrap_or(e))
        }
        r => r,
    }
}

/// The init died (a racing kill) or the container was deleted while the
/// process was being started: opening the init's namespaces fails with
/// ENOENT, and the kernel refuses new processes in a PID namespace whose
/// init has exited (clone fails with ENOMEM). That is the container having
/// stopped (or gone), and is reported as such.
fn stopped_meanwhile(root: &Root, id: &str) -> Option<ContainerError> {
    match root.load(id) {
        Ok(st) if !root.init_alive(&st) || init_exiting(root, st.pid) => {
            Some(ContainerError::BadStatus {
                id: id.to_string(),
                status: Status::Stopped,
                hint: "cannot exec in a container that is not running",
            })
        }
        Err(e @ ContainerError::NotFound(_)) => Some(e),
        _ => None,
    }
}

/// Whether the init has begun exiting: PF_EXITING (0x4, include/linux/sched.h)
/// in the flags of /proc/PID/stat (field 9) is set at the start of do_exit,
/// before its namespaces go and long before it becomes a zombie.
fn init_exiting(root: &Root, pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(root.proc.join(pid.to_string()).join("stat")) else {
        return true;
    };
    let flags = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(6))
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    flags & PF_EXITING != 0
}

fn exec_checked(root: &Root, opts: &ExecOptions) -> Result<i32> {
    // The process is forked from this program: its binary must be sealed.
    crate::exeseal::check_sealed()?;
    let st = root.load(&opts.id)?;
    match root.status(&st) {
        Status::Created | Status::Running => {}
        Status::Paused if opts.ignore_paused => {}
        s @ Status::Paused => {
            return Err(ContainerError::BadStatus {
                id: opts.id.clone(),
                status: s,
                hint: "cannot exec in a paused container (use --ignore-paused)",
            });
        }
        s => {
            return Err(ContainerError::BadStatus {
                id: opts.id.clone(),
                status: s,
                hint: "cannot exec in a container that is not running",
            });
        }
    }
    let bundle = spec::load_for_state(&st.bundle, &root.dir(&opts.id))?;
    let process = build_process(opts, &bundle)?;
    let terminal = process.terminal().unwrap_or(false);
    if opts.console_socket.is_some() && !terminal {
        return Err(bad(
            "--console-socket needs a terminal (--tty, or terminal: true in --process)",
        ));
    }
    if terminal && opts.detach && opts.console_socket.is_none() {
        return Err(bad(
            "cannot allocate a terminal for a detached exec without --console-socket",
        ));
    }

    // The init's namespaces, opened through a pidfd-checked init so a reused
    // pid is never joined.
    let pidfd = init_pidfd(root, &st).ok_or_else(|| ContainerError::BadStatus {
        id: opts.id.clone(),
        status: Status::Stopped,
        hint: "cannot exec in a container that is not running",
    })?;
    let mut join = Vec::new();
    let mut in_userns = false;
    for ns in bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let t = ns.typ();
        let path = root
            .proc
            .join(st.pid.to_string())
            .join("ns")
            .join(ns_file(t));
        let fd = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys_err(format!("open {}", path.display())))?;
        if t == LinuxNamespaceType::User {
            in_userns = true;
        }
        join.push(JoinNs { typ: t, path, fd });
    }
    let chroot = chroot_dir(root, &opts.id, &st)?;
    if !root.init_alive(&st) {
        return Err(ContainerError::BadStatus {
            id: opts.id.clone(),
            status: Status::Stopped,
            hint: "cannot exec in a container that is not running",
        });
    }
    drop(pidfd);
    // User namespace first: it grants the capabilities to join the others.
    join.sort_by_key(|j| j.typ != LinuxNamespaceType::User);

    // Console: the given socket, or our own socketpair for the relay.
    let (console_child, relay) = if terminal {
        match &opts.console_socket {
            Some(p) => (Some(console::connect(p)?), None),
            None => {
                let (a, b) = std::os::unix::net::UnixStream::pair()
                    .map_err(io_err("socketpair", "console"))?;
                (Some(OwnedFd::from(a)), Some(OwnedFd::from(b)))
            }
        }
    } else {
        (None, None)
    };

    let mut preserve_fds = opts.preserve_fds;
    let mut extra_env = Vec::new();
    let mut listen_pid = false;
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0)
    {
        extra_env.push(format!("LISTEN_FDS={n}"));
        listen_pid = true;
        preserve_fds += n;
    }

    let set = super::run::forwardable();
    let mut old = SigSet::empty();
    if !opts.detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(sys_err("sigprocmask"))?;
    }
    let res = spawn(
        root,
        opts,
        &st,
        process,
        (join, chroot),
        in_userns,
        console_child,
        relay,
        preserve_fds,
        extra_env,
        listen_pid,
        st.cgroup.is_some() && root.status(&st) == Status::Paused,
        &set,
        bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref()),
    );
    if !opts.detach {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    res
}

/// A container without a mount namespace has its root as a chroot in the
/// runtime's mount namespace (mounts/shared_ns.rs), which no setns joins:
/// the exec'd process chroots into the init's root instead, opened here
/// from /proc/<init>/root (before the pid-reuse check that follows).
fn chroot_dir(root: &Root, id: &str, st: &super::State) -> Result<Option<OwnedFd>> {
    if !root.dir(id).join(crate::mounts::shared_ns::RECORD).exists() {
        return Ok(None);
    }
    let path = root.proc.join(st.pid.to_string()).join("root");
    let fd = nix::fcntl::open(
        &path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys_err(format!("open {}", path.display())))?;
    Ok(Some(fd))
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    root: &Root,
    opts: &ExecOptions,
    st: &super::State,
    process: Process,
    (join, chroot): (Vec<JoinNs>, Option<OwnedFd>),
    in_userns: bool,
    console_child: Option<OwnedFd>,
    relay: Option<OwnedFd>,
    preserve_fds: u32,
    extra_env: Vec<String>,
    listen_pid: bool,
    late_cgroup: bool,
    set: &SigSet,
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
) -> Result<i32> {
    let seccomp = crate::seccomp::prepare(&root.path, seccomp, &process)?;
    let (parent_chan, child_chan) =
        Channel::pair().map_err(io_err("socketpair", "sync channel"))?;
    let cg_fd = match &st.cgroup {
        Some(cg) if !late_cgroup => cg.clone_into_fd()?,
        _ => None,
    };
    let mut ctx = ExecContext {
        process: &process,
        join,
        chroot,
        in_userns,
        chan: child_chan,
        console: console_child,
        preserve_fds,
        extra_env,
        listen_pid,
        late_cgroup,
        seccomp,
    };
    let keep = ctx.keep();
    let joiner = match clone(
        nix::sched::CloneFlags::empty(),
        cg_fd.as_ref().map(|f| f.as_raw_fd()),
        &keep,
    )? {
        Forked::Child => {
            // Already closed by clone (not in `keep`): never drop it here.
            std::mem::forget(parent_chan);
            run_joiner(ctx)
        }
        Forked::Parent { pid, .. } => pid,
    };
    let seccomp = ctx.seccomp.take();
    drop(ctx);
    let kill_joiner = |e: ContainerError| {
        let _ = nix::sys::signal::kill(joiner, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(joiner, None);
        e
    };
    if cg_fd.is_none() && !late_cgroup {
        if let Some(cg) = &st.cgroup {
            cg.add_process(joiner.as_raw())
                .map_err(|e| kill_joiner(e.into()))?;
        }
    }
    parent_chan
        .send(&Msg::Go)
        .map_err(|e| kill_joiner(io_err("send", "sync channel")(e)))?;
    // The joiner sends the process's pid (or an error) and exits. The
    // process shares the channel and may report Ready (paused container)
    // before the joiner gets to send the pid: take it in either order.
    let mut first = parent_chan.recv();
    let early_ready = late_cgroup && matches!(first, Ok(Some(Msg::Ready)));
    if early_ready {
        first = parent_chan.recv();
    }
    let _ = waitpid(joiner, None);
    let pid = match first {
        Ok(Some(Msg::Pid(p))) => Pid::from_raw(p),
        Ok(Some(Msg::Error(e))) => return Err(ContainerError::Exec(e)),
        Ok(other) => {
            return Err(ContainerError::Exec(format!(
                "unexpected message {other:?}"
            )));
        }
        Err(e) => return Err(io_err("receive", "sync channel")(e)),
    };
    // The agent of a notifying profile sees the container's state.
    let annotations = st.annotations.clone().into_iter().collect();
    let running = crate::hooks::state(&st.id, "running", st.pid, &st.bundle, &annotations);
    let handoff = seccomp
        .as_ref()
        .and_then(|s| s.handoff(pid.as_raw(), running));
    if late_cgroup {
        // Paused container (--ignore-paused): the process is set up and waits;
        // moved into the frozen cgroup it freezes until the container resumes,
        // then execs.
        let ready = if early_ready {
            Ok(Some(Msg::Ready))
        } else {
            crate::seccomp::recv(&parent_chan, handoff.as_ref())
        };
        match ready {
            Ok(Some(Msg::Ready)) => {}
            Ok(Some(Msg::Error(e))) => {
                let _ = waitpid(pid, None);
                return Err(ContainerError::Exec(e));
            }
            other => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return Err(ContainerError::Exec(format!(
                    "unexpected message {other:?}"
                )));
            }
        }
        if let Some(cg) = &st.cgroup {
            if let Err(e) = cg.add_process(pid.as_raw()) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return Err(e.into());
            }
        }
        parent_chan
            .send(&Msg::Go)
            .map_err(io_err("send", "sync channel"))?;
    } else {
        // EOF: the process exec'd (the channel is close-on-exec); an Error: it did not.
        expect_exec(&parent_chan, pid, handoff.as_ref())?;
    }
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid.as_raw())?;
    }
    if opts.detach {
        return Ok(0);
    }
    let master = match &relay {
        Some(r) => Some(console::recv_master(r)?),
        None => None,
    };
    Ok(console::wait_forwarding(pid, set, master)?)
}

/// Waits for EOF on the channel (execve closed it) or the process's error.
fn expect_exec(
    parent_chan: &Channel,
    pid: Pid,
    handoff: Option<&crate::seccomp::Handoff>,
) -> Result<()> {
    match crate::seccomp::recv(parent_chan, handoff) {
        Ok(None) => {}
        Ok(Some(Msg::Error(e))) => {
            let _ = waitpid(pid, None);
            return Err(ContainerError::Exec(e));
        }
        Ok(other) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(ContainerError::Exec(format!(
                "unexpected message {other:?}"
            )));
        }
        Err(e) => return Err(io_err("receive", "sync channel")(e)),
    }
    Ok(())
}
