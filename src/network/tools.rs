//! `cuddy network ls|inspect|create|rm|prune`: the work (the CLI is in
//! src/cli/network.rs).
