//! Loading and validating a bundle's `config.json` (OCI runtime spec 1.x,
//! config.md and config-linux.md). Everything that can be checked before any
//! kernel object exists is checked here, so bad input fails before cuddy
//! creates a state directory, a cgroup or a process.

mod default;
mod validate;

pub use default::default_spec;
pub use validate::{RLIMITS, validate};

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// The runtime spec version cuddy implements.
pub const OCI_VERSION: &str = "1.3.0";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A loaded, validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Reads `config.json` from `bundle`, parses it (errors name line and column)
/// and validates it.
pub fn load(bundle: &Path) -> Result<Bundle, SpecError> {
    let dir = fs::canonicalize(bundle).map_err(|source| SpecError::Bundle {
        path: bundle.to_path_buf(),
        source,
    })?;
    let path = dir.join("config.json");
    let text = fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let spec: Spec = serde_json::from_slice(&text).map_err(|source| SpecError::Parse {
        path: path.clone(),
        source,
    })?;
    let rootfs = validate(&spec, &dir, &path)?;
    Ok(Bundle { dir, rootfs, spec })
}

pub(crate) fn invalid(
    path: &Path,
    field: impl Into<String>,
    reason: impl Into<String>,
) -> SpecError {
    SpecError::Invalid {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}
