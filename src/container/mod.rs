//! Containers: the state directory, the spec's status machine
//! (runtime.md "State", "Lifecycle") and one file per verb.
//!
//! A container is a directory `<root>/<id>/` holding `state.json` (written
//! atomically) and, while the container is `created`, the `exec.fifo` that
//! `start` opens. The status is never trusted from disk alone: it is derived
//! from the init process (alive? same start time?) and the fifo, so a
//! container whose init is not our child (podman and containerd keep their
//! own subreaper) still shows the right status.

mod create;
mod delete;
mod events;
mod exec;
mod intent;
mod kill;
mod list;
mod notify;
mod pause;
mod ps;
mod run;
mod start;
mod statedir;
mod update;

pub use create::{CreateOptions, create};
pub use delete::{delete, delete_matching};
pub use events::{events, parse_duration};
pub use exec::{ExecOptions, exec};
// For crate::fuzzing.
pub(crate) use exec::parse_process as parse_exec_process;
pub use kill::{kill, parse_signal};
pub use list::{list, state_json};
pub use pause::{pause, resume};
pub use ps::ps;
pub use run::run;
pub use start::start;
pub(crate) use update::parse_resources as parse_update_resources;
pub use update::{parse_bytes, resources_from_args, update};

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cgroups::{Cgroup, CgroupError};
use crate::mounts::MountError;
use crate::namespaces::NamespaceError;
use crate::process::ProcessError;
use crate::spec::SpecError;
use crate::utils::{proc_start_time, write_atomic};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Exeseal(#[from] crate::exeseal::ExesealError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    #[error("exec failed: {0}")]
    Exec(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// runc has no state.json yet while it creates, so `runc state` says the
    /// container does not exist; cuddy says the same, and why.
    #[error("container {0:?} does not exist yet: it is being created (a `create` holds it)")]
    Creating(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.' (not only dots)"
    )]
    BadId(String),
    #[error("container {id:?} is {status}: {hint}")]
    BadStatus {
        id: String,
        status: Status,
        hint: &'static str,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    #[error("container init failed: {0}")]
    Init(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("invalid signal {0:?}")]
    BadSignal(String),
}

pub type Result<T> = std::result::Result<T, ContainerError>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.into();
    move |source| ContainerError::Io { op, path, source }
}

pub(crate) fn sys_err(op: impl Into<String>) -> impl FnOnce(nix::Error) -> ContainerError {
    let op = op.into();
    move |source| ContainerError::Sys { op, source }
}

/// The spec's statuses, plus `paused` (runc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What cuddy keeps in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Start time of the init (/proc/PID/stat field 22): detects pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Option<Cgroup>,
    /// Last status written by a verb (the live one is computed).
    pub status: Status,
    /// The config's hooks, kept for poststart (`start`) and poststop
    /// (`delete`) so they do not depend on the bundle staying unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Device and inode of the binary the init runs until it executes the
    /// user's program (cuddy's sealed view, which the init was forked from):
    /// while `/proc/PID/exe` is still this file the container is "created",
    /// a fact that holds at every instant, whatever verb was killed when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_exe: Option<(u64, u64)>,
}

/// The state root (`--root`): one directory per container.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
    /// Usually `/proc`; a parameter for tests.
    pub proc: PathBuf,
}

/// Is the directory locked through `fd` still the one named `path` (same
/// device and inode)? False once it was removed (or replaced).
fn still_named(fd: &impl std::os::fd::AsFd, path: &std::path::Path) -> bool {
    match (nix::sys::stat::fstat(fd), nix::sys::stat::stat(path)) {
        (Ok(a), Ok(b)) => a.st_nlink > 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// How long a verb waits for another verb's lock on the same container (a
/// `delete` waits at most ~10 s for the init and 3 s per cgroup directory;
/// a `start` at most 30 s plus its hooks' timeouts).
const LOCK_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits (bounded, polling) for the exclusive lock on a container directory
/// that another verb holds.
fn lock_bounded(mut fd: OwnedFd, dir: &std::path::Path) -> Result<Flock<OwnedFd>> {
    let deadline = std::time::Instant::now() + LOCK_BOUND;
    loop {
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((f, Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                fd = f;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(ContainerError::Unsupported(format!(
                    "lock {}: another cuddy command has held this container for {} s; try again",
                    dir.display(),
                    LOCK_BOUND.as_secs()
                )));
            }
            Err((_, e)) => return Err(sys_err(format!("lock {}", dir.display()))(e)),
        }
    }
}

/// Container ids as runc accepts them.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
        && id.chars().any(|c| c != '.');
    if ok {
        Ok(())
    } else {
        Err(ContainerError::BadId(id.to_string()))
    }
}

impl Root {
    pub fn new(path: PathBuf) -> Root {
        Root {
            path,
            proc: PathBuf::from("/proc"),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    /// Loads a container's saved state. A container whose `create` is still
    /// running is refused ([`ContainerError::Creating`]): no verb, `state` and
    /// `list` included, sees it before create returns (runtime.md "State":
    /// runc never reports "creating"). One whose create died half-way (its
    /// creating lock is free) loads, and [`Root::status`] calls it stopped.
    pub fn load(&self, id: &str) -> Result<State> {
        validate_id(id)?;
        let p = self.dir(id).join(STATE_FILE);
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContainerError::NotFound(id.to_string()));
            }
            Err(e) => return Err(io_err("open", p)(e)),
        };
        // The creating state.json is locked by its writer from before it is
        // visible until create returns (`save_creating`): a shared lock
        // taken on this very inode tells a live create from a dead one, and
        // what is read under it is that inode's content.
        let mut file = match Flock::lock(OwnedFd::from(file), FlockArg::LockSharedNonblock) {
            Ok(l) => fs::File::from(l.unlock().map_err(|(_, e)| sys_err("unlock state")(e))?),
            Err((_, Errno::EWOULDBLOCK)) => return Err(ContainerError::Creating(id.to_string())),
            Err((_, e)) => return Err(sys_err(format!("lock {}", p.display()))(e)),
        };
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io_err("read", &p))?;
        serde_json::from_slice(&text).map_err(|e| io_err("parse", p)(std::io::Error::other(e)))
    }

    /// Writes the first, "creating" state.json and returns its lock: the file
    /// is made under a temporary name, locked, then renamed into place, so a
    /// creating state is never visible unlocked while its create lives. The
    /// kernel drops the lock when the create process dies (a crash, SIGKILL),
    /// which is how `load` tells an abandoned create.
    pub(crate) fn save_creating(&self, st: &State) -> Result<Flock<OwnedFd>> {
        let dir = self.dir(&st.id);
        let tmp = dir.join(".state.json.creating");
        let data = serde_json::to_vec(st)
            .map_err(|e| io_err("serialize", &tmp)(std::io::Error::other(e)))?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let lock = Flock::lock(OwnedFd::from(file), FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| sys_err(format!("lock {}", tmp.display()))(e))?;
        let written = fs::File::from(lock.try_clone().map_err(io_err("dup", &tmp))?)
            .write_all(&data)
            .map_err(io_err("write", &tmp))
            .and_then(|()| fs::rename(&tmp, dir.join(STATE_FILE)).map_err(io_err("rename", &tmp)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(lock)
    }

    pub fn save(&self, st: &State) -> Result<()> {
        let p = self.dir(&st.id).join(STATE_FILE);
        let data = serde_json::to_vec(st)
            .map_err(|e| io_err("serialize", &p)(std::io::Error::other(e)))?;
        write_atomic(&p, &data, 0o600).map_err(io_err("write", p))
    }

    /// Removes the private directories of creates that were killed before
    /// renaming theirs into place (`.creating-PID` of a PID that no longer
    /// exists; a reused PID only delays it). They are empty. Called by
    /// `create`, `delete` and `list`, so a create killed at that instant leaves
    /// nothing that the next of them does not remove.
    pub(crate) fn sweep_dead_creates(&self) {
        let Ok(rd) = std::fs::read_dir(&self.path) else {
            return;
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(".creating-"))
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if pid > 0
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    == Err(nix::errno::Errno::ESRCH)
            {
                let _ = std::fs::remove_dir(ent.path());
            }
        }
    }

    /// Takes the container's lock (flock on its directory) so verbs on one
    /// id run one at a time. The fd is close-on-exec, and every child cuddy
    /// clones closes it at once (`crate::fds::close_all_except`): no container
    /// process ever holds the state directory (issue 7 item 2).
    pub fn lock(&self, id: &str) -> Result<Flock<OwnedFd>> {
        validate_id(id)?;
        let d = self.dir(id);
        let fd = nix::fcntl::open(
            &d,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| {
            if e == Errno::ENOENT {
                ContainerError::NotFound(id.to_string())
            } else {
                ContainerError::Sys {
                    op: format!("open {}", d.display()),
                    source: e,
                }
            }
        })?;
        // A verb does not wait for a create in progress (it can take as long
        // as its hooks): it is refused as `state` would refuse it. Anything
        // else holding the lock (another verb) is waited for.
        let lock_err = |e| sys_err(format!("lock {}", d.display()))(e);
        let l = match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((fd, Errno::EWOULDBLOCK)) => match self.load(id) {
                Err(e @ (ContainerError::Creating(_) | ContainerError::NotFound(_))) => {
                    return Err(e);
                }
                _ => lock_bounded(fd, &d)?,
            },
            Err((_, e)) => return Err(lock_err(e)),
        };
        // Before we got it, the holder may have deleted the container (two
        // `delete --force` racing): the lock is then on a removed directory.
        // It is gone for us too (and `delete --force` of a gone container
        // succeeds); a directory made again under the same id is locked anew.
        if still_named(&*l, &d) {
            return Ok(l);
        }
        drop(l);
        match d.exists() {
            true => self.lock(id),
            false => Err(ContainerError::NotFound(id.to_string())),
        }
    }

    /// Is the saved init still the same live process (not a zombie)?
    pub fn init_alive(&self, st: &State) -> bool {
        st.pid > 0
            && matches!(proc_start_time(&self.proc, st.pid), Some((start, state)) if start == st.pid_start && state != 'Z' && state != 'X')
    }

    /// The live status, derived from facts only (runtime.md "State"):
    /// "created" while the init "has neither exited nor executed the
    /// user-specified program", "running" once it has.
    pub fn status(&self, st: &State) -> Status {
        // `load` refuses a create in progress, so a loaded "creating" state
        // is one whose create died half-way: nothing will ever start it, and
        // `delete` may remove it (runc: such a directory has no state.json
        // and `delete` removes it). Its init, if one was recorded, dies with
        // its creator (EOF or EPIPE on the sync channel, see
        // `process::init`).
        if st.status == Status::Creating || !self.init_alive(st) {
            return Status::Stopped;
        }
        if self.init_not_execd(st) {
            return Status::Created;
        }
        if st
            .cgroup
            .as_ref()
            .is_some_and(|c| c.is_frozen().unwrap_or(false))
        {
            return Status::Paused;
        }
        Status::Running
    }

    /// Has the (live) init not executed the user's program yet? Its
    /// `/proc/PID/exe` is still the binary recorded at create (the kernel
    /// replaces it at execve). Where that link cannot be read (no ptrace
    /// access), the exec fifo tells: `start` removes it once the init
    /// executed the program.
    fn init_not_execd(&self, st: &State) -> bool {
        let exe = self.proc.join(st.pid.to_string()).join("exe");
        match (st.init_exe, nix::sys::stat::stat(&exe)) {
            (Some(want), Ok(m)) => want == (m.st_dev, m.st_ino),
            _ => self.dir(&st.id).join(EXEC_FIFO).exists(),
        }
    }

    /// Ids of every container under the root.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.path)(e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// A pidfd for the saved init, checked against its start time so a reused
/// pid is never signalled.
pub(crate) fn init_pidfd(root: &Root, st: &State) -> Option<OwnedFd> {
    let fd = crate::process::clone::pidfd_open(nix::unistd::Pid::from_raw(st.pid)).ok()?;
    root.init_alive(st).then_some(fd)
}

/// Waits until the process behind `pidfd` has exited (pidfd becomes
/// readable), up to `ms` milliseconds. Returns whether it exited.
pub(crate) fn wait_pidfd(pidfd: &OwnedFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return r > 0;
    }
}

/// The username of the state directory's owner (runc's `owner`).
pub(crate) fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["web", "a.b-c_d+e", "1"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    fn state(id: &str, pid: i32, start: u64) -> State {
        State {
            id: id.into(),
            pid,
            pid_start: start,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "now".into(),
            owner: "root".into(),
            annotations: HashMap::new(),
            cgroup: None,
            status: Status::Created,
            hooks: None,
            init_exe: None,
        }
    }

    /// A state root with container "c" and a fake /proc holding pid 42, in
    /// a tempdir (kept alive by the returned guard).
    fn fake_root() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let root = Root {
            path: d.path().join("run"),
            proc: d.path().join("proc"),
        };
        fs::create_dir_all(root.dir("c")).unwrap();
        fs::create_dir_all(root.proc.join("42")).unwrap();
        (d, root)
    }

    /// The status machine from a fake /proc: alive + fifo = created, alive =
    /// running, zombie / dead / reused pid = stopped.
    #[test]
    fn status_from_fake_proc() {
        let (_d, root) = fake_root();
        let stat = |state: char, start: u64| {
            fs::write(
                root.proc.join("42/stat"),
                format!(
                    "42 (sh) {state} 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10"
                ),
            )
            .unwrap()
        };
        let st = state("c", 42, 777);
        root.save(&st).unwrap();
        assert_eq!(root.load("c").unwrap().pid_start, 777);
        stat('S', 777);
        fs::write(root.dir("c").join(EXEC_FIFO), "").unwrap();
        assert_eq!(root.status(&st), Status::Created);
        fs::remove_file(root.dir("c").join(EXEC_FIFO)).unwrap();
        assert_eq!(root.status(&st), Status::Running);
        stat('Z', 777);
        assert_eq!(root.status(&st), Status::Stopped);
        stat('S', 778);
        assert_eq!(root.status(&st), Status::Stopped, "reused pid");
        fs::remove_dir_all(root.proc.join("42")).unwrap();
        assert_eq!(root.status(&st), Status::Stopped);
        assert!(matches!(
            root.load("nope"),
            Err(ContainerError::NotFound(_))
        ));
        assert_eq!(root.ids().unwrap(), vec!["c".to_string()]);
    }

    /// With the init's binary recorded, "created" means the init's exe is
    /// still that binary (it has not executed the program), whatever the
    /// fifo says: a start killed before it removed the fifo leaves a running
    /// container, and a fifo removed early does not make it running.
    #[test]
    fn created_is_derived_from_the_inits_exe() {
        use std::os::unix::fs::MetadataExt;
        let (d, root) = fake_root();
        fs::write(
            root.proc.join("42/stat"),
            "42 (sh) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1000 10",
        )
        .unwrap();
        let (cuddy, prog) = (d.path().join("cuddy"), d.path().join("prog"));
        fs::write(&cuddy, "").unwrap();
        fs::write(&prog, "").unwrap();
        let m = fs::metadata(&cuddy).unwrap();
        let mut st = state("c", 42, 777);
        st.init_exe = Some((m.dev(), m.ino()));
        let exe = root.proc.join("42/exe");
        std::os::unix::fs::symlink(&prog, &exe).unwrap();
        fs::write(root.dir("c").join(EXEC_FIFO), "").unwrap();
        assert_eq!(root.status(&st), Status::Running, "exec'd, fifo left");
        fs::remove_file(&exe).unwrap();
        std::os::unix::fs::symlink(&cuddy, &exe).unwrap();
        fs::remove_file(root.dir("c").join(EXEC_FIFO)).unwrap();
        assert_eq!(root.status(&st), Status::Created, "not exec'd yet");
    }

    /// A create in progress (its creating lock held) is invisible to `load`;
    /// once its process is gone (lock dropped) it loads and derives stopped.
    #[test]
    fn creating_is_hidden_then_abandoned() {
        let (_d, root) = fake_root();
        let mut st = state("c", 0, 0);
        st.status = Status::Creating;
        let lock = root.save_creating(&st).unwrap();
        assert!(matches!(root.load("c"), Err(ContainerError::Creating(_))));
        assert!(root.lock("c").is_ok(), "dir lock is separate");
        drop(lock);
        let st = root.load("c").unwrap();
        assert_eq!(st.status, Status::Creating);
        assert_eq!(root.status(&st), Status::Stopped);
        assert!(!root.dir("c").join(".state.json.creating").exists());
    }
}
