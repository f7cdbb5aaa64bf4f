//! `start`: release the waiting init into execve of the user process.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

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
    let data = read_go_ahead(root, &st, &mut fifo, &pidfd)?;
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

/// How long `start` waits for the released init's byte on the fifo, beyond
/// the timeouts of the startContainer hooks it runs first.
const GO_AHEAD_BOUND: Duration = Duration::from_secs(30);

/// Reads the init's byte and the EOF that its execve makes (its write end is
/// close-on-exec). Ends when the init has exited, when it executed the
/// program without writing to us (another `start`, killed after it opened
/// the fifo, released it: the container runs), or after a bound.
fn read_go_ahead(
    root: &Root,
    st: &super::State,
    fifo: &mut fs::File,
    pidfd: &OwnedFd,
) -> Result<Vec<u8>> {
    let path = root.dir(&st.id).join(EXEC_FIFO);
    let deadline = Instant::now() + GO_AHEAD_BOUND + hooks_bound(st);
    let mut got = false;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match fifo.read(&mut buf) {
            Ok(0) if got => return Ok(data),
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
        // Data/EOF on the fifo, or the init's death; re-checked every tick.
        let (fifo_ready, init_gone) = poll_two_ms(fifo, pidfd, 100)
            .map_err(|e| io_err("poll", &path)(std::io::Error::from(e)))?;
        if init_gone {
            // What the init wrote before it died is still in the fifo; after
            // that a closed writer keeps the fifo readable (POLLHUP) for
            // ever, so this is decided here, not by polling again (a kill
            // racing the start made the loop spin).
            drain(fifo, &mut data, &mut got).map_err(io_err("read", &path))?;
            if got {
                // Exec'd and already exited: started all the same.
                return Ok(data);
            }
            return Err(ContainerError::Init(
                "container init exited before it could start the process".into(),
            ));
        }
        if fifo_ready {
            continue;
        }
        if !got && root.status(st) != Status::Created {
            return Err(ContainerError::BadStatus {
                id: st.id.clone(),
                status: root.status(st),
                hint: "another start released it meanwhile",
            });
        }
        if Instant::now() > deadline {
            return Err(ContainerError::Init(format!(
                "container init (pid {}) did not execute the process within {}s of start",
                st.pid,
                (GO_AHEAD_BOUND + hooks_bound(st)).as_secs()
            )));
        }
    }
}

/// Reads what is left in the fifo without blocking.
fn drain(fifo: &mut fs::File, data: &mut Vec<u8>, got: &mut bool) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        match fifo.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                *got = true;
                data.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The startContainer hooks run in the init between its release and its
/// byte: their timeouts extend the bound.
fn hooks_bound(st: &super::State) -> Duration {
    let secs: i64 = st
        .hooks
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .map(|hs| hs.iter().map(|h| h.timeout().unwrap_or(0).max(0)).sum())
        .unwrap_or(0);
    Duration::from_secs(secs as u64)
}

/// poll(2) on two fds for up to `ms` milliseconds (EINTR retried); which
/// of the two have events.
fn poll_two_ms(a: &impl AsRawFd, b: &impl AsRawFd, ms: i32) -> nix::Result<(bool, bool)> {
    let pfd = |fd: i32| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pfd(a.as_raw_fd()), pfd(b.as_raw_fd())];
    loop {
        // SAFETY: two valid pollfds, their length passed.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if r >= 0 {
            return Ok((fds[0].revents != 0, fds[1].revents != 0));
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return Err(nix::errno::Errno::last());
        }
    }
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
