//! CNI mode without root: shell-script plugins that log what they were
//! given, in temp dirs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// A plugin that appends "VERB TYPE prevResult?" to `log` and prints a
/// result naming itself (or fails when its config has "fail": true).
fn fake_plugin(dir: &Path, name: &str, log: &Path) {
    let script = format!(
        r#"#!/bin/sh
conf=$(cat)
prev=no; case "$conf" in *prevResult*) prev=yes;; esac
echo "$CNI_COMMAND {name} prev=$prev if=$CNI_IFNAME id=$CNI_CONTAINERID" >> {log}
case "$conf" in *'"fail":true'*) echo '{{"cniVersion":"1.0.0","code":7,"msg":"{name} refuses"}}'; exit 1;; esac
case "$conf" in *portMappings*hostPort*) echo "ports {name}" >> {log};; esac
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.0.2/24"}}],"dns":{{"nameservers":["10.9.0.1"],"search":["x.test"]}}}}'
exit 0
"#,
        log = log.display()
    );
    let p = dir.join(name);
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Setup {
    _t: tempfile::TempDir,
    conf: std::path::PathBuf,
    plugins: std::path::PathBuf,
    log: std::path::PathBuf,
}

fn setup(list: &str) -> Setup {
    let t = tempfile::tempdir().unwrap();
    let (conf, plugins) = (t.path().join("net.d"), t.path().join("bin"));
    for d in [&conf, &plugins] {
        std::fs::create_dir(d).unwrap();
    }
    let log = t.path().join("log");
    for p in ["a", "b", "c"] {
        fake_plugin(&plugins, p, &log);
    }
    std::fs::write(conf.join("10-n1.conflist"), list).unwrap();
    Setup {
        _t: t,
        conf,
        plugins,
        log,
    }
}

const LIST: &str = r#"{"cniVersion":"1.0.0","name":"n1","plugins":[
  {"type":"a"},{"type":"b"},{"type":"c","capabilities":{"portMappings":true}}]}"#;

fn log(s: &Setup) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

#[test]
fn add_runs_the_list_in_order_and_del_in_reverse_with_the_result() {
    let s = setup(LIST);
    let publish = vec!["8080:80".parse().unwrap()];
    let mut att = Attachment::prepare("c1", &s.conf, &s.plugins, Some("n1"), &publish).unwrap();
    let res = att.add("/proc/self/ns/net").unwrap();
    assert_eq!(addresses(&res), vec!["10.9.0.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(dns(&res).unwrap().search, vec!["x.test".to_string()]);
    assert_eq!(att.result.as_ref(), Some(&res), "the result is kept");
    // What the record holds is what DEL and CHECK get back.
    let rec: Attachment = serde_json::from_value(serde_json::to_value(&att).unwrap()).unwrap();
    rec.check("/proc/self/ns/net").unwrap();
    rec.del("").unwrap();
    assert_eq!(
        log(&s),
        "ADD a prev=no if=eth0 id=c1\nADD b prev=yes if=eth0 id=c1\nADD c prev=yes if=eth0 id=c1\nports c\n\
         CHECK a prev=yes if=eth0 id=c1\nCHECK b prev=yes if=eth0 id=c1\nCHECK c prev=yes if=eth0 id=c1\nports c\n\
         DEL c prev=yes if=eth0 id=c1\nports c\nDEL b prev=yes if=eth0 id=c1\nDEL a prev=yes if=eth0 id=c1\n"
    );
}

#[test]
fn a_failed_add_is_followed_by_del_and_leaves_no_record() {
    let s = setup(
        r#"{"cniVersion":"1.0.0","name":"n1","plugins":[{"type":"a"},{"type":"b","fail":true}]}"#,
    );
    let mut att = Attachment::prepare("c1", &s.conf, &s.plugins, None, &[]).unwrap();
    let f = att.add("/x").unwrap_err();
    let e = f.error.to_string();
    assert!(
        e.contains("plugin \"b\" ADD failed") && e.contains("code 7: b refuses"),
        "{e}"
    );
    // b's DEL fails too (the fake refuses every verb): not undone, so the
    // caller keeps the attachment recorded for delete.
    assert!(e.contains("DEL after it failed") && !f.undone, "{e}");
    assert!(log(&s).contains("DEL a prev=no"), "{}", log(&s));
}

#[test]
fn a_del_without_result_after_a_crash_gets_no_prev_result() {
    // The attachment as recorded before ADD (a crash before its result).
    let s = setup(r#"{"cniVersion":"0.4.0","name":"n1","plugins":[{"type":"a"}]}"#);
    let att = Attachment::prepare("c1", &s.conf, &s.plugins, None, &[]).unwrap();
    assert!(att.result.is_none());
    att.del("").unwrap();
    assert_eq!(log(&s), "DEL a prev=no if=eth0 id=c1\n");
}

#[test]
fn a_failed_add_is_undone_by_del() {
    let s =
        setup(r#"{"cniVersion":"1.0.0","name":"n1","plugins":[{"type":"a"},{"type":"b","x":1}]}"#);
    std::fs::write(s.plugins.join("b"), "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = DEL ] && exit 0\necho '{\"code\":11,\"msg\":\"try later\"}'; exit 1\n").unwrap();
    let mut att = Attachment::prepare("c1", &s.conf, &s.plugins, None, &[]).unwrap();
    let f = att.add("/x").unwrap_err();
    assert!(f.undone, "{}", f.error);
    assert!(
        f.error.to_string().contains("code 11: try later"),
        "{}",
        f.error
    );
    assert_eq!(
        log(&s),
        "ADD a prev=no if=eth0 id=c1\nDEL a prev=no if=eth0 id=c1\n"
    );
}

#[test]
fn a_single_conf_is_a_list_of_one_and_the_first_file_is_the_default() {
    let s = setup(LIST);
    std::fs::write(
        s.conf.join("05-single.conf"),
        r#"{"cniVersion":"0.4.0","name":"single","type":"a"}"#,
    )
    .unwrap();
    let att = Attachment::prepare("c1", &s.conf, &s.plugins, None, &[]).unwrap();
    assert_eq!(att.network(), "single");
    assert_eq!(att.plugins().len(), 1);
    let att = Attachment::prepare("c1", &s.conf, &s.plugins, Some("n1"), &[]).unwrap();
    assert_eq!(att.plugins().len(), 3);
}

#[test]
fn bad_input_is_named() {
    let s = setup(LIST);
    let e = Attachment::prepare("c1", &s.conf, &s.plugins, Some("nope"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cni=nope") && e.contains("found: n1"), "{e}");
    std::fs::remove_file(s.plugins.join("b")).unwrap();
    let e = Attachment::prepare("c1", &s.conf, &s.plugins, None, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("plugin \"b\" is not in --cni-plugin-dir"), "{e}");
    let e = Attachment::prepare("c1", Path::new("/nonexistent"), &s.plugins, None, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--cni-config-dir /nonexistent"), "{e}");
    std::fs::write(
        s.conf.join("00-bad.conflist"),
        r#"{"cniVersion":"9.9.9","name":"x","plugins":[{"type":"a"}]}"#,
    )
    .unwrap();
    let e = Attachment::prepare("c1", &s.conf, &s.plugins, None, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("00-bad.conflist") && e.contains("9.9.9"), "{e}");
    let one = setup(r#"{"cniVersion":"1.0.0","name":"n1","plugins":[{"type":"a"}]}"#);
    let e = Attachment::prepare(
        "c1",
        &one.conf,
        &one.plugins,
        None,
        &["80:80".parse().unwrap()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("portMappings"), "{e}");
}

#[test]
fn check_needs_0_4_0() {
    let s = setup(r#"{"cniVersion":"0.3.1","name":"n1","plugins":[{"type":"a"}]}"#);
    let mut att = Attachment::prepare("c1", &s.conf, &s.plugins, None, &[]).unwrap();
    att.add("/x").unwrap();
    let e = att.check("/x").unwrap_err().to_string();
    assert!(e.contains("0.4.0"), "{e}");
}
