//! `cuddy network ls|inspect|create|rm|prune`: the work (the CLI is in
//! src/cli/network.rs). Networks are cuddy's own (`<root>/@networks`); the
//! bridges live in the network namespace cuddy runs in.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::config::{self, Network, Subnet};
use super::netlink::Netlink;
use super::{NetworkError, Result, ipam, nat, nft};

/// The nft chain names of the containers in the state root (directories
/// whose name holds no '@'); an unreadable root is an error, never "none".
fn live_chains(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(super::io_err("read", root)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(super::io_err("read", root))?;
        if let Ok(id) = e.file_name().into_string() {
            if !id.contains('@') {
                out.push(nft::chain_name(root, &id));
            }
        }
    }
    Ok(out)
}

/// Is the network's bridge there (in cuddy's network namespace)? An
/// interface of that name that is no bridge is not cuddy's.
fn bridge_present(n: &Network) -> bool {
    Netlink::open()
        .and_then(|mut nl| nl.link(&n.bridge))
        .map(|l| l.is_some_and(|l| super::netlink::is_bridge(&l)))
        .unwrap_or(false)
}

/// `network ls`: one line per network (cuddy0 shows once it was used).
pub fn ls(root: &Path) -> Result<String> {
    let mut out = String::from("NAME            BRIDGE          UP   CONTAINERS  SUBNETS\n");
    for n in config::list(root)? {
        let live = ipam::leases(root, &n.name)?
            .values()
            .filter(|l| ipam::is_live(root, l))
            .map(|l| l.id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let subnets: Vec<String> = n.subnets.iter().map(Subnet::to_string).collect();
        let _ = writeln!(
            out,
            "{:<15} {:<15} {:<4} {:<11} {}",
            n.name,
            n.bridge,
            if bridge_present(&n) { "yes" } else { "no" },
            live,
            subnets.join(",")
        );
    }
    Ok(out)
}

/// `network inspect [NAME]`: JSON, one object (NAME) or an array (all).
pub fn inspect(root: &Path, name: Option<&str>) -> Result<Value> {
    let host = nat::load(&config::dir(root))?.unwrap_or_default();
    let one = |n: &Network| -> Result<Value> {
        let mut leases: Vec<_> = ipam::leases(root, &n.name)?.into_iter().collect();
        leases.sort_by_key(|(ip, _)| *ip);
        Ok(json!({
            "name": n.name,
            "bridge": n.bridge,
            "bridgePresent": bridge_present(n),
            "subnets": n.subnets.iter().map(|s| json!({
                "subnet": s.to_string(),
                "gateway": s.gateway().to_string(),
            })).collect::<Vec<_>>(),
            // What cuddy made for the bridge's egress and published ports
            // (docs/networking.md "Published ports and egress").
            "nat": {
                "masquerade": host.bridges.iter().any(|b| b.bridge == n.bridge),
                "sysctlsChanged": host.sysctls.iter().map(|c| json!({
                    "key": c.key, "was": c.was, "now": c.now,
                })).collect::<Vec<_>>(),
            },
            "allocations": leases.iter().map(|(ip, l)| json!({
                "address": ip.to_string(),
                "container": l.id,
                "initStartTime": l.pid_start,
                "live": ipam::is_live(root, l),
            })).collect::<Vec<_>>(),
        }))
    };
    match name {
        Some(n) => one(&config::load(root, n)?),
        None => Ok(Value::Array(
            config::list(root)?.iter().map(one).collect::<Result<_>>()?,
        )),
    }
}

/// `network create NAME --subnet CIDR [--subnet CIDR6]`.
pub fn create(root: &Path, name: &str, subnets: &[String]) -> Result<()> {
    let parsed = subnets
        .iter()
        .map(|s| {
            s.parse::<Subnet>().map_err(|why| NetworkError::Request {
                field: "--subnet".into(),
                value: s.clone(),
                why,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let n = Network::new(name, parsed)?;
    // `cuddy0` may be made with other subnets before its first use.
    let exists = config::list(root)?;
    if exists.iter().any(|o| o.name == name) {
        return Err(NetworkError::Config {
            name: name.into(),
            why: "the network exists already (`cuddy network rm` it first)".into(),
        });
    }
    for o in &exists {
        for a in &o.subnets {
            for b in &n.subnets {
                if a.contains(b.addr) || b.contains(a.addr) {
                    return Err(NetworkError::Config {
                        name: name.into(),
                        why: format!("subnet {b} overlaps {a} of network {:?}", o.name),
                    });
                }
            }
        }
    }
    config::ensure_dir(root)?;
    config::store(root, &n)
}

/// `network rm NAME`: refused while a live container holds an address;
/// removes the bridge, the leases and the config.
pub fn rm(root: &Path, name: &str) -> Result<()> {
    let n = config::load(root, name)?;
    let live: Vec<String> = ipam::leases(root, name)?
        .values()
        .filter(|l| ipam::is_live(root, l))
        .map(|l| l.id.clone())
        .collect();
    if !live.is_empty() {
        return Err(NetworkError::Config {
            name: name.into(),
            why: format!("in use by containers {live:?}"),
        });
    }
    if bridge_present(&n) {
        Netlink::open()?.del_link(&n.bridge)?;
    }
    let d = ipam::leases_dir(root, name);
    match std::fs::remove_dir_all(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(super::io_err("remove", &d)(e));
        }
        _ => {}
    }
    config::remove(root, name)
}

/// `network prune`: removes the leases of containers that no longer exist
/// (or whose init is not the one that took the lease), then the bridges of
/// networks left without any container (made again on next use; the
/// network's config stays). Returns what it did, one line each.
pub fn prune(root: &Path) -> Result<String> {
    let mut out = String::new();
    for n in config::list(root)? {
        for (ip, l) in ipam::prune(root, &n.name)? {
            let _ = writeln!(out, "{}: released {ip} of container {:?}", n.name, l.id);
        }
        if ipam::leases(root, &n.name)?.is_empty() && bridge_present(&n) {
            Netlink::open()?.del_link(&n.bridge)?;
            let _ = writeln!(out, "{}: removed bridge {}", n.name, n.bridge);
            let subnets: Vec<_> = n.subnets.iter().map(|s| (s.addr, s.prefix)).collect();
            let b = nft::BridgeNat {
                bridge: &n.bridge,
                subnets: &subnets,
            };
            nat::forget_bridge(&config::dir(root), &b)?;
        }
    }
    // Published ports of containers that no longer exist (issue 10 item 6).
    if nft::nft_path().is_ok() {
        for chain in nat::prune_chains(root, &live_chains(root)?)? {
            let _ = writeln!(out, "removed published ports (nft chain {chain})");
        }
    }
    Ok(out)
}
