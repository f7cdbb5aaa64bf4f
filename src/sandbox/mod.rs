//! Test sandboxes (issue 12): throwaway containers from a rootfs or an OCI
//! image, usable from any thread of any program (a `cargo test` harness, a
//! tokio runtime).
//!
//! [`Sandbox`] is shaped like [`std::process::Command`]:
//!
//! ```rust,no_run
//! use std::time::Duration;
//! let out = cuddy::Sandbox::rootfs("/path/to/rootfs")
//!     .args(["/bin/sh", "-c", "echo hello; exit 3"])
//!     .env("GREETING", "hi")
//!     .memory(64 << 20)
//!     .timeout(Duration::from_secs(10))
//!     .output()?;
//! assert_eq!(out.status, 3);
//! assert_eq!(out.stdout, b"hello\n");
//! # Ok::<(), cuddy::SandboxError>(())
//! ```
//!
//! (Doctests are off for this crate: this example runs as the test
//! `basics::doc_example` of tests/sandbox, which uses only the public API.)
//!
//! How it works (docs/library.md has the details and costs): the library
//! forks containers without re-executing itself and so must not be called
//! from a multi-threaded process. A `Sandbox` therefore never forks in the
//! caller: [`Sandbox::spawn`] starts the `cuddy` binary as a helper process
//! (`cuddy sandbox serve`, single-threaded, sealed like every cuddy that
//! forks containers) and talks to it over a socket ([`proto`]). The helper
//! unshares its own mount namespace, mounts a tmpfs and an overlay (the
//! rootfs or the image's layers as lower layers) there, and creates the
//! container in it; its mounts vanish with it. It watches the socket: when
//! the caller's process dies, for any reason, the socket reaches EOF and the
//! helper kills the container and removes everything. What a killed helper
//! leaves is removed by the next sandbox on the same state root
//! ([`sweep`]), or by `cuddy sandbox prune`.

mod config;
mod events;
mod helper;
pub mod image;
mod locate;
mod proto;
mod running;
pub mod sweep;

pub use helper::{run_cli, serve};
pub use proto::Spec;
pub use running::Running;

use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::{BindMount, Source};

/// Where sandboxes keep their state unless [`Sandbox::state_root`] says
/// otherwise (its own root: `cuddy list` of /run/cuddy does not show them).
pub const DEFAULT_STATE_ROOT: &str = "/run/cuddy-sandbox";

/// The exit status reported when [`Sandbox::timeout`] killed the sandbox:
/// 137, as SIGKILL (128 + 9); [`Output::timed_out`] tells the two apart.
pub const TIMEOUT_STATUS: i32 = 137;

/// The exit status of `cuddy sandbox run` when its `--timeout` killed the
/// command: 124, as timeout(1), so that a script tells it from a command
/// killed by SIGKILL (137).
pub const CLI_TIMEOUT_STATUS: i32 = 124;

/// Errors of sandboxes: each names the operation and the path or field.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A builder value the kernel would reject (or take wrongly).
    #[error("sandbox {field} {value:?}: {why}")]
    Invalid {
        field: &'static str,
        value: String,
        why: String,
    },
    /// No `cuddy` binary found: `tried` lists the places looked at.
    #[error(
        "sandbox: cannot find the cuddy binary (tried {tried}); use Sandbox::binary(PATH) or set CUDDY_BIN"
    )]
    Binary { tried: String },
    /// Starting a process (the helper, or `cuddy exec`) failed.
    #[error("sandbox: start {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Talking to the helper failed (it died, or the socket broke).
    #[error("sandbox {id}: {op}: {source}")]
    Channel {
        id: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The helper reported a failure (its message names op and path).
    #[error("sandbox {op}: {message}")]
    Helper { op: &'static str, message: String },
    /// A file or directory operation in the helper or the CLI.
    #[error("sandbox: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call in the helper.
    #[error("sandbox: {op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    /// Making, starting or deleting the container.
    #[error("sandbox container: {0}")]
    Container(#[from] crate::container::ContainerError),
    /// Importing the image.
    #[error("sandbox image: {0}")]
    Image(#[from] image::ImageError),
}

pub type Result<T> = std::result::Result<T, SandboxError>;

/// What a sandboxed process did: like [`std::process::Output`], with the
/// status as one number (the exit code, or 128 + N for signal N).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The sandbox was killed by its [`Sandbox::timeout`] (`status` is then
    /// [`TIMEOUT_STATUS`]).
    pub timed_out: bool,
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A throwaway container, configured like a [`std::process::Command`].
/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Sandbox {
    spec: Spec,
    binary: Option<PathBuf>,
}

impl Sandbox {
    /// The settings as the helper receives them (`cuddy sandbox run`
    /// builds a sandbox and runs it in-process from these).
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    fn new(source: Source) -> Sandbox {
        Sandbox {
            spec: Spec {
                source,
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
                user: None,
                hostname: None,
                mounts: Vec::new(),
                tmpfs: Vec::new(),
                memory: None,
                cpus: None,
                pids: None,
                network: None,
                publish: Vec::new(),
                timeout_ms: None,
                state_root: PathBuf::from(DEFAULT_STATE_ROOT),
                image_cache: None,
            },
            binary: None,
        }
    }

    /// A sandbox over a root filesystem directory, which it never modifies
    /// (it is the read-only lower layer of the sandbox's overlay).
    pub fn rootfs(dir: impl AsRef<Path>) -> Sandbox {
        Sandbox::new(Source::Rootfs(absolute(dir.as_ref())))
    }

    /// A sandbox from an OCI image layout directory or a `docker save`
    /// tarball, imported once into the image cache; its config's Env,
    /// Entrypoint, Cmd, WorkingDir and User are the defaults. One that
    /// holds several images is named as `PATH:NAME` (see
    /// [`image::ImageStore::import`]).
    pub fn image(path: impl AsRef<Path>) -> Sandbox {
        Sandbox::new(Source::Image(absolute(path.as_ref())))
    }

    /// The command and its arguments (replacing an image's Entrypoint and
    /// Cmd); the first one is looked up in the sandbox's PATH.
    pub fn args(mut self, args: impl IntoIterator<Item = impl AsRef<str>>) -> Sandbox {
        self.spec
            .args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// One environment variable (over the image's Env and the default PATH).
    pub fn env(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Sandbox {
        self.spec
            .env
            .push((key.as_ref().to_string(), value.as_ref().to_string()));
        self
    }

    /// The working directory inside the sandbox (absolute).
    pub fn cwd(mut self, dir: impl AsRef<str>) -> Sandbox {
        self.spec.cwd = Some(dir.as_ref().to_string());
        self
    }

    /// Numeric user and group the command runs as (default: the image's
    /// User, else 0:0).
    pub fn user(mut self, uid: u32, gid: u32) -> Sandbox {
        self.spec.user = Some((uid, gid));
        self
    }

    /// The sandbox's hostname (default "sandbox").
    pub fn hostname(mut self, name: impl AsRef<str>) -> Sandbox {
        self.spec.hostname = Some(name.as_ref().to_string());
        self
    }

    /// Bind-mounts host path `src` (a relative one is taken from the
    /// current directory) at `dst` (absolute) in the sandbox.
    pub fn mount(
        mut self,
        src: impl AsRef<Path>,
        dst: impl AsRef<Path>,
        readonly: bool,
    ) -> Sandbox {
        self.spec.mounts.push(BindMount {
            src: absolute(src.as_ref()),
            dst: dst.as_ref().to_string_lossy().into_owned(),
            readonly,
        });
        self
    }

    /// A fresh tmpfs at `dst`.
    pub fn tmpfs(mut self, dst: impl AsRef<Path>) -> Sandbox {
        self.spec
            .tmpfs
            .push(dst.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Memory limit in bytes (swap included): beyond it the OOM killer
    /// ends the sandbox (status 137).
    pub fn memory(mut self, bytes: u64) -> Sandbox {
        self.spec.memory = Some(bytes);
        self
    }

    /// CPU limit, in CPUs (0.5: half of one CPU).
    pub fn cpus(mut self, cpus: f64) -> Sandbox {
        self.spec.cpus = Some(cpus);
        self
    }

    /// Limit on the number of processes and threads (-1: none).
    pub fn pids(mut self, max: i64) -> Sandbox {
        self.spec.pids = Some(max);
        self
    }

    /// Network: "none" (the default: a network namespace with only `lo`),
    /// "host", "bridge", "bridge=NAME" or "cni=NAME" (docs/networking.md).
    pub fn network(mut self, mode: impl AsRef<str>) -> Sandbox {
        self.spec.network = Some(mode.as_ref().to_string());
        self
    }

    /// Publishes a port in bridge mode: `[HOSTIP:]HOSTPORT:CPORT[/tcp|udp]`.
    pub fn publish(mut self, mapping: impl AsRef<str>) -> Sandbox {
        self.spec.publish.push(mapping.as_ref().to_string());
        self
    }

    /// Kills the sandbox this long after it started: its output then has
    /// `timed_out` set and status [`TIMEOUT_STATUS`].
    pub fn timeout(mut self, d: Duration) -> Sandbox {
        self.spec.timeout_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The state root (default [`DEFAULT_STATE_ROOT`]); what a killed
    /// program left there is removed by the next sandbox using it.
    pub fn state_root(mut self, dir: impl AsRef<Path>) -> Sandbox {
        self.spec.state_root = absolute(dir.as_ref());
        self
    }

    /// The image cache directory (default `$CUDDY_IMAGE_CACHE`, else
    /// /var/lib/cuddy/images).
    pub fn image_cache(mut self, dir: impl AsRef<Path>) -> Sandbox {
        self.spec.image_cache = Some(absolute(dir.as_ref()));
        self
    }

    /// The `cuddy` binary that runs the helper. Default: `$CUDDY_BIN`, else
    /// a `cuddy` next to the current executable or one directory above it
    /// (cargo's target/*/deps/), else `cuddy` in PATH. Tests use
    /// `env!("CARGO_BIN_EXE_cuddy")`.
    pub fn binary(mut self, path: impl AsRef<Path>) -> Sandbox {
        self.binary = Some(path.as_ref().to_path_buf());
        self
    }

    /// Starts the sandbox; returns once its command runs.
    ///
    /// ```rust,no_run
    /// let mut r = cuddy::Sandbox::rootfs("/path/to/rootfs")
    ///     .args(["sleep", "1000"])
    ///     .spawn()?;
    /// r.write_file("/tmp/in", b"data")?;
    /// let o = r.exec(["cat", "/tmp/in"])?;
    /// assert_eq!(o.stdout, b"data");
    /// r.kill()?;
    /// assert_eq!(r.wait()?.status, 137);
    /// drop(r); // returns once the sandbox is gone
    /// # Ok::<(), cuddy::SandboxError>(())
    /// ```
    ///
    /// (The same steps run as a real test: tests/sandbox/basics.rs.)
    pub fn spawn(&self) -> Result<Running> {
        config::check(&self.spec)?;
        let bin = locate::binary(self.binary.as_deref())?;
        Running::start(&bin, &self.spec)
    }

    /// Runs the sandbox to its end and removes it: stdin is /dev/null,
    /// stdout and stderr are captured.
    pub fn output(&self) -> Result<Output> {
        let mut r = self.spawn()?;
        r.wait()
    }
}

/// Relative paths are taken from the caller's current directory (the
/// helper may run elsewhere).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
