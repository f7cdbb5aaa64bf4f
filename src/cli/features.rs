/// `cuddy features`.
#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {}
