/// `cuddy events`: resource usage and OOM notifications, as JSON lines.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats events while streaming (Go duration: 5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub interval: String,
    /// Container id.
    pub id: String,
}
