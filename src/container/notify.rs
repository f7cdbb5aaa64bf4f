//! `NOTIFY_SOCKET` (sd_notify) as runc does it (its notify_socket.go):
//!
//! - `create`/`run` called with `NOTIFY_SOCKET` in their environment make
//!   `<state dir>/notify/` and bind-mount it read-only (nosuid, noexec,
//!   nodev) at `/run/notify` in the container, whose process gets
//!   `NOTIFY_SOCKET=/run/notify/notify.sock` appended to its env;
//! - `start` (also the start half of `run`) binds `notify.sock` there
//!   (SOCK_DGRAM, mode 0777 so any container user may send), releases the
//!   container, then waits for a datagram with a `READY=` line or for the
//!   init to exit, and relays to the caller's socket: the READY line,
//!   `MAINPID=<pid>` (the init's host pid; cuddy's own pid for `run` in the
//!   foreground, which systemd must then watch) and `BARRIER=1` with a pipe
//!   whose closing acknowledges it (30 s at most, as runc);
//! - the socket lives in the state dir and goes with it on `delete`.

use std::ffi::OsString;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use oci_spec::runtime::{MountBuilder, Spec};

/// The directory in the state dir, and where the container sees it.
const DIR: &str = "notify";
const SOCK: &str = "notify.sock";
const IN_CONTAINER: &str = "/run/notify";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("NOTIFY_SOCKET: {op}: {source}")]
    Sys {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("NOTIFY_SOCKET: config.json mounts: {0}")]
    Spec(String),
}

type Result<T> = std::result::Result<T, NotifyError>;

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NotifyError {
    let path = path.to_path_buf();
    move |source| NotifyError::Io { op, path, source }
}

/// The caller's socket (`NOTIFY_SOCKET`, unset or empty: none).
pub(crate) fn host_socket() -> Option<OsString> {
    std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())
}

/// `create`: the notify directory in the container's state dir, and in the
/// in-memory spec its bind mount and the container's `NOTIFY_SOCKET`.
pub(crate) fn prepare(spec: &mut Spec, state_dir: &Path) -> Result<()> {
    if host_socket().is_none() {
        return Ok(());
    }
    let dir = state_dir.join(DIR);
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .map_err(io("create", &dir))?;
    let mount = MountBuilder::default()
        .destination(IN_CONTAINER)
        .typ("bind")
        .source(&dir)
        .options(["bind", "nosuid", "noexec", "nodev", "ro"].map(String::from))
        .build()
        .map_err(|e| NotifyError::Spec(e.to_string()))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.push(format!("NOTIFY_SOCKET={IN_CONTAINER}/{SOCK}"));
        p.set_env(Some(env));
    }
    Ok(())
}

/// The container's socket, bound by `start` before it releases the init,
/// and the caller's, connected.
pub(crate) struct Relay {
    listener: UnixDatagram,
    host: UnixDatagram,
}

/// `start`: binds `<state dir>/notify/notify.sock` when the caller gave a
/// `NOTIFY_SOCKET` and the container was created with one.
pub(crate) fn bind(state_dir: &Path) -> Result<Option<Relay>> {
    let (Some(host_path), dir) = (host_socket(), state_dir.join(DIR)) else {
        return Ok(None);
    };
    if !dir.is_dir() {
        // Created without NOTIFY_SOCKET: the container has no socket (runc).
        return Ok(None);
    }
    let host_path = PathBuf::from(host_path);
    let host = UnixDatagram::unbound().map_err(io("socket", &host_path))?;
    connect_host(&host, &host_path).map_err(io("connect", &host_path))?;
    let path = dir.join(SOCK);
    // std's sockets are SOCK_CLOEXEC.
    let listener = UnixDatagram::bind(&path).map_err(io("bind", &path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
        .map_err(io("chmod", &path))?;
    Ok(Some(Relay { listener, host }))
}

/// `@name` is an abstract socket (as sd_notify reads NOTIFY_SOCKET).
fn connect_host(sock: &UnixDatagram, path: &Path) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    match path.as_os_str().as_bytes().strip_prefix(b"@") {
        Some(name) => sock.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?),
        None => sock.connect(path),
    }
}

impl Relay {
    /// Waits for `READY=` from the container or for the init (`pidfd`) to
    /// exit; on READY tells the caller, with `MAINPID=mainpid` and a barrier.
    pub(crate) fn wait_ready(self, pidfd: &OwnedFd, mainpid: i32) -> Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            if !self.readable_before_exit(pidfd)? {
                return Ok(());
            }
            let n = match self.listener.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io("receive", Path::new(SOCK))(e)),
            };
            if let Some(line) = ready_line(&buf[..n]) {
                return self.notify_host(line, mainpid);
            }
        }
    }

    /// Polls the socket and the pidfd: true when a datagram is waiting.
    fn readable_before_exit(&self, pidfd: &OwnedFd) -> Result<bool> {
        crate::utils::poll_two(&self.listener, pidfd)
            .map(|(datagram, _)| datagram)
            .map_err(|source| NotifyError::Sys { op: "poll", source })
    }

    fn notify_host(&self, ready: &[u8], mainpid: i32) -> Result<()> {
        let host = Path::new("NOTIFY_SOCKET");
        let mut msg = ready.to_vec();
        msg.push(b'\n');
        self.host.send(&msg).map_err(io("send READY to", host))?;
        self.host
            .send(format!("MAINPID={mainpid}\n").as_bytes())
            .map_err(io("send MAINPID to", host))?;
        self.barrier()
    }

    /// sd_notify_barrier: `BARRIER=1` carrying a pipe's write end; the
    /// receiver closing it (EOF on the read end) acknowledges everything
    /// sent before. No acknowledgement within 30 s is only a warning.
    fn barrier(&self) -> Result<()> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|source| NotifyError::Sys { op: "pipe", source })?;
        let fds = [w.as_fd().as_raw_fd()];
        sendmsg::<()>(
            self.host.as_raw_fd(),
            &[IoSlice::new(b"BARRIER=1")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|source| NotifyError::Sys {
            op: "send BARRIER",
            source,
        })?;
        drop(w);
        let mut pfd = libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; an EINTR is treated as no answer.
        if unsafe { libc::poll(&mut pfd, 1, 30_000) } <= 0 {
            tracing::warn!("NOTIFY_SOCKET: no answer to BARRIER=1 within 30s: ignored");
        }
        Ok(())
    }
}

/// The `READY=` line of a datagram (sd_notify sends one datagram of
/// newline-separated assignments).
fn ready_line(msg: &[u8]) -> Option<&[u8]> {
    msg.split(|b| *b == b'\n')
        .find(|l| l.starts_with(b"READY="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines() {
        assert_eq!(ready_line(b"READY=1"), Some(&b"READY=1"[..]));
        assert_eq!(ready_line(b"STATUS=up\nREADY=1\n"), Some(&b"READY=1"[..]));
        assert_eq!(ready_line(b"STATUS=starting"), None);
        assert_eq!(ready_line(b"XREADY=1"), None);
    }
}
