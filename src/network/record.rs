//! The container's network record, `<state dir>/network.json`: the
//! request, the addresses it got, and every side effect, each written here
//! *before* it is made. Teardown (delete, delete --force, a failed create)
//! undoes the listed effects newest first; undoing one that was recorded
//! but never made (a crash between the two) is a no-op, so the record is
//! always a superset of what exists.
//!
//! Extension kinds (published ports, CNI attachments, moved net devices)
//! carry their own data as JSON: their modules ([`super::ports`],
//! [`super::cni`], [`super::netdev`]) write it and undo it.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{NetworkError, Request, Result, io_err};
use crate::utils::write_atomic;

/// File name in the container's state directory.
pub const RECORD_FILE: &str = "network.json";

/// One side effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Effect {
    /// An address lease of cuddy's IPAM (`<root>/@networks/NET.leases/ADDR`).
    Lease { network: String, address: IpAddr },
    /// A veth pair; `host` is the end on the bridge (deleting it deletes
    /// the pair; the container end also dies with the namespace).
    Veth { host: String, bridge: String },
    /// Published ports ([`super::ports`]): the module's own data.
    Ports { data: serde_json::Value },
    /// A CNI attachment ([`super::cni`]): result and config, as ADD used
    /// them, so DEL works after a crash.
    Cni { data: serde_json::Value },
    /// A host interface moved in (config-linux.md "Network Devices",
    /// [`super::netdev`]).
    NetDevice { data: serde_json::Value },
}

/// What `network.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub request: Request,
    /// The container's addresses with their prefix length (for /etc/hosts,
    /// `network inspect`, and the extensions).
    #[serde(default)]
    pub addresses: Vec<(IpAddr, u8)>,
    /// The side effects, oldest first.
    #[serde(default)]
    pub effects: Vec<Effect>,
    #[serde(skip)]
    path: PathBuf,
}

impl Record {
    /// A new record in the state directory `dir`, written at once.
    pub fn create(dir: &Path, request: Request) -> Result<Record> {
        let r = Record::unsaved(dir, request);
        r.save()?;
        Ok(r)
    }

    /// A new record of `dir` not written yet: for a mode whose first side
    /// effect is recorded by the first [`Record::add`] (or
    /// [`Record::add_leases`]), which writes the file; nothing before it
    /// needs undoing (each write costs a rename, 0.4 ms on ext4 here).
    pub fn unsaved(dir: &Path, request: Request) -> Record {
        Record {
            request,
            addresses: Vec::new(),
            effects: Vec::new(),
            path: dir.join(RECORD_FILE),
        }
    }

    /// Records address leases and sets the container's addresses, in one
    /// atomic write, before the caller makes the lease files.
    pub fn add_leases(&mut self, leases: Vec<Effect>, a: Vec<(IpAddr, u8)>) -> Result<()> {
        self.effects.extend(leases);
        self.addresses = a;
        self.save()
    }

    /// The record of the state directory `dir`, if it has one.
    pub fn load(dir: &Path) -> Result<Option<Record>> {
        let path = dir.join(RECORD_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut r: Record = serde_json::from_slice(&data).map_err(|e| NetworkError::Record {
            path: path.clone(),
            why: e.to_string(),
        })?;
        r.path = path;
        Ok(Some(r))
    }

    /// Records `e` (durably: atomic rewrite) before the caller makes it.
    pub fn add(&mut self, e: Effect) -> Result<()> {
        self.effects.push(e);
        self.save()
    }

    /// Replaces a recorded effect by `new` (e.g. a CNI attachment with its
    /// ADD result), in one atomic rewrite.
    pub fn replace(&mut self, old: &Effect, new: Effect) -> Result<()> {
        match self.effects.iter_mut().rev().find(|e| *e == old) {
            Some(e) => *e = new,
            None => self.effects.push(new),
        }
        self.save()
    }

    /// Forgets effects that are undone (teardown keeps the ones that failed,
    /// so a later delete tries them again).
    pub fn retain(&mut self, keep: impl FnMut(&Effect) -> bool) -> Result<()> {
        self.effects.retain(keep);
        self.save()
    }

    /// Removes the record once every effect is undone (teardown): one
    /// unlink, which the state directory's removal would do anyway, instead
    /// of a rewrite; a later teardown finds no record and does nothing.
    pub fn remove(self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("remove", &self.path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Sets the container's addresses.
    pub fn set_addresses(&mut self, a: Vec<(IpAddr, u8)>) -> Result<()> {
        self.addresses = a;
        self.save()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn save(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(|e| NetworkError::Record {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        write_atomic(&self.path, &data, 0o600).map_err(io_err("write", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_round_trip_with_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let req = Request::resolve(
            Options {
                mode: Some(super::super::Mode::Bridge("cuddy0".into())),
                ..Default::default()
            },
            &Default::default(),
        )
        .unwrap()
        .unwrap();
        let mut r = Record::create(dir.path(), req).unwrap();
        r.add(Effect::Lease {
            network: "cuddy0".into(),
            address: "10.77.0.2".parse().unwrap(),
        })
        .unwrap();
        r.add(Effect::Ports {
            data: serde_json::json!({"chain": "c1"}),
        })
        .unwrap();
        let text = fs::read_to_string(dir.path().join(RECORD_FILE)).unwrap();
        assert!(text.contains("\"kind\": \"lease\""), "{text}");
        let back = Record::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.effects, r.effects);
    }

    use super::super::Options;
}
