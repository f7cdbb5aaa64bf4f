//! CNI mode (`--network cni[=NAME]`): cuddy runs the standard CNI plugins
//! itself, speaking the protocol of containernetworking/cni SPEC.md (no
//! libcni): the network configuration list is read from the config dir, each
//! plugin of the list is executed in order for ADD (each given the previous
//! one's result as `prevResult`), in reverse order for DEL, in order for
//! CHECK (both given the recorded ADD result).
//!
//! The attachment (container id, ifname, netns, the exact list used, the
//! ADD result) is recorded in the container's network record BEFORE the
//! ADD and updated after it ([`glue`]), so a delete after a crash runs DEL
//! with the very config that ADD used (SPEC.md allows a DEL without
//! prevResult). A failed ADD is followed by a DEL (SPEC.md "ADD" / "DEL").

pub mod config;
mod glue;
pub mod plugin;

pub use glue::{attach, check_container, prepare, undo};

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use config::NetList;
use plugin::{Invocation, Verb};

use super::PortMapping;

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

/// What cuddy records of one attachment (the data of the record's
/// `cni` effect).
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
    /// cuddy's own network namespace at ADD (device and inode of
    /// /proc/self/ns/net): DEL and CHECK run from the same one only, so the
    /// plugins' iptables and bridge work never lands in another namespace.
    #[serde(default)]
    pub runtime_netns: (u64, u64),
}

/// A failed ADD: the error, and whether the DEL after it succeeded (then
/// nothing is left and the record may forget the attachment).
#[derive(Debug)]
pub struct AddFailed {
    pub error: CniError,
    pub undone: bool,
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
            runtime_netns: runtime_netns().unwrap_or_default(),
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

    /// ADD: each plugin in order, each given the previous result. A
    /// failure runs DEL over the whole list (SPEC.md: a runtime must call
    /// DEL after a failed ADD); the error names the plugin and its message.
    pub fn add(&mut self, netns: &str) -> Result<Value, AddFailed> {
        self.netns = netns.into();
        self.result = None;
        let mut prev: Option<Value> = None;
        for p in self.plugins() {
            let parsed = self
                .invoke(Verb::Add, &p, netns, prev.as_ref())
                .and_then(|out| {
                    serde_json::from_slice::<Value>(&out).map_err(|e| CniError::Plugin {
                        network: self.network().into(),
                        plugin: p.get("type").and_then(Value::as_str).unwrap_or("").into(),
                        command: "ADD",
                        why: format!("its result is not JSON: {e}"),
                    })
                });
            match parsed {
                Ok(v) => prev = Some(v),
                Err(error) => return Err(self.undo_failed_add(netns, error)),
            }
        }
        let result = prev.unwrap_or_else(|| json!({ "cniVersion": self.version() }));
        self.result = Some(result.clone());
        Ok(result)
    }

    fn undo_failed_add(&self, netns: &str, error: CniError) -> AddFailed {
        match self.del(netns) {
            Ok(()) => AddFailed {
                error,
                undone: true,
            },
            Err(d) => AddFailed {
                error: CniError::Protocol {
                    network: self.network().into(),
                    why: format!("{error}; and the DEL after it failed too: {d}"),
                },
                undone: false,
            },
        }
    }

    /// DEL: each plugin in reverse order, with the recorded result as
    /// prevResult when there is one; every plugin is run even when one
    /// fails (the first error is returned).
    pub fn del(&self, netns: &str) -> Result<(), CniError> {
        self.same_runtime_netns()?;
        let mut first: Option<CniError> = None;
        for p in self.plugins().iter().rev() {
            if let Err(e) = self.invoke(Verb::Del, p, netns, self.result.as_ref()) {
                tracing::warn!("{e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Refuses to run the plugins from another network namespace than
    /// ADD's (a delete run elsewhere would make them touch that one's
    /// iptables and bridges).
    fn same_runtime_netns(&self) -> Result<(), CniError> {
        let now = runtime_netns().unwrap_or_default();
        if self.runtime_netns != (0, 0) && now != self.runtime_netns {
            return Err(CniError::Protocol {
                network: self.network().into(),
                why: "cuddy runs in another network namespace than the one it ran ADD in: run delete (or network check) from that one".into(),
            });
        }
        Ok(())
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
        self.same_runtime_netns()?;
        for p in self.plugins() {
            self.invoke(Verb::Check, &p, netns, Some(result))?;
        }
        Ok(())
    }
}

/// Device and inode of cuddy's network namespace.
fn runtime_netns() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    Some((m.dev(), m.ino()))
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
