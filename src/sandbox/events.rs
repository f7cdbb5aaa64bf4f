//! The owner's single-threaded event loop: one poll(2) over the caller's
//! socket (EOF: the caller let go or died), the init's pidfd, the captured
//! stdout/stderr pipes and a signalfd; plus the timeout.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitStatus, waitpid};

use super::helper::{Owned, chain, merged_fd, rel_path};
use super::proto::{self, Reply, Request};
use super::{Result, SandboxError, TIMEOUT_STATUS};
use crate::container;

/// Captured output beyond this (per stream) is dropped.
const CAPTURE_MAX: usize = 64 << 20;

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> SandboxError {
    move |source| SandboxError::Sys {
        op: op.into(),
        source,
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))
}

/// This process's fds 1 and 2, saved (close-on-exec copies).
pub struct SavedStdio(OwnedFd, OwnedFd);

fn dup_cloexec(fd: i32) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd that we then own.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if r < 0 {
        return Err(sys("dup stdio")(Errno::last()));
    }
    // SAFETY: `r` is a fresh fd owned by nobody else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(r) })
}

/// Points fds 1 and 2 at `out` and `err` (the init inherits them).
pub fn redirect_stdio(out: &OwnedFd, err: &OwnedFd) -> Result<SavedStdio> {
    let saved = SavedStdio(dup_cloexec(1)?, dup_cloexec(2)?);
    for (from, to) in [(out.as_raw_fd(), 1), (err.as_raw_fd(), 2)] {
        // SAFETY: dup2 onto a standard fd; both fds are open.
        if unsafe { libc::dup2(from, to) } < 0 {
            let e = Errno::last();
            restore_stdio(saved);
            return Err(sys("dup2 stdio")(e));
        }
    }
    Ok(saved)
}

pub fn restore_stdio(s: SavedStdio) {
    // SAFETY: dup2 of fds we own onto 1 and 2.
    unsafe {
        libc::dup2(s.0.as_raw_fd(), 1);
        libc::dup2(s.1.as_raw_fd(), 2);
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT, blocked and read from a signalfd
/// (the init's mask is reset before it executes its program).
pub struct Signals(SignalFd);

impl Signals {
    pub fn block() -> Result<Signals> {
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            set.add(s);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(sys("sigprocmask"))?;
        Ok(Signals(
            SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(sys("signalfd"))?,
        ))
    }
}

/// The loop's inputs; `sock` is `None` for `cuddy sandbox run`.
pub struct Loop<'a> {
    pub owned: &'a mut Owned,
    pub sock: Option<&'a mut UnixStream>,
    /// Read ends of the container's stdout and stderr (library only).
    pub capture: Option<(OwnedFd, OwnedFd)>,
    pub signals: Signals,
    pub timeout_ms: Option<u64>,
}

fn reap(pid: nix::unistd::Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(_) => return 255,
        }
    }
}

fn pfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn ready(p: &libc::pollfd) -> bool {
    p.fd >= 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// Reads what one pipe has; false at EOF.
fn drain(fd: &OwnedFd, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16384];
    match nix::unistd::read(fd, &mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            if buf.len() < CAPTURE_MAX {
                buf.extend_from_slice(&chunk[..n.min(CAPTURE_MAX - buf.len())]);
            }
            true
        }
        Err(Errno::EINTR | Errno::EAGAIN) => true,
        Err(_) => false,
    }
}

impl Loop<'_> {
    /// Runs until the command ended and (library) the caller let go.
    /// Returns (status, timed out).
    pub fn run(&mut self) -> Result<(i32, bool)> {
        let deadline = self
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut open = [self.capture.is_some(); 2];
        let mut result: Option<(i32, bool)> = None;
        let mut timed_out = false;
        let mut signalled = false;
        loop {
            if let Some(r) = result {
                if self.sock.is_none() {
                    return Ok(r);
                }
            }
            let cap = self.capture.as_ref();
            let fd_of = |i: usize| match (cap, open[i]) {
                (Some(c), true) => [c.0.as_raw_fd(), c.1.as_raw_fd()][i],
                _ => -1,
            };
            let live = result.is_none();
            let mut fds = [
                pfd(self.sock.as_ref().map_or(-1, |s| s.as_raw_fd())),
                pfd(match (live, &self.owned.pidfd) {
                    (true, Some(p)) => p.as_raw_fd(),
                    _ => -1,
                }),
                pfd(fd_of(0)),
                pfd(fd_of(1)),
                pfd(self.signals.0.as_raw_fd()),
            ];
            let ms = match (live && !timed_out, deadline) {
                (true, Some(d)) => {
                    i32::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                        .unwrap_or(i32::MAX)
                }
                _ => -1,
            };
            // SAFETY: valid pollfds (negative fds are ignored).
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if r < 0 && Errno::last() != Errno::EINTR {
                return Err(sys("poll")(Errno::last()));
            }
            if live && !timed_out && deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
                self.kill();
            }
            if ready(&fds[4]) && self.on_signal(&mut signalled) {
                return Ok(result.unwrap_or((TIMEOUT_STATUS, false)));
            }
            if let Some(c) = &self.capture {
                if ready(&fds[2]) {
                    open[0] = drain(&c.0, &mut out);
                }
                if ready(&fds[3]) {
                    open[1] = drain(&c.1, &mut err);
                }
            }
            if ready(&fds[1]) {
                let status = self.on_exit(timed_out, &mut open, &mut out, &mut err)?;
                result = Some((status, timed_out));
            }
            if ready(&fds[0]) && !self.request()? {
                return Ok(result.unwrap_or((TIMEOUT_STATUS, timed_out)));
            }
        }
    }

    /// A signal to the owner; true: stop (the helper was told to stop:
    /// the caller's Drop semantics apply, kill and remove). For `cuddy
    /// sandbox run` the first signal is forwarded to the command (a
    /// PID-namespace init without a handler ignores it); a second one kills
    /// the sandbox.
    fn on_signal(&mut self, signalled: &mut bool) -> bool {
        let Ok(Some(si)) = self.signals.0.read_signal() else {
            return false;
        };
        if self.sock.is_some() {
            return true;
        }
        match *signalled {
            false => {
                let sig = Signal::try_from(si.ssi_signo as i32).ok();
                let _ = nix::sys::signal::kill(self.owned.pid, sig);
            }
            true => self.kill(),
        }
        *signalled = true;
        false
    }

    /// The init exited: its status (TIMEOUT_STATUS after a timeout), the
    /// container removed, the output sent to the caller (library).
    fn on_exit(
        &mut self,
        timed_out: bool,
        open: &mut [bool; 2],
        out: &mut Vec<u8>,
        err: &mut Vec<u8>,
    ) -> Result<i32> {
        let status = match timed_out {
            true => {
                reap(self.owned.pid);
                TIMEOUT_STATUS
            }
            false => reap(self.owned.pid),
        };
        self.finish_container(open, out, err);
        if let Some(s) = self.sock.as_mut() {
            let exited = Reply::Exited {
                status,
                timed_out,
                stdout_len: out.len() as u64,
            };
            let payload = [std::mem::take(out), std::mem::take(err)].concat();
            // A caller gone meanwhile: its EOF ends the loop next.
            let _ = proto::send(s, &exited, &payload);
        }
        Ok(status)
    }

    /// SIGKILL to every process of the container.
    fn kill(&self) {
        if let Err(e) = container::kill(&self.owned.root, &self.owned.name, "KILL", true) {
            tracing::warn!("sandbox {}: kill: {e}", self.owned.name);
        }
    }

    /// The init is gone: remove the container (its other processes die
    /// with its cgroup), then read the pipes to their end (bounded).
    fn finish_container(&mut self, open: &mut [bool; 2], out: &mut Vec<u8>, err: &mut Vec<u8>) {
        if let Err(e) = container::delete(&self.owned.root, &self.owned.name, true) {
            tracing::warn!("sandbox {}: delete: {e}", self.owned.name);
        } else {
            self.owned.created = false;
        }
        let Some(c) = &self.capture else {
            return;
        };
        let until = Instant::now() + Duration::from_secs(5);
        while (open[0] || open[1]) && Instant::now() < until {
            let mut fds = [
                pfd(if open[0] { c.0.as_raw_fd() } else { -1 }),
                pfd(if open[1] { c.1.as_raw_fd() } else { -1 }),
            ];
            // SAFETY: two valid pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, 100) };
            if ready(&fds[0]) {
                open[0] = drain(&c.0, out);
            }
            if ready(&fds[1]) {
                open[1] = drain(&c.1, err);
            }
        }
        *open = [false, false];
    }

    /// Serves one request; false at EOF (the caller let go or died).
    fn request(&mut self) -> Result<bool> {
        let Some(sock) = self.sock.as_mut() else {
            return Ok(true);
        };
        let (req, payload) = match proto::recv::<Request>(*sock) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => return Ok(false),
        };
        let reply = match req {
            Request::Kill => {
                self.kill();
                return Ok(true);
            }
            Request::Start(_) => Err(SandboxError::Helper {
                op: "start",
                message: "already started".into(),
            }),
            Request::WriteFile { path, mode } => {
                write_file(self.owned, &path, mode, &payload).map(|()| (Reply::Written, vec![]))
            }
            Request::ReadFile { path } => read_file(self.owned, &path).map(|d| (Reply::File, d)),
        };
        let (reply, data) =
            reply.unwrap_or_else(|e| (Reply::Failed { message: chain(&e) }, vec![]));
        let Some(sock) = self.sock.as_mut() else {
            return Ok(true);
        };
        Ok(proto::send(*sock, &reply, &data).is_ok())
    }
}

fn file_err(op: &'static str, path: &str) -> impl FnOnce(Errno) -> SandboxError + use<> {
    let path = std::path::PathBuf::from(path);
    move |e| SandboxError::Io {
        op,
        path,
        source: e.into(),
    }
}

const RESOLVE: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// Resolved inside the overlay root (symlinks included: an absolute link
/// resolves to the sandbox's root, never the host's), acted on by fd.
fn write_file(owned: &Owned, path: &str, mode: u32, data: &[u8]) -> Result<()> {
    let root = merged_fd(owned)?;
    let rel = rel_path(path)?;
    let open = |flags| crate::mounts::openat2(root, rel, flags, RESOLVE);
    let fd = match open(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) {
        Ok(fd) => {
            nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))
                .map_err(file_err("chmod", path))?;
            fd
        }
        Err(Errno::EEXIST) => {
            let fd = open(libc::O_WRONLY | libc::O_NONBLOCK).map_err(file_err("open", path))?;
            regular_file(&fd, path)?;
            nix::unistd::ftruncate(&fd, 0).map_err(file_err("truncate", path))?;
            fd
        }
        Err(e) => return Err(file_err("create", path)(e)),
    };
    std::fs::File::from(fd)
        .write_all(data)
        .map_err(|source| SandboxError::Io {
            op: "write",
            path: path.into(),
            source,
        })
}

/// The sandbox's processes own what is at `path`: a FIFO would block this
/// loop (kill and timeouts included) and a device such as /dev/zero would
/// never end a read. Only regular files are read or written; they are
/// opened O_NONBLOCK so a FIFO's open does not block before this check.
/// Returns the file's size.
fn regular_file(fd: &std::os::fd::OwnedFd, path: &str) -> Result<u64> {
    let st = nix::sys::stat::fstat(fd).map_err(file_err("stat", path))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(SandboxError::Invalid {
            field: "path",
            value: path.into(),
            why: "not a regular file (a FIFO, device, socket or directory)".into(),
        });
    }
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// A file over the frame's payload limit: refused before it is read (the
/// sandbox's processes choose its size; the helper must not hold it all).
fn too_big(path: &str, size: u64) -> SandboxError {
    SandboxError::Invalid {
        field: "path",
        value: path.into(),
        why: format!(
            "the file has {size} bytes or more; read_file reads files of at most {} bytes (256 MiB)",
            proto::MAX_PAYLOAD
        ),
    }
}

fn read_file(owned: &Owned, path: &str) -> Result<Vec<u8>> {
    let root = merged_fd(owned)?;
    let rel = rel_path(path)?;
    let fd = crate::mounts::openat2(root, rel, libc::O_RDONLY | libc::O_NONBLOCK, RESOLVE)
        .map_err(file_err("open", path))?;
    let max = u64::from(proto::MAX_PAYLOAD);
    let size = regular_file(&fd, path)?;
    if size > max {
        return Err(too_big(path, size));
    }
    // Bounded too: the sandbox may be growing the file while it is read.
    let mut data = Vec::with_capacity(size as usize);
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut data)
        .map_err(|source| SandboxError::Io {
            op: "read",
            path: path.into(),
            source,
        })?;
    if data.len() as u64 > max {
        return Err(too_big(path, data.len() as u64));
    }
    Ok(data)
}
