//! A small synchronous rtnetlink client over `netlink-sys` and
//! `netlink-packet-route` (netavark's choice: no async runtime, no thread,
//! so cuddy can still fork from a single-threaded process;
//! docs/dependencies.md). One socket, one request at a time, each
//! acknowledged (NLM_F_ACK) before the next.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{NetworkError, Result};

/// errno values the callers treat as "already so".
pub const EEXIST: i32 = libc::EEXIST;
pub const ENODEV: i32 = libc::ENODEV;

/// A connected NETLINK_ROUTE socket (SOCK_CLOEXEC: netlink-sys sets it)
/// bound to the network namespace it was opened in.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Netlink { op, source }
}

impl Netlink {
    /// A socket in cuddy's own network namespace.
    pub fn open() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(nl_err("socket"))?;
        sock.bind_auto().map_err(nl_err("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(nl_err("connect"))?;
        Ok(Netlink {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// A socket in the network namespace `netns`. Kernel fact: a netlink
    /// socket stays in the namespace it was created in, so cuddy (single-
    /// threaded: setns moves the whole process) enters `netns`, opens the
    /// socket and goes back at once; nothing else runs in between.
    pub fn open_in(netns: BorrowedFd) -> Result<Netlink> {
        let own: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(nl_err("open /proc/thread-self/ns/net"))?
            .into();
        setns(netns, "enter the container's network namespace")?;
        let s = Netlink::open();
        // Going back cannot be skipped: everything after runs on the host.
        setns(own.as_fd(), "return to cuddy's network namespace")?;
        s
    }

    /// Sends `msg` with `flags` (plus REQUEST|ACK) and returns the replies
    /// up to the acknowledgement; a NACK is the errno as an io::Error.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        hdr.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        m.finalize();
        let mut out = vec![0; m.buffer_len()];
        m.serialize(&mut out);
        self.sock.send(&out, 0).map_err(nl_err(op))?;
        let mut replies = Vec::new();
        loop {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(nl_err(op))?;
            let mut off = 0;
            while off < n {
                let bytes = &self.buf[off..n];
                let r = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
                    NetworkError::Netlink {
                        op: op.into(),
                        source: std::io::Error::other(e.to_string()),
                    }
                })?;
                let len = r.header.length as usize;
                if len == 0 {
                    break;
                }
                off += len;
                if r.header.sequence_number != self.seq {
                    continue;
                }
                match r.payload {
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(replies),
                    NetlinkPayload::Error(e) => return Err(nl_err(op)(e.to_io())),
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The link named `name`, if any.
    pub fn link(&mut self, name: &str) -> Result<Option<LinkMessage>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(
            RouteNetlinkMessage::GetLink(m),
            0,
            &format!("get link {name}"),
        ) {
            Ok(mut r) => Ok(r.pop().and_then(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge named `name`, up (EEXIST is the caller's).
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create bridge {name}"),
        )
        .map(drop)
    }

    /// Sets link `index` up.
    pub fn set_up(&mut self, index: u32, name: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(m),
            0,
            &format!("set {name} up"),
        )
        .map(drop)
    }

    /// Creates the veth pair `host` (on `bridge`, up) and `peer`, made
    /// directly in the namespace `peer_ns` (IFLA_NET_NS_FD in the peer's
    /// message: it is never in cuddy's namespace, so nothing can grab it
    /// in a move window), with `mtu` and an optional MAC (still down).
    pub fn add_veth(&mut self, v: &Veth) -> Result<()> {
        // Kernel fact: the peer cannot be set up here: veth_newlink
        // configures it before the two ends know each other, and opening a
        // veth without its peer fails with ENOTCONN. The caller sets it up.
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(v.peer.into()));
        peer.attributes.push(LinkAttribute::Mtu(v.mtu));
        peer.attributes
            .push(LinkAttribute::NetNsFd(v.peer_ns.as_raw_fd()));
        if let Some(mac) = v.mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(v.host.into()));
        m.attributes.push(LinkAttribute::Mtu(v.mtu));
        m.attributes.push(LinkAttribute::Controller(v.bridge_index));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth {} (peer {} in the container)", v.host, v.peer),
        )
        .map(drop)
    }

    /// Deletes the link `name`; gone already is fine.
    pub fn del_link(&mut self, name: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(
            RouteNetlinkMessage::DelLink(m),
            0,
            &format!("delete link {name}"),
        ) {
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Adds `ip/prefix` to link `index`; IPv6 addresses without duplicate
    /// address detection (IFA_F_NODAD), so they are usable at once.
    pub fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = family(ip);
        m.header.prefix_len = prefix;
        m.header.index = index;
        if ip.is_ipv6() {
            m.header.flags = AddressHeaderFlags::Nodad;
        }
        m.attributes.push(AddressAttribute::Local(ip));
        m.attributes.push(AddressAttribute::Address(ip));
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {ip}/{prefix}"),
        )
        .map(drop)
    }

    /// The default route of `gw`'s family via `gw` on link `index`.
    pub fn add_default_route(&mut self, index: u32, gw: IpAddr) -> Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(gw);
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        m.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add default route via {gw}"),
        )
        .map(drop)
    }
}

/// A veth pair to make ([`Netlink::add_veth`]).
pub struct Veth<'a> {
    pub host: &'a str,
    pub bridge_index: u32,
    pub peer: &'a str,
    pub peer_ns: BorrowedFd<'a>,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// The errno of a netlink NACK.
pub fn errno(e: &NetworkError) -> Option<i32> {
    match e {
        NetworkError::Netlink { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// The MTU and index of a link message.
pub fn mtu(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Is the link a bridge (IFLA_INFO_KIND "bridge")?
pub fn is_bridge(l: &LinkMessage) -> bool {
    l.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(i) => i.contains(&LinkInfo::Kind(InfoKind::Bridge)),
        _ => false,
    })
}

fn setns(fd: BorrowedFd, op: &str) -> Result<()> {
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetworkError::Netlink {
        op: op.into(),
        source: e.into(),
    })
}
