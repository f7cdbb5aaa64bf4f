//! `create`'s write-intent records (issue 11): what create is about to
//! make is in the state directory before it is made, and the init waits for
//! create's `Committed` before it outlives it, so a create killed at any
//! instant leaves nothing `delete` cannot find.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::unistd::Pid;

use super::create::CreateOptions;
use super::{ContainerError, Result, Root, State, Status, io_err, owner_name, sys_err};
use crate::cgroups::Cgroup;
use crate::process::sync::{Channel, Msg};
use crate::spec;
use crate::utils::{proc_start_time, rfc3339_now};

/// How long `create` waits for the init to take `Committed` (it only
/// closes the channel).
const COMMIT_BOUND_MS: i32 = 10_000;

/// Tells the init that the container is recorded, and waits (bounded) until
/// it closed the channel: from then on it outlives us. Until then it dies
/// with this process (EOF on the channel, see `process::init`), so a create
/// killed at any instant leaves either a created container or a dead init.
pub(super) fn commit(chan: &Channel) -> Result<()> {
    chan.send(&Msg::Committed)
        .map_err(io_err("send", "sync channel"))?;
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsFd::as_fd(chan).as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, COMMIT_BOUND_MS) };
        if r < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        if r <= 0 {
            return Err(ContainerError::Init(format!(
                "the init did not acknowledge its creation within {} s",
                COMMIT_BOUND_MS / 1000
            )));
        }
        break;
    }
    match chan.recv() {
        Ok(None) => Ok(()),
        other => Err(ContainerError::Init(format!(
            "the init did not acknowledge its creation: {other:?}"
        ))),
    }
}

/// Write intent: the init exists, so a create killed from here on leaves
/// its pid (and start time) for `delete`, and the binary it runs until it
/// executes the user's program (the status derives "created" from it).
pub(super) fn record_init(
    root: &Root,
    state: &mut State,
    pid: Pid,
    creating: &mut nix::fcntl::Flock<OwnedFd>,
) -> Result<()> {
    let (start, _) = proc_start_time(&root.proc, pid.as_raw())
        .ok_or_else(|| ContainerError::Init("the init exited during set-up".into()))?;
    // The init was forked from this very process: same binary until execve.
    let exe = nix::sys::stat::stat("/proc/self/exe").map_err(sys_err("stat /proc/self/exe"))?;
    state.pid = pid.as_raw();
    state.pid_start = start;
    state.init_exe = Some((exe.st_dev, exe.st_ino));
    *creating = root.save_creating(state)?;
    Ok(())
}

/// The first state.json: "creating", no init yet.
pub(super) fn creating_state(
    opts: &CreateOptions,
    bundle: &spec::Bundle,
    cgroup: Option<Cgroup>,
) -> State {
    State {
        id: opts.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: rfc3339_now(),
        owner: owner_name(nix::unistd::geteuid().as_raw()),
        annotations: bundle
            .spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cgroup,
        status: Status::Creating,
        hooks: bundle.spec.hooks().clone(),
        init_exe: None,
    }
}
