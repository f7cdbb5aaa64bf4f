/// Output format of `cuddy ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PsFormat {
    Table,
    Json,
}

/// `cuddy ps`: the container's processes.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Output format: table (ps(1) filtered to the container) or json (array of pids).
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: PsFormat,
    /// Container id.
    pub id: String,
    /// Options for ps(1) in table format (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}
