use std::net::IpAddr;
use std::path::PathBuf;

use crate::network::{Mac, Mode, PortMapping};

/// The flags `create` and `run` share.
#[derive(Debug, clap::Args)]
pub struct CreateFlags {
    /// Path to the bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid to this file (atomically).
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when `terminal` is true.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root (MS_MOVE + chroot instead), e.g. on a ramfs root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra file descriptors (3..3+N) to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Read the spec from FILE instead of the bundle's config.json (crun);
    /// relative paths in it are still relative to the bundle.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Network: none, host, bridge[=NAME] (default bridge cuddy0) or
    /// cni[=NAME]. Without it (and without cuddy.network.* annotations)
    /// config.json alone decides, as with runc (docs/networking.md).
    #[arg(long, value_name = "MODE")]
    pub network: Option<Mode>,
    /// The container's address (bridge mode: inside the bridge's subnet;
    /// once per family).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ip: Vec<IpAddr>,
    /// The MAC address of the container's eth0.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<Mac>,
    /// Publish a container port on the host (repeatable).
    #[arg(long, value_name = "[HOSTIP:]HOSTPORT:CPORT[/tcp|udp]")]
    pub publish: Vec<PortMapping>,
    /// Name server for the container's /etc/resolv.conf (repeatable).
    #[arg(long, value_name = "IP")]
    pub dns: Vec<IpAddr>,
    /// CNI network configuration directory (default /etc/cni/net.d).
    #[arg(long = "cni-config-dir", value_name = "DIR")]
    pub cni_config_dir: Option<PathBuf>,
    /// CNI plugin directory (default /usr/lib/cni).
    #[arg(long = "cni-plugin-dir", value_name = "DIR")]
    pub cni_plugin_dir: Option<PathBuf>,
}

/// `cuddy create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Container id.
    pub id: String,
}
