//! Loading and validating a bundle's `config.json` (OCI runtime spec 1.x,
//! config.md and config-linux.md). Everything that can be checked before any
//! kernel object exists is checked here, so bad input fails before cuddy
//! creates a state directory, a cgroup or a process.

pub mod caps;
mod default;
pub mod idmap;
pub mod json;
mod resources;
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
    /// The file the spec was read from (`<dir>/config.json`, or the
    /// `--config` file).
    pub config: PathBuf,
}

/// Reads `config.json` from `bundle`, parses it (errors name line and column)
/// and validates it.
pub fn load(bundle: &Path) -> Result<Bundle, SpecError> {
    load_config(bundle, None)
}

/// [`load`], reading the spec from `config` instead of the bundle's
/// `config.json` when given (crun's `create --config FILE`). Relative paths
/// in it (`root.path`, bind sources) stay relative to the bundle
/// (config.md#root). A relative `config` is taken from the current directory.
pub fn load_config(bundle: &Path, config: Option<&Path>) -> Result<Bundle, SpecError> {
    let dir = fs::canonicalize(bundle).map_err(|source| SpecError::Bundle {
        path: bundle.to_path_buf(),
        source,
    })?;
    let path = match config {
        Some(c) => std::path::absolute(c).map_err(|source| SpecError::Read {
            path: c.to_path_buf(),
            source,
        })?,
        None => dir.join("config.json"),
    };
    let text = fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let mut spec = parse_config(&text, &path)?;
    normalize(&mut spec);
    let rootfs = validate(&spec, &dir, &path)?;
    Ok(Bundle {
        dir,
        rootfs,
        spec,
        config: path,
    })
}

/// Parses a config.json (`path` names it in errors): a JSON object, with an
/// `ociVersion`, of the spec's types. Static validation is [`validate`].
#[doc(hidden)]
pub fn parse_config(text: &[u8], path: &Path) -> Result<Spec, SpecError> {
    // serde reads a JSON array as a struct's fields in order ("[]" is a
    // config with every field absent): refuse anything but an object first.
    if let Some(found) = json::not_an_object(text) {
        return Err(invalid(path, "config", json::object_expected(found)));
    }
    let spec = parse(text, path)?;
    let raw: serde_json::Value = serde_json::from_slice(text).unwrap_or_default();
    json::check_shape(&raw, &spec, "").map_err(|e| match e.split_once(": ") {
        Some((field, why)) => invalid(path, field, why),
        None => invalid(path, "config", e),
    })?;
    // config.md "Specification version": REQUIRED. The parser defaults a
    // missing one to "", which validation would show as `""`.
    if spec.version().is_empty() && raw.get("ociVersion").is_none() {
        return Err(invalid(
            path,
            "ociVersion",
            format!(
                "missing: config.md requires the runtime spec version the config follows (e.g. \"{OCI_VERSION}\")"
            ),
        ));
    }
    Ok(spec)
}

/// What load does to a parsed spec before validation: one entry per
/// variable in `process.env` ([`dedup_env`]).
#[doc(hidden)]
pub fn normalize(spec: &mut Spec) {
    if let Some(p) = spec.process_mut() {
        if let Some(env) = p.env() {
            let env = dedup_env(env);
            p.set_env(Some(env));
        }
    }
}

/// Parses a config.json. Capability names that cannot be applied are
/// dropped with a warning first (`caps`); the typed parse then runs on the
/// original text when nothing was dropped, so that errors keep their line
/// and column. A config that parses as it is, on a kernel that knows every
/// capability, is parsed once.
fn parse(text: &[u8], path: &Path) -> Result<Spec, SpecError> {
    // The common case, parsed once: every name known to this build (the
    // typed parse succeeds) and to the running kernel.
    if caps::kernel_knows_all() {
        if let Ok(spec) = serde_json::from_slice::<Spec>(text) {
            return Ok(spec);
        }
    }
    let syntax = |source: serde_json::Error| SpecError::Parse {
        path: path.to_path_buf(),
        field: String::new(),
        source,
    };
    let mut value: serde_json::Value = serde_json::from_slice(text).map_err(syntax)?;
    let warnings = caps::filter_config(&mut value);
    caps::warn_all(path, &warnings);
    // serde_path_to_error names the field ("linux.namespaces[6].type");
    // serde_json's error adds line and column.
    // The spec's own names of scheduler flags, which the parser spells
    // differently (process::setup::spec_sched_flag_names).
    let renamed = value
        .get_mut("process")
        .is_some_and(crate::process::setup::spec_sched_flag_names);
    let res = if warnings.is_empty() && !renamed {
        let de = &mut serde_json::Deserializer::from_slice(text);
        serde_path_to_error::deserialize(de)
    } else {
        serde_path_to_error::deserialize(value)
    };
    res.map_err(|e| {
        let field = e.path().to_string();
        let source = e.into_inner();
        let field = if source.is_data() && field != "." {
            format!("{field}: ")
        } else {
            String::new()
        };
        SpecError::Parse {
            path: path.to_path_buf(),
            field,
            source,
        }
    })
}

/// The copy of a `--config` file in the container's state directory.
const CONFIG_COPY: &str = "config.json";

/// With `create --config FILE`, keeps a copy of that file in the state
/// directory `state_dir`, so that `exec` reads the spec the container was
/// created from (as crun does); nothing when the bundle's own config.json
/// was used.
pub fn copy_config(bundle: &Bundle, state_dir: &Path) -> Result<(), SpecError> {
    if bundle.config == bundle.dir.join("config.json") {
        return Ok(());
    }
    let to = state_dir.join(CONFIG_COPY);
    let text = fs::read(&bundle.config).map_err(|source| SpecError::Read {
        path: bundle.config.clone(),
        source,
    })?;
    crate::utils::write_atomic(&to, &text, 0o600)
        .map_err(|source| SpecError::Write { path: to, source })
}

/// The bundle of an existing container: its state directory's copy of the
/// `--config` file when create was given one, else the bundle's config.json.
pub fn load_for_state(bundle: &Path, state_dir: &Path) -> Result<Bundle, SpecError> {
    let copy = state_dir.join(CONFIG_COPY);
    load_config(bundle, copy.exists().then_some(copy.as_path()))
}

/// One entry per variable name, the last occurrence winning at its own
/// position (as runc's prepareEnv and Go's os/exec dedupEnv): a later
/// `NAME=` in `process.env`, or an `exec --env NAME=` appended after it,
/// overrides an earlier one. An entry without `=` is kept as is (validation
/// reports it).
pub fn dedup_env(env: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = env
        .iter()
        .rev()
        .filter(|e| e.split_once('=').is_none_or(|(k, _)| seen.insert(k)))
        .cloned()
        .collect();
    out.reverse();
    out
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

#[cfg(test)]
mod tests {
    use super::{dedup_env, parse_config};

    fn err(text: &str) -> String {
        parse_config(text.as_bytes(), std::path::Path::new("c.json"))
            .err()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_config_must_be_an_object_with_a_version() {
        // config.md: config.json is a JSON object; ociVersion is REQUIRED.
        let e = err("\n [1, 2]");
        assert!(e.contains("config: must be a JSON object"), "{e}");
        assert!(e.contains("an array at line 2 column 2"), "{e}");
        assert!(err("").contains("an empty file"));
        let e = err(r#"{"root": {"path": "rootfs"}}"#);
        assert!(e.contains("ociVersion: missing"), "{e}");
        // "" is present, so validation reports it as unsupported.
        assert!(parse_config(br#"{"ociVersion": ""}"#, "c".as_ref()).is_ok());
    }

    #[test]
    fn an_array_for_an_object_names_the_field() {
        let e = err(r#"{"ociVersion": "1.0.2", "linux": {"resources": [null]}}"#);
        assert!(e.contains("linux.resources: must be a JSON object"), "{e}");
        let e = err(r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "user": []}}"#);
        assert!(e.contains("process.user: must be a JSON object"), "{e}");
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn later_duplicates_win_once() {
        // config.md#posix-process: env as in IEEE Std 1003.1-2008 environ;
        // one value per name reaches the process.
        let e = v(&["PATH=/a", "HOME=/root", "X=1", "PATH=/b", "X=2"]);
        assert_eq!(dedup_env(&e), v(&["HOME=/root", "PATH=/b", "X=2"]));
    }

    #[test]
    fn distinct_names_keep_their_order() {
        let e = v(&["B=1", "A=2", "AB=3", "A"]);
        assert_eq!(dedup_env(&e), e);
    }
}
