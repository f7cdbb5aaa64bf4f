//! `kill`: a signal to the init, or with --all to every process of the container.

use std::str::FromStr;

use nix::sys::signal::Signal;

use super::{ContainerError, Result, Root, Status, init_pidfd};
use crate::process::clone::pidfd_signal;

/// Parses a signal as runc does: a name with or without `SIG` (any case) or a number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(ContainerError::BadSignal(s.to_string()));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| ContainerError::BadSignal(s.to_string()))
}

/// runc's `ErrNotRunning` text. containerd's runc shim (checkKillError)
/// looks for exactly "container not running" to treat a kill of an exited
/// container as "process already finished"; any other wording fails the
/// CRI's StopContainer when the container exits while being stopped.
const RUNC_NOT_RUNNING: &str = "container not running";

pub fn kill(root: &Root, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let st = root.load(id)?;
    let status = root.status(&st);
    if all {
        // --all reaches every process, including ones left behind by an init
        // that already exited.
        if let Some(cg) = &st.cgroup {
            return Ok(cg.kill_all(sig)?);
        }
    }
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(ContainerError::BadStatus {
            id: id.into(),
            status,
            hint: RUNC_NOT_RUNNING,
        });
    }
    let pidfd = init_pidfd(root, &st).ok_or_else(|| ContainerError::BadStatus {
        id: id.into(),
        status: Status::Stopped,
        hint: RUNC_NOT_RUNNING,
    })?;
    pidfd_signal(&pidfd, sig).map_err(|e| match e {
        // The init exited (and was reaped) between the status check and the
        // signal: another kill won the race. That is "not running", not a
        // failure of this kill (seen with 20 concurrent kills in the v2 guest).
        nix::errno::Errno::ESRCH => ContainerError::BadStatus {
            id: id.into(),
            status: Status::Stopped,
            hint: RUNC_NOT_RUNNING,
        },
        e => ContainerError::Sys {
            op: format!("send signal {sig} to container {id:?} (pid {})", st.pid),
            source: e,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("9").unwrap(), 9);
        for bad in ["0", "-1", "999", "SIGNOPE", "", "TERMX"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
