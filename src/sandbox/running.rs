//! The caller's side of a sandbox: the helper process and its socket.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::proto::{self, Reply, Request, Spec};
use super::{Output, Result, SandboxError};

/// Requests with a payload up to this size are written inline (they fit
/// the socket's buffer, ~200 KiB by default: net.core.wmem_default).
const SMALL: usize = 64 << 10;

/// The helper's end of the socket is this fd in the helper.
pub(crate) const CONTROL_FD: i32 = 3;

/// A started sandbox. Dropping it kills the sandbox's processes and
/// removes everything it made (cgroup, mounts, upper layer, state), also
/// while a test unwinds from a panic; `Drop` returns once that is done.
#[derive(Debug)]
pub struct Running {
    id: String,
    pid: i32,
    bin: PathBuf,
    state_root: PathBuf,
    helper: Child,
    sock: UnixStream,
    exited: Option<Output>,
}

fn status_of(st: std::process::ExitStatus) -> i32 {
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

impl Running {
    /// Starts the helper (`cuddy sandbox serve`) and asks for the sandbox.
    pub(crate) fn start(bin: &Path, spec: &Spec) -> Result<Running> {
        // Both ends close-on-exec (std makes socketpairs with SOCK_CLOEXEC):
        // a process spawned concurrently by another thread of this program
        // never keeps either, so the helper sees EOF exactly when this
        // program lets go of its end (Drop) or dies.
        let (mine, theirs) = UnixStream::pair().map_err(|source| SandboxError::Spawn {
            path: bin.to_path_buf(),
            source,
        })?;
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(bin);
        cmd.args(["sandbox", "serve", "--control-fd"])
            .arg(CONTROL_FD.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("CUDDY_SANDBOX_DEBUG") {
                Some(_) => Stdio::inherit(),
                None => Stdio::null(),
            })
            // Its own process group: a ^C or a kill of the caller's group
            // does not kill the helper before it cleaned up (it sees EOF).
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only
        // calls dup2/fcntl (async-signal-safe) on an fd that is open there
        // (`theirs` lives until after spawn returns).
        unsafe {
            cmd.pre_exec(move || {
                let r = if fd == CONTROL_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, CONTROL_FD)
                };
                match r {
                    -1 => Err(std::io::Error::last_os_error()),
                    _ => Ok(()),
                }
            })
        };
        let helper = cmd.spawn().map_err(|source| SandboxError::Spawn {
            path: bin.to_path_buf(),
            source,
        })?;
        drop(theirs);
        let mut r = Running {
            id: String::from("(starting)"),
            pid: 0,
            bin: bin.to_path_buf(),
            state_root: spec.state_root.clone(),
            helper,
            sock: mine,
            exited: None,
        };
        r.send(&Request::Start(Box::new(spec.clone())), &[])?;
        match r.recv("start")? {
            (Reply::Started { id, pid }, _) => {
                r.id = id;
                r.pid = pid;
                Ok(r)
            }
            (Reply::Failed { message }, _) => Err(SandboxError::Helper {
                op: "start",
                message,
            }),
            (other, _) => Err(r.unexpected("start", &other)),
        }
    }

    /// The container's id (in the state root).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host pid of the sandbox's first process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The state root the sandbox lives in.
    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    fn send(&mut self, req: &Request, payload: &[u8]) -> Result<()> {
        proto::send(&mut self.sock, req, payload).map_err(|source| SandboxError::Channel {
            id: self.id.clone(),
            op: "send to helper",
            source,
        })
    }

    fn unexpected(&self, op: &'static str, r: &Reply) -> SandboxError {
        SandboxError::Helper {
            op,
            message: format!("unexpected reply from the helper: {r:?}"),
        }
    }

    /// The next frame; an `Exited` one is also kept for `wait`.
    fn recv(&mut self, op: &'static str) -> Result<(Reply, Vec<u8>)> {
        let got = proto::recv::<Reply>(&mut self.sock);
        let (reply, payload) = match got {
            Ok(Some(f)) => f,
            Ok(None) => {
                let st = self.helper.wait().map(status_of).unwrap_or(-1);
                return Err(SandboxError::Channel {
                    id: self.id.clone(),
                    op,
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the helper exited (status {st}) without a reply (CUDDY_SANDBOX_DEBUG=1 shows its stderr)"
                        ),
                    ),
                });
            }
            Err(source) => {
                return Err(SandboxError::Channel {
                    id: self.id.clone(),
                    op,
                    source,
                });
            }
        };
        if let Reply::Exited {
            status,
            timed_out,
            stdout_len,
        } = &reply
        {
            let split = usize::try_from(*stdout_len)
                .unwrap_or(usize::MAX)
                .min(payload.len());
            self.exited = Some(Output {
                status: *status,
                stdout: payload[..split].to_vec(),
                stderr: payload[split..].to_vec(),
                timed_out: *timed_out,
            });
        }
        Ok((reply, payload))
    }

    /// A request and its reply (an `Exited` frame in between is kept).
    fn request(&mut self, op: &'static str, req: &Request, payload: &[u8]) -> Result<Vec<u8>> {
        if payload.len() <= SMALL {
            self.send(req, payload)?;
            return self.reply(op);
        }
        // A large request while the helper sends a large `Exited` frame
        // would fill both directions of the socket, each side blocked in
        // its write: this one is written from a thread while this thread
        // reads (the reply only comes once the helper read it all).
        let mut w = self
            .sock
            .try_clone()
            .map_err(|source| SandboxError::Channel {
                id: self.id.clone(),
                op,
                source,
            })?;
        std::thread::scope(|s| {
            let writer = s.spawn(move || proto::send(&mut w, req, payload));
            // A reply (even `Failed`) comes after the whole request was
            // read; a dead helper fails the writer with EPIPE: either way
            // the writer is done or about to be.
            let got = self.reply(op);
            let _ = writer.join();
            got
        })
    }

    /// The reply to the request just sent (an `Exited` frame is kept).
    fn reply(&mut self, op: &'static str) -> Result<Vec<u8>> {
        loop {
            match self.recv(op)? {
                (Reply::Exited { .. }, _) => continue,
                (Reply::Failed { message }, _) => return Err(SandboxError::Helper { op, message }),
                (Reply::Written | Reply::File, p) => return Ok(p),
                (other, _) => return Err(self.unexpected(op, &other)),
            }
        }
    }

    /// Waits for the sandbox's command to end; its output (stdout and
    /// stderr captured; also after a timeout or `kill`).
    pub fn wait(&mut self) -> Result<Output> {
        loop {
            if let Some(o) = &self.exited {
                return Ok(o.clone());
            }
            self.recv("wait")?;
        }
    }

    /// Waits at most `d`: `None` when the command still runs.
    pub fn wait_timeout(&mut self, d: Duration) -> Result<Option<Output>> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(o) = &self.exited {
                return Ok(Some(o.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(SandboxError::Channel {
                    id: self.id.clone(),
                    op: "wait_timeout",
                    source: e,
                });
            }
            if r == 0 {
                return Ok(None);
            }
            // The helper writes whole frames: this read does not block long.
            self.recv("wait_timeout")?;
        }
    }

    /// SIGKILLs every process of the sandbox; `wait` then reports 137.
    /// A sandbox that already ended is left as it is.
    pub fn kill(&mut self) -> Result<()> {
        if self.exited.is_some() {
            return Ok(());
        }
        self.send(&Request::Kill, &[])
    }

    /// Runs another command in the running sandbox (`cuddy exec`), with
    /// the sandbox's environment, cwd and user; waits for it and returns
    /// its output. When cuddy itself fails (the sandbox ended, say), the
    /// status is 1 and stderr says why, starting with "cuddy: ".
    pub fn exec(&self, args: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Output> {
        let out = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.state_root)
            .args(["exec", &self.id, "--"])
            .args(args.into_iter().map(|a| a.as_ref().to_string()))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SandboxError::Spawn {
                path: self.bin.clone(),
                source,
            })?;
        Ok(Output {
            status: status_of(out.status),
            stdout: out.stdout,
            stderr: out.stderr,
            timed_out: false,
        })
    }

    /// Writes a file (created owned by root with mode 0644, or truncated) in the
    /// sandbox's root filesystem; `path` is resolved inside it (symlinks
    /// cannot lead out), its directory must exist. Also after the command
    /// ended. Mounts made inside the sandbox (`mount`, `tmpfs`) are not
    /// seen: the file lands in the sandbox's own (overlay) layer.
    ///
    /// Files of up to 256 MiB are written (and read by [`Running::read_file`]);
    /// a larger one is refused with [`SandboxError::Invalid`].
    pub fn write_file(&mut self, path: impl AsRef<str>, contents: impl AsRef<[u8]>) -> Result<()> {
        let len = contents.as_ref().len();
        if len > super::proto::MAX_PAYLOAD as usize {
            return Err(SandboxError::Invalid {
                field: "contents",
                value: path.as_ref().to_string(),
                why: format!(
                    "{len} bytes; write_file writes files of at most {} bytes (256 MiB)",
                    super::proto::MAX_PAYLOAD
                ),
            });
        }
        let req = Request::WriteFile {
            path: path.as_ref().to_string(),
            mode: 0o644,
        };
        self.request("write_file", &req, contents.as_ref())
            .map(drop)
    }

    /// Reads a file of the sandbox's root filesystem (as `write_file`): a
    /// regular file of at most 256 MiB; anything else is refused with
    /// [`SandboxError::Invalid`] naming the path.
    pub fn read_file(&mut self, path: impl AsRef<str>) -> Result<Vec<u8>> {
        let req = Request::ReadFile {
            path: path.as_ref().to_string(),
        };
        self.request("read_file", &req, &[])
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // EOF for the helper: it kills the sandbox, removes everything and
        // exits, closing its end; reading to that EOF (bounded) and reaping
        // it makes "dropped" mean "gone".
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        let _ = self.sock.set_read_timeout(Some(Duration::from_secs(60)));
        let mut sink = [0u8; 4096];
        let done = loop {
            match std::io::Read::read(&mut self.sock, &mut sink) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break false,
            }
        };
        if !done {
            // A stuck helper: what it leaves is swept by the next sandbox
            // on this state root.
            let _ = self.helper.kill();
        }
        let _ = self.helper.wait();
    }
}
