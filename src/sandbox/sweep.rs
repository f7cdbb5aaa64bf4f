//! What a killed sandbox leaves, and how the next one removes it.
//!
//! A sandbox is named after its owner, the process that made it (the helper,
//! or `cuddy sandbox run`): `sbx-PID-START`, START being the owner's start
//! time (/proc/PID/stat field 22), so a reused pid is never taken for the
//! owner. Its bundle is `<state root>/.sandbox/<name>/` and its container
//! `<state root>/<name>/`. The mounts (tmpfs, overlay) live only in the
//! owner's private mount namespace and vanish with it and the container;
//! the rest (container state, cgroup, network, bundle directory) is removed
//! by [`sweep`] once the owner is dead: each helper sweeps its state root
//! before it makes its own sandbox, and `cuddy sandbox prune` sweeps on
//! demand.

use std::path::{Path, PathBuf};

use crate::container::{self, Root};
use crate::utils::proc_start_time;

/// The bundles' directory under the state root.
pub const BUNDLES: &str = ".sandbox";

/// The name of the sandbox owned by process `pid` started at `start`.
pub fn name(pid: i32, start: u64) -> String {
    format!("sbx-{pid}-{start}")
}

/// The name of a sandbox owned by this process.
pub fn own_name() -> String {
    let pid = std::process::id() as i32;
    let start = proc_start_time(Path::new("/proc"), pid).map_or(0, |(s, _)| s);
    name(pid, start)
}

/// (pid, start) of a sandbox name.
pub fn parse(name: &str) -> Option<(i32, u64)> {
    let (pid, start) = name.strip_prefix("sbx-")?.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Is the owner of `name` alive (same pid, same start time, not a zombie)?
pub fn owner_alive(name: &str) -> bool {
    let Some((pid, start)) = parse(name) else {
        return true; // not a sandbox name: never touched
    };
    matches!(proc_start_time(Path::new("/proc"), pid),
        Some((s, st)) if s == start && st != 'Z' && st != 'X')
}

/// The bundle directory of sandbox `name`.
pub fn bundle_dir(state_root: &Path, name: &str) -> PathBuf {
    state_root.join(BUNDLES).join(name)
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| parse(n).is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every sandbox of `state_root` whose owner is dead: its
/// container (`delete --force`: processes, cgroup, network, state) and its
/// bundle directory. Returns the names removed; failures are logged and
/// left for the next sweep.
pub fn sweep(state_root: &Path) -> Vec<String> {
    let mut names = names_in(state_root);
    names.extend(names_in(&state_root.join(BUNDLES)));
    names.sort();
    names.dedup();
    let root = Root::new(state_root.to_path_buf());
    let mut removed = Vec::new();
    for n in names.into_iter().filter(|n| !owner_alive(n)) {
        if let Err(e) = container::delete(&root, &n, true) {
            tracing::warn!("sandbox sweep: delete {n}: {e}");
            continue;
        }
        let b = bundle_dir(state_root, &n);
        match std::fs::remove_dir_all(&b) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("sandbox sweep: remove {}: {e}", b.display());
            }
            _ => removed.push(n),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner() {
        assert_eq!(parse(&name(42, 7)), Some((42, 7)));
        assert_eq!(parse("sbx-x-1"), None);
        assert_eq!(parse("other"), None);
        assert!(owner_alive(&own_name()));
        assert!(owner_alive("not-a-sandbox"));
        // pid 1 exists, but was not started at tick 1.
        assert!(!owner_alive(&name(1, 1)));
    }

    #[test]
    fn sweep_removes_only_bundles_of_dead_owners() {
        let d = tempfile::tempdir().unwrap();
        let dead = bundle_dir(d.path(), &name(1, 1));
        let alive = bundle_dir(d.path(), &own_name());
        std::fs::create_dir_all(dead.join("rootfs")).unwrap();
        std::fs::create_dir_all(&alive).unwrap();
        assert_eq!(sweep(d.path()), vec![name(1, 1)]);
        assert!(!dead.exists());
        assert!(alive.exists());
    }
}
