//! Network namespaces made by a test, so that nothing a networking test
//! does (bridges, veths, nftables, sysctls) touches the host's own: cuddy
//! itself runs inside the test's namespace (`nsenter --net`), as a host
//! would run it in its root network namespace.

#![allow(dead_code)] // used by the networking tests as they land

use std::process::{Command, Output};

use crate::common::*;

/// A named network namespace (`ip netns add cuddy-t-…`), deleted on drop
/// with every process still in it (killed by PID).
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    /// A fresh namespace with `lo` up.
    pub fn new(tag: &str) -> TestNetns {
        let name = format!("cuddy-t-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip netns add");
        assert_ok(&out, "ip netns add");
        let ns = TestNetns { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// A command run inside the namespace: `nsenter --net`, not `ip netns
    /// exec`, which also makes a mount namespace with a fresh /sys (hiding
    /// /sys/fs/cgroup, which cuddy needs).
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name)).arg(prog);
        c
    }

    /// `sh -c script` inside the namespace; panics unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        let out = self.try_sh(script);
        assert_ok(&out, script);
        stdout(&out)
    }

    /// `sh -c script` inside the namespace (bounded: 60 s).
    pub fn try_sh(&self, script: &str) -> Output {
        let mut c = self.cmd("sh");
        c.args(["-c", script]);
        output_with_timeout(c, 60)
    }

    /// cuddy with `ctx`'s state root, run inside the namespace (bounded).
    pub fn cuddy(&self, ctx: &Ctx, args: &[&str]) -> Output {
        let mut c = self.cmd(CUDDY);
        c.arg("--root").arg(&ctx.root).args(args);
        output_with_timeout(c, 60)
    }

    /// The interface names in the namespace (`ip -o link`), without `lo`.
    pub fn links(&self) -> Vec<String> {
        self.sh("ip -o link show")
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n != "lo")
            .collect()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                if let Ok(p) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
