//! `update` against a fake cgroupfs: zero values are "not set", the whole
//! request is checked before the first write, and a failed write puts back
//! every value already written.

use std::fs;

use super::tests::{Fake, res, strip_files, touch};
use super::*;

fn rd(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

/// A hybrid fake with memory, pids, cpu and cpuset files holding values.
fn setup() -> (Fake, Cgroup) {
    let f = Fake::hybrid();
    let cg = Cgroup::create(&f.roots, None, "c").unwrap();
    touch(
        &f.root.join("memory/cuddy/c"),
        &[
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.memsw.limit_in_bytes", "67108864\n"),
            ("memory.soft_limit_in_bytes", "9223372036854771712\n"),
            ("memory.usage_in_bytes", "100\n"),
        ],
    );
    touch(&f.root.join("pids/cuddy/c"), &[("pids.max", "50\n")]);
    touch(
        &f.root.join("cpu/cuddy/c"),
        &[
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
        ],
    );
    (f, cg)
}

#[test]
fn a_failed_write_restores_what_was_written() {
    let (f, cg) = setup();
    // cpuset.mems is a directory: its write fails (EISDIR), after memory,
    // pids and cpu were written.
    let cs = f.root.join("cpuset/cuddy/c");
    let _ = fs::remove_file(cs.join("cpuset.mems"));
    fs::create_dir(cs.join("cpuset.mems")).unwrap();
    touch(&cs, &[("cpuset.cpus", "0-1\n")]);
    let e = cg
        .update(&res(r#"{"memory":{"limit":33554432,"swap":33554432},
                        "pids":{"limit":7},
                        "cpu":{"shares":512,"quota":20000,"cpus":"0","mems":"0"}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cpuset.mems") && e.contains("\"0\"") && e.contains("restored"),
        "{e}"
    );
    let m = f.root.join("memory/cuddy/c");
    assert_eq!(rd(&m.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(rd(&m.join("memory.memsw.limit_in_bytes")), "67108864");
    assert_eq!(rd(&f.root.join("pids/cuddy/c/pids.max")), "50");
    let c = f.root.join("cpu/cuddy/c");
    assert_eq!(rd(&c.join("cpu.shares")), "1024");
    assert_eq!(rd(&c.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(rd(&cs.join("cpuset.cpus")), "0-1");
    fs::remove_dir(cs.join("cpuset.mems")).unwrap();
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn the_whole_request_is_checked_before_any_write() {
    let (f, cg) = setup();
    super::fsutil::test_log::clear();
    for bad in [
        r#"{"memory":{"limit":33554432},"pids":{"limit":3},"rdma":{"mlx":{}}}"#,
        r#"{"pids":{"limit":3},"cpu":{"shares":1}}"#,
        r#"{"pids":{"limit":3},"cpu":{"cpus":"zero"}}"#,
        r#"{"pids":{"limit":3},"memory":{"swappiness":101}}"#,
        r#"{"pids":{"limit":3},"unified":{"memory.high":"1"}}"#,
        r#"{"pids":{"limit":3},"hugepageLimits":[{"pageSize":"3XB","limit":1}]}"#,
        r#"{"pids":{"limit":3},"memory":{"limit":200,"swap":100}}"#,
    ] {
        let e = cg.update(&res(bad)).unwrap_err().to_string();
        assert!(e.contains("linux.resources"), "{bad}: {e}");
        assert!(!e.contains("restored"), "{bad}: nothing to restore: {e}");
    }
    assert!(
        super::fsutil::test_log::writes_to("").is_empty(),
        "no write at all: {:?}",
        super::fsutil::test_log::writes_to("")
    );
    assert_eq!(rd(&f.root.join("pids/cuddy/c/pids.max")), "50\n");
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn zero_means_not_set_and_pids_follow_the_oci_version() {
    let (f, mut cg) = setup();
    super::fsutil::test_log::clear();
    // Docker 20.10 `docker update --pids-limit 0` (toContainerdResources).
    cg.update(&res(r#"{"memory":{"limit":0,"reservation":0,"kernel":0},
            "cpu":{"shares":0,"quota":0,"period":0,"cpus":"","mems":""},
            "blockIO":{"weight":0}}"#))
        .unwrap();
    assert!(super::fsutil::test_log::writes_to("").is_empty());
    let pids = f.root.join("pids/cuddy/c/pids.max");
    cg.set_oci_version("1.0.2-dev");
    cg.update(&res(r#"{"pids":{"limit":0}}"#)).unwrap();
    assert_eq!(rd(&pids), "max");
    cg.update(&res(r#"{"pids":{"limit":-2}}"#)).unwrap();
    assert_eq!(rd(&pids), "max");
    cg.set_oci_version("1.3.0");
    cg.update(&res(r#"{"pids":{"limit":0}}"#)).unwrap();
    assert_eq!(rd(&pids), "0");
    cg.update(&res(r#"{"pids":{"limit":-1}}"#)).unwrap();
    assert_eq!(rd(&pids), "max");
    strip_files(&f.root);
    cg.destroy().unwrap();
}

#[test]
fn create_leaves_a_zero_pids_limit_until_the_init_is_set_up() {
    let (f, mut cg) = setup();
    cg.set_oci_version("1.3.0");
    touch(
        &f.root.join("devices/cuddy/c"),
        &[("devices.allow", ""), ("devices.deny", "")],
    );
    let pids = f.root.join("pids/cuddy/c/pids.max");
    let r = res(r#"{"pids":{"limit":0}}"#);
    cg.apply(&r).unwrap();
    assert_eq!(rd(&pids), "50\n", "not written before the init exists");
    cg.apply_after_init(&r).unwrap();
    assert_eq!(rd(&pids), "0");
    // Any other limit is written at once; nothing is left for later.
    let r = res(r#"{"pids":{"limit":9}}"#);
    cg.apply(&r).unwrap();
    assert_eq!(rd(&pids), "9");
    cg.apply_after_init(&r).unwrap();
    assert_eq!(rd(&pids), "9");
    strip_files(&f.root);
    cg.destroy().unwrap();
}
