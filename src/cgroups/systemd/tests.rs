//! Tests of the systemd driver's building blocks: the marshalling against
//! byte strings worked out by hand from the D-Bus specification, the unit
//! naming and properties (runc's rules), and the client against a real
//! `dbus-daemon` started privately, with a peer owning `org.freedesktop.systemd1`
//! that answers as systemd does (the daemon checks every message we send).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::dbus::{Connection, DbusError, Kind, Message, frame_len, socket_path};
use super::unit::{self, Scope};
use super::wire::{Decoder, Encoder, Value, split_first};
use super::{Manager, SystemdError, parse_version};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(v: &Value) -> Vec<u8> {
    let mut e = Encoder::default();
    e.put(v).unwrap();
    e.buf
}

#[test]
fn hello_message_bytes() {
    let mut m = Message::call(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "Hello",
        Vec::new(),
    );
    m.serial = 1;
    // 'l', METHOD_CALL, flags 0, version 1, body 0, serial 1, fields 109 bytes;
    // each field a struct (8-aligned): code, signature, value.
    let want = [
        "6c010001",
        "00000000",
        "01000000",
        "6d000000",
        // PATH (1): o "/org/freedesktop/DBus" (21 bytes), NUL, pad to 8
        "01016f00",
        "15000000",
        &hex(b"/org/freedesktop/DBus"),
        "00",
        "0000",
        // INTERFACE (2): s "org.freedesktop.DBus" (20 bytes), NUL, pad
        "02017300",
        "14000000",
        &hex(b"org.freedesktop.DBus"),
        "00",
        "000000",
        // MEMBER (3): s "Hello", NUL, pad
        "03017300",
        "05000000",
        &hex(b"Hello"),
        "00",
        "0000",
        // DESTINATION (6), then the header pads to 128 (no body)
        "06017300",
        "14000000",
        &hex(b"org.freedesktop.DBus"),
        "00",
        "000000",
    ]
    .concat();
    let got = m.encode().unwrap();
    assert_eq!(got.len(), 128);
    assert_eq!(hex(&got), want);
    let head: [u8; 16] = got[..16].try_into().unwrap();
    assert_eq!(frame_len(&head), 128);
    assert_eq!(Message::decode(&got).unwrap(), m);
}

#[test]
fn property_array_bytes() {
    // a(sv) [("Delegate", <true>)]: length 20, pad to 8, s, g "b", b.
    let delegate = Value::Array(
        "(sv)".into(),
        vec![unit::prop("Delegate", Value::Bool(true))],
    );
    let want = [
        "14000000",
        "00000000",
        "08000000",
        &hex(b"Delegate"),
        "00",
        "016200",
        "01000000",
    ]
    .concat();
    assert_eq!(hex(&encode(&delegate)), want);
    // a(sv) [("PIDs", <[42]>)]: the au is 4-aligned after its signature.
    let pids = Value::Array(
        "(sv)".into(),
        vec![unit::prop(
            "PIDs",
            Value::Array("u".into(), vec![Value::U32(42)]),
        )],
    );
    let want = [
        "18000000",
        "00000000",
        "04000000",
        &hex(b"PIDs"),
        "00",
        "02617500",
        "000000",
        "04000000",
        "2a000000",
    ]
    .concat();
    assert_eq!(hex(&encode(&pids)), want);
    // An empty array of structs still pads to 8: a(sa(sv)) [] after a string.
    let mut e = Encoder::default();
    e.put(&Value::Str("x".into())).unwrap();
    e.put(&Value::Array("(sa(sv))".into(), Vec::new())).unwrap();
    // "x": len, byte, NUL, pad; the length at 8; the elements would start at 16.
    assert_eq!(hex(&e.buf), "01000000780000000000000000000000");
    // u64 is 8-aligned.
    let mut e = Encoder::default();
    e.put(&Value::Byte(1)).unwrap();
    e.put(&Value::U64(u64::MAX)).unwrap();
    assert_eq!(hex(&e.buf), "0100000000000000ffffffffffffffff");
}

#[test]
fn decode_round_trip_and_errors() {
    let body = vec![
        Value::Str("docker-1.scope".into()),
        Value::Str("replace".into()),
        Value::Array(
            "(sv)".into(),
            vec![
                unit::prop("MemoryMax", Value::U64(1 << 30)),
                unit::prop(
                    "AllowedCPUs",
                    Value::Array("y".into(), vec![Value::Byte(5)]),
                ),
            ],
        ),
        Value::Array("(sa(sv))".into(), Vec::new()),
    ];
    let sig: String = body.iter().map(Value::signature).collect();
    assert_eq!(sig, "ssa(sv)a(sa(sv))");
    let mut e = Encoder::default();
    for v in &body {
        e.put(v).unwrap();
    }
    assert_eq!(Decoder::new(&e.buf).get_all(&sig).unwrap(), body);
    // Truncated: an error naming the offset, no panic.
    for cut in 0..e.buf.len() {
        assert!(
            Decoder::new(&e.buf[..cut]).get_all(&sig).is_err(),
            "cut {cut}"
        );
    }
    // A boolean must be 0 or 1.
    assert!(Decoder::new(&[2, 0, 0, 0]).get("b").is_err());
    // An element of the wrong type is refused when encoding.
    let bad = Value::Array("u".into(), vec![Value::Str("x".into())]);
    assert!(Encoder::default().put(&bad).is_err());
    assert_eq!(split_first("a(sv)s").unwrap(), ("a(sv)", "s"));
    assert_eq!(split_first("a{sv}").unwrap(), ("a{sv}", ""));
    assert!(split_first("(s").is_err());
    assert!(split_first("a").is_err());
    assert!(split_first("d").is_err());
    assert_eq!(split_first("ah").unwrap(), ("ah", ""));
}

#[test]
fn addresses_and_versions() {
    assert_eq!(
        socket_path("unix:path=/run/dbus/system_bus_socket").unwrap(),
        "/run/dbus/system_bus_socket"
    );
    assert_eq!(
        socket_path("tcp:host=x;unix:abstract=/tmp/d,guid=1").unwrap(),
        "@/tmp/d"
    );
    let e = socket_path("tcp:host=x").unwrap_err().to_string();
    assert!(e.contains("tcp:host=x"), "{e}");
    assert_eq!(parse_version("252.30-1~deb12u2"), Some(252));
    assert_eq!(parse_version("v255"), Some(255));
    assert_eq!(parse_version("x"), None);
}

// runc's specconv: cgroupsPath "slice:prefix:name" (config-linux.md#cgroups-path).
#[test]
fn scope_names() {
    let s = Scope::parse(Some("system.slice:docker:4f2a"), "4f2a").unwrap();
    assert_eq!(s.slice, "system.slice");
    assert_eq!(s.unit, "docker-4f2a.scope");
    assert_eq!(s.cgroup_path().unwrap(), "/system.slice/docker-4f2a.scope");
    // podman: "machine.slice:libpod:ID"; an empty slice is system.slice.
    let s = Scope::parse(Some(":libpod:abc"), "abc").unwrap();
    assert_eq!(
        (s.slice.as_str(), s.unit.as_str()),
        ("system.slice", "libpod-abc.scope")
    );
    let s = Scope::parse(None, "c1").unwrap();
    assert_eq!(s.unit, "cuddy-c1.scope");
    let s = Scope::parse(Some("-.slice::c1"), "c1").unwrap();
    assert_eq!(s.cgroup_path().unwrap(), "/c1.scope");
    let s = Scope::parse(Some("a-b.slice:p:c.slice"), "c").unwrap();
    assert_eq!(s.cgroup_path().unwrap(), "/a.slice/a-b.slice/c.slice");
    for bad in [
        "/cuddy/c1",
        "a.slice:p",
        "a.slice:p:",
        "x:p:n",
        "a.slice:p:../n",
        "a--b.slice:p:n",
    ] {
        let e = Scope::parse(Some(bad), "n")
            .and_then(|s| s.cgroup_path().map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.cgroupsPath"), "{bad}: {e}");
    }
}

// config-linux.md#cpu, #memory, #pids: the properties runc sets.
#[test]
fn resource_properties_as_runc() {
    assert_eq!(unit::quota_per_sec_usec(50_000, 100_000), 500_000);
    // 1234 µs per 100 ms = 12340 µs/s, rounded up to 20 ms.
    assert_eq!(unit::quota_per_sec_usec(1234, 100_000), 20_000);
    assert_eq!(unit::quota_per_sec_usec(-1, 100_000), u64::MAX);
    assert_eq!(unit::cpu_set_bits("f", "0-2,9").unwrap(), vec![0b111, 0b10]);
    assert!(unit::cpu_set_bits("linux.resources.cpu.cpus", "3-1").is_err());
    // Docker 20.10: docker run -m 512m --cpu-shares 512 --cpus 1.5 --pids-limit 100 --cpuset-cpus 0
    let r: oci_spec::runtime::LinuxResources = serde_json::from_str(
        r#"{"memory":{"limit":536870912,"swap":1073741824},
            "cpu":{"shares":512,"quota":150000,"period":100000,"cpus":"0","mems":""},
            "pids":{"limit":100},"blockIO":{"weight":500}}"#,
    )
    .unwrap();
    let names = |props: &[Value]| -> Vec<(String, Value)> {
        props
            .iter()
            .map(|p| match p {
                Value::Struct(f) => match (&f[0], &f[1]) {
                    (Value::Str(n), Value::Variant(v)) => (n.clone(), (**v).clone()),
                    _ => panic!("{p:?}"),
                },
                _ => panic!("{p:?}"),
            })
            .collect()
    };
    let v2 = names(&unit::resource_properties(&r, true, 252, false).unwrap());
    let want = [
        ("MemoryMax", Value::U64(536_870_912)),
        ("MemorySwapMax", Value::U64(536_870_912)),
        (
            "CPUWeight",
            Value::U64(crate::cgroups::shares_to_weight(512)),
        ),
        ("CPUQuotaPeriodUSec", Value::U64(100_000)),
        ("CPUQuotaPerSecUSec", Value::U64(1_500_000)),
        (
            "AllowedCPUs",
            Value::Array("y".into(), vec![Value::Byte(1)]),
        ),
        ("TasksMax", Value::U64(100)),
        (
            "IOWeight",
            Value::U64(crate::cgroups::blkio_weight_to_io_weight(500)),
        ),
    ];
    let want: Vec<(String, Value)> = want.into_iter().map(|(n, v)| (n.into(), v)).collect();
    assert_eq!(v2, want);
    let v1 = names(&unit::resource_properties(&r, false, 241, false).unwrap());
    let v1_names: Vec<&str> = v1.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        v1_names,
        [
            "MemoryLimit",
            "CPUShares",
            "CPUQuotaPerSecUSec",
            "TasksMax",
            "BlockIOWeight"
        ]
    );
    // Docker's `blockIO.weight: 0` and `cpu.shares: 0` mean "not set":
    // no property (systemd refuses BlockIOWeight=0 as out of range).
    for v2 in [true, false] {
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_str(r#"{"blockIO":{"weight":0},"cpu":{"shares":0}}"#).unwrap();
        assert_eq!(
            names(&unit::resource_properties(&r, v2, 252, false).unwrap()),
            vec![]
        );
    }
    // pids.limit -1 (podman --pids-limit -1) is infinity.
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"pids":{"limit":-1}}"#).unwrap();
    let p = names(&unit::resource_properties(&r, true, 252, false).unwrap());
    assert_eq!(p, vec![("TasksMax".to_string(), Value::U64(u64::MAX))]);
}

/// A `dbus-daemon` on a private socket, killed (by PID) on drop.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn private_bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bus");
    // Debian's session.conf: EXTERNAL auth, anyone may own any name.
    let mut child = Command::new("dbus-daemon")
        .arg("--session")
        .arg(format!("--address=unix:path={}", sock.display()))
        .args(["--nofork", "--nopidfile", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (Debian package dbus) is needed by these tests");
    // The address is printed once the daemon listens.
    let mut line = String::new();
    let out = child.stdout.take().unwrap();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("unix:path="),
        "dbus-daemon printed {line:?}"
    );
    Bus {
        child,
        address: line.trim().to_string(),
        _dir: dir,
    }
}

#[test]
fn real_bus_hello_match_and_errors() {
    let bus = private_bus();
    let mut c = Connection::open(&bus.address).unwrap();
    assert!(c.unique_name.starts_with(":1."), "{}", c.unique_name);
    let dbus = |member: &str, body| {
        Message::call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            member,
            body,
        )
    };
    let names = c.call(dbus("ListNames", Vec::new())).unwrap();
    let Some(Value::Array(_, names)) = names.body.first() else {
        panic!("{names:?}");
    };
    assert!(names.contains(&Value::Str(c.unique_name.clone())));
    // Our own broadcast comes back through a match rule.
    let rule = "type='signal',interface='org.example.T',member='Ping'";
    c.call(dbus("AddMatch", vec![Value::Str(rule.into())]))
        .unwrap();
    let body = vec![Value::U32(7), Value::Path("/j/7".into())];
    c.send(Message::signal("/t", "org.example.T", "Ping", body.clone()))
        .unwrap();
    let got = c
        .wait_signal("Ping", Duration::from_secs(10), |m| {
            m.member.as_deref() == Some("Ping")
        })
        .unwrap();
    assert_eq!((got.kind, got.body), (Kind::Signal, body));
    // A bad match rule: the D-Bus error name is in the message.
    let e = c
        .call(dbus("AddMatch", vec![Value::Str("type='nonsense'".into())]))
        .unwrap_err();
    assert!(
        matches!(&e, DbusError::Remote { name, .. } if name == "org.freedesktop.DBus.Error.MatchRuleInvalid"),
        "{e}"
    );
    // No systemd on this bus (and no activation: NO_AUTO_START): the error
    // names the operation and the D-Bus error.
    let e = Manager::on(c).unwrap_err().to_string();
    assert!(
        e.contains("Version") && e.contains("org.freedesktop.DBus.Error.NameHasNoOwner"),
        "{e}"
    );
}

/// A peer that owns `org.freedesktop.systemd1` on `address` and answers as
/// systemd 255 does; it returns every call it received (after `StopUnit`).
fn fake_systemd(
    address: String,
    job_result: &'static str,
) -> std::thread::JoinHandle<Vec<Message>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut c = Connection::open(&address).unwrap();
        let own = Message::call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            vec![Value::Str(super::SYSTEMD.into()), Value::U32(4)],
        );
        assert_eq!(c.call(own).unwrap().body, vec![Value::U32(1)]);
        ready_tx.send(()).unwrap();
        let mut seen = Vec::new();
        let mut starts = 0;
        loop {
            let m = c.next_message(Duration::from_secs(20)).unwrap();
            if m.kind != Kind::MethodCall {
                continue;
            }
            let member = m.member.clone().unwrap_or_default();
            let reply = match member.as_str() {
                "Get" => Message::reply_to(
                    &m,
                    vec![Value::Variant(Box::new(Value::Str("255.4-1".into())))],
                ),
                "StartTransientUnit" if starts == 0 => {
                    starts += 1;
                    Message::error_to(
                        &m,
                        "org.freedesktop.systemd1.UnitExists",
                        "Unit docker-1.scope already exists.",
                    )
                }
                "StartTransientUnit" => {
                    let job = "/org/freedesktop/systemd1/job/7";
                    c.send(Message::reply_to(&m, vec![Value::Path(job.into())]))
                        .unwrap();
                    let body = vec![
                        Value::U32(7),
                        Value::Path(job.into()),
                        m.body[0].clone(),
                        Value::Str(job_result.into()),
                    ];
                    Message::signal(
                        "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager",
                        "JobRemoved",
                        body,
                    )
                }
                "StopUnit" => Message::error_to(
                    &m,
                    "org.freedesktop.systemd1.NoSuchUnit",
                    "Unit docker-1.scope not loaded.",
                ),
                _ => Message::reply_to(&m, Vec::new()),
            };
            c.send(reply).unwrap();
            seen.push(m);
            if member == "StopUnit" {
                return seen;
            }
        }
    });
    ready_rx.recv().unwrap();
    h
}

#[test]
fn real_bus_transient_scope_with_retry() {
    let bus = private_bus();
    let peer = fake_systemd(bus.address.clone(), "done");
    let mut mgr = Manager::on(Connection::open(&bus.address).unwrap()).unwrap();
    assert_eq!(mgr.version, 255);
    let scope = Scope::parse(Some("system.slice:docker:1"), "1").unwrap();
    let props = unit::base_properties(&scope, 4242, "cuddy container 1");
    mgr.start_transient_unit(&scope.unit, props.clone())
        .unwrap();
    mgr.stop_unit(&scope.unit).unwrap();
    let seen = peer.join().unwrap();
    let members: Vec<&str> = seen.iter().filter_map(|m| m.member.as_deref()).collect();
    assert_eq!(
        members,
        [
            "Get",
            "Subscribe",
            "StartTransientUnit",
            "ResetFailedUnit",
            "StartTransientUnit",
            "StopUnit"
        ]
    );
    // The call systemd receives, as dbus-daemon relayed it.
    let start = &seen[4];
    assert_eq!(start.signature(), "ssa(sv)a(sa(sv))");
    assert_eq!(start.body[0], Value::Str("docker-1.scope".into()));
    let Value::Array(_, got) = &start.body[2] else {
        panic!()
    };
    assert_eq!(got, &props);
    assert!(props.contains(&unit::prop(
        "PIDs",
        Value::Array("u".into(), vec![Value::U32(4242)])
    )));
    assert!(props.contains(&unit::prop("Delegate", Value::Bool(true))));
    assert!(props.contains(&unit::prop("DefaultDependencies", Value::Bool(false))));
}

#[test]
fn real_bus_failed_job_names_unit_and_result() {
    let bus = private_bus();
    let peer = fake_systemd(bus.address.clone(), "failed");
    let mut mgr = Manager::on(Connection::open(&bus.address).unwrap()).unwrap();
    let e = mgr
        .start_transient_unit("docker-1.scope", Vec::new())
        .unwrap_err();
    assert!(
        matches!(&e, SystemdError::Job { result, .. } if result == "failed"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("docker-1.scope") && msg.contains("StartTransientUnit"),
        "{msg}"
    );
    mgr.stop_unit("docker-1.scope").unwrap();
    peer.join().unwrap();
}

// config-linux.md#allowed-device-list: the rules as DevicePolicy/DeviceAllow.
#[test]
fn device_properties_as_cgroupfs() {
    let proc_devices =
        "Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n\nBlock devices:\n  8 sd\n";
    // Docker 20.10's default rules (a fragment of its config.json).
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
        r#"[{"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
            {"allow":true,"type":"c","access":"m"},
            {"allow":true,"type":"b","access":"m"},
            {"allow":true,"type":"c","major":136,"access":"rwm"},
            {"allow":true,"type":"b","major":8,"minor":0,"access":"r"},
            {"allow":false,"type":"b","major":8,"minor":0,"access":"rwm"}]"#,
    )
    .unwrap();
    let props = unit::device_properties(&rules, proc_devices).unwrap();
    let allow = |l: &[(&str, &str)]| {
        let v = l
            .iter()
            .map(|(p, a)| Value::Struct(vec![Value::Str((*p).into()), Value::Str((*a).into())]))
            .collect();
        unit::prop("DeviceAllow", Value::Array("(ss)".into(), v))
    };
    assert_eq!(
        props,
        vec![
            unit::prop("DevicePolicy", Value::Str("strict".into())),
            allow(&[
                ("/dev/char/1:3", "rwm"),
                ("char-*", "m"),
                ("block-*", "m"),
                ("char-pts", "rwm")
            ]),
        ]
    );
    // podman --privileged: allow all.
    let all: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_str(r#"[{"allow":true,"access":"rwm"}]"#).unwrap();
    let props = unit::device_properties(&all, proc_devices).unwrap();
    assert_eq!(
        props[0],
        unit::prop("DevicePolicy", Value::Str("auto".into()))
    );
    assert_eq!(props[1], allow(&[]));
    // "All but one" cannot be said to systemd: refused, naming the rule.
    let bad: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
        r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":3}]"#,
    )
    .unwrap();
    let e = unit::device_properties(&bad, proc_devices)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linux.resources.devices[1]") && e.contains("/dev/char/1:3"),
        "{e}"
    );
}

// systemd >= 255: the init as a pidfd (PIDFDs, `ah`), passed as SCM_RIGHTS;
// dbus-daemon checks that the UNIX_FDS count matches what arrived.
#[test]
fn real_bus_passes_a_pidfd() {
    use std::os::fd::AsRawFd;
    let bus = private_bus();
    let peer = fake_systemd(bus.address.clone(), "done");
    let mut mgr = Manager::on(Connection::open(&bus.address).unwrap()).unwrap();
    assert!(mgr.can_pass_fds(), "dbus-daemon agrees to pass fds");
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let pidfd = crate::process::clone::pidfd_open(pid).unwrap();
    let pidfds = unit::prop("PIDFDs", Value::Array("h".into(), vec![Value::UnixFd(0)]));
    mgr.start_transient_unit_with_fds("docker-1.scope", vec![pidfds.clone()], &[pidfd.as_raw_fd()])
        .unwrap();
    mgr.stop_unit("docker-1.scope").unwrap();
    let seen = peer.join().unwrap();
    let start = &seen[4];
    assert_eq!(start.member.as_deref(), Some("StartTransientUnit"));
    assert_eq!(start.unix_fds, 1);
    assert_eq!(start.body[2], Value::Array("(sv)".into(), vec![pidfds]));
    let _ = child.kill();
    let _ = child.wait();
}
