//! `run`: create + start, then (in the foreground) forward signals to the
//! container and exit with its status.
//!
//! Every forwardable signal, SIGCHLD included, is blocked *before* the
//! container is cloned and then taken synchronously with sigwaitinfo: a
//! container that exits at once leaves SIGCHLD pending and is never missed,
//! and no signal handler runs concurrently with anything.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use super::create::{CreateOptions, create_bundle};
use super::{Result, Root, delete, io_err};

pub(crate) fn forwardable() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
    ] {
        set.remove(s);
    }
    set
}

/// Returns the exit code cuddy should exit with.
pub fn run(root: &Root, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let set = forwardable();
    let mut old = SigSet::empty();
    if !detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(super::sys_err("sigprocmask"))?;
        // As runc: in the foreground cuddy is a child subreaper, so the
        // orphans of a container without its own PID namespace become its
        // children (reaped while it waits) instead of zombies of whoever
        // called it.
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            let e = nix::errno::Errno::last();
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            return Err(super::sys_err("prctl(PR_SET_CHILD_SUBREAPER)")(e));
        }
    }
    let res = run_inner(root, opts, detach, keep, &set);
    if !detach {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    res
}

/// A private unix socket (in a 0700 directory of the state root) that
/// receives the pty master when `run` relays the terminal itself.
struct RelaySocket {
    dir: PathBuf,
    listener: UnixListener,
}

impl RelaySocket {
    fn new(root: &Root, id: &str) -> Result<RelaySocket> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&root.path)
            .map_err(io_err("create state root", &root.path))?;
        let dir = root
            .path
            .join(format!(".console-{id}-{}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("create", &dir))?;
        let path = dir.join("sock");
        match UnixListener::bind(&path) {
            Ok(listener) => Ok(RelaySocket { dir, listener }),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(io_err("bind", path)(e))
            }
        }
    }
}

impl Drop for RelaySocket {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run_inner(
    root: &Root,
    opts: &CreateOptions,
    detach: bool,
    keep: bool,
    set: &SigSet,
) -> Result<i32> {
    // `run` in the foreground with terminal: true and no console socket:
    // cuddy itself receives the master and relays (like `runc run` in a shell).
    super::validate_id(&opts.id)?;
    let bundle = crate::spec::load_config(&opts.bundle, opts.config.as_deref())?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let relay = if terminal && !detach && opts.console_socket.is_none() {
        Some(RelaySocket::new(root, &opts.id)?)
    } else {
        None
    };
    let mut opts = opts.clone();
    if let Some(r) = &relay {
        opts.console_socket = Some(r.dir.join("sock"));
    }
    let opts = &opts;
    let created = create_bundle(root, opts, bundle)?;
    let master = match &relay {
        Some(r) => {
            let got = r
                .listener
                .accept()
                .map_err(io_err("accept", r.dir.join("sock")))
                .and_then(|(s, _)| Ok(crate::console::recv_master(&OwnedFd::from(s))?));
            match got {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = delete(root, &opts.id, true);
                    return Err(e);
                }
            }
        }
        None => None,
    };
    drop(relay);
    // sd_notify: in the foreground cuddy stays the process systemd watches
    // (MAINPID is cuddy's pid, as runc); detached, the init's.
    let mainpid = (!detach).then(|| std::process::id() as i32);
    if let Err(e) = super::start::start_notify(root, &opts.id, mainpid) {
        let _ = delete(root, &opts.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    // Held while the container runs: its network namespace outlives it
    // until the delete below undoes the network (network::held).
    let netns = crate::network::held::hold(&root.dir(&opts.id), &root.proc);
    let code = crate::console::wait_forwarding(created.pid, set, master)?;
    if !keep {
        // The container's exit code is what `run` reports; a cleanup that
        // fails is logged, and the state left behind lets `delete` retry it.
        if let Err(e) = super::delete::delete_holding(root, &opts.id, true, netns) {
            tracing::error!(
                "run {}: cleanup failed ({e}); `cuddy delete --force {}` retries it",
                opts.id,
                opts.id
            );
        }
        reap_children();
    }
    Ok(code)
}

/// Reaps, without waiting, every exited child: as a subreaper `run` inherits
/// the orphans of a container without a PID namespace, which delete killed.
fn reap_children() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}
