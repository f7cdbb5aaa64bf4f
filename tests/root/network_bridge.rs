//! Bridge mode and the network modes (docs/networking.md), always inside a
//! network namespace of the test's own (`TestNetns`): the host's
//! interfaces, routes and sysctls are never touched. config-linux.md
//! "Namespaces": a `network` entry without a path is a new namespace, with
//! a path it joins that one.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;
use crate::netns::TestNetns;
use crate::require_root;

/// A config with Docker 20.10's capability sets (NET_RAW for ping), running
/// `script` under sh.
fn config(ctx: &Ctx, script: &str) -> Value {
    let mut c = ctx.config(&["sh", "-c", script]);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = json!(DOCKER_CAPS);
    }
    c
}

fn create(ns: &TestNetns, ctx: &Ctx, id: &str, c: &Value, extra: &[&str]) -> Output {
    let b = ctx.bundle(id, c);
    let mut args = vec!["create", "--bundle", b.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    args.push(id);
    ns.cuddy(ctx, &args)
}

/// `cuddy run` in the test's namespace; returns the output.
fn run(ns: &TestNetns, ctx: &Ctx, id: &str, c: &Value, extra: &[&str]) -> Output {
    let b = ctx.bundle(id, c);
    let mut args = vec!["run", "--bundle", b.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    args.push(id);
    ns.cuddy(ctx, &args)
}

/// The container's addresses from `network inspect`.
fn addresses_of(ns: &TestNetns, ctx: &Ctx, id: &str) -> Vec<String> {
    let out = ns.cuddy(ctx, &["network", "inspect", "cuddy0"]);
    assert_ok(&out, "network inspect");
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v["allocations"]
        .as_array()
        .expect("allocations")
        .iter()
        .filter(|a| a["container"] == id)
        .map(|a| a["address"].as_str().expect("address").to_string())
        .collect()
}

/// The bound within which a deleted container's veth is gone: delete
/// leaves the pair to die with the container's network namespace, which
/// the kernel's cleanup_net does asynchronously, milliseconds after delete
/// returned (docs/networking.md "Cost"), but one queue serves every
/// namespace teardown of the machine (the other tests' too, and an emulated
/// guest is slow): 60 s is a hang guard, not a speed claim.
pub(crate) fn links_settle(ns: &TestNetns, what: &str, ok: impl Fn(&[String]) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let links = ns.links();
        if ok(&links) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: links left behind 60 s after delete: {links:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Nothing of the containers is left: no state, no veth (only the bridge
/// may stay), no lease.
fn assert_clean(ns: &TestNetns, ctx: &Ctx, ids: &[&str]) {
    for id in ids {
        ctx.assert_no_leftovers(id);
    }
    links_settle(ns, "only the bridge", |l| l.iter().all(|l| l == "cuddy0"));
    let leases = ctx.root.join("@networks/cuddy0.leases");
    if leases.exists() {
        let left: Vec<_> = std::fs::read_dir(&leases)
            .expect("leases")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "leases left behind: {left:?}");
    }
}

fn delete(ns: &TestNetns, ctx: &Ctx, id: &str) {
    assert_ok(&ns.cuddy(ctx, &["delete", "--force", id]), "delete --force");
}

#[test]
fn two_containers_ping_and_exchange_tcp_on_one_bridge() {
    require_root!();
    let ctx = Ctx::new("nb-tcp");
    let ns = TestNetns::new("nbtcp");
    let (a, b) = (ctx.id("a"), ctx.id("b"));
    // a: a TCP server answering one line.
    let srv = config(&ctx, "echo pong-from-a | nc -l -p 7070");
    assert_ok(
        &create(&ns, &ctx, &a, &srv, &["--network", "bridge"]),
        "create a",
    );
    assert_ok(&ns.cuddy(&ctx, &["start", &a]), "start a");
    let a_ip = addresses_of(&ns, &ctx, &a)
        .into_iter()
        .find(|x| !x.contains(':'))
        .expect("a has an IPv4 address");
    let cli = config(
        &ctx,
        &format!(
            "ip -o addr show eth0; ip route; ping -c1 -W5 {a_ip} >/dev/null && echo PING-OK; \
             for i in 1 2 3 4 5 6 7 8 9 10; do r=$(echo hi | nc -w 2 {a_ip} 7070) && [ -n \"$r\" ] && break; sleep 0.2; done; echo \"got:$r\""
        ),
    );
    let out = run(&ns, &ctx, &b, &cli, &["--network", "bridge"]);
    assert_ok(&out, "run b");
    let s = stdout(&out);
    assert!(s.contains("PING-OK"), "b cannot ping a at {a_ip}: {s}");
    assert!(s.contains("got:pong-from-a"), "no TCP exchange: {s}");
    assert!(s.contains("default via 10.77.0.1 dev eth0"), "{s}");
    assert!(s.contains("inet 10.77.0."), "{s}");
    delete(&ns, &ctx, &a);
    assert_clean(&ns, &ctx, &[&a, &b]);
}

#[test]
fn ipv6_between_two_containers() {
    require_root!();
    let ctx = Ctx::new("nb-v6");
    let ns = TestNetns::new("nbv6");
    let (a, b) = (ctx.id("a"), ctx.id("b"));
    let srv = config(&ctx, "echo v6-pong | nc -l -p 7071");
    assert_ok(
        &create(&ns, &ctx, &a, &srv, &["--network", "bridge"]),
        "create a",
    );
    assert_ok(&ns.cuddy(&ctx, &["start", &a]), "start a");
    let a6 = addresses_of(&ns, &ctx, &a)
        .into_iter()
        .find(|x| x.contains(':'))
        .expect("a has an IPv6 address");
    let cli = config(
        &ctx,
        &format!(
            "ip -6 route; ping6 -c1 -W5 {a6} >/dev/null && echo PING6-OK; \
             for i in 1 2 3 4 5 6 7 8 9 10; do r=$(echo hi | nc -w 2 {a6} 7071) && [ -n \"$r\" ] && break; sleep 0.2; done; echo \"got:$r\""
        ),
    );
    let out = run(&ns, &ctx, &b, &cli, &["--network", "bridge"]);
    assert_ok(&out, "run b");
    let s = stdout(&out);
    assert!(s.contains("default via fd77:c0dd:7::1 dev eth0"), "{s}");
    assert!(s.contains("PING6-OK"), "b cannot ping6 a at {a6}: {s}");
    assert!(s.contains("got:v6-pong"), "no TCP over IPv6: {s}");
    delete(&ns, &ctx, &a);
    assert_clean(&ns, &ctx, &[&a, &b]);
}

#[test]
fn etc_files_are_generated_and_mounted() {
    require_root!();
    let ctx = Ctx::new("nb-etc");
    let ns = TestNetns::new("nbetc");
    let id = ctx.id("c");
    let mut c = config(
        &ctx,
        "cat /etc/hosts /etc/hostname /etc/resolv.conf; ip link show eth0",
    );
    c["hostname"] = json!("web1");
    let out = run(
        &ns,
        &ctx,
        &id,
        &c,
        &[
            "--network",
            "bridge",
            "--ip",
            "10.77.3.4",
            "--dns",
            "192.0.2.53",
            "--mac",
            "02:42:ac:11:00:99",
        ],
    );
    assert_ok(&out, "run");
    let s = stdout(&out);
    assert!(s.contains("link/ether 02:42:ac:11:00:99"), "--mac: {s}");
    assert!(s.contains("mtu 1500"), "the bridge's MTU: {s}");
    assert!(s.contains("127.0.0.1\tlocalhost"), "{s}");
    assert!(s.contains("10.77.3.4\tweb1"), "{s}");
    assert!(s.contains("\nweb1\n"), "{s}");
    assert!(s.contains("nameserver 192.0.2.53"), "{s}");
    assert!(!s.contains("nameserver 127."), "{s}");
    assert_clean(&ns, &ctx, &[&id]);
}

#[test]
fn network_none_has_only_lo_up() {
    require_root!();
    let ctx = Ctx::new("nb-none");
    let ns = TestNetns::new("nbnone");
    let id = ctx.id("c");
    // A config without any network namespace (as `runc spec` minus it):
    // --network none adds a new one.
    let mut c = config(&ctx, "ip -o link");
    let nss: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter(|n| n["type"] != "network")
        .cloned()
        .collect();
    c["linux"]["namespaces"] = json!(nss);
    let out = run(&ns, &ctx, &id, &c, &["--network", "none"]);
    assert_ok(&out, "run");
    let s = stdout(&out);
    let links: Vec<&str> = s.lines().collect();
    assert_eq!(links.len(), 1, "only lo: {s}");
    assert!(links[0].contains(": lo:") && links[0].contains("UP"), "{s}");
    assert_clean(&ns, &ctx, &[&id]);
}

#[test]
fn host_mode_sees_the_netns_interfaces() {
    require_root!();
    let ctx = Ctx::new("nb-host");
    let ns = TestNetns::new("nbhost");
    ns.sh("ip link add cuddyhostdum type bridge");
    let id = ctx.id("c");
    // The default config has {"type": "network"}: host mode drops it.
    let out = run(
        &ns,
        &ctx,
        &id,
        &config(&ctx, "ip -o link"),
        &["--network", "host"],
    );
    assert_ok(&out, "run");
    assert!(stdout(&out).contains("cuddyhostdum"), "{}", stdout(&out));
    ctx.assert_no_leftovers(&id);
}

#[test]
fn joining_a_netns_by_path_works_and_cuddy_touches_nothing() {
    require_root!();
    let ctx = Ctx::new("nb-join");
    let ns = TestNetns::new("nbjoin");
    let other = TestNetns::new("nbjoin2");
    other.sh("ip link add joindum type bridge");
    let before = other.sh("ip -o link; ip -o addr; ip route");
    let id = ctx.id("c");
    // containerd 1.6 / podman 4.3 with CNI: the sandbox's netns by path.
    let mut c = config(&ctx, "ip -o link");
    let mut nss: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter(|n| n["type"] != "network")
        .cloned()
        .collect();
    nss.push(json!({"type": "network", "path": format!("/run/netns/{}", other.name)}));
    c["linux"]["namespaces"] = json!(nss);
    let out = run(&ns, &ctx, &id, &c, &[]);
    assert_ok(&out, "run");
    assert!(stdout(&out).contains("joindum"), "{}", stdout(&out));
    // Bridge mode with that config: refused, nothing made anywhere.
    let id2 = ctx.id("c2");
    let out = run(&ns, &ctx, &id2, &c, &["--network", "bridge"]);
    assert_fails_with(&out, "joins the network namespace");
    assert_eq!(other.sh("ip -o link; ip -o addr; ip route"), before);
    assert!(ns.links().is_empty(), "{:?}", ns.links());
    ctx.assert_no_leftovers(&id);
    ctx.assert_no_leftovers(&id2);
}

#[test]
fn ipam_gives_distinct_addresses_under_50_concurrent_creates_and_reuses_them() {
    require_root!();
    let ctx = Ctx::new("nb-ipam");
    let ns = TestNetns::new("nbipam");
    let c = config(&ctx, "sleep 60");
    let ids: Vec<String> = (0..50).map(|i| ctx.id(&format!("n{i}"))).collect();
    let bundles: Vec<_> = ids.iter().map(|id| ctx.bundle(id, &c)).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .zip(&bundles)
            .map(|(id, b)| {
                let mut cmd = ns.cmd(CUDDY);
                cmd.arg("--root")
                    .arg(&ctx.root)
                    .args(["create", "--network", "bridge", "--bundle"])
                    .arg(b)
                    .arg(id);
                s.spawn(move || output_with_timeout(cmd, 120))
            })
            .collect();
        for h in hs {
            assert_ok(&h.join().expect("thread"), "concurrent create");
        }
    });
    let out = ns.cuddy(&ctx, &["network", "inspect", "cuddy0"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect");
    let allocs = v["allocations"].as_array().expect("allocations");
    assert_eq!(allocs.len(), 100, "one IPv4 and one IPv6 address each");
    let mut addrs: Vec<&str> = allocs
        .iter()
        .filter_map(|a| a["address"].as_str())
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 100, "an address given twice: {addrs:?}");
    for id in &ids {
        delete(&ns, &ctx, id);
    }
    assert_clean(
        &ns,
        &ctx,
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // Released: the next container gets the first address again.
    let id = ctx.id("again");
    let out = run(
        &ns,
        &ctx,
        &id,
        &config(&ctx, "ip -o -4 addr show eth0"),
        &["--network", "bridge"],
    );
    assert_ok(&out, "run after delete");
    assert!(
        stdout(&out).contains("inet 10.77.0.2/16"),
        "{}",
        stdout(&out)
    );
    assert_clean(&ns, &ctx, &[&id]);
}

#[test]
fn bad_input_is_refused_clearly_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("nb-bad");
    let ns = TestNetns::new("nbbad");
    let c = config(&ctx, "sleep 60");
    let holder = ctx.id("holder");
    assert_ok(
        &create(
            &ns,
            &ctx,
            &holder,
            &c,
            &["--network", "bridge", "--ip", "10.77.0.50"],
        ),
        "create holder",
    );
    assert_ok(
        &ns.cuddy(
            &ctx,
            &["network", "create", "lo", "--subnet", "10.99.0.0/24"],
        ),
        "network create lo",
    );
    for (args, needle) in [
        (
            &["--ip", "10.78.0.9"][..],
            "outside the network's subnet 10.77.0.0/16",
        ),
        (&["--ip", "10.77.0.50"][..], "taken by container"),
        (&["--ip", "10.77.0.1"][..], "the gateway of 10.77.0.0/16"),
        (&["--ip", "10.77.255.255"][..], "the broadcast address"),
        (&["--network", "bridge=nosuchnet"][..], "no such network"),
        (
            &["--network", "bridge=lo"][..],
            "exists and is not a bridge",
        ),
        (&["--network", "bridge=bad/name"][..], "--network"),
    ] {
        let id = ctx.id("bad");
        let out = create(&ns, &ctx, &id, &c, args);
        if args[1].contains('/') {
            // Refused by the command-line parser (exit 2, as clap does).
            assert!(!out.status.success() && stderr(&out).contains(needle));
        } else {
            assert_fails_with(&out, needle);
        }
        ctx.assert_no_leftovers(&id);
        links_settle(&ns, "only the bridge and holder's veth", |l| l.len() == 2);
        let leases = std::fs::read_dir(ctx.root.join("@networks/cuddy0.leases"))
            .expect("leases")
            .count();
        assert_eq!(leases, 2, "only the holder's leases ({args:?})");
    }
    delete(&ns, &ctx, &holder);
    assert_ok(&ns.cuddy(&ctx, &["network", "rm", "lo"]), "network rm");
    assert_clean(&ns, &ctx, &[&holder]);
}

#[test]
fn a_crashed_create_is_undone_by_delete_force() {
    require_root!();
    let ctx = Ctx::new("nb-crash");
    let ns = TestNetns::new("nbcrash");
    let id = ctx.id("c");
    // A prestart hook that hangs: cuddy is killed while it runs, after the
    // veth and the leases exist.
    let mut c = config(&ctx, "true");
    c["hooks"] = json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]});
    let b = ctx.bundle(&id, &c);
    let mut cmd = ns.cmd(CUDDY);
    cmd.arg("--root")
        .arg(&ctx.root)
        .args(["create", "--network", "bridge", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn cuddy");
    wait_until("the veth", || ns.links().len() == 2);
    // nsenter execs cuddy: the child's pid is cuddy's.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill cuddy");
    let _ = child.wait();
    assert!(Path::new(&ctx.root.join(&id).join("network.json")).exists());
    delete(&ns, &ctx, &id);
    assert_clean(&ns, &ctx, &[&id]);
}

#[test]
fn prune_releases_stale_leases_and_removes_an_unused_bridge() {
    require_root!();
    let ctx = Ctx::new("nb-prune");
    let ns = TestNetns::new("nbprune");
    let id = ctx.id("c");
    assert_ok(
        &create(
            &ns,
            &ctx,
            &id,
            &config(&ctx, "sleep 60"),
            &["--network", "bridge"],
        ),
        "create",
    );
    // The lease now names another init (as after an id was reused): stale.
    let lease = ctx.root.join("@networks/cuddy0.leases/10.77.0.2");
    std::fs::write(&lease, format!("{{\"id\":\"{id}\",\"pid_start\":1}}")).expect("lease");
    let out = ns.cuddy(&ctx, &["network", "prune"]);
    assert_ok(&out, "prune");
    assert!(
        stdout(&out).contains("released 10.77.0.2"),
        "{}",
        stdout(&out)
    );
    assert!(!lease.exists());
    let ls = ns.cuddy(&ctx, &["network", "ls"]);
    assert!(stdout(&ls).contains("cuddy0"), "{}", stdout(&ls));
    delete(&ns, &ctx, &id);
    let out = ns.cuddy(&ctx, &["network", "prune"]);
    assert!(
        stdout(&out).contains("removed bridge cuddy0"),
        "{}",
        stdout(&out)
    );
    links_settle(&ns, "no link", |l| l.is_empty());
    assert_clean(&ns, &ctx, &[&id]);
}

/// delete leaves the veth pair to die with the container's network
/// namespace (docs/networking.md "Records and cleanup"; config-linux.md
/// "Namespaces": the container's `network` namespace is cuddy's new one):
/// while something outside cuddy still holds that namespace the old host
/// end lives on, and a new container of the same id still gets its own
/// (per-instance name) instead of EEXIST. Fails with the id-only name.
#[test]
fn a_reused_id_never_collides_with_a_veth_still_dying() {
    require_root!();
    let ctx = Ctx::new("nb-reuse");
    let ns = TestNetns::new("nbreuse");
    let id = ctx.id("c");
    let c = config(&ctx, "sleep 30");
    let created = create(&ns, &ctx, &id, &c, &["--network", "bridge"]);
    assert_ok(&created, "create");
    let st = ns.cuddy(&ctx, &["state", &id]);
    assert_ok(&st, "state");
    let v: Value = serde_json::from_slice(&st.stdout).expect("state JSON");
    let pid = v["pid"].as_i64().expect("pid");
    // An outside reference, as a bind mount made by hand would be.
    let hold = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("open the netns");
    delete(&ns, &ctx, &id);
    let old = ns.links();
    assert_eq!(old.len(), 2, "the held namespace keeps its pair: {old:?}");
    let again = create(&ns, &ctx, &id, &c, &["--network", "bridge"]);
    assert_ok(&again, "create of the same id while the old veth lives");
    let both = ns.links();
    assert_eq!(both.len(), 3, "bridge, old and new host ends: {both:?}");
    assert!(
        both.iter().all(|l| l == "cuddy0" || l.starts_with("vc")),
        "{both:?}"
    );
    delete(&ns, &ctx, &id);
    drop(hold);
    assert_clean(&ns, &ctx, &[&id]);
}
