//! Which cgroup hierarchies are mounted where (from mountinfo), and where the
//! calling process sits in each (from /proc/self/cgroup).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CgroupError;

/// The cgroup setup of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupKind {
    /// Only cgroup v1 hierarchies.
    V1,
    /// Only the cgroup2 unified hierarchy, mounted at the cgroup root.
    V2,
    /// v1 controller hierarchies plus a cgroup2 hierarchy (usually at `unified`).
    Hybrid,
}

impl std::fmt::Display for CgroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupKind::V1 => "cgroup v1",
            CgroupKind::V2 => "cgroup v2",
            CgroupKind::Hybrid => "cgroup hybrid (v1 + v2)",
        })
    }
}

/// Controllers a v1 hierarchy may carry (other mount options are ignored).
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Mount {
    /// Controllers, sorted; a named hierarchy appears as `name=systemd`.
    pub controllers: Vec<String>,
    pub mountpoint: PathBuf,
    /// The mount's root inside the hierarchy (usually `/`).
    pub root: String,
}

/// The cgroup2 mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V2Mount {
    pub mountpoint: PathBuf,
    pub root: String,
}

/// What is mounted under the cgroup root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kind: CgroupKind,
    pub v1: Vec<V1Mount>,
    pub unified: Option<V2Mount>,
}

/// Parse mountinfo text, keeping the cgroup mounts at or below `cgroup_root`.
pub(crate) fn parse_mountinfo(
    text: &str,
    cgroup_root: &Path,
    source: &Path,
) -> Result<Layout, CgroupError> {
    let mut v1: Vec<V1Mount> = Vec::new();
    let mut unified: Option<V2Mount> = None;
    for m in crate::utils::parse_mountinfo(text) {
        let fstype = m.fstype.as_str();
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let root = m.root.clone();
        let mountpoint = PathBuf::from(&m.mount_point);
        if !mountpoint.starts_with(cgroup_root) {
            continue;
        }
        if fstype == "cgroup2" {
            if unified.is_none() {
                unified = Some(V2Mount { mountpoint, root });
            }
            continue;
        }
        let superopts = m.super_options.as_str();
        let mut controllers: Vec<String> = superopts
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() {
            continue;
        }
        controllers.sort();
        if v1.iter().any(|m| m.controllers == controllers) {
            continue; // the same hierarchy mounted twice: keep the first
        }
        v1.push(V1Mount {
            controllers,
            mountpoint,
            root,
        });
    }
    let kind = match (&unified, v1.is_empty()) {
        (Some(_), true) => CgroupKind::V2,
        (Some(_), false) => CgroupKind::Hybrid,
        (None, false) => CgroupKind::V1,
        (None, true) => {
            return Err(CgroupError::State {
                op: "detect",
                path: source.to_path_buf(),
                reason: format!(
                    "no cgroup or cgroup2 filesystem is mounted under {}",
                    cgroup_root.display()
                ),
            });
        }
    };
    Ok(Layout { kind, v1, unified })
}

/// One line of /proc/<pid>/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelfCgroup {
    /// Sorted controllers; empty for the v2 line `0::/path`.
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parse /proc/self/cgroup text.
pub(crate) fn parse_self_cgroup(text: &str) -> Vec<SelfCgroup> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let mut controllers: Vec<String> = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        controllers.sort();
        out.push(SelfCgroup {
            controllers,
            path: path.to_string(),
        });
    }
    out
}

/// Check a cgroupsPath: no `..`, no `.`, not empty once resolved.
pub(crate) fn validate_cgroups_path(p: &Path) -> Result<(), CgroupError> {
    for c in p.components() {
        match c {
            Component::RootDir | Component::Normal(_) => {}
            _ => {
                return Err(CgroupError::Invalid {
                    field: "linux.cgroupsPath".to_string(),
                    reason: format!("{:?} must not contain '.' or '..' components", p),
                });
            }
        }
    }
    if p.components().all(|c| c == Component::RootDir) {
        return Err(CgroupError::Invalid {
            field: "linux.cgroupsPath".to_string(),
            reason: format!(
                "{:?} names the root cgroup; a container needs its own cgroup",
                p
            ),
        });
    }
    Ok(())
}

/// Strip the leading `/` so a cgroup path can be joined under a directory.
pub(crate) fn rel(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Where a relative cgroupsPath starts from: the caller's own cgroup (v1
/// and hybrid hosts), or its parent (a cgroup-v2-only host, as runc's fs2
/// driver: see `Cgroup::layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelativeTo {
    Own,
    Parent,
}

/// The directory of cgroup `cgroup_path` in a hierarchy mounted at `mountpoint`.
///
/// `cgroup_path` absolute: relative to the mount point. Relative: relative to
/// `own` (the caller's cgroup in that hierarchy, as /proc/self/cgroup shows it)
/// or its parent (`from`), minus the mount's root when the mount does not
/// show the whole hierarchy; never above that root (the parent of the
/// mount's root is not visible: the root itself is taken).
pub(crate) fn resolve(
    mountpoint: &Path,
    mount_root: &str,
    own: Option<&str>,
    from: RelativeTo,
    cgroup_path: &Path,
) -> PathBuf {
    if cgroup_path.is_absolute() {
        return mountpoint.join(rel(cgroup_path));
    }
    let own = own.unwrap_or("/");
    let own = Path::new(own);
    let mut own = own.strip_prefix(mount_root).unwrap_or(own);
    if from == RelativeTo::Parent {
        own = own.parent().unwrap_or(own);
    }
    mountpoint.join(rel(own)).join(rel(cgroup_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V1: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio
32 25 0:29 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
99 80 0:27 / /var/lib/ctr/rootfs/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";

    const V2: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn root() -> &'static Path {
        Path::new("/sys/fs/cgroup")
    }

    #[test]
    fn detects_hybrid() {
        let l = parse_mountinfo(HYBRID, root(), Path::new("mi")).unwrap();
        assert_eq!(l.kind, CgroupKind::Hybrid);
        assert_eq!(l.v1.len(), 9);
        assert_eq!(
            l.unified.unwrap().mountpoint,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert!(
            l.v1.iter()
                .any(|m| m.controllers == vec!["name=systemd".to_string()])
        );
    }

    #[test]
    fn detects_v1_and_ignores_mounts_outside_root() {
        let l = parse_mountinfo(V1, root(), Path::new("mi")).unwrap();
        assert_eq!(l.kind, CgroupKind::V1);
        assert!(l.unified.is_none());
        let cpu =
            l.v1.iter()
                .find(|m| m.controllers.contains(&"cpu".to_string()))
                .unwrap();
        assert_eq!(
            cpu.controllers,
            vec!["cpu".to_string(), "cpuacct".to_string()]
        );
        assert_eq!(cpu.mountpoint, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.v1.len(), 5);
        assert!(
            l.v1.iter()
                .all(|m| m.mountpoint.starts_with("/sys/fs/cgroup"))
        );
    }

    #[test]
    fn detects_v2() {
        let l = parse_mountinfo(V2, root(), Path::new("mi")).unwrap();
        assert_eq!(l.kind, CgroupKind::V2);
        assert!(l.v1.is_empty());
        assert_eq!(
            l.unified.unwrap().mountpoint,
            PathBuf::from("/sys/fs/cgroup")
        );
    }

    #[test]
    fn no_cgroups_is_an_error() {
        let e = parse_mountinfo(
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
            root(),
            Path::new("mi"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no cgroup"), "{e}");
    }

    #[test]
    fn unescapes_mountpoints() {
        assert_eq!(crate::utils::unescape(r"/a\040b"), "/a b");
        assert_eq!(crate::utils::unescape(r"/a\\"), r"/a\\");
    }

    #[test]
    fn self_cgroup_lines() {
        let v = parse_self_cgroup("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(v[0].controllers, vec!["memory".to_string()]);
        assert_eq!(v[0].path, "/a/b");
        assert_eq!(
            v[1].controllers,
            vec!["cpu".to_string(), "cpuacct".to_string()]
        );
        assert!(v[2].controllers.is_empty());
        assert_eq!(v[2].path, "/user.slice");
    }

    #[test]
    fn resolves_paths() {
        use RelativeTo::{Own, Parent};
        let mp = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            resolve(mp, "/", Some("/x/y"), Own, Path::new("/cuddy/c1")),
            PathBuf::from("/sys/fs/cgroup/memory/cuddy/c1")
        );
        assert_eq!(
            resolve(mp, "/", Some("/x/y"), Own, Path::new("c1")),
            PathBuf::from("/sys/fs/cgroup/memory/x/y/c1")
        );
        // v2 only: from the parent of the caller's cgroup; the root's
        // parent is the root.
        let v2 = Path::new("/sys/fs/cgroup");
        assert_eq!(
            resolve(v2, "/", Some("/x/y"), Parent, Path::new("c1")),
            PathBuf::from("/sys/fs/cgroup/x/c1")
        );
        assert_eq!(
            resolve(v2, "/", Some("/x/y"), Parent, Path::new("/a/c1")),
            PathBuf::from("/sys/fs/cgroup/a/c1")
        );
        assert_eq!(
            resolve(v2, "/", Some("/"), Parent, Path::new("c1")),
            PathBuf::from("/sys/fs/cgroup/c1")
        );
        // The mount shows /x only: the caller at its root stays there.
        assert_eq!(
            resolve(v2, "/x", Some("/x"), Parent, Path::new("c1")),
            PathBuf::from("/sys/fs/cgroup/c1")
        );
        assert_eq!(
            resolve(v2, "/x", Some("/x/y/z"), Parent, Path::new("c1")),
            PathBuf::from("/sys/fs/cgroup/y/c1")
        );
        // A mount showing only /x of the hierarchy.
        assert_eq!(
            resolve(mp, "/x", Some("/x/y"), Own, Path::new("a/c1")),
            PathBuf::from("/sys/fs/cgroup/memory/y/a/c1")
        );
        assert!(validate_cgroups_path(Path::new("/a/../b")).is_err());
        assert!(validate_cgroups_path(Path::new("/")).is_err());
        assert!(validate_cgroups_path(Path::new("a/b")).is_ok());
    }
}
