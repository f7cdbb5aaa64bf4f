//! The host side of ports and egress, shared by the containers of a
//! bridge: IPv4/IPv6 forwarding, `route_localnet` on the bridge, the base
//! ruleset of [`super::nft`] and the bridge's subnets in it. Made once per
//! bridge (per network namespace and bridge ifindex), and recorded in
//! `<networks dir>/@nat.record` (JSON; the '@' keeps it apart from the
//! networks' own files, whose names never hold one) *before* it is made.
//! These stay when the last container goes, as the bridge does (Docker and
//! podman leave forwarding on too); the record says what cuddy changed
//! (`was`: the value before). `network prune` takes a removed bridge's
//! subnets out of the sets and the chains of vanished containers away.
//!
//! Kernel facts: `/proc/sys/net` is the network namespace of the process
//! that reads it, so the writes land in the namespace cuddy runs in (the
//! one that holds the bridge); `net.ipv6.conf.all.forwarding=1` also makes
//! every interface of that namespace ignore router advertisements unless
//! its `accept_ra` is 2, as with Docker and podman.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::nft::{self, Batch, BridgeNat, NftError, Published, Result};
use crate::utils::write_atomic;

/// The record's file name in the networks directory.
pub const NAT_FILE: &str = "@nat.record";
const LOCK_FILE: &str = "@nat.lock";

/// A sysctl cuddy set, with its value before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlChange {
    pub key: String,
    pub was: String,
    pub now: String,
}

/// A bridge whose NAT is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeDone {
    pub bridge: String,
    pub ifindex: u32,
    /// The network namespace (device, inode of `/proc/self/ns/net`).
    pub netns: (u64, u64),
    pub subnets: Vec<String>,
}

/// `@nat.record`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The network namespaces where the table `inet cuddy` was written.
    #[serde(default)]
    pub tables: Vec<(u64, u64)>,
    #[serde(default)]
    pub sysctls: Vec<SysctlChange>,
    #[serde(default)]
    pub bridges: Vec<BridgeDone>,
}

/// `@nat.record` under its lock.
struct Locked {
    path: PathBuf,
    rec: HostRecord,
    _lock: Flock<OwnedFd>,
}

impl Locked {
    fn open(dir: &Path) -> Result<Locked> {
        let state = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| NftError::State { op, path, source }
        };
        fs::create_dir_all(dir).map_err(state("create", dir))?;
        let lp = dir.join(LOCK_FILE);
        let fd = nix::fcntl::open(
            &lp,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| state("open", &lp)(e.into()))?;
        let lock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| state("flock", &lp)(e.into()))?;
        let path = dir.join(NAT_FILE);
        let rec = match fs::read(&path) {
            Ok(d) => serde_json::from_slice(&d)
                .map_err(|e| state("parse", &path)(std::io::Error::other(e)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HostRecord::default(),
            Err(e) => return Err(state("read", &path)(e)),
        };
        Ok(Locked {
            path,
            rec,
            _lock: lock,
        })
    }

    fn save(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(&self.rec).map_err(|e| NftError::State {
            op: "serialize",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.path, &data, 0o600).map_err(|source| NftError::State {
            op: "write",
            path: self.path.clone(),
            source,
        })
    }
}

/// The record of `dir`, for `network inspect` (None: nothing made).
pub fn load(dir: &Path) -> Result<Option<HostRecord>> {
    let path = dir.join(NAT_FILE);
    match fs::read(&path) {
        Ok(d) => serde_json::from_slice(&d)
            .map(Some)
            .map_err(|e| NftError::State {
                op: "parse",
                path,
                source: std::io::Error::other(e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NftError::State {
            op: "read",
            path,
            source,
        }),
    }
}

fn netns_id() -> Result<(u64, u64)> {
    let p = Path::new("/proc/self/ns/net");
    let m = fs::metadata(p).map_err(|source| NftError::State {
        op: "stat",
        path: p.into(),
        source,
    })?;
    Ok((m.dev(), m.ino()))
}

fn done_entry(b: &BridgeNat) -> Result<BridgeDone> {
    let ifindex = ifindex(b.bridge)?;
    Ok(BridgeDone {
        bridge: b.bridge.to_string(),
        ifindex,
        netns: netns_id()?,
        subnets: b.subnets.iter().map(|(a, p)| format!("{a}/{p}")).collect(),
    })
}

/// The interface index of `name` in this network namespace.
fn ifindex(name: &str) -> Result<u32> {
    let err = |source| NftError::State {
        op: "if_nametoindex",
        path: PathBuf::from(name),
        source,
    };
    let c = std::ffi::CString::new(name)
        .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // if_nametoindex only reads it (an ioctl on a socket it closes).
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(i)
}

/// Egress for a container of bridge `b` without published ports: made once
/// per bridge (a second container finds it in the record and runs no
/// `nft` at all).
pub fn ensure_bridge(dir: &Path, b: &BridgeNat) -> Result<()> {
    let mut l = Locked::open(dir)?;
    let done = done_entry(b)?;
    if l.rec.bridges.contains(&done) {
        return Ok(());
    }
    make_bridge(&mut l, b, &done, None)
}

/// A container's published ports, with the bridge's NAT made again in the
/// same batch (idempotent: this also repairs a ruleset flushed by hand).
/// The caller records the chain before (see [`super::ports`]).
pub fn publish(dir: &Path, b: &BridgeNat, p: &Published) -> Result<()> {
    let els = nft::elements(p)?;
    let mut l = Locked::open(dir)?;
    let done = done_entry(b)?;
    make_bridge(&mut l, b, &done, Some((p, &els)))
}

fn make_bridge(
    l: &mut Locked,
    b: &BridgeNat,
    done: &BridgeDone,
    ports: Option<(&Published, &[nft::Element])>,
) -> Result<()> {
    let v4 = b.subnets.iter().any(|(a, _)| a.is_ipv4());
    let v6 = b.subnets.iter().any(|(a, _)| a.is_ipv6());
    if v4 {
        sysctl(l, &["net", "ipv4", "ip_forward"], "IPv4 forwarding")?;
        let localnet = ["net", "ipv4", "conf", b.bridge, "route_localnet"];
        sysctl(l, &localnet, "127.0.0.1 reaching published ports")?;
    }
    if v6 {
        let fwd = ["net", "ipv6", "conf", "all", "forwarding"];
        sysctl(l, &fwd, "IPv6 forwarding")?;
    }
    if !l.rec.tables.contains(&done.netns) {
        l.rec.tables.push(done.netns);
        l.save()?;
    }
    let mut batch = Batch::default();
    batch.base();
    batch.bridge(b);
    let mut mappings: &[super::PortMapping] = &[];
    if let Some((p, els)) = ports {
        batch.container(p.chain, els);
        mappings = p.ports;
    }
    nft::apply("publish ports and masquerade", &batch, mappings)?;
    if !l.rec.bridges.contains(done) {
        l.rec
            .bridges
            .retain(|d| d.bridge != done.bridge || d.netns != done.netns);
        l.rec.bridges.push(done.clone());
        l.save()?;
    }
    Ok(())
}

/// Sets the sysctl of the path components `parts` to 1 when it is not,
/// recording the change first and saying it in the debug log (Docker and
/// podman do the same, silently). An interface name may hold a dot, so the
/// parts are joined as a path, not split from a dotted key.
fn sysctl(l: &mut Locked, parts: &[&str], what: &str) -> Result<()> {
    let path: PathBuf = std::iter::once("/proc/sys")
        .chain(parts.iter().copied())
        .collect();
    let key = parts.join(".");
    let err = |op: &'static str| {
        let path = path.clone();
        move |source| NftError::Sysctl { op, path, source }
    };
    let was = fs::read_to_string(&path).map_err(err("read"))?;
    let was = was.trim();
    if was == "1" {
        return Ok(());
    }
    l.rec.sysctls.push(SysctlChange {
        key: key.clone(),
        was: was.to_string(),
        now: "1".into(),
    });
    l.save()?;
    fs::write(&path, "1").map_err(err("write"))?;
    tracing::debug!(
        "network: {what}: set {key} = 1 (was {was}) in this network namespace, as Docker and podman do"
    );
    Ok(())
}

/// `network prune`, for a bridge it removed: its name and subnets leave
/// the sets (so nothing is masqueraded for a subnet cuddy no longer has),
/// and its record entry goes. Each element is deleted on its own: one that
/// is gone already is no error.
pub fn forget_bridge(dir: &Path, b: &BridgeNat) -> Result<()> {
    let mut l = Locked::open(dir)?;
    let mut lines = vec![format!(
        "delete element {} bridges {{ \"{}\" }}",
        nft::TABLE,
        b.bridge
    )];
    for (addr, prefix) in b.subnets {
        let set = if addr.is_ipv4() { "nets_v4" } else { "nets_v6" };
        lines.push(format!(
            "delete element {} {set} {{ {addr}/{prefix} }}",
            nft::TABLE
        ));
    }
    for line in lines {
        let _ = nft::run_text("forget a bridge", &line)?;
    }
    let ns = netns_id()?;
    l.rec
        .bridges
        .retain(|d| d.bridge != b.bridge || d.netns != ns);
    l.save()
}

/// `network prune`: the chains of the state root `root` (by their prefix)
/// whose container no longer exists (a teardown that never ran) are removed
/// with their map elements; returns their names. `live`: the chain names of
/// the containers in `root`.
pub fn prune_chains(root: &Path, live: &[String]) -> Result<Vec<String>> {
    let Ok(text) = nft::run_text("list cuddy's table", &format!("list table {}", nft::TABLE))?
    else {
        return Ok(Vec::new()); // no table
    };
    let mut gone = Vec::new();
    for chain in nft::container_chains(&text, &nft::root_prefix(root)) {
        if !live.contains(&chain) {
            nft::remove(&chain, &[])?;
            gone.push(chain);
        }
    }
    Ok(gone)
}
