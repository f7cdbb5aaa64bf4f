//! Small helpers to read and write cgroup files with errors that name the path.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::CgroupError;

/// Read a whole cgroup file.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Read a file, `None` if it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Read a file holding one unsigned number ("max" reads as `u64::MAX`); `None` if absent.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    Ok(read_opt(path)?.map(|s| parse_u64(s.trim())))
}

/// Parse a number as cgroup files print them; "max" is `u64::MAX`, junk is 0.
pub(crate) fn parse_u64(s: &str) -> u64 {
    if s == "max" {
        u64::MAX
    } else {
        s.parse().unwrap_or(0)
    }
}

/// Write `value` to a cgroup file in one write(2), without creating it.
pub(crate) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    // O_TRUNC as a shell's `>` does: harmless on cgroupfs, and keeps a fake file
    // (tests) holding only the last value.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    #[cfg(test)]
    test_log::record(path, value);
    let n = f.write(value.as_bytes())?;
    if n != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write ({n} of {} bytes)", value.len()),
        ));
    }
    Ok(())
}

/// Write a control file (not a resource limit): errors are `Io` with op `write`.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|source| CgroupError::Io {
        op: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Write a resource setting: a missing file or a refused value is an error naming
/// the configuration field and the file.
///
/// While an update journal is open ([`super::journal`]), the file's old
/// content is recorded before the write, so a failed update can restore it.
pub(crate) fn set(field: &str, path: &Path, value: &str) -> Result<(), CgroupError> {
    super::journal::before_write(path);
    match write_raw(path, value) {
        Ok(()) => {
            super::journal::wrote(path, value);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CgroupError::Unavailable {
            field: field.to_string(),
            path: path.to_path_buf(),
            reason:
                "the file does not exist (controller not enabled, or the kernel lacks this feature)"
                    .to_string(),
        }),
        Err(source) => Err(CgroupError::Set {
            field: field.to_string(),
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        }),
    }
}

/// Whether `e` is an errno equal to `errno`.
pub(crate) fn is_errno(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// Tests: every successful open-for-write of a cgroup file, in order, per thread.
#[cfg(test)]
pub(crate) mod test_log {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static LOG: RefCell<Vec<(PathBuf, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn record(path: &Path, value: &str) {
        LOG.with(|l| l.borrow_mut().push((path.to_path_buf(), value.to_string())));
    }

    /// Values written to files whose path ends with `suffix`, in order.
    pub(crate) fn writes_to(suffix: &str) -> Vec<String> {
        LOG.with(|l| {
            l.borrow()
                .iter()
                .filter(|(p, _)| p.ends_with(suffix))
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    pub(crate) fn clear() {
        LOG.with(|l| l.borrow_mut().clear());
    }
}
