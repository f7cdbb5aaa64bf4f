//! The container's /etc/hosts, /etc/hostname and /etc/resolv.conf: written
//! in the state directory and bind-mounted over the rootfs's when the rootfs
//! has /etc and the config mounts nothing there itself (a client's own
//! mount wins, as Docker's and podman's do).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};

use super::{Result, io_err};

/// The files, by their path in the container.
pub const FILES: [(&str, &str); 3] = [
    ("hosts", "/etc/hosts"),
    ("hostname", "/etc/hostname"),
    ("resolv.conf", "/etc/resolv.conf"),
];

/// The host's resolver config.
const HOST_RESOLV: &str = "/etc/resolv.conf";

/// Writes the three files in `dir` and adds their bind mounts to `spec`.
/// The hostname is the config's `hostname`, else the container id.
pub fn prepare(
    dir: &Path,
    spec: &mut Spec,
    rootfs: &Path,
    id: &str,
    addrs: &[IpAddr],
    dns: &[IpAddr],
) -> Result<()> {
    let hostname = spec
        .hostname()
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| id.to_string());
    let host_resolv = fs::read_to_string(HOST_RESOLV).unwrap_or_default();
    write(dir, "hosts", &hosts(&hostname, addrs))?;
    write(dir, "hostname", &format!("{hostname}\n"))?;
    write(dir, "resolv.conf", &resolv_conf(&host_resolv, dns))?;
    if has_etc(rootfs) {
        add_mounts(dir, spec);
    }
    Ok(())
}

/// Writes `name` in `dir` in place (O_TRUNC, not rename: a bind mount whose
/// source is already open keeps the same inode, so an extension may
/// rewrite a file after [`prepare`]).
pub fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io_err("write", &path))?;
    f.write_all(text.as_bytes()).map_err(io_err("write", &path))
}

/// /etc/hosts: the localhost lines, then the container's addresses.
pub fn hosts(hostname: &str, addrs: &[IpAddr]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for a in addrs {
        s.push_str(&format!("{a}\t{hostname}\n"));
    }
    s
}

/// /etc/resolv.conf: the host's, without loopback nameservers (they mean
/// the host's own resolver, unreachable from the container's namespace);
/// `dns`, when given, replaces the nameservers. Other lines (search,
/// options) are kept.
pub fn resolv_conf(host: &str, dns: &[IpAddr]) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let mut w = line.split_whitespace();
        if w.next() == Some("nameserver") {
            let keep = dns.is_empty()
                && w.next()
                    .and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())
                    .is_some_and(|a| !a.is_loopback());
            if !keep {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    out
}

/// Does the rootfs have an /etc directory (resolved inside the rootfs)?
fn has_etc(rootfs: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(root) = fs::File::open(rootfs) else {
        return false;
    };
    crate::mounts::open_in_root(
        root.as_raw_fd(),
        Path::new("etc"),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )
    .is_ok()
}

fn add_mounts(dir: &Path, spec: &mut Spec) {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (name, dest) in FILES {
        if mounts.iter().any(|m| m.destination() == Path::new(dest)) {
            tracing::debug!("network: config.json mounts {dest}: left as it is");
            continue;
        }
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(dest));
        m.set_typ(Some("bind".into()));
        m.set_source(Some(dir.join(name)));
        m.set_options(Some(vec!["rbind".into(), "rprivate".into()]));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_and_dns_replaces() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, &[]),
            "search example.org\nnameserver 192.0.2.1\noptions edns0\n"
        );
        let d: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            resolv_conf(host, &[d]),
            "search example.org\noptions edns0\nnameserver 198.51.100.7\n"
        );
        assert_eq!(resolv_conf("nameserver 127.0.0.1\n", &[]), "");
    }

    #[test]
    fn hosts_names_the_container() {
        let h = hosts("web", &["10.77.0.2".parse().unwrap()]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.77.0.2\tweb\n"));
    }
}
