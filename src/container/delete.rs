//! `delete`: remove everything the container created.

use std::fs;

use nix::sys::signal::Signal;

use super::{ContainerError, Result, Root, STATE_FILE, Status, init_pidfd, io_err, wait_pidfd};
use crate::hooks;
use crate::process::clone::pidfd_signal;

pub fn delete(root: &Root, id: &str, force: bool) -> Result<()> {
    let _lock = match root.lock(id) {
        // As runc: `delete --force` of a container that is already gone
        // succeeds (shims clean up after a container that deleted itself).
        Err(ContainerError::NotFound(_)) if force => return Ok(()),
        r => r?,
    };
    let dir = root.dir(id);
    if !dir.join(STATE_FILE).exists() {
        // A create that was killed before it wrote its state: nothing runs,
        // only the directory is left.
        return fs::remove_dir_all(&dir).map_err(io_err("remove", &dir));
    }
    let st = root.load(id)?;
    let status = root.status(&st);
    match status {
        Status::Stopped | Status::Created | Status::Creating => {}
        Status::Running | Status::Paused if force => {}
        s => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status: s,
                hint: "stop it first or use delete --force",
            });
        }
    }
    if let Some(cg) = &st.cgroup {
        // An abandoned create ("creating" on disk, derived stopped) may have
        // left an init behind whose pid was never saved.
        if status != Status::Stopped || st.status == Status::Creating {
            // Every process, not only init (a container without its own PID
            // namespace does not die with its init).
            cg.kill_all(Signal::SIGKILL as i32)?;
        }
    }
    if let Some(pidfd) = init_pidfd(root, &st) {
        let _ = pidfd_signal(&pidfd, Signal::SIGKILL as i32);
        if !wait_pidfd(&pidfd, 10_000) {
            return Err(ContainerError::Init(format!(
                "container {id:?} init (pid {}) did not die after SIGKILL",
                st.pid
            )));
        }
    }
    if let Some(cg) = &st.cgroup {
        cg.destroy()?;
    }
    fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
    // poststop: after the container is gone; failures are warnings only.
    if hooks::any(st.hooks.as_ref(), &[hooks::Kind::Poststop]) {
        let state = hooks::state(&st.id, "stopped", 0, &st.bundle, &st.annotations);
        hooks::run_warn(
            hooks::Kind::Poststop,
            st.hooks.as_ref(),
            state.to_string().as_bytes(),
        );
    }
    Ok(())
}
