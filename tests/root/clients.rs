//! The configs real clients send, fed to cuddy as they are.
//!
//! `tests/fixtures/clients/*.json` were captured from Debian 12's podman 4.3
//! and Docker 20.10 (a runtime wrapper that copied each `config.json` before
//! handing over to runc; `integration/clients/capture.sh` makes them again).
//! Only host-specific values were replaced by placeholders: the rootfs path,
//! the bind sources under the clients' state dirs (`@DATA@/<name>`), the
//! cgroups path (`@CGROUP@`), and Docker's `libnetwork-setkey` prestart hook
//! (it calls back into the daemon that made the config) was dropped.
//! Everything else — seccomp profiles, `blockIO.weight: 0`, podman's
//! `pids.limit: 0` with ociVersion `1.0.2-dev`, `tmpcopyup`, rlimits,
//! masked paths — is what those clients send on every create.
//!
//! Each test asserts the effect, not only that the container started: the
//! cgroup files on the host after `create`, and what the process sees.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;
use crate::require_root;

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clients")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A client's config made runnable here: its own copy of the busybox rootfs
/// (so `tmpcopyup` and read-only roots are seen on known content), the bind
/// sources the client would have made, a test-owned cgroup, and `args`.
struct Client {
    config: Value,
    cgroup: String,
    data: PathBuf,
}

impl Client {
    fn new(ctx: &Ctx, name: &str, id: &str, args: &[&str]) -> Client {
        let rootfs = ctx.private_rootfs(&format!("rootfs-{id}"));
        let data = ctx.dir.path().join(format!("data-{id}"));
        std::fs::create_dir_all(&data).unwrap();
        // Content the image has where the clients mount tmpfs with tmpcopyup.
        std::fs::write(rootfs.join("tmp/from-image"), "image content\n").unwrap();
        let cgroup = format!("/cuddy-test/{id}");
        let text = fixture(name)
            .replace("@DATA@", data.to_str().unwrap())
            .replace("@CGROUP@", &cgroup);
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["root"]["path"] = json!(rootfs);
        config["process"]["args"] = json!(args);
        clamp_rlimits(&mut config);
        let c = Client {
            config,
            cgroup,
            data,
        };
        c.make_bind_sources();
        c
    }

    /// podman and Docker create these files before calling the runtime.
    fn make_bind_sources(&self) {
        for m in self.config["mounts"].as_array().unwrap() {
            let Some(src) = m["source"].as_str() else {
                continue;
            };
            let src = Path::new(src);
            if !src.starts_with(&self.data) || src.exists() {
                continue;
            }
            let name = src.file_name().unwrap().to_str().unwrap();
            match name {
                "shm" | "vol" => std::fs::create_dir_all(src).unwrap(),
                // Docker's --init binary: the static probe stands in for
                // tini (same shape of mount: a host file onto /sbin/docker-init).
                "docker-init" => {
                    std::fs::copy(fixture_rootfs().join("bin/probe"), src).unwrap();
                }
                _ => std::fs::write(src, format!("{name} from the client\n")).unwrap(),
            }
        }
    }

    fn host_file(&self, controller: &str, file: &str) -> String {
        let rel = self.cgroup.trim_start_matches('/');
        let dir = if is_v2() {
            Path::new("/sys/fs/cgroup").join(rel)
        } else {
            Path::new("/sys/fs/cgroup").join(controller).join(rel)
        };
        let p = dir.join(file);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    }
}

/// This host's root lacks CAP_SYS_RESOURCE: a hard limit above the current
/// one (podman asks RLIMIT_NPROC 1048576) fails with EPERM in runc, crun and
/// cuddy alike, so the values are capped at what this test process has.
fn clamp_rlimits(config: &mut Value) {
    let Some(list) = config["process"]["rlimits"].as_array_mut() else {
        return;
    };
    for r in list {
        let res = match r["type"].as_str().unwrap() {
            "RLIMIT_NOFILE" => nix::sys::resource::Resource::RLIMIT_NOFILE,
            "RLIMIT_NPROC" => nix::sys::resource::Resource::RLIMIT_NPROC,
            other => panic!("unexpected rlimit {other} in a client fixture"),
        };
        let (_, hard) = nix::sys::resource::getrlimit(res).unwrap();
        for k in ["hard", "soft"] {
            let v = r[k].as_u64().unwrap().min(hard);
            r[k] = json!(v);
        }
    }
}

/// Runs the client's config in the foreground; returns stdout.
fn run_client(ctx: &Ctx, name: &str, args: &[&str]) -> String {
    let short: String = name.replace('-', "").chars().take(12).collect();
    let id = ctx.id(&short);
    let c = Client::new(ctx, name, &id, args);
    let out = ctx.run(&id, &c.config);
    assert_ok(&out, &format!("{name}: run"));
    ctx.assert_no_leftovers(&id);
    stdout(&out)
}

/// Creates the client's container, returns its cgroup reader; the caller
/// deletes it.
fn create_client(ctx: &Ctx, name: &str, id: &str) -> Client {
    let c = Client::new(ctx, name, id, &["/bin/probe", "--sleep"]);
    let b = ctx.bundle(id, &c.config);
    let out = ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), id]);
    assert_ok(&out, &format!("{name}: create"));
    c
}

const STATUS: &str = "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status";

/// Every fixture starts, under its client's seccomp profile (filter mode),
/// and exits 0. runtime.md#lifecycle, config-linux.md#seccomp.
#[test]
fn every_captured_config_runs_under_its_seccomp_profile() {
    require_root!();
    let ctx = Ctx::new("clients");
    for name in [
        "podman-run",
        "podman-read-only",
        "podman-tmpfs",
        "podman-pids-limit-unlimited",
        "podman-memory",
        "podman-user-cap-drop-all",
        "podman-volume-ro",
        "docker-run",
        "docker-read-only-tmpfs",
        "docker-memory-pids-shares",
        "docker-user-cap-drop-all",
        "docker-run-for-update",
    ] {
        let out = run_client(&ctx, name, &["/bin/sh", "-c", STATUS]);
        assert!(
            out.contains("Seccomp:\t2"),
            "{name}: no seccomp filter: {out}"
        );
    }
}

/// Docker sends `"blockIO":{"weight":0}` and `"cpu":{"shares":0}` on every
/// create: both mean "not set" (runc), so the cgroup keeps its defaults.
/// config-linux.md#block-io, config-linux.md#cpu.
#[test]
fn docker_zero_weight_and_shares_mean_unset() {
    require_root!();
    let ctx = Ctx::new("cldz");
    let id = ctx.id("d");
    let c = create_client(&ctx, "docker-run", &id);
    if is_v2() {
        assert_eq!(c.host_file("cpu", "cpu.weight"), "100");
    } else {
        assert_eq!(c.host_file("cpu", "cpu.shares"), "1024");
    }
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// podman 4.3 sends `"pids":{"limit":0}` for `--pids-limit -1`, with
/// ociVersion 1.0.2-dev: unlimited. config-linux.md#pids.
#[test]
fn podman_pids_limit_zero_is_unlimited() {
    require_root!();
    let ctx = Ctx::new("clpid");
    let id = ctx.id("p");
    let c = create_client(&ctx, "podman-pids-limit-unlimited", &id);
    assert_eq!(c.host_file("pids", "pids.max"), "max");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// `-m 64m --pids-limit 100 --cpu-shares 512` as Docker sends them, and
/// podman's `-m 64m`. config-linux.md#memory, #pids, #cpu.
#[test]
fn memory_pids_and_shares_as_sent() {
    require_root!();
    let ctx = Ctx::new("clmem");
    let id = ctx.id("d");
    let c = create_client(&ctx, "docker-memory-pids-shares", &id);
    let (mem, shares) = if is_v2() {
        (
            c.host_file("memory", "memory.max"),
            c.host_file("cpu", "cpu.weight"),
        )
    } else {
        (
            c.host_file("memory", "memory.limit_in_bytes"),
            c.host_file("cpu", "cpu.shares"),
        )
    };
    assert_eq!(mem, "67108864");
    // v2: shares 512 as a weight (the log-quadratic mapping of runc >= 1.3.2
    // and crun >= 1.23, src/cgroups/v2.rs shares_to_weight).
    assert_eq!(shares, if is_v2() { "59" } else { "512" });
    assert_eq!(c.host_file("pids", "pids.max"), "100");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");

    let id = ctx.id("p");
    let c = create_client(&ctx, "podman-memory", &id);
    let mem = if is_v2() {
        c.host_file("memory", "memory.max")
    } else {
        c.host_file("memory", "memory.limit_in_bytes")
    };
    assert_eq!(mem, "67108864");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// `docker update --memory 128m --memory-swap 256m --cpu-shares 256
/// --pids-limit 50` sends this resources JSON (zeros for what it does not
/// change) to `update --resources -`. runc's `update`.
#[test]
fn docker_update_payload_applies_and_keeps_zeros_unset() {
    require_root!();
    let ctx = Ctx::new("clupd");
    let id = ctx.id("u");
    let c = create_client(&ctx, "docker-run-for-update", &id);
    let res = c.data.join("update.json");
    std::fs::write(&res, fixture("docker-update-resources")).unwrap();
    let out = ctx.cuddy(&["update", "--resources", res.to_str().unwrap(), &id]);
    assert_ok(&out, "update with Docker's payload");
    if is_v2() {
        assert_eq!(c.host_file("memory", "memory.max"), "134217728");
        // v2 swap is swap only: 256M memory+swap - 128M memory.
        assert_eq!(c.host_file("memory", "memory.swap.max"), "134217728");
        assert_eq!(c.host_file("cpu", "cpu.weight"), "35");
    } else {
        assert_eq!(c.host_file("memory", "memory.limit_in_bytes"), "134217728");
        assert_eq!(c.host_file("cpu", "cpu.shares"), "256");
        // quota 0 / period 0 = unchanged defaults.
        assert_eq!(c.host_file("cpu", "cpu.cfs_quota_us"), "-1");
    }
    assert_eq!(c.host_file("pids", "pids.max"), "50");
    assert_ok(&ctx.cuddy(&["delete", "--force", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

/// `--read-only` (podman: tmpfs /tmp and /run with tmpcopyup; Docker: the
/// tmpfs given by --tmpfs): the root is read-only, the tmpfs is writable and
/// holds what the image had there. config.md#root, config.md#mounts.
#[test]
fn read_only_roots_with_client_tmpfs() {
    require_root!();
    let ctx = Ctx::new("clro");
    let script = "touch /ro-check 2>/dev/null && echo root-writable; \
                  cat /tmp/from-image 2>/dev/null; \
                  touch /tmp/w && echo tmp-writable; \
                  grep -E ' /(tmp|scratch) ' /proc/mounts | cut -d' ' -f2,3";
    let out = run_client(&ctx, "podman-read-only", &["/bin/sh", "-c", script]);
    assert!(!out.contains("root-writable"), "podman --read-only: {out}");
    assert!(
        out.contains("image content"),
        "podman tmpcopyup of /tmp: {out}"
    );
    assert!(
        out.contains("tmp-writable") && out.contains("/tmp tmpfs"),
        "{out}"
    );

    let out = run_client(&ctx, "docker-read-only-tmpfs", &["/bin/sh", "-c", script]);
    assert!(!out.contains("root-writable"), "docker --read-only: {out}");
    assert!(
        out.contains("/scratch tmpfs"),
        "docker --tmpfs /scratch: {out}"
    );

    let out = run_client(&ctx, "podman-tmpfs", &["/bin/sh", "-c", script]);
    assert!(
        out.contains("/scratch tmpfs"),
        "podman --tmpfs /scratch: {out}"
    );
    assert!(
        out.contains("image content"),
        "a writable root keeps /tmp: {out}"
    );
}

/// `--user 1000:1000 --cap-drop ALL` from both clients: the ids and an
/// empty effective set. config.md#user, config.md#linux-process.
#[test]
fn user_and_no_capabilities_as_sent() {
    require_root!();
    let ctx = Ctx::new("clusr");
    for name in ["podman-user-cap-drop-all", "docker-user-cap-drop-all"] {
        let out = run_client(
            &ctx,
            name,
            &["/bin/sh", "-c", &format!("id -u; id -g; {STATUS}")],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..2], &["1000", "1000"], "{name}: {out}");
        assert!(out.contains("CapEff:\t0000000000000000"), "{name}: {out}");
    }
}

/// podman `-v src:/data:ro` and Docker `--init` (a host file bind-mounted
/// onto /sbin/docker-init). config.md#mounts.
#[test]
fn volume_ro_and_docker_init_binds() {
    require_root!();
    let ctx = Ctx::new("clvol");
    let out = run_client(
        &ctx,
        "podman-volume-ro",
        &[
            "/bin/sh",
            "-c",
            "touch /data/x 2>&1; grep ' /data ' /proc/mounts",
        ],
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains(" ro,") || out.contains(" ro "), "{out}");

    let out = run_client(&ctx, "docker-init", &["/sbin/docker-init", "--exit", "0"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pid"], 1, "docker-init runs as pid 1: {out}");
}
