//! `start`: release the waiting init into execve of the user process.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;

use crate::hooks;

use super::{ContainerError, EXEC_FIFO, Result, Root, Status, init_pidfd, io_err};

pub fn start(root: &Root, id: &str) -> Result<()> {
    start_notify(root, id, None)
}

/// `start`; with `NOTIFY_SOCKET` it then relays the container's READY with
/// `MAINPID=mainpid` (default: the init's pid), see `super::notify`. The
/// wait happens after the container lock is released.
pub(crate) fn start_notify(root: &Root, id: &str, mainpid: Option<i32>) -> Result<()> {
    let (relay, pidfd, pid) = {
        let _lock = root.lock(id)?;
        start_locked(root, id)?
    };
    // The container runs by now: a caller's socket that fails is reported,
    // not turned into a failed start.
    if let Some(Err(e)) = relay.map(|r| r.wait_ready(&pidfd, mainpid.unwrap_or(pid))) {
        tracing::warn!("{e}");
    }
    Ok(())
}

type Started = (Option<super::notify::Relay>, OwnedFd, i32);

fn start_locked(root: &Root, id: &str) -> Result<Started> {
    let st = root.load(id)?;
    match root.status(&st) {
        Status::Created => {}
        s @ Status::Stopped => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status: s,
                hint: "cannot start a container that has stopped: delete it and create it again",
            });
        }
        s => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status: s,
                hint: "cannot start a container that is not in the created state",
            });
        }
    }
    let pidfd = init_pidfd(root, &st)
        .ok_or_else(|| ContainerError::Init("container init is gone".into()))?;
    // Bound before the init is released, so it may notify at once.
    let relay = super::notify::bind(&root.dir(id))?;
    let path = root.dir(id).join(EXEC_FIFO);
    // Non-blocking open never waits for a writer; init is already blocked in
    // its open for writing and is released by this open.
    let mut fifo = fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&path)
        .map_err(io_err("open", &path))?;
    let mut got = false;
    let mut init_gone = false;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match fifo.read(&mut buf) {
            Ok(0) if got => break,
            Ok(0) => {}
            Ok(n) => {
                got = true;
                data.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read", &path)(e)),
        }
        // The init is gone and what it wrote is read: a writer that closed
        // the fifo keeps it readable (POLLHUP) for ever, so this is decided
        // here, not by waiting on the fifo again (a kill racing the start
        // made this loop spin forever).
        if init_gone {
            if got {
                // Exec'd and already exited: started all the same.
                break;
            }
            return Err(ContainerError::Init(
                "container init exited before it could start the process".into(),
            ));
        }
        // Wait for data/EOF on the fifo, or for init to die.
        let (_, gone) = crate::utils::poll_two(&fifo, &pidfd)
            .map_err(|e| io_err("poll", &path)(std::io::Error::from(e)))?;
        init_gone = gone;
    }
    fs::remove_file(&path).map_err(io_err("remove", &path))?;
    // Init writes "0" before execve, or a startContainer hook's error (and
    // exits: the derived status is then "stopped").
    if let Some(msg) = data.strip_prefix(b"E") {
        return Err(ContainerError::Init(
            String::from_utf8_lossy(msg).into_owned(),
        ));
    }
    // The status is derived from the init and the fifo: removing the fifo
    // is what made the container "running".
    // poststart: after the user process runs; failures are warnings only.
    if hooks::any(st.hooks.as_ref(), &[hooks::Kind::Poststart]) {
        let state = hooks::state(&st.id, "running", st.pid, &st.bundle, &st.annotations);
        hooks::run_warn(
            hooks::Kind::Poststart,
            st.hooks.as_ref(),
            state.to_string().as_bytes(),
        );
    }
    Ok((relay, pidfd, st.pid))
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW: the fifo is cuddy's own, never a link planted there.
        self.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
    }
}
