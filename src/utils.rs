//! Small helpers shared by several modules: timestamps, atomic writes, /proc parsing.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as RFC 3339 in UTC with nanoseconds, as runc writes it
/// (`2026-11-22T14:37:33.123456789Z`).
/// An error and its causes on one line, "what: why: deeper why" (a cause
/// already quoted by its parent's message is not repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Formats seconds since the epoch (UTC) as RFC 3339 with nanoseconds.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days` algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Waits (poll(2), no timeout; EINTR retried) until `a` or `b` is readable
/// or hung up; returns which of the two have events.
pub fn poll_two(a: &impl AsRawFd, b: &impl AsRawFd) -> Result<(bool, bool), Errno> {
    let pfd = |fd: &dyn AsRawFd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pfd(a), pfd(b)];
    loop {
        // SAFETY: two valid pollfds, their length passed.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r >= 0 {
            return Ok((fds[0].revents != 0, fds[1].revents != 0));
        }
        if Errno::last() != Errno::EINTR {
            return Err(Errno::last());
        }
    }
}

/// Writes `data` to `path` atomically: a new file in the same directory
/// renamed over the target, so a concurrent reader sees the old or the new
/// content, never a torn one. No fsync: runtime state lives in /run (tmpfs)
/// and means nothing after a reboot, and an fsync on a disk-backed --root
/// costs milliseconds on every create.
///
/// Nothing planted in the directory is ever followed or reused: the data goes
/// to an unnamed `O_TMPFILE` inode (mode 0600 until written, then `fchmod` to
/// `mode`), which `linkat` gives a random name (linkat never follows a symlink
/// at its new path and fails with EEXIST instead of reusing a file); on
/// filesystems without O_TMPFILE, a random name is created with
/// `O_CREAT|O_EXCL|O_NOFOLLOW`. `rename(2)` then replaces the target's
/// directory entry itself: a symlink planted at the target is replaced, its
/// target never opened.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write_atomic_with(path, data, mode, true)
}

/// [`write_atomic`]; `tmpfile: false` skips O_TMPFILE (tests the fallback).
fn write_atomic_with(path: &Path, data: &[u8], mode: u32, tmpfile: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{}: not a file name", path.display())))?;
    let dirfd = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    write_atomic_in(&dirfd, name, data, mode, tmpfile)
}

/// [`write_atomic`] of `name` in the directory `dirfd` (already opened and
/// checked by the caller, e.g. the seccomp cache's private directory).
pub fn write_atomic_at(
    dirfd: &OwnedFd,
    name: &OsStr,
    data: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    write_atomic_in(dirfd, name, data, mode, true)
}

fn write_atomic_in(
    dirfd: &OwnedFd,
    name: &OsStr,
    data: &[u8],
    mode: u32,
    tmpfile: bool,
) -> std::io::Result<()> {
    let cloexec = OFlag::O_CLOEXEC | OFlag::O_WRONLY;
    let private = Mode::from_bits_truncate(0o600);
    // O_TMPFILE needs filesystem support (tmpfs, ext4, xfs, btrfs have it).
    let unnamed = match tmpfile {
        true => nix::fcntl::openat(dirfd, ".", OFlag::O_TMPFILE | cloexec, private),
        false => Err(Errno::EOPNOTSUPP),
    };
    let (mut tmp, f) = match unnamed {
        Ok(f) => (None, f),
        Err(_) => {
            let (t, f) = retry_names(name, |t| {
                nix::fcntl::openat(
                    dirfd,
                    t,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | cloexec,
                    private,
                )
            })?;
            (Some(t), f)
        }
    };
    let res = (|| {
        let mut file = fs::File::from(f);
        file.write_all(data)?;
        nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode))?;
        let t = match tmp.take() {
            Some(t) => t,
            None => retry_names(name, |t| link_unnamed(&file, dirfd, t))?.0,
        };
        tmp = Some(t.clone());
        nix::fcntl::renameat(dirfd, t.as_os_str(), dirfd, name)?;
        tmp = None;
        Ok(())
    })();
    if let Some(t) = tmp {
        let _ = nix::unistd::unlinkat(dirfd, t.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    res
}

/// A random temporary name for `name` (`.NAME.<16 hex>`).
fn random_name(name: &OsStr) -> std::ffi::OsString {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into the buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Unpredictable enough never to collide by chance (O_EXCL and
        // linkat refuse an existing name anyway).
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(40)).to_ne_bytes();
    }
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{:016x}", u64::from_ne_bytes(b)));
    s
}

/// Calls `f` with fresh random names for `name` until it does not fail
/// with EEXIST; returns the name used and `f`'s result.
fn retry_names<T>(
    name: &OsStr,
    mut f: impl FnMut(&OsStr) -> nix::Result<T>,
) -> std::io::Result<(std::ffi::OsString, T)> {
    for _ in 0..16 {
        let t = random_name(name);
        match f(&t) {
            Ok(v) => return Ok((t, v)),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::EEXIST.into())
}

/// Gives an O_TMPFILE inode the name `tmp` in `dir`: `linkat(AT_EMPTY_PATH)`
/// (needs CAP_DAC_READ_SEARCH), else through its /proc/self/fd magic link.
fn link_unnamed(f: &fs::File, dir: &OwnedFd, tmp: &OsStr) -> nix::Result<()> {
    match nix::unistd::linkat(f, "", dir, tmp, AtFlags::AT_EMPTY_PATH) {
        Err(Errno::ENOENT) | Err(Errno::EPERM) => nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            format!("/proc/self/fd/{}", f.as_raw_fd()).as_str(),
            dir,
            tmp,
            AtFlags::AT_SYMLINK_FOLLOW,
        ),
        r => r,
    }
}

/// The start time of a process (field 22 of /proc/PID/stat, in clock ticks since
/// boot) and its state letter. Together with the pid this identifies a process
/// even after pid reuse.
pub fn proc_start_time(proc_root: &Path, pid: i32) -> Option<(u64, char)> {
    let stat = fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&stat)
}

/// Parses `/proc/PID/stat`: the command name may contain spaces and ')' so we
/// split after the last ')'.
pub fn parse_stat(stat: &str) -> Option<(u64, char)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After ')' come: state(3) ppid(4) ... starttime(22): index 22-3 = 19.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// One line of /proc/self/mountinfo (the fields cuddy uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount's id and its parent's (fields 1 and 2): a mount stacked
    /// over another at the same point hides it and everything under it.
    pub id: u32,
    pub parent: u32,
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

pub fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                id: f.first()?.parse().ok()?,
                parent: f.get(1)?.parse().ok()?,
                root: unescape(f.get(3)?),
                mount_point: unescape(f.get(4)?),
                fstype: r.first()?.to_string(),
                source: unescape(r.get(1).unwrap_or(&"")),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_359_453, 0), "2026-11-22T14:57:33.000000000Z");
    }

    #[test]
    fn parses_stat_with_odd_comm() {
        let s = "42 (a) b) c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(s), Some((98765, 'S')));
        assert_eq!(parse_stat("garbage"), None);
    }

    fn mode_of(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A symlink planted at the target (and at the old predictable
    /// temporary name) is replaced, never followed: the canary it points
    /// at keeps its content and mode; the result is a regular file with
    /// the asked mode, and no temporary file is left.
    #[test]
    fn atomic_write_never_follows_planted_symlinks() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        for tmpfile in [true, false] {
            let d = tempfile::tempdir().unwrap();
            let canary = d.path().join("canary");
            fs::write(&canary, "host").unwrap();
            fs::set_permissions(&canary, fs::Permissions::from_mode(0o600)).unwrap();
            let p = d.path().join("pid");
            symlink(&canary, &p).unwrap();
            let old_tmp = d.path().join(format!(".pid.tmp.{}", std::process::id()));
            symlink(&canary, &old_tmp).unwrap();
            write_atomic_with(&p, b"1234", 0o644, tmpfile).unwrap();
            assert_eq!(fs::read_to_string(&canary).unwrap(), "host");
            assert_eq!(mode_of(&canary), 0o600);
            let m = fs::symlink_metadata(&p).unwrap();
            assert!(m.file_type().is_file(), "tmpfile={tmpfile}");
            assert_eq!(mode_of(&p), 0o644);
            assert_eq!(fs::read_to_string(&p).unwrap(), "1234");
            // canary, pid, the planted old tmp name: nothing else.
            assert_eq!(fs::read_dir(d.path()).unwrap().count(), 3);
        }
    }

    /// The random temporary names differ from call to call.
    #[test]
    fn temporary_names_are_unpredictable() {
        let a = random_name(OsStr::new("state.json"));
        let b = random_name(OsStr::new("state.json"));
        assert_ne!(a, b);
        assert!(a.to_string_lossy().starts_with(".state.json."));
    }

    #[test]
    fn atomic_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic_with(&p, b"two", 0o600, false).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(mode_of(&p), 0o600);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
