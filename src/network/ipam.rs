//! cuddy's own address management. One file per address under
//! `<root>/@networks/NAME.leases/ADDR`, holding the lease's owner: the
//! container id and its init's start time (0 while it is being created).
//! Allocation and release hold an exclusive flock on the leases directory,
//! and a lease file is created with O_EXCL: two containers never get one
//! address, also under many concurrent creates.
//!
//! A lease is live while `<root>/ID/` exists and, once the init's start time
//! is stamped, while the state's start time is the same; anything else is
//! stale (a container deleted without cuddy, or an id reused) and is taken
//! over when needed, or removed by `cuddy network prune`. (podman's IPAM
//! reports addresses of deleted containers as taken: anchors.md.)

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::config::{self, Network, Subnet};
use super::record::{Effect, Record};
use super::{NetworkError, Result, io_err};
use crate::utils::write_atomic;

/// What a lease file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    /// The init's start time (/proc/PID/stat field 22); 0 while creating.
    #[serde(default)]
    pub pid_start: u64,
}

pub fn leases_dir(root: &Path, network: &str) -> PathBuf {
    config::dir(root).join(format!("{network}.leases"))
}

/// The leases directory, created, and locked exclusively.
fn lock(root: &Path, network: &str) -> Result<(PathBuf, Flock<OwnedFd>)> {
    let d = leases_dir(root, network);
    config::ensure_dir(root)?;
    match fs::DirBuilder::new().mode(0o700).create(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(io_err("create", &d)(e));
        }
        _ => {}
    }
    let f = fs::File::open(&d).map_err(io_err("open", &d))?;
    let l = Flock::lock(OwnedFd::from(f), FlockArg::LockExclusive).map_err(|(_, e)| {
        NetworkError::Io {
            op: "flock",
            path: d.clone(),
            source: e.into(),
        }
    })?;
    Ok((d, l))
}

/// Every lease of the network (address → owner); unreadable files are
/// skipped.
pub fn leases(root: &Path, network: &str) -> Result<HashMap<IpAddr, Lease>> {
    let d = leases_dir(root, network);
    let rd = match fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io_err("read", &d)(e)),
    };
    Ok(rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let ip: IpAddr = e.file_name().to_str()?.parse().ok()?;
            let l: Lease = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            Some((ip, l))
        })
        .collect())
}

/// Is the lease's container still there (same init)?
pub fn is_live(root: &Path, l: &Lease) -> bool {
    let dir = root.join(&l.id);
    if !dir.is_dir() {
        return false;
    }
    if l.pid_start == 0 {
        return true;
    }
    #[derive(Deserialize)]
    struct St {
        pid_start: u64,
    }
    match fs::read(dir.join(crate::container::STATE_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice::<St>(&d).ok())
    {
        Some(st) => st.pid_start == l.pid_start || st.pid_start == 0,
        None => true,
    }
}

/// Takes one address per subnet of `net` for container `id`: the one asked
/// for with `--ip` in that family, else the lowest free one. The leases and
/// the addresses are recorded in `rec` (one write, which also creates the
/// record file) before any lease file is made. Returns (address, prefix).
pub fn allocate(
    root: &Path,
    net: &Network,
    id: &str,
    wanted: &[IpAddr],
    rec: &mut Record,
) -> Result<Vec<(IpAddr, u8)>> {
    let bad = |why: String| NetworkError::Ipam {
        network: net.name.clone(),
        why,
    };
    let v4 = wanted.iter().filter(|w| w.is_ipv4()).count();
    if v4 > 1 || wanted.len() - v4 > 1 {
        return Err(bad(
            "--ip: at most one address per family (IPv4, IPv6)".into()
        ));
    }
    for ip in wanted {
        let sn = net.subnet_for(*ip).ok_or_else(|| {
            bad(format!(
                "--ip {ip}: the network has no subnet of that address family"
            ))
        })?;
        check_wanted(sn, *ip).map_err(|w| bad(format!("--ip {ip}: {w}")))?;
    }
    let (dir, _lock) = lock(root, &net.name)?;
    let taken = leases(root, &net.name)?;
    let mut out = Vec::new();
    let mut effects = Vec::new();
    for sn in &net.subnets {
        let want = wanted.iter().find(|w| sn.contains(**w)).copied();
        let ip = match want {
            Some(ip) => match taken.get(&ip) {
                Some(l) if is_live(root, l) => {
                    return Err(bad(format!(
                        "--ip {ip}: the address is taken by container {:?}",
                        l.id
                    )));
                }
                _ => ip,
            },
            None => free(root, sn, &taken)
                .ok_or_else(|| bad(format!("no free address left in {sn}")))?,
        };
        effects.push(Effect::Lease {
            network: net.name.clone(),
            address: ip,
        });
        out.push((ip, sn.prefix));
    }
    // Every lease and the addresses recorded in one write before any lease
    // file is made (a lease recorded but never made undoes to nothing).
    rec.add_leases(effects, out.clone())?;
    for (ip, _) in &out {
        write_lease(
            &dir,
            *ip,
            &Lease {
                id: id.into(),
                pid_start: 0,
            },
            taken.contains_key(ip),
        )?;
    }
    Ok(out)
}

fn check_wanted(sn: &Subnet, ip: IpAddr) -> std::result::Result<(), String> {
    if !sn.contains(ip) {
        return Err(format!("outside the network's subnet {sn}"));
    }
    let off = sn.offset(ip);
    if off == 0 {
        return Err(format!("the network address of {sn}"));
    }
    if off == 1 {
        return Err(format!("the gateway of {sn} (on the bridge)"));
    }
    if sn.addr.is_ipv4() && sn.nth(off + 1).is_none() {
        return Err(format!("the broadcast address of {sn}"));
    }
    Ok(())
}

/// The lowest address neither leased live nor reserved.
fn free(root: &Path, sn: &Subnet, taken: &HashMap<IpAddr, Lease>) -> Option<IpAddr> {
    (2..=sn.last_host())
        .filter_map(|n| sn.nth(n))
        .find(|ip| taken.get(ip).is_none_or(|l| !is_live(root, l)))
}

/// Creates the lease file with O_EXCL (over a stale one: replaced).
fn write_lease(dir: &Path, ip: IpAddr, l: &Lease, replace: bool) -> Result<()> {
    let path = dir.join(ip.to_string());
    let data = serde_json::to_vec(l).map_err(|e| NetworkError::Record {
        path: path.clone(),
        why: e.to_string(),
    })?;
    if replace {
        return write_atomic(&path, &data, 0o600).map_err(io_err("write lease", &path));
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(io_err("create lease", &path))?;
    f.write_all(&data).map_err(io_err("write lease", &path))
}

/// Stamps the container's leases with its init's start time (after clone).
pub fn stamp(root: &Path, rec: &Record, id: &str, pid_start: u64) -> Result<()> {
    for e in &rec.effects {
        if let Effect::Lease { network, address } = e {
            let dir = leases_dir(root, network);
            write_lease(
                &dir,
                *address,
                &Lease {
                    id: id.into(),
                    pid_start,
                },
                true,
            )?;
        }
    }
    Ok(())
}

/// Releases `ip` if container `id` holds it (a lease recorded but never
/// made, or taken over since, is left alone). Idempotent.
pub fn release(root: &Path, network: &str, ip: IpAddr, id: &str) -> Result<()> {
    let d = leases_dir(root, network);
    if !d.exists() {
        return Ok(());
    }
    let (d, _lock) = lock(root, network)?;
    let path = d.join(ip.to_string());
    let owner: Option<Lease> = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match owner {
        Some(l) if l.id == id => match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("remove lease", &path)(e))
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Removes the stale leases of `network`; returns them.
pub fn prune(root: &Path, network: &str) -> Result<Vec<(IpAddr, Lease)>> {
    let (d, _lock) = lock(root, network)?;
    let mut gone = Vec::new();
    for (ip, l) in leases(root, network)? {
        if !is_live(root, &l) {
            let p = d.join(ip.to_string());
            fs::remove_file(&p).map_err(io_err("remove lease", &p))?;
            gone.push((ip, l));
        }
    }
    gone.sort_by_key(|(ip, _)| *ip);
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Mode, Options, Request};

    fn record(dir: &Path) -> Record {
        let req = Request::resolve(
            Options {
                mode: Some(Mode::Bridge("cuddy0".into())),
                ..Default::default()
            },
            &Default::default(),
        )
        .unwrap()
        .unwrap();
        Record::create(dir, req).unwrap()
    }

    #[test]
    fn lowest_free_address_stale_leases_reclaimed_and_wanted_checked() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let net = Network::default_bridge();
        for id in ["a", "b"] {
            fs::create_dir(r.join(id)).unwrap();
        }
        let ga = allocate(r, &net, "a", &[], &mut record(&r.join("a"))).unwrap();
        let gb = allocate(r, &net, "b", &[], &mut record(&r.join("b"))).unwrap();
        assert_eq!(ga[0].0.to_string(), "10.77.0.2");
        assert_eq!(gb[0].0.to_string(), "10.77.0.3");
        assert_eq!(gb[1].0.to_string(), "fd77:c0dd:7::3");
        // b's address is taken while b exists.
        fs::create_dir(r.join("c")).unwrap();
        let e = allocate(
            r,
            &net,
            "c",
            &["10.77.0.3".parse().unwrap()],
            &mut record(&r.join("c")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("taken by container \"b\""), "{e}");
        for (ip, why) in [
            ("10.77.0.0", "network address"),
            ("10.77.0.1", "gateway"),
            ("10.77.255.255", "broadcast"),
            ("10.1.0.5", "outside"),
        ] {
            let e = allocate(
                r,
                &net,
                "c",
                &[ip.parse().unwrap()],
                &mut record(&r.join("c")),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(why), "{ip}: {e}");
        }
        // a vanished without cuddy: its lease is stale and is taken over.
        fs::remove_dir_all(r.join("a")).unwrap();
        let gc = allocate(r, &net, "c", &[], &mut record(&r.join("c"))).unwrap();
        assert_eq!(gc[0].0.to_string(), "10.77.0.2");
        // Release only removes the owner's lease.
        release(r, "cuddy0", gc[0].0, "b").unwrap();
        assert!(leases_dir(r, "cuddy0").join("10.77.0.2").exists());
        release(r, "cuddy0", gc[0].0, "c").unwrap();
        assert!(!leases_dir(r, "cuddy0").join("10.77.0.2").exists());
    }
}
