use std::path::PathBuf;

/// `cuddy spec`.
#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    /// Directory to write config.json into.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Generate a configuration for a rootless container.
    #[arg(long)]
    pub rootless: bool,
}
