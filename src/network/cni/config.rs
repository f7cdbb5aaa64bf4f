//! Network configuration lists as libcni finds them: the files of the
//! config dir ending in `.conflist`, `.conf` or `.json`, in lexical order; a
//! `.conflist` is a list, any other file a single plugin config made into a
//! list of one (libcni's ConfListFromConf). `cni=NAME` picks the list whose
//! `name` is NAME; plain `cni` the first file (as podman and CNI's tools
//! pick the default network).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::CniError;

/// The cniVersions whose protocol cuddy speaks (Debian's plugins 1.1.1
/// support 0.1.0 to 1.0.0; CHECK exists from 0.4.0).
pub const VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// Does this version have CHECK and prevResult on DEL (0.4.0 and later)?
pub fn at_least_040(v: &str) -> bool {
    matches!(v, "0.4.0" | "1.0.0")
}

/// One network configuration list.
#[derive(Debug, Clone)]
pub struct NetList {
    pub file: PathBuf,
    pub name: String,
    pub list: Value,
}

/// The list named `name` (or the first) in `dir`.
pub fn load(dir: &Path, name: Option<&str>) -> Result<NetList, CniError> {
    let files = config_files(dir)?;
    if files.is_empty() {
        return Err(CniError::ConfigDir {
            dir: dir.into(),
            why: "no network configuration (*.conflist, *.conf, *.json) found".into(),
        });
    }
    let Some(name) = name else {
        return parse_file(&files[0]);
    };
    let mut found = Vec::new();
    for f in &files {
        match parse_file(f) {
            Ok(n) if n.name == name => return Ok(n),
            Ok(n) => found.push(n.name),
            // As libcni: a broken file does not hide the others.
            Err(e) => tracing::debug!("skipped: {e}"),
        }
    }
    Err(CniError::UnknownNetwork {
        name: name.into(),
        dir: dir.into(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}

fn config_files(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let rd = std::fs::read_dir(dir).map_err(|e| CniError::ConfigDir {
        dir: dir.into(),
        why: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

fn parse_file(file: &Path) -> Result<NetList, CniError> {
    let bad = |why: String| CniError::Config {
        file: file.into(),
        why,
    };
    let text = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let list = if file.extension().is_some_and(|x| x == "conflist") {
        v
    } else {
        from_single(v).map_err(|w| bad(w.into()))?
    };
    let name = validate(&list).map_err(bad)?;
    Ok(NetList {
        file: file.into(),
        name,
        list,
    })
}

/// A single plugin config as a list of one (libcni's ConfListFromConf).
fn from_single(conf: Value) -> Result<Value, &'static str> {
    let name = conf.get("name").cloned().ok_or("\"name\" is missing")?;
    let version = conf
        .get("cniVersion")
        .cloned()
        .ok_or("\"cniVersion\" is missing")?;
    Ok(json!({ "cniVersion": version, "name": name, "plugins": [conf] }))
}

/// The list's shape (SPEC.md "Section 1: Network configuration format");
/// returns its name.
fn validate(list: &Value) -> Result<String, String> {
    let name = list
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("\"name\" is missing or not a string")?;
    let v = list
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or("\"cniVersion\" is missing or not a string")?;
    if !VERSIONS.contains(&v) {
        return Err(format!(
            "cniVersion {v:?} is not supported (cuddy speaks {})",
            VERSIONS.join(", ")
        ));
    }
    let plugins = list
        .get("plugins")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or("\"plugins\" is missing or empty")?;
    for (i, p) in plugins.iter().enumerate() {
        let t = p
            .get("type")
            .and_then(Value::as_str)
            .ok_or(format!("plugins[{i}]: \"type\" is missing"))?;
        if t.is_empty() || t.contains('/') || t == "." || t == ".." {
            return Err(format!(
                "plugins[{i}].type {t:?} is not a plugin name (a file name in the plugin dir)"
            ));
        }
    }
    Ok(name.into())
}

impl NetList {
    fn types(&self) -> impl Iterator<Item = &str> {
        self.list
            .get("plugins")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
    }

    /// Every plugin of the list is an executable file in `dir`.
    pub fn check_plugins(&self, dir: &Path) -> Result<(), CniError> {
        use std::os::unix::fs::PermissionsExt;
        for t in self.types() {
            let ok = std::fs::metadata(dir.join(t))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !ok {
                return Err(CniError::MissingPlugin {
                    network: self.name.clone(),
                    plugin: t.into(),
                    dir: dir.into(),
                });
            }
        }
        Ok(())
    }

    /// Does a plugin of the list declare this capability?
    pub fn has_capability(&self, cap: &str) -> bool {
        self.list
            .get("plugins")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|p| {
                p.get("capabilities")
                    .and_then(|c| c.get(cap))
                    .and_then(Value::as_bool)
                    == Some(true)
            })
    }
}
