//! Published ports (`--publish`), masquerade and forwarding: the nft
//! extension (docs/networking.md "Published ports and egress").
//!
//! Extension point: [`attach`] runs after the container's veth and
//! addresses exist (its addresses are in `a.record.addresses`); it must add
//! an [`super::Effect::Ports`] to `a.record` before making anything, and [`undo`]
//! must undo that data idempotently.

use super::setup::{Attach, UndoCtx};
use super::{NetworkError, Request, Result};

/// Publishes `req.publish` for the container. Not implemented yet: a
/// request with ports is refused (nothing is left behind).
pub fn attach(req: &Request, _a: &mut Attach) -> Result<()> {
    if let Some(p) = req.publish.first() {
        return Err(NetworkError::Request {
            field: "--publish".into(),
            value: p.to_string(),
            why: "published ports are not supported yet".into(),
        });
    }
    Ok(())
}

/// Undoes an [`super::Effect::Ports`].
pub fn undo(_data: &serde_json::Value, _cx: &UndoCtx) -> Result<()> {
    Ok(())
}
