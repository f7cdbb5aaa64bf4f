//! Test sandboxes (issue 12): throwaway containers from a rootfs or an OCI
//! image, usable from any thread. `image` unpacks images into a
//! content-addressed cache; the rest of this module (the `Sandbox` builder,
//! its helper process, `cuddy sandbox run`) is built on it.

pub mod image;
