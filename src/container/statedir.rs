//! The state directory of a container being created: made and locked
//! before it gets its name ([`make_locked_dir`]), and what a failed create
//! undoes ([`Undo`]). Moved out of create.rs unchanged.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, RenameFlags, open, renameat2};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::{ContainerError, Result, Root, io_err, sys_err};
use crate::cgroups::Cgroup;
use crate::hooks;

/// What to undo when create fails half-way.
pub(super) struct Undo<'a> {
    pub(super) dir: Option<PathBuf>,
    pub(super) cgroup: Option<&'a Cgroup>,
    pub(super) child: Option<Pid>,
    /// The container id once its network record may exist.
    pub(super) network: Option<String>,
    /// Once the init exists, a failed create still ends with the poststop
    /// hooks (runtime.md "Lifecycle": a failing hook continues at step 12).
    pub(super) poststop: Option<(oci_spec::runtime::Hooks, String)>,
}

impl Undo<'_> {
    pub(super) fn run(self) {
        // The init's network namespace outlives it while held: moved
        // devices come back and CNI's DEL sees the interface.
        let held = match (&self.network, &self.dir) {
            (Some(_), Some(d)) => crate::network::held::hold(d, Path::new("/proc")),
            _ => None,
        };
        if let Some(pid) = self.child {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let (Some(id), Some(d)) = (&self.network, &self.dir) {
            if let Err(e) = crate::network::teardown(d, id, held.as_ref().map(|f| f.as_fd())) {
                tracing::warn!("cleanup after failed create: {e}");
            }
            crate::network::held::unpin(d);
        }
        if let Some(cg) = self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup after failed create: {e}");
            }
        }
        if let Some(d) = self.dir {
            // A container without a mount namespace mounted in ours.
            if let Err(e) = crate::mounts::shared_ns::release(&d) {
                tracing::warn!("cleanup after failed create: {e}");
            }
            let _ = fs::remove_dir_all(d);
        }
        if let Some((h, state)) = self.poststop {
            hooks::run_warn(hooks::Kind::Poststop, Some(&h), state.as_bytes());
        }
    }
}

/// The state directory, made and locked before it gets its name
/// (renameat2 RENAME_NOREPLACE of a private directory): no other verb ever
/// sees it unlocked. A `delete` that won the lock of a bare directory would
/// take it for the leftover of a dead create and remove it under this one
/// (found by the race tier).
pub(super) fn make_locked_dir(root: &Root, id: &str) -> Result<Flock<OwnedFd>> {
    let dir = root.dir(id);
    root.sweep_dead_creates();
    let tmp = root.path.join(format!(".creating-{}", std::process::id()));
    let _ = fs::remove_dir(&tmp);
    fs::DirBuilder::new()
        .mode(0o711)
        .create(&tmp)
        .map_err(io_err("create state directory", &tmp))?;
    let locked = open(
        &tmp,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_err(format!("open {}", tmp.display())))
    .and_then(|fd| {
        Flock::lock(fd, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| sys_err(format!("lock {}", tmp.display()))(e))
    });
    let renamed = locked.and_then(|l| {
        renameat2(
            nix::fcntl::AT_FDCWD,
            &tmp,
            nix::fcntl::AT_FDCWD,
            &dir,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map(|()| l)
        .map_err(|e| match e {
            Errno::EEXIST => ContainerError::Exists(id.to_string()),
            e => sys_err(format!("rename {} to {}", tmp.display(), dir.display()))(e),
        })
    });
    if renamed.is_err() {
        let _ = fs::remove_dir(&tmp);
    }
    renamed
}
