//! Resource usage in runc's `events --stats` shape.

use serde::{Deserialize, Serialize};

use super::{Cgroup, CgroupError};

/// runc's stats (types.Stats).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {}

pub(crate) fn collect(_cg: &Cgroup) -> Result<Stats, CgroupError> {
    Ok(Stats {})
}
