//! The mode dispatch: what `create` and `delete` call (see the module doc
//! of [`super`] for the order). Extensions plug in through [`Attach`]
//! (after the container's namespace exists) and the undo of their
//! [`Effect`] kind; this file only dispatches.

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use super::record::{Effect, Record};
use super::{Mode, NetworkError, Options, Request, Result, bridge, cni, ipam, netdev, ports};

/// A resolved request whose spec changes are made; [`Plan::prepare`] and
/// [`Plan::attach`] do the rest.
#[derive(Debug)]
pub struct Plan {
    pub request: Request,
    record: Option<Record>,
    bridge: Option<bridge::Prepared>,
}

/// What [`Plan::attach`] hands each extension (ports, CNI, netDevices):
/// the container's namespace, open, and its record to add effects to
/// (before making them).
pub struct Attach<'a> {
    pub id: &'a str,
    /// The init's pid (in cuddy's PID namespace).
    pub pid: i32,
    /// The init's network namespace (`/proc/PID/ns/net`), open.
    pub netns: &'a OwnedFd,
    /// The same as a path, for tools that want one (CNI_NETNS).
    pub netns_path: PathBuf,
    pub spec: &'a Spec,
    /// The container's state directory and the state root.
    pub state_dir: &'a Path,
    pub state_root: &'a Path,
    pub record: &'a mut Record,
}

/// What an extension's undo gets besides its own data.
pub struct UndoCtx<'a> {
    pub id: &'a str,
    pub state_dir: &'a Path,
    pub state_root: &'a Path,
    /// The container's network namespace while it still lives (held open
    /// by the caller from before its processes were killed; see
    /// [`super::held`]); None once it is gone.
    pub netns: Option<BorrowedFd<'a>>,
    /// The namespace dies once the teardown is over: every caller (delete,
    /// delete --force, a failed create) has killed the container's
    /// processes first and drops its hold and pin right after, so what dies
    /// with the namespace (the veth pair) needs no undo of its own.
    pub dying: bool,
}

/// Step 1: resolves the request (CLI over the config's annotations) and
/// makes the spec's network namespace match the mode. `None`: nothing was
/// asked, config.json alone decides (runc's behaviour).
pub fn plan(cli: &Options, spec: &mut Spec) -> Result<Option<Plan>> {
    let ann: HashMap<String, String> = spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let Some(request) = Request::resolve(cli.clone(), &ann)? else {
        return Ok(None);
    };
    match request.mode {
        Mode::Host => drop_netns(spec),
        Mode::None | Mode::Bridge(_) | Mode::Cni(_) => new_netns(spec, &request.mode)?,
    }
    tracing::debug!("network: {}", request.mode);
    Ok(Some(Plan {
        request,
        record: None,
        bridge: None,
    }))
}

/// config-linux.md "Namespaces": a `network` entry without a path is a new
/// namespace, with a path it joins one. Host mode: no entry at all, the
/// container shares cuddy's.
fn drop_netns(spec: &mut Spec) {
    if let Some(linux) = spec.linux_mut() {
        if let Some(nss) = linux.namespaces_mut() {
            nss.retain(|n| n.typ() != LinuxNamespaceType::Network);
        }
    }
}

/// A new network namespace for the modes cuddy wires (added when the config
/// has none); a namespace joined by path is refused: that is an
/// orchestrator's, and cuddy touches nothing there.
fn new_netns(spec: &mut Spec, mode: &Mode) -> Result<()> {
    if spec.linux().is_none() {
        spec.set_linux(Some(serde_json::from_str("{}").map_err(|e| {
            NetworkError::Conflict {
                mode: mode.to_string(),
                why: format!("linux: {e}"),
            }
        })?));
    }
    let Some(linux) = spec.linux_mut() else {
        return Ok(());
    };
    let nss = linux.namespaces_mut().get_or_insert_with(Vec::new);
    match nss.iter().find(|n| n.typ() == LinuxNamespaceType::Network) {
        Some(n) => match n.path() {
            Some(p) => Err(NetworkError::Conflict {
                mode: mode.to_string(),
                why: format!(
                    "config.json joins the network namespace {} (linux.namespaces); cuddy wires only a new one and touches nothing in a joined one: drop --network (and the cuddy.network.mode annotation) or the path",
                    p.display()
                ),
            }),
            None => Ok(()),
        },
        None => {
            let mut n = LinuxNamespace::default();
            n.set_typ(LinuxNamespaceType::Network);
            n.set_path(None);
            nss.push(n);
            Ok(())
        }
    }
}

impl Plan {
    /// Step 2, in the fresh state directory `dir` (under `root`), before
    /// clone: the record, then the mode's own preparation (leases, bridge,
    /// /etc files and their bind mounts in `spec`).
    pub fn prepare(
        &mut self,
        root: &Path,
        dir: &Path,
        id: &str,
        spec: &mut Spec,
        rootfs: &Path,
    ) -> Result<()> {
        let t = std::time::Instant::now();
        let r = self.prepare_mode(root, dir, id, spec, rootfs);
        tracing::debug!("network: prepare took {:?}", t.elapsed());
        r
    }

    fn prepare_mode(
        &mut self,
        root: &Path,
        dir: &Path,
        id: &str,
        spec: &mut Spec,
        rootfs: &Path,
    ) -> Result<()> {
        match &self.request.mode {
            Mode::Host => Ok(()),
            Mode::None => {
                // Only lo (the init brings it up); the record still lets
                // netDevices attach and be returned.
                self.record = Some(Record::create(dir, self.request.clone())?);
                Ok(())
            }
            Mode::Bridge(name) => {
                // Written by the first recorded effect (the leases): the
                // bridge made before it stays anyway.
                let mut rec = Record::unsaved(dir, self.request.clone());
                let name = name.clone();
                let p = bridge::prepare(&mut bridge::Ctx {
                    root,
                    dir,
                    id,
                    name: &name,
                    request: &self.request,
                    record: &mut rec,
                    spec,
                    rootfs,
                });
                self.record = Some(rec);
                self.bridge = Some(p?);
                Ok(())
            }
            Mode::Cni(_) => {
                let rec = Record::create(dir, self.request.clone())?;
                self.record = Some(rec);
                let rec = self.record.as_mut().ok_or_else(unreachable)?;
                cni::prepare(&self.request, rec, spec, dir, rootfs)
            }
        }
    }

    /// Step 3, after clone and before the init is released: wires the
    /// init's network namespace, then the extensions.
    pub fn attach(
        &mut self,
        root: &Path,
        dir: &Path,
        id: &str,
        pid: i32,
        spec: &Spec,
    ) -> Result<()> {
        let Some(record) = self.record.as_mut() else {
            return Ok(());
        };
        let t = std::time::Instant::now();
        let netns_path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let netns = std::fs::File::open(&netns_path)
            .map(OwnedFd::from)
            .map_err(super::io_err("open", &netns_path))?;
        let mut a = Attach {
            id,
            pid,
            netns: &netns,
            netns_path,
            spec,
            state_dir: dir,
            state_root: root,
            record,
        };
        if let Some(b) = &self.bridge {
            bridge::attach(b, &mut a)?;
        }
        if matches!(self.request.mode, Mode::Cni(_)) {
            cni::attach(&self.request, &mut a)?;
        }
        // CNI mode publishes through the list's portMappings capability
        // (portmap), not cuddy's nftables.
        if !matches!(self.request.mode, Mode::Cni(_)) {
            ports::attach(&self.request, &mut a)?;
        }
        // linux.netDevices do not depend on --network: create attaches
        // them itself (super::netdev), with their own record.
        tracing::debug!("network: attach took {:?}", t.elapsed());
        Ok(())
    }
}

fn unreachable() -> NetworkError {
    NetworkError::Record {
        path: PathBuf::new(),
        why: "no record".into(),
    }
}

/// Step 4 (delete, delete --force, a failed create): undoes every effect
/// the record of `dir` lists, newest first; collects the errors and carries
/// on. What failed stays in the record for a later delete. `netns`: the
/// container's network namespace, held open while it lives
/// ([`super::held::hold`]); moved devices (`linux.netDevices`) go back
/// first.
pub fn teardown(dir: &Path, id: &str, netns: Option<BorrowedFd>) -> Result<()> {
    let mut errors = Vec::new();
    if let Err(e) = netdev::detach(dir, netns) {
        errors.push(e.to_string());
    }
    let Some(mut rec) = Record::load(dir)? else {
        return match errors.is_empty() {
            true => Ok(()),
            false => Err(NetworkError::Teardown(errors)),
        };
    };
    let t = std::time::Instant::now();
    let root = dir.parent().unwrap_or(Path::new("/"));
    let cx = UndoCtx {
        id,
        state_dir: dir,
        state_root: root,
        netns,
        dying: true,
    };
    let mut failed = Vec::new();
    for e in rec.effects.iter().rev() {
        if let Err(err) = undo(e, &cx) {
            errors.push(err.to_string());
            failed.push(e.clone());
        }
    }
    match failed.is_empty() {
        true => rec.remove()?,
        false => rec.retain(|e| failed.contains(e))?,
    }
    tracing::debug!("network: teardown took {:?}", t.elapsed());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(NetworkError::Teardown(errors))
    }
}

fn undo(e: &Effect, cx: &UndoCtx) -> Result<()> {
    match e {
        Effect::Lease { network, address } => {
            ipam::release(cx.state_root, network, *address, cx.id)
        }
        Effect::Veth { host, .. } => bridge::delete_veth(host, cx.dying),
        Effect::Ports { data } => ports::undo(data, cx),
        Effect::Cni { data } => cni::undo(data, cx),
        // netDevices keep their own record (super::netdev::RECORD).
        Effect::NetDevice { .. } => Ok(()),
    }
}
