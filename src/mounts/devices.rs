//! Device nodes in the container's /dev (config-linux.md "Devices" and
//! "Default Devices") and the usual /dev symlinks.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::secure::{InRoot, Kind, fd_path};
use super::{MountError, sys};

/// A device to create: path inside the container, type, numbers, mode, owner.
#[derive(Debug, Clone)]
pub struct Dev {
    pub path: PathBuf,
    pub kind: libc::mode_t,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The devices every container gets (config-linux.md "Default Devices").
pub fn default_devices() -> Vec<Dev> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, major, minor)| Dev {
        path: PathBuf::from("/dev").join(n),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: None,
        gid: None,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Result<Dev, String> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err("type \"a\" is not a device node type (use c, b, u or p)".into());
        }
    };
    if d.major() < 0 || d.minor() < 0 {
        return Err(format!(
            "major/minor must not be negative ({}:{})",
            d.major(),
            d.minor()
        ));
    }
    Ok(Dev {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid(),
        gid: d.gid(),
    })
}

/// Creates `dev` inside the root: mknod, or, in a user namespace where mknod is
/// not allowed, a bind mount of the host's node at the same path.
pub fn create(root: &InRoot, dev: &Dev, bind: bool) -> Result<(), MountError> {
    let shown = root
        .path
        .join(dev.path.strip_prefix("/").unwrap_or(&dev.path));
    if bind {
        let target = root.ensure(&dev.path, Kind::File)?;
        let src = &dev.path;
        return mount(
            Some(src.as_path()),
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind device", shown));
    }
    let parent_rel = dev.path.parent().unwrap_or(Path::new("/"));
    let parent = root.ensure(parent_rel, Kind::Dir)?;
    let name = dev
        .path
        .file_name()
        .ok_or_else(|| sys("mknod", &shown)(Errno::EINVAL))?;
    let cname = CString::new(name.as_bytes()).map_err(|_| sys("mknod", &shown)(Errno::EINVAL))?;
    let devnum = libc::makedev(dev.major as u32, dev.minor as u32);
    // SAFETY: valid dirfd (an O_PATH fd of a directory inside the root) and a
    // NUL-terminated single-component name.
    let r = unsafe {
        libc::mknodat(
            parent.as_raw_fd(),
            cname.as_ptr(),
            dev.kind | dev.mode,
            devnum,
        )
    };
    if r < 0 && Errno::last() != Errno::EEXIST {
        return Err(sys("mknod", &shown)(Errno::last()));
    }
    // mknod applies the umask: set the exact mode.
    // SAFETY: as above; the node was just created by us and no container
    // process runs yet, so nothing can have replaced it.
    unsafe { libc::fchmodat(parent.as_raw_fd(), cname.as_ptr(), dev.mode, 0) };
    if dev.uid.is_some() || dev.gid.is_some() {
        let uid = dev.uid.map_or(u32::MAX, |u| u);
        let gid = dev.gid.map_or(u32::MAX, |g| g);
        // SAFETY: as above.
        let r = unsafe {
            libc::fchownat(
                parent.as_raw_fd(),
                cname.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r < 0 {
            return Err(sys("chown device", shown)(Errno::last()));
        }
    }
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err} and /dev/ptmx -> pts/ptmx.
pub fn symlinks(root: &InRoot) -> Result<(), MountError> {
    let dev = root.ensure(Path::new("/dev"), Kind::Dir)?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let cname = CString::new(name).map_err(|_| sys("symlink", name)(Errno::EINVAL))?;
        let ctarget = CString::new(target).map_err(|_| sys("symlink", name)(Errno::EINVAL))?;
        if name == "ptmx" {
            // Replace any ptmx node so the container uses its own devpts instance.
            // SAFETY: valid dirfd and NUL-terminated name.
            unsafe { libc::unlinkat(dev.as_raw_fd(), cname.as_ptr(), 0) };
        }
        // SAFETY: valid NUL-terminated strings and dirfd.
        let r = unsafe { libc::symlinkat(ctarget.as_ptr(), dev.as_raw_fd(), cname.as_ptr()) };
        if r < 0 && Errno::last() != Errno::EEXIST {
            return Err(sys("symlink", root.path.join("dev").join(name))(
                Errno::last(),
            ));
        }
    }
    Ok(())
}
