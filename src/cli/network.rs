//! `cuddy network …`: cuddy's networks (docs/networking.md "network
//! ls/inspect/prune"); the work is in `crate::network::tools`.

use clap::{Args, Subcommand};

/// `cuddy network`.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List cuddy's networks: bridge, subnets, containers.
    #[command(alias = "list")]
    Ls,
    /// Print a network (or all) as JSON, with its allocations.
    Inspect {
        /// The network (default: all).
        name: Option<String>,
    },
    /// Create a bridge network with its subnets (one IPv4 and/or one IPv6).
    Create {
        name: String,
        /// A subnet, CIDR (e.g. 10.78.0.0/16 or fd78::/64); repeatable.
        #[arg(long = "subnet", required = true)]
        subnets: Vec<String>,
    },
    /// Remove a network without containers (bridge, leases, config).
    Rm { name: String },
    /// Release the addresses of containers that no longer exist, and remove
    /// the bridges left without containers.
    Prune,
}

/// Runs `cuddy network …` against the state root `root`; returns what to
/// print.
pub fn run(root: &std::path::Path, a: NetworkArgs) -> Result<String, crate::network::NetworkError> {
    use crate::network::tools;
    match a.command {
        NetworkCommand::Ls => tools::ls(root),
        NetworkCommand::Inspect { name } => {
            let v = tools::inspect(root, name.as_deref())?;
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        NetworkCommand::Create { name, subnets } => {
            validate(&name)?;
            tools::create(root, &name, &subnets).map(|_| String::new())
        }
        NetworkCommand::Rm { name } => tools::rm(root, &name).map(|_| String::new()),
        NetworkCommand::Prune => tools::prune(root),
    }
}

/// A network name is a bridge name: what `--network bridge=NAME` accepts.
fn validate(name: &str) -> Result<(), crate::network::NetworkError> {
    format!("bridge={name}")
        .parse::<crate::network::Mode>()
        .map(drop)
        .map_err(|_| crate::network::NetworkError::Request {
            field: "network create NAME".into(),
            value: name.into(),
            why: "a network name is 1 to 15 characters of [A-Za-z0-9_.-]".into(),
        })
}
