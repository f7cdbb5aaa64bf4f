//! Unit tests of the nft batch generation (no nft run).

use super::*;

fn pm(s: &str) -> PortMapping {
    s.parse().unwrap()
}

fn published<'a>(ports: &'a [PortMapping], v6: bool) -> Published<'a> {
    Published {
        chain: "c_x",
        v4: Some("10.77.0.5".parse().unwrap()),
        v6: v6.then(|| "fd77::5".parse().unwrap()),
        ports,
    }
}

#[test]
fn chain_names_are_nft_identifiers() {
    let r = Path::new("/run/cuddy");
    let p = root_prefix(r);
    assert_eq!(p.len(), 8);
    assert_eq!(chain_name(r, "web-1_a"), format!("{p}web-1_a"));
    let h = chain_name(r, "a.b");
    assert!(h.starts_with(&format!("{p}h")) && h.len() == 41, "{h}");
    assert_eq!(chain_name(r, &"x".repeat(65)).len(), 41);
    assert_ne!(root_prefix(Path::new("/run/other")), p);
}

#[test]
fn any_address_publishes_each_family_the_container_has() {
    let ports = [pm("8080:80")];
    let e = elements(&published(&ports, true)).unwrap();
    let keys: Vec<_> = e.iter().map(|e| (e.map, e.key.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("pub_any", "ipv4 . tcp . 8080"),
            ("pub_any", "ipv6 . tcp . 8080")
        ]
    );
    assert_eq!(
        e[1].rule,
        "meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd77::5]:80"
    );
    let e = elements(&published(&ports, false)).unwrap();
    assert_eq!(e.len(), 1);
}

#[test]
fn a_host_address_keys_its_own_map() {
    let ports = [pm("127.0.0.1:53:5353/udp"), pm("[fd00::1]:80:80")];
    let e = elements(&published(&ports, true)).unwrap();
    assert_eq!(e[0].map, "pub_v4");
    assert_eq!(e[0].key, "127.0.0.1 . udp . 53");
    assert_eq!(
        e[0].rule,
        "ip daddr 127.0.0.1 udp dport 53 dnat ip to 10.77.0.5:5353"
    );
    assert_eq!(e[1].map, "pub_v6");
    assert_eq!(e[1].index, 1);
}

#[test]
fn bad_host_addresses_and_duplicates_are_refused() {
    for (p, v6, want) in [
        ("[::1]:80:80", true, "route_localnet"),
        ("[fd00::1]:80:80", false, "no IPv6 address"),
        ("224.0.0.1:80:80", true, "not a unicast"),
        ("255.255.255.255:80:80", true, "not a unicast"),
    ] {
        let ports = [pm(p)];
        let err = elements(&published(&ports, v6)).unwrap_err().to_string();
        assert!(
            err.contains(want) && err.contains("--publish"),
            "{p}: {err}"
        );
    }
    let ports = [pm("8080:80"), pm("0.0.0.0:8080:81")];
    let err = elements(&published(&ports, false)).unwrap_err().to_string();
    assert!(err.contains("same host port"), "{err}");
    // Another protocol or host address is another key.
    let ports = [pm("8080:80"), pm("8080:80/udp"), pm("10.0.0.1:8080:80")];
    assert_eq!(elements(&published(&ports, false)).unwrap().len(), 3);
}

#[test]
fn the_batch_names_the_line_of_each_create() {
    let ports = [pm("8080:80"), pm("9090:90/udp")];
    let p = published(&ports, false);
    let els = elements(&p).unwrap();
    let mut b = Batch::default();
    b.base();
    b.bridge(&BridgeNat {
        bridge: "cuddy0",
        subnets: &[("10.77.0.0".parse().unwrap(), 16)],
    });
    b.container(p.chain, &els);
    let lines: Vec<&str> = b.text().lines().collect();
    let (n, i) = b.creates[1];
    assert_eq!(i, 1);
    assert_eq!(
        lines[n - 1],
        "create element inet cuddy pub_any { ipv4 . udp . 9090 : jump c_x }"
    );
    let stderr = format!(
        "/dev/stdin:{n}:37-53: Error: Could not process rule: File exists\ncreate element ..."
    );
    let err = taken(&b, &ports, &stderr).unwrap().to_string();
    assert!(
        err.contains("9090:90/udp") && err.contains("already published"),
        "{err}"
    );
}

#[test]
fn container_chains_are_read_from_the_table() {
    let text = "table inet cuddy {\n\tchain prerouting {\n\t}\n\tchain c_web {\n\t\tmeta nfproto ipv4 tcp dport 80 dnat ip to 10.77.0.2:80\n\t}\n\tchain c_habc {\n\t}\n}\n";
    assert_eq!(container_chains(text, "c_"), ["c_web", "c_habc"]);
    assert!(container_chains(text, "c0_").is_empty());
}

#[test]
fn keys_are_read_back_by_verdict() {
    let text = "table inet cuddy {\n\tmap pub_v6 {\n\t\ttype ipv6_addr . inet_proto . inet_service : verdict\n\t\telements = { fd00::1 . tcp . 80 : jump c_a,\n\t\t\t     fd00::2 . udp . 53 : jump c_b }\n\t}\n}\n";
    assert_eq!(elements_of(text, "c_a"), ["fd00::1 . tcp . 80"]);
    assert_eq!(elements_of(text, "c_b"), ["fd00::2 . udp . 53"]);
    assert!(elements_of(text, "c_c").is_empty());
}
