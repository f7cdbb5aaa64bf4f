//! The seccomp agent of the notify tests (config-linux.md "Seccomp",
//! `listenerPath`): it takes the container process state and the listener
//! from cuddy and answers notified syscalls. Every wait is bounded, so a
//! cuddy (or kernel) that never gets there fails the test with a message
//! instead of hanging the suite.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde_json::Value;

/// How long the test agent waits for cuddy (a connection, the state, the
/// end of the filtered processes): far above a run under TCG, so reaching
/// it means cuddy (or the kernel) never got there, and the test fails.
const AGENT_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

/// poll(2) on `fd` for `events` until `deadline`; the revents, or Err on
/// timeout or a poll error.
fn poll_until(
    fd: std::os::fd::BorrowedFd,
    events: nix::poll::PollFlags,
    deadline: std::time::Instant,
    what: &str,
) -> Result<nix::poll::PollFlags, String> {
    use nix::poll::{PollFd, PollTimeout, poll};
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "agent: timed out after {AGENT_WAIT:?} waiting for {what}"
            ));
        }
        let ms = PollTimeout::from(left.as_millis().min(1000) as u16);
        let mut fds = [PollFd::new(fd, events)];
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return Ok(fds[0].revents().unwrap_or(nix::poll::PollFlags::empty())),
            Err(e) => return Err(format!("agent: poll for {what}: {e}")),
        }
    }
}

/// Reads the container process state and the listener from `conn` (the
/// runtime closes the connection after one state).
fn read_state(conn: &std::os::unix::net::UnixStream) -> Result<(Value, OwnedFd), String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let deadline = std::time::Instant::now() + AGENT_WAIT;
    conn.set_read_timeout(Some(AGENT_WAIT)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("agent: recvmsg of the state: {e}"))?;
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(f) = c {
            // SAFETY: fds received with SCM_RIGHTS are ours.
            fd = Some(unsafe { OwnedFd::from_raw_fd(f[0]) });
        }
    }
    let n = msg.bytes;
    let mut body = buf[..n].to_vec();
    std::io::Read::read_to_end(&mut &*conn, &mut body)
        .map_err(|e| format!("agent: read the state to EOF: {e}"))?;
    if std::time::Instant::now() > deadline {
        return Err("agent: the state took too long".into());
    }
    let state: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("agent: state is not JSON ({e}): {body:?}"))?;
    Ok((state, fd.ok_or("agent: no seccompFd in SCM_RIGHTS")?))
}

/// One agent connection: reads the container process state and the
/// listener, answers getppid with 4242 and lets every other notified syscall
/// continue until the filtered processes are gone. Returns the state.
///
/// The end is seen with poll(2): POLLHUP once no task uses the filter
/// (kernel >= 5.8). SECCOMP_IOCTL_NOTIF_RECV itself returns ENOENT then only
/// since 6.6 ("seccomp: don't use semaphore and wait_queue together"); on
/// older kernels (the v2 tier's 6.1) it blocks for ever, so it is called
/// only when poll reports a notification.
fn serve(conn: std::os::unix::net::UnixStream) -> Result<Value, String> {
    use nix::poll::PollFlags;
    use std::os::fd::AsFd;
    let (state, fd) = read_state(&conn)?;
    drop(conn);
    let deadline = std::time::Instant::now() + AGENT_WAIT;
    loop {
        let ev = poll_until(
            fd.as_fd(),
            PollFlags::POLLIN,
            deadline,
            "the filtered processes to end (no POLLHUP on the listener)",
        )?;
        if !ev.contains(PollFlags::POLLIN) {
            // POLLHUP: the filtered processes are gone.
            return Ok(state);
        }
        // SAFETY: plain C struct of integers; all-zero is valid.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: ioctl on the listener with a zeroed seccomp_notif.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } < 0 {
            // ENOENT: the notifying task was killed after poll; go on.
            continue;
        }
        // SAFETY: plain C struct of integers; all-zero is valid.
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = req.id;
        if req.data.nr == libc::SYS_getppid as i32 {
            resp.val = 4242;
        } else {
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
        }
        // SAFETY: ioctl with a filled seccomp_notif_resp. ENOENT (the task
        // is gone) is fine.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}

pub type Agent = std::thread::JoinHandle<Result<Vec<Value>, String>>;

/// The seccomp agent at `sock`: serves `conns` connections, each in its
/// own thread; returns their states in order of connection, or why not.
/// Every wait is bounded (AGENT_WAIT), so a cuddy that never connects or
/// never lets its processes end fails the test instead of hanging it.
pub fn agent(sock: &Path, conns: usize) -> Agent {
    use std::os::fd::AsFd;
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + AGENT_WAIT;
        let mut served = Vec::new();
        for i in 0..conns {
            let conn = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        poll_until(
                            listener.as_fd(),
                            nix::poll::PollFlags::POLLIN,
                            deadline,
                            &format!("connection {} of {conns} from cuddy", i + 1),
                        )?;
                    }
                    Err(e) => return Err(format!("agent: accept: {e}")),
                }
            };
            conn.set_nonblocking(false).unwrap();
            served.push(std::thread::spawn(move || serve(conn)));
        }
        served
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| "agent: a connection thread panicked".to_string())?
            })
            .collect()
    })
}

/// The agent's states; panics with the agent's reason when it failed.
pub fn agent_states(th: Agent) -> Vec<Value> {
    th.join()
        .expect("agent thread panicked")
        .unwrap_or_else(|e| panic!("{e}"))
}
