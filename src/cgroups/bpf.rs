//! cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program built from the rules.

use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use super::CgroupError;

/// Build, load and attach the device filter for `rules` to the cgroup `dir`.
pub(crate) fn attach_device_filter(
    _dir: &Path,
    _rules: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    Err(CgroupError::Unsupported {
        field: "linux.resources.devices".to_string(),
        reason: "on cgroup v2 yet (the eBPF device filter is not implemented)".to_string(),
    })
}
