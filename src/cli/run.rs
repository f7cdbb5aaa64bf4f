use std::path::PathBuf;

/// `cuddy run`: create + start; in the foreground, wait and exit with the
/// container's status (128+N when killed by signal N).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Path to the bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once the container is started instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the container's init pid to this file (atomically).
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when `terminal` is true.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Do not delete the container after it exits.
    #[arg(long)]
    pub keep: bool,
    /// Do not use pivot_root (MS_MOVE + chroot instead).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra file descriptors (3..3+N) to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
}
