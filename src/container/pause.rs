//! `pause` and `resume`: freeze and thaw every process of the container
//! (v1 freezer, v2 cgroup.freeze). `state` then reports `paused`.

use super::{ContainerError, Result, Root, Status};
use crate::cgroups::Cgroup;

fn cgroup_of(id: &str, cg: Option<Cgroup>) -> Result<Cgroup> {
    cg.ok_or_else(|| {
        ContainerError::Unsupported(format!(
            "container {id:?} has no cgroup: cannot pause or resume it"
        ))
    })
}

pub fn pause(root: &Root, id: &str) -> Result<()> {
    let _lock = root.lock(id)?;
    let st = root.load(id)?;
    match root.status(&st) {
        Status::Running => {}
        Status::Paused => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status: Status::Paused,
                hint: "it is already paused",
            });
        }
        s => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status: s,
                hint: "only a running container can be paused",
            });
        }
    }
    Ok(cgroup_of(id, st.cgroup)?.freeze()?)
}

pub fn resume(root: &Root, id: &str) -> Result<()> {
    let _lock = root.lock(id)?;
    let st = root.load(id)?;
    match root.status(&st) {
        Status::Paused => {}
        s => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status: s,
                hint: "only a paused container can be resumed",
            });
        }
    }
    Ok(cgroup_of(id, st.cgroup)?.thaw()?)
}
