/// `cuddy kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Send the signal to every process of the container, not only its init.
    #[arg(short, long)]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal name (TERM, SIGTERM) or number; default SIGTERM.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}
