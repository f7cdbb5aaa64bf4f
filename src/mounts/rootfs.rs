//! The order of operations that turns a bundle's rootfs into the container's "/".

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};
use oci_spec::runtime::{Mount, Spec};

use super::cgroupfs::mount_cgroupfs;
use super::devices::{self, Dev};
use super::flags::{MountOptions, parse_options};
use super::procsys;
use super::secure::{InRoot, Kind, fd_path};
use super::sources::MountSources;
use super::{MountError, sys};

/// What the rootfs set-up needs besides the spec.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub no_pivot: bool,
    /// The container runs in a user namespace: device nodes are bind mounted
    /// from the host because mknod is not allowed there.
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// Own mount namespace; else the caller's is shared (`shared_ns.rs`).
    pub mountns: bool,
    /// Host /proc/self/mountinfo and /proc/self/cgroup, read by the caller
    /// through its trusted procfs fd.
    pub mountinfo: String,
    pub self_cgroup: String,
    /// Bind sources opened by the runtime (`sources`), by mount index.
    pub sources: &'a MountSources,
}

fn propagation_flags(p: &str) -> MsFlags {
    let base = match p.trim_start_matches('r') {
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "private" => MsFlags::MS_PRIVATE,
        _ => MsFlags::MS_UNBINDABLE,
    };
    if p.starts_with('r') {
        base | MsFlags::MS_REC
    } else {
        base
    }
}

/// Remounts `target` with `flags`; inside a user namespace some flags of the
/// existing mount are locked (the kernel refuses to clear them: EPERM), so on
/// EPERM the mount's current nosuid/nodev/noexec/atime flags are kept.
fn remount(target: &str, shown: &Path, flags: MsFlags, cleared: MsFlags) -> Result<(), MountError> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags,
        None::<&str>,
    ) {
        Err(Errno::EPERM) => {
            let st = statvfs(target).map_err(sys("statvfs", shown))?;
            let mut f = flags;
            for (fs, ms) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
                (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            ] {
                if st.flags().contains(fs) && !(cleared.contains(ms) && ms == MsFlags::MS_RDONLY) {
                    f |= ms;
                }
            }
            mount(None::<&str>, target, None::<&str>, base | f, None::<&str>)
                .map_err(sys("remount", shown))
        }
        r => r.map_err(sys("remount", shown)),
    }
}

/// mount_setattr(2) with AT_RECURSIVE for the `r*` options (rro, rnosuid, ...).
fn setattr_recursive(fd: &OwnedFd, shown: &Path, set: u64, clr: u64) -> Result<(), MountError> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: valid fd, NUL-terminated empty path with AT_EMPTY_PATH, and a
    // properly sized mount_attr that the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(sys("mount_setattr", shown)(Errno::last()));
    }
    Ok(())
}

fn mount_one(cfg: &RootfsConfig, root: &InRoot, index: usize, m: &Mount) -> Result<(), MountError> {
    let dest = m.destination();
    let shown = root.path.join(dest.strip_prefix("/").unwrap_or(dest));
    let invalid = |reason: String| MountError::Invalid {
        index,
        dest: dest.clone(),
        reason,
    };
    let opts: MountOptions =
        parse_options(m.options().as_deref().unwrap_or(&[])).map_err(invalid)?;
    let typ = m.typ().as_deref().unwrap_or("");
    let src_fd = cfg.sources.take(index);
    procsys::check_dest(root, m, typ, cfg.bundle, src_fd.as_ref()).map_err(invalid)?;
    let label = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().clone());
    if opts.tmpcopyup {
        if typ != "tmpfs" || opts.is_bind() {
            return Err(invalid(format!(
                "option \"tmpcopyup\" is only for tmpfs mounts, not {typ:?}"
            )));
        }
        let target = root.ensure(dest, Kind::Dir)?;
        super::copyup::mount_tmpfs_copy(&target, &shown, &opts, label.as_deref())?;
        let target = root.open_mounted(dest, &target)?;
        return finish_mount(&target, &shown, &opts);
    }
    if typ == "cgroup" {
        return mount_cgroupfs(
            root,
            dest,
            &opts,
            &cfg.mountinfo,
            &cfg.self_cgroup,
            cfg.cgroupns,
        );
    }
    let bind = opts.is_bind() || typ == "bind";
    let mount_err = |source| MountError::Mount {
        index,
        typ: typ.to_string(),
        dest: dest.clone(),
        options: m.options().clone().unwrap_or_default(),
        source,
    };

    if bind {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| invalid("a bind mount needs a source".into()))?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            cfg.bundle.join(src)
        };
        let idmapped = opts.idmap.is_some() || m.uid_mappings().is_some();
        let by_fd = |fd: &OwnedFd| {
            nix::sys::stat::fstat(fd).map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        };
        let is_dir = match (std::fs::metadata(&src), &src_fd) {
            (_, Some(fd)) if idmapped => by_fd(fd),
            (Ok(m), _) => Ok(m.is_dir()),
            (Err(_), Some(fd)) => by_fd(fd),
            (Err(e), None) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
        }
        .map_err(|e| invalid(format!("source {}: {e}", src.display())))?;
        let target = root.ensure(dest, if is_dir { Kind::Dir } else { Kind::File })?;
        // By path first, in the container's namespaces: the copied mounts
        // keep the locks the kernel put on them when the user namespace
        // took the mount namespace (MNT_LOCKED, locked ro/nosuid/...),
        // which a tree attached from the runtime's fd would not have.
        // The fd (`sources`) when the container's root cannot reach the
        // source, and always for id-mapped mounts.
        let by_path = || {
            mount(
                Some(&src),
                fd_path(&target).as_str(),
                None::<&str>,
                MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC),
                None::<&str>,
            )
        };
        match &src_fd {
            Some(fd) if idmapped => super::detached::move_onto(fd, &target),
            Some(fd) => match by_path() {
                Err(Errno::EACCES | Errno::EPERM) => super::detached::move_onto(fd, &target),
                r => r,
            },
            None => by_path(),
        }
        .map_err(mount_err)?;
        drop(src_fd);
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        let target = root.open_mounted(dest, &target)?;
        if !extra.is_empty() {
            remount(&fd_path(&target), &shown, extra, opts.cleared)?;
        }
        return finish_mount(&target, &shown, &opts);
    }

    let target = root.ensure(dest, Kind::Dir)?;
    let tpath = fd_path(&target);
    let source = m
        .source()
        .as_ref()
        .map(|s| s.as_path())
        .unwrap_or(Path::new(typ));
    let data = with_mount_label(opts.data_string(), typ, label.as_deref());
    let flags = opts.flags & !MsFlags::MS_REC;
    match mount(
        Some(source),
        tpath.as_str(),
        Some(typ),
        flags,
        data.as_deref(),
    ) {
        Ok(()) => {}
        // Without a network namespace of its own, a user namespace may not
        // mount sysfs: use the host's, as runc does.
        Err(Errno::EPERM) if typ == "sysfs" && cfg.userns => {
            mount(
                Some("/sys"),
                tpath.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(mount_err)?;
            let t = root.open_mounted(dest, &target)?;
            remount(&fd_path(&t), &shown, flags, opts.cleared)?;
        }
        Err(e) => return Err(mount_err(e)),
    }
    let target = root.open_mounted(dest, &target)?;
    finish_mount(&target, &shown, &opts)
}

fn finish_mount(target: &OwnedFd, shown: &Path, opts: &MountOptions) -> Result<(), MountError> {
    for p in &opts.propagation {
        mount(
            None::<&str>,
            fd_path(target).as_str(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .map_err(sys("set propagation", shown))?;
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        setattr_recursive(target, shown, opts.rec_set, opts.rec_clr)?;
    }
    Ok(())
}

/// Mounts everything into the rootfs (still seen at its host path) and
/// creates devices and the process's cwd. Returns the open root.
pub fn prepare_rootfs(cfg: &RootfsConfig) -> Result<InRoot, MountError> {
    let linux = cfg.spec.linux().as_ref();
    let prop = linux.and_then(|l| l.rootfs_propagation().as_deref());
    // Stop our mounts from propagating to the host (and the host's unmounts
    // from reaching us in a way that breaks pivot_root): make every mount in
    // this new namespace a slave, or private when asked for. "unbindable"
    // is private for now: the kernel refuses to bind an unbindable mount
    // (EINVAL), and the rootfs is bound onto itself just below;
    // `finish_rootfs` makes "/" unbindable after pivot_root.
    let initial = match prop {
        Some(p) if p.ends_with("private") || p.ends_with("unbindable") => {
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        }
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    if cfg.mountns {
        mount(None::<&str>, "/", None::<&str>, initial, None::<&str>)
            .map_err(sys("make / slave", "/"))?;
    }
    // pivot_root(2) needs new_root to be a mount point: bind the rootfs onto itself.
    mount(
        Some(cfg.rootfs),
        cfg.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("bind rootfs", cfg.rootfs))?;
    let fd = nix::fcntl::open(
        cfg.rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open rootfs", cfg.rootfs))?;
    let root = InRoot {
        fd,
        path: cfg.rootfs.to_path_buf(),
    };

    let mounts = cfg.spec.mounts().as_deref().unwrap_or(&[]);
    for (i, m) in mounts.iter().enumerate() {
        mount_one(cfg, &root, i, m)?;
    }

    // Devices: unless /dev is bind mounted from the host, the container gets
    // the default set (config-linux.md "Default Devices") and the symlinks.
    let dev_bound = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    let mut devs: Vec<Dev> = if dev_bound {
        Vec::new()
    } else {
        devices::default_devices()
    };
    for (i, d) in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let dev = devices::from_spec(d).map_err(|reason| MountError::Other {
            what: format!("linux.devices[{i}] ({})", d.path().display()),
            reason,
        })?;
        devs.retain(|x| x.path != dev.path);
        devs.push(dev);
    }
    for d in &devs {
        devices::create(&root, d, cfg.userns)?;
    }
    if !dev_bound {
        devices::symlinks(&root)?;
    }

    // The process's cwd is created if missing (as runc does).
    if let Some(p) = cfg.spec.process() {
        root.ensure(p.cwd(), Kind::Dir)
            .map_err(|e| MountError::Other {
                what: format!("process.cwd {}", p.cwd().display()),
                reason: e.to_string(),
            })?;
    }
    Ok(root)
}

/// Opens a path listed in maskedPaths/readonlyPaths inside the root; a
/// missing one is skipped (None), as the spec allows.
fn open_listed(
    root: &InRoot,
    p: &str,
    op: &'static str,
) -> Result<Option<(PathBuf, PathBuf, OwnedFd)>, MountError> {
    let rel = PathBuf::from(p);
    let shown = root.path.join(rel.strip_prefix("/").unwrap_or(&rel));
    match root.open(&rel) {
        Ok(fd) => Ok(Some((rel, shown, fd))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(sys(op, shown)(e)),
    }
}

/// The host's /dev/null (this runs before pivot_root, in the container's
/// mount namespace), opened O_PATH|O_NOFOLLOW and checked to be the
/// character device 1:3 before anything is masked with it. runc
/// CVE-2025-31133: a runtime that masks with a `/dev/null` that an attacker
/// replaced (by a symlink to /proc/sys/kernel/core_pattern, say) bind mounts
/// that file writable into the container instead of masking. Masking is
/// done from this fd, never by path.
fn verified_dev_null() -> Result<OwnedFd, MountError> {
    let null = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open", "/dev/null"))?;
    let st = nix::sys::stat::fstat(&null).map_err(sys("stat", "/dev/null"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(MountError::Other {
            what: "masking with /dev/null".into(),
            reason: format!(
                "/dev/null is not the character device 1:3 (mode {:o}, device {}:{}); refusing to mask with it",
                st.st_mode,
                libc::major(st.st_rdev),
                libc::minor(st.st_rdev)
            ),
        });
    }
    Ok(null)
}

/// Read-only and masked paths, then the switch into the rootfs, then the
/// root's propagation and read-only flag. Call after writing sysctls.
pub fn finish_rootfs(cfg: &RootfsConfig, root: InRoot) -> Result<(), MountError> {
    let linux = cfg.spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        let Some((rel, shown, fd)) = open_listed(&root, p, "open readonly path")? else {
            continue;
        };
        mount(
            Some(fd_path(&fd).as_str()),
            fd_path(&fd).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind readonly path", &shown))?;
        let fd = root.open_mounted(&rel, &fd)?;
        remount(
            &fd_path(&fd),
            &shown,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            MsFlags::empty(),
        )?;
    }
    let masked = linux.and_then(|l| l.masked_paths().as_ref());
    // Opened once, only when needed, and checked (CVE-2025-31133).
    let null = match masked {
        Some(m) if !m.is_empty() => Some(verified_dev_null()?),
        _ => None,
    };
    for p in masked.into_iter().flatten() {
        let Some((_, shown, fd)) = open_listed(&root, p, "open masked path")? else {
            continue;
        };
        let st = nix::sys::stat::fstat(&fd).map_err(sys("stat masked path", &shown))?;
        let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(
                Some("tmpfs"),
                fd_path(&fd).as_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0k"),
            )
        } else if let Some(null) = &null {
            mount(
                Some(fd_path(null).as_str()),
                fd_path(&fd).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        } else {
            Err(Errno::EBADF)
        };
        r.map_err(sys("mask path", &shown))?;
    }
    drop(root);

    if !cfg.mountns {
        super::shared_ns::enter(cfg.rootfs)?;
    } else if cfg.no_pivot {
        nix::unistd::chdir(cfg.rootfs).map_err(sys("chdir", cfg.rootfs))?;
        mount(
            Some(cfg.rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(sys("move rootfs to /", cfg.rootfs))?;
        nix::unistd::chroot(".").map_err(sys("chroot", cfg.rootfs))?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one at
        // "/"; it is then made a slave (so unmounting it does not propagate
        // to the host) and lazily detached. The cwd is moved to the old root
        // first (as runc does): after pivot_root it may still be the new
        // root, and MS_SLAVE|MS_REC there would strip the propagation the
        // container's own mounts asked for.
        let oldroot = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys("open old root", "/"))?;
        nix::unistd::chdir(cfg.rootfs).map_err(sys("chdir", cfg.rootfs))?;
        nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root", cfg.rootfs))?;
        nix::unistd::fchdir(&oldroot).map_err(sys("fchdir old root", "/"))?;
        drop(oldroot);
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("make old root slave", "/"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach old root", "/"))?;
    }
    nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;

    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            propagation_flags(p),
            None::<&str>,
        )
        .map_err(sys("set rootfsPropagation", "/"))?;
    }
    if cfg
        .spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount("/", Path::new("/"), MsFlags::MS_RDONLY, MsFlags::empty())?;
    }
    Ok(())
}

/// `linux.mountLabel` (config-linux.md "Mount Label"): the SELinux context
/// of the container's own filesystems, passed as `context="LABEL"` in the
/// mount data of every non-bind mount except proc, sysfs, cgroup and mqueue
/// (which either refuse it or take the label of the kernel objects), as runc
/// does. Validation has refused the label on hosts without SELinux.
fn with_mount_label(data: Option<String>, typ: &str, label: Option<&str>) -> Option<String> {
    let Some(label) = label.filter(|l| !l.is_empty()) else {
        return data;
    };
    if matches!(typ, "proc" | "sysfs" | "cgroup" | "cgroup2" | "mqueue") {
        return data;
    }
    let ctx = format!("context=\"{label}\"");
    Some(match data.filter(|d| !d.is_empty()) {
        Some(d) => format!("{d},{ctx}"),
        None => ctx,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_label_goes_into_the_data_of_own_filesystems() {
        let l = Some("system_u:object_r:container_file_t:s0");
        assert_eq!(
            super::with_mount_label(Some("mode=755".into()), "tmpfs", l).as_deref(),
            Some("mode=755,context=\"system_u:object_r:container_file_t:s0\"")
        );
        assert_eq!(super::with_mount_label(None, "proc", l), None);
        assert_eq!(super::with_mount_label(None, "tmpfs", None), None);
    }
}
