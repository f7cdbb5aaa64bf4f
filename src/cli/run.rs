/// `cuddy run`: create + start; in the foreground, wait and exit with the
/// container's status (128+N when killed by signal N).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: super::CreateFlags,
    /// Return once the container is started instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    pub keep: bool,
    /// Container id.
    pub id: String,
}
