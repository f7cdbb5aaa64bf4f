//! netDevices (config-linux.md "Network Devices"): the extension that moves
//! host interfaces into the container (docs/networking.md "netDevices").
//!
//! Extension point: [`attach`] runs in every mode where cuddy made the
//! network namespace and must add an [`super::Effect::NetDevice`] before
//! moving a device; [`undo`] returns it.

use super::Result;
use super::setup::{Attach, UndoCtx};

/// After clone, before the init is released. Not implemented yet.
pub fn attach(_a: &mut Attach) -> Result<()> {
    Ok(())
}

/// Undoes an [`super::Effect::NetDevice`].
pub fn undo(_data: &serde_json::Value, _cx: &UndoCtx) -> Result<()> {
    Ok(())
}
