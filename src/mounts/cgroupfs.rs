//! A mount of type "cgroup" in config.json: the container's view of
//! /sys/fs/cgroup, as runc builds it.
//!
//! - cgroup v2 host: a cgroup2 mount (inside a cgroup namespace it shows the
//!   namespace root, i.e. the container's own cgroup); without a cgroup
//!   namespace, a bind mount of the container's cgroup directory.
//! - cgroup v1 / hybrid host: a tmpfs holding one directory per hierarchy,
//!   each a fresh cgroup mount (with a cgroup namespace) or a bind mount of the
//!   container's cgroup in that hierarchy.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use super::flags::MountOptions;
use super::secure::{InRoot, Kind, fd_path};
use super::{MountError, sys};
use crate::utils::{MountInfo, parse_mountinfo};

/// The subsystems (and `name=` hierarchies) in a v1 mount's super options.
fn subsystems(super_options: &str) -> Vec<&str> {
    super_options
        .split(',')
        .filter(|o| {
            !matches!(
                *o,
                "rw" | "ro" | "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode"
            ) && !o.starts_with("release_agent=")
        })
        .collect()
}

/// The container's own path in the hierarchy whose controllers are `subs`
/// (`/proc/self/cgroup`; "" for the v2 hierarchy).
fn own_path<'a>(self_cgroup: &'a str, subs: Option<&[&str]>) -> Option<&'a str> {
    self_cgroup.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let _id = it.next()?;
        let ctrls = it.next()?;
        let path = it.next()?;
        let ok = match subs {
            None => ctrls.is_empty(),
            Some(s) => !ctrls.is_empty() && ctrls.split(',').all(|c| s.contains(&c)),
        };
        ok.then_some(path)
    })
}

/// The mount visible at `base` (the last one mounted there: a later mount
/// at the same point hides the earlier), if `base` is a mount point.
fn visible_at<'a>(mounts: &'a [MountInfo], base: &Path) -> Option<&'a MountInfo> {
    mounts.iter().rfind(|m| Path::new(&m.mount_point) == base)
}

/// The cgroup hierarchies visible under `base` (v1 or hybrid): the cgroup
/// mounts on the visible mount of `base` (or stacked on such a one at the
/// same point), one per mount point, the last.
/// A runtime inside a container or a systemd-nspawn-like tier sees stacked
/// sets (the outer one's mounts hidden under the inner tmpfs): mounting a
/// hierarchy twice at one point fails with EBUSY.
fn visible_hierarchies<'a>(mounts: &'a [MountInfo], base: &Path) -> Vec<&'a MountInfo> {
    let top = visible_at(mounts, base).map(|m| m.id);
    let mut out: Vec<&MountInfo> = Vec::new();
    for m in mounts.iter().filter(|m| {
        (m.fstype == "cgroup" || m.fstype == "cgroup2")
            && Path::new(&m.mount_point).parent() == Some(base)
    }) {
        let on_top = top.is_none_or(|t| {
            m.parent == t
                || out
                    .iter()
                    .any(|o| o.id == m.parent && o.mount_point == m.mount_point)
        });
        if on_top {
            out.retain(|o| o.mount_point != m.mount_point);
            out.push(m);
        }
    }
    out
}

fn host_dir(m: &MountInfo, own: &str) -> PathBuf {
    // A hierarchy mounted from a sub-cgroup (root != "/") shows paths relative to it.
    let rel = Path::new(own)
        .strip_prefix(&m.root)
        .unwrap_or(Path::new(own));
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    Path::new(&m.mount_point).join(rel)
}

fn apply_flags(target: &str, shown: &Path, flags: MsFlags) -> Result<(), MountError> {
    let f = flags
        & (MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RELATIME
            | MsFlags::MS_NOATIME
            | MsFlags::MS_STRICTATIME);
    if f.is_empty() {
        return Ok(());
    }
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | f,
        None::<&str>,
    )
    .map_err(sys("remount cgroup", shown))
}

/// Mounts the cgroup filesystem view at `dest` inside the root.
pub fn mount_cgroupfs(
    root: &InRoot,
    dest: &Path,
    opts: &MountOptions,
    mountinfo: &str,
    self_cgroup: &str,
    cgroupns: bool,
) -> Result<(), MountError> {
    let shown = root.path.join(dest.strip_prefix("/").unwrap_or(dest));
    let mounts = parse_mountinfo(mountinfo);
    let base = Path::new("/sys/fs/cgroup");
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let target = root.ensure(dest, Kind::Dir)?;
    let tpath = fd_path(&target);

    if let Some(v2) = visible_at(&mounts, base).filter(|m| m.fstype == "cgroup2") {
        if cgroupns {
            return mount(
                Some("cgroup"),
                tpath.as_str(),
                Some("cgroup2"),
                flags,
                None::<&str>,
            )
            .map_err(sys("mount cgroup2", shown));
        }
        let own = own_path(self_cgroup, None).unwrap_or("/");
        let src = host_dir(v2, own);
        mount(
            Some(&src),
            tpath.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind cgroup2", &shown))?;
        // Remount through a fresh fd: the one opened before the bind mount
        // is the directory under it, not the mount's root (EINVAL).
        let bound = root.open_mounted(dest, &target)?;
        return apply_flags(&fd_path(&bound), &shown, flags);
    }

    // v1 or hybrid: a tmpfs with one directory per hierarchy.
    mount(
        Some("cgroup"),
        tpath.as_str(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(sys("mount tmpfs for cgroups", &shown))?;
    let target = root.open_mounted(dest, &target)?;
    for m in visible_hierarchies(&mounts, base) {
        let name = Path::new(&m.mount_point)
            .file_name()
            .map(|n| n.to_owned())
            .unwrap_or_default();
        let sub_rel = dest.join(&name);
        let sub_shown = shown.join(&name);
        let dir = root.ensure(&sub_rel, Kind::Dir)?;
        let dpath = fd_path(&dir);
        let (v1subs, own) = if m.fstype == "cgroup2" {
            (None, own_path(self_cgroup, None))
        } else {
            let subs = subsystems(&m.super_options);
            let own = own_path(self_cgroup, Some(&subs));
            (Some(subs), own)
        };
        if cgroupns {
            match &v1subs {
                None => mount(
                    Some("cgroup"),
                    dpath.as_str(),
                    Some("cgroup2"),
                    flags,
                    None::<&str>,
                ),
                Some(subs) => mount(
                    Some("cgroup"),
                    dpath.as_str(),
                    Some("cgroup"),
                    flags,
                    Some(subs.join(",").as_str()),
                ),
            }
            .map_err(sys("mount cgroup", &sub_shown))?;
        } else {
            let src = host_dir(m, own.unwrap_or("/"));
            mount(
                Some(&src),
                dpath.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind cgroup", &sub_shown))?;
            let bound = root.open_mounted(&sub_rel, &dir)?;
            apply_flags(&fd_path(&bound), &sub_shown, flags)?;
        }
        // Co-mounted controllers ("cpu,cpuacct") get one symlink per name.
        let n = name.to_string_lossy();
        if n.contains(',') {
            for s in n.split(',') {
                let _ = std::os::unix::fs::symlink(&*n, Path::new(&fd_path(&target)).join(s));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | flags
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(sys("remount cgroup tmpfs read-only", &shown))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/systemd rw shared:16 - cgroup cgroup rw,xattr,name=systemd
40 1 0:50 / /mnt/with\\040space rw - tmpfs none rw
";
    const SELF: &str =
        "4:memory:/cuddy/c1\n3:cpu,cpuacct:/cuddy/c1\n1:name=systemd:/cuddy/c1\n0::/cuddy/c1\n";

    #[test]
    fn parses_and_unescapes() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 6);
        assert_eq!(m[5].mount_point, "/mnt/with space");
        assert_eq!(m[2].fstype, "cgroup");
        assert_eq!(subsystems(&m[4].super_options), vec!["name=systemd"]);
    }

    /// A runtime in a nested environment (here: the systemd tier, which
    /// mounts its own hierarchies inside a cgroup namespace over the
    /// outer set): only the top set counts, once per mount point.
    #[test]
    fn only_the_visible_hierarchies_count() {
        const STACKED: &str = "\
88 87 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
89 88 0:29 /.. /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
90 88 0:30 /.. /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
91 88 0:31 /.. /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio
99 88 0:38 /.. /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
101 100 0:41 / /sys/fs/cgroup ro - tmpfs cgroup ro,mode=755
102 101 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
105 101 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
111 101 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
112 102 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        let m = parse_mountinfo(STACKED);
        let base = Path::new("/sys/fs/cgroup");
        let ids: Vec<u32> = visible_hierarchies(&m, base).iter().map(|m| m.id).collect();
        // blkio (91) is hidden with the outer tmpfs; 112, stacked on 102 at
        // the same point, hides it.
        assert_eq!(ids, [105, 111, 112]);
        assert_eq!(visible_at(&m, base).map(|m| m.id), Some(101));
        let plain: Vec<u32> = visible_hierarchies(&parse_mountinfo(HYBRID), base)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(plain, [31, 34, 35, 36]);
    }

    #[test]
    fn finds_own_paths() {
        assert_eq!(own_path(SELF, Some(&["cpu", "cpuacct"])), Some("/cuddy/c1"));
        assert_eq!(own_path(SELF, Some(&["name=systemd"])), Some("/cuddy/c1"));
        assert_eq!(own_path(SELF, None), Some("/cuddy/c1"));
        assert_eq!(own_path(SELF, Some(&["pids"])), None);
        let m = parse_mountinfo(HYBRID);
        assert_eq!(
            host_dir(&m[3], "/cuddy/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/cuddy/c1")
        );
    }
}
