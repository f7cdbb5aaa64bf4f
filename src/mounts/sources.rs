//! Bind-mount sources opened by the runtime, before the clone.
//!
//! In a user namespace the container's root may not reach a source that
//! the runtime can (a parent directory of mode 000, say): runc 1.2 and crun
//! open bind sources with the runtime's privileges and mount from the fd.
//! cuddy makes a detached copy of each source with
//! `open_tree(OPEN_TREE_CLONE[|AT_RECURSIVE])` (Linux 5.2) in the host's
//! mount namespace, makes it a slave (a clone of a shared mount is a peer
//! of the original: mounts made in the container would reach the host),
//! and hands the fds to the child (in `InitContext`'s keep list); the child
//! binds by path first and, when that fails with EACCES/EPERM, attaches
//! the copy with `move_mount` (`detached::move_onto`; see `rootfs.rs` for
//! why not always). The kernel
//! (6.1 as today) lets a process with CAP_SYS_ADMIN over its own mount
//! namespace attach a detached tree whatever user namespace made it.
//! Without open_tree or mount_setattr (before 5.12), or when the container
//! joins an existing mount namespace (sources resolve in that one), the
//! child mounts by path as before. id-mapped mounts are always made here.
//! A container given CAP_SYS_ADMIN gets no fd for a read-only, nosuid,
//! nodev, noexec or recursive bind (`undoable_by_container`): the kernel
//! would not lock those flags on an attached tree.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::{Mount, Spec};

use super::detached::{self, MountAttr};
use super::flags::parse_options;
use super::{MountError, idmap, procsys};
use crate::fds::procfs::ProcFs;

/// One detached tree (or none) per entry of `mounts`, by index.
#[derive(Default)]
pub struct MountSources(RefCell<Vec<Option<OwnedFd>>>);

/// How the runtime should prepare the sources.
pub struct SourcePlan<'a> {
    /// The container has a user namespace (new or joined).
    pub userns: bool,
    /// The container joins an existing mount namespace.
    pub joins_mount_ns: bool,
    /// The runtime's verified procfs (for the id-map user namespaces).
    pub proc: &'a ProcFs,
}

impl MountSources {
    /// Prepares the sources of `spec.mounts` that need it.
    pub fn prepare(spec: &Spec, bundle: &Path, plan: &SourcePlan) -> Result<Self, MountError> {
        let mounts = spec.mounts().as_deref().unwrap_or(&[]);
        let mut fds = Vec::with_capacity(mounts.len());
        for (i, m) in mounts.iter().enumerate() {
            fds.push(prepare_one(spec, bundle, plan, i, m)?);
        }
        Ok(MountSources(RefCell::new(fds)))
    }

    /// The fds the child must keep open.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.0
            .borrow()
            .iter()
            .flatten()
            .map(AsRawFd::as_raw_fd)
            .collect()
    }

    /// The detached tree of `mounts[index]`, once.
    pub fn take(&self, index: usize) -> Option<OwnedFd> {
        self.0.borrow_mut().get_mut(index).and_then(Option::take)
    }

    /// Closes whatever was not used.
    pub fn close(&self) {
        self.0.borrow_mut().clear();
    }
}

/// A tree attached from the runtime's fd carries none of the locks the
/// kernel puts on mounts copied into a less privileged user namespace's
/// mount namespace (MNT_LOCK_READONLY/NOSUID/NODEV/NOEXEC, MNT_LOCKED
/// submounts). A container process holding CAP_SYS_ADMIN in its user
/// namespace could then remount it read-write or unmount its submounts.
/// Such mounts are not offered the fd path when the config gives the
/// container CAP_SYS_ADMIN: they bind by path as before (and fail where the
/// container's root cannot reach the source).
fn undoable_by_container(spec: &Spec, opts: &super::MountOptions) -> bool {
    let guarded = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let protects = opts.flags.intersects(guarded) || opts.flags.contains(MsFlags::MS_REC);
    let sys_admin = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .is_some_and(|b| b.contains(&oci_spec::runtime::Capability::SysAdmin));
    protects && sys_admin
}

fn prepare_one(
    spec: &Spec,
    bundle: &Path,
    plan: &SourcePlan,
    index: usize,
    m: &Mount,
) -> Result<Option<OwnedFd>, MountError> {
    let invalid = |reason: String| MountError::Invalid {
        index,
        dest: m.destination().clone(),
        reason,
    };
    let raw = m.options().clone().unwrap_or_default();
    let opts = parse_options(&raw).map_err(invalid)?;
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = procsys::is_bind(typ, &raw);
    let maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    let idmapped = maps || opts.idmap.is_some();
    if !bind {
        return match idmapped {
            true => Err(invalid(
                "id-mapped mounts (uidMappings, gidMappings, idmap, ridmap) are bind mounts only"
                    .into(),
            )),
            false => Ok(None),
        };
    }
    if !idmapped && (!plan.userns || plan.joins_mount_ns) {
        return Ok(None);
    }
    let Some(src) = m.source().as_ref() else {
        return Ok(None);
    };
    let src = bundle.join(src);
    let rec = opts.flags.contains(MsFlags::MS_REC);
    let slave = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: MsFlags::MS_SLAVE.bits(),
        userns_fd: 0,
    };
    if !idmapped {
        if undoable_by_container(spec, &opts) {
            return Ok(None);
        }
        // Best effort: the child mounts by path when this is not possible.
        let Ok(fd) = detached::clone_tree(&src, rec) else {
            return Ok(None);
        };
        return Ok(detached::setattr(&fd, &slave, true).ok().map(|()| fd));
    }
    let fail = |what: &str, e: String| {
        invalid(format!("id-mapped mount of {}: {what}: {e}", src.display()))
    };
    let fd = detached::clone_tree(&src, rec).map_err(|e| fail("open_tree", e.to_string()))?;
    detached::setattr(&fd, &slave, true).map_err(|e| fail("make slave", e.to_string()))?;
    let linux = spec.linux().as_ref();
    let (uids, gids) = if maps {
        (m.uid_mappings().clone(), m.gid_mappings().clone())
    } else {
        // idmap/ridmap alone: the container's own mappings.
        (
            linux.and_then(|l| l.uid_mappings().clone()),
            linux.and_then(|l| l.gid_mappings().clone()),
        )
    };
    let (Some(uids), Some(gids)) = (
        uids.filter(|v| !v.is_empty()),
        gids.filter(|v| !v.is_empty()),
    ) else {
        return Err(invalid(
            "an id-mapped mount needs both uidMappings and gidMappings (on the mount, or linux.uidMappings and linux.gidMappings for idmap/ridmap alone)".into(),
        ));
    };
    let ns = idmap::userns_fd(&uids, &gids, plan.proc).map_err(|e| fail("user namespace", e))?;
    let attr = MountAttr {
        attr_set: idmap::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.as_raw_fd() as u64,
    };
    // "ridmap": every mount of the tree; "idmap" (or mappings alone): its top.
    let recursive = opts.idmap == Some(true);
    detached::setattr(&fd, &attr, recursive)
        .map_err(|e| fail("mount_setattr MOUNT_ATTR_IDMAP", e.to_string()))?;
    Ok(Some(fd))
}
