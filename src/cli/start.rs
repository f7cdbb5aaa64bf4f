/// `cuddy start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Container id.
    pub id: String,
}
