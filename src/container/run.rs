//! `run`: create + start, then (in the foreground) forward signals to the
//! container and exit with its status.
//!
//! Every forwardable signal, SIGCHLD included, is blocked *before* the
//! container is cloned and then taken synchronously with sigwaitinfo: a
//! container that exits at once leaves SIGCHLD pending and is never missed,
//! and no signal handler runs concurrently with anything.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::create::{CreateOptions, create};
use super::{Result, Root, delete, start};

pub(crate) fn forwardable() -> SigSet {
    let mut set = SigSet::all();
    for s in [Signal::SIGKILL, Signal::SIGSTOP, Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGTRAP] {
        set.remove(s);
    }
    set
}

/// Returns the exit code cuddy should exit with.
pub fn run(root: &Root, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let set = forwardable();
    let mut old = SigSet::empty();
    if !detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).map_err(super::sys_err("sigprocmask"))?;
    }
    let res = run_inner(root, opts, detach, keep, &set);
    if !detach {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    res
}

fn run_inner(root: &Root, opts: &CreateOptions, detach: bool, keep: bool, set: &SigSet) -> Result<i32> {
    let created = create(root, opts)?;
    if let Err(e) = start(root, &opts.id) {
        let _ = delete(root, &opts.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let pid = created.pid;
    let code = loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            // Forward; the container decides what the signal means.
            let _ = nix::sys::signal::kill(pid, sig);
            continue;
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            _ => continue,
        }
    };
    if !keep {
        delete(root, &opts.id, true)?;
    }
    Ok(code)
}
