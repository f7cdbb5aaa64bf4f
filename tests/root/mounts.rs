//! config.md "Root" and "Mounts", config-linux.md devices, masked and read-only paths.
