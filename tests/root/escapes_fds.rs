//! Escapes through file descriptors and procfs, performed for real against
//! cuddy (issue 7 items 2, 5b, 9; docs/fds.md). Each test is the attack; the
//! host is checked untouched (canary files outside the rootfs).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

const SECRET: &str = "host-canary-8c1f";

/// A host directory outside every rootfs holding a canary file.
fn host_canary(ctx: &Ctx) -> PathBuf {
    let d = ctx.dir.path().join("host-secret");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("canary"), SECRET).unwrap();
    d
}

/// Runs cuddy with `args` while it inherits, as fd `fd` and without
/// FD_CLOEXEC, an open directory fd of `dir` (a careless caller's leak).
fn cuddy_with_leaked_dir(ctx: &Ctx, dir: &Path, fd: i32, args: &[&str]) -> Output {
    let f = std::fs::File::open(dir).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut c = ctx.cmd();
    c.args(args);
    // SAFETY: dup2 and fcntl are async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(raw, fd) < 0 || libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output_with_timeout(c, 60);
    drop(f);
    out
}

fn with_caps(mut c: Value, extra: &[&str]) -> Value {
    for set in ["bounding", "effective", "permitted"] {
        let a = c["process"]["capabilities"][set].as_array_mut().unwrap();
        for cap in extra {
            a.push(json!(cap));
        }
    }
    c
}

fn assert_no_secret(out: &Output) {
    assert!(
        !stdout(out).contains(SECRET) && !stderr(out).contains(SECRET),
        "the container read the host canary: {}{}",
        stdout(out),
        stderr(out)
    );
}

/// CVE-2024-21626 (runc "Leaky Vessels"), through the caller's fd: a
/// directory fd leaked into cuddy plus `process.cwd` (config.md "Process"
/// cwd) naming `/proc/self/fd/N`, directly or through an image symlink. The
/// process must never start with its cwd on the host.
#[test]
fn cve_2024_21626_process_cwd_through_leaked_fd() {
    require_root!();
    let ctx = Ctx::new("leakcwd");
    let secret = host_canary(&ctx);
    let rootfs = ctx.private_rootfs("rootfs");
    std::os::unix::fs::symlink("/proc/self/fd/9", rootfs.join("work")).unwrap();
    for (n, cwd) in ["/proc/self/fd/9", "/work"].iter().enumerate() {
        let id = ctx.id(&format!("c{n}"));
        let mut c = ctx.config(&["/bin/cat", "canary"]);
        c["root"]["path"] = json!(rootfs);
        c["process"]["cwd"] = json!(cwd);
        let b = ctx.bundle(&id, &c);
        let out = cuddy_with_leaked_dir(
            &ctx,
            &secret,
            9,
            &["run", "--bundle", b.to_str().unwrap(), &id],
        );
        assert_no_secret(&out);
        assert_fails_with(&out, "process.cwd");
        ctx.assert_no_leftovers(&id);
    }
}

/// CVE-2024-21626 through `exec --cwd` (runc's `exec --cwd`, config.md
/// "Process" cwd): the caller leaks a host directory fd into `cuddy exec`.
/// Before the fix the exec'd process ran with its cwd in that directory.
#[test]
fn cve_2024_21626_exec_cwd_through_leaked_fd() {
    require_root!();
    let ctx = Ctx::new("leakexec");
    let secret = host_canary(&ctx);
    let rootfs = ctx.private_rootfs("rootfs");
    std::os::unix::fs::symlink("/proc/self/fd/9", rootfs.join("work")).unwrap();
    let id = ctx.id("e");
    let mut c = ctx.config(&["/bin/sleep", "1000"]);
    c["root"]["path"] = json!(rootfs);
    let b = ctx.bundle(&id, &c);
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    for cwd in ["/proc/self/fd/9", "/work", "/work/.."] {
        let out = cuddy_with_leaked_dir(
            &ctx,
            &secret,
            9,
            &["exec", "--cwd", cwd, &id, "/bin/cat", "canary"],
        );
        assert_no_secret(&out);
        assert_fails_with(&out, "cwd");
    }
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// Lists `/proc/<pid>/fd` from inside: "N target" per fd >= 3, plus for
/// each fd that is a directory the names in it.
const LIST_FDS: &str = r#"cd /proc/$P/fd || exit 9
for f in *; do
  [ "$f" -ge 3 ] 2>/dev/null || continue
  t=$(readlink "$f")
  echo "fd $f $t"
  if [ -d "$f/" ]; then echo "dir $f $(ls -a "$f/" | tr '\n' ' ')"; fi
  if [ -e "$f/$HOSTPID" ]; then echo "hostpid $f"; fi
  if [ -e "$f/sys/kernel" ]; then echo "sysctl $f"; fi
done
echo done"#;

/// Checks the LIST_FDS output of a process: no fd names a host path (the
/// test's directory, the state root, the host's /proc, a socket); a
/// directory fd may only be a procfs of the container's PID namespace with
/// process entries only. `fifo_ok`: the exec fifo (an O_PATH fd) may remain.
fn assert_no_host_fds(ctx: &Ctx, what: &str, out: &Output, fifo_ok: bool) {
    assert_ok(out, what);
    let text = stdout(out);
    assert!(text.contains("done"), "{what}: {text}");
    let tmp = ctx.dir.path().to_string_lossy().to_string();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(3, ' ').collect();
        match f[0] {
            "fd" => {
                let t = f.get(2).copied().unwrap_or("");
                if fifo_ok && t.ends_with("/exec.fifo") {
                    continue;
                }
                assert!(
                    !t.starts_with(&tmp)
                        && !t.starts_with("socket:")
                        && !t.starts_with("/proc")
                        && !t.contains("cgroup")
                        && !t.starts_with("/sys"),
                    "{what}: fd {} leads to the host: {t}\n{text}",
                    f[1]
                );
            }
            "dir" => {
                let names = f.get(2).copied().unwrap_or("");
                assert!(
                    !names.contains(" sys ")
                        && !names.contains(" bin ")
                        && !names.contains(" etc "),
                    "{what}: fd {} is a host directory: {names}",
                    f[1]
                );
            }
            "hostpid" | "sysctl" => panic!(
                "{what}: fd {} is a procfs with the host's view\n{text}",
                f[1]
            ),
            _ => {}
        }
    }
}

fn list_fds(ctx: &Ctx, id: &str, pid: &str) -> Output {
    let env_p = format!("P={pid}");
    let env_h = format!("HOSTPID={}", std::process::id());
    ctx.cuddy(&[
        "exec", "--env", &env_p, "--env", &env_h, id, "/bin/sh", "-c", LIST_FDS,
    ])
}

/// Issue 7 item 2 / item 9: with CAP_SYS_PTRACE (config.md "Process"
/// capabilities) a container process opens `/proc/1/fd/*` of the init.
/// Before the fix the created-state init held the state directory (the
/// lock), the host /proc and the cgroup directory: the container read host
/// files through them. Now: nothing but the exec fifo (an O_PATH fd, as
/// runc's) and a procfs of the container's own PID namespace; nothing after
/// start; nothing in exec'd processes.
#[test]
fn ptrace_container_finds_no_host_fd_in_its_init() {
    require_root!();
    let ctx = Ctx::new("initfds");
    let id = ctx.id("p");
    let c = with_caps(ctx.config(&["/bin/sleep", "1000"]), &["CAP_SYS_PTRACE"]);
    let b = ctx.bundle(&id, &c);
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    let out = list_fds(&ctx, &id, "1");
    assert_no_host_fds(&ctx, "created init", &out, true);
    // Its root and cwd are the container's.
    let out = ctx.cuddy(&["exec", &id, "/bin/ls", "/proc/1/root/", "/proc/1/cwd/"]);
    assert_ok(&out, "ls /proc/1/root");
    assert!(!stdout(&out).contains("host-secret") && stdout(&out).contains("bin"));
    // An O_PATH fd of the fifo leads nowhere else.
    let out = ctx.cuddy(&[
        "exec", &id, "/bin/sh", "-c",
        "for f in /proc/1/fd/*; do cat $f/../state.json 2>/dev/null && echo LEAK; ls -a $f/.. 2>/dev/null | grep -q -x -e state.json -e exec.fifo -e bin -e etc && echo LEAK; done; echo ok",
    ]);
    assert!(!stdout(&out).contains("LEAK"), "{}", stdout(&out));

    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let out = list_fds(&ctx, &id, "1");
    assert_no_host_fds(&ctx, "started init", &out, false);
    assert!(
        !stdout(&out).contains("fd "),
        "init after start: {}",
        stdout(&out)
    );
    // A process run by `exec` (detached, still running), seen from another.
    assert_ok(
        &ctx.cuddy(&["exec", "-d", &id, "/bin/sleep", "999"]),
        "exec -d sleep",
    );
    let out = ctx.cuddy(&[
        "exec",
        &id,
        "/bin/sh",
        "-c",
        "for p in $(pidof sleep); do [ $p != 1 ] && echo $p; done; true",
    ]);
    assert_ok(&out, "pidof sleep");
    let out = list_fds(&ctx, &id, stdout(&out).trim());
    assert_no_host_fds(&ctx, "exec'd process", &out, false);
    assert!(!stdout(&out).contains("fd "), "exec'd: {}", stdout(&out));
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// CVE-2019-16884, CVE-2023-27561, CVE-2023-28642, youki CVE-2025-54867
/// (config.md "Mounts"): the image's `/proc` (or `/sys`) is a symlink to a
/// host path, absolute or `../../..` relative. A runtime that follows it
/// mounts procfs on the host, or writes LSM labels through a fake /proc.
/// cuddy mounts proc and sysfs only on a real directory: refused, and the
/// host directory is untouched.
#[test]
fn proc_and_sys_symlinked_to_the_host_are_refused() {
    require_root!();
    let ctx = Ctx::new("procsym");
    let secret = host_canary(&ctx);
    let cases = [
        ("proc", secret.to_string_lossy().to_string(), 0),
        (
            "proc",
            format!("../../../../../../..{}", secret.display()),
            0,
        ),
        ("sys", secret.to_string_lossy().to_string(), 5),
    ];
    for (n, (dir, target, index)) in cases.iter().enumerate() {
        let rootfs = ctx.private_rootfs("rootfs");
        std::fs::remove_dir(rootfs.join(dir)).unwrap();
        std::os::unix::fs::symlink(target, rootfs.join(dir)).unwrap();
        let id = ctx.id(&format!("s{n}"));
        let mut c = ctx.config(&["/bin/true"]);
        c["root"]["path"] = json!(rootfs);
        let out = ctx.run(&id, &c);
        assert_fails_with(&out, &format!("mounts[{index}] (/{dir})"));
        assert!(
            stderr(&out).contains("not through a symlink"),
            "{}",
            stderr(&out)
        );
        let names: Vec<_> = std::fs::read_dir(&secret).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "the host directory changed");
        assert_eq!(
            std::fs::read_to_string(secret.join("canary")).unwrap(),
            SECRET
        );
        ctx.assert_no_leftovers(&id);
        std::fs::remove_dir_all(&rootfs).unwrap();
    }
}

/// CVE-2025-52881 (runc 1.2.8, config.md "Mounts" and "Sysctl"): mounts
/// in the config over /proc/sys or /proc/self (or, through an image
/// symlink, a destination that resolves into /proc) would redirect the
/// runtime's procfs writes (sysctls, oom_score_adj, LSM labels). Refused, as
/// runc's checkProcMount does, naming the mounts[i] field.
#[test]
fn mounts_over_procfs_files_are_refused() {
    require_root!();
    let ctx = Ctx::new("procmnt");
    let secret = host_canary(&ctx);
    for (n, (dest, typ)) in [
        ("/proc/sys", "tmpfs"),
        ("/proc/self", "bind"),
        ("/proc/sys/kernel", "bind"),
        ("/proc/thread-self/attr", "tmpfs"),
        ("/sys/kernel", "tmpfs"),
    ]
    .iter()
    .enumerate()
    {
        let id = ctx.id(&format!("m{n}"));
        let mut c = ctx.config(&["/bin/true"]);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["process"]["oomScoreAdj"] = json!(321);
        let m = if *typ == "bind" {
            json!({"destination": dest, "type": "bind", "source": secret, "options": ["bind"]})
        } else {
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"})
        };
        c["mounts"].as_array_mut().unwrap().push(m);
        let i = c["mounts"].as_array().unwrap().len() - 1;
        let out = ctx.run(&id, &c);
        assert_fails_with(&out, &format!("mounts[{i}].destination"));
        ctx.assert_no_leftovers(&id);
    }
    // Through an image symlink: /sysctl -> /proc/sys, a tmpfs on /sysctl.
    let rootfs = ctx.private_rootfs("rootfs");
    std::os::unix::fs::symlink("/proc/sys", rootfs.join("sysctl")).unwrap();
    let id = ctx.id("link");
    let mut c = ctx.config(&["/bin/true"]);
    c["root"]["path"] = json!(rootfs);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/sysctl", "type": "tmpfs", "source": "tmpfs"}));
    let i = c["mounts"].as_array().unwrap().len() - 1;
    let out = ctx.run(&id, &c);
    assert_fails_with(&out, &format!("mounts[{i}] (/sysctl)"));
    assert!(stderr(&out).contains("inside /proc"), "{}", stderr(&out));
    ctx.assert_no_leftovers(&id);
    assert_eq!(
        std::fs::read_to_string(secret.join("canary")).unwrap(),
        SECRET
    );
}

/// CVE-2025-52881 through `exec` (config.md "Process" oomScoreAdj): a
/// privileged container replaces its /proc with a tmpfs whose
/// `self/oom_score_adj` is a symlink to a host file bind-mounted in. A
/// runtime writing `/proc/self/oom_score_adj` in the container's view
/// overwrites the host file; cuddy writes through its own verified procfs:
/// the host file is untouched and the process really gets the value.
#[test]
fn cve_2025_52881_exec_oom_score_adj_not_redirected() {
    require_root!();
    let ctx = Ctx::new("oomredir");
    let secret = host_canary(&ctx);
    let id = ctx.id("o");
    let mut c = with_caps(ctx.config(&["/bin/sleep", "1000"]), &["CAP_SYS_ADMIN"]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt/host", "type": "bind", "source": secret, "options": ["bind"]
    }));
    let b = ctx.bundle(&id, &c);
    assert_ok(
        &ctx.cuddy(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]),
        "run -d",
    );
    let out = ctx.cuddy(&[
        "exec", &id, "/bin/sh", "-c",
        "umount -l /proc && mount -t tmpfs none /proc && mkdir /proc/self /proc/thread-self && ln -s /mnt/host/canary /proc/self/oom_score_adj && ln -s /mnt/host/canary /proc/thread-self/oom_score_adj && echo planted",
    ]);
    assert!(
        stdout(&out).contains("planted"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let p = ctx.dir.path().join("p.json");
    let mut process = c["process"].clone();
    process["args"] = json!(["/bin/sleep", "100"]);
    process["oomScoreAdj"] = json!(123);
    std::fs::write(&p, process.to_string()).unwrap();
    let pf = ctx.dir.path().join("e.pid");
    let out = ctx.cuddy(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        "--process",
        p.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out, "exec with oomScoreAdj");
    assert_eq!(
        std::fs::read_to_string(secret.join("canary")).unwrap(),
        SECRET
    );
    let epid = std::fs::read_to_string(&pf).unwrap();
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", epid.trim())).unwrap();
    assert_eq!(adj.trim(), "123");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}
