//! Root integration tests: real containers, real namespaces, real cgroups.
//! Each test skips with a note when not run as root.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod catalogue;
mod cgroups;
mod cgroups_path;
mod clients;
mod common;
mod containerd;
mod crash;
mod cri;
mod docker;
mod escapes_fds;
mod escapes_rootfs;
mod exec;
mod hooks;
mod image;
mod image_names;
mod library;
mod lifecycle;
mod lifecycle_conformance;
mod mounts;
mod mounts_conformance;
mod netns;
mod network_bridge;
mod network_cni;
mod network_ports;
mod notify;
mod ns_conformance;
mod orch;
mod podman;
mod process;
mod process_conformance;
mod race_tier;
mod races;
mod resources_conformance;
mod sandbox_cli;
mod schema;
mod seccomp;
mod seccomp_docker;
mod security;
mod systemd_driver;
mod terminal;
