//! Loading and validating a bundle's `config.json` (OCI runtime spec 1.x,
//! config.md and config-linux.md). Everything that can be checked before any
//! kernel object exists is checked here, so bad input fails before cuddy
//! creates a state directory, a cgroup or a process.

mod default;
mod validate;

pub use default::default_spec;
pub use validate::{MAX_ID, RLIMITS, check_user_ids, validate};

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
    #[error("parse {path}: {field}{source}")]
    Parse {
        path: PathBuf,
        /// Where in the document with ": ", e.g. `linux.namespaces[6].type: `;
        /// empty for syntax errors (line and column say where).
        field: String,
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
    // serde_path_to_error names the field ("linux.namespaces[6].type");
    // serde_json's error adds line and column.
    let de = &mut serde_json::Deserializer::from_slice(&text);
    let parsed: Result<Spec, _> = serde_path_to_error::deserialize(de);
    // The spec's own names of scheduler flags, which the parser spells
    // differently (process::setup::spec_sched_flag_names).
    let parsed = parsed.or_else(|e| {
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            return Err(e);
        };
        let renamed = v
            .get_mut("process")
            .is_some_and(crate::process::setup::spec_sched_flag_names);
        if renamed {
            serde_path_to_error::deserialize(v)
        } else {
            Err(e)
        }
    });
    let spec: Spec = parsed.map_err(|e| {
        let field = e.path().to_string();
        let source = e.into_inner();
        let field = if source.is_data() && field != "." {
            format!("{field}: ")
        } else {
            String::new()
        };
        SpecError::Parse {
            path: path.clone(),
            field,
            source,
        }
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
