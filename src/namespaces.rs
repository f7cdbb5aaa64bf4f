//! Linux namespaces (config-linux.md "Namespaces", "User namespace mappings").
//!
//! New namespaces are created by clone3 itself (one syscall, the child is
//! born inside them; a new PID namespace this way needs no extra fork because
//! the cloned child *is* the namespace's first process, its pid 1). Two kinds
//! are created later by the child with unshare(2) instead:
//! - cgroup: its root is the caller's cgroup at unshare time, so the child
//!   first waits until the parent has moved it into the container's cgroup;
//! - time: offsets can only be written before any process lives in the
//!   namespace, so the child unshares (which affects only its future
//!   children), writes /proc/self/timens_offsets, and enters it at execve.
//!
//! Namespaces given by `path` are opened by the parent (which checks their
//! type) and joined with setns(2) by the child, user namespace first so that
//! the others are joined with the capabilities it grants.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::fds::procfs::{ProcError, ProcFs};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("open namespace {path} (linux.namespaces type {typ}): {source}")]
    Open {
        typ: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error(
        "linux.namespaces type {expected}: path {path} is a {actual} namespace, not a {expected} one"
    )]
    WrongType {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("linux.namespaces type {typ}: path {path} is not a namespace file ({source})")]
    NotNamespace {
        typ: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("join {typ} namespace {path}: {source}")]
    Join {
        typ: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Proc {
        what: String,
        #[source]
        source: ProcError,
    },
    #[error("bring lo up in the new network namespace ({op}): {source}")]
    LoopbackUp {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("unshare {typ} namespace: {source}")]
    Unshare {
        typ: &'static str,
        #[source]
        source: nix::Error,
    },
}

/// A namespace to join: its type, path and the open fd.
#[derive(Debug)]
pub struct JoinNs {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// The namespace plan of a container.
#[derive(Debug)]
pub struct NsPlan {
    /// Flags for clone3 (new namespaces created at birth).
    pub clone_flags: CloneFlags,
    /// Unshare a cgroup namespace after joining the cgroup.
    pub new_cgroup: bool,
    /// Unshare a time namespace and write these offsets (clock id, secs, nanos).
    pub new_time: Option<Vec<(u32, i64, u32)>>,
    /// Namespaces to join, user first.
    pub join: Vec<JoinNs>,
    /// A new user namespace is created: the parent writes the id maps.
    pub new_user: bool,
    /// The container is in a user namespace (new or joined).
    pub in_userns: bool,
    /// A user namespace is joined by path: the init is cloned by a middle
    /// process that joined it, so that its new namespaces belong to it.
    pub two_stage: bool,
}

impl Default for NsPlan {
    fn default() -> Self {
        NsPlan {
            clone_flags: CloneFlags::empty(),
            new_cgroup: false,
            new_time: None,
            join: Vec::new(),
            new_user: false,
            in_userns: false,
            two_stage: false,
        }
    }
}

impl NsPlan {
    /// The container has a mount namespace of its own (new or joined); else
    /// it shares the caller's (mounts/shared_ns.rs).
    pub fn mountns(&self) -> bool {
        self.clone_flags.contains(CloneFlags::CLONE_NEWNS)
            || self.join.iter().any(|j| j.typ == LinuxNamespaceType::Mount)
    }
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(t as i32)
}

/// The type as config.json spells it.
pub fn type_name(t: LinuxNamespaceType) -> String {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
    .to_string()
}

/// NS_GET_NSTYPE (linux/nsfs.h: _IO(0xb7, 0x3)) returns the CLONE_NEW* type.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Builds the plan, opening and type-checking every namespace path.
pub fn plan(spec: &Spec) -> Result<NsPlan, NamespaceError> {
    let mut p = NsPlan::default();
    let Some(linux) = spec.linux() else {
        return Ok(p);
    };
    for ns in linux.namespaces().iter().flatten() {
        let t = ns.typ();
        match ns.path() {
            None => match t {
                LinuxNamespaceType::Cgroup => p.new_cgroup = true,
                LinuxNamespaceType::Time => {
                    let offs = linux
                        .time_offsets()
                        .iter()
                        .flatten()
                        .map(|(clock, o)| {
                            let id = if clock == "boottime" {
                                libc::CLOCK_BOOTTIME
                            } else {
                                libc::CLOCK_MONOTONIC
                            };
                            (id as u32, o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0))
                        })
                        .collect();
                    p.new_time = Some(offs);
                }
                LinuxNamespaceType::User => {
                    p.new_user = true;
                    p.in_userns = true;
                    p.clone_flags |= flag(t);
                }
                _ => p.clone_flags |= flag(t),
            },
            Some(path) => {
                let fd = open(
                    path.as_path(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|source| NamespaceError::Open {
                    typ: type_name(t),
                    path: path.clone(),
                    source,
                })?;
                // SAFETY: ioctl on an fd we own; NS_GET_NSTYPE takes no argument.
                let actual = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
                if actual < 0 {
                    return Err(NamespaceError::NotNamespace {
                        typ: type_name(t),
                        path: path.clone(),
                        source: Errno::last(),
                    });
                }
                if actual != t as i32 {
                    let name = [
                        LinuxNamespaceType::Mount,
                        LinuxNamespaceType::Cgroup,
                        LinuxNamespaceType::Uts,
                        LinuxNamespaceType::Ipc,
                        LinuxNamespaceType::User,
                        LinuxNamespaceType::Pid,
                        LinuxNamespaceType::Network,
                        LinuxNamespaceType::Time,
                    ]
                    .into_iter()
                    .find(|x| *x as i32 == actual)
                    .map_or_else(|| format!("{actual:#x}"), type_name);
                    return Err(NamespaceError::WrongType {
                        path: path.clone(),
                        expected: type_name(t),
                        actual: name,
                    });
                }
                if t == LinuxNamespaceType::User {
                    p.in_userns = true;
                }
                p.join.push(JoinNs {
                    typ: t,
                    path: path.clone(),
                    fd,
                });
            }
        }
    }
    // User namespace first: joining it grants the capabilities to join the rest.
    p.join.sort_by_key(|j| j.typ != LinuxNamespaceType::User);
    // Namespaces made by clone3 are owned by the caller's user namespace:
    // with a joined user namespace, a short-lived middle process joins it
    // first and clones the init from there (see container/create.rs).
    p.two_stage = p
        .join
        .first()
        .is_some_and(|j| j.typ == LinuxNamespaceType::User);
    Ok(p)
}

/// Joins a PID namespace given by path in the parent: setns(CLONE_NEWPID)
/// changes only the namespace of the caller's future children, so the
/// container's init is born in it while the parent stays where it is.
pub fn join_pid_for_children(p: &NsPlan) -> Result<(), NamespaceError> {
    match p.join.iter().find(|j| j.typ == LinuxNamespaceType::Pid) {
        Some(j) => join(j),
        None => Ok(()),
    }
}

/// Joins one namespace (in the child).
pub fn join(j: &JoinNs) -> Result<(), NamespaceError> {
    nix::sched::setns(&j.fd, flag(j.typ)).map_err(|source| NamespaceError::Join {
        typ: type_name(j.typ),
        path: j.path.clone(),
        source,
    })
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes uid_map, setgroups and gid_map of `pid` (in the parent, which has
/// the privileges the child lacks in its new user namespace), through a
/// procfs handle cuddy opened and verified (`crate::fds::procfs`). `setgroups`
/// is set to "deny" only when the caller is unprivileged, which the kernel
/// requires before an unprivileged gid_map write.
pub fn write_id_maps(proc: &ProcFs, pid: i32, spec: &Spec) -> Result<(), NamespaceError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    // The field a failed write blames: the kernel's EINVAL/EPERM says
    // nothing of which map, line or id it refused.
    let w = |name: &str, text: String| {
        let field = match name {
            "uid_map" => "linux.uidMappings",
            "gid_map" => "linux.gidMappings",
            _ => "linux.gidMappings (setgroups deny, needed before an unprivileged gid_map)",
        };
        proc.write(&format!("{pid}/{name}"), text.as_bytes())
            .map_err(|source| NamespaceError::Proc {
                what: format!("{field} of pid {pid}"),
                source,
            })
    };
    w(
        "uid_map",
        map_text(linux.uid_mappings().as_deref().unwrap_or(&[])),
    )?;
    if !nix::unistd::geteuid().is_root() {
        w("setgroups", "deny".into())?;
    }
    w(
        "gid_map",
        map_text(linux.gid_mappings().as_deref().unwrap_or(&[])),
    )
}

/// In the child: unshare a time namespace (which only sets the namespace of
/// future children), write its offsets through the verified procfs (only
/// possible while no process is in it), then enter it with setns on
/// `time_for_children`. Newer kernels would also switch at execve, older ones
/// (e.g. 6.1) do not, so cuddy enters it itself.
pub fn new_time_ns(proc: &ProcFs, offsets: &[(u32, i64, u32)]) -> Result<(), NamespaceError> {
    nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)).map_err(|source| {
        NamespaceError::Unshare {
            typ: "time",
            source,
        }
    })?;
    if !offsets.is_empty() {
        write_time_offsets(proc, offsets)?;
    }
    let path = PathBuf::from("/proc/self/ns/time_for_children");
    // An nsfs file, not a procfs one: opened beneath the verified procfs
    // without following magic links is not possible (ns/* are magic links),
    // so open the ns directory checked, then the entry from it.
    let dir = proc
        .open("self/ns", libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|source| NamespaceError::Proc {
            what: "linux.namespaces type time".into(),
            source,
        })?;
    let fd = nix::fcntl::openat(
        &dir,
        "time_for_children",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| NamespaceError::Join {
        typ: "time".into(),
        path: path.clone(),
        source,
    })?;
    nix::sched::setns(&fd, CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)).map_err(|source| {
        NamespaceError::Join {
            typ: "time".into(),
            path,
            source,
        }
    })
}

fn write_time_offsets(proc: &ProcFs, offsets: &[(u32, i64, u32)]) -> Result<(), NamespaceError> {
    let text: String = offsets
        .iter()
        .map(|(c, s, n)| format!("{c} {s} {n}\n"))
        .collect();
    let path = PathBuf::from("/proc/self/timens_offsets");
    let fd = proc
        .open("self/timens_offsets", libc::O_WRONLY)
        .map_err(|source| NamespaceError::Proc {
            what: "linux.timeOffsets".into(),
            source,
        })?;
    // The kernel parses one offset per write.
    for line in text.lines() {
        nix::unistd::write(&fd, format!("{line}\n").as_bytes()).map_err(|e| {
            NamespaceError::Write {
                path: path.clone(),
                source: e.into(),
            }
        })?;
    }
    Ok(())
}

pub fn new_cgroup_ns() -> Result<(), NamespaceError> {
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|source| NamespaceError::Unshare {
        typ: "cgroup",
        source,
    })
}

/// Brings `lo` up in the container's new network namespace (as runc does):
/// SIOCGIFFLAGS then SIOCSIFFLAGS | IFF_UP on an AF_INET socket made in the
/// namespace. Kernel fact: a new network namespace has only `lo`, down; once
/// up, the kernel gives it 127.0.0.1/8 and ::1 itself.
pub fn loopback_up() -> Result<(), NamespaceError> {
    let fail = |op: &'static str| {
        let source = Errno::last();
        move || NamespaceError::LoopbackUp { op, source }
    };
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(fail("socket")());
    }
    // SAFETY: raw is a new fd nobody else owns.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: a valid socket and an ifreq naming the interface.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(fail("SIOCGIFFLAGS")());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; the kernel reads the name and flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(fail("SIOCSIFFLAGS")());
    }
    Ok(())
}
