//! `cuddy network …`: the network side of containers (docs/networking.md).

use clap::{Args, Subcommand};

/// `cuddy network`.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Run the CNI CHECK of a --network cni container (its plugins verify
    /// that the attachment is still as ADD made it).
    Check {
        /// Container id.
        id: String,
    },
}

/// Runs `cuddy network …` against the state root `root`; returns what to
/// print.
pub fn run(
    root: &crate::container::Root,
    a: NetworkArgs,
) -> Result<String, crate::network::NetworkError> {
    match a.command {
        NetworkCommand::Check { id } => {
            crate::network::cni::check_container(root, &id).map(|_| String::new())
        }
    }
}
