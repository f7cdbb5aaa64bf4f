//! Container networking (docs/networking.md). Under an orchestrator cuddy
//! joins the network namespace it is given and touches nothing; standalone,
//! `--network` (or `cuddy.network.*` annotations) asks cuddy to wire the
//! container itself.

pub mod nat;
pub mod nft;
pub mod request;

pub use request::{Mac, Mode, Options, PortMapping, Proto, Request};

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
        }
    }
}

pub type Result<T, E = NetworkError> = std::result::Result<T, E>;
