//! The container's root filesystem: mounts from config.json, devices,
//! masked and read-only paths, and the switch into it with pivot_root.
//!
//! Everything here runs in the container's init, in its new mount namespace,
//! before the user process is exec'd. Paths inside the rootfs are resolved with
//! `openat2(RESOLVE_IN_ROOT)` so a symlink planted in the image can never make
//! cuddy mount or create something outside the rootfs.

mod cgroupfs;
mod copyup;
pub mod detached;
mod devices;
mod flags;
mod idmap;
pub mod procsys;
mod rootfs;
mod secure;
pub mod shared_ns;
mod sources;

pub use flags::{MountOptions, parse_options};
pub use rootfs::{RootfsConfig, finish_rootfs, prepare_rootfs};
pub use secure::{InRoot, open_in_root, openat2};
pub use sources::{MountSources, SourcePlan};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{op} {path}: {source}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("mount {typ} on {dest} (mounts[{index}], options {options:?}): {source}")]
    Mount {
        index: usize,
        typ: String,
        dest: PathBuf,
        options: Vec<String>,
        #[source]
        source: nix::Error,
    },
    #[error("mounts[{index}] ({dest}): {reason}")]
    Invalid {
        index: usize,
        dest: PathBuf,
        reason: String,
    },
    #[error("{what}: {reason}")]
    Other { what: String, reason: String },
}

pub(crate) fn sys(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(nix::Error) -> MountError {
    let path = path.into();
    move |source| MountError::Sys { op, path, source }
}
