//! SCMP_ACT_NOTIFY, the runtime's side (config-linux.md "Seccomp",
//! `listenerPath`; "The Container Process State"): the parent takes the
//! child's listener fd with pidfd_getfd(2), connects to the agent's
//! AF_UNIX/SOCK_STREAM socket, sends the container process state JSON with
//! the fd in SCM_RIGHTS (named "seccompFd" in `fds`), and closes the
//! connection. The child never passes the fd itself, so a profile may
//! notify any syscall the child makes after the load without a deadlock.

use std::io::{IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use serde_json::{Value, json};

use super::{Program, SeccompError};
use crate::process::sync::{Channel, Msg};

/// How long the runtime waits for the agent (connect, send): an agent
/// that does not take its connection fails the create instead of hanging it.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the parent needs to hand a listener to the agent.
pub struct Handoff<'a> {
    prog: &'a Program,
    pid: i32,
    state: Value,
}

impl Program {
    /// The hand-off for the process `pid` (as the runtime sees it), with the
    /// container `state` (runtime.md "State"); None without a listener.
    pub fn handoff(&self, pid: i32, state: Value) -> Option<Handoff<'_>> {
        self.listener.as_ref().map(|_| Handoff {
            prog: self,
            pid,
            state,
        })
    }
}

fn sys(op: impl Into<String>) -> impl FnOnce(Errno) -> SeccompError {
    let op = op.into();
    move |source| SeccompError::Sys { op, source }
}

/// Receives the next message from the child, handing the seccomp listener
/// to the agent on the way when the child announces it. A failed hand-off
/// is returned as the child's error (the caller kills the child).
pub fn recv(chan: &Channel, h: Option<&Handoff>) -> std::io::Result<Option<Msg>> {
    loop {
        match chan.recv()? {
            Some(Msg::SeccompListener(n)) => match h {
                Some(h) => match take_listener(chan, h.pid, n) {
                    Ok(Taken::Fd(fd)) => {
                        if let Err(e) = h.send(fd) {
                            return Ok(Some(Msg::Error(e.to_string())));
                        }
                        // Release the child's barrier (see program::load).
                        chan.send(&Msg::Go)?;
                    }
                    Ok(Taken::Message(m)) => return Ok(m),
                    Err(e) => return Ok(Some(Msg::Error(e.to_string()))),
                },
                None => {
                    return Ok(Some(Msg::Error(
                        "seccomp: unexpected listener from the child".into(),
                    )));
                }
            },
            other => return Ok(other),
        }
    }
}

enum Taken {
    Fd(OwnedFd),
    /// The child sent something (an error) instead of loading the filter.
    Message(Option<Msg>),
}

/// Waits until fd `n` of `pid` is its seccomp listener and duplicates it.
fn take_listener(chan: &Channel, pid: i32, n: i32) -> Result<Taken, SeccompError> {
    let pidfd = crate::process::clone::pidfd_open(nix::unistd::Pid::from_raw(pid))
        .map_err(sys(format!("pidfd_open {pid}")))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut readable = false;
    loop {
        // SAFETY: pidfd_getfd with a valid pidfd; the result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0) };
        if fd >= 0 {
            // SAFETY: pidfd_getfd returned a new fd (O_CLOEXEC) owned by us.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            if link == "anon_inode:seccomp notify" {
                return Ok(Taken::Fd(fd));
            }
            return Err(SeccompError::Listener(format!(
                "fd {n} of process {pid} is {link:?}, not its seccomp listener"
            )));
        }
        let e = Errno::last();
        if e != Errno::EBADF {
            return Err(sys(format!("pidfd_getfd fd {n} of process {pid}"))(e));
        }
        if readable {
            // The child wrote and still has no listener: it failed (its
            // error or EOF); after a load it waits at its barrier instead.
            let m = chan
                .recv()
                .map_err(|e| SeccompError::Listener(format!("sync channel: {e}")))?;
            return Ok(Taken::Message(m));
        }
        // Not loaded yet: wait a little for the child (or its error), then
        // look for the listener once more before reading any message.
        let mut fds = [PollFd::new(chan.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(2u8)) {
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => readable = true,
            Err(e) => return Err(sys("poll sync channel")(e)),
        }
        if Instant::now() > deadline {
            return Err(SeccompError::Listener(format!(
                "process {pid} did not load its seccomp filter within 30 s"
            )));
        }
    }
}

impl Handoff<'_> {
    /// The container process state (config-linux.md "The Container Process State").
    fn message(&self) -> Value {
        let mut m = json!({
            "ociVersion": crate::spec::OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": self.pid,
            "state": self.state,
        });
        if let Some(meta) = self.prog.listener.as_ref().and_then(|l| l.1.as_ref()) {
            m["metadata"] = meta.clone().into();
        }
        m
    }

    fn send(&self, fd: OwnedFd) -> Result<(), SeccompError> {
        let Some((path, _)) = &self.prog.listener else {
            return Ok(());
        };
        let err = |e: std::io::Error| SeccompError::Agent {
            path: path.clone(),
            source: e,
        };
        let mut sock = connect(path, AGENT_TIMEOUT).map_err(err)?;
        let body = self.message().to_string().into_bytes();
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        // The fds go with the first sendmsg only; the rest is plain payload.
        let n = loop {
            match sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(&body)],
                &cmsg,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                r => break r.map_err(|e| err(e.into()))?,
            }
        };
        sock.write_all(&body[n..]).map_err(err)?;
        // One state per connection, then closed (the spec's rule).
        Ok(())
    }
}

/// Connects to the agent's socket within `timeout`. A blocking
/// connect(2) on AF_UNIX/SOCK_STREAM waits for as long as the listener's
/// backlog is full (an agent that does not accept); a non-blocking one
/// fails with EAGAIN instead, so it is retried until the deadline.
pub(super) fn connect(path: &std::path::Path, timeout: Duration) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, socket};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    let deadline = Instant::now() + timeout;
    loop {
        match nix::sys::socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(Errno::EAGAIN) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect: the agent did not accept within {timeout:?} (backlog full)"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let sock = UnixStream::from(fd);
    sock.set_nonblocking(false)?;
    sock.set_write_timeout(Some(timeout))?;
    Ok(sock)
}
