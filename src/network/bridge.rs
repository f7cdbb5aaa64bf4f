//! Bridge mode (`--network bridge[=NAME]`): a bridge in cuddy's network
//! namespace (made if missing, up, the gateway addresses on it), a veth
//! pair per container with its host end on the bridge and its other end
//! made directly in the container's namespace as `eth0`, addresses from
//! [`super::ipam`], default routes, and the /etc files.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::Spec;
use sha2::{Digest, Sha256};

use super::config::{self, Network};
use super::netlink::{self, EEXIST, Netlink, Veth};
use super::record::{Effect, Record};
use super::setup::Attach;
use super::{NetworkError, Request, Result, etc, ipam};

/// The container's end of the veth pair.
pub const CONTAINER_IF: &str = "eth0";

/// What [`prepare`] gets.
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub dir: &'a Path,
    pub id: &'a str,
    pub name: &'a str,
    pub request: &'a Request,
    pub record: &'a mut Record,
    pub spec: &'a mut Spec,
    pub rootfs: &'a Path,
}

/// The bridge and addresses, ready for [`attach`].
#[derive(Debug)]
pub struct Prepared {
    pub network: Network,
    pub bridge_index: u32,
    pub mtu: u32,
    pub addresses: Vec<(IpAddr, u8)>,
}

/// Before clone: the network's config, the bridge, the leases and the /etc
/// files (each lease recorded before it is made).
pub fn prepare(cx: &mut Ctx) -> Result<Prepared> {
    let mut net = config::load(cx.root, cx.name)?;
    let mut nl = Netlink::open()?;
    let (bridge_index, mtu) = ensure_bridge(&mut nl, &mut net)?;
    let addresses = ipam::allocate(cx.root, &net, cx.id, &cx.request.ips, cx.record)?;
    let ips: Vec<IpAddr> = addresses.iter().map(|a| a.0).collect();
    etc::prepare(cx.dir, cx.spec, cx.rootfs, cx.id, &ips, &cx.request.dns)?;
    Ok(Prepared {
        network: net,
        bridge_index,
        mtu,
        addresses,
    })
}

/// The bridge of `net`, made if missing (up, with each subnet's gateway
/// address); an existing link of that name must be a bridge. Returns its
/// index and MTU. A bridge cuddy made stays for the next container.
///
/// A family the kernel refuses (IPv6 disabled: EACCES, or not built in:
/// EAFNOSUPPORT) is dropped from `net` for this container (debug log), so
/// an IPv4-only host still works.
fn ensure_bridge(nl: &mut Netlink, net: &mut Network) -> Result<(u32, u32)> {
    let link = match nl.link(&net.bridge)? {
        Some(l) => l,
        None => {
            match nl.add_bridge(&net.bridge) {
                // Made by a concurrent create since.
                Err(e) if netlink::errno(&e) == Some(EEXIST) => {}
                r => r?,
            }
            tracing::debug!("network: bridge {} created", net.bridge);
            nl.link(&net.bridge)?.ok_or_else(|| NetworkError::Config {
                name: net.name.clone(),
                why: format!("bridge {} vanished after it was made", net.bridge),
            })?
        }
    };
    if !netlink::is_bridge(&link) {
        return Err(NetworkError::Config {
            name: net.name.clone(),
            why: format!("the interface {} exists and is not a bridge", net.bridge),
        });
    }
    let index = link.header.index;
    if !link
        .header
        .flags
        .contains(netlink_packet_route::link::LinkFlags::Up)
    {
        nl.set_up(index, &net.bridge)?;
    }
    let mut usable = Vec::new();
    for sn in &net.subnets {
        match nl.add_addr(index, sn.gateway(), sn.prefix) {
            Err(e) if netlink::errno(&e) == Some(EEXIST) => {}
            Err(e)
                if sn.addr.is_ipv6()
                    && matches!(netlink::errno(&e), Some(libc::EACCES | libc::EAFNOSUPPORT)) =>
            {
                tracing::debug!("network: {sn} left out: IPv6 is off here ({e})");
                continue;
            }
            r => r?,
        }
        usable.push(*sn);
    }
    net.subnets = usable;
    Ok((index, netlink::mtu(&link).unwrap_or(1500)))
}

/// The host end's name: `vc` and 13 hex digits of SHA-256(id, nonce) (15
/// bytes, IFNAMSIZ - 1), the nonce random per container instance: the
/// teardown leaves the pair to die with the container's namespace, which
/// the kernel does asynchronously, so a new container of the same id must
/// not collide with an end still going. The name is recorded
/// ([`Effect::Veth`]) before the pair is made; names are distinct but for a
/// 2^-52 chance (and a collision is EEXIST: a failed create, nothing else).
pub fn host_ifname(id: &str, nonce: u64) -> String {
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update(nonce.to_le_bytes());
    let h = h.finalize();
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("vc{}", &hex[..13])
}

/// After clone: the veth pair (recorded first), then inside the container
/// the addresses and default routes (lo is up already: the init does it).
pub fn attach(p: &Prepared, a: &mut Attach) -> Result<()> {
    let host = host_ifname(a.id, nonce());
    a.record.add(Effect::Veth {
        host: host.clone(),
        bridge: p.network.bridge.clone(),
    })?;
    let mut nl = Netlink::open()?;
    nl.add_veth(&Veth {
        host: &host,
        bridge_index: p.bridge_index,
        peer: CONTAINER_IF,
        peer_ns: a.netns.as_fd(),
        mtu: p.mtu,
        mac: a.record.request.mac.map(|m| m.0),
    })?;
    let mut inner = Netlink::open_in(a.netns.as_fd())?;
    let eth0 = inner
        .link(CONTAINER_IF)?
        .ok_or_else(|| NetworkError::Netlink {
            op: format!("find {CONTAINER_IF} in the container"),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?
        .header
        .index;
    inner.set_up(eth0, CONTAINER_IF)?;
    for (ip, prefix) in &p.addresses {
        inner.add_addr(eth0, *ip, *prefix)?;
    }
    for sn in &p.network.subnets {
        inner.add_default_route(eth0, sn.gateway())?;
    }
    let start = crate::utils::proc_start_time(Path::new("/proc"), a.pid)
        .map(|(s, _)| s)
        .unwrap_or(0);
    ipam::stamp(a.state_root, a.record, a.id, start)
}

/// A random per-instance nonce for [`host_ifname`] (getrandom; the time
/// and pid if that fails: uniqueness, not secrecy, is what counts).
fn nonce() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into the buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == b.len() as isize {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Undoes an [`Effect::Veth`]. Kernel fact: a veth pair dies with either
/// end, and the end in a network namespace dies with that namespace (its
/// cleanup_net work unregisters the devices of every dying namespace in
/// one batch, asynchronously, after the last reference went). An explicit
/// RTM_DELLINK costs 10-20 ms (unregister_netdevice waits for RCU grace
/// periods) on the delete path, so when the container's namespace dies
/// anyway (`dying`: its processes are dead and cuddy's own references,
/// the held fd and the pin, go right after the teardown) the pair is left
/// to it; the host end is gone milliseconds after `delete` returned
/// (docs/networking.md "Cost"). Otherwise (the namespace of a live init)
/// it is deleted here. Idempotent (ENODEV is success).
pub fn delete_veth(host: &str, dying: bool) -> Result<()> {
    if dying {
        tracing::debug!("network: veth {host} left to die with the namespace");
        return Ok(());
    }
    Netlink::open()?.del_link(host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names_fit_ifnamsiz_and_differ() {
        let a = super::host_ifname("web", 1);
        assert_eq!(a.len(), 15);
        assert_ne!(a, super::host_ifname("web2", 1));
        assert_ne!(a, super::host_ifname("web", 2));
        assert_eq!(a, super::host_ifname("web", 1));
        assert_ne!(super::nonce(), super::nonce());
    }
}
