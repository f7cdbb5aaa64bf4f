//! cuddy's networks: `<root>/@networks/NAME.json` (the bridge name and its
//! subnets). `cuddy0` is written with the defaults on first use; other
//! names are made by `cuddy network create NAME --subnet CIDR...`. The
//! directory's name holds '@', which no container id may, so it never
//! meets a container's state directory.

use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::request::DEFAULT_BRIDGE;
use super::{NetworkError, Result, io_err};
use crate::utils::write_atomic;

/// The directory under the state root.
pub const NETWORKS_DIR: &str = "@networks";

/// The default IPv4 subnet of `cuddy0`: neither podman's 10.88.0.0/16 (nor
/// the 10.89.x/24 of its later networks) nor Docker's 172.17.0.0/16.
pub const DEFAULT_V4: &str = "10.77.0.0/16";
/// The default IPv6 subnet of `cuddy0`: a ULA /64 (RFC 4193, fd00::/8).
pub const DEFAULT_V6: &str = "fd77:c0dd:7::/64";

/// A subnet, `ADDR/PREFIX`, with the host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Subnet {
    fn bits(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn base(&self) -> u128 {
        to_u128(self.addr)
    }

    /// Host part size (2^host bits), saturated.
    fn size(&self) -> u128 {
        let host = self.bits() - u32::from(self.prefix);
        if host >= 128 {
            u128::MAX
        } else {
            1u128 << host
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let n = to_u128(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && n >= self.base() && n - self.base() < self.size()
    }

    /// The `n`th address of the subnet (0: the network address).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        (n < self.size()).then(|| from_u128(self.base() + n, self.addr.is_ipv4()))
    }

    /// The gateway: the first address, on the bridge.
    pub fn gateway(&self) -> IpAddr {
        from_u128(self.base() + 1, self.addr.is_ipv4())
    }

    /// The offset of `ip` in the subnet.
    pub fn offset(&self, ip: IpAddr) -> u128 {
        to_u128(ip) - self.base()
    }

    /// How many host addresses cuddy hands out (v4: no network, gateway or
    /// broadcast address; v6: no subnet-router anycast or gateway), capped
    /// at 2^16 for a scan.
    pub fn last_host(&self) -> u128 {
        let last = if self.addr.is_ipv4() {
            self.size().saturating_sub(2)
        } else {
            self.size().saturating_sub(1)
        };
        last.min(65_536)
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or("expected ADDR/PREFIX")?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        let (min, max) = if addr.is_ipv4() { (8, 30) } else { (64, 120) };
        if !(min..=max).contains(&prefix) {
            return Err(format!("the prefix length must be {min} to {max}"));
        }
        let sn = Subnet { addr, prefix };
        if to_u128(addr) & (sn.size() - 1) != 0 {
            return Err("host bits are set (write the network address)".into());
        }
        Ok(sn)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A network of cuddy's: a bridge and its subnets (at most one per family).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// The bridge interface (the network's name).
    pub bridge: String,
    pub subnets: Vec<Subnet>,
}

impl Network {
    /// The defaults of `cuddy0`.
    pub fn default_bridge() -> Network {
        Network {
            name: DEFAULT_BRIDGE.into(),
            bridge: DEFAULT_BRIDGE.into(),
            subnets: [DEFAULT_V4, DEFAULT_V6]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
        }
    }

    /// A new network; subnets checked (one per family, no overlap with
    /// another of cuddy's networks).
    pub fn new(name: &str, subnets: Vec<Subnet>) -> Result<Network> {
        let bad = |why: String| NetworkError::Config {
            name: name.into(),
            why,
        };
        if subnets.is_empty() {
            return Err(bad("give at least one --subnet CIDR".into()));
        }
        let v4 = subnets.iter().filter(|s| s.addr.is_ipv4()).count();
        if v4 > 1 || subnets.len() - v4 > 1 {
            return Err(bad("at most one subnet per address family".into()));
        }
        Ok(Network {
            name: name.into(),
            bridge: name.into(),
            subnets,
        })
    }

    pub fn subnet_for(&self, ip: IpAddr) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| s.addr.is_ipv4() == ip.is_ipv4())
    }
}

pub fn dir(root: &Path) -> PathBuf {
    root.join(NETWORKS_DIR)
}

fn file(root: &Path, name: &str) -> PathBuf {
    dir(root).join(format!("{name}.json"))
}

/// Creates `<root>/@networks` (0700).
pub fn ensure_dir(root: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir(root);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .map_err(io_err("create", &d))?;
    Ok(d)
}

/// The network `name`: its stored config, or for `cuddy0` the defaults
/// (stored on first use).
pub fn load(root: &Path, name: &str) -> Result<Network> {
    let path = file(root, name);
    match fs::read(&path) {
        Ok(d) => serde_json::from_slice(&d).map_err(|e| NetworkError::Config {
            name: name.into(),
            why: format!("{}: {e}", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == DEFAULT_BRIDGE => {
            let n = Network::default_bridge();
            ensure_dir(root)?;
            store(root, &n)?;
            Ok(n)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NetworkError::Config {
            name: name.into(),
            why: format!(
                "no such network (create it with `cuddy network create {name} --subnet CIDR`; {DEFAULT_BRIDGE} exists by default)"
            ),
        }),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// Writes the config (atomically).
pub fn store(root: &Path, n: &Network) -> Result<()> {
    let path = file(root, &n.name);
    let data = serde_json::to_vec_pretty(n).map_err(|e| NetworkError::Config {
        name: n.name.clone(),
        why: e.to_string(),
    })?;
    write_atomic(&path, &data, 0o600).map_err(io_err("write", &path))
}

/// Every stored network.
pub fn list(root: &Path) -> Result<Vec<Network>> {
    let d = dir(root);
    let rd = match fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", &d)(e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    names.iter().map(|n| load(root, n)).collect()
}

/// Removes a stored network config.
pub fn remove(root: &Path, name: &str) -> Result<()> {
    let path = file(root, name);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_count() {
        let s: Subnet = "10.77.0.0/16".parse().unwrap();
        assert_eq!(s.gateway().to_string(), "10.77.0.1");
        assert!(s.contains("10.77.255.254".parse().unwrap()));
        assert!(!s.contains("10.78.0.1".parse().unwrap()));
        assert!(!s.contains("fd77::1".parse().unwrap()));
        assert_eq!(s.last_host(), 65_534);
        let s6: Subnet = DEFAULT_V6.parse().unwrap();
        assert_eq!(s6.gateway().to_string(), "fd77:c0dd:7::1");
        assert_eq!(s6.nth(2).unwrap().to_string(), "fd77:c0dd:7::2");
        for bad in [
            "10.77.0.1/16",
            "10.77.0.0",
            "10.77.0.0/31",
            "fd00::/48",
            "x/8",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }
}
