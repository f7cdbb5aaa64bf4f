//! `linux.netDevices` (config-linux.md "Network Devices"): named interfaces
//! of cuddy's network namespace are moved into the container's, renamed as
//! asked (`name`, default the host name; a `%d` template is expanded by the
//! kernel), with their permanent global addresses (IFA_F_PERMANENT,
//! RT_SCOPE_UNIVERSE: read before the move and re-added inside, as runc
//! does, because the kernel drops a device's addresses when it changes
//! namespace), and set up.
//!
//! What is moved is recorded in the state directory BEFORE the move
//! (`netdevices.json`, with the host names and addresses). On delete, while
//! the container's namespace is still alive, cuddy moves each device back
//! to its own namespace under its original name with its original
//! addresses (and up state). This goes further than the spec, which leaves
//! a device to the kernel: once the namespace is gone the kernel moves
//! physical devices to the *initial* namespace (under the container-side
//! name) and destroys virtual ones (dummy, veth, macvlan…); that is also
//! what happens when the container exited before its delete. A namespace
//! joined by path belongs to someone else: devices moved there stay there
//! (the spec's rule: the namespace's owner manages them).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxNamespaceType};
use serde::{Deserialize, Serialize};

use super::rtnl::{Addr, IFA_F_PERMANENT, IFF_UP, RT_SCOPE_UNIVERSE, Rtnl};

/// The record's file name in the container's state directory.
pub const RECORD: &str = "netdevices.json";

/// Errors of netDevices: each names `linux.netDevices.<name>`.
#[derive(Debug, thiserror::Error)]
pub enum NetDevError {
    #[error("linux.netDevices.{name}: {why}")]
    Invalid { name: String, why: String },
    #[error("linux.netDevices.{name}: {op}: {source}")]
    Netlink {
        name: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One device: as found in cuddy's namespace and as asked inside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub host_name: String,
    /// The name asked for inside (may hold `%d`).
    pub name: String,
    /// The name it got inside (known after the move).
    pub inside: Option<String>,
    pub mac: Vec<u8>,
    pub was_up: bool,
    /// Every address it had (restored on return); the permanent global
    /// ones are also given to it inside.
    pub addrs: Vec<Addr>,
}

/// The record: the devices, and whether the namespace is the container's
/// own (only then are they moved back on delete).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub own_netns: bool,
    pub devices: Vec<Device>,
}

/// Interface names: 1 to 15 bytes, no '/', ':' or whitespace, not "." or
/// ".." (the kernel's dev_valid_name).
fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && !n
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// Checks that need no system state (spec validation): the config has a
/// network namespace to move into, names are interface names, no two
/// devices get one name, none is named `lo` inside. Returns (field, why).
pub fn check_config(linux: &Linux) -> Result<(), (String, String)> {
    let Some(devs) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let has_netns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Network);
    let mut seen = std::collections::HashMap::new();
    let mut keys: Vec<&String> = devs.keys().collect();
    keys.sort();
    for host in keys {
        let field = format!("linux.netDevices.{host}");
        if !has_netns {
            return Err((field, "moving a device needs a network namespace (linux.namespaces type \"network\"): without one it would stay in the runtime's".into()));
        }
        if !valid_ifname(host) || host == "lo" {
            return Err((field, "not the name of a movable interface (1-15 characters, no '/', ':' or spaces; lo stays in its namespace)".into()));
        }
        let inside = devs[host].name().clone().unwrap_or_else(|| host.clone());
        if !valid_ifname(&inside) {
            return Err((
                format!("{field}.name"),
                format!(
                    "{inside:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"
                ),
            ));
        }
        if inside == "lo" {
            return Err((
                format!("{field}.name"),
                "lo already exists in the container's network namespace".into(),
            ));
        }
        if !inside.contains("%d") {
            if let Some(other) = seen.insert(inside.clone(), host.clone()) {
                return Err((
                    format!("{field}.name"),
                    format!("{inside:?} is also the name given to linux.netDevices.{other}"),
                ));
            }
        }
    }
    Ok(())
}

/// The devices to move, checked against cuddy's namespace (each exists;
/// in a joined namespace, no name clash) before anything is created.
pub fn plan(linux: &Linux, joined: Option<BorrowedFd>) -> Result<Option<Record>, NetDevError> {
    let Some(devs) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let first = devs.keys().next().cloned().unwrap_or_default();
    let nl = |name: &str, op: &str| {
        let (name, op) = (name.to_string(), op.to_string());
        move |source| NetDevError::Netlink { name, op, source }
    };
    let mut rt = Rtnl::open().map_err(nl(&first, "open a netlink socket"))?;
    let links = rt.links().map_err(nl(&first, "list interfaces"))?;
    let inside: Vec<String> = match joined {
        Some(ns) => {
            let home = own_netns().map_err(nl(&first, "open /proc/self/ns/net"))?;
            let mut r = Rtnl::open_in(ns, home.as_fd())
                .map_err(nl(&first, "enter the container's network namespace"))?;
            r.links()
                .map_err(nl(&first, "list interfaces"))?
                .into_iter()
                .map(|l| l.name)
                .collect()
        }
        None => vec!["lo".into()],
    };
    let mut keys: Vec<&String> = devs.keys().collect();
    keys.sort();
    let mut devices = Vec::new();
    for host in keys {
        let name = devs[host].name().clone().unwrap_or_else(|| host.clone());
        let bad = |why: String| NetDevError::Invalid {
            name: host.clone(),
            why,
        };
        let link = links
            .iter()
            .find(|l| &l.name == host)
            .ok_or_else(|| bad("no such interface in the runtime's network namespace".into()))?;
        if !name.contains("%d") && inside.contains(&name) {
            return Err(bad(format!(
                "{name:?} already exists in the container's network namespace"
            )));
        }
        let addrs = rt.addrs(link.index).map_err(nl(host, "list addresses"))?;
        devices.push(Device {
            host_name: host.clone(),
            name,
            inside: None,
            mac: link.mac.clone(),
            was_up: link.flags & IFF_UP != 0,
            addrs,
        });
    }
    Ok(Some(Record {
        own_netns: joined.is_none(),
        devices,
    }))
}

/// netDevices of a config, checked and ready for [`Pending::attach`].
#[derive(Debug)]
pub struct Pending {
    pub record: Record,
    /// The namespace joined by path (config.json), opened by cuddy.
    joined: Option<OwnedFd>,
}

/// Before anything is created: the config's netDevices looked up in
/// cuddy's namespace (and, for a namespace joined by path, checked there).
pub fn prepare(spec: &oci_spec::runtime::Spec) -> Result<Option<Pending>, NetDevError> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(None);
    };
    if linux.net_devices().as_ref().is_none_or(|d| d.is_empty()) {
        return Ok(None);
    }
    let path = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .and_then(|n| n.path().clone());
    let joined = match path {
        Some(p) => Some(
            std::fs::File::open(&p)
                .map(OwnedFd::from)
                .map_err(|source| NetDevError::Io {
                    op: "open the network namespace",
                    path: p.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let record = plan(linux, joined.as_ref().map(|f| f.as_fd()))?;
    Ok(record.map(|record| Pending { record, joined }))
}

impl Pending {
    /// After clone: the devices move into the init's namespace (or the
    /// joined one).
    pub fn attach(&mut self, dir: &Path, pid: i32) -> Result<(), NetDevError> {
        let own = match &self.joined {
            Some(_) => None,
            None => {
                let p = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
                Some(
                    std::fs::File::open(&p)
                        .map(OwnedFd::from)
                        .map_err(|source| NetDevError::Io {
                            op: "open",
                            path: p,
                            source,
                        })?,
                )
            }
        };
        let Some(ns) = self.joined.as_ref().or(own.as_ref()) else {
            return Ok(());
        };
        attach(dir, &mut self.record, ns.as_fd())
    }
}

/// An fd of the caller's network namespace.
fn own_netns() -> std::io::Result<OwnedFd> {
    std::fs::File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
}

/// Records, then moves every device into `netns`; when one fails, those
/// already moved come back and the record goes.
pub fn attach(state_dir: &Path, rec: &mut Record, netns: BorrowedFd) -> Result<(), NetDevError> {
    save(state_dir, rec)?;
    let mut done = 0;
    let mut res = Ok(());
    for i in 0..rec.devices.len() {
        match move_in(&mut rec.devices[i], netns) {
            Ok(()) => done += 1,
            Err(e) => {
                res = Err(e);
                break;
            }
        }
        save(state_dir, rec)?;
    }
    if let Err(e) = res {
        let back = Record {
            own_netns: true,
            devices: rec.devices[..done].to_vec(),
        };
        if let Err(b) = return_all(&back, netns) {
            tracing::warn!("{b}");
        }
        let _ = std::fs::remove_file(state_dir.join(RECORD));
        return Err(e);
    }
    Ok(())
}

fn move_in(d: &mut Device, netns: BorrowedFd) -> Result<(), NetDevError> {
    let nl = |op: &str| {
        let (name, op) = (d.host_name.clone(), op.to_string());
        move |source| NetDevError::Netlink { name, op, source }
    };
    let home = own_netns().map_err(nl("open /proc/self/ns/net"))?;
    let mut rt = Rtnl::open().map_err(nl("open a netlink socket"))?;
    let link = rt
        .link(&d.host_name)
        .map_err(nl("find the interface"))?
        .ok_or_else(|| NetDevError::Invalid {
            name: d.host_name.clone(),
            why: "the interface disappeared".into(),
        })?;
    // Down first, as runc: nothing on the host side sees it half-moved.
    rt.set_up(link.index, false).map_err(nl("set it down"))?;
    if let Err(e) = rt.move_to(link.index, netns, &d.name) {
        if d.was_up {
            let _ = rt.set_up(link.index, true);
        }
        return Err(nl("move it into the container's network namespace")(e));
    }
    let mut inside = Rtnl::open_in(netns, home.as_fd())
        .map_err(nl("enter the container's network namespace"))?;
    let moved = find_moved(&mut inside, &d.name, &d.mac).map_err(nl("find it inside"))?;
    d.inside = Some(moved.name.clone());
    for a in d.addrs.iter().filter(|a| keeps(a)) {
        inside
            .add_addr(moved.index, a)
            .map_err(nl(&format!("add address {} inside", a.display())))?;
    }
    inside
        .set_up(moved.index, true)
        .map_err(nl("set it up inside"))
}

/// Permanent addresses of global scope (config-linux.md "Network Devices",
/// RFC 3549 2.3.3.2) go with the device.
fn keeps(a: &Addr) -> bool {
    a.flags & IFA_F_PERMANENT != 0 && a.scope == RT_SCOPE_UNIVERSE
}

/// The moved device inside: by its name, or for a `%d` template by its
/// MAC among the names the template allows.
fn find_moved(rt: &mut Rtnl, name: &str, mac: &[u8]) -> std::io::Result<super::rtnl::Link> {
    let links = rt.links()?;
    let hit = match name.split_once("%d") {
        None => links.into_iter().find(|l| l.name == name),
        Some((pre, post)) => links.into_iter().find(|l| {
            l.mac == mac
                && l.name
                    .strip_prefix(pre)
                    .and_then(|r| r.strip_suffix(post))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }),
    };
    hit.ok_or_else(|| std::io::Error::other(format!("no interface {name:?} after the move")))
}

/// Moves every recorded device back from `netns` to cuddy's namespace,
/// under its host name, with its addresses and up state. Carries on past a
/// failure; returns the first.
pub fn return_all(rec: &Record, netns: BorrowedFd) -> Result<(), NetDevError> {
    let mut first = None;
    for d in &rec.devices {
        if let Err(e) = return_one(d, netns) {
            tracing::warn!("{e}");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

fn return_one(d: &Device, netns: BorrowedFd) -> Result<(), NetDevError> {
    let nl = |op: &str| {
        let (name, op) = (d.host_name.clone(), op.to_string());
        move |source| NetDevError::Netlink { name, op, source }
    };
    let home = own_netns().map_err(nl("open /proc/self/ns/net"))?;
    let mut inside = Rtnl::open_in(netns, home.as_fd())
        .map_err(nl("enter the container's network namespace"))?;
    let name = d.inside.as_deref().unwrap_or(&d.name);
    let Some(link) = inside.link(name).map_err(nl("find it inside"))? else {
        // Never moved (a crash before the move) or gone with its namespace.
        return Ok(());
    };
    inside
        .set_up(link.index, false)
        .map_err(nl("set it down inside"))?;
    inside
        .move_to(link.index, home.as_fd(), &d.host_name)
        .map_err(nl("move it back to the runtime's network namespace"))?;
    let mut rt = Rtnl::open().map_err(nl("open a netlink socket"))?;
    let back = rt
        .link(&d.host_name)
        .map_err(nl("find it back"))?
        .ok_or_else(|| NetDevError::Invalid {
            name: d.host_name.clone(),
            why: "not found after the move back".into(),
        })?;
    for a in d.addrs.iter().filter(|a| a.flags & IFA_F_PERMANENT != 0) {
        match rt.add_addr(back.index, a) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                return Err(nl(&format!("restore address {}", a.display()))(e));
            }
            _ => {}
        }
    }
    if d.was_up {
        rt.set_up(back.index, true).map_err(nl("set it up"))?;
    }
    Ok(())
}

/// On delete: the devices come back while the namespace lives (`netns`
/// None: it is gone, and with it what the kernel destroyed or moved);
/// the record goes.
pub fn detach(state_dir: &Path, netns: Option<BorrowedFd>) -> Result<(), NetDevError> {
    let Some(rec) = load(state_dir)? else {
        return Ok(());
    };
    if let (true, Some(ns)) = (rec.own_netns, netns) {
        return_all(&rec, ns)?;
    }
    let p = state_dir.join(RECORD);
    std::fs::remove_file(&p).map_err(|source| NetDevError::Io {
        op: "remove",
        path: p,
        source,
    })
}

fn save(state_dir: &Path, rec: &Record) -> Result<(), NetDevError> {
    let path = state_dir.join(RECORD);
    let text = serde_json::to_vec_pretty(rec).map_err(|e| NetDevError::Io {
        op: "serialize",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    crate::utils::write_atomic(&path, &text, 0o600).map_err(|source| NetDevError::Io {
        op: "write",
        path,
        source,
    })
}

/// The record of a container, if it has one.
pub fn load(state_dir: &Path) -> Result<Option<Record>, NetDevError> {
    let path = state_dir.join(RECORD);
    match std::fs::read(&path) {
        Ok(t) => serde_json::from_slice(&t)
            .map(Some)
            .map_err(|e| NetDevError::Io {
                op: "parse",
                path,
                source: std::io::Error::other(e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NetDevError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn config_checks_name_the_device() {
        let ok = linux(
            r#"{"namespaces":[{"type":"network"}],"netDevices":{"dummy0":{"name":"eth1"},"d1":{}}}"#,
        );
        check_config(&ok).unwrap();
        for (j, want) in [
            (
                r#"{"namespaces":[{"type":"pid"}],"netDevices":{"dummy0":{}}}"#,
                "linux.netDevices.dummy0",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"a":{"name":"x"},"b":{"name":"x"}}}"#,
                "linux.netDevices.b.name",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"a":{"name":"lo"}}}"#,
                "linux.netDevices.a.name",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"a/b":{}}}"#,
                "linux.netDevices.a/b",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"a":{"name":"waytoolongname16"}}}"#,
                "linux.netDevices.a.name",
            ),
        ] {
            let (field, why) = check_config(&linux(j)).unwrap_err();
            assert_eq!(field, want, "{j}: {why}");
        }
    }

    #[test]
    fn an_unknown_interface_is_named() {
        let l = linux(r#"{"namespaces":[{"type":"network"}],"netDevices":{"nosuch0":{}}}"#);
        let e = plan(&l, None).unwrap_err().to_string();
        assert!(
            e.contains("linux.netDevices.nosuch0") && e.contains("no such interface"),
            "{e}"
        );
    }
}
