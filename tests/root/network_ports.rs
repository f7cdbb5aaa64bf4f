//! Published ports and egress (issue 10 item 3, docs/networking.md
//! "Published ports and egress"): nftables DNAT in cuddy's table
//! `inet cuddy`, masquerade, hairpin. Every test runs cuddy inside a
//! network namespace of its own ([`TestNetns`], "the host"), joined to a
//! second one ("the peer", another subnet) by a veth pair: the host's own
//! interfaces, routes, nftables and sysctls are never touched.
//!
//! config-linux.md#namespaces: the container gets a new network namespace
//! (cuddy adds it for `--network bridge`); cuddy wires it from outside.

use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;
use crate::netns::TestNetns;

/// The host's address on the link to the peer, and the peer's.
const HOST_IP: &str = "192.0.2.1";
const PEER_IP: &str = "192.0.2.2";
/// The same link's IPv6 addresses (2001:db8::/32, documentation).
const HOST_IP6: &str = "2001:db8:77::1";
const PEER_IP6: &str = "2001:db8:77::2";

/// A host namespace and a peer namespace joined by a veth pair
/// (192.0.2.0/24, TEST-NET-1); the peer has no route to the bridge's
/// subnet, so a reply reaches a container only through the host's NAT.
struct World {
    host: TestNetns,
    peer: TestNetns,
}

impl World {
    fn new(tag: &str) -> Option<World> {
        if !is_root() || !nft_present() {
            return None;
        }
        let host = TestNetns::new(tag);
        let peer = TestNetns::new(&format!("{tag}p"));
        host.sh(&format!(
            "ip link add up0 type veth peer name p0 netns {p} && \
             ip addr add {HOST_IP}/24 dev up0 && ip link set up0 up && \
             ip addr add {HOST_IP6}/64 dev up0 nodad && \
             ip -n {p} addr add {PEER_IP}/24 dev p0 && \
             ip -n {p} addr add {PEER_IP6}/64 dev p0 nodad && ip -n {p} link set p0 up",
            p = peer.name
        ));
        Some(World { host, peer })
    }
}

fn nft_present() -> bool {
    let ok = ["/usr/sbin/nft", "/sbin/nft"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if !ok {
        eprintln!("skipped: nft (Debian's nftables) is not installed");
    }
    ok
}

/// `busybox nc HOST PORT` from `ns` until it prints something (the server
/// may not listen yet), bounded; returns what it printed.
fn nc_until(ns: &TestNetns, host: &str, port: u16) -> String {
    let script = format!(
        "for i in $(seq 1 100); do out=$(busybox nc -w 2 {host} {port} </dev/null 2>/dev/null); \
         [ -n \"$out\" ] && {{ echo \"$out\"; exit 0; }}; sleep 0.1; done; exit 1"
    );
    let o = ns.try_sh(&script);
    assert_ok(&o, &format!("nc {host} {port} from {}", ns.name));
    stdout(&o).trim().to_string()
}

/// A detached container of `config` with cuddy's `extra` flags, in `ns`.
fn run_detached(ctx: &Ctx, ns: &TestNetns, id: &str, config: &Value, extra: &[&str]) {
    let b = ctx.bundle(id, config);
    let mut args = vec!["run", "-d", "--bundle", b.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    let o = ns.cuddy(ctx, &args);
    assert_ok(&o, &format!("run -d {id}"));
}

fn delete(ctx: &Ctx, ns: &TestNetns, id: &str) {
    let o = ns.cuddy(ctx, &["delete", "--force", id]);
    assert_ok(&o, &format!("delete --force {id}"));
}

/// `nft list table inet cuddy` in `ns` (empty when there is none).
fn table(ns: &TestNetns) -> String {
    stdout(&ns.try_sh("nft list table inet cuddy"))
}

/// No chain, map element or rule of container `id` is left in `ns`, nor its
/// state; the table itself may stay.
fn assert_no_port_leftovers(ctx: &Ctx, ns: &TestNetns, id: &str) {
    let t = table(ns);
    let chain = cuddy::network::nft::chain_name(&ctx.root, id);
    assert!(!t.contains(&chain), "{chain} left in inet cuddy:\n{t}");
    ctx.assert_no_leftovers(id);
}

/// A busybox server on container port 80 answering each connection with
/// `reply` (`nc -ll`: keeps listening).
fn server(ctx: &Ctx, reply: &str) -> Value {
    ctx.config(&["nc", "-ll", "-p", "80", "-e", "echo", reply])
}

#[test]
fn the_host_and_a_peer_reach_a_published_tcp_port() {
    let Some(w) = World::new("pubtcp") else {
        return;
    };
    let ctx = Ctx::new("pubtcp");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let id = ctx.id("web");
    // What forwarding was before: a new network namespace inherits
    // net.ipv4.ip_forward from the initial one (devconf_inherit_init_net=0),
    // so it may be on already (it is in the v2 guest).
    let before: Vec<String> = ["ipv4/ip_forward", "ipv6/conf/all/forwarding"]
        .iter()
        .map(|k| {
            w.host
                .sh(&format!("cat /proc/sys/net/{k}"))
                .trim()
                .to_string()
        })
        .collect();
    run_detached(
        &ctx,
        &w.host,
        &id,
        &server(&ctx, "published"),
        &["--network", "bridge", "--publish", "8080:80"],
    );
    // From outside (prerouting): the peer, on the host's address.
    assert_eq!(nc_until(&w.peer, HOST_IP, 8080), "published");
    // The host itself (output): its own address, and 127.0.0.1.
    assert_eq!(nc_until(&w.host, HOST_IP, 8080), "published");
    assert_eq!(nc_until(&w.host, "127.0.0.1", 8080), "published");
    // IPv6: the container has an address of the bridge's IPv6 subnet.
    assert_eq!(nc_until(&w.peer, HOST_IP6, 8080), "published");
    assert_eq!(nc_until(&w.host, HOST_IP6, 8080), "published");
    let t = table(&w.host);
    let chain = cuddy::network::nft::chain_name(&ctx.root, &id);
    assert!(t.contains(&format!("jump {chain}")), "{t}");
    // Forwarding is on in the namespace that holds the bridge.
    assert_eq!(w.host.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    let fwd6 = w.host.sh("cat /proc/sys/net/ipv6/conf/all/forwarding");
    assert_eq!(fwd6.trim(), "1");
    // ...and recorded with the value before, shown by network inspect.
    let o = w.host.cuddy(&ctx, &["network", "inspect", "cuddy0"]);
    assert_ok(&o, "network inspect");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nat"]["masquerade"], json!(true), "{v}");
    let changed = v["nat"]["sysctlsChanged"].to_string();
    // Each one cuddy turned on is recorded with the value before.
    for (key, was) in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]
        .iter()
        .zip(&before)
    {
        assert_eq!(
            changed.contains(key),
            was == "0",
            "{key} was {was}: {changed}"
        );
    }
    delete(&ctx, &w.host, &id);
    assert_no_port_leftovers(&ctx, &w.host, &id);
    // Nothing answers any more.
    let o = w
        .peer
        .try_sh(&format!("busybox nc -w 1 {HOST_IP} 8080 </dev/null"));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}

/// Deletes (inside the test's namespace, where their veths and rules are)
/// every container left in `ctx`'s state root when a test ends, failed or
/// not, before [`Ctx`]'s own cleanup (which runs outside it) would.
struct CleanupIn<'a>(&'a Ctx, &'a TestNetns);

impl Drop for CleanupIn<'_> {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir(&self.0.root) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('@') {
                let _ = self.1.cuddy(self.0, &["delete", "--force", &name]);
            }
        }
    }
}

/// A helper process of the test (a server in a namespace), killed by PID
/// when the test ends, failed or not.
struct Helper(std::process::Child);

impl Helper {
    fn spawn(mut c: std::process::Command) -> Helper {
        use std::process::Stdio;
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Helper(c.spawn().expect("spawn a helper"))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The container's init pid, from `cuddy state`.
fn init_pid(ctx: &Ctx, ns: &TestNetns, id: &str) -> i64 {
    let o = ns.cuddy(ctx, &["state", id]);
    assert_ok(&o, "state");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["pid"].as_i64().unwrap()
}

const UDP_ECHO: &str = "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', 53))\n\
while True:\n    d, a = s.recvfrom(100)\n    s.sendto(b'udp:' + d, a)\n";

const UDP_ASK: &str = "import socket, sys\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.settimeout(0.2)\n\
for i in range(100):\n    s.sendto(b'ping', (sys.argv[1], int(sys.argv[2])))\n    \
try:\n        print(s.recv(100).decode()); sys.exit(0)\n    except socket.timeout:\n        pass\n\
sys.exit(1)\n";

#[test]
fn a_published_udp_port_is_reached_from_the_peer_and_the_host() {
    let Some(w) = World::new("pubudp") else {
        return;
    };
    let ctx = Ctx::new("pubudp");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let id = ctx.id("dns");
    // busybox nc has no UDP: the container only sleeps, and a UDP echo
    // server runs in its network namespace (what is tested is the path to
    // that namespace).
    run_detached(
        &ctx,
        &w.host,
        &id,
        &ctx.config(&["sleep", "60"]),
        &["--network", "bridge", "--publish", "5353:53/udp"],
    );
    let pid = init_pid(&ctx, &w.host, &id);
    let mut srv = std::process::Command::new("nsenter");
    srv.args([
        "-t",
        &pid.to_string(),
        "-n",
        "/usr/bin/python3",
        "-c",
        UDP_ECHO,
    ]);
    let _srv = Helper::spawn(srv);
    for (ns, addr) in [
        (&w.peer, HOST_IP),
        (&w.host, HOST_IP),
        (&w.host, "127.0.0.1"),
    ] {
        let mut c = ns.cmd("/usr/bin/python3");
        c.args(["-c", UDP_ASK, addr, "5353"]);
        let o: Output = output_with_timeout(c, 60);
        assert_ok(&o, &format!("udp to {addr}:5353 from {}", ns.name));
        assert_eq!(stdout(&o).trim(), "udp:ping");
    }
    delete(&ctx, &w.host, &id);
    assert_no_port_leftovers(&ctx, &w.host, &id);
}

#[test]
fn a_container_reaches_out_through_masquerade() {
    let Some(w) = World::new("egress") else {
        return;
    };
    let ctx = Ctx::new("egress");
    let _cleanup = CleanupIn(&ctx, &w.host);
    // The peer says which address each connection comes from (IPv4 on
    // port 9000, IPv6 on 9001).
    let peers: Vec<Helper> = ["9000", "9001"]
        .iter()
        .map(|port| {
            let mut c = w.peer.cmd("busybox");
            c.args(["nc", "-l", "-p", port, "-e", "busybox", "netstat", "-tn"]);
            Helper::spawn(c)
        })
        .collect();
    let id = ctx.id("out");
    let cfg = ctx.config(&[
        "sh",
        "-c",
        &format!(
            "ask() {{ for i in $(seq 50); do out=$(nc $1 $2 </dev/null) && [ -n \"$out\" ] && \
             {{ echo \"$out\"; return 0; }}; sleep 0.1; done; return 1; }}; \
             ask {PEER_IP} 9000 && ask {PEER_IP6} 9001"
        ),
    ]);
    let b = ctx.bundle(&id, &cfg);
    let o = w.host.cuddy(
        &ctx,
        &[
            "run",
            "--network",
            "bridge",
            "--bundle",
            b.to_str().unwrap(),
            &id,
        ],
    );
    drop(peers);
    assert_ok(&o, "run the client");
    let seen = stdout(&o);
    for (peer, host) in [(PEER_IP, HOST_IP), (PEER_IP6, HOST_IP6)] {
        let line = seen
            .lines()
            .find(|l| l.contains(&format!("{peer}:900")))
            .unwrap_or_else(|| panic!("no connection to {peer} in the peer's netstat: {seen}"));
        // Proto Recv-Q Send-Q Local Foreign State; IPv4 shows as ::ffff:A.
        let foreign = line.split_whitespace().nth(4).unwrap_or("");
        let foreign = foreign.strip_prefix("::ffff:").unwrap_or(foreign);
        assert!(
            foreign.starts_with(&format!("{host}:")),
            "the peer must see the host's address {host}: {line}"
        );
    }
    delete(&ctx, &w.host, &id);
    ctx.assert_no_leftovers(&id);
}

#[test]
fn hairpin_and_container_to_container_through_a_host_address() {
    let Some(w) = World::new("hairpin") else {
        return;
    };
    let ctx = Ctx::new("hairpin");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let a = ctx.id("a");
    // A serves; a process of A (exec: A's network namespace) reaches A's
    // own published port through the host's address.
    run_detached(
        &ctx,
        &w.host,
        &a,
        &server(&ctx, "hairpin"),
        &["--network", "bridge", "--publish", "8080:80"],
    );
    let ask = format!(
        "for i in $(seq 100); do out=$(nc -w 1 {HOST_IP} 8080 </dev/null); \
         [ -n \"$out\" ] && {{ echo \"$out\"; exit 0; }}; sleep 0.1; done; exit 1"
    );
    let o = w.host.cuddy(&ctx, &["exec", &a, "sh", "-c", &ask]);
    assert_ok(&o, "hairpin");
    assert_eq!(stdout(&o).trim(), "hairpin");
    // Another container reaches A's published port through the host.
    let b = ctx.id("b");
    let cfg = ctx.config(&["sh", "-c", &ask]);
    let bundle = ctx.bundle(&b, &cfg);
    let o = w.host.cuddy(
        &ctx,
        &[
            "run",
            "--network",
            "bridge",
            "--bundle",
            bundle.to_str().unwrap(),
            &b,
        ],
    );
    assert_ok(&o, "container to container");
    assert_eq!(stdout(&o).trim(), "hairpin");
    delete(&ctx, &w.host, &b);
    delete(&ctx, &w.host, &a);
    assert_no_port_leftovers(&ctx, &w.host, &a);
}

#[test]
fn a_port_already_published_is_refused_and_nothing_is_left() {
    let Some(w) = World::new("pubtwice") else {
        return;
    };
    let ctx = Ctx::new("pubtwice");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let a = ctx.id("a");
    run_detached(
        &ctx,
        &w.host,
        &a,
        &server(&ctx, "first"),
        &["--network", "bridge", "--publish", "8080:80"],
    );
    let before = table(&w.host);
    let links_before = w.host.links();
    let b = ctx.id("b");
    let bundle = ctx.bundle(&b, &server(&ctx, "second"));
    let o = w.host.cuddy(
        &ctx,
        &[
            "run",
            "-d",
            "--network",
            "bridge",
            "--publish",
            "8080:81",
            "--bundle",
            bundle.to_str().unwrap(),
            &b,
        ],
    );
    assert_fails_with(&o, "8080:81/tcp");
    assert!(stderr(&o).contains("already published"), "{}", stderr(&o));
    assert_no_port_leftovers(&ctx, &w.host, &b);
    // Its veth dies with its namespace, asynchronously (links_settle).
    crate::network_bridge::links_settle(&w.host, "the refused container", |l| {
        l == links_before.as_slice()
    });
    assert_eq!(table(&w.host), before, "the ruleset changed");
    // The first still answers; the same port on another protocol or host
    // address is another key.
    assert_eq!(nc_until(&w.peer, HOST_IP, 8080), "first");
    let c = ctx.id("c");
    run_detached(
        &ctx,
        &w.host,
        &c,
        &server(&ctx, "third"),
        &[
            "--network",
            "bridge",
            "--publish",
            "8080:80/udp",
            "--publish",
            "127.0.0.1:8080:80",
        ],
    );
    // The specific address wins over every address.
    assert_eq!(nc_until(&w.host, "127.0.0.1", 8080), "third");
    assert_eq!(nc_until(&w.host, HOST_IP, 8080), "first");
    delete(&ctx, &w.host, &c);
    delete(&ctx, &w.host, &a);
    assert_no_port_leftovers(&ctx, &w.host, &a);
    assert_no_port_leftovers(&ctx, &w.host, &c);
}

#[test]
fn publish_from_the_bundle_annotation() {
    let Some(w) = World::new("pubann") else {
        return;
    };
    let ctx = Ctx::new("pubann");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let id = ctx.id("ann");
    // A bundle carries its network: the annotations cuddy documents.
    let mut cfg = server(&ctx, "annotated");
    cfg["annotations"] = json!({
        "cuddy.network.mode": "bridge",
        "cuddy.network.publish": "8081:80, 8082:80"
    });
    run_detached(&ctx, &w.host, &id, &cfg, &[]);
    assert_eq!(nc_until(&w.peer, HOST_IP, 8081), "annotated");
    assert_eq!(nc_until(&w.peer, HOST_IP, 8082), "annotated");
    delete(&ctx, &w.host, &id);
    assert_no_port_leftovers(&ctx, &w.host, &id);
}

#[test]
fn bad_publish_requests_are_refused_and_nothing_is_left() {
    let Some(w) = World::new("pubbad") else {
        return;
    };
    let ctx = Ctx::new("pubbad");
    let _cleanup = CleanupIn(&ctx, &w.host);
    for (i, (flags, needle)) in [
        (
            &["--network", "bridge", "--publish", "[::1]:8080:80"][..],
            "route_localnet",
        ),
        (
            &["--network", "bridge", "--publish", "224.0.0.1:8080:80"][..],
            "not a unicast",
        ),
        (
            &[
                "--network",
                "bridge",
                "--publish",
                "8080:80",
                "--publish",
                "8080:81",
            ][..],
            "same host port",
        ),
        (
            &["--network", "none", "--publish", "8080:80"][..],
            "needs --network bridge",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = ctx.id(&format!("bad{i}"));
        let b = ctx.bundle(&id, &server(&ctx, "x"));
        let mut args = vec!["run", "-d", "--bundle", b.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.push(&id);
        let o = w.host.cuddy(&ctx, &args);
        assert_fails_with(&o, needle);
        assert_no_port_leftovers(&ctx, &w.host, &id);
        // The host end dies with the container's namespace, which the
        // kernel removes asynchronously (docs/networking.md): bounded wait.
        wait_until("the refused container's veth to go", || {
            w.host
                .links()
                .iter()
                .all(|l| !l.starts_with("veth") && !l.starts_with("vc"))
        });
    }
}

#[test]
fn delete_after_an_element_was_removed_by_hand_leaves_nothing() {
    let Some(w) = World::new("pubhand") else {
        return;
    };
    let ctx = Ctx::new("pubhand");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let id = ctx.id("x");
    run_detached(
        &ctx,
        &w.host,
        &id,
        &server(&ctx, "x"),
        &[
            "--network",
            "bridge",
            "--publish",
            "8083:80",
            "--publish",
            "8084:80/udp",
        ],
    );
    let chain = cuddy::network::nft::chain_name(&ctx.root, &id);
    assert!(table(&w.host).contains(&format!("jump {chain}")));
    // Someone removes one of the container's elements by hand: the
    // recorded keys no longer all exist, so the one-batch teardown fails
    // and the keys still jumping to the chain are read back.
    w.host
        .sh("nft delete element inet cuddy pub_any '{ ipv4 . tcp . 8083 }'");
    delete(&ctx, &w.host, &id);
    let t = table(&w.host);
    assert!(!t.contains(&chain), "{t}");
    assert_no_port_leftovers(&ctx, &w.host, &id);
}

#[test]
fn network_prune_removes_the_chain_of_a_container_whose_teardown_never_ran() {
    let Some(w) = World::new("pubprune") else {
        return;
    };
    let ctx = Ctx::new("pubprune");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let (gone, kept) = (ctx.id("gone"), ctx.id("kept"));
    for (id, port) in [(&gone, "8085:80"), (&kept, "8086:80")] {
        run_detached(
            &ctx,
            &w.host,
            id,
            &server(&ctx, id),
            &["--network", "bridge", "--publish", port],
        );
    }
    // The record loses its ports effect (as if cuddy died before writing
    // it, or the teardown never ran): delete leaves the chain behind.
    let rec_path = ctx.root.join(&gone).join("network.json");
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&rec_path).unwrap()).unwrap();
    rec["effects"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["kind"] != "ports");
    std::fs::write(&rec_path, serde_json::to_vec(&rec).unwrap()).unwrap();
    delete(&ctx, &w.host, &gone);
    let chain = cuddy::network::nft::chain_name(&ctx.root, &gone);
    assert!(table(&w.host).contains(&chain), "the stale chain is there");
    let o = w.host.cuddy(&ctx, &["network", "prune"]);
    assert_ok(&o, "network prune");
    assert!(stdout(&o).contains(&chain), "{}", stdout(&o));
    assert_no_port_leftovers(&ctx, &w.host, &gone);
    // The live container keeps its port.
    assert_eq!(nc_until(&w.peer, HOST_IP, 8086), kept);
    delete(&ctx, &w.host, &kept);
    assert_no_port_leftovers(&ctx, &w.host, &kept);
}

#[test]
fn a_create_killed_after_its_ports_were_published_is_undone_by_delete_force() {
    // config.md#posix-platform-hooks: prestart hooks run after the
    // namespaces (and cuddy's wiring of the network one) exist.
    let Some(w) = World::new("pubcrash") else {
        return;
    };
    let ctx = Ctx::new("pubcrash");
    let _cleanup = CleanupIn(&ctx, &w.host);
    let id = ctx.id("c");
    // A prestart hook that hangs: cuddy is killed while it runs, after the
    // chain and its map elements exist.
    let mut cfg = ctx.config(&["true"]);
    cfg["hooks"] = json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]});
    let b = ctx.bundle(&id, &cfg);
    let mut cmd = w.host.cmd(CUDDY);
    cmd.arg("--root")
        .arg(&ctx.root)
        .args([
            "create",
            "--network",
            "bridge",
            "--publish",
            "8087:80",
            "--bundle",
        ])
        .arg(&b)
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn cuddy");
    let chain = cuddy::network::nft::chain_name(&ctx.root, &id);
    for _ in 0..500 {
        if table(&w.host).contains(&format!("jump {chain}")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        table(&w.host).contains(&format!("jump {chain}")),
        "never published"
    );
    // nsenter execs cuddy: the child's pid is cuddy's.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill cuddy");
    let _ = child.wait();
    delete(&ctx, &w.host, &id);
    assert_no_port_leftovers(&ctx, &w.host, &id);
    assert!(!table(&w.host).contains("8087"), "{}", table(&w.host));
}
