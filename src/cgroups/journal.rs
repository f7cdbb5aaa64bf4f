//! An undo journal for `update`: the old value of every cgroup file, read
//! before its first write, so a failed update can put back what it changed.
//!
//! [`fsutil::set`](super::fsutil::set) records into the journal of the
//! current thread while one is open (`update` runs in one thread, as every
//! cuddy verb; the journal is a thread-local so the per-controller writers
//! keep their signatures). Restoring writes the old values in reverse order,
//! twice where needed: pairs with an ordering constraint between them
//! (memory.limit_in_bytes ≤ memory.memsw.limit_in_bytes, cfs quota vs
//! period) settle on the second pass.
//!
//! Files holding one line per key (a device, an interface, `default`) are
//! restored key by key: the old line of each key written, or the line that
//! removes the key when the file did not list it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use super::fsutil;

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    /// The content before the first write; `None` when it could not be read.
    old: Option<String>,
    /// Values written successfully, in order.
    written: Vec<String>,
}

thread_local! {
    static JOURNAL: RefCell<Option<Vec<Entry>>> = const { RefCell::new(None) };
}

/// An open journal; dropping it without [`Journal::rollback`] keeps the changes.
pub(crate) struct Journal(());

/// Start recording writes on this thread.
pub(crate) fn begin() -> Journal {
    JOURNAL.with(|j| *j.borrow_mut() = Some(Vec::new()));
    Journal(())
}

impl Drop for Journal {
    fn drop(&mut self) {
        JOURNAL.with(|j| *j.borrow_mut() = None);
    }
}

/// Called before writing `path`: remember its content the first time.
pub(crate) fn before_write(path: &Path) {
    JOURNAL.with(|j| {
        if let Some(entries) = j.borrow_mut().as_mut() {
            if !entries.iter().any(|e| e.path == path) {
                let old = std::fs::read_to_string(path).ok();
                entries.push(Entry {
                    path: path.to_path_buf(),
                    old,
                    written: Vec::new(),
                });
            }
        }
    });
}

/// Called after a successful write of `value` to `path`.
pub(crate) fn wrote(path: &Path, value: &str) {
    JOURNAL.with(|j| {
        if let Some(entries) = j.borrow_mut().as_mut() {
            if let Some(e) = entries.iter_mut().find(|e| e.path == path) {
                e.written.push(value.to_string());
            }
        }
    });
}

/// For keyed files: the value that removes `key`'s line (None: not keyed).
fn reset_line(file: &str, key: &str) -> Option<String> {
    let rest = match file {
        "blkio.throttle.read_bps_device"
        | "blkio.throttle.write_bps_device"
        | "blkio.throttle.read_iops_device"
        | "blkio.throttle.write_iops_device"
        | "blkio.weight_device"
        | "blkio.bfq.weight_device"
        | "blkio.leaf_weight_device"
        | "net_prio.ifpriomap" => "0",
        "io.max" => "rbps=max wbps=max riops=max wiops=max",
        "io.weight" | "io.bfq.weight" => "default",
        "rdma.max" => "hca_handle=max hca_object=max",
        _ => return None,
    };
    Some(format!("{key} {rest}"))
}

fn first_token(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// The writes that put `e` back as it was.
fn undo_writes(e: &Entry) -> Vec<String> {
    let Some(old) = &e.old else {
        return Vec::new();
    };
    let file = e
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file == "memory.oom_control" {
        // Reads "oom_kill_disable 0\nunder_oom 0..."; takes "0" or "1".
        let v = old
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill_disable "))
            .unwrap_or("0");
        return vec![v.trim().to_string()];
    }
    let mut keys: Vec<&str> = e.written.iter().map(|w| first_token(w)).collect();
    keys.dedup();
    match keys.first().and_then(|k| reset_line(&file, k)) {
        None => vec![old.trim().to_string()],
        Some(_) => keys
            .iter()
            .filter_map(|k| {
                old.lines()
                    .find(|l| first_token(l) == *k)
                    .map(|l| l.trim().to_string())
                    .or_else(|| reset_line(&file, k))
            })
            .collect(),
    }
}

impl Journal {
    /// Put back every file written since [`begin`], newest first: the number
    /// of files restored, or what could not be restored.
    pub(crate) fn rollback(self) -> Result<usize, Vec<String>> {
        let entries = JOURNAL.with(|j| j.borrow_mut().take()).unwrap_or_default();
        let changed: Vec<&Entry> = entries
            .iter()
            .rev()
            .filter(|e| !e.written.is_empty())
            .collect();
        let mut todo: Vec<(PathBuf, String)> = Vec::new();
        let mut failed = Vec::new();
        for e in &changed {
            if e.old.is_none() {
                failed.push(format!(
                    "{} (its old value could not be read)",
                    e.path.display()
                ));
            }
            todo.extend(undo_writes(e).into_iter().map(|v| (e.path.clone(), v)));
        }
        // A second pass settles pairs with an ordering constraint.
        let mut again = Vec::new();
        for (path, v) in todo {
            if fsutil::write_raw(&path, &v).is_err() {
                again.push((path, v));
            }
        }
        for (path, v) in again {
            if let Err(err) = fsutil::write_raw(&path, &v) {
                failed.push(format!("{} <- {v:?}: {err}", path.display()));
            }
        }
        if failed.is_empty() {
            Ok(changed.len())
        } else {
            Err(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, old: &str, written: &[&str]) -> Entry {
        Entry {
            path: PathBuf::from("/x").join(file),
            old: Some(old.to_string()),
            written: written.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn undo_values() {
        assert_eq!(undo_writes(&entry("pids.max", "max\n", &["5"])), ["max"]);
        assert_eq!(
            undo_writes(&entry(
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\n",
                &["1"]
            )),
            ["0"]
        );
        assert_eq!(
            undo_writes(&entry(
                "io.max",
                "8:0 rbps=10 wbps=max riops=max wiops=max\n",
                &["8:0 wbps=5", "8:16 rbps=1"]
            )),
            [
                "8:0 rbps=10 wbps=max riops=max wiops=max",
                "8:16 rbps=max wbps=max riops=max wiops=max"
            ]
        );
        assert_eq!(
            undo_writes(&entry("blkio.throttle.read_bps_device", "", &["8:0 1000"])),
            ["8:0 0"]
        );
        assert_eq!(
            undo_writes(&entry("io.weight", "default 100\n", &["default 500"])),
            ["default 100"]
        );
    }
}
