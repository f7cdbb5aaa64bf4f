//! The cgroup verbs that act on the container's processes: freeze (pause),
//! thaw (resume), and signal every process (`kill --all`, delete), on the v1
//! freezer hierarchy or cgroup2's cgroup.freeze / cgroup.kill.

use std::io;
use std::path::PathBuf;

use super::{Cgroup, CgroupError, CgroupKind, FREEZE_TIMEOUT, Target, fsutil, v1, v2};

impl Cgroup {
    /// The freezer in use: the v1 freezer hierarchy, else cgroup2's cgroup.freeze.
    fn freezer(&self) -> Result<Target<'_>, CgroupError> {
        if let Some(d) = self.v1_dir("freezer") {
            return Ok(Target::V1(d));
        }
        if let Some(u) = &self.unified {
            if u.dir.join("cgroup.freeze").exists() {
                return Ok(Target::V2(&u.dir));
            }
        }
        Err(CgroupError::Unavailable {
            field: "freezer".to_string(),
            path: self
                .unified_dir()
                .map(|d| d.join("cgroup.freeze"))
                .unwrap_or_else(|| PathBuf::from("freezer")),
            reason: "no v1 freezer hierarchy and no cgroup.freeze (kernel < 5.2)".to_string(),
        })
    }

    /// Freeze every process of the cgroup (pause); waits until the kernel reports frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            Target::V1(d) => v1::set_freezer(d, true, FREEZE_TIMEOUT),
            Target::V2(d) => v2::set_freeze(d, true, FREEZE_TIMEOUT),
        }
    }

    /// Thaw the cgroup (resume).
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            Target::V1(d) => v1::set_freezer(d, false, FREEZE_TIMEOUT),
            Target::V2(d) => v2::set_freeze(d, false, FREEZE_TIMEOUT),
        }
    }

    /// Whether the cgroup is frozen (paused).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.freezer()? {
            Target::V1(d) => Ok(fsutil::read(&d.join("freezer.state"))?.trim() == "FROZEN"),
            Target::V2(d) => Ok(fsutil::read(&d.join("cgroup.freeze"))?.trim() == "1"),
        }
    }

    /// Send `signal` to every process in the cgroup (frozen while signalling, so none escapes).
    ///
    /// With SIGKILL and a cgroup2 `cgroup.kill`, the kernel kills the whole subtree.
    /// A cgroup that was paused stays paused, except after SIGKILL (thawed so the
    /// processes can die).
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if signal == libc::SIGKILL {
            // cgroup.kill exists from kernel 5.14; before that (and on v1)
            // the cgroup is frozen, every pid signalled, and thawed.
            if let Some(u) = &self.unified {
                let f = u.dir.join("cgroup.kill");
                if f.exists() {
                    fsutil::write(&f, "1")?;
                    if self.kind == CgroupKind::V2 {
                        return Ok(());
                    }
                }
            }
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let froze = !was_frozen
            && match self.freeze() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("kill_all: signalling without freezing: {e}");
                    false
                }
            };
        let result = self.signal_each(signal);
        if froze || (was_frozen && signal == libc::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    fn signal_each(&self, signal: i32) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours.
            let r = unsafe { libc::kill(pid, signal) };
            if r != 0 {
                let e = io::Error::last_os_error();
                if !fsutil::is_errno(&e, libc::ESRCH) {
                    return Err(CgroupError::Io {
                        op: "signal",
                        path: PathBuf::from(format!("/proc/{pid}")),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }
}
