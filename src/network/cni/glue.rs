//! CNI mode plugged into the network plumbing ([`super::super::setup`]):
//! [`prepare`] before clone (the list and its plugins checked, the /etc
//! files written), [`attach`] once the container's namespace exists (the
//! attachment recorded as a `cni` effect, ADD, the result recorded, /etc
//! files filled from it), [`undo`] on delete (DEL).

use std::os::fd::AsRawFd;
use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::Value;

use super::{Attachment, CniError};
use crate::network::record::{Effect, Record};
use crate::network::setup::{Attach, UndoCtx};
use crate::network::{Mode, NetworkError, Request, Result, etc};

fn name(req: &Request) -> Option<&str> {
    match &req.mode {
        Mode::Cni(n) => n.as_deref(),
        _ => None,
    }
}

fn load(req: &Request, id: &str) -> Result<Attachment> {
    Ok(Attachment::prepare(
        id,
        &req.cni_config_dir,
        &req.cni_plugin_dir,
        name(req),
        &req.publish,
    )?)
}

/// Before clone: the network list and its plugins are checked (a bad name
/// or a missing plugin fails here, before anything is made), and the /etc
/// files are written (addresses filled in by [`attach`]).
pub fn prepare(
    req: &Request,
    _record: &mut Record,
    spec: &mut Spec,
    dir: &Path,
    rootfs: &Path,
) -> Result<()> {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    load(req, &id)?;
    etc::prepare(dir, spec, rootfs, &id, &[], &req.dns)
}

/// After clone, before the init is released: the attachment is recorded,
/// then ADD runs, then its result is recorded and the /etc files filled.
pub fn attach(req: &Request, a: &mut Attach) -> Result<()> {
    let mut att = load(req, a.id)?;
    att.netns = a.netns_path.to_string_lossy().into_owned();
    let intent = effect(&att)?;
    a.record.add(intent.clone())?;
    match att.add(&a.netns_path.to_string_lossy()) {
        Ok(result) => {
            a.record.replace(&intent, effect(&att)?)?;
            let addrs = addresses(&result);
            a.record.set_addresses(addrs.clone())?;
            write_etc(req, a, &result, &addrs)
        }
        Err(f) => {
            if f.undone {
                a.record.retain(|e| e != &intent)?;
            }
            Err(f.error.into())
        }
    }
}

fn effect(att: &Attachment) -> Result<Effect> {
    let data = serde_json::to_value(att).map_err(|e| CniError::Protocol {
        network: String::new(),
        why: format!("serialize the attachment: {e}"),
    })?;
    Ok(Effect::Cni { data })
}

/// The result's addresses with their prefix length.
fn addresses(result: &Value) -> Vec<(std::net::IpAddr, u8)> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address").and_then(Value::as_str))
        .filter_map(|s| {
            let (a, p) = s.split_once('/')?;
            Some((a.parse().ok()?, p.parse().ok()?))
        })
        .collect()
}

/// /etc/hosts with the container's addresses; /etc/resolv.conf from the
/// result's `dns` where present (nameservers, search, options), `--dns`
/// first, else the host's minus loopback resolvers (as bridge mode).
fn write_etc(
    req: &Request,
    a: &Attach,
    result: &Value,
    addrs: &[(std::net::IpAddr, u8)],
) -> Result<()> {
    if !a.state_dir.join("hosts").exists() {
        return Ok(());
    }
    let hostname = a
        .spec
        .hostname()
        .clone()
        .unwrap_or_else(|| a.id.to_string());
    let ips: Vec<_> = addrs.iter().map(|x| x.0).collect();
    etc::write(a.state_dir, "hosts", &etc::hosts(&hostname, &ips))?;
    let Some(dns) = super::dns(result).filter(|_| req.dns.is_empty()) else {
        return Ok(());
    };
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut text = String::new();
    let ns = if dns.nameservers.is_empty() {
        etc::resolv_conf(&host, &[])
    } else {
        etc::resolv_conf(&host, &dns.nameservers)
    };
    for line in ns.lines() {
        let first = line.split_whitespace().next();
        let replaced = (first == Some("search") && !dns.search.is_empty())
            || (first == Some("domain") && dns.domain.is_some())
            || (first == Some("options") && !dns.options.is_empty());
        if !replaced {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some(d) = &dns.domain {
        text.push_str(&format!("domain {d}\n"));
    }
    if !dns.search.is_empty() {
        text.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    etc::write(a.state_dir, "resolv.conf", &text)
}

/// DEL of a recorded attachment. The container's namespace is given to the
/// plugins while it lives (held open by delete); once it is gone, an empty
/// CNI_NETNS (SPEC.md: plugins then release what they can, e.g. the
/// address; what only existed inside died with the namespace).
pub fn undo(data: &Value, cx: &UndoCtx) -> Result<()> {
    let att: Attachment =
        serde_json::from_value(data.clone()).map_err(|e| NetworkError::Record {
            path: cx.state_dir.join(crate::network::record::RECORD_FILE),
            why: format!("cni effect: {e}"),
        })?;
    let netns = netns_path(cx);
    Ok(att.del(&netns)?)
}

/// The held namespace as a path the plugins can open:
/// `/proc/<cuddy>/fd/<fd>`.
pub(crate) fn netns_path(cx: &UndoCtx) -> String {
    cx.netns
        .map(|fd| format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd()))
        .unwrap_or_default()
}

/// `cuddy network check ID` (SPEC.md "CHECK"): the plugins of the
/// container's list, with the recorded ADD result, in its live namespace.
pub fn check_container(root: &crate::container::Root, id: &str) -> Result<()> {
    let dir = root.dir(id);
    let gone = |why: &str| NetworkError::Conflict {
        mode: "cni".into(),
        why: format!("network check {id}: {why}"),
    };
    let st = root.load(id).map_err(|e| gone(&e.to_string()))?;
    if !root.init_alive(&st) {
        return Err(gone(
            "the container is stopped: its network namespace is gone",
        ));
    }
    let record = Record::load(&dir)?.ok_or_else(|| gone("no network record"))?;
    check(&record)
}

/// CHECK of the recorded attachment, in the container's namespace, named
/// as at ADD (the bridge plugin compares it with the result's `sandbox`).
fn check(record: &Record) -> Result<()> {
    let data = record
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Cni { data } => Some(data),
            _ => None,
        })
        .ok_or_else(|| NetworkError::Record {
            path: record.path().into(),
            why: "no CNI attachment recorded (not a --network cni container)".into(),
        })?;
    let att: Attachment =
        serde_json::from_value(data.clone()).map_err(|e| NetworkError::Record {
            path: record.path().into(),
            why: format!("cni effect: {e}"),
        })?;
    Ok(att.check(&att.netns)?)
}
