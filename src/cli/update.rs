use std::path::PathBuf;

/// `cuddy update`: change the resource limits of a live container (runc's flags).
///
/// Memory values take runc's units (`512m`, `1g`, bytes without a suffix) or
/// `-1` for unlimited.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// JSON `LinuxResources` from FILE, or `-` for stdin (flags given too override it).
    #[arg(short = 'r', long, value_name = "FILE|-")]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10..1000; 0: unchanged).
    #[arg(long = "blkio-weight", value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period", value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: unlimited).
    #[arg(long = "cpu-quota", value_name = "US", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", value_name = "N")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period", value_name = "US")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds.
    #[arg(
        long = "cpu-rt-runtime",
        value_name = "US",
        allow_negative_numbers = true
    )]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (e.g. 0-2,4).
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit (deprecated; ignored with a warning where the kernel lacks it).
    #[arg(
        long = "kernel-memory",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit.
    #[arg(
        long = "kernel-memory-tcp",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit.
    #[arg(short = 'm', long, value_name = "BYTES", allow_negative_numbers = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit).
    #[arg(
        long = "memory-reservation",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(
        long = "memory-swap",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (-1: unlimited; 0: unlimited for a config
    /// whose ociVersion is below 1.3.0, else a limit of 0).
    #[arg(long = "pids-limit", value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Container id.
    pub id: String,
}
