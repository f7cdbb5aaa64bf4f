/// `cuddy pause`.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// Container id.
    pub id: String,
}

/// `cuddy resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// Container id.
    pub id: String,
}
