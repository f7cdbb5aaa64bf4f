//! A minimal synchronous rtnetlink client (NETLINK_ROUTE over a raw
//! socket): list links and addresses, move a link to another network
//! namespace (renamed on the way), add an address, set a link up or down.
//! Only what `linux.netDevices` needs; no thread, no runtime. A socket
//! works in the network namespace it was created in (kernel fact), so a
//! socket for the container's namespace is made by entering it, creating
//! the socket and returning ([`Rtnl::open_in`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// Kernel ABI (include/uapi/linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h).
const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
/// `ifa_flags`: an address configured by the user (not autoconf/DAD).
pub const IFA_F_PERMANENT: u32 = 0x80;
/// `ifa_scope`: global.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const IFF_UP: u32 = 0x1;

/// A link as RTM_GETLINK reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub name: String,
    pub flags: u32,
    pub mac: Vec<u8>,
}

/// An address as RTM_GETADDR reports it (what RTM_NEWADDR needs to put it
/// back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Addr {
    pub family: u8,
    pub prefix_len: u8,
    pub scope: u8,
    pub flags: u32,
    pub index: i32,
    pub local: Vec<u8>,
    pub address: Vec<u8>,
    #[serde(default)]
    pub broadcast: Option<Vec<u8>>,
}

impl Addr {
    /// The address as text (`192.0.2.1/24`).
    pub fn display(&self) -> String {
        let ip: Option<std::net::IpAddr> = match self.local.len() {
            4 => <[u8; 4]>::try_from(&self.local[..]).ok().map(Into::into),
            16 => <[u8; 16]>::try_from(&self.local[..]).ok().map(Into::into),
            _ => None,
        };
        match ip {
            Some(ip) => format!("{ip}/{}", self.prefix_len),
            None => format!("{:?}/{}", self.local, self.prefix_len),
        }
    }
}

/// A NETLINK_ROUTE socket.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

fn push_attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The attributes in `buf` as (type, payload).
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let typ = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((typ, &buf[4..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    b
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0)
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Rtnl {
    /// A socket in the caller's network namespace.
    pub fn open() -> std::io::Result<Rtnl> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd from socket(2), owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Rtnl { fd, seq: 1 })
    }

    /// A socket in the network namespace `ns`: the (single-threaded)
    /// caller enters it, makes the socket, and goes back to its own
    /// (`home`, an fd of its original network namespace).
    pub fn open_in(ns: BorrowedFd, home: BorrowedFd) -> std::io::Result<Rtnl> {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let r = Rtnl::open();
        nix::sched::setns(home, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            std::io::Error::other(format!("return to cuddy's network namespace: {e}"))
        })?;
        r
    }

    /// Sends one request; collects the payloads of the replies until the
    /// ACK (or DONE for a dump); a kernel error is returned as io::Error.
    fn request(&mut self, typ: u16, flags: u16, body: &[u8]) -> std::io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msg = Vec::with_capacity(NLMSG_HDR + body.len());
        msg.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&typ.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: a valid buffer and its length; the kernel is the peer
        // (a zeroed sockaddr_nl would be the same).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.replies(seq)
    }

    fn replies(&mut self, seq: u32) -> std::io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: a writable buffer of the length given.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut b = &buf[..n as usize];
            while b.len() >= NLMSG_HDR {
                let len = u32_at(b, 0) as usize;
                let typ = u16::from_ne_bytes([b[4], b[5]]);
                let mseq = u32_at(b, 8);
                if len < NLMSG_HDR || len > b.len() {
                    return Err(std::io::Error::other("truncated netlink message"));
                }
                let payload = &b[NLMSG_HDR..len];
                b = &b[len.next_multiple_of(4).min(b.len())..];
                if mseq != seq {
                    continue;
                }
                match typ {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = u32_at(payload, 0) as i32;
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(std::io::Error::from_raw_os_error(-errno));
                    }
                    _ => out.push(payload.to_vec()),
                }
            }
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> std::io::Result<Vec<Link>> {
        let replies = self.request(RTM_GETLINK, NLM_F_DUMP, &ifinfomsg(0, 0, 0))?;
        Ok(replies.iter().filter_map(|p| parse_link(p)).collect())
    }

    /// The link named `name`, if any.
    pub fn link(&mut self, name: &str) -> std::io::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    /// The addresses of link `index` (every family).
    pub fn addrs(&mut self, index: i32) -> std::io::Result<Vec<Addr>> {
        let body = [0u8; 8];
        let replies = self.request(RTM_GETADDR, NLM_F_DUMP, &body)?;
        Ok(replies
            .iter()
            .filter_map(|p| parse_addr(p))
            .filter(|a| a.index == index)
            .collect())
    }

    /// Sets IFF_UP on or off.
    pub fn set_up(&mut self, index: i32, up: bool) -> std::io::Result<()> {
        let flags = if up { IFF_UP } else { 0 };
        self.request(RTM_NEWLINK, 0, &ifinfomsg(index, flags, IFF_UP))
            .map(drop)
    }

    /// Moves link `index` into the namespace `ns`, named `name` there, in
    /// one request (no window where the name could clash; a `%d` in the
    /// name is expanded by the kernel).
    pub fn move_to(&mut self, index: i32, ns: BorrowedFd, name: &str) -> std::io::Result<()> {
        let mut body = ifinfomsg(index, 0, 0);
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        push_attr(&mut body, IFLA_IFNAME, &n);
        push_attr(
            &mut body,
            IFLA_NET_NS_FD,
            &(ns.as_raw_fd() as u32).to_ne_bytes(),
        );
        self.request(RTM_NEWLINK, 0, &body).map(drop)
    }

    /// Adds `a` to link `index`.
    pub fn add_addr(&mut self, index: i32, a: &Addr) -> std::io::Result<()> {
        let mut body = vec![a.family, a.prefix_len, 0, a.scope];
        body.extend_from_slice(&(index as u32).to_ne_bytes());
        push_attr(&mut body, IFA_LOCAL, &a.local);
        push_attr(&mut body, IFA_ADDRESS, &a.address);
        if let Some(b) = &a.broadcast {
            push_attr(&mut body, IFA_BROADCAST, b);
        }
        // Only the flags a user may set (nodad, noprefixroute…), not the
        // kernel's state bits (secondary, dadfailed, deprecated,
        // tentative); PERMANENT is implied by a user's add.
        let user = a.flags & !(IFA_F_PERMANENT | 0x40 | 0x20 | 0x08 | 0x01);
        if user != 0 {
            push_attr(&mut body, IFA_FLAGS, &user.to_ne_bytes());
        }
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body)
            .map(drop)
    }
}

impl AsFd for Rtnl {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn parse_link(p: &[u8]) -> Option<Link> {
    if p.len() < 16 {
        return None;
    }
    let mut l = Link {
        index: u32_at(p, 4) as i32,
        name: String::new(),
        flags: u32_at(p, 8),
        mac: Vec::new(),
    };
    for (t, d) in attrs(&p[16..]) {
        match t {
            IFLA_IFNAME => l.name = cstr(d),
            IFLA_ADDRESS => l.mac = d.to_vec(),
            _ => {}
        }
    }
    Some(l)
}

fn parse_addr(p: &[u8]) -> Option<Addr> {
    if p.len() < 8 {
        return None;
    }
    let mut a = Addr {
        family: p[0],
        prefix_len: p[1],
        flags: p[2] as u32,
        scope: p[3],
        index: u32_at(p, 4) as i32,
        local: Vec::new(),
        address: Vec::new(),
        broadcast: None,
    };
    for (t, d) in attrs(&p[8..]) {
        match t {
            IFA_ADDRESS => a.address = d.to_vec(),
            IFA_LOCAL => a.local = d.to_vec(),
            IFA_BROADCAST => a.broadcast = Some(d.to_vec()),
            IFA_FLAGS => a.flags = u32_at(d, 0),
            _ => {}
        }
    }
    // IPv6 addresses carry only IFA_ADDRESS (kernel fact).
    if a.local.is_empty() {
        a.local = a.address.clone();
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut b = Vec::new();
        push_attr(&mut b, IFLA_IFNAME, b"eth0\0");
        push_attr(&mut b, IFA_FLAGS, &7u32.to_ne_bytes());
        assert_eq!(b.len() % 4, 0);
        let a = attrs(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(cstr(a[0].1), "eth0");
        assert_eq!(u32_at(a[1].1, 0), 7);
    }

    #[test]
    fn the_callers_namespace_lists_its_links() {
        // Every network namespace has lo (index 1 in a new one; listed
        // whatever its index).
        let mut r = Rtnl::open().unwrap();
        let lo = r.link("lo").unwrap().expect("lo");
        assert!(lo.index > 0);
        let addrs = r.addrs(lo.index).unwrap();
        assert!(addrs.iter().all(|a| a.index == lo.index));
    }
}
