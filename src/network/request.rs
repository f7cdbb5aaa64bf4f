//! What a container asks of the network: `--network` and friends on the
//! command line, or the same through `cuddy.network.*` annotations in
//! config.json (so a bundle carries its network). The CLI overrides the
//! annotations field by field. With neither, cuddy does exactly what
//! config.json says (runc's behaviour): [`Request::resolve`] returns `None`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::{NetworkError, Result};

/// The documented annotation prefix; keys are `cuddy.network.mode`,
/// `.ip`, `.mac`, `.publish` and `.dns` (the last two: comma-separated
/// lists), `.cni-config-dir`, `.cni-plugin-dir`.
pub const ANNOTATION_PREFIX: &str = "cuddy.network.";

/// Default bridge name of bridge mode.
pub const DEFAULT_BRIDGE: &str = "cuddy0";
/// Default CNI config directory (as CNI's own tools).
pub const DEFAULT_CNI_CONFIG_DIR: &str = "/etc/cni/net.d";
/// Default CNI plugin directory (Debian's containernetworking-plugins).
pub const DEFAULT_CNI_PLUGIN_DIR: &str = "/usr/lib/cni";

/// `--network MODE`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "name")]
pub enum Mode {
    /// A new network namespace with only `lo` (up).
    None,
    /// The caller's network namespace (the config's network namespace is
    /// dropped).
    Host,
    /// cuddy's own bridge networking; the bridge name (default `cuddy0`).
    Bridge(String),
    /// The standard CNI plugins; the network name (None: the first
    /// network list found in the config dir, as CNI's tools pick it).
    Cni(Option<String>),
}

impl FromStr for Mode {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Self> {
        let (kind, name) = match s.split_once('=') {
            Some((k, n)) => (k, Some(n)),
            None => (s, None),
        };
        let bad = |why: &str| NetworkError::Request {
            field: "--network".into(),
            value: s.into(),
            why: why.into(),
        };
        if name.is_some_and(|n| !valid_name(n)) {
            return Err(bad(
                "a network name is 1 to 15 characters of [A-Za-z0-9_.-]",
            ));
        }
        match (kind, name) {
            ("none", None) => Ok(Mode::None),
            ("host", None) => Ok(Mode::Host),
            ("bridge", n) => Ok(Mode::Bridge(n.unwrap_or(DEFAULT_BRIDGE).to_string())),
            ("cni", n) => Ok(Mode::Cni(n.map(str::to_string))),
            ("none" | "host", Some(_)) => Err(bad("none and host take no name")),
            _ => Err(bad("expected none, host, bridge[=NAME] or cni[=NAME]")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::None => f.write_str("none"),
            Mode::Host => f.write_str("host"),
            Mode::Bridge(n) => write!(f, "bridge={n}"),
            Mode::Cni(Some(n)) => write!(f, "cni={n}"),
            Mode::Cni(None) => f.write_str("cni"),
        }
    }
}

/// Interface names are at most 15 bytes (IFNAMSIZ - 1); CNI network names
/// share the rule here so one check serves both.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// `--publish [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]` (an IPv6 host address in
/// brackets: `[::1]:8080:80`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl FromStr for PortMapping {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| NetworkError::Request {
            field: "--publish".into(),
            value: s.into(),
            why: why.into(),
        };
        let (spec, proto) = match s.rsplit_once('/') {
            Some((a, "tcp")) => (a, Proto::Tcp),
            Some((a, "udp")) => (a, Proto::Udp),
            Some(_) => return Err(bad("the protocol is tcp or udp")),
            None => (s, Proto::Tcp),
        };
        let (host_ip, ports) = split_host_ip(spec).map_err(|w| bad(&w))?;
        let (hp, cp) = ports
            .split_once(':')
            .ok_or_else(|| bad("expected [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]"))?;
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(&format!("{p:?} is not a port (1-65535)"))),
        };
        Ok(PortMapping {
            host_ip,
            host_port: port(hp)?,
            container_port: port(cp)?,
            proto,
        })
    }
}

/// Splits `HOSTIP:HP:CP`, `[V6]:HP:CP` or `HP:CP` into the address and
/// the ports.
fn split_host_ip(spec: &str) -> std::result::Result<(Option<IpAddr>, &str), String> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (ip, ports) = rest
            .split_once("]:")
            .ok_or("an IPv6 host address is written [ADDR]:HOSTPORT:CPORT")?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        return Ok((Some(ip), ports));
    }
    match spec.matches(':').count() {
        1 => Ok((None, spec)),
        2 => {
            let (ip, ports) = spec.split_once(':').ok_or("unreachable")?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
            Ok((Some(ip), ports))
        }
        _ => Err("expected [HOSTIP:]HOSTPORT:CPORT (IPv6 host addresses in brackets)".into()),
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

/// A MAC address (`--mac`), unicast only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| NetworkError::Request {
            field: "--mac".into(),
            value: s.into(),
            why: why.into(),
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad("expected six hex bytes separated by ':'"));
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            m[i] = u8::from_str_radix(p, 16)
                .ok()
                .filter(|_| p.len() == 2)
                .ok_or_else(|| bad(&format!("{p:?} is not a hex byte")))?;
        }
        if m[0] & 1 == 1 {
            return Err(bad(
                "a multicast address (first byte odd) cannot name one interface",
            ));
        }
        if m == [0; 6] {
            return Err(bad("00:00:00:00:00:00 is not an address"));
        }
        Ok(Mac(m))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The network options as given (CLI or annotations), each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub mode: Option<Mode>,
    /// `--ip` (may be given once per family).
    pub ips: Vec<IpAddr>,
    pub mac: Option<Mac>,
    pub publish: Vec<PortMapping>,
    pub dns: Vec<IpAddr>,
    pub cni_config_dir: Option<PathBuf>,
    pub cni_plugin_dir: Option<PathBuf>,
}

/// What the container gets: a mode and its settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub mode: Mode,
    pub ips: Vec<IpAddr>,
    pub mac: Option<Mac>,
    pub publish: Vec<PortMapping>,
    pub dns: Vec<IpAddr>,
    pub cni_config_dir: PathBuf,
    pub cni_plugin_dir: PathBuf,
}

impl Options {
    /// The options carried by config.json's annotations (`cuddy.network.*`);
    /// a bad value names its annotation key.
    pub fn from_annotations(ann: &HashMap<String, String>) -> Result<Options> {
        let mut o = Options::default();
        for (k, v) in ann {
            let Some(key) = k.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            let named = |e: NetworkError| e.in_annotation(k);
            match key {
                "mode" => o.mode = Some(v.parse().map_err(named)?),
                "ip" => o.ips = list(v, "--ip").map_err(named)?,
                "mac" => o.mac = Some(v.parse().map_err(named)?),
                "publish" => o.publish = list(v, "--publish").map_err(named)?,
                "dns" => o.dns = list(v, "--dns").map_err(named)?,
                "cni-config-dir" => o.cni_config_dir = Some(v.into()),
                "cni-plugin-dir" => o.cni_plugin_dir = Some(v.into()),
                _ => {
                    return Err(NetworkError::Request {
                        field: format!("annotations.{k}"),
                        value: v.clone(),
                        why: "unknown key (mode, ip, mac, publish, dns, cni-config-dir, cni-plugin-dir)".into(),
                    });
                }
            }
        }
        Ok(o)
    }

    /// Each field of `self` (the command line) overrides the annotation's.
    pub fn over(self, ann: Options) -> Options {
        Options {
            mode: self.mode.or(ann.mode),
            ips: or_vec(self.ips, ann.ips),
            mac: self.mac.or(ann.mac),
            publish: or_vec(self.publish, ann.publish),
            dns: or_vec(self.dns, ann.dns),
            cni_config_dir: self.cni_config_dir.or(ann.cni_config_dir),
            cni_plugin_dir: self.cni_plugin_dir.or(ann.cni_plugin_dir),
        }
    }
}

/// `a` unless it is empty.
fn or_vec<T>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    if a.is_empty() { b } else { a }
}

/// A comma-separated list (annotations carry lists that way).
fn list<T: FromStr>(v: &str, field: &str) -> Result<Vec<T>>
where
    T::Err: Into<NetworkError>,
{
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>().map_err(|e| match e.into() {
                NetworkError::Parse { .. } => NetworkError::Request {
                    field: field.into(),
                    value: s.into(),
                    why: "not an IP address".into(),
                },
                other => other,
            })
        })
        .collect()
}

impl Request {
    /// The request from the command line over the config's annotations;
    /// `None` when neither asks for anything (then config.json alone
    /// decides, as with runc). Settings that need a mode (`--ip`,
    /// `--publish`…) without one mean bridge mode, as podman and Docker
    /// default to it; settings a mode cannot honour are refused.
    pub fn resolve(cli: Options, annotations: &HashMap<String, String>) -> Result<Option<Request>> {
        let o = cli.over(Options::from_annotations(annotations)?);
        if o == Options::default() {
            return Ok(None);
        }
        let mode = o
            .mode
            .clone()
            .unwrap_or_else(|| Mode::Bridge(DEFAULT_BRIDGE.into()));
        let refuse = |what: &str| NetworkError::Request {
            field: what.into(),
            value: mode.to_string(),
            why: format!("{what} needs --network bridge or cni"),
        };
        if matches!(mode, Mode::None | Mode::Host) {
            if !o.ips.is_empty() {
                return Err(refuse("--ip"));
            }
            if o.mac.is_some() {
                return Err(refuse("--mac"));
            }
            if !o.publish.is_empty() {
                return Err(refuse("--publish"));
            }
        }
        Ok(Some(Request {
            mode,
            ips: o.ips,
            mac: o.mac,
            publish: o.publish,
            dns: o.dns,
            cni_config_dir: o
                .cni_config_dir
                .unwrap_or_else(|| DEFAULT_CNI_CONFIG_DIR.into()),
            cni_plugin_dir: o
                .cni_plugin_dir
                .unwrap_or_else(|| DEFAULT_CNI_PLUGIN_DIR.into()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_documented() {
        assert_eq!("none".parse::<Mode>().unwrap(), Mode::None);
        assert_eq!("host".parse::<Mode>().unwrap(), Mode::Host);
        assert_eq!(
            "bridge".parse::<Mode>().unwrap(),
            Mode::Bridge("cuddy0".into())
        );
        assert_eq!(
            "bridge=br7".parse::<Mode>().unwrap(),
            Mode::Bridge("br7".into())
        );
        assert_eq!("cni".parse::<Mode>().unwrap(), Mode::Cni(None));
        assert_eq!(
            "cni=n1".parse::<Mode>().unwrap(),
            Mode::Cni(Some("n1".into()))
        );
        for bad in [
            "",
            "bridged",
            "none=x",
            "bridge=",
            "bridge=waytoolongname16",
            "cni=a/b",
        ] {
            let e = bad.parse::<Mode>().unwrap_err().to_string();
            assert!(e.contains("--network"), "{bad}: {e}");
        }
    }

    #[test]
    fn port_mappings_parse_and_print() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.proto),
            (None, 8080, 80, Proto::Tcp)
        );
        let p: PortMapping = "127.0.0.1:53:5353/udp".parse().unwrap();
        assert_eq!(p.to_string(), "127.0.0.1:53:5353/udp");
        let p: PortMapping = "[::1]:8443:443".parse().unwrap();
        assert_eq!(p.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p.to_string(), "[::1]:8443:443/tcp");
        for bad in [
            "80",
            "0:80",
            "80:70000",
            "1.2.3:80:80",
            "80:80/sctp",
            "::1:80:80",
            "a:b",
        ] {
            let e = bad.parse::<PortMapping>().unwrap_err().to_string();
            assert!(e.contains("--publish") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn macs_are_unicast() {
        let m: Mac = "02:42:ac:11:00:02".parse().unwrap();
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        for bad in [
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "02:42:ac:11:00",
            "zz:42:ac:11:00:02",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nothing_asked_means_config_json_decides() {
        let other = ann(&[("org.opencontainers.image.title", "x")]);
        assert_eq!(Request::resolve(Options::default(), &other).unwrap(), None);
    }

    #[test]
    fn annotations_carry_the_network_and_the_cli_overrides_them() {
        let a = ann(&[
            ("cuddy.network.mode", "bridge=br1"),
            ("cuddy.network.publish", "8080:80, 53:53/udp"),
            ("cuddy.network.dns", "192.0.2.53"),
        ]);
        let r = Request::resolve(Options::default(), &a).unwrap().unwrap();
        assert_eq!(r.mode, Mode::Bridge("br1".into()));
        assert_eq!(r.publish.len(), 2);
        assert_eq!(r.dns, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.cni_plugin_dir, PathBuf::from("/usr/lib/cni"));
        let cli = Options {
            mode: Some(Mode::Cni(Some("n".into()))),
            ..Options::default()
        };
        let r = Request::resolve(cli, &a).unwrap().unwrap();
        assert_eq!(r.mode, Mode::Cni(Some("n".into())));
        assert_eq!(
            r.publish.len(),
            2,
            "fields the CLI leaves alone come from the annotations"
        );
    }

    #[test]
    fn bad_annotations_name_their_key() {
        for (k, v) in [
            ("cuddy.network.mode", "bridges"),
            ("cuddy.network.ip", "10.0.0.300"),
            ("cuddy.network.publish", "80"),
            ("cuddy.network.colour", "blue"),
        ] {
            let e = Request::resolve(Options::default(), &ann(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn settings_without_a_mode_mean_bridge_and_none_refuses_them() {
        let cli = Options {
            publish: vec!["8080:80".parse().unwrap()],
            ..Options::default()
        };
        let r = Request::resolve(cli.clone(), &HashMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(r.mode, Mode::Bridge("cuddy0".into()));
        let none = Options {
            mode: Some(Mode::None),
            ..cli
        };
        let e = Request::resolve(none, &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--publish needs --network bridge or cni"), "{e}");
    }
}
