//! config.md "Process" and config-linux.md "Namespaces", observed with the probe.
