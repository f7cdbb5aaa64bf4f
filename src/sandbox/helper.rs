//! The sandbox's owner process: `cuddy sandbox serve` (the helper a
//! [`super::Sandbox`] starts) and `cuddy sandbox run` (in-process). Both are
//! single-threaded, so they may fork containers with the library.
//!
//! The owner unshares its own mount namespace (private propagation) and
//! mounts there a tmpfs (the overlay's upper and work directories) and the
//! overlay (lower: the rootfs or the image's layers) at the bundle's
//! `rootfs`: the mounts vanish with the owner and the container even after
//! SIGKILL, and the rootfs or image is never written to.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use super::image::{ImageStore, Lease};
use super::proto::{self, Reply, Request, Source, Spec};
use super::{Result, SandboxError, config, events, sweep};
use crate::container::{self, CreateOptions, Root};

fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> SandboxError {
    let op = op.into();
    move |source| SandboxError::Sys { op, source }
}

fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let path = path.into();
    move |source| SandboxError::Io { op, path, source }
}

/// The error and its causes on one line (sent to the caller as text).
pub(crate) use crate::utils::error_chain as chain;

/// One sandbox as its owner holds it; `teardown` removes all of it.
pub(crate) struct Owned {
    pub root: Root,
    pub name: String,
    pub bundle: PathBuf,
    /// The overlay root (the bundle's `rootfs`), for write_file/read_file.
    pub merged: Option<OwnedFd>,
    mounted: Vec<PathBuf>,
    pub created: bool,
    pub pid: nix::unistd::Pid,
    pub pidfd: Option<OwnedFd>,
    _lease: Option<Lease>,
}

impl Owned {
    /// Kills what runs, removes the container, the mounts, the bundle.
    /// Safe to call twice.
    pub fn teardown(&mut self) {
        if self.created {
            if let Err(e) = container::delete(&self.root, &self.name, true) {
                tracing::warn!("sandbox {}: delete: {e}", self.name);
            }
            self.created = false;
        }
        self.merged = None;
        for m in self.mounted.drain(..).rev() {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
        match fs::remove_dir_all(&self.bundle) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    "sandbox {}: remove {}: {e}",
                    self.name,
                    self.bundle.display()
                );
            }
            _ => {}
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(io("create", p)(e)),
        _ => Ok(()),
    }
}

/// A directory the caller named: it must exist and be a directory.
fn existing_dir(field: &'static str, p: &Path) -> Result<PathBuf> {
    let c = fs::canonicalize(p).map_err(|e| SandboxError::Invalid {
        field,
        value: p.display().to_string(),
        why: e.to_string(),
    })?;
    if !c.is_dir() {
        return Err(SandboxError::Invalid {
            field,
            value: p.display().to_string(),
            why: "not a directory".into(),
        });
    }
    Ok(c)
}

/// The overlay's lower layers (already escaped) and the image's config.
struct Lower {
    lowerdir: String,
    image: Option<super::image::ImageConfig>,
    user: Option<(u32, u32)>,
    lease: Option<Lease>,
}

fn lower(spec: &Spec) -> Result<Lower> {
    match &spec.source {
        Source::Rootfs(dir) => {
            let d = existing_dir("rootfs", dir)?;
            Ok(Lower {
                lowerdir: config::lowerdir(&[d]),
                image: None,
                user: None,
                lease: None,
            })
        }
        Source::Image(path) => {
            if !crate::sandbox::image::reference::split(path).0.exists() {
                return Err(SandboxError::Invalid {
                    field: "image",
                    value: path.display().to_string(),
                    why: "No such file or directory".into(),
                });
            }
            let store = ImageStore::open(
                spec.image_cache
                    .clone()
                    .unwrap_or_else(ImageStore::default_root),
            )?;
            let img = store.import(path)?;
            let lease = img.lease()?;
            let user = img.resolve_user()?;
            Ok(Lower {
                lowerdir: config::lowerdir(&img.layers),
                image: Some(img.config.clone()),
                user,
                lease: Some(lease),
            })
        }
    }
}

fn mount_fs(fstype: &str, target: &Path, data: &str) -> Result<()> {
    mount(
        Some(fstype),
        target,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data),
    )
    .map_err(sys(format!(
        "mount {fstype} on {} ({data})",
        target.display()
    )))
}

/// Checks what the kernel would refuse later with a vaguer message.
fn check_sources(spec: &Spec) -> Result<()> {
    for m in &spec.mounts {
        if let Err(e) = fs::symlink_metadata(&m.src) {
            return Err(SandboxError::Invalid {
                field: "mount source",
                value: m.src.display().to_string(),
                why: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Sweeps the state root, then makes the bundle, the mounts and config.json.
fn prepare(spec: &Spec) -> Result<Owned> {
    check_sources(spec)?;
    config::check(spec)?;
    let state_root = &spec.state_root;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(state_root)
        .map_err(io("create state root", state_root))?;
    sweep::sweep(state_root);
    mkdir(&state_root.join(sweep::BUNDLES), 0o700)?;
    let name = sweep::own_name();
    let bundle = sweep::bundle_dir(state_root, &name);
    mkdir(&bundle, 0o700)?;
    let mut owned = Owned {
        root: Root::new(state_root.clone()),
        name,
        bundle: bundle.clone(),
        merged: None,
        mounted: Vec::new(),
        created: false,
        pid: nix::unistd::Pid::from_raw(0),
        pidfd: None,
        _lease: None,
    };
    // Our own mount namespace, private: nothing mounted below reaches the
    // host's, and all of it goes when this process and the container exit.
    unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare(CLONE_NEWNS)"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("make / private (mount --make-rprivate /)"))?;
    let low = lower(spec)?;
    owned._lease = low.lease;
    let scratch = bundle.join("scratch");
    let merged = bundle.join("rootfs");
    mkdir(&scratch, 0o700)?;
    mkdir(&merged, 0o755)?;
    mount_fs("tmpfs", &scratch, "mode=0700")?;
    owned.mounted.push(scratch.clone());
    let (upper, work) = (scratch.join("upper"), scratch.join("work"));
    mkdir(&upper, 0o755)?;
    mkdir(&work, 0o700)?;
    mount_fs(
        "overlay",
        &merged,
        &config::overlay_options(&low.lowerdir, &upper, &work),
    )?;
    owned.mounted.push(merged.clone());
    owned.merged = Some(
        nix::fcntl::open(
            &merged,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys(format!("open {}", merged.display())))?,
    );
    let cfg = config::build(spec, low.image.as_ref(), low.user)?;
    let text = serde_json::to_vec_pretty(&cfg).map_err(|e| io("serialize", &bundle)(e.into()))?;
    let path = bundle.join("config.json");
    crate::utils::write_atomic(&path, &text, 0o600).map_err(io("write", &path))?;
    Ok(owned)
}

/// The `--network`/`--publish` texts as the network module's options.
fn network_options(spec: &Spec) -> Result<crate::network::Options> {
    let net = |e: crate::network::NetworkError| SandboxError::Container(e.into());
    Ok(crate::network::Options {
        mode: spec
            .network
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(net)?,
        publish: spec
            .publish
            .iter()
            .map(|p| p.parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(net)?,
        ..Default::default()
    })
}

/// Creates and starts the container; `stdio`: fds for its 1 and 2 (the
/// init inherits this process's 0, 1 and 2), restored afterwards.
fn create(owned: &mut Owned, spec: &Spec, stdio: Option<(&OwnedFd, &OwnedFd)>) -> Result<()> {
    let opts = CreateOptions {
        id: owned.name.clone(),
        bundle: owned.bundle.clone(),
        network: network_options(spec)?,
        // This process owns the container for its whole life: if it is
        // SIGKILLed (an OOM kill, a harness killing its process group), the
        // container's processes go with it; what is left on disk (state,
        // cgroup, bundle) is swept by the next sandbox or `sandbox prune`.
        parent_death_signal: Some(nix::sys::signal::Signal::SIGKILL),
        ..Default::default()
    };
    let saved = match stdio {
        Some((out, err)) => Some(events::redirect_stdio(out, err)?),
        None => None,
    };
    let res = container::create(&owned.root, &opts);
    if let Some(s) = saved {
        events::restore_stdio(s);
    }
    let c = res?;
    owned.created = true;
    owned.pid = c.pid;
    owned.pidfd = match c.pidfd {
        Some(p) => Some(p),
        None => Some(crate::process::clone::pidfd_open(c.pid).map_err(sys("pidfd_open"))?),
    };
    container::start(&owned.root, &owned.name)?;
    Ok(())
}

/// `cuddy sandbox serve --control-fd FD`: the helper of one [`super::Running`].
/// Returns the helper's exit code.
pub fn serve(control_fd: i32) -> Result<i32> {
    let valid = control_fd >= 3
        // SAFETY: F_GETFD only queries the fd number.
        && unsafe { libc::fcntl(control_fd, libc::F_GETFD) } >= 0;
    if !valid {
        return Err(SandboxError::Invalid {
            field: "--control-fd",
            value: control_fd.to_string(),
            why: "not an open fd >= 3 (this command is run by cuddy::Sandbox, not by hand)".into(),
        });
    }
    // SAFETY: the fd is open (checked) and owned by nobody else in this
    // process: the parent passed it for this purpose.
    let mut sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(control_fd) });
    let ch = |op| {
        move |source| SandboxError::Channel {
            id: "(helper)".into(),
            op,
            source,
        }
    };
    let spec = match proto::recv::<Request>(&mut sock).map_err(ch("read the spec"))? {
        Some((Request::Start(s), _)) => *s,
        Some(_) | None => return Ok(1),
    };
    let signals = events::Signals::block()?;
    let (out_r, out_w) = events::pipe()?;
    let (err_r, err_w) = events::pipe()?;
    let mut owned = match prepare(&spec)
        .and_then(|mut o| create(&mut o, &spec, Some((&out_w, &err_w))).map(|()| o))
    {
        Ok(o) => o,
        Err(e) => {
            let _ = proto::send(&mut sock, &Reply::Failed { message: chain(&e) }, &[]);
            return Ok(1);
        }
    };
    drop((out_w, err_w));
    let started = Reply::Started {
        id: owned.name.clone(),
        pid: owned.pid.as_raw(),
    };
    if proto::send(&mut sock, &started, &[]).is_err() {
        return Ok(1);
    }
    let mut ev = events::Loop {
        owned: &mut owned,
        sock: Some(&mut sock),
        capture: Some((out_r, err_r)),
        signals,
        timeout_ms: spec.timeout_ms,
    };
    ev.run()?;
    owned.teardown();
    Ok(0)
}

/// `cuddy sandbox run`: the sandbox made in this process, with its stdio;
/// returns the command's status (128+N for signal N, 124 on timeout).
pub fn run_cli(spec: &Spec) -> Result<i32> {
    let signals = events::Signals::block()?;
    let mut owned = prepare(spec)?;
    create(&mut owned, spec, None)?;
    let mut ev = events::Loop {
        owned: &mut owned,
        sock: None,
        capture: None,
        signals,
        timeout_ms: spec.timeout_ms,
    };
    let (status, timed_out) = ev.run()?;
    owned.teardown();
    if timed_out {
        eprintln!(
            "cuddy: sandbox: timed out after {} s; killed",
            spec.timeout_ms.unwrap_or(0) as f64 / 1000.0
        );
        return Ok(super::CLI_TIMEOUT_STATUS);
    }
    Ok(status)
}

/// A path inside the sandbox, checked (no NUL byte).
pub(crate) fn rel_path(p: &str) -> Result<&Path> {
    CString::new(p).map_err(|_| SandboxError::Invalid {
        field: "path",
        value: p.escape_debug().to_string(),
        why: "contains a NUL byte".into(),
    })?;
    Ok(Path::new(p))
}

/// The overlay root's fd (write_file/read_file).
pub(crate) fn merged_fd(owned: &Owned) -> Result<i32> {
    owned
        .merged
        .as_ref()
        .map(|f| f.as_raw_fd())
        .ok_or_else(|| SandboxError::Helper {
            op: "file",
            message: "the sandbox's root filesystem is gone".into(),
        })
}
