use std::path::PathBuf;

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
}

/// `cuddy create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Container id.
    pub id: String,
}
