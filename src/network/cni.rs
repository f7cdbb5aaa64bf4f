//! CNI mode (`--network cni[=NAME]`): the CNI extension
//! (docs/networking.md "CNI mode").
//!
//! Extension points: [`prepare`] runs before clone (the record exists;
//! /etc files may be written with [`super::etc`] and their mounts added to
//! `spec`); [`attach`] runs once the container's network namespace exists
//! and must add an [`super::Effect::Cni`] to the record before ADD;
//! [`undo`] runs DEL from that data.

use std::path::Path;

use oci_spec::runtime::Spec;

use super::setup::{Attach, UndoCtx};
use super::{NetworkError, Record, Request, Result};

/// Before clone. Not implemented yet: refused.
pub fn prepare(
    req: &Request,
    _record: &mut Record,
    _spec: &mut Spec,
    _dir: &Path,
    _rootfs: &Path,
) -> Result<()> {
    Err(NetworkError::Conflict {
        mode: req.mode.to_string(),
        why: "--network cni is not supported yet".into(),
    })
}

/// After clone, before the init is released.
pub fn attach(_req: &Request, _a: &mut Attach) -> Result<()> {
    Ok(())
}

/// Undoes an [`super::Effect::Cni`] (DEL).
pub fn undo(_data: &serde_json::Value, _cx: &UndoCtx) -> Result<()> {
    Ok(())
}
