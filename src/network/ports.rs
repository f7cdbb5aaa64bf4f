//! Published ports (`--publish`), masquerade and forwarding: the nft
//! extension (docs/networking.md "Published ports and egress").
//!
//! [`attach`] runs after the container's veth and addresses exist (its
//! addresses are in `a.record.addresses`). Bridge mode: the bridge's
//! egress (forwarding, masquerade; made once per bridge, [`super::nat`]),
//! then, with `--publish`, the container's chain and map elements in one
//! nft batch, recorded as an [`Effect::Ports`] (chain and keys) *before*
//! the batch runs; [`undo`] removes them idempotently ([`nft::remove`]).
//! CNI mode leaves ports and masquerade to the CNI plugins (`portmap`,
//! the bridge plugin's `ipMasq`).

use std::net::IpAddr;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoBridgePort, InfoPortData, InfoPortKind, LinkAttribute, LinkInfo, LinkMessage,
};
use serde::{Deserialize, Serialize};

use super::nft::{self, BridgeNat, Published};
use super::record::Effect;
use super::setup::{Attach, UndoCtx};
use super::{Mode, NetworkError, Request, Result, config, nat};

/// What [`Effect::Ports`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortsData {
    /// The container's chain in `inet cuddy`.
    pub chain: String,
    /// Its map elements: (map, key as nft writes it).
    pub keys: Vec<(String, String)>,
}

/// Egress for every container of a bridge, and its published ports.
pub fn attach(req: &Request, a: &mut Attach) -> Result<()> {
    let Mode::Bridge(name) = &req.mode else {
        return Ok(());
    };
    let net = config::load(a.state_root, name)?;
    let subnets: Vec<(IpAddr, u8)> = net.subnets.iter().map(|s| (s.addr, s.prefix)).collect();
    let b = BridgeNat {
        bridge: &net.bridge,
        subnets: &subnets,
    };
    let dir = config::ensure_dir(a.state_root)?;
    if req.publish.is_empty() {
        if nft::nft_path().is_err() {
            // Egress is a convenience, not a request: without the nft tool
            // the container still gets its bridge (host and containers
            // reach it), only not the outside.
            tracing::warn!(
                "network: nft not found (Debian's nftables package): no masquerade, the container reaches only the host and the bridge"
            );
            return Ok(());
        }
        return Ok(nat::ensure_bridge(&dir, &b)?);
    }
    let chain = nft::chain_name(a.state_root, a.id);
    let addr = |v4: bool| {
        a.record
            .addresses
            .iter()
            .map(|(ip, _)| *ip)
            .find(|ip| ip.is_ipv4() == v4)
    };
    let p = Published {
        chain: &chain,
        v4: match addr(true) {
            Some(IpAddr::V4(v)) => Some(v),
            _ => None,
        },
        v6: match addr(false) {
            Some(IpAddr::V6(v)) => Some(v),
            _ => None,
        },
        ports: &req.publish,
    };
    let els = nft::elements(&p)?;
    let data = PortsData {
        chain: chain.clone(),
        keys: els
            .iter()
            .map(|e| (e.map.to_string(), e.key.clone()))
            .collect(),
    };
    a.record.add(Effect::Ports {
        data: serde_json::to_value(&data).map_err(|e| NetworkError::Record {
            path: a.record.path().to_path_buf(),
            why: e.to_string(),
        })?,
    })?;
    // The host end's name is per instance (bridge::host_ifname): the one
    // recorded before the pair was made.
    let host = a
        .record
        .effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::Veth { host, .. } => Some(host.clone()),
            _ => None,
        })
        .ok_or_else(|| NetworkError::Record {
            path: a.record.path().to_path_buf(),
            why: "--publish: no veth recorded for the container".into(),
        })?;
    hairpin(&host)?;
    nat::publish(&dir, &b, &p)?;
    Ok(())
}

/// Turns on `hairpin` on the container's bridge port: with the kernel's
/// bridge netfilter active (br_netfilter, `bridge-nf-call-iptables=1`),
/// DNAT happens on the bridged frame, and a container reaching its own
/// published port needs the frame sent back out the port it came in
/// (Docker does the same). Without br_netfilter it changes nothing.
fn hairpin(host: &str) -> Result<()> {
    let mut nl = super::netlink::Netlink::open()?;
    let Some(link) = nl.link(host)? else {
        return Err(NetworkError::Netlink {
            op: format!("find {host}"),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        });
    };
    let mut m = LinkMessage::default();
    m.header.index = link.header.index;
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            true,
        )])),
    ]));
    nl.request(
        RouteNetlinkMessage::NewLink(m),
        0,
        &format!("set hairpin on {host}"),
    )
    .map(drop)
}

/// Undoes an [`Effect::Ports`]: the container's elements and chain.
pub fn undo(data: &serde_json::Value, _cx: &UndoCtx) -> Result<()> {
    let d: PortsData = serde_json::from_value(data.clone()).map_err(|e| NetworkError::Record {
        path: "network.json".into(),
        why: format!("ports: {e}"),
    })?;
    Ok(nft::remove(&d.chain, &d.keys)?)
}
