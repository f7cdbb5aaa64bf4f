//! Root integration tests: real containers, real namespaces, real cgroups.
//! Each test skips with a note when not run as root.

mod common;
mod lifecycle;
