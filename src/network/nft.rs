//! nftables: cuddy's own table `inet cuddy`, changed only through the `nft`
//! tool (Debian's `nftables` package) with one generated batch per change
//! (`nft -f -`: the kernel commits a batch as one transaction, all or
//! nothing). docs/networking.md "Published ports and egress" has the
//! ruleset and why.
//!
//! Layout:
//! - base chains `prerouting` and `output` (nat, dstnat priority) send
//!   traffic to a local address (`fib daddr type local`: any of this
//!   namespace's own addresses, 127.0.0.1 included) to `publish`, which
//!   looks up three verdict maps: `pub_v4` and `pub_v6` keyed by
//!   (host address, protocol, port), then `pub_any` keyed by (family,
//!   protocol, port). Each element jumps to the chain of one container.
//! - one chain per container ([`chain_name`]), holding its DNAT rules; teardown
//!   deletes its map elements *by key* and then the chain, in one batch.
//!   A key is only ever deleted while the chain it jumps to still exists
//!   in the same transaction (see [`remove`]), so another container's
//!   element is never touched, and no rule is ever matched by expression.
//! - `postrouting` (nat, srcnat): masquerade for the bridge subnets leaving
//!   to other subnets (egress), and for published traffic that comes from
//!   the bridge subnets (hairpin, container to container through a host
//!   address) or from 127.0.0.0/8 (the host on its loopback address).
//! - `guard` (filter, raw priority): packets *to* 127.0.0.0/8 arriving on a
//!   cuddy bridge are dropped: cuddy sets `route_localnet` on its bridges
//!   (the loopback replies of the previous point need it) and this closes
//!   what that would open (CVE-2020-8558 for kube-proxy).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::request::PortMapping;

/// The table: `inet cuddy`.
pub const TABLE: &str = "inet cuddy";

/// Errors of the nft driver; each names the operation.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The `nft` tool is missing.
    #[error(
        "nft not found (looked in PATH, /usr/sbin, /sbin): published ports and the bridge's masquerade need Debian's nftables package (apt-get install nftables)"
    )]
    NotFound,
    /// `nft` could not be run.
    #[error("{op}: running {prog}: {source}")]
    Spawn {
        op: &'static str,
        prog: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused the batch (nothing of it was applied).
    #[error("{op}: nft -f - failed (nothing applied): {stderr}")]
    Batch { op: &'static str, stderr: String },
    /// A sysctl of the namespace (forwarding, route_localnet).
    #[error("sysctl {path}: {op}: {source}")]
    Sysctl {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// cuddy's own record of what it made (`@nat.record`) or its lock.
    #[error("{op} {path}: {source}")]
    State {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A port another container publishes (nothing was applied).
    #[error("--publish {mapping}: {why}")]
    Taken { mapping: String, why: String },
}

pub type Result<T, E = NftError> = std::result::Result<T, E>;

/// A bridge whose subnets are masqueraded.
#[derive(Debug, Clone)]
pub struct BridgeNat<'a> {
    pub bridge: &'a str,
    /// Network address and prefix length, one per family at most.
    pub subnets: &'a [(IpAddr, u8)],
}

/// A container's published ports.
#[derive(Debug, Clone)]
pub struct Published<'a> {
    /// Its chain ([`chain_name`]).
    pub chain: &'a str,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    /// Checked by [`elements`] first.
    pub ports: &'a [PortMapping],
}

/// The container's chain: `cTAG_ID` when the id is short and of
/// `[A-Za-z0-9_-]` (nft identifiers), else `cTAG_h` and 32 hex digits of
/// its SHA-256. TAG is 6 hex digits of the SHA-256 of the state root, so
/// two state roots in one network namespace never share a chain, and
/// `network prune` of one never takes another's (see [`root_prefix`]).
pub fn chain_name(root: &Path, id: &str) -> String {
    let plain = id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let prefix = root_prefix(root);
    if plain {
        return format!("{prefix}{id}");
    }
    format!("{prefix}h{}", hex(&Sha256::digest(id.as_bytes())[..16]))
}

/// `cTAG_`: the start of every chain of the containers of `root`.
pub fn root_prefix(root: &Path) -> String {
    let d = Sha256::digest(root.as_os_str().as_encoded_bytes());
    format!("c{}_", hex(&d[..3]))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// One map element of a published port: the map, its key, and the DNAT
/// rule of the container's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// `pub_any`, `pub_v4` or `pub_v6`.
    pub map: &'static str,
    /// The key as nft writes it (`ipv4 . tcp . 8080`).
    pub key: String,
    /// The rule in the container's chain.
    pub rule: String,
    /// Index of the mapping in [`Published::ports`].
    pub index: usize,
}

/// The elements of `p`'s ports, each checked: the host address must be a
/// unicast address of a family the container has an address of; two
/// mappings may not claim one key.
pub fn elements(p: &Published) -> Result<Vec<Element>> {
    let mut out: Vec<Element> = Vec::new();
    for (index, m) in p.ports.iter().enumerate() {
        let bad = |why: String| NftError::Taken {
            mapping: m.to_string(),
            why,
        };
        for e in mapping_elements(p, m, index).map_err(bad)? {
            if let Some(prev) = out.iter().find(|o| o.map == e.map && o.key == e.key) {
                return Err(bad(format!(
                    "the same host port as --publish {} of this container",
                    p.ports[prev.index]
                )));
            }
            out.push(e);
        }
    }
    Ok(out)
}

fn mapping_elements(
    p: &Published,
    m: &PortMapping,
    index: usize,
) -> std::result::Result<Vec<Element>, String> {
    let (hp, cp, proto) = (m.host_port, m.container_port, m.proto);
    let dnat4 = |a: Ipv4Addr| format!("dnat ip to {a}:{cp}");
    let dnat6 = |a: Ipv6Addr| format!("dnat ip6 to [{a}]:{cp}");
    let no_family = |f: &str| format!("the container has no {f} address to forward {f} to");
    let el = |map, key: String, rule: String| Element {
        map,
        key,
        rule,
        index,
    };
    let any4 = |a| {
        el(
            "pub_any",
            format!("ipv4 . {proto} . {hp}"),
            format!("meta nfproto ipv4 {proto} dport {hp} {}", dnat4(a)),
        )
    };
    let any6 = |a| {
        el(
            "pub_any",
            format!("ipv6 . {proto} . {hp}"),
            format!("meta nfproto ipv6 {proto} dport {hp} {}", dnat6(a)),
        )
    };
    match m.host_ip {
        None => {
            let v: Vec<Element> = p.v4.map(any4).into_iter().chain(p.v6.map(any6)).collect();
            if v.is_empty() {
                return Err("the container has no address".into());
            }
            Ok(v)
        }
        Some(IpAddr::V4(h)) if h.is_unspecified() => {
            Ok(vec![any4(p.v4.ok_or_else(|| no_family("IPv4"))?)])
        }
        Some(IpAddr::V6(h)) if h.is_unspecified() => {
            Ok(vec![any6(p.v6.ok_or_else(|| no_family("IPv6"))?)])
        }
        Some(IpAddr::V4(h)) => {
            if h.is_multicast() || h.is_broadcast() {
                return Err(format!("{h} is not a unicast address"));
            }
            let a = p.v4.ok_or_else(|| no_family("IPv4"))?;
            Ok(vec![el(
                "pub_v4",
                format!("{h} . {proto} . {hp}"),
                format!("ip daddr {h} {proto} dport {hp} {}", dnat4(a)),
            )])
        }
        Some(IpAddr::V6(h)) => {
            if h.is_multicast() {
                return Err(format!("{h} is not a unicast address"));
            }
            if h.is_loopback() {
                // Linux drops ::1 on any interface but lo, DNAT or not
                // (there is no IPv6 route_localnet).
                return Err("::1 cannot be forwarded to a container (IPv6 has no route_localnet); publish on 127.0.0.1 or another address".into());
            }
            let a = p.v6.ok_or_else(|| no_family("IPv6"))?;
            Ok(vec![el(
                "pub_v6",
                format!("{h} . {proto} . {hp}"),
                format!("ip6 daddr {h} {proto} dport {hp} {}", dnat6(a)),
            )])
        }
    }
}

/// A batch being written, with the line of each `create element` (nft
/// names the failing line).
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    lines: usize,
    /// (line, index of the mapping).
    creates: Vec<(usize, usize)>,
}

impl Batch {
    fn line(&mut self, s: &str) {
        self.text.push_str(s);
        self.text.push('\n');
        self.lines += 1;
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The table, its sets, maps and base chains, and the base chains'
    /// rules (flushed and written again: idempotent, and in the same
    /// transaction, so no packet sees them half-made).
    pub fn base(&mut self) {
        let t = TABLE;
        self.line(&format!("add table {t}"));
        for (c, def) in [
            (
                "prerouting",
                "type nat hook prerouting priority dstnat; policy accept;",
            ),
            (
                "output",
                "type nat hook output priority -100; policy accept;",
            ),
            (
                "postrouting",
                "type nat hook postrouting priority srcnat; policy accept;",
            ),
            (
                "guard",
                "type filter hook prerouting priority raw; policy accept;",
            ),
        ] {
            self.line(&format!("add chain {t} {c} {{ {def} }}"));
        }
        self.line(&format!("add chain {t} publish"));
        for (m, ty) in [
            ("pub_any", "nf_proto . inet_proto . inet_service"),
            ("pub_v4", "ipv4_addr . inet_proto . inet_service"),
            ("pub_v6", "ipv6_addr . inet_proto . inet_service"),
        ] {
            self.line(&format!("add map {t} {m} {{ type {ty} : verdict; }}"));
        }
        self.line(&format!(
            "add set {t} nets_v4 {{ type ipv4_addr; flags interval; }}"
        ));
        self.line(&format!(
            "add set {t} nets_v6 {{ type ipv6_addr; flags interval; }}"
        ));
        self.line(&format!("add set {t} bridges {{ type ifname; }}"));
        for c in ["prerouting", "output", "postrouting", "guard", "publish"] {
            self.line(&format!("flush chain {t} {c}"));
        }
        for r in BASE_RULES {
            self.line(&format!("add rule {t} {r}"));
        }
    }

    /// The bridge's subnets and name in the sets the base rules use
    /// (`add element` of an existing element is no error).
    pub fn bridge(&mut self, b: &BridgeNat) {
        let t = TABLE;
        self.line(&format!("add element {t} bridges {{ \"{}\" }}", b.bridge));
        for (addr, prefix) in b.subnets {
            let set = if addr.is_ipv4() { "nets_v4" } else { "nets_v6" };
            self.line(&format!("add element {t} {set} {{ {addr}/{prefix} }}"));
        }
    }

    /// The container's chain, its rules, and its map elements (`create`:
    /// an element another container holds fails the whole batch).
    pub fn container(&mut self, chain: &str, els: &[Element]) {
        let t = TABLE;
        self.line(&format!("add chain {t} {chain}"));
        self.line(&format!("flush chain {t} {chain}"));
        for e in els {
            self.line(&format!("add rule {t} {chain} {}", e.rule));
        }
        for e in els {
            self.line(&format!(
                "create element {t} {} {{ {} : jump {chain} }}",
                e.map, e.key
            ));
            self.creates.push((self.lines, e.index));
        }
    }

    /// Teardown of a container's chain: its elements by key, then the
    /// chain (flushed first: older kernels refuse, with EBUSY, to delete a
    /// chain that still has rules).
    pub fn remove(&mut self, chain: &str, keys: &[(String, String)]) {
        let t = TABLE;
        for (map, key) in keys {
            self.line(&format!("delete element {t} {map} {{ {key} }}"));
        }
        self.line(&format!("flush chain {t} {chain}"));
        self.line(&format!("delete chain {t} {chain}"));
    }
}

/// The base chains' rules.
const BASE_RULES: &[&str] = &[
    // A connection to [::1] is never DNATed: Linux drops ::1 outside lo.
    "output ip6 daddr ::1 return",
    "output fib daddr type local jump publish",
    "prerouting fib daddr type local jump publish",
    "publish ip daddr . meta l4proto . th dport vmap @pub_v4",
    "publish ip6 daddr . meta l4proto . th dport vmap @pub_v6",
    "publish meta nfproto . meta l4proto . th dport vmap @pub_any",
    // The host on 127.0.0.1: replies must come back to the bridge's
    // address (route_localnet lets the kernel route the request out).
    "postrouting ct status dnat ip saddr 127.0.0.0/8 masquerade",
    // Hairpin, and container to container through a host address: without
    // it the reply would go straight back over the bridge, un-NATed.
    "postrouting ct status dnat ip saddr @nets_v4 ip daddr @nets_v4 masquerade",
    "postrouting ct status dnat ip6 saddr @nets_v6 ip6 daddr @nets_v6 masquerade",
    // Egress: the bridge subnets leaving for anywhere but a bridge.
    "postrouting ip saddr @nets_v4 ip daddr != @nets_v4 masquerade",
    "postrouting ip6 saddr @nets_v6 ip6 daddr != @nets_v6 masquerade",
    "guard iifname @bridges ip daddr 127.0.0.0/8 drop",
];

/// The `nft` tool: PATH, then /usr/sbin and /sbin (a caller's PATH may
/// lack the sbin directories).
pub fn nft_path() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("nft"))
        .find(|p| is_executable(p))
        .ok_or(NftError::NotFound)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `args` with `input` on stdin; Ok(stdout) or Err(stderr).
fn nft(
    op: &'static str,
    args: &[&str],
    input: &str,
) -> Result<std::result::Result<String, String>> {
    let prog = nft_path()?;
    let spawn = |source| NftError::Spawn {
        op,
        prog: prog.clone(),
        source,
    };
    let mut child = Command::new(&prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if out.status.success() {
        Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// Applies `b` as one transaction. A `create element` that exists (a port
/// another container publishes) is said of its mapping.
pub fn apply(op: &'static str, b: &Batch, ports: &[PortMapping]) -> Result<()> {
    tracing::debug!("nft -f - ({op}):\n{}", b.text);
    match nft(op, &["-f", "-"], &b.text)? {
        Ok(_) => Ok(()),
        Err(stderr) => Err(taken(b, ports, &stderr).unwrap_or(NftError::Batch { op, stderr })),
    }
}

/// The mapping whose `create element` failed with EEXIST, from nft's
/// `/dev/stdin:LINE:COLS: Error: Could not process rule: File exists`.
fn taken(b: &Batch, ports: &[PortMapping], stderr: &str) -> Option<NftError> {
    for l in stderr.lines().filter(|l| l.contains("File exists")) {
        let line: usize = l.split(':').nth(1)?.trim().parse().ok()?;
        if let Some((_, i)) = b.creates.iter().find(|(n, _)| *n == line) {
            let m = ports.get(*i)?;
            let on = match m.host_ip {
                Some(ip) => format!("on {ip}"),
                None => "on every address".into(),
            };
            return Some(NftError::Taken {
                mapping: m.to_string(),
                why: format!(
                    "host port {}/{} {on} is already published by another container",
                    m.host_port, m.proto
                ),
            });
        }
    }
    None
}

/// Removes a container's chain and its elements, idempotently. Fast path:
/// one batch deleting the recorded keys, then the chain. The batch is one
/// transaction: if the chain is gone (never made, or removed already) it
/// fails whole, so a key another container holds now is never deleted.
/// When it fails, the chain's existence decides: gone, nothing to do;
/// still there (an element removed by hand), the keys are read back from
/// the maps (those jumping to this chain) and the batch is run again.
pub fn remove(chain: &str, keys: &[(String, String)]) -> Result<()> {
    let mut b = Batch::default();
    b.remove(chain, keys);
    if nft("remove published ports", &["-f", "-"], &b.text)?.is_ok() {
        return Ok(());
    }
    let list = format!("list chain {TABLE} {chain}");
    if nft("remove published ports", &["-f", "-"], &list)?.is_err() {
        return Ok(()); // no chain (or no table): nothing of it exists
    }
    let keys = keys_jumping_to(chain)?;
    let mut b = Batch::default();
    b.remove(chain, &keys);
    apply("remove published ports", &b, &[])
}

/// Runs one nft command (text); Ok(stdout) or Err(stderr).
pub fn run_text(op: &'static str, cmd: &str) -> Result<std::result::Result<String, String>> {
    nft(op, &["-f", "-"], cmd)
}

/// The chains of `nft list table` output that start with `prefix`.
pub fn container_chains(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("chain "))
        .filter_map(|l| l.strip_suffix(" {"))
        .filter(|c| c.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// The (map, key) pairs whose verdict is `jump chain`, read from the maps.
fn keys_jumping_to(chain: &str) -> Result<Vec<(String, String)>> {
    let mut keys = Vec::new();
    for map in ["pub_any", "pub_v4", "pub_v6"] {
        let cmd = format!("list map {TABLE} {map}");
        let text = match nft("list published ports", &["-f", "-"], &cmd)? {
            Ok(t) => t,
            Err(_) => continue,
        };
        for k in elements_of(&text, chain) {
            keys.push((map.to_string(), k));
        }
    }
    Ok(keys)
}

/// The keys of `nft list map` output whose verdict is `jump chain`:
/// `elements = { ipv4 . tcp . 8080 : jump c_a,\n ... }`.
fn elements_of(text: &str, chain: &str) -> Vec<String> {
    let Some(start) = text.find("elements = {") else {
        return Vec::new();
    };
    let body = &text[start + "elements = {".len()..];
    let body = body.split('}').next().unwrap_or("");
    let want = format!("jump {chain}");
    body.split(',')
        .filter_map(|e| e.split_once(" : "))
        .filter(|(_, v)| v.trim() == want)
        .map(|(k, _)| k.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests;
