//! `create`: everything up to a container whose init waits for `start`.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::intent::{commit, creating_state, record_init};
use super::statedir::{Undo, make_locked_dir};
use super::{ContainerError, EXEC_FIFO, Result, Root, State, Status, io_err, sys_err, validate_id};
use crate::cgroups::{self, Cgroup};
use crate::fds::procfs::ProcFs;
use crate::hooks;
use crate::namespaces;
use crate::process::clone::{Forked, clone};
use crate::process::init::{self, InitContext};
use crate::process::sync::{Channel, Msg};
use crate::spec;
use crate::utils::{proc_start_time, write_atomic};

/// Options of `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// crun's `--config FILE`: the spec to use instead of the bundle's
    /// config.json (copied into the state directory for `exec`).
    pub config: Option<PathBuf>,
    /// crun's `--cgroup-manager disabled`: no cgroup at all; the container
    /// stays in the caller's cgroup and `linux.resources` is ignored with a
    /// warning (crun ignores it silently).
    pub no_cgroup: bool,
    /// `--systemd-cgroup` / `--cgroup-manager systemd`: the cgroup is a
    /// transient systemd scope (docs/cgroups.md, "systemd driver").
    pub systemd_cgroup: bool,
    /// `--network` and friends (docs/networking.md); resolved against the
    /// config's `cuddy.network.*` annotations. Empty: config.json alone
    /// decides, as with runc.
    pub network: crate::network::Options,
    /// The signal the container's init gets when the process (thread) that
    /// created it exits (`PR_SET_PDEATHSIG`), for owners that live as long
    /// as their container, like the sandbox helper: SIGKILLed, it takes the
    /// container's processes with it. None for `cuddy create`, which exits
    /// right after creating (runc and crun set none either).
    pub parent_death_signal: Option<nix::sys::signal::Signal>,
}

/// A freshly created container.
#[derive(Debug)]
pub struct Created {
    pub state: State,
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
}

/// A verified procfs handle (`crate::fds::procfs`): a bind mount of
/// something else over /proc must not fool cuddy into writing uid maps,
/// oom_score_adj or sysctls to arbitrary files.
fn proc_err(e: crate::fds::procfs::ProcError) -> ContainerError {
    ContainerError::Unsupported(format!("procfs: {e}"))
}

/// Writes the pid file atomically (runc's --pid-file), relative to the cwd.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    write_atomic(path, pid.to_string().as_bytes(), 0o644).map_err(io_err("write pid file", path))
}

/// `--cgroup-manager disabled`: resources cannot be applied without a
/// cgroup; say so instead of ignoring them silently.
fn no_cgroup_warning(linux: Option<&oci_spec::runtime::Linux>) {
    if linux.and_then(|l| l.resources().as_ref()).is_some() {
        crate::logging::warn(
            "--cgroup-manager disabled: linux.resources is ignored (the container gets no cgroup)",
        );
    }
}

/// The container's cgroup, planned (nothing made): `make` makes the
/// cgroupfs driver's directories; the systemd driver's scope is started
/// with the init's pid (see [`Cgroup::start_scope`]). Either way the plan's
/// `intent` is recorded first.
fn plan_cgroup(
    opts: &CreateOptions,
    linux: Option<&oci_spec::runtime::Linux>,
) -> std::result::Result<Cgroup, cgroups::CgroupError> {
    let path = linux.and_then(|l| l.cgroups_path().as_deref());
    let roots = cgroups::Roots::default();
    if opts.systemd_cgroup {
        let path = path.map(|p| p.to_string_lossy());
        Cgroup::systemd_reachable()?;
        return Cgroup::for_systemd(&roots, path.as_deref(), &opts.id);
    }
    Cgroup::plan(&roots, path, &opts.id)
}

/// clone3 straight into the cgroup where it can (v2), else a plain clone3
/// whose child the caller moves with a cgroup.procs write. The kernel
/// refuses CLONE_INTO_CGROUP for some cgroups a write still accepts (seen:
/// EOPNOTSUPP for a cgroup under the caller's own populated, non-root
/// cgroup, a relative cgroupsPath on a v2 host); the write then succeeds or
/// fails with an error that names the cgroup. Returns whether the child was
/// born in the cgroup.
fn clone_init(
    flags: nix::sched::CloneFlags,
    into: Option<std::os::fd::RawFd>,
    keep: &crate::fds::Keep,
) -> Result<(Forked, bool)> {
    use crate::process::ProcessError;
    match clone(flags, into, keep) {
        Ok(f) => Ok((f, into.is_some())),
        Err(ProcessError::Clone { source, .. })
            if into.is_some()
                && matches!(
                    source,
                    nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::EBUSY
                ) =>
        {
            tracing::debug!("clone3 into the cgroup refused ({source}); moving the init instead");
            Ok((clone(flags, None, keep)?, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// Put `pid` in the cgroup: the cgroupfs driver moves it; the systemd
/// driver starts the scope with it and then applies the resources.
fn enter_cgroup(cg: &Cgroup, pid: i32, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
    if cg.is_systemd() {
        return Ok(cg.start_scope(pid, res)?);
    }
    Ok(cg.add_process(pid)?)
}

/// When the init died before reporting: was it the OOM killer? Then say so.
fn oom_in_setup(cgroup: &Cgroup) -> Option<ContainerError> {
    (super::events::oom_kills(cgroup).unwrap_or(0) > 0).then(|| {
        ContainerError::Init(
            "the init was killed by the OOM killer during set-up: linux.resources.memory.limit is too small".into(),
        )
    })
}

pub fn create(root: &Root, opts: &CreateOptions) -> Result<Created> {
    validate_id(&opts.id)?;
    let bundle = spec::load_config(&opts.bundle, opts.config.as_deref())?;
    create_bundle(root, opts, bundle)
}

/// `create` with the id validated and the bundle already loaded (`run`
/// loads it once to see whether it must relay a terminal).
pub(crate) fn create_bundle(
    root: &Root,
    opts: &CreateOptions,
    mut bundle: spec::Bundle,
) -> Result<Created> {
    // The init is forked from this program: its binary must be sealed.
    crate::exeseal::check_sealed()?;
    let process = bundle.spec.process().as_ref();
    let terminal = process.and_then(|p| p.terminal()).unwrap_or(false);
    if terminal && opts.console_socket.is_none() {
        return Err(ContainerError::Unsupported(format!(
            "{}: process.terminal is true but no --console-socket was given (use --console-socket, `cuddy run` in the foreground, or set terminal to false)",
            bundle.dir.join("config.json").display()
        )));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(ContainerError::Unsupported(
            "--console-socket needs process.terminal to be true in config.json".into(),
        ));
    }
    // Connected before anything is created: a bad path fails cleanly, and the
    // init (in another mount namespace) inherits the connection.
    let console = match &opts.console_socket {
        Some(p) if terminal => Some(crate::console::connect(p)?),
        _ => None,
    };
    // The network request may change the spec's network namespace.
    let mut net = crate::network::plan(&opts.network, &mut bundle.spec)?;
    // linux.netDevices: looked up before anything is created.
    let mut netdevs = crate::network::netdev::prepare(&bundle.spec)
        .map_err(crate::network::NetworkError::from)?;
    let ns = namespaces::plan(&bundle.spec)?;

    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&root.path)
        .map_err(io_err("create state root", &root.path))?;
    let dir = root.dir(&opts.id);
    // Held until create returns: a concurrent `delete` of this id waits.
    let _lock = make_locked_dir(root, &opts.id)?;
    let mut undo = Undo {
        dir: Some(dir.clone()),
        cgroup: None,
        child: None,
        network: None,
        poststop: None,
    };
    if let Err(e) = super::notify::prepare(&mut bundle.spec, &dir) {
        undo.run();
        return Err(e.into());
    }
    if let Err(e) = spec::copy_config(&bundle, &dir) {
        undo.run();
        return Err(e.into());
    }
    let linux = bundle.spec.linux().as_ref();
    // Write intent first: the cgroup is planned and recorded ("creating",
    // locked) before the first mkdir, so whatever a create killed at any
    // instant made, `delete` finds in state.json and removes (issue 11).
    let planned = match opts.no_cgroup {
        true => None,
        false => match plan_cgroup(opts, linux) {
            Ok(mut c) => {
                // What pids.limit 0 means depends on it (create and update).
                c.set_oci_version(bundle.spec.version());
                Some(c)
            }
            Err(e) => {
                undo.run();
                return Err(e.into());
            }
        },
    };
    let mut state = creating_state(opts, &bundle, planned.as_ref().map(Cgroup::intent));
    // Locked until create returns: `state`, `list` and every verb see no
    // container until then, and a crashed create is told by its free lock.
    let mut _creating = match root.save_creating(&state) {
        Ok(l) => l,
        Err(e) => {
            undo.run();
            return Err(e);
        }
    };
    let cgroup = match planned.map(|mut c| c.make().map(|()| c)).transpose() {
        Ok(c) => c,
        Err(e) => {
            undo.run();
            return Err(e.into());
        }
    };
    undo.cgroup = cgroup.as_ref();
    // What was made, exactly (the intent may list a parent that another
    // create made meanwhile).
    state.cgroup = cgroup.clone();
    _creating = match root.save_creating(&state) {
        Ok(l) => l,
        Err(e) => {
            undo.run();
            return Err(e);
        }
    };
    // Leases, bridge, /etc files and their mounts: before the mount
    // sources are opened (in spawn).
    if net.is_some() || netdevs.is_some() {
        undo.network = Some(opts.id.clone());
    }
    if let Some(n) = net.as_mut() {
        if let Err(e) = n.prepare(&root.path, &dir, &opts.id, &mut bundle.spec, &bundle.rootfs) {
            undo.run();
            return Err(e.into());
        }
    }
    let res = spawn(
        root,
        opts,
        &bundle,
        &ns,
        cgroup.as_ref(),
        &mut undo,
        &mut state,
        console,
        &mut _creating,
        net.as_mut(),
        netdevs.as_mut(),
    );
    match res {
        Ok(c) => Ok(c),
        Err(e) => {
            undo.run();
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    root: &Root,
    opts: &CreateOptions,
    bundle: &spec::Bundle,
    ns: &namespaces::NsPlan,
    cgroup: Option<&Cgroup>,
    undo: &mut Undo,
    state: &mut State,
    console: Option<OwnedFd>,
    creating: &mut nix::fcntl::Flock<OwnedFd>,
    net: Option<&mut crate::network::Plan>,
    netdevs: Option<&mut crate::network::netdev::Pending>,
) -> Result<Created> {
    // Always applied: without resources the container still gets the
    // default device policy (deny all, then the default allow-list), plus
    // access to the devices its config creates.
    let linux = bundle.spec.linux().as_ref();
    let mut res = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    if let Some(devs) = linux.and_then(|l| l.devices().as_ref()) {
        let mut rules = res.devices().clone().unwrap_or_default();
        rules.extend(cgroups::allow_rules_for(devs));
        res.set_devices(Some(rules));
    }
    match cgroup {
        // systemd: applied once the scope exists (enter_cgroup).
        Some(cg) if cg.is_systemd() => {}
        Some(cg) => cg.apply(&res)?,
        None => no_cgroup_warning(linux),
    }
    // The exec fifo: init opens it for writing (blocking) after set-up;
    // `start` opens it for reading, which releases init into execve.
    let fifo_path = root.dir(&opts.id).join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .map_err(sys_err(format!("mkfifo {}", fifo_path.display())))?;
    // The container user may be unprivileged: it needs write access.
    fs::set_permissions(&fifo_path, fs::Permissions::from_mode(0o622))
        .map_err(io_err("chmod", &fifo_path))?;
    let fifo = open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys_err(format!("open {}", fifo_path.display())))?;
    let proc = ProcFs::mounted().map_err(proc_err)?;
    let (parent_chan, child_chan) =
        Channel::pair().map_err(io_err("socketpair", "sync channel"))?;

    let mut preserve_fds = opts.preserve_fds;
    let mut extra_env = Vec::new();
    // Socket activation as runc does it: LISTEN_FDS in cuddy's environment
    // passes those fds on, and the container's init is pid 1 to them.
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0)
    {
        extra_env.push(format!("LISTEN_FDS={n}"));
        extra_env.push("LISTEN_PID=1".to_string());
        preserve_fds += n;
    }

    let cg_fd = match cgroup {
        Some(cg) if !cg.is_systemd() => cg.clone_into_fd()?,
        _ => None,
    };
    let seccomp = crate::seccomp::prepare(
        &root.path,
        linux.and_then(|l| l.seccomp().as_ref()),
        bundle
            .spec
            .process()
            .as_ref()
            .ok_or_else(|| ContainerError::Init("config.json: process: missing".into()))?,
    )?;
    let mount_sources = crate::mounts::MountSources::prepare(
        &bundle.spec,
        &bundle.dir,
        &crate::mounts::SourcePlan {
            userns: ns.in_userns,
            joins_mount_ns: ns
                .join
                .iter()
                .any(|j| j.typ == oci_spec::runtime::LinuxNamespaceType::Mount),
            proc: &proc,
        },
    )?;
    let mut ctx = InitContext {
        id: &opts.id,
        bundle,
        ns,
        chan: child_chan,
        fifo,
        proc: Some(proc),
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds,
        extra_env,
        hooks_sync: hooks::any(
            bundle.spec.hooks().as_ref(),
            &[
                hooks::Kind::Prestart,
                hooks::Kind::CreateRuntime,
                hooks::Kind::CreateContainer,
                hooks::Kind::StartContainer,
            ],
        ),
        console,
        seccomp,
        mount_sources,
        parent_death_signal: opts.parent_death_signal,
    };
    // Without a mount namespace the init mounts in ours: record what to undo.
    if !ns.mountns() {
        crate::mounts::shared_ns::record(&root.dir(&opts.id), &bundle.rootfs)
            .map_err(|e| ContainerError::Init(e.to_string()))?;
    }
    namespaces::join_pid_for_children(ns)?;
    let (flags, into) = if ns.two_stage {
        (nix::sched::CloneFlags::empty(), None)
    } else {
        (ns.clone_flags, cg_fd.as_ref().map(|f| f.as_raw_fd()))
    };
    let keep = ctx.keep();
    let (forked, into_cgroup) = clone_init(flags, into, &keep)?;
    let (mut pid, mut pidfd) = match forked {
        Forked::Child => {
            // Already closed by clone (not in `keep`): never drop it here.
            std::mem::forget(parent_chan);
            if ns.two_stage {
                init::run_middle(ctx)
            }
            init::run(ctx)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let seccomp = ctx.seccomp.take();
    // The parent keeps its copy of the verified /proc handle for the id maps
    // and oom_score_adj below (the child closes its own before pivot_root).
    let proc = ctx.proc.take();
    drop(ctx);
    undo.child = Some(pid);
    let spec_hooks = bundle.spec.hooks().as_ref();
    let annotations: std::collections::HashMap<String, String> = bundle
        .spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(h) = spec_hooks.filter(|h| hooks::any(Some(h), &[hooks::Kind::Poststop])) {
        let st = hooks::state(&opts.id, "stopped", 0, &bundle.dir, &annotations);
        undo.poststop = Some((h.clone(), st.to_string()));
    }

    if ns.two_stage {
        // The middle process: into the cgroup (the init inherits it), Go,
        // then it reports the init's pid and exits.
        if let Some(cg) = cgroup {
            enter_cgroup(cg, pid.as_raw(), &res)?;
        }
        parent_chan
            .send(&Msg::Go)
            .map_err(io_err("send", "sync channel"))?;
        let msg = parent_chan.recv();
        let _ = waitpid(pid, None);
        undo.child = None;
        match msg {
            Ok(Some(Msg::Pid(p))) => {
                pid = Pid::from_raw(p);
                undo.child = Some(pid);
                pidfd = crate::process::clone::pidfd_open(pid).ok();
            }
            Ok(Some(Msg::Error(e))) => return Err(ContainerError::Init(e)),
            Ok(other) => {
                return Err(ContainerError::Init(format!(
                    "unexpected message {other:?}"
                )));
            }
            Err(e) => return Err(io_err("receive", "sync channel")(e)),
        }
    }
    record_init(root, state, pid, creating)?;
    let oom = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.oom_score_adj());
    if let (true, Some(proc)) = (ns.new_user, &proc) {
        namespaces::write_id_maps(proc, pid.as_raw(), &bundle.spec)?;
    }
    if !into_cgroup && !ns.two_stage {
        if let Some(cg) = cgroup {
            enter_cgroup(cg, pid.as_raw(), &res)?;
        }
    }
    if let (Some(adj), Some(proc)) = (oom, &proc) {
        proc.write(
            &format!("{}/oom_score_adj", pid.as_raw()),
            adj.to_string().as_bytes(),
        )
        .map_err(|e| ContainerError::Unsupported(format!("process.oomScoreAdj {adj}: {e}")))?;
    }
    drop(proc);
    // The init exists with its network namespace and waits: cuddy wires it
    // before releasing it (so prestart hooks see the network too).
    let dir = root.dir(&opts.id);
    if net.is_some() || netdevs.is_some() {
        crate::network::held::record_init(&dir, &root.proc, pid.as_raw())
            .map_err(io_err("write", dir.join(crate::network::held::INIT_FILE)))?;
    }
    // CNI's DEL and moved devices need the namespace after the container's
    // processes are gone: pinned (network::held).
    let cni = net
        .as_ref()
        .is_some_and(|n| matches!(n.request.mode, crate::network::Mode::Cni(_)));
    if cni || netdevs.as_ref().is_some_and(|d| d.record.own_netns) {
        crate::network::held::pin_init(&dir, pid.as_raw())
            .map_err(io_err("pin the network namespace on", dir.join("netns")))?;
    }
    if let Some(n) = net {
        n.attach(
            &root.path,
            &root.dir(&opts.id),
            &opts.id,
            pid.as_raw(),
            &bundle.spec,
        )?;
    }
    if let Some(d) = netdevs {
        d.attach(&dir, pid.as_raw())
            .map_err(crate::network::NetworkError::from)?;
    }
    if let Err(e) = parent_chan.send(&Msg::Go) {
        return Err(cgroup
            .and_then(oom_in_setup)
            .unwrap_or_else(|| io_err("send", "sync channel")(e)));
    }
    let creating = hooks::state(
        &opts.id,
        "creating",
        pid.as_raw(),
        &bundle.dir,
        &annotations,
    );
    let handoff = seccomp
        .as_ref()
        .and_then(|s| s.handoff(pid.as_raw(), creating));
    let mut msg = crate::seccomp::recv(&parent_chan, handoff.as_ref());
    if let Ok(Some(Msg::RunHooks)) = msg {
        // The init has made its namespaces and mounts and waits before
        // pivot_root: prestart and createRuntime run here, in the runtime
        // namespace (config.md "POSIX-platform Hooks").
        let state = hooks::state(
            &opts.id,
            "creating",
            pid.as_raw(),
            &bundle.dir,
            &annotations,
        )
        .to_string();
        hooks::run(hooks::Kind::Prestart, spec_hooks, state.as_bytes())?;
        hooks::run(hooks::Kind::CreateRuntime, spec_hooks, state.as_bytes())?;
        parent_chan
            .send(&Msg::HooksDone(state))
            .map_err(io_err("send", "sync channel"))?;
        msg = crate::seccomp::recv(&parent_chan, handoff.as_ref());
    }
    // The init died before reporting: name the OOM killer when it was that.
    if matches!(msg, Ok(None) | Err(_)) {
        if let Some(e) = cgroup.and_then(oom_in_setup) {
            return Err(e);
        }
    }
    match msg {
        Ok(Some(Msg::Ready)) => {
            if let Some(cg) = cgroup {
                cg.apply_after_init(&res)?;
            }
        }
        Ok(Some(Msg::Error(e))) => return Err(ContainerError::Init(e)),
        Ok(other) => {
            return Err(ContainerError::Init(format!(
                "unexpected message {other:?}"
            )));
        }
        Err(e) => return Err(io_err("receive", "sync channel")(e)),
    }

    let (pid_start, _) = proc_start_time(&root.proc, pid.as_raw())
        .ok_or_else(|| ContainerError::Init("init exited right after set-up".into()))?;
    state.pid = pid.as_raw();
    state.pid_start = pid_start;
    state.status = Status::Created;
    root.save(state)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid.as_raw())?;
    }
    commit(&parent_chan)?;
    undo.child = None;
    undo.cgroup = None;
    undo.network = None;
    undo.dir = None;
    Ok(Created {
        state: state.clone(),
        pid,
        pidfd,
    })
}
