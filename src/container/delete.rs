//! `delete`: remove everything the container created.

use std::fs;

use nix::sys::signal::Signal;

use super::{ContainerError, Result, Root, STATE_FILE, Status, init_pidfd, io_err, wait_pidfd};
use crate::hooks;
use crate::process::clone::pidfd_signal;

pub fn delete(root: &Root, id: &str, force: bool) -> Result<()> {
    let _lock = match root.lock(id) {
        // As runc: `delete --force` of a container that is already gone
        // succeeds (shims clean up after a container that deleted itself).
        Err(ContainerError::NotFound(_)) if force => return Ok(()),
        r => r?,
    };
    let dir = root.dir(id);
    if !dir.join(STATE_FILE).exists() {
        // A create that was killed before it wrote its state: nothing runs,
        // only the directory is left.
        if let Err(e) = crate::network::teardown(&dir, id) {
            tracing::warn!("delete {id}: {e}");
        }
        return fs::remove_dir_all(&dir).map_err(io_err("remove", &dir));
    }
    let st = root.load(id)?;
    let status = root.status(&st);
    match status {
        Status::Stopped | Status::Created | Status::Creating => {}
        Status::Running | Status::Paused if force => {}
        s => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status: s,
                hint: "stop it first or use delete --force",
            });
        }
    }
    // A container without a mount namespace mounted in ours: detached
    // first (MNT_DETACH works while its processes still use them), so that
    // a failure leaves the container whole and delete can be retried;
    // --force goes on (the creator's mount namespace may be gone, and its
    // mounts with it).
    if let Err(e) = crate::mounts::shared_ns::release(&dir) {
        if !force {
            return Err(ContainerError::Init(e.to_string()));
        }
        tracing::warn!("delete --force {id}: {e}");
    }
    if let Some(cg) = &st.cgroup {
        // An abandoned create ("creating" on disk, derived stopped) may have
        // left an init behind whose pid was never saved.
        if status != Status::Stopped || st.status == Status::Creating {
            // Every process, not only init (a container without its own PID
            // namespace does not die with its init).
            cg.kill_all(Signal::SIGKILL as i32)?;
        }
    }
    if let Some(pidfd) = init_pidfd(root, &st) {
        let _ = pidfd_signal(&pidfd, Signal::SIGKILL as i32);
        if !wait_pidfd(&pidfd, 10_000) {
            return Err(ContainerError::Init(format!(
                "container {id:?} init (pid {}) did not die after SIGKILL",
                st.pid
            )));
        }
    }
    // Network side effects (network.json), newest first; what fails stays
    // recorded so that a plain delete can be retried; --force goes on.
    if let Err(e) = crate::network::teardown(&dir, id) {
        if !force {
            return Err(e.into());
        }
        crate::logging::warn(&format!("delete --force {id}: {e}"));
    }
    if let Some(cg) = &st.cgroup {
        cg.destroy()?;
    }
    fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
    // poststop: after the container is gone; failures are warnings only.
    if hooks::any(st.hooks.as_ref(), &[hooks::Kind::Poststop]) {
        let state = hooks::state(&st.id, "stopped", 0, &st.bundle, &st.annotations);
        hooks::run_warn(
            hooks::Kind::Poststop,
            st.hooks.as_ref(),
            state.to_string().as_bytes(),
        );
    }
    Ok(())
}

/// A compiled POSIX extended regular expression (regcomp(3) with
/// REG_EXTENDED | REG_NOSUB, as crun's `delete --regex`), freed on drop.
struct Regex(Box<libc::regex_t>);

impl Regex {
    fn new(pattern: &str) -> Result<Regex> {
        let bad = |why: &str| {
            ContainerError::Unsupported(format!(
                "delete --regex {pattern:?}: invalid regular expression{why}"
            ))
        };
        let c = std::ffi::CString::new(pattern).map_err(|_| bad(" (contains NUL)"))?;
        // SAFETY: regex_t is a plain C struct that regcomp fills in; all
        // zeroes is a valid value to hand it.
        let mut re: Box<libc::regex_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: a valid, writable regex_t and a NUL-terminated pattern.
        let r =
            unsafe { libc::regcomp(&mut *re, c.as_ptr(), libc::REG_EXTENDED | libc::REG_NOSUB) };
        if r != 0 {
            let mut buf = [0u8; 256];
            // SAFETY: `re` as regcomp left it, and a buffer of the size given.
            unsafe { libc::regerror(r, &*re, buf.as_mut_ptr().cast(), buf.len()) };
            let msg = std::ffi::CStr::from_bytes_until_nul(&buf)
                .map(|m| m.to_string_lossy().into_owned())
                .unwrap_or_default();
            // regcomp frees what it allocated when it fails: no regfree.
            return Err(bad(&format!(": {msg}")));
        }
        Ok(Regex(re))
    }

    /// Does the expression match anywhere in `s` (unanchored, as regexec)?
    fn is_match(&self, s: &str) -> bool {
        let Ok(c) = std::ffi::CString::new(s) else {
            return false;
        };
        // SAFETY: a compiled regex_t, a NUL-terminated subject; REG_NOSUB:
        // no match array.
        unsafe { libc::regexec(&*self.0, c.as_ptr(), 0, std::ptr::null_mut(), 0) == 0 }
    }
}

impl Drop for Regex {
    fn drop(&mut self) {
        // SAFETY: compiled by a successful regcomp, freed once.
        unsafe { libc::regfree(&mut *self.0) };
    }
}

/// crun's `delete --regex`: deletes every container whose id the POSIX
/// extended regular expression matches (unanchored: `^` and `$` anchor).
/// A container that cannot be deleted (running without --force) is
/// reported and the rest are still deleted; returns the ids deleted, or the
/// failures (crun warns and exits 0; cuddy exits non-zero, after trying all).
pub fn delete_matching(root: &Root, pattern: &str, force: bool) -> Result<Vec<String>> {
    let re = Regex::new(pattern)?;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for id in root.ids()?.into_iter().filter(|id| re.is_match(id)) {
        match delete(root, &id, force) {
            Ok(()) => done.push(id),
            Err(e) => failed.push(format!("{id}: {e}")),
        }
    }
    if failed.is_empty() {
        return Ok(done);
    }
    Err(ContainerError::Unsupported(format!(
        "delete --regex {pattern:?}: {} deleted ({}); not deleted: {}",
        done.len(),
        done.join(", "),
        failed.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::Regex;

    #[test]
    fn posix_extended_unanchored() {
        let re = Regex::new("^ctr-[0-9]+$").unwrap();
        assert!(re.is_match("ctr-12"));
        assert!(!re.is_match("ctr-12x"));
        let re = Regex::new("b|c").unwrap();
        assert!(re.is_match("abc"));
        assert!(!re.is_match("xyz"));
    }

    #[test]
    fn invalid_expression_is_an_error() {
        let e = Regex::new("a(").err().unwrap().to_string();
        assert!(e.contains("invalid regular expression"), "{e}");
    }
}
