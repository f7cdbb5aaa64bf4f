//! The sandbox's config.json, built from `cuddy spec`'s default
//! ([`crate::spec::default_spec`]) and the builder's settings, with an
//! image's config (OCI image-spec config.md) as defaults; and the overlay's
//! mount options. Pure functions: unit-tested without a kernel.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::SandboxError;
use super::image::ImageConfig;
use super::proto::Spec;

/// The PATH a sandbox gets when neither the image nor the caller sets one.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// cgroup CPU period (µs) used to express `cpus(f64)` as a quota.
const CPU_PERIOD: u64 = 100_000;

fn invalid(field: &'static str, value: impl Into<String>, why: &str) -> SandboxError {
    SandboxError::Invalid {
        field,
        value: value.into(),
        why: why.into(),
    }
}

/// `KEY=VALUE` lists merged: the default PATH, then the image's Env, then
/// the caller's; a later value for a key replaces the earlier one in place.
pub fn merge_env(image: &[String], explicit: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = vec![DEFAULT_PATH.to_string()];
    let all = image
        .iter()
        .cloned()
        .chain(explicit.iter().map(|(k, v)| format!("{k}={v}")));
    for e in all {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string();
        match out
            .iter_mut()
            .find(|o| o.split_once('=').map_or(o.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = e,
            None => out.push(e),
        }
    }
    out
}

/// The command: the caller's args exactly when given (they replace the
/// image's Entrypoint and Cmd, like `docker run --entrypoint`), else the
/// image's Entrypoint followed by its Cmd.
pub fn command(args: &[String], image: Option<&ImageConfig>) -> Result<Vec<String>, SandboxError> {
    if !args.is_empty() {
        return Ok(args.to_vec());
    }
    let from_image: Vec<String> = image
        .map(|c| c.entrypoint.iter().chain(&c.cmd).cloned().collect())
        .unwrap_or_default();
    if from_image.is_empty() {
        return Err(invalid(
            "args",
            "",
            "no command: give args (the rootfs or image has no Entrypoint/Cmd)",
        ));
    }
    Ok(from_image)
}

/// Checks the builder's values that the kernel would reject obscurely.
pub fn check(spec: &Spec) -> Result<(), SandboxError> {
    for m in &spec.mounts {
        if !m.dst.starts_with('/') {
            return Err(invalid(
                "mount destination",
                &m.dst,
                "must be an absolute path",
            ));
        }
        if !m.src.is_absolute() {
            return Err(invalid(
                "mount source",
                m.src.display().to_string(),
                "must be an absolute path",
            ));
        }
    }
    for t in &spec.tmpfs {
        if !t.starts_with('/') {
            return Err(invalid("tmpfs", t, "must be an absolute path"));
        }
    }
    if let Some(c) = spec.cwd.as_deref().filter(|c| !c.starts_with('/')) {
        return Err(invalid("cwd", c, "must be an absolute path"));
    }
    if let Some(c) = spec.cpus.filter(|c| !c.is_finite() || *c <= 0.0) {
        return Err(invalid("cpus", c.to_string(), "must be a positive number"));
    }
    if spec.memory == Some(0) {
        return Err(invalid("memory", "0", "must be at least one page"));
    }
    if let Some(p) = spec.pids.filter(|p| *p == 0 || *p < -1) {
        return Err(invalid(
            "pids",
            p.to_string(),
            "must be positive (or -1: no limit)",
        ));
    }
    for (k, _) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(invalid("env", k, "a key may not be empty nor contain '='"));
        }
    }
    Ok(())
}

/// config.json for the sandbox: `root.path` is `rootfs` (the overlay,
/// mounted there by the helper), writable; no terminal.
pub fn build(
    spec: &Spec,
    image: Option<&ImageConfig>,
    image_user: Option<(u32, u32)>,
) -> Result<Value, SandboxError> {
    check(spec)?;
    let mut c = crate::spec::default_spec(false, 0, 0);
    let args = command(&spec.args, image)?;
    let env = merge_env(image.map_or(&[][..], |i| &i.env[..]), &spec.env);
    let cwd = spec
        .cwd
        .clone()
        .or_else(|| image.and_then(|i| i.working_dir.clone()))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "/".into());
    let (uid, gid) = spec.user.or(image_user).unwrap_or((0, 0));
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(args);
    c["process"]["env"] = json!(env);
    c["process"]["cwd"] = json!(cwd);
    c["process"]["user"] = json!({"uid": uid, "gid": gid});
    c["root"] = json!({"path": "rootfs", "readonly": false});
    c["hostname"] = json!(spec.hostname.as_deref().unwrap_or("sandbox"));
    if let Some(mounts) = c["mounts"].as_array_mut() {
        for m in &spec.mounts {
            let mut opts = vec!["rbind", "nosuid", "nodev"];
            if m.readonly {
                opts.push("ro");
            }
            mounts.push(json!({
                "destination": m.dst, "type": "bind",
                "source": m.src, "options": opts
            }));
        }
        for t in &spec.tmpfs {
            mounts.push(json!({
                "destination": t, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"]
            }));
        }
    }
    let res = &mut c["linux"]["resources"];
    if let Some(m) = spec.memory {
        // No swap beyond the limit (memory.swap = limit), so the limit is
        // enforced by the OOM killer, not by swapping.
        res["memory"] = json!({"limit": m, "swap": m});
    }
    if let Some(f) = spec.cpus {
        let quota = ((f * CPU_PERIOD as f64).round() as u64).max(1000);
        res["cpu"] = json!({"quota": quota, "period": CPU_PERIOD});
    }
    if let Some(p) = spec.pids {
        res["pids"] = json!({"limit": p});
    }
    Ok(c)
}

/// overlayfs `lowerdir=`: the top layer first, so the image's layers
/// (bottom first) reversed; `:`, `,` and `\` escaped with a backslash
/// (fs/overlayfs/params.c splits on unescaped `:` and the mount data on
/// unescaped `,`).
pub fn lowerdir(layers_bottom_first: &[PathBuf]) -> String {
    layers_bottom_first
        .iter()
        .rev()
        .map(|p| escape(p))
        .collect::<Vec<_>>()
        .join(":")
}

fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The overlay's mount data.
pub fn overlay_options(lower: &str, upper: &Path, work: &Path) -> String {
    format!(
        "lowerdir={lower},upperdir={},workdir={}",
        escape(upper),
        escape(work)
    )
}

#[cfg(test)]
mod tests {
    use super::super::proto::{BindMount, Source};
    use super::*;

    fn spec() -> Spec {
        Spec {
            source: Source::Rootfs("/r".into()),
            args: vec![],
            env: vec![],
            cwd: None,
            user: None,
            hostname: None,
            mounts: vec![],
            tmpfs: vec![],
            memory: None,
            cpus: None,
            pids: None,
            network: None,
            publish: vec![],
            timeout_ms: None,
            state_root: "/run/x".into(),
            image_cache: None,
        }
    }

    fn image() -> ImageConfig {
        ImageConfig {
            env: vec!["PATH=/img/bin".into(), "A=image".into(), "B=image".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--flag".into()],
            working_dir: Some("/work".into()),
            user: Some("app".into()),
        }
    }

    #[test]
    fn explicit_env_wins_over_image_env_which_wins_over_the_default_path() {
        let env = merge_env(&image().env, &[("B".into(), "mine".into())]);
        assert_eq!(env, vec!["PATH=/img/bin", "A=image", "B=mine"]);
        assert_eq!(merge_env(&[], &[]), vec![DEFAULT_PATH]);
    }

    #[test]
    fn image_entrypoint_and_cmd_are_the_command_only_without_args() {
        let img = image();
        assert_eq!(command(&[], Some(&img)).unwrap(), vec!["/entry", "--flag"]);
        let mine = vec!["/bin/true".to_string()];
        assert_eq!(command(&mine, Some(&img)).unwrap(), mine);
        let e = command(&[], None).unwrap_err().to_string();
        assert!(e.contains("no command"), "{e}");
    }

    #[test]
    fn image_defaults_fill_cwd_user_env() {
        let c = build(&spec(), Some(&image()), Some((1000, 1001))).unwrap();
        assert_eq!(c["process"]["cwd"], "/work");
        assert_eq!(c["process"]["user"], json!({"uid": 1000, "gid": 1001}));
        assert_eq!(c["process"]["args"], json!(["/entry", "--flag"]));
        assert_eq!(c["process"]["terminal"], false);
        assert_eq!(c["root"], json!({"path": "rootfs", "readonly": false}));
        let mut s = spec();
        s.cwd = Some("/tmp".into());
        s.user = Some((5, 6));
        let c = build(&s, Some(&image()), Some((1000, 1001))).unwrap();
        assert_eq!(c["process"]["cwd"], "/tmp");
        assert_eq!(c["process"]["user"], json!({"uid": 5, "gid": 6}));
    }

    #[test]
    fn limits_mounts_and_tmpfs_land_in_the_config() {
        let mut s = spec();
        s.args = vec!["true".into()];
        s.memory = Some(64 << 20);
        s.cpus = Some(0.5);
        s.pids = Some(20);
        s.mounts = vec![BindMount {
            src: "/host".into(),
            dst: "/in".into(),
            readonly: true,
        }];
        s.tmpfs = vec!["/scratch".into()];
        let c = build(&s, None, None).unwrap();
        let r = &c["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"], json!({"quota": 50_000, "period": 100_000}));
        assert_eq!(r["pids"]["limit"], 20);
        let mounts = c["mounts"].as_array().unwrap();
        let bind = mounts.iter().find(|m| m["destination"] == "/in").unwrap();
        assert_eq!(bind["source"], "/host");
        assert!(bind["options"].as_array().unwrap().contains(&json!("ro")));
        assert!(
            mounts
                .iter()
                .any(|m| m["destination"] == "/scratch" && m["type"] == "tmpfs")
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut s = spec();
        s.args = vec!["true".into()];
        s.mounts = vec![BindMount {
            src: "rel".into(),
            dst: "/in".into(),
            readonly: false,
        }];
        let e = build(&s, None, None).unwrap_err().to_string();
        assert!(e.contains("mount source") && e.contains("rel"), "{e}");
        let mut s = spec();
        s.cpus = Some(-1.0);
        assert!(check(&s).unwrap_err().to_string().contains("cpus"));
        let mut s = spec();
        s.pids = Some(0);
        assert!(check(&s).unwrap_err().to_string().contains("pids"));
    }

    #[test]
    fn lowerdir_puts_the_top_layer_first_and_escapes() {
        let layers = vec![PathBuf::from("/c/base"), PathBuf::from("/c/a:b,c")];
        assert_eq!(lowerdir(&layers), "/c/a\\:b\\,c:/c/base");
        assert_eq!(
            overlay_options("/l", Path::new("/s/up"), Path::new("/s/work")),
            "lowerdir=/l,upperdir=/s/up,workdir=/s/work"
        );
    }
}
