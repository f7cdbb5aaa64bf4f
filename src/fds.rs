//! File-descriptor hygiene: what cuddy inherits, and what its children keep.
//!
//! Two rules (docs/fds.md):
//! - at startup every inherited fd >= 3 is marked close-on-exec, except the
//!   ones the caller hands to the container (`--preserve-fds`, LISTEN_FDS),
//!   so no caller-leaked fd survives an execve (the CVE-2024-21626 class);
//! - every child cuddy clones closes every fd it does not need right after
//!   the clone ([`close_all_except`]): close-on-exec alone is not enough,
//!   because cuddy forks without re-executing and a cloned child holds all of
//!   its parent's fds until its own execve — while the container can see it.

pub mod procfs;

use std::os::fd::RawFd;
use std::sync::OnceLock;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error("close_range({first}, {last}{how}): {source}")]
    CloseRange {
        first: u32,
        last: u32,
        how: &'static str,
        #[source]
        source: Errno,
    },
}

/// Fds in the preserved range that were not open when cuddy started: filled
/// with a placeholder so that cuddy's own fds never take their numbers (they
/// would then be handed to the container as "preserved"), and closed again in
/// every cloned child.
static HOLES: OnceLock<Vec<RawFd>> = OnceLock::new();

/// close_range(2) (Linux 5.9; 5.11 for CLOSE_RANGE_CLOEXEC), checked.
fn close_range(first: u32, last: u32, flags: u32) -> Result<(), FdError> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range only closes (or flags) fds of our own table; callers
    // guarantee that no live Rust object owns a closed fd that it will use
    // again (children close what they will never touch).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if r < 0 {
        return Err(FdError::CloseRange {
            first,
            last,
            how: if flags & libc::CLOSE_RANGE_CLOEXEC != 0 {
                ", CLOSE_RANGE_CLOEXEC"
            } else {
                ""
            },
            source: Errno::last(),
        });
    }
    Ok(())
}

/// Startup (`main`, after argument parsing): marks every fd >= 3 + `keep`
/// close-on-exec, where `keep` counts the fds the caller passes on to the
/// container (`--preserve-fds` plus LISTEN_FDS; fds 3..3+keep). Holes in that
/// range are filled with a close-on-exec placeholder (see `HOLES`).
pub fn mark_inherited_cloexec(keep: u32) -> Result<(), FdError> {
    close_range(3 + keep, u32::MAX, libc::CLOSE_RANGE_CLOEXEC)?;
    let mut holes = Vec::new();
    for fd in 3..3 + keep as RawFd {
        // SAFETY: F_GETFD only queries the fd number.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        // SAFETY: a NUL-terminated path; the new fd is placed with dup3 and
        // the temporary one closed: no Rust object owns either.
        unsafe {
            let tmp = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if tmp >= 0 && tmp != fd {
                libc::dup3(tmp, fd, libc::O_CLOEXEC);
                libc::close(tmp);
            }
        }
        holes.push(fd);
    }
    let _ = HOLES.set(holes);
    Ok(())
}

/// Number of fds 3..3+N that LISTEN_FDS asks to pass on (socket activation).
pub fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0)
}

/// What a cloned child keeps: fds 0..=2, the preserved range 3..3+`preserve`
/// (minus startup holes) and the listed fds. Everything else is closed.
#[derive(Debug, Clone, Default)]
pub struct Keep {
    pub preserve: u32,
    pub fds: Vec<RawFd>,
}

/// The sorted list of fd numbers `keep` names.
fn kept(keep: &Keep) -> Vec<u32> {
    let holes = HOLES.get().map(Vec::as_slice).unwrap_or(&[]);
    let mut v: Vec<u32> = (0..3 + keep.preserve)
        .filter(|fd| !holes.contains(&(*fd as RawFd)))
        .collect();
    v.extend(keep.fds.iter().filter(|f| **f >= 0).map(|f| *f as u32));
    v.sort_unstable();
    v.dedup();
    v
}

/// In a freshly cloned child: closes every fd not in `keep` (close_range on
/// each gap, results checked). Fds owned by Rust objects in the copied memory
/// may be closed here; the child never uses those objects (it only uses what
/// it keeps) and leaves with execve or `_exit`, never dropping them.
pub fn close_all_except(keep: &Keep) -> Result<(), FdError> {
    let mut next = 0u32;
    for fd in kept(keep) {
        if fd > next {
            close_range(next, fd - 1, 0)?;
        }
        next = fd + 1;
    }
    close_range(next, u32::MAX, 0)
}

/// Before execve: fds >= 3 + `preserve` close-on-exec (checked), the
/// preserved ones inheritable.
pub fn cloexec_from(preserve: u32) -> Result<(), FdError> {
    close_range(3 + preserve, u32::MAX, libc::CLOSE_RANGE_CLOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_is_sorted_and_covers_stdio_and_the_preserved_range() {
        let k = Keep {
            preserve: 2,
            fds: vec![9, 7, 9, -1],
        };
        assert_eq!(kept(&k), vec![0, 1, 2, 3, 4, 7, 9]);
    }

    #[test]
    fn close_all_except_in_a_child() {
        use std::os::fd::AsRawFd;
        let a = std::fs::File::open("/dev/null").unwrap();
        let b = std::fs::File::open("/dev/null").unwrap();
        let (ra, rb) = (a.as_raw_fd(), b.as_raw_fd());
        // SAFETY: the child only makes raw syscalls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = close_all_except(&Keep {
                preserve: 0,
                fds: vec![ra],
            })
            .is_ok();
            // SAFETY: F_GETFD queries only.
            let (ka, kb) = unsafe {
                (
                    libc::fcntl(ra, libc::F_GETFD),
                    libc::fcntl(rb, libc::F_GETFD),
                )
            };
            let code = if ok && ka >= 0 && kb < 0 { 0 } else { 1 };
            // SAFETY: leave the forked test process without running destructors.
            unsafe { libc::_exit(code) };
        }
        let mut st = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0);
    }
}
