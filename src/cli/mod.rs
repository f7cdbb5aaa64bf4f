//! Command-line surface, shaped like runc's so orchestrators can call cuddy
//! exactly as they call runc. Only clap structs live here; the work is done by
//! `crate::container`.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod image;
mod kill;
mod list;
mod network;
mod pause;
mod ps;
mod run;
pub mod sandbox;
mod spec;
mod start;
mod state;
mod update;

pub use create::{CreateArgs, CreateFlags};
pub use delete::DeleteArgs;
pub use events::EventsArgs;
pub use exec::ExecArgs;
pub use features::FeaturesArgs;
pub use image::{ImageArgs, ImageCommand, ImageFormat, run as image_run};
pub use kill::KillArgs;
pub use list::{ListArgs, ListFormat};
pub use network::{NetworkArgs, NetworkCommand, run as network_run};
pub use pause::{PauseArgs, ResumeArgs};
pub use ps::{PsArgs, PsFormat};
pub use run::RunArgs;
pub use sandbox::SandboxArgs;
pub use spec::SpecArgs;
pub use start::StartArgs;
pub use state::StateArgs;
pub use update::UpdateArgs;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// The version text, in runc's shape (`runc version X` / `spec: Y`): clap
/// prints "cuddy " before it, giving `cuddy version X` / `spec: Y`. Then
/// crun's feature line: one `+NAME` per feature this build has (crun prints
/// `+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +CRIU +YAJL`, each only
/// when built in). SYSTEMD is the systemd cgroup driver
/// (src/cgroups/systemd/); cuddy has no CRIU, so it is not listed; SELINUX and APPARMOR mean labels are applied where the
/// host runs the module and refused where it does not (src/lsm.rs); CAP is
/// capability sets (caps crate), SECCOMP the filters (libseccomp), EBPF the
/// cgroup v2 device filter (src/cgroups/bpf.rs).
pub const VERSION_TEXT: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    "\nspec: ",
    "1.3.0",
    "\n",
    feature_line!()
);

/// The `+FEATURE` line of `--version` (crun's format), as a literal for
/// `concat!`.
macro_rules! feature_line {
    () => {
        "+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF"
    };
}
use feature_line;

/// The `+FEATURE` line of `--version` (crun's format).
pub const FEATURE_LINE: &str = feature_line!();

/// `--cgroup-manager` (crun): who makes the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupManager {
    /// cuddy writes the cgroup filesystem itself (the default).
    Cgroupfs,
    /// The systemd driver (as `--systemd-cgroup`): a transient scope unit.
    Systemd,
    /// No cgroup at all: the container stays in the caller's cgroup.
    Disabled,
}

#[derive(Debug, Parser)]
#[command(
    name = "cuddy",
    version = VERSION_TEXT,
    about = "A daemonless, runc-compatible OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state (default /run/cuddy, or
    /// $XDG_RUNTIME_DIR/cuddy when not root).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Enable debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups: the container's cgroup is a transient scope
    /// (cgroupsPath `slice:prefix:name`).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// crun's cgroup manager: cgroupfs (default), systemd (as
    /// --systemd-cgroup) or disabled (no cgroup; linux.resources ignored
    /// with a warning).
    #[arg(
        long = "cgroup-manager",
        global = true,
        value_enum,
        value_name = "MANAGER"
    )]
    pub cgroup_manager: Option<CgroupManager>,
    /// Rootless mode: true, false or auto (default auto).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "true|false|auto")]
    pub rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', short_alias = 'V', long = "version", action = clap::ArgAction::Version)]
    pub version: Option<bool>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Start the user process of a created container.
    Start(StartArgs),
    /// Create and start a container; in the foreground, wait and exit with its status.
    Run(RunArgs),
    /// Print the container's state as JSON.
    State(StateArgs),
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// Send a signal to the container's init (or, with --all, every process).
    Kill(KillArgs),
    /// Delete a container and everything it created.
    Delete(DeleteArgs),
    /// List containers.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Write a default config.json.
    Spec(SpecArgs),
    /// Print the features this runtime supports as JSON.
    Features(FeaturesArgs),
    /// Freeze every process of a running container.
    Pause(PauseArgs),
    /// Thaw a paused container.
    Resume(ResumeArgs),
    /// Change the resource limits of a live container.
    Update(Box<UpdateArgs>),
    /// Print resource usage (--stats) or stream stats and OOM events as JSON.
    Events(EventsArgs),
    /// List the processes of a container.
    Ps(PsArgs),
    /// cuddy's networks (bridge mode): ls, inspect, create, rm, prune;
    /// check (CNI CHECK of a --network cni container).
    Network(NetworkArgs),
    /// The image cache of sandboxes: import, ls, rm, prune (docs/images.md).
    Image(ImageArgs),
    /// Throwaway sandboxes for test suites: run (a command in a
    /// copy-on-write container over a rootfs or image), prune.
    Sandbox(SandboxArgs),
}
