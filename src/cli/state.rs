/// `cuddy state`.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// Container id.
    pub id: String,
}
