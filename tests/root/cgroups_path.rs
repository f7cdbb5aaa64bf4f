//! config-linux.md#cgroups-path: where a container's cgroup is made for an
//! absolute, a relative and no cgroupsPath, what delete removes (only what
//! cuddy made), and runc's rule for a relative path on a v2-only host.
//! Split from cgroups.rs; runs on the host and in the cgroup v2 guest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cgroups::{is_v2, read, run_detached, stop_and_delete};
use crate::common::*;
use crate::require_root;

/// The cgroup path each hierarchy shows for `pid` (/proc/PID/cgroup),
/// keyed by the hierarchy's controllers ("" for v2).
fn proc_cgroups(pid: &str) -> BTreeMap<String, String> {
    read(Path::new(&format!("/proc/{pid}/cgroup")))
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            Some((ctrl.to_string(), path.to_string()))
        })
        .collect()
}

/// Every cgroup hierarchy mount point (v1 ones and cgroup2).
fn hierarchies() -> Vec<PathBuf> {
    if is_v2() {
        return vec![PathBuf::from("/sys/fs/cgroup")];
    }
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// rmdir of directories the test made itself (deepest first), even when it fails;
/// a directory another test uses meanwhile stays.
struct RmDirs(Vec<PathBuf>);

impl Drop for RmDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// This test's own parent cgroup: a shared one (`cuddy-test`, which other
/// tests create containers under) could be removed by this test's cleanup
/// between another create's check and its mkdir.
const PARENT: &str = "cuddy-t-cgpath";

#[test]
fn cgroups_path_absolute_relative_default() {
    require_root!();
    let ctx = Ctx::new("cgpath");
    let me = proc_cgroups("self");
    let hs = hierarchies();
    for (suffix, path) in [
        ("abs", Some("/cuddy-t-cgpath/{id}/nested/leaf")),
        ("rel", Some("cuddy-t-cgpath/{id}")),
        ("def", None),
    ] {
        let id = ctx.id(suffix);
        let mut c = ctx.config(&["/bin/sleep", "1000"]);
        if let Some(p) = path {
            c["linux"]["cgroupsPath"] = json!(p.replace("{id}", &id));
        }
        // For the absolute path: an existing parent (in the first hierarchy)
        // must survive delete; everything cuddy created must not.
        let pre = hs[0].join(PARENT).join(&id);
        let _pre_guard = (suffix == "abs").then(|| {
            std::fs::create_dir_all(&pre).unwrap();
            RmDirs(vec![pre.clone(), hs[0].join(PARENT)])
        });
        let pid = run_detached(&ctx, &id, &c).to_string();
        let got = proc_cgroups(&pid);
        for (ctrl, p) in &got {
            let want = match path {
                Some(p) if p.starts_with('/') => p.replace("{id}", &id),
                Some(p) => {
                    let own = me.get(ctrl).map(|s| s.as_str()).unwrap_or("/");
                    // v2 only: from the parent of our cgroup (runc's fs2).
                    let own = if is_v2() { parent_cgroup(own) } else { own };
                    format!("{}/{}", own.trim_end_matches('/'), p.replace("{id}", &id))
                }
                None => format!("/cuddy/{id}"),
            };
            assert_eq!(p, &want, "hierarchy {ctrl:?} of {suffix}: {got:?}");
        }
        assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete --force");
        if suffix == "abs" {
            assert!(!ctx.root.join(&id).exists());
        } else {
            ctx.assert_no_leftovers(&id);
        }
        for h in &hs {
            let d = h.join(PARENT).join(&id);
            if suffix == "abs" && d == pre {
                assert!(
                    d.exists(),
                    "{} existed before: delete must leave it",
                    d.display()
                );
                assert!(
                    !d.join("nested").exists(),
                    "{} left behind",
                    d.join("nested").display()
                );
            } else {
                assert!(!d.exists(), "{} left behind", d.display());
            }
        }
        if suffix == "rel" {
            for (ctrl, own) in &me {
                let Some(h) = hs.iter().find(|h| {
                    let name = h.file_name().unwrap().to_string_lossy().to_string();
                    is_v2()
                        || (ctrl.is_empty() && name == "unified")
                        || ctrl
                            .split(',')
                            .any(|c| c == name || c == format!("name={name}"))
                }) else {
                    continue;
                };
                let own = if is_v2() { parent_cgroup(own) } else { own };
                let d = h.join(own.trim_start_matches('/')).join(PARENT).join(&id);
                assert!(!d.exists(), "{} left behind", d.display());
            }
        }
    }
}

/// `/a/b` → `/a`, `/a` → `/`, `/` → `/`.
fn parent_cgroup(p: &str) -> &str {
    match p.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent,
        _ => "/",
    }
}

// config-linux.md#cgroups-path leaves a relative path to the runtime. On a
// v2-only host cuddy follows runc (fs2): from the *parent* of the caller's
// cgroup. Here cuddy runs from inside a cgroup its own process populates:
// relative to that cgroup, no controller could be enabled for the child
// (no internal processes) and CLONE_INTO_CGROUP would be refused.
#[test]
fn relative_path_from_a_populated_cgroup_on_v2() {
    require_root!();
    if !is_v2() {
        eprintln!("skipped: a cgroup-v2-only rule (runs in the v2 guest)");
        return;
    }
    let ctx = Ctx::new("cgrel");
    let id = ctx.id("rel");
    let top_name = format!("cuddy-t-caller-{}", std::process::id());
    let top = Path::new("/sys/fs/cgroup").join(&top_name);
    let caller = top.join("caller");
    std::fs::create_dir_all(&caller).unwrap();
    let _rm = RmDirs(vec![caller.clone(), top.clone()]);
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["linux"]["cgroupsPath"] = json!(format!("cuddy-t-rel/{id}"));
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 30}});
    let b = ctx.bundle("rel", &c);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            caller.display()
        ))
        .arg("sh")
        .arg(CUDDY)
        .arg("--root")
        .arg(&ctx.root)
        .args(["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    assert_ok(
        &output_with_timeout(cmd, 60),
        "run -d from inside a populated cgroup",
    );
    let pid = ctx.state(&id)["pid"].as_i64().unwrap().to_string();
    let got = proc_cgroups(&pid);
    let want = format!("/{top_name}/cuddy-t-rel/{id}");
    assert_eq!(got.get(""), Some(&want), "{got:?}");
    let dir = top.join("cuddy-t-rel").join(&id);
    assert_eq!(read(&dir.join("memory.max")), "67108864");
    assert_eq!(read(&dir.join("pids.max")), "30");
    stop_and_delete(&ctx, &id);
    assert!(
        !top.join("cuddy-t-rel").exists(),
        "cuddy made cuddy-t-rel: delete removes it"
    );
    assert!(caller.is_dir(), "the caller's cgroup is not cuddy's");
}
