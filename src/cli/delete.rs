/// `cuddy delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running.
    #[arg(short, long)]
    pub force: bool,
    /// The id is a POSIX extended regular expression: delete every container
    /// whose id it matches (crun's flag; unanchored, as regexec).
    #[arg(short, long)]
    pub regex: bool,
    /// Container id (with --regex: the regular expression).
    pub id: String,
}
