//! The parent/child channel: a SOCK_SEQPACKET socketpair (message
//! boundaries kept, CLOEXEC so the user process never inherits it). The child
//! reports readiness or its error here; the parent prints the error once.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, send, socketpair};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Parent -> child: id maps written, cgroup joined: go on.
    Go,
    /// Child -> parent: set-up done, waiting for `start`.
    Ready,
    /// Parent -> init: the container is recorded as created; the init stops
    /// dying with its creator and closes the channel (the parent's cue).
    Committed,
    /// Middle process -> parent: the pid (in the parent's PID namespace) of
    /// the container's init, or of the process that `exec` runs.
    Pid(i32),
    /// Child -> parent: set-up failed.
    Error(String),
    /// Child -> parent: namespaces and mounts are ready, run the
    /// prestart/createRuntime hooks (the child waits before pivot_root).
    RunHooks,
    /// Parent -> child: hooks done; the state JSON (with the host pid) for
    /// the createContainer and startContainer hooks.
    HooksDone(String),
    /// Child -> parent: the seccomp filter is about to be loaded; its
    /// listener will be this fd number (the parent takes it with pidfd_getfd).
    SeccompListener(i32),
}

#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn send(&self, m: &Msg) -> io::Result<()> {
        let buf = serde_json::to_vec(m).map_err(io::Error::other)?;
        loop {
            match send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map(|_| ()).map_err(io::Error::from),
            }
        }
    }

    /// Receives one message; `None` when the other side closed without one.
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(io::Error::other)
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Msg::Error("mount /proc: EPERM".into())).unwrap();
        a.send(&Msg::Ready).unwrap();
        assert_eq!(
            b.recv().unwrap(),
            Some(Msg::Error("mount /proc: EPERM".into()))
        );
        assert_eq!(b.recv().unwrap(), Some(Msg::Ready));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
