//! Container networking (docs/networking.md). Under an orchestrator cuddy
//! joins the network namespace it is given and touches nothing; standalone,
//! `--network` (or `cuddy.network.*` annotations) asks cuddy to wire the
//! container itself.
//!
//! The life of a network request, as `create` drives it (see [`setup`]):
//! 1. [`setup::plan`], before the namespaces are planned: resolves the
//!    request (CLI over annotations) and fixes the spec's network namespace
//!    (none/bridge/cni: a new one; host: none at all).
//! 2. [`setup::Plan::prepare`], in the state directory, before clone: opens
//!    the container's [`record::Record`] (`network.json`), takes address
//!    leases, makes sure the bridge exists, writes the /etc files and adds
//!    their bind mounts to the spec.
//! 3. [`setup::Plan::attach`], after clone and before the init is released:
//!    wires the init's network namespace (veth, addresses, routes), then
//!    the extensions (published ports, netDevices).
//! 4. [`teardown`] on delete (and on a failed create): undoes what the
//!    record lists, newest first, idempotently.
//!
//! Every side effect is written to the record *before* it is made, so a
//! delete after a crash undoes exactly what exists.

pub mod bridge;
pub mod cni;
pub mod config;
pub mod etc;
pub mod held;
pub mod ipam;
pub mod nat;
pub mod netdev;
pub mod netlink;
pub mod nft;
pub mod ports;
pub mod record;
pub mod request;
pub mod rtnl;
pub mod setup;
pub mod tools;

pub use record::{Effect, Record};
pub use request::{Mac, Mode, Options, PortMapping, Proto, Request};
pub use setup::{Attach, Plan, plan, teardown};

use std::path::PathBuf;

/// Errors of the network module: each names the operation and the field,
/// interface, address or path concerned.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A bad network request (CLI flag or annotation).
    #[error("{field}: {value:?}: {why}")]
    Request {
        field: String,
        value: String,
        why: String,
    },
    /// An address that does not parse (the caller names the field).
    #[error("not an IP address: {0}")]
    Parse(#[from] std::net::AddrParseError),
    /// The request cannot be honoured with this config.json.
    #[error("--network {mode}: {why}")]
    Conflict { mode: String, why: String },
    /// A file or directory of cuddy's own (state, leases, network configs).
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// Address management: no free address, a taken or bad `--ip`.
    #[error("network {network:?}: {why}")]
    Ipam { network: String, why: String },
    /// A network name cuddy has no config for, or a bad config.
    #[error("network {name:?}: {why}")]
    Config { name: String, why: String },
    /// A record (`network.json`) that does not parse.
    #[error("{path}: {why}")]
    Record { path: PathBuf, why: String },
    /// Published ports, masquerade, forwarding ([`nft`], [`nat`]).
    #[error(transparent)]
    Nft(#[from] nft::NftError),
    /// Several undo steps failed (teardown carries on and reports all).
    #[error("network teardown: {}", .0.join("; "))]
    Teardown(Vec<String>),
    /// CNI mode.
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    /// linux.netDevices.
    #[error(transparent)]
    NetDev(#[from] netdev::NetDevError),
}

impl NetworkError {
    /// The same error, said of an annotation key rather than a flag.
    pub(crate) fn in_annotation(self, key: &str) -> NetworkError {
        match self {
            NetworkError::Request { value, why, .. } => NetworkError::Request {
                field: format!("annotations.{key}"),
                value,
                why,
            },
            NetworkError::Parse(e) => NetworkError::Request {
                field: format!("annotations.{key}"),
                value: String::new(),
                why: e.to_string(),
            },
            other => other,
        }
    }
}

/// `map_err` helper for [`NetworkError::Io`].
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> NetworkError {
    let path = path.into();
    move |source| NetworkError::Io { op, path, source }
}

pub type Result<T, E = NetworkError> = std::result::Result<T, E>;
