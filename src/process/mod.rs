//! The container's process: clone3 from the parent, the sync channel between
//! parent and child, the child's set-up up to execve, and the program it
//! executes.

pub mod clone;
pub mod exec;
pub mod init;
pub mod program;
pub mod setup;
pub mod sync;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("clone3 (namespaces {flags}): {source}")]
    Clone {
        flags: String,
        #[source]
        source: nix::Error,
    },
    #[error("sync channel {op}: {source}")]
    Sync {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    #[error("cuddy must be single-threaded to fork a container, but has {0} threads")]
    Threads(usize),
}
