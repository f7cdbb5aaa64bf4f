//! CNI mode (`--network cni[=NAME]`) with Debian's containernetworking
//! plugins, and `linux.netDevices` (config-linux.md#network-devices). Every
//! test runs cuddy inside a network namespace it made (TestNetns): the
//! bridge, veths and iptables rules the plugins make never reach the host's.
//! host-local keeps its allocations in the test's temp dir (`dataDir`),
//! never /var/lib/cni.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;
use crate::netns::TestNetns;
use crate::require_root;

const PLUGINS: &str = "/usr/lib/cni";

fn have_plugins() -> bool {
    [
        "bridge",
        "host-local",
        "portmap",
        "firewall",
        "tuning",
        "loopback",
    ]
    .iter()
    .all(|p| Path::new(PLUGINS).join(p).exists())
        && Command::new("iptables-save")
            .arg("--version")
            .output()
            .is_ok()
}

macro_rules! require_cni {
    () => {
        require_root!();
        if !have_plugins() {
            eprintln!("skipped: needs containernetworking-plugins and iptables");
            return;
        }
    };
}

/// podman 3's default CNI network (`87-podman-bridge.conflist`, as podman
/// writes it to /etc/cni/net.d with the CNI backend), verbatim but for
/// host-local's `dataDir` (kept in the test's temp dir).
fn podman_conflist(data_dir: &Path) -> Value {
    let mut v: Value = serde_json::from_str(
        r#"{
  "cniVersion": "0.4.0",
  "name": "podman",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni-podman0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [
          [
            {
              "subnet": "10.88.0.0/16",
              "gateway": "10.88.0.1"
            }
          ]
        ]
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    },
    {
      "type": "firewall"
    },
    {
      "type": "tuning"
    }
  ]
}"#,
    )
    .unwrap();
    v["plugins"][0]["ipam"]["dataDir"] = json!(data_dir);
    v
}

/// A test's world: its state root, its network namespace and CNI config
/// dir. Dropped first (before the namespace): every container it made is
/// deleted from *inside* the namespace, so that no DEL ever runs in the
/// host's.
struct World {
    ctx: Ctx,
    ns: TestNetns,
    conf: PathBuf,
    data: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl World {
    fn new(tag: &str) -> World {
        let ctx = Ctx::new(tag);
        let ns = TestNetns::new(tag);
        let conf = ctx.dir.path().join("net.d");
        let data = ctx.dir.path().join("cni-data");
        std::fs::create_dir_all(&conf).unwrap();
        World {
            ctx,
            ns,
            conf,
            data,
            ids: Default::default(),
        }
    }

    /// cuddy inside the namespace, in the test's own mount namespace
    /// (`nsenter --net`, not `ip netns exec`, whose private mount namespace
    /// would take cuddy's namespace pin with it when cuddy exits).
    fn cuddy_cmd(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns.name))
            .arg(CUDDY)
            .arg("--root")
            .arg(&self.ctx.root);
        c
    }

    fn cuddy(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.cuddy_cmd();
        c.args(args);
        output_with_timeout(c, 60)
    }

    fn write_conf(&self, file: &str, v: &Value) {
        std::fs::write(self.conf.join(file), serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    fn id(&self, s: &str) -> String {
        let id = self.ctx.id(s);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `cuddy run` (extra args before --bundle) inside the namespace.
    fn run(&self, id: &str, extra: &[&str], config: &Value) -> std::process::Output {
        let b = self.ctx.bundle(id, config);
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend(["--bundle", b.to_str().unwrap(), id]);
        self.cuddy(&args)
    }

    fn cni_args(&self, net: &str) -> Vec<String> {
        vec![
            "--network".into(),
            net.into(),
            "--cni-config-dir".into(),
            self.conf.to_string_lossy().into(),
        ]
    }

    /// The addresses host-local gave `id` (one file per address, holding
    /// the container id).
    fn allocations(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(nets) = std::fs::read_dir(&self.data) else {
            return out;
        };
        for net in nets.flatten() {
            for f in std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                if text.lines().next() == Some(id) {
                    out.push(f.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out
    }

    fn iptables(&self) -> String {
        self.ns
            .sh("iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; true")
    }

    fn assert_clean(&self, id: &str) {
        self.assert_clean_among(id, 0)
    }

    /// Nothing of `id`: state, cgroup, veth (only the bridge may stay),
    /// address, iptables rule.
    fn veths(&self) -> usize {
        self.ns
            .links()
            .iter()
            .filter(|l| l.starts_with("veth"))
            .count()
    }

    /// Nothing of `id` (see [`World::assert_clean`]) while `others` veths
    /// of other containers stay.
    fn assert_clean_among(&self, id: &str, others: usize) {
        // The container's own state dir and mounts (the namespace pin):
        // other containers of the test may still run.
        let dir = self.ctx.root.join(id);
        assert!(!dir.exists(), "state dir of {id} left behind");
        assert_no_cgroup(id);
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let d = format!("{}/", dir.display());
        assert!(!mi.contains(&d), "mount under {d} left behind:\n{mi}");
        assert_eq!(
            self.veths(),
            others,
            "veth left behind: {:?}",
            self.ns.links()
        );
        assert_eq!(
            self.allocations(id),
            Vec::<String>::new(),
            "host-local allocation of {id} left"
        );
        let ipt = self.iptables();
        assert!(!ipt.contains(id), "iptables rules of {id} left:\n{ipt}");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            if self.ctx.root.join(id).exists() {
                let _ = self.cuddy(&["delete", "--force", id]);
            }
        }
    }
}

fn busybox(w: &World, args: &[&str]) -> Value {
    let mut c = w.ctx.config(args);
    // Docker's default set (ping needs CAP_NET_RAW).
    c["process"]["capabilities"] = json!({
        "bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS
    });
    c
}

/// The address of `id` (its host-local allocation).
fn address_of(w: &World, id: &str) -> String {
    let mut a = Vec::new();
    wait_until("a host-local allocation", || {
        a = w.allocations(id);
        !a.is_empty()
    });
    a.remove(0)
}

// The CNI protocol as a runtime drives it (containernetworking/cni SPEC.md
// "ADD", "DEL", "CHECK"), with podman's network: two containers reach each
// other (ICMP and TCP), the test namespace reaches a published port
// (portmap), CHECK passes, and delete leaves nothing.
#[test]
fn cni_containers_talk_and_leave_nothing() {
    require_cni!();
    let w = World::new("cni1");
    w.write_conf("87-podman-bridge.conflist", &podman_conflist(&w.data));
    let c1 = w.id("srv");
    let mut args: Vec<String> = vec!["-d".into()];
    args.extend(w.cni_args("cni=podman"));
    args.extend(["--publish".into(), "18080:8080".into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let srv = busybox(
        &w,
        &[
            "sh",
            "-c",
            "while true; do echo hello-from-srv | nc -l -p 8080; done",
        ],
    );
    assert_ok(&w.run(&c1, &a, &srv), "run -d --network cni=podman");
    let ip1 = address_of(&w, &c1);
    assert!(ip1.starts_with("10.88."), "{ip1}");
    // Container to container: ping, then TCP.
    let c2 = w.id("cli");
    let a2 = w.cni_args("cni");
    let a2: Vec<&str> = a2.iter().map(String::as_str).collect();
    let script = format!(
        "ping -c1 -W5 {ip1} >/dev/null && echo ping-ok && nc -w5 {ip1} 8080 && cat /etc/hosts"
    );
    let out = w.run(&c2, &a2, &busybox(&w, &["sh", "-c", &script]));
    assert_ok(&out, "client container");
    let o = stdout(&out);
    assert!(o.contains("ping-ok") && o.contains("hello-from-srv"), "{o}");
    // /etc/hosts names the container's own address (from the ADD result,
    // not the server's) with its hostname (the config's).
    let own = |l: &str| {
        l.starts_with("10.88.") && !l.starts_with(&format!("{ip1}\t")) && l.ends_with("\tcuddy")
    };
    assert!(o.lines().any(own), "{o}");
    // `run` deleted the client: its DEL ran (the server's veth stays).
    w.assert_clean_among(&c2, 1);

    // The test namespace (the "host") reaches the published port through
    // portmap's DNAT (to the bridge's address, a local one).
    // (the fixture's static busybox: the host may have no nc)
    let bb = fixture_rootfs().join("bin/busybox");
    let got = w.ns.sh(&format!(
        "{} nc -w5 10.88.0.1 18080 </dev/null",
        bb.display()
    ));
    assert!(got.contains("hello-from-srv"), "{got}");
    assert!(
        w.iptables().contains(&c1),
        "portmap/bridge rules of the container exist while it runs"
    );

    assert_ok(&w.cuddy(&["delete", "--force", &c1]), "delete --force");
    w.assert_clean(&c1);
}

// `cuddy network check ID` runs CHECK (SPEC.md "CHECK") with the recorded
// result: it passes on an intact attachment and names the plugin when the
// container's interface lost its address. (Without --publish: portmap
// 1.1.1's CHECK wrongly wants IPv6 chains for an IPv4-only container,
// containernetworking/plugins#819.)
#[test]
fn cni_check_passes_then_fails_when_broken() {
    require_cni!();
    let w = World::new("cni6");
    w.write_conf("87-podman-bridge.conflist", &podman_conflist(&w.data));
    let id = w.id("chk");
    let mut a = vec!["-d".to_string()];
    a.extend(w.cni_args("cni=podman"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut c = busybox(&w, &["sleep", "100"]);
    let mut caps: Vec<&str> = DOCKER_CAPS.to_vec();
    caps.push("CAP_NET_ADMIN");
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    assert_ok(&w.run(&id, &a, &c), "run -d");
    assert_ok(&w.cuddy(&["network", "check", &id]), "network check");
    // The default route the result lists goes (the address stays, so DEL
    // still finds what to tear down).
    assert_ok(
        &w.cuddy(&["exec", &id, "ip", "route", "del", "default"]),
        "ip route del default",
    );
    assert_fails_with(
        &w.cuddy(&["network", "check", &id]),
        "plugin \"bridge\" CHECK failed",
    );
    assert_ok(&w.cuddy(&["delete", "--force", &id]), "delete --force");
    w.assert_clean(&id);
}

// A container that exited before its delete (its namespace is gone): DEL
// still releases the address and the rules.
#[test]
fn cni_delete_after_exit_still_dels() {
    require_cni!();
    let w = World::new("cni2");
    w.write_conf("87-podman-bridge.conflist", &podman_conflist(&w.data));
    let id = w.id("x");
    let mut a = vec!["-d".to_string()];
    a.extend(w.cni_args("cni"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_ok(&w.run(&id, &a, &busybox(&w, &["true"])), "run -d");
    wait_until("the container to stop", || {
        w.cuddy(&["state", &id])
            .stdout
            .windows(9)
            .any(|x| x == b"\"stopped\"")
    });
    assert_ok(&w.cuddy(&["delete", &id]), "delete");
    w.assert_clean(&id);
}

// A create killed (SIGKILL) after ADD, while a createRuntime hook holds it:
// delete finds the recorded attachment and runs DEL.
#[test]
fn cni_crashed_create_is_undone_by_delete() {
    require_cni!();
    let w = World::new("cni3");
    w.write_conf("87-podman-bridge.conflist", &podman_conflist(&w.data));
    let id = w.id("crash");
    let mut c = busybox(&w, &["true"]);
    c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "50"]}]});
    let b = w.ctx.bundle(&id, &c);
    // nsenter runs cuddy as itself (exec): this pid is cuddy's.
    let mut cmd = w.cuddy_cmd();
    cmd.arg("create")
        .args(w.cni_args("cni"))
        .args(["--bundle", b.to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_until("the ADD (an address allocated)", || {
        !w.allocations(&id).is_empty()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    assert!(!w.allocations(&id).is_empty(), "the ADD happened");
    // The init too (as after a host-side kill): only the pinned namespace
    // is left for DEL to find the interface and its masquerade rules in.
    let init = std::fs::read_to_string(w.ctx.root.join(&id).join("netns.init")).unwrap();
    let pid: i32 = init.split_whitespace().next().unwrap().parse().unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_until("the init to die", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert_ok(&w.cuddy(&["delete", "--force", &id]), "delete --force");
    w.assert_clean(&id);
}

// delete --force of a created (never started) container.
#[test]
fn cni_delete_force_of_a_created_container() {
    require_cni!();
    let w = World::new("cni4");
    w.write_conf("87-podman-bridge.conflist", &podman_conflist(&w.data));
    let id = w.id("cr");
    let b = w.ctx.bundle(&id, &busybox(&w, &["true"]));
    let mut a = vec!["create".to_string()];
    a.extend(w.cni_args("cni=podman"));
    a.extend(["--bundle".into(), b.to_string_lossy().into(), id.clone()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_ok(&w.cuddy(&a), "create");
    assert_eq!(w.allocations(&id).len(), 1);
    assert_ok(&w.cuddy(&["delete", "--force", &id]), "delete --force");
    w.assert_clean(&id);
}

// Bad input: an unknown network, a missing plugin, a failing plugin: clear
// errors naming what failed, and nothing left behind.
#[test]
fn cni_bad_input_is_named_and_leaves_nothing() {
    require_cni!();
    let w = World::new("cni5");
    w.write_conf("87-podman-bridge.conflist", &podman_conflist(&w.data));
    let mut missing = podman_conflist(&w.data);
    missing["name"] = json!("missing");
    missing["plugins"][2]["type"] = json!("nosuchplugin");
    w.write_conf("90-missing.conflist", &missing);
    let mut failing = podman_conflist(&w.data);
    failing["name"] = json!("failing");
    failing["plugins"][0]["bridge"] = json!("cni-fail0");
    // host-local refuses a range outside its subnet: the bridge plugin's
    // ADD fails after it made the bridge and the veth.
    failing["plugins"][0]["ipam"]["ranges"] =
        json!([[{"subnet": "10.99.0.0/16", "rangeStart": "10.98.0.10"}]]);
    w.write_conf("91-failing.conflist", &failing);
    for (net, needle) in [
        ("cni=nosuch", "cni=nosuch: no network of that name"),
        (
            "cni=missing",
            "plugin \"nosuchplugin\" is not in --cni-plugin-dir",
        ),
        ("cni=failing", "plugin \"bridge\" ADD failed"),
    ] {
        let id = w.id("bad");
        let a = w.cni_args(net);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = w.run(&id, &a, &busybox(&w, &["true"]));
        assert_fails_with(&out, needle);
        w.assert_clean(&id);
    }
}

// config-linux.md#network-devices: an interface of the runtime's
// namespace, with an address, is moved in renamed, keeps its address and
// is up; delete returns it under its name with its address.
#[test]
fn net_device_is_moved_in_and_returned() {
    require_root!();
    let w = World::new("ndev");
    // A veth pair (the dummy module may be missing): one end moves.
    w.ns.sh("ip link add dummy7 type veth peer name dummy7p && ip addr add 192.0.2.77/24 dev dummy7 && ip link set dummy7p up && ip link set dummy7 up");
    let id = w.id("nd");
    let mut c = w.ctx.config(&["sleep", "100"]);
    c["linux"]["netDevices"] = json!({"dummy7": {"name": "ctr0"}});
    assert_ok(&w.run(&id, &["-d"], &c), "run -d with netDevices");
    assert!(
        !w.ns.links().contains(&"dummy7".to_string()),
        "moved out of the runtime's namespace"
    );
    let out = w.cuddy(&["exec", &id, "ip", "-o", "addr", "show", "ctr0"]);
    assert_ok(&out, "exec ip addr");
    assert!(stdout(&out).contains("192.0.2.77/24"), "{}", stdout(&out));
    let out = w.cuddy(&["exec", &id, "ip", "-o", "link", "show", "ctr0"]);
    assert!(stdout(&out).contains(",UP"), "{}", stdout(&out));
    assert_ok(&w.cuddy(&["delete", "--force", &id]), "delete --force");
    let back = w.ns.sh("ip -o addr show dummy7");
    assert!(back.contains("192.0.2.77/24"), "{back}");
    assert!(w.ns.sh("ip -o link show dummy7").contains(",UP"));
    w.ctx.assert_no_leftovers(&id);

    // `run` in the foreground: the device comes back after the container
    // exited (cuddy holds the namespace until its delete).
    let id = w.id("fg");
    let mut c = w.ctx.config(&["ip", "-o", "addr", "show", "eth9"]);
    c["linux"]["netDevices"] = json!({"dummy7": {"name": "eth9"}});
    let out = w.run(&id, &[], &c);
    assert_ok(&out, "run with netDevices");
    assert!(stdout(&out).contains("192.0.2.77/24"), "{}", stdout(&out));
    assert!(w.ns.sh("ip -o addr show dummy7").contains("192.0.2.77/24"));

    // A detached container that exits before its delete: the pinned
    // namespace keeps the device until delete returns it.
    let id = w.id("ex");
    let mut c = w.ctx.config(&["true"]);
    c["linux"]["netDevices"] = json!({"dummy7": {}});
    assert_ok(&w.run(&id, &["-d"], &c), "run -d true with netDevices");
    wait_until("the container to stop", || {
        w.cuddy(&["state", &id])
            .stdout
            .windows(9)
            .any(|x| x == b"\"stopped\"")
    });
    assert!(!w.ns.links().contains(&"dummy7".to_string()));
    assert_ok(&w.cuddy(&["delete", &id]), "delete");
    assert!(w.ns.sh("ip -o addr show dummy7").contains("192.0.2.77/24"));
    w.assert_clean(&id);
}

// Bad netDevices: an unknown interface, a clash, no network namespace.
#[test]
fn net_device_bad_input_is_named() {
    require_root!();
    let w = World::new("ndbad");
    w.ns.sh("ip link add dummy8 type veth peer name dummy8p");
    let cases: [(Value, &str); 3] = [
        (
            json!({"nosuch0": {}}),
            "linux.netDevices.nosuch0: no such interface",
        ),
        (
            json!({"dummy8": {"name": "lo"}}),
            "linux.netDevices.dummy8.name",
        ),
        (
            json!({"dummy8": {}}),
            "linux.netDevices.dummy8: moving a device needs a network namespace",
        ),
    ];
    for (i, (devs, needle)) in cases.into_iter().enumerate() {
        let id = w.id("b");
        let mut c = w.ctx.config(&["true"]);
        c["linux"]["netDevices"] = devs;
        if i == 2 {
            let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
            nss.retain(|n| n["type"] != "network");
        }
        let out = w.run(&id, &[], &c);
        assert_fails_with(&out, needle);
        w.ctx.assert_no_leftovers(&id);
        assert!(
            w.ns.links().contains(&"dummy8".to_string()),
            "dummy8 untouched"
        );
    }
}
