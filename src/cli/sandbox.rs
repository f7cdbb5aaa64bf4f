//! `cuddy sandbox run|prune` (issue 12): throwaway sandboxes for test suites
//! in any language, and the hidden `serve` that `cuddy::Sandbox` starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use crate::sandbox::{self, Sandbox, SandboxError};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub command: SandboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run a command in a throwaway container over a rootfs or an image
    /// (copy-on-write); its stdio and exit status are the command's (128+N
    /// for signal N, 124 when --timeout killed it); nothing remains.
    Run(Box<SandboxRunArgs>),
    /// Remove what killed sandboxes left in the state root (--root,
    /// default /run/cuddy-sandbox); prints the names removed.
    Prune,
    /// The helper process of `cuddy::Sandbox` (not for use by hand).
    #[command(hide = true)]
    Serve {
        #[arg(long = "control-fd")]
        control_fd: i32,
    },
}

/// `-v SRC:DST[:ro|rw]`.
fn parse_volume(s: &str) -> Result<(PathBuf, String, bool), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        [_, _, opt] => return Err(format!("unknown option {opt:?} (expected ro or rw)")),
        _ => return Err("expected SRC:DST or SRC:DST:ro".into()),
    };
    if !src.starts_with('/') || !dst.starts_with('/') {
        return Err("SRC and DST must be absolute paths".into());
    }
    Ok((PathBuf::from(src), dst.to_string(), ro))
}

/// `-e KEY=VALUE`.
fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.into(), v.into())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// `-u UID[:GID]` (numeric; GID defaults to UID).
fn parse_user(s: &str) -> Result<(u32, u32), String> {
    let bad = |_| "expected numeric UID[:GID]".to_string();
    match s.split_once(':') {
        Some((u, g)) => Ok((u.parse().map_err(bad)?, g.parse().map_err(bad)?)),
        None => s.parse().map(|u| (u, u)).map_err(bad),
    }
}

/// `-m SIZE`: bytes, or k/m/g/t suffixes (as `cuddy update --memory`).
fn parse_size(s: &str) -> Result<u64, String> {
    match crate::container::parse_bytes("--memory", s) {
        Ok(v) if v > 0 => Ok(v as u64),
        Ok(_) => Err("expected a positive size".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `--timeout SECONDS` (fractions allowed).
fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err("expected a positive number of seconds".into()),
    }
}

#[derive(Debug, clap::Args)]
pub struct SandboxRunArgs {
    /// Root filesystem directory (the read-only lower layer).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    pub rootfs: Option<PathBuf>,
    /// OCI image layout directory or `docker save` tarball; PATH:NAME picks
    /// one image of several (by ref.name annotation or RepoTags).
    #[arg(long, value_name = "PATH[:NAME]")]
    pub image: Option<PathBuf>,
    /// Bind mount (repeatable).
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]", value_parser = parse_volume)]
    pub volumes: Vec<(PathBuf, String, bool)>,
    /// Environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as.
    #[arg(short = 'u', long = "user", value_name = "UID[:GID]", value_parser = parse_user)]
    pub user: Option<(u32, u32)>,
    /// Memory limit (OOM kill beyond it).
    #[arg(short = 'm', long = "memory", value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Process limit.
    #[arg(long, value_name = "N")]
    pub pids: Option<i64>,
    /// CPU limit in CPUs.
    #[arg(long, value_name = "F")]
    pub cpus: Option<f64>,
    /// Kill the command after SECONDS (exit status 124).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// Network: none (default), host, bridge[=NAME], cni[=NAME].
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Publish a port (bridge mode; repeatable).
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[HOSTIP:]HOSTPORT:CPORT[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// A fresh tmpfs at DIR (repeatable).
    #[arg(long, value_name = "DIR")]
    pub tmpfs: Vec<String>,
    /// Hostname (default "sandbox").
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Image cache directory (default $CUDDY_IMAGE_CACHE or /var/lib/cuddy/images).
    #[arg(long = "image-cache", value_name = "DIR")]
    pub image_cache: Option<PathBuf>,
    /// The command (default: the image's Entrypoint and Cmd).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

impl SandboxRunArgs {
    fn sandbox(self, state_root: PathBuf) -> Sandbox {
        let mut s = match (self.rootfs, self.image) {
            (Some(r), _) => Sandbox::rootfs(r),
            (None, Some(i)) => Sandbox::image(i),
            // clap requires one of them.
            (None, None) => Sandbox::rootfs(""),
        };
        s = s.args(self.command).state_root(state_root);
        for (src, dst, ro) in self.volumes {
            s = s.mount(src, dst, ro);
        }
        for (k, v) in self.env {
            s = s.env(k, v);
        }
        for t in self.tmpfs {
            s = s.tmpfs(t);
        }
        for p in self.publish {
            s = s.publish(p);
        }
        if let Some(v) = self.workdir {
            s = s.cwd(v);
        }
        if let Some(v) = self.hostname {
            s = s.hostname(v);
        }
        if let Some(v) = self.network {
            s = s.network(v);
        }
        if let Some(v) = self.image_cache {
            s = s.image_cache(v);
        }
        if let Some(v) = self.memory {
            s = s.memory(v);
        }
        if let Some(v) = self.pids {
            s = s.pids(v);
        }
        if let Some(v) = self.cpus {
            s = s.cpus(v);
        }
        if let Some(v) = self.timeout {
            s = s.timeout(v);
        }
        if let Some((u, g)) = self.user {
            s = s.user(u, g);
        }
        s
    }
}

/// Runs a `cuddy sandbox` command; returns the exit code.
pub fn run(args: SandboxArgs, root: Option<PathBuf>) -> Result<i32, SandboxError> {
    let root = root.unwrap_or_else(|| PathBuf::from(sandbox::DEFAULT_STATE_ROOT));
    match args.command {
        SandboxCommand::Run(a) => sandbox::run_cli(a.sandbox(root).spec()),
        SandboxCommand::Prune => {
            for n in sandbox::sweep::sweep(&root) {
                println!("{n}");
            }
            Ok(0)
        }
        SandboxCommand::Serve { control_fd } => sandbox::serve(control_fd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_env_user_size_specs() {
        assert_eq!(
            parse_volume("/a:/b:ro").unwrap(),
            (PathBuf::from("/a"), "/b".into(), true)
        );
        assert!(!parse_volume("/a:/b").unwrap().2);
        assert!(parse_volume("/a").unwrap_err().contains("SRC:DST"));
        assert!(parse_volume("/a:/b:rx").unwrap_err().contains("rx"));
        assert!(parse_volume("a:/b").unwrap_err().contains("absolute"));
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        assert_eq!(parse_user("5").unwrap(), (5, 5));
        assert_eq!(parse_user("5:6").unwrap(), (5, 6));
        assert!(parse_user("bob").is_err());
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_seconds("0").is_err());
        assert_eq!(parse_seconds("1.5").unwrap(), Duration::from_millis(1500));
    }
}
