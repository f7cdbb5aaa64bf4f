//! Terminals (config.md "Process": `terminal`, `consoleSize`).
//!
//! The pty is made *inside* the container, from the container's own devpts
//! instance (`/dev/pts/ptmx`), so the user process's terminal belongs to the
//! container and not to the host's devpts. The slave is obtained from the
//! master with TIOCGPTPEER (no path lookup at all, so nothing in the
//! container's /dev can redirect it), and both ends are checked to be a
//! real devpts pty of one instance (runc CVE-2025-52565 class: never follow
//! a symlink in /dev, never trust a node there). /dev/console is bind
//! mounted from that slave.
//!
//! The master is sent over the `--console-socket` unix socket with
//! SCM_RIGHTS exactly as runc does it (one message whose data is the
//! master's name and whose control message carries the one fd): conmon,
//! containerd's shim and runc's `recvtty` read it that way. Without a console
//! socket, `run`/`exec` in the foreground receive it themselves and relay
//! between the caller's terminal and the pty ([`wait_forwarding`]).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{op} {path}: {source}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{path}: {reason}")]
    NotPty { path: PathBuf, reason: String },
    #[error("console socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("console socket: received no pty master fd")]
    NoFd,
}

fn sys(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(nix::Error) -> ConsoleError {
    let path = path.into();
    move |source| ConsoleError::Sys { op, path, source }
}

/// devpts's statfs magic (linux/magic.h).
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
/// UNIX98 pty slaves have majors 136..=143 (linux/major.h).
const PTY_SLAVE_MAJORS: std::ops::RangeInclusive<u32> = 136..=143;

/// openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS:
/// no symlink at all is followed on the way (a planted /dev/pts -> /host
/// symlink fails with ELOOP instead of being followed).
fn open_strict(root: RawFd, rel: &str, flags: i32) -> nix::Result<OwnedFd> {
    crate::mounts::openat2(
        root,
        Path::new(rel),
        flags | libc::O_NOFOLLOW,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// A pty pair made in the container's devpts.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Opens `<root>/dev/pts/ptmx` (root: an fd of the container's root
/// directory) and gets the slave with TIOCGPTPEER; checks both ends.
pub fn open_pty(root: BorrowedFd, shown_root: &Path) -> Result<Pty, ConsoleError> {
    let shown = shown_root.join("dev/pts/ptmx");
    let master = open_strict(
        root.as_raw_fd(),
        "dev/pts/ptmx",
        libc::O_RDWR | libc::O_NOCTTY,
    )
    .map_err(sys(
        "open (process.terminal needs a devpts mount at /dev/pts)",
        &shown,
    ))?;
    // Unlock the slave (unlockpt).
    let zero: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK with a pointer to an int on a valid fd.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) } < 0 {
        return Err(sys("unlock pty", &shown)(Errno::last()));
    }
    // SAFETY: TIOCGPTPEER returns a new fd for the slave of this master.
    let s = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(sys("open pty slave (TIOCGPTPEER)", &shown)(Errno::last()));
    }
    // SAFETY: a new fd owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    let not_pty = |reason: String| ConsoleError::NotPty {
        path: shown.clone(),
        reason,
    };
    let mst = nix::sys::stat::fstat(&master).map_err(sys("fstat", &shown))?;
    let sst = nix::sys::stat::fstat(&slave).map_err(sys("fstat pty slave", &shown))?;
    for (what, fd) in [("ptmx", &master), ("pty slave", &slave)] {
        let fs = nix::sys::statfs::fstatfs(fd).map_err(sys("fstatfs", &shown))?;
        if fs.filesystem_type().0 as i64 != DEVPTS_SUPER_MAGIC {
            return Err(not_pty(format!("the {what} is not on a devpts filesystem")));
        }
    }
    let major = libc::major(sst.st_rdev);
    if sst.st_mode & libc::S_IFMT != libc::S_IFCHR || !PTY_SLAVE_MAJORS.contains(&major) {
        return Err(not_pty(format!(
            "the pty slave is not a UNIX98 pty (major {major})"
        )));
    }
    if mst.st_dev != sst.st_dev {
        return Err(not_pty(
            "ptmx and its slave are on different devpts instances".into(),
        ));
    }
    Ok(Pty { master, slave })
}

/// Applies `consoleSize` (rows/columns) to the pty.
pub fn set_size(fd: BorrowedFd, height: u16, width: u16) -> Result<(), ConsoleError> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a pointer to a valid winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(sys("set console size (TIOCSWINSZ)", "pty")(Errno::last()));
    }
    Ok(())
}

/// Bind mounts the pty slave onto `<root>/dev/console`, which is created as
/// an empty regular file after removing whatever was there (a symlink is
/// removed, never followed). Uses the host's /proc (before pivot_root).
pub fn mount_console(
    root: BorrowedFd,
    shown_root: &Path,
    slave: &OwnedFd,
) -> Result<(), ConsoleError> {
    let shown = shown_root.join("dev/console");
    let dev = open_strict(root.as_raw_fd(), "dev", libc::O_PATH | libc::O_DIRECTORY)
        .map_err(sys("open", shown_root.join("dev")))?;
    let name = c"console";
    // SAFETY: valid dirfd and NUL-terminated name.
    if unsafe { libc::unlinkat(dev.as_raw_fd(), name.as_ptr(), 0) } < 0
        && Errno::last() != Errno::ENOENT
    {
        return Err(sys("remove", &shown)(Errno::last()));
    }
    // SAFETY: as above; O_EXCL|O_NOFOLLOW so only our new file is opened.
    let f = unsafe {
        libc::openat(
            dev.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0o600,
        )
    };
    if f < 0 {
        return Err(sys("create", &shown)(Errno::last()));
    }
    // SAFETY: a new fd owned by nobody else.
    let f = unsafe { OwnedFd::from_raw_fd(f) };
    let src = format!("/proc/thread-self/fd/{}", slave.as_raw_fd());
    let dst = format!("/proc/thread-self/fd/{}", f.as_raw_fd());
    nix::mount::mount(
        Some(src.as_str()),
        dst.as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("bind pty onto", &shown))
}

/// Sends the master over the console socket as runc does.
pub fn send_master(sock: &OwnedFd, master: &OwnedFd) -> Result<(), ConsoleError> {
    let name = b"/dev/ptmx";
    let iov = [IoSlice::new(name)];
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(sys("send pty master over", "console socket"))?;
    Ok(())
}

/// Receives a pty master sent with [`send_master`] (the parent's end of its
/// own socketpair, for the foreground relay).
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd, ConsoleError> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            r => break r.map_err(sys("receive pty master from", "console socket"))?,
        }
    };
    for c in msg
        .cmsgs()
        .map_err(sys("receive pty master from", "console socket"))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(ConsoleError::NoFd)
}

/// Connects to a `--console-socket` path (in the parent, before clone: the
/// process that uses it may be in another mount namespace).
pub fn connect(path: &Path) -> Result<OwnedFd, ConsoleError> {
    let s =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| ConsoleError::Socket {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(OwnedFd::from(s))
}

/// In the process that will exec: a new session with the pty slave as its
/// controlling terminal and stdio.
pub fn become_tty_owner(slave: &OwnedFd) -> Result<(), ConsoleError> {
    nix::unistd::setsid().map_err(sys("setsid", "pty"))?;
    // SAFETY: TIOCSCTTY with arg 0 on a valid tty fd.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(sys("set controlling terminal (TIOCSCTTY)", "pty")(
            Errno::last(),
        ));
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto 0..2; the old ones are replaced atomically.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(sys("dup2 pty onto stdio", "pty")(Errno::last()));
        }
    }
    Ok(())
}

/// The caller's terminal in raw mode, restored on drop.
struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(t) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = t.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode { saved: Some(t) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize pointer; failures
    // (stdin not a tty) are ignored.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: valid buffer and length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR || Errno::last() == Errno::EAGAIN {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// The foreground supervisor of `run` and `exec`: forwards every signal in
/// `set` (which the caller blocked before the child existed, so its SIGCHLD
/// cannot be missed) to `pid`, relays between the caller's stdio and
/// `master` when given (raw mode, window size on SIGWINCH), and returns the
/// exit code: the status, or 128+N when killed by signal N.
/// Reaps every child that has exited: `pid`'s status as an exit code when
/// it is among them, and any other child silently — `run` is a child
/// subreaper (as runc), so the orphans of a container without its own PID
/// namespace are reparented to cuddy and must not stay zombies.
fn reap(pid: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == pid => code = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p == pid => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) => return code,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            // No child at all: the process is gone (reaped elsewhere).
            Err(Errno::ECHILD) => return code.or(Some(255)),
            Err(_) => return code,
        }
    }
}

pub fn wait_forwarding(
    pid: Pid,
    set: &SigSet,
    master: Option<OwnedFd>,
) -> Result<i32, ConsoleError> {
    let sfd =
        SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).map_err(sys("signalfd", "foreground"))?;
    let _raw = master.as_ref().map(|_| RawMode::enter());
    if let Some(m) = &master {
        copy_winsize(0, m.as_raw_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mfd = master.as_ref().map_or(-1, |m| m.as_raw_fd());
    let mut buf = vec![0u8; 32 * 1024];
    let mut code = None;
    loop {
        if code.is_none() {
            code = reap(pid);
        }
        // Once the process is gone, drain what the pty still holds.
        if let Some(c) = code {
            if !master_open {
                return Ok(c);
            }
            stdin_open = false;
        }
        let mut fds = [
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if master_open { mfd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = if code.is_some() { 100 } else { -1 };
        // SAFETY: three valid pollfds (negative fds are ignored by poll).
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
        if r < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(sys("poll", "foreground")(Errno::last()));
        }
        if r == 0 && code.is_some() {
            master_open = false;
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            if let Ok(Some(si)) = sfd.read_signal() {
                let sig = si.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    // Reaped above, orphans included.
                } else if sig == libc::SIGWINCH && master.is_some() {
                    copy_winsize(0, mfd);
                } else if let Ok(s) = Signal::try_from(sig) {
                    let _ = nix::sys::signal::kill(pid, s);
                }
            }
        }
        if fds[1].revents != 0 {
            // SAFETY: valid buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 || !write_all(mfd, &buf[..n as usize]) {
                stdin_open = false;
            }
        }
        if fds[2].revents != 0 {
            // SAFETY: valid buffer.
            let n = unsafe { libc::read(mfd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // EIO: every slave fd is closed.
                master_open = false;
            } else {
                write_all(1, &buf[..n as usize]);
            }
        }
    }
}
