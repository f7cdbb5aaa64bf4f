//! One CNI plugin invocation (containernetworking/cni SPEC.md "Section 3:
//! Execution Protocol"): the plugin is executed with `CNI_COMMAND`,
//! `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` in its
//! environment and its network configuration on stdin; it prints a result
//! (ADD), nothing (DEL, CHECK) or, exiting non-zero, an error object
//! (`{"code": N, "msg": "...", "details": "..."}`) on stdout.
//!
//! The plugin is spawned with `std::process::Command` (fork + exec from the
//! single-threaded parent: no thread is started; every fd of cuddy's is
//! O_CLOEXEC, so the plugin inherits only its three pipes), and its run time
//! is bounded ([`TIMEOUT`]): a hung plugin is killed by its pid and named.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::CniError;

/// How long one plugin may run (the bridge plugin with iptables takes tens
/// of milliseconds; dhcp-style plugins may take seconds).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a plugin is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Del,
    Check,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
        }
    }
}

/// The environment of one invocation.
pub struct Invocation<'a> {
    pub command: Verb,
    /// The plugin's `type` (its executable's name in the plugin dir).
    pub plugin: &'a str,
    pub plugin_dir: &'a Path,
    pub container_id: &'a str,
    /// A path to the container's network namespace; empty for a DEL of a
    /// container whose namespace is gone (SPEC.md: plugins then release
    /// what they can, e.g. the IPAM lease).
    pub netns: &'a str,
    pub ifname: &'a str,
    /// The plugin's configuration (with name, cniVersion and prevResult).
    pub config: &'a [u8],
    pub network: &'a str,
}

/// Runs the plugin; its stdout when it succeeded.
pub fn invoke(inv: &Invocation, timeout: Duration) -> Result<Vec<u8>, CniError> {
    let path = inv.plugin_dir.join(inv.plugin);
    let fail = |why: String| CniError::Plugin {
        network: inv.network.into(),
        plugin: inv.plugin.into(),
        command: inv.command.as_str(),
        why,
    };
    let mut cmd = Command::new(&path);
    cmd.env("CNI_COMMAND", inv.command.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", inv.plugin_dir)
        .env_remove("CNI_ARGS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The bridge and portmap plugins run iptables found through PATH.
    if std::env::var_os("PATH").is_none() {
        cmd.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    let started = Instant::now();
    let mut child =
        spawn(&mut cmd).map_err(|e| fail(format!("execute {}: {e}", path.display())))?;
    // Plugins read all of stdin before they act; a config is a few KiB.
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(inv.config) {
            // EPIPE: the plugin exited without reading; its status says why.
            tracing::debug!("write config to {}: {e}", path.display());
        }
    }
    let (out, err) = match read_both(&mut child, timeout) {
        Ok(o) => o,
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(why));
        }
    };
    let status = wait_until(&mut child, Instant::now() + Duration::from_secs(5)).map_err(&fail)?;
    if !err.is_empty() {
        tracing::debug!(
            "CNI plugin {} {} stderr: {}",
            inv.plugin,
            inv.command.as_str(),
            String::from_utf8_lossy(&err).trim()
        );
    }
    tracing::debug!(
        "CNI plugin {} {}: {:?} in {:.1} ms",
        inv.plugin,
        inv.command.as_str(),
        status,
        started.elapsed().as_secs_f64() * 1000.0
    );
    if status.success() {
        return Ok(out);
    }
    Err(fail(describe_error(&out, &err, status)))
}

/// Spawns, retrying a few times on ETXTBSY: a plugin file that was just
/// written may still be open for writing in a process forked meanwhile
/// (until that one's exec closes its O_CLOEXEC copy).
fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// The plugin's error object (SPEC.md "Error"), or its stderr and status.
fn describe_error(out: &[u8], err: &[u8], status: std::process::ExitStatus) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(out) {
        let code = v.get("code").and_then(|c| c.as_u64());
        let msg = v.get("msg").and_then(|m| m.as_str()).unwrap_or("");
        let details = v.get("details").and_then(|d| d.as_str()).unwrap_or("");
        if code.is_some() || !msg.is_empty() {
            let mut s = format!("error code {}: {msg}", code.unwrap_or(0));
            if !details.is_empty() {
                s.push_str(&format!(" ({details})"));
            }
            return s;
        }
    }
    let text = String::from_utf8_lossy(if err.is_empty() { out } else { err });
    format!("{status}: {}", text.trim())
}

/// Reads the child's stdout and stderr to EOF with poll(2), within the
/// deadline.
fn read_both(child: &mut Child, timeout: Duration) -> Result<(Vec<u8>, Vec<u8>), String> {
    let deadline = Instant::now() + timeout;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let (mut obuf, mut ebuf) = (Vec::new(), Vec::new());
    while out.is_some() || err.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "did not finish within {} s (killed)",
                timeout.as_secs()
            ));
        }
        let mut fds: Vec<libc::pollfd> = [
            out.as_ref().map(|o| o.as_raw_fd()),
            err.as_ref().map(|e| e.as_raw_fd()),
        ]
        .into_iter()
        .map(|fd| libc::pollfd {
            fd: fd.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: two pollfds (fd -1 is ignored by poll), their length passed.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll the plugin's output: {e}"));
        }
        if fds[0].revents != 0 {
            drain(&mut out, &mut obuf)?;
        }
        if fds[1].revents != 0 {
            drain(&mut err, &mut ebuf)?;
        }
    }
    Ok((obuf, ebuf))
}

/// One read from a readable pipe; the pipe is dropped at EOF.
fn drain<R: Read>(pipe: &mut Option<R>, buf: &mut Vec<u8>) -> Result<(), String> {
    let Some(p) = pipe.as_mut() else {
        return Ok(());
    };
    let mut chunk = [0u8; 16384];
    match p.read(&mut chunk) {
        Ok(0) => *pipe = None,
        Ok(n) => buf.extend_from_slice(&chunk[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(e) => return Err(format!("read the plugin's output: {e}")),
    }
    Ok(())
}

/// Waits for the child (which closed its output) until the deadline.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<std::process::ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("closed its output but did not exit (killed)".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn plugin(dir: &Path, name: &str, script: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn inv<'a>(dir: &'a Path, name: &'a str) -> Invocation<'a> {
        Invocation {
            command: Verb::Add,
            plugin: name,
            plugin_dir: dir,
            container_id: "c1",
            netns: "/proc/self/ns/net",
            ifname: "eth0",
            config: b"{\"cniVersion\":\"1.0.0\"}",
            network: "n1",
        }
    }

    #[test]
    fn the_protocol_environment_and_stdin_reach_the_plugin() {
        let d = tempfile::tempdir().unwrap();
        plugin(
            d.path(),
            "echo",
            "cat >/dev/null; echo \"{\\\"cmd\\\":\\\"$CNI_COMMAND\\\",\\\"id\\\":\\\"$CNI_CONTAINERID\\\",\\\"if\\\":\\\"$CNI_IFNAME\\\"}\"",
        );
        let out = invoke(&inv(d.path(), "echo"), TIMEOUT).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cmd"], "ADD");
        assert_eq!(v["id"], "c1");
        assert_eq!(v["if"], "eth0");
    }

    #[test]
    fn a_plugin_error_object_is_reported_with_its_code() {
        let d = tempfile::tempdir().unwrap();
        plugin(
            d.path(),
            "bad",
            "echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no luck\",\"details\":\"x\"}'; exit 1",
        );
        let e = invoke(&inv(d.path(), "bad"), TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad") && e.contains("ADD") && e.contains("code 11: no luck"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_hung_plugin_is_named() {
        let d = tempfile::tempdir().unwrap();
        let e = invoke(&inv(d.path(), "nope"), TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        plugin(d.path(), "hang", "exec sleep 30");
        let e = invoke(&inv(d.path(), "hang"), Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(e.contains("hang") && e.contains("did not finish"), "{e}");
    }
}
