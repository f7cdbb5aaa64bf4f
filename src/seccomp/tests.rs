//! Unit tests: normalisation, the cache key, the ENOSYS stub.

use oci_spec::runtime::LinuxSeccomp;

use super::profile::{Action, FLAG_LOG, FLAG_NEW_LISTENER, encode, normalise};
use super::stub::enosys_stub;
use super::{cache, compile_profile};

fn parse(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

#[test]
fn errno_defaults_and_refusals() {
    // config-linux.md "Seccomp": errnoRet defaults to EPERM...
    let p = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    assert_eq!(p.default, Action::Errno(libc::EPERM as u32));
    assert_eq!(p.rules[0].action, Action::Errno(libc::EPERM as u32));
    // ...and "when the action doesn't support an errno, the runtime MUST
    // print and error and fail".
    let e = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 5}]
    })))
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.syscalls[0].errnoRet");
    let e = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 3
    })))
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.defaultErrnoRet");
    let e = normalise(&parse(
        serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
    ))
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.defaultAction");
    let e = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.listenerPath");
    let e = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.syscalls[0].args[0].index");
}

#[test]
fn same_argument_twice_is_or_else_and() {
    let p = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    let conds: Vec<usize> = p.rules.iter().map(|r| r.conds.len()).collect();
    assert_eq!(conds, [1, 1, 2]);
}

#[test]
fn flags_and_listener() {
    let p = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC",
                  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    })))
    .unwrap();
    // TSYNC: nothing to synchronise; WAIT_KILLABLE_RECV: only with a listener.
    assert_eq!(p.flags, FLAG_LOG);
    let p = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    assert_eq!(p.flags, FLAG_NEW_LISTENER);
}

fn key_of(v: serde_json::Value) -> Vec<u8> {
    cache::key(&normalise(&parse(v)).unwrap())
}

#[test]
fn key_covers_every_errno_flag_and_arch() {
    let base = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let k = key_of(base.clone());
    assert_eq!(k, key_of(base.clone()));
    let mut v = base.clone();
    v["syscalls"][0]["errnoRet"] = 2.into(); // crun's key misses this one
    assert_ne!(k, key_of(v));
    let mut v = base.clone();
    v["defaultErrnoRet"] = 38.into();
    assert_ne!(k, key_of(v));
    let mut v = base.clone();
    v["flags"] = serde_json::json!(["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
    assert_ne!(k, key_of(v));
    let mut v = base.clone();
    v["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
    assert_ne!(k, key_of(v));
    // Length prefixes: moving a character between two names changes the key.
    let mut v = base.clone();
    v["syscalls"][0]["names"] = serde_json::json!(["mkdirr", "mdir"]);
    assert_ne!(k, key_of(v));
    // Normalised: listing the native architecture changes nothing.
    let mut v = base.clone();
    v["architectures"] = serde_json::json!([]);
    assert_eq!(k, key_of(v));
    let mut enc = Vec::new();
    encode(&normalise(&parse(base)).unwrap(), &mut enc);
    assert!(k.ends_with(&enc));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn stub_returns_enosys_above_the_highest_named_syscall() {
    let p = normalise(&parse(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read", "write", "openat", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    let stub = enosys_stub(&p);
    // x86-64 (openat = 257) and i386 (openat = 295) blocks; x32 inside x86-64's.
    let ks: Vec<u32> = stub.iter().map(|i| i.k).collect();
    assert!(ks.contains(&0xc000_003e) && ks.contains(&0x4000_0003));
    assert!(ks.contains(&257) && ks.contains(&295));
    assert!(ks.contains(&0x4000_0000), "x32 bit test");
    assert!(ks.contains(&(0x4000_0000 | 257)), "x32 max: {ks:x?}");
    assert_eq!(stub.last().unwrap().k, 0x0005_0000 | libc::ENOSYS as u32);
    // An allow-like default gets no stub.
    let allow = normalise(&parse(serde_json::json!({"defaultAction": "SCMP_ACT_LOG",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]})))
    .unwrap();
    assert!(enosys_stub(&allow).is_empty());
    // The whole program is well-formed and starts with the stub.
    let prog = compile_profile(&p).unwrap();
    assert_eq!(prog[0].k, stub[0].k);
    assert!(super::program::well_formed(&prog));
}

#[test]
fn podman_profile_compiles() {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seccomp-podman.json"
    ))
    .unwrap();
    let s: LinuxSeccomp = serde_json::from_slice(&text).unwrap();
    let p = normalise(&s).unwrap();
    assert!(p.rules.len() > 400);
    let prog = compile_profile(&p).unwrap();
    assert!(prog.len() > 100 && prog.len() < 4096);
}

#[test]
fn agent_connect_is_bounded() {
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen};
    use std::time::Duration;
    // An agent that never accepts, with a backlog of 0: the first connect
    // queues, the next finds the queue full. A blocking connect(2) would
    // wait there for ever; the runtime's gives up after its timeout.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("agent.sock");
    let s = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&s),
        &UnixAddr::new(&path).unwrap(),
    )
    .unwrap();
    listen(&s, Backlog::new(0).unwrap()).unwrap();
    let t = Duration::from_millis(300);
    let mut held = Vec::new();
    let err = loop {
        match super::notify::connect(&path, t) {
            Ok(c) => held.push(c),
            Err(e) => break e,
        }
        assert!(held.len() < 8, "the backlog never filled");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    // No agent there: a clear error, no retry.
    let e = super::notify::connect(&d.path().join("none.sock"), t).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}
