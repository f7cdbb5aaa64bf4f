//! Tests against a fake cgroupfs in a tempdir (no root needed), and root-only
//! tests against this machine's real cgroup filesystem.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::fsutil::test_log;
use super::*;

/// A fake cgroup filesystem: plain directories and files under a tempdir.
pub(super) struct Fake {
    _tmp: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) roots: Roots,
}

const V1_HIERS: &[(&str, &str)] = &[
    ("cpu", "cpu"),
    ("cpuacct", "cpuacct"),
    ("cpuset", "cpuset"),
    ("memory", "memory"),
    ("devices", "devices"),
    ("freezer", "freezer"),
    ("blkio", "blkio"),
    ("pids", "pids"),
    ("systemd", "name=systemd"),
];

pub(super) fn touch(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

/// Remove the regular files a test put into the fake, so rmdir works as on cgroupfs.
pub(super) fn strip_files(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                strip_files(&p);
            } else {
                fs::remove_file(&p).unwrap();
            }
        }
    }
}

impl Fake {
    fn new(v1: bool, v2: bool, self_cgroup: &str) -> Fake {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cg");
        fs::create_dir_all(&root).unwrap();
        let mut mi = String::from("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
        mi.push_str(&format!(
            "31 23 0:28 / {} rw - tmpfs tmpfs rw\n",
            root.display()
        ));
        if v1 {
            for (i, (dir, opt)) in V1_HIERS.iter().enumerate() {
                let mp = root.join(dir);
                fs::create_dir_all(&mp).unwrap();
                mi.push_str(&format!(
                    "{} 31 0:{} / {} rw,relatime - cgroup cgroup rw,{opt}\n",
                    40 + i,
                    40 + i,
                    mp.display()
                ));
            }
            touch(
                &root.join("cpuset"),
                &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")],
            );
        }
        if v2 {
            let mp = if v1 {
                root.join("unified")
            } else {
                root.clone()
            };
            touch(
                &mp,
                &[
                    (
                        "cgroup.controllers",
                        if v1 {
                            "hugetlb\n"
                        } else {
                            "cpuset cpu io memory hugetlb pids\n"
                        },
                    ),
                    ("cgroup.subtree_control", ""),
                ],
            );
            mi.push_str(&format!(
                "60 31 0:60 / {} rw,relatime - cgroup2 cgroup2 rw\n",
                mp.display()
            ));
        }
        // A cgroup mount outside the root must be ignored.
        mi.push_str("99 1 0:99 / /elsewhere/memory rw - cgroup cgroup rw,memory\n");
        fs::write(tmp.path().join("mountinfo"), mi).unwrap();
        fs::write(tmp.path().join("self_cgroup"), self_cgroup).unwrap();
        let roots = Roots {
            cgroup_root: root.clone(),
            mountinfo: tmp.path().join("mountinfo"),
            self_cgroup: tmp.path().join("self_cgroup"),
            parents: Some(tmp.path().join("parents")),
        };
        Fake {
            _tmp: tmp,
            root,
            roots,
        }
    }

    pub(super) fn hybrid() -> Fake {
        Fake::new(
            true,
            true,
            "9:name=systemd:/\n8:pids:/\n4:memory:/a/b\n3:cpuset:/\n1:cpu:/\n0::/u\n",
        )
    }

    pub(super) fn v2() -> Fake {
        Fake::new(false, true, "0::/user.slice/me\n")
    }
}

pub(super) fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

#[test]
fn create_default_path_everywhere() {
    let f = Fake::hybrid();
    let cg = Cgroup::create(&f.roots, None, "c1").unwrap();
    assert_eq!(cg.kind(), CgroupKind::Hybrid);
    for (dir, _) in V1_HIERS {
        assert!(f.root.join(dir).join("cuddy/c1").is_dir(), "{dir}");
    }
    assert!(f.root.join("unified/cuddy/c1").is_dir());
    assert_eq!(cg.created_dirs().len(), 2 * (V1_HIERS.len() + 1));
    assert_eq!(cg.v1_dir("memory").unwrap(), f.root.join("memory/cuddy/c1"));
    assert_eq!(
        cg.v1_dir("name=systemd").unwrap(),
        f.root.join("systemd/cuddy/c1")
    );
    assert!(cg.describe().contains("/cuddy/c1"));
    // state.json round trip
    let j = serde_json::to_string(&cg).unwrap();
    let back: Cgroup = serde_json::from_str(&j).unwrap();
    assert_eq!(back, cg);
    assert!(
        cg.clone_into_fd().unwrap().is_none(),
        "no CLONE_INTO_CGROUP on hybrid"
    );
    back.destroy().unwrap();
    for (dir, _) in V1_HIERS {
        assert!(!f.root.join(dir).join("cuddy").exists(), "{dir}");
        assert!(f.root.join(dir).is_dir());
    }
    assert!(!f.root.join("unified/cuddy").exists());
    // idempotent
    back.destroy().unwrap();
}

#[test]
fn relative_and_absolute_paths() {
    let f = Fake::hybrid();
    fs::create_dir_all(f.root.join("memory/a/b")).unwrap();
    let cg = Cgroup::create(&f.roots, Some(Path::new("x/y")), "ignored").unwrap();
    // Relative to our own cgroup: memory at /a/b, cpu at /, v2 at /u.
    assert_eq!(cg.v1_dir("memory").unwrap(), f.root.join("memory/a/b/x/y"));
    assert_eq!(cg.v1_dir("cpu").unwrap(), f.root.join("cpu/x/y"));
    assert_eq!(cg.unified_dir().unwrap(), f.root.join("unified/u/x/y"));
    // a/b existed: not ours.
    assert!(!cg.created_dirs().contains(&f.root.join("memory/a/b")));
    assert!(cg.created_dirs().contains(&f.root.join("memory/a/b/x")));
    assert!(cg.created_dirs().contains(&f.root.join("unified/u")));
    cg.destroy().unwrap();
    assert!(f.root.join("memory/a/b").is_dir());
    assert!(!f.root.join("memory/a/b/x").exists());
    assert!(!f.root.join("unified/u").exists());

    let cg = Cgroup::create(&f.roots, Some(Path::new("/abs/c")), "ignored").unwrap();
    assert_eq!(cg.v1_dir("memory").unwrap(), f.root.join("memory/abs/c"));
    cg.destroy().unwrap();

    assert!(Cgroup::create(&f.roots, Some(Path::new("/a/../../etc")), "x").is_err());
    assert!(Cgroup::create(&f.roots, None, "../x").is_err());
}

/// config-linux.md#cgroups-path leaves a relative path to the runtime; on a
/// v2-only host cuddy follows runc's fs2 driver: from the parent of the
/// caller's cgroup (the caller's own one holds the caller), which is kept.
#[test]
fn relative_path_on_v2_starts_from_the_callers_parent_cgroup() {
    let f = Fake::v2();
    fs::create_dir_all(f.root.join("user.slice/me")).unwrap();
    let cg = Cgroup::create(&f.roots, Some(Path::new("x/y")), "ignored").unwrap();
    assert_eq!(cg.unified_dir().unwrap(), f.root.join("user.slice/x/y"));
    assert!(!cg.created_dirs().contains(&f.root.join("user.slice")));
    assert!(cg.created_dirs().contains(&f.root.join("user.slice/x")));
    cg.destroy().unwrap();
    assert!(f.root.join("user.slice/me").is_dir());
    assert!(!f.root.join("user.slice/x").exists());
}

#[test]
fn destroy_removes_only_ours() {
    let f = Fake::hybrid();
    // /cuddy and a sibling container exist already in the memory hierarchy.
    fs::create_dir_all(f.root.join("memory/cuddy/other")).unwrap();
    let a = Cgroup::create(&f.roots, None, "a").unwrap();
    assert!(!a.created_dirs().contains(&f.root.join("memory/cuddy")));
    assert!(a.created_dirs().contains(&f.root.join("cpu/cuddy")));
    // A second container appears under the /cuddy that `a` created in cpu.
    let b = Cgroup::create(&f.roots, None, "b").unwrap();
    assert!(!b.created_dirs().contains(&f.root.join("cpu/cuddy")));
    // The container made a sub-cgroup of its own: removed with it.
    fs::create_dir_all(f.root.join("cpu/cuddy/a/inner/deeper")).unwrap();
    a.destroy().unwrap();
    assert!(!f.root.join("cpu/cuddy/a").exists());
    assert!(f.root.join("cpu/cuddy/b").is_dir(), "b untouched");
    assert!(f.root.join("cpu/cuddy").is_dir(), "parent now shared: kept");
    assert!(f.root.join("memory/cuddy/other").is_dir());
    b.destroy().unwrap();
    assert!(!f.root.join("cpu/cuddy/b").exists());
    assert!(f.root.join("memory/cuddy/other").is_dir());
    // The last one out removes the parent `a` created (issue 11 item 6);
    // memory/cuddy, which cuddy did not create, stays.
    assert!(
        !f.root.join("cpu/cuddy").exists(),
        "shared parent left behind"
    );
    assert!(f.root.join("memory/cuddy").is_dir());
}

#[test]
fn shared_parent_removed_by_whoever_goes_last_in_every_hierarchy() {
    let f = Fake::hybrid();
    let p = Path::new("/shared/parent");
    let a = Cgroup::create(&f.roots, Some(&p.join("a")), "a").unwrap();
    let b = Cgroup::create(&f.roots, Some(&p.join("b")), "b").unwrap();
    // The creator goes first: the parents stay for b.
    a.destroy().unwrap();
    assert!(f.root.join("cpu/shared/parent/b").is_dir());
    b.destroy().unwrap();
    for h in ["cpu", "memory", "pids", "cpuset", "systemd", "unified"] {
        assert!(!f.root.join(h).join("shared").exists(), "{h}/shared left");
    }
    // Nothing left recorded.
    let reg = f.roots.parents.clone().unwrap();
    assert_eq!(fs::read_dir(reg).unwrap().count(), 0);
}

#[test]
fn existing_nonempty_cgroup_is_refused_and_nothing_left() {
    let f = Fake::hybrid();
    touch(
        &f.root.join("pids/cuddy/busy"),
        &[("cgroup.procs", "1234\n")],
    );
    let e = Cgroup::create(&f.roots, None, "busy").unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert!(!f.root.join("memory/cuddy").exists(), "our dirs cleaned up");
    assert!(
        f.root.join("pids/cuddy/busy/cgroup.procs").exists(),
        "theirs kept"
    );
    // An existing empty cgroup is joined, and not removed on destroy.
    touch(&f.root.join("pids/cuddy/idle"), &[("cgroup.procs", "")]);
    let cg = Cgroup::create(&f.roots, None, "idle").unwrap();
    cg.destroy().unwrap();
    assert!(f.root.join("pids/cuddy/idle").is_dir());
}

#[test]
fn cpuset_copied_from_parent() {
    let f = Fake::hybrid();
    let child = f.root.join("cpuset/kid");
    touch(&child, &[("cpuset.cpus", "\n"), ("cpuset.mems", "")]);
    v1::copy_cpuset_from_parent(&f.root.join("cpuset"), &child).unwrap();
    assert_eq!(
        fs::read_to_string(child.join("cpuset.cpus")).unwrap(),
        "0-1"
    );
    assert_eq!(fs::read_to_string(child.join("cpuset.mems")).unwrap(), "0");
    // Already set: left alone.
    fs::write(child.join("cpuset.cpus"), "1").unwrap();
    v1::copy_cpuset_from_parent(&f.root.join("cpuset"), &child).unwrap();
    assert_eq!(fs::read_to_string(child.join("cpuset.cpus")).unwrap(), "1");
}

#[test]
fn add_process_and_pids_and_freezer_v1() {
    let f = Fake::hybrid();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    for (dir, _) in V1_HIERS {
        touch(&f.root.join(dir).join("cuddy/c"), &[("cgroup.procs", "")]);
    }
    touch(&f.root.join("unified/cuddy/c"), &[("cgroup.procs", "")]);
    test_log::clear();
    cg.add_process(42).unwrap();
    assert_eq!(
        test_log::writes_to("cgroup.procs").len(),
        V1_HIERS.len() + 1
    );
    assert!(cg.add_process(0).is_err());
    let fz = f.root.join("freezer/cuddy/c");
    touch(
        &fz,
        &[("cgroup.procs", "7\n3\n"), ("freezer.state", "THAWED\n")],
    );
    touch(&fz.join("sub"), &[("cgroup.procs", "9\n")]);
    assert_eq!(cg.pids().unwrap(), vec![3, 7, 9]);
    assert!(!cg.is_frozen().unwrap());
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn v1_devices_rules_in_order_then_defaults() {
    let f = Fake::hybrid();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    let d = f.root.join("devices/cuddy/c");
    touch(&d, &[("devices.allow", ""), ("devices.deny", "")]);
    test_log::clear();
    cg.update(&res(r#"{"devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":10,"minor":229,"access":"rw"},
                       {"allow":false,"type":"b","major":8,"access":"w"}]}"#))
        .unwrap();
    assert_eq!(
        test_log::writes_to("devices.deny"),
        vec!["a *:* rwm", "b 8:* w"]
    );
    let allowed = test_log::writes_to("devices.allow");
    assert_eq!(allowed[0], "c 10:229 rw");
    assert!(allowed.contains(&"c 1:3 rwm".to_string()));
    assert_eq!(allowed.len(), 1 + default_allowed_devices().len());
    // apply() without device rules still sets the policy: deny-all + defaults.
    test_log::clear();
    cg.apply(&res(r#"{}"#)).unwrap();
    assert_eq!(test_log::writes_to("devices.deny"), vec!["a *:* rwm"]);
    assert_eq!(
        test_log::writes_to("devices.allow").len(),
        default_allowed_devices().len()
    );
    // An update without device rules leaves them alone.
    test_log::clear();
    cg.update(&res(r#"{}"#)).unwrap();
    assert!(test_log::writes_to("devices.deny").is_empty());
    // Allow rules for linux.devices entries.
    let devs: Vec<oci_spec::runtime::LinuxDevice> =
        serde_json::from_str(r#"[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]"#)
            .unwrap();
    let extra = allow_rules_for(&devs);
    assert_eq!(
        devices::v1_line(&extra[0]).unwrap().unwrap(),
        "c 10:229 rwm"
    );
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn v1_resources_written() {
    let f = Fake::hybrid();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    let mem = f.root.join("memory/cuddy/c");
    touch(
        &mem,
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", ""),
            ("memory.soft_limit_in_bytes", ""),
            ("memory.swappiness", ""),
            ("memory.oom_control", ""),
            ("memory.usage_in_bytes", "100\n"),
        ],
    );
    let cpu = f.root.join("cpu/cuddy/c");
    touch(
        &cpu,
        &[
            ("cpu.shares", ""),
            ("cpu.cfs_period_us", ""),
            ("cpu.cfs_quota_us", ""),
            ("cpu.cfs_burst_us", ""),
            ("cpu.idle", ""),
        ],
    );
    touch(
        &f.root.join("cpuset/cuddy/c"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    touch(&f.root.join("pids/cuddy/c"), &[("pids.max", "")]);
    let blk = f.root.join("blkio/cuddy/c");
    touch(
        &blk,
        &[
            ("blkio.weight", ""),
            ("blkio.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
        ],
    );
    test_log::clear();
    cg.update(&res(
        r#"{"memory":{"limit":1048576,"swap":2097152,"reservation":524288,"swappiness":10,
                      "disableOOMKiller":true,"kernel":1000},
            "cpu":{"shares":512,"quota":50000,"period":100000,"burst":1000,"idle":0,
                   "cpus":"0","mems":"0"},
            "pids":{"limit":77},
            "blockIO":{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":200}],
                       "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]}}"#,
    ))
    .unwrap();
    let rd = |p: &Path| fs::read_to_string(p).unwrap();
    assert_eq!(rd(&mem.join("memory.limit_in_bytes")), "1048576");
    assert_eq!(rd(&mem.join("memory.memsw.limit_in_bytes")), "2097152");
    // memsw grows beyond the current limit: written first.
    let order: Vec<String> = test_log::writes_to("memory.memsw.limit_in_bytes");
    assert_eq!(order, vec!["2097152"]);
    assert_eq!(rd(&mem.join("memory.soft_limit_in_bytes")), "524288");
    assert_eq!(rd(&mem.join("memory.swappiness")), "10");
    assert_eq!(rd(&mem.join("memory.oom_control")), "1");
    assert_eq!(rd(&cpu.join("cpu.shares")), "512");
    assert_eq!(rd(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(rd(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(rd(&cpu.join("cpu.cfs_burst_us")), "1000");
    assert_eq!(rd(&cpu.join("cpu.idle")), "0");
    assert_eq!(rd(&f.root.join("cpuset/cuddy/c/cpuset.cpus")), "0");
    assert_eq!(rd(&f.root.join("pids/cuddy/c/pids.max")), "77");
    assert_eq!(rd(&blk.join("blkio.weight")), "300");
    assert_eq!(rd(&blk.join("blkio.weight_device")), "8:0 200");
    assert_eq!(rd(&blk.join("blkio.throttle.read_bps_device")), "8:0 1000");

    // checkBeforeUpdate: usage 100 > new limit 50.
    let e = cg
        .update(&res(r#"{"memory":{"limit":50,"checkBeforeUpdate":true}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("memory.limit"), "{e}");
    // Bad swappiness.
    let e = cg
        .update(&res(r#"{"memory":{"swappiness":101}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("swappiness"), "{e}");
    // A file the host lacks: the error names the field and the file.
    let e = cg
        .update(&res(r#"{"cpu":{"realtimeRuntime":1000}}"#))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("linux.resources.cpu.realtimeRuntime") && msg.contains("cpu.rt_runtime_us"),
        "{msg}"
    );
    // Controllers not on this host.
    let e = cg
        .update(&res(r#"{"rdma":{"mlx5_1":{"hcaHandles":3}}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("rdma"), "{e}");
    let e = cg.update(&res(r#"{"network":{"classID":1}}"#)).unwrap_err();
    assert!(e.to_string().contains("net_cls"), "{e}");
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn hybrid_uses_unified_for_controllers_only_there() {
    let f = Fake::hybrid();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    touch(
        &f.root.join("unified/cuddy"),
        &[
            ("cgroup.controllers", "hugetlb\n"),
            ("cgroup.subtree_control", ""),
        ],
    );
    touch(&f.root.join("unified/cuddy/c"), &[("hugetlb.2MB.max", "")]);
    test_log::clear();
    cg.update(&res(
        r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
    ))
    .unwrap();
    assert_eq!(
        fs::read_to_string(f.root.join("unified/cuddy/c/hugetlb.2MB.max")).unwrap(),
        "4194304"
    );
    assert_eq!(
        test_log::writes_to("cgroup.subtree_control"),
        vec!["+hugetlb", "+hugetlb"]
    );
    let e = cg
        .update(&res(r#"{"hugepageLimits":[{"pageSize":"1GB","limit":1}]}"#))
        .unwrap_err();
    assert!(e.to_string().contains("hugetlb.1GB.max"), "{e}");
    let e = cg
        .update(&res(
            r#"{"hugepageLimits":[{"pageSize":"../x","limit":1}]}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("pageSize"), "{e}");
    strip_files(&f.root);
    cg.destroy().unwrap();
}

fn v2_files(f: &Fake, cg: &Cgroup) -> PathBuf {
    touch(
        &f.root.join("cuddy"),
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n"),
            ("cgroup.subtree_control", ""),
        ],
    );
    let d = cg.unified_dir().unwrap().to_path_buf();
    touch(
        &d,
        &[
            ("cgroup.procs", ""),
            ("memory.max", ""),
            ("memory.swap.max", ""),
            ("memory.low", ""),
            ("memory.current", "4096\n"),
            ("memory.high", ""),
            ("cpu.weight", ""),
            ("cpu.max", "max 100000\n"),
            ("cpu.max.burst", ""),
            ("cpuset.cpus", ""),
            ("pids.max", ""),
            ("io.weight", ""),
            ("io.max", ""),
        ],
    );
    d
}

#[test]
fn v2_resources_and_conversions() {
    let f = Fake::v2();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    assert_eq!(cg.kind(), CgroupKind::V2);
    assert!(cg.clone_into_fd().unwrap().is_some());
    let d = v2_files(&f, &cg);
    test_log::clear();
    cg.update(&res(
        r#"{"memory":{"limit":1048576,"swap":3145728,"reservation":1000},
            "cpu":{"shares":1024,"quota":20000,"period":50000,"burst":100,"cpus":"0"},
            "pids":{"limit":-1},
            "blockIO":{"weight":1000,
                       "throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":120}]},
            "unified":{"memory.high":"2000000"}}"#,
    ))
    .unwrap();
    let rd = |n: &str| fs::read_to_string(d.join(n)).unwrap();
    assert_eq!(rd("memory.max"), "1048576");
    assert_eq!(rd("memory.swap.max"), "2097152");
    assert_eq!(rd("memory.low"), "1000");
    assert_eq!(rd("cpu.weight"), "100");
    assert_eq!(rd("cpu.max"), "20000 50000");
    assert_eq!(rd("cpu.max.burst"), "100");
    assert_eq!(rd("cpuset.cpus"), "0");
    assert_eq!(rd("pids.max"), "max");
    assert_eq!(rd("io.weight"), "default 10000");
    assert_eq!(rd("io.max"), "8:16 wiops=120");
    assert_eq!(rd("memory.high"), "2000000");
    let sc = test_log::writes_to("cgroup.subtree_control");
    for c in ["+memory", "+cpu", "+cpuset", "+pids", "+io"] {
        assert!(sc.contains(&c.to_string()), "{c} in {sc:?}");
    }
    // Only the period changes: the quota is kept.
    fs::write(d.join("cpu.max"), "20000 50000").unwrap();
    cg.update(&res(r#"{"cpu":{"period":80000}}"#)).unwrap();
    assert_eq!(rd("cpu.max"), "20000 80000");
    cg.update(&res(r#"{"cpu":{"quota":-1}}"#)).unwrap();
    assert_eq!(rd("cpu.max"), "max");
    strip_files(&f.root);
    cg.destroy().unwrap();
    assert!(!f.root.join("cuddy").exists());
}

#[test]
fn v2_errors_are_explicit() {
    let f = Fake::v2();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    v2_files(&f, &cg);
    // pids not delegated to /cuddy.
    fs::write(f.root.join("cuddy/cgroup.controllers"), "cpu memory").unwrap();
    let e = cg.update(&res(r#"{"pids":{"limit":10}}"#)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("pids") && msg.contains("cuddy/cgroup.controllers"),
        "{msg}"
    );
    let e = cg
        .update(&res(r#"{"memory":{"swappiness":10}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("swappiness"), "{e}");
    let e = cg
        .update(&res(r#"{"cpu":{"realtimePeriod":10}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("realtime"), "{e}");
    let e = cg.update(&res(r#"{"network":{"classID":1}}"#)).unwrap_err();
    assert!(e.to_string().contains("classID"), "{e}");
    let e = cg
        .update(&res(r#"{"unified":{"bogus.x":"1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
    let e = cg
        .update(&res(r#"{"unified":{"cgroup.procs":"1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("cgroup.procs"), "{e}");
    let e = cg
        .update(&res(r#"{"unified":{"../x.y":"1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("x.y"), "{e}");
    let e = cg
        .update(&res(r#"{"memory":{"limit":100,"swap":50}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("memory.swap"), "{e}");
    let e = cg
        .update(&res(r#"{"rdma":{"mlx":{"hcaObjects":1}}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("rdma"), "{e}");
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn stats_from_fake_v2() {
    let f = Fake::v2();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    let d = cg.unified_dir().unwrap().to_path_buf();
    touch(
        &d,
        &[
            (
                "cpu.stat",
                "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n",
            ),
            ("memory.current", "100\n"),
            ("memory.max", "max\n"),
            ("memory.stat", "file 50\nanon 20\n"),
            ("memory.events", "low 0\nhigh 0\nmax 2\noom 0\noom_kill 0\n"),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
            (
                "io.stat",
                "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
            ),
            ("hugetlb.2MB.current", "4096\n"),
            ("hugetlb.2MB.events", "max 1\n"),
            ("cpuset.cpus.effective", "0-1\n"),
            ("cpuset.mems.effective", "0\n"),
        ],
    );
    let st = cg.stats().unwrap();
    assert_eq!(st.cpu.usage.total, 10_000);
    assert_eq!(st.cpu.usage.user, 6_000);
    assert_eq!(st.cpu.usage.kernel, 4_000);
    assert_eq!(st.cpu.throttling.throttled_time, 7_000);
    assert_eq!(st.memory.usage.usage, 100);
    assert_eq!(st.memory.usage.limit, u64::MAX);
    assert_eq!(st.memory.usage.failcnt, 2);
    assert_eq!(st.memory.cache, 50);
    assert_eq!(st.pids.current, 3);
    assert_eq!(st.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(st.blkio.io_serviced_recursive[1].op, "Write");
    assert_eq!(st.blkio.io_serviced_recursive[1].value, 4);
    assert_eq!(st.hugetlb["2MB"].usage, 4096);
    assert_eq!(st.hugetlb["2MB"].failcnt, 1);
    assert_eq!(st.cpuset.cpus, vec![0, 1]);
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn stats_from_fake_v1() {
    let f = Fake::hybrid();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    touch(
        &f.root.join("cpuacct/cuddy/c"),
        &[
            ("cpuacct.usage", "123\n"),
            ("cpuacct.usage_percpu", "100 23\n"),
        ],
    );
    touch(
        &f.root.join("memory/cuddy/c"),
        &[
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.stat", "cache 10\nrss 5\n"),
        ],
    );
    touch(
        &f.root.join("pids/cuddy/c"),
        &[("pids.current", "1\n"), ("pids.max", "max\n")],
    );
    touch(
        &f.root.join("blkio/cuddy/c"),
        &[(
            "blkio.throttle.io_service_bytes",
            "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        )],
    );
    let st = cg.stats().unwrap();
    assert_eq!(st.cpu.usage.total, 123);
    assert_eq!(st.cpu.usage.percpu, vec![100, 23]);
    assert_eq!(st.memory.usage.usage, 4096);
    assert_eq!(st.memory.cache, 10);
    assert_eq!(st.pids.current, 1);
    assert_eq!(st.pids.limit, u64::MAX);
    assert_eq!(st.blkio.io_service_bytes_recursive.len(), 2);
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn v1_only_host_rejects_unified() {
    let f = Fake::new(true, false, "1:cpu:/\n");
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    assert_eq!(cg.kind(), CgroupKind::V1);
    let e = cg
        .update(&res(r#"{"unified":{"memory.high":"1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("linux.resources.unified"), "{e}");
    cg.destroy().unwrap();
}

/// Root-only tests against this machine's real cgroup filesystem.
mod real {
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroup;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Kills its children (by pid) and destroys the cgroup, even when a test panics.
    struct Guard {
        cg: Option<Cgroup>,
        children: Vec<Child>,
        /// Children made with a raw clone3, killed and reaped by pid.
        raw: Vec<i32>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(cg) = &self.cg {
                // Thaw first: a frozen process would not die before the wait.
                if cg.is_frozen().unwrap_or(false) {
                    let _ = cg.thaw();
                }
            }
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
            for pid in &self.raw {
                // SAFETY: plain syscalls on a child pid of ours.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                    libc::waitpid(*pid, std::ptr::null_mut(), 0);
                }
            }
            if let Some(cg) = &self.cg {
                if let Err(e) = cg.destroy() {
                    eprintln!("cleanup of {} failed: {e}", cg.describe());
                }
            }
        }
    }

    fn unique_path() -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        PathBuf::from(format!("/cuddy-test-{}-{nanos:x}/c1", std::process::id()))
    }

    fn setup() -> Option<Guard> {
        if !is_root() {
            eprintln!("note: skipping real cgroup test (needs root)");
            return None;
        }
        let cg = Cgroup::create(&Roots::default(), Some(&unique_path()), "ignored")
            .expect("create a test cgroup");
        Some(Guard {
            cg: Some(cg),
            children: Vec::new(),
            raw: Vec::new(),
        })
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn real_lifecycle() {
        let Some(mut g) = setup() else { return };
        let cg = g.cg.clone().unwrap();
        let child = Command::new("sleep").arg("100").spawn().unwrap();
        let pid = child.id() as i32;
        g.children.push(child);
        cg.add_process(pid).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![pid]);
        if let Some(u) = cg.unified_dir() {
            let procs = fs::read_to_string(u.join("cgroup.procs")).unwrap();
            assert!(
                procs.contains(&pid.to_string()),
                "in the unified hierarchy too"
            );
        }
        let st = cg.stats().unwrap();
        assert_eq!(st.pids.current, 1);
        assert!(serde_json::to_string(&st).unwrap().contains("\"pids\""));
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());
        // A paused container stays paused after a non-fatal signal.
        cg.freeze().unwrap();
        cg.kill_all(0).unwrap();
        assert!(cg.is_frozen().unwrap());
        cg.kill_all(libc::SIGKILL).unwrap();
        assert!(!cg.is_frozen().unwrap());
        let status = g.children[0].wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        wait_until("empty cgroup", || cg.pids().unwrap().is_empty());
        let created = cg.created_dirs().to_vec();
        assert!(!created.is_empty());
        cg.destroy().unwrap();
        for d in &created {
            assert!(!d.exists(), "{} left behind", d.display());
        }
        g.cg = None;
    }

    #[test]
    fn real_kill_all_sigterm_and_destroy_waits() {
        let Some(mut g) = setup() else { return };
        let cg = g.cg.clone().unwrap();
        for _ in 0..3 {
            let c = Command::new("sleep").arg("100").spawn().unwrap();
            cg.add_process(c.id() as i32).unwrap();
            g.children.push(c);
        }
        assert_eq!(cg.pids().unwrap().len(), 3);
        cg.kill_all(libc::SIGTERM).unwrap();
        // Reap them (zombies do not block rmdir anyway).
        for c in &mut g.children {
            let _ = c.wait();
        }
        cg.destroy().unwrap();
        for d in cg.created_dirs() {
            assert!(!d.exists(), "{} left behind", d.display());
        }
        g.cg = None;
    }

    #[test]
    fn real_resources() {
        let Some(g) = setup() else { return };
        let cg = g.cg.clone().unwrap();
        let r = res(r#"{"devices":[{"allow":false,"access":"rwm"}],
                "memory":{"limit":67108864,"reservation":33554432},
                "cpu":{"shares":512,"quota":50000,"period":100000},
                "pids":{"limit":64}}"#);
        cg.apply(&r).unwrap();
        let rd = |ctrl: &str, f: &str| {
            let d = match ctrl {
                "unified" => cg.unified_dir().unwrap().to_path_buf(),
                c => cg
                    .v1_dir(c)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| cg.unified_dir().unwrap().to_path_buf()),
            };
            fs::read_to_string(d.join(f)).unwrap().trim().to_string()
        };
        match cg.kind() {
            CgroupKind::V2 => {
                assert_eq!(rd("memory", "memory.max"), "67108864");
                assert_eq!(rd("pids", "pids.max"), "64");
                assert_eq!(rd("cpu", "cpu.max"), "50000 100000");
            }
            _ => {
                assert_eq!(rd("memory", "memory.limit_in_bytes"), "67108864");
                assert_eq!(rd("pids", "pids.max"), "64");
                assert_eq!(rd("cpu", "cpu.shares"), "512");
                assert_eq!(rd("cpu", "cpu.cfs_quota_us"), "50000");
                let list = rd("devices", "devices.list");
                assert!(list.contains("c 1:3 rwm"), "{list}");
                assert!(!list.contains("a *:* rwm"), "{list}");
            }
        }
        // The default devices work, others do not (the test process stays outside).
        let c = Command::new("sh")
            .arg("-c")
            .arg("sleep 0.2; echo ok > /dev/null && head -c1 /dev/zero >/dev/null && ! (: < /dev/kmsg) 2>/dev/null")
            .spawn()
            .unwrap();
        let pid = c.id() as i32;
        let mut g = g;
        g.children.push(c);
        cg.add_process(pid).unwrap();
        let st = g.children[0].wait().unwrap();
        assert!(
            st.success(),
            "device rules as expected inside the cgroup: {st:?}"
        );
        // Kernel memory limits: applied where the kernel has them, else a warning.
        cg.update(&res(
            r#"{"memory":{"kernel":67108864,"kernelTCP":67108864}}"#,
        ))
        .unwrap();
        // A partial update; checkBeforeUpdate with a limit above the usage.
        cg.update(&res(
            r#"{"memory":{"limit":134217728,"checkBeforeUpdate":true},"pids":{"limit":-1}}"#,
        ))
        .unwrap();
        // An impossible limit: clear error naming the field and the file.
        let e = cg.apply(&res(r#"{"cpu":{"shares":1}}"#));
        if let Err(e) = e {
            assert!(e.to_string().contains("linux.resources.cpu.shares"), "{e}");
        }
    }

    /// The v2 eBPF device filter, on this host's cgroup2 hierarchy (pure v2 or hybrid).
    #[test]
    fn real_v2_device_filter() {
        let Some(mut g) = setup() else { return };
        let cg = g.cg.clone().unwrap();
        let Some(u) = cg.unified_dir().map(Path::to_path_buf) else {
            eprintln!("note: skipping: no cgroup2 hierarchy");
            return;
        };
        let mut rules = devices::deny_all().into_iter().collect::<Vec<_>>();
        rules.extend(default_allowed_devices());
        devices::apply_v2(&u, &rules).unwrap();
        let probe = |g: &mut Guard, script: &str| -> bool {
            let c = Command::new("sh").arg("-c").arg(script).spawn().unwrap();
            let pid = c.id() as i32;
            g.children.push(c);
            cg.add_process(pid).unwrap();
            let st = g.children.last_mut().unwrap().wait().unwrap();
            st.success()
        };
        assert!(probe(
            &mut g,
            "sleep 0.2; : > /dev/null && head -c1 /dev/zero > /dev/null && ! (: < /dev/kmsg) 2>/dev/null"
        ));
        // Update: allow everything; the old program is replaced, not stacked.
        let allow_all: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"access":"rwm"}]"#).unwrap();
        devices::apply_v2(&u, &allow_all).unwrap();
        assert!(probe(&mut g, "sleep 0.2; : < /dev/kmsg"));
    }

    /// The pure-v2 code paths on a real cgroup2 hierarchy: on a hybrid host, the
    /// unified mount is presented as the only hierarchy.
    #[test]
    fn real_pure_v2_paths() {
        if !is_root() {
            eprintln!("note: skipping real cgroup test (needs root)");
            return;
        }
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(line) = mi.lines().find(|l| l.contains(" - cgroup2 ")) else {
            eprintln!("note: skipping: no cgroup2 mount");
            return;
        };
        let mountpoint = PathBuf::from(line.split(' ').nth(4).unwrap());
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("mountinfo"), format!("{line}\n")).unwrap();
        let roots = Roots {
            cgroup_root: mountpoint.clone(),
            mountinfo: tmp.path().join("mountinfo"),
            self_cgroup: PathBuf::from("/proc/self/cgroup"),
            parents: Some(tmp.path().join("parents")),
        };
        let cg = Cgroup::create(&roots, Some(&unique_path()), "x").unwrap();
        let mut g = Guard {
            cg: Some(cg.clone()),
            children: Vec::new(),
            raw: Vec::new(),
        };
        assert_eq!(cg.kind(), CgroupKind::V2);

        // clone3(CLONE_INTO_CGROUP) with our fd: the child starts inside.
        let fd = cg.clone_into_fd().unwrap().expect("an fd on v2");
        let mut args = [0u64; 11];
        args[0] = 0x2_0000_0000; // CLONE_INTO_CGROUP
        args[4] = libc::SIGCHLD as u64; // exit_signal
        args[10] = std::os::fd::AsRawFd::as_raw_fd(&fd) as u64; // cgroup
        // SAFETY: a fork-like clone3 (no stack given); the child only calls
        // async-signal-safe functions and never returns into Rust code.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                args.as_mut_ptr(),
                std::mem::size_of_val(&args),
            )
        };
        if pid == 0 {
            // SAFETY: child of a fork: pause until killed, then _exit.
            unsafe {
                libc::pause();
                libc::_exit(0);
            }
        }
        assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
        let pid = pid as i32;
        g.raw.push(pid);
        assert_eq!(cg.pids().unwrap(), vec![pid]);

        // cgroup.freeze
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());

        // A controller the root already delegates gets enabled in our ancestors
        // (we do not change the root cgroup of a shared machine).
        let enabled = fs::read_to_string(mountpoint.join("cgroup.subtree_control")).unwrap();
        if enabled.split_whitespace().any(|c| c == "pids") {
            cg.apply(&res(r#"{"pids":{"limit":5}}"#)).unwrap();
            let d = cg.unified_dir().unwrap();
            assert_eq!(fs::read_to_string(d.join("pids.max")).unwrap().trim(), "5");
        }
        // Device rules through eBPF on v2.
        cg.apply(&res(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#))
            .unwrap();

        // cgroup.kill
        cg.kill_all(libc::SIGKILL).unwrap();
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
        g.raw.clear();
        let created = cg.created_dirs().to_vec();
        cg.destroy().unwrap();
        for d in &created {
            assert!(!d.exists(), "{} left behind", d.display());
        }
        g.cg = None;
    }
}
