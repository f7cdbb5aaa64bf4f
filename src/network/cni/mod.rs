//! CNI mode (`--network cni[=NAME]`): cuddy runs the standard CNI plugins
//! itself, speaking the protocol of containernetworking/cni SPEC.md (no
//! libcni): the network configuration list is read from the config dir, each
//! plugin of the list is executed in order for ADD (each given the previous
//! one's result as `prevResult`), in reverse order for DEL, in order for
//! CHECK (both given the recorded ADD result).
//!
//! The attachment (container id, ifname, netns, the exact list used, the
//! ADD result) is recorded in the container's state directory BEFORE the
//! ADD and updated after it (`cni.json`), so a delete after a crash runs DEL
//! with the very config that ADD used (SPEC.md allows a DEL without
//! prevResult). A failed ADD is followed by a DEL (SPEC.md "ADD" / "DEL").

pub mod config;
pub mod plugin;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use config::NetList;
use plugin::{Invocation, Verb};

use super::PortMapping;

/// The record's file name in the container's state directory.
pub const RECORD: &str = "cni.json";
/// The interface the plugins create in the container.
pub const IFNAME: &str = "eth0";

/// Errors of CNI mode: each names the network, file or plugin concerned.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("--cni-config-dir {dir}: {why}")]
    ConfigDir { dir: PathBuf, why: String },
    #[error("CNI network config {file}: {why}")]
    Config { file: PathBuf, why: String },
    #[error("--network cni={name}: no network of that name in {dir} (found: {found})")]
    UnknownNetwork {
        name: String,
        dir: PathBuf,
        found: String,
    },
    #[error(
        "CNI network {network:?}: plugin {plugin:?} is not in --cni-plugin-dir {dir} (or not executable)"
    )]
    MissingPlugin {
        network: String,
        plugin: String,
        dir: PathBuf,
    },
    #[error("CNI network {network:?}: plugin {plugin:?} {command} failed: {why}")]
    Plugin {
        network: String,
        plugin: String,
        command: &'static str,
        why: String,
    },
    #[error("CNI network {network:?}: {why}")]
    Protocol { network: String, why: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What cuddy records of one attachment (`cni.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
    /// The namespace as the plugins were told it at ADD (informative: a
    /// later DEL or CHECK opens the live init's namespace again).
    pub netns: String,
    pub plugin_dir: PathBuf,
    /// The file the list came from.
    pub config_file: PathBuf,
    /// The exact network configuration list used at ADD.
    pub list: Value,
    /// `runtimeConfig` given to plugins declaring the capability
    /// (`portMappings` from `--publish`).
    #[serde(default)]
    pub port_mappings: Vec<Value>,
    /// The ADD result; None while (or if) the ADD has not completed.
    pub result: Option<Value>,
}

impl Attachment {
    /// Everything checked before anything is created: the list, its
    /// plugins present in the plugin dir, `--publish` only with a plugin
    /// that declares `portMappings`.
    pub fn prepare(
        container_id: &str,
        config_dir: &Path,
        plugin_dir: &Path,
        name: Option<&str>,
        publish: &[PortMapping],
    ) -> Result<Attachment, CniError> {
        let net = config::load(config_dir, name)?;
        net.check_plugins(plugin_dir)?;
        if !publish.is_empty() && !net.has_capability("portMappings") {
            return Err(CniError::Protocol {
                network: net.name.clone(),
                why: "--publish needs a plugin with the portMappings capability (portmap) in the list".into(),
            });
        }
        Ok(Attachment {
            container_id: container_id.into(),
            ifname: IFNAME.into(),
            netns: String::new(),
            plugin_dir: plugin_dir.into(),
            config_file: net.file.clone(),
            list: net.list,
            port_mappings: publish.iter().map(port_mapping).collect(),
            result: None,
        })
    }

    fn network(&self) -> &str {
        self.list.get("name").and_then(Value::as_str).unwrap_or("")
    }

    fn version(&self) -> &str {
        self.list
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn plugins(&self) -> Vec<Value> {
        self.list
            .get("plugins")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// One plugin's stdin (libcni's buildOneConfig): its object plus the
    /// list's name and cniVersion, `prevResult` and the `runtimeConfig` of
    /// the capabilities it declares.
    fn plugin_config(&self, plugin: &Value, prev: Option<&Value>) -> Vec<u8> {
        let mut conf = plugin.clone();
        if let Some(o) = conf.as_object_mut() {
            o.insert("name".into(), json!(self.network()));
            o.insert("cniVersion".into(), json!(self.version()));
            if let Some(p) = prev {
                o.insert("prevResult".into(), p.clone());
            }
            let wants_ports = plugin
                .pointer("/capabilities/portMappings")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if wants_ports && !self.port_mappings.is_empty() {
                o.insert(
                    "runtimeConfig".into(),
                    json!({ "portMappings": self.port_mappings }),
                );
            }
        }
        serde_json::to_vec(&conf).unwrap_or_default()
    }

    fn invoke(
        &self,
        verb: Verb,
        plugin: &Value,
        netns: &str,
        prev: Option<&Value>,
    ) -> Result<Vec<u8>, CniError> {
        let typ = plugin.get("type").and_then(Value::as_str).unwrap_or("");
        let config = self.plugin_config(plugin, prev);
        plugin::invoke(
            &Invocation {
                command: verb,
                plugin: typ,
                plugin_dir: &self.plugin_dir,
                container_id: &self.container_id,
                netns,
                ifname: &self.ifname,
                config: &config,
                network: self.network(),
            },
            plugin::TIMEOUT,
        )
    }

    /// ADD: records the intent, runs each plugin in order, records the
    /// result. A failure runs DEL over the whole list and removes the record
    /// (nothing left); the error names the plugin and its message.
    pub fn add(&mut self, state_dir: &Path, netns: &str) -> Result<Value, CniError> {
        self.netns = netns.into();
        self.result = None;
        save(state_dir, self)?;
        let mut prev: Option<Value> = None;
        for p in self.plugins() {
            let out = match self.invoke(Verb::Add, &p, netns, prev.as_ref()) {
                Ok(o) => o,
                Err(e) => return Err(self.undo_failed_add(state_dir, netns, e)),
            };
            match serde_json::from_slice::<Value>(&out) {
                Ok(v) => prev = Some(v),
                Err(e) => {
                    let typ = p.get("type").and_then(Value::as_str).unwrap_or("");
                    let err = CniError::Plugin {
                        network: self.network().into(),
                        plugin: typ.into(),
                        command: "ADD",
                        why: format!("its result is not JSON: {e}"),
                    };
                    return Err(self.undo_failed_add(state_dir, netns, err));
                }
            }
        }
        let result = prev.unwrap_or_else(|| json!({ "cniVersion": self.version() }));
        self.result = Some(result.clone());
        save(state_dir, self)?;
        Ok(result)
    }

    /// After a failed ADD: DEL (SPEC.md: a runtime must call DEL after a
    /// failed ADD), then the record goes; a DEL failure is added to the
    /// message and the record kept, so that `delete` retries it.
    fn undo_failed_add(&mut self, state_dir: &Path, netns: &str, e: CniError) -> CniError {
        match self.del(state_dir, netns) {
            Ok(()) => e,
            Err(d) => CniError::Protocol {
                network: self.network().into(),
                why: format!("{e}; and the DEL after it failed too: {d}"),
            },
        }
    }

    /// DEL: each plugin in reverse order, with the recorded result as
    /// prevResult when there is one; every plugin is run even when one
    /// fails. All succeeded: the record is removed.
    pub fn del(&self, state_dir: &Path, netns: &str) -> Result<(), CniError> {
        let mut first: Option<CniError> = None;
        for p in self.plugins().iter().rev() {
            if let Err(e) = self.invoke(Verb::Del, p, netns, self.result.as_ref()) {
                tracing::warn!("{e}");
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => remove_record(state_dir),
        }
    }

    /// CHECK (SPEC.md: cniVersion 0.4.0 or later, with the ADD result as
    /// prevResult), each plugin in order, unless the list disables it.
    pub fn check(&self, netns: &str) -> Result<(), CniError> {
        let bad = |why: &str| CniError::Protocol {
            network: self.network().into(),
            why: why.into(),
        };
        if !config::at_least_040(self.version()) {
            return Err(bad(&format!(
                "CHECK needs cniVersion 0.4.0 or later; the list says {}",
                self.version()
            )));
        }
        if self.list.get("disableCheck").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        let result = self
            .result
            .as_ref()
            .ok_or_else(|| bad("no ADD result recorded (the ADD did not complete)"))?;
        for p in self.plugins() {
            self.invoke(Verb::Check, &p, netns, Some(result))?;
        }
        Ok(())
    }
}

/// `--publish` as CNI's portMappings capability argument
/// (CONVENTIONS.md "Port mappings").
fn port_mapping(p: &PortMapping) -> Value {
    let mut v = json!({
        "hostPort": p.host_port,
        "containerPort": p.container_port,
        "protocol": p.proto.to_string(),
    });
    if let (Some(ip), Some(o)) = (p.host_ip, v.as_object_mut()) {
        o.insert("hostIP".into(), json!(ip.to_string()));
    }
    v
}

/// Writes the record (atomically: a crash leaves the old or the new one).
pub fn save(state_dir: &Path, att: &Attachment) -> Result<(), CniError> {
    let path = state_dir.join(RECORD);
    let text = serde_json::to_vec_pretty(att).map_err(|e| CniError::Io {
        op: "serialize",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    crate::utils::write_atomic(&path, &text, 0o600).map_err(|source| CniError::Io {
        op: "write",
        path,
        source,
    })
}

/// The record of a container, if it has one.
pub fn load_record(state_dir: &Path) -> Result<Option<Attachment>, CniError> {
    let path = state_dir.join(RECORD);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CniError::Io {
                op: "read",
                path,
                source,
            });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| CniError::Io {
            op: "parse",
            path,
            source: std::io::Error::other(e),
        })
}

fn remove_record(state_dir: &Path) -> Result<(), CniError> {
    let path = state_dir.join(RECORD);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CniError::Io {
            op: "remove",
            path,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The DNS settings of a result (SPEC.md "Success": `dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
    pub domain: Option<String>,
}

/// The result's `dns`, where present (the bridge plugin reports only what
/// its config's `dns` says; often nothing).
pub fn dns(result: &Value) -> Option<Dns> {
    let d = result.get("dns")?;
    let strs = |k: &str| -> Vec<String> {
        d.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let dns = Dns {
        nameservers: strs("nameservers")
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        search: strs("search"),
        options: strs("options"),
        domain: d.get("domain").and_then(Value::as_str).map(String::from),
    };
    (dns != Dns::default()).then_some(dns)
}

/// The container's addresses in a result (`ips[].address`, prefix
/// dropped), for /etc/hosts.
pub fn addresses(result: &Value) -> Vec<IpAddr> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|ip| ip.get("address").and_then(Value::as_str))
                .filter_map(|s| s.split('/').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
