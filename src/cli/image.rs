//! `cuddy image …`: the image cache of sandboxes (docs/images.md); the
//! work is in `crate::sandbox::image`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::sandbox::image::{ImageError, ImageStore, ImageSummary};

/// `cuddy image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The cache directory (default $CUDDY_IMAGE_CACHE, else
    /// /var/lib/cuddy/images).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// `--format` of `cuddy image ls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout directory or a `docker save` tarball
    /// (layers verified and unpacked once); prints the image digest.
    /// PATH:NAME picks one image of several (by its
    /// org.opencontainers.image.ref.name or io.containerd.image.name
    /// annotation, or a legacy tarball's RepoTags).
    Import {
        #[arg(required = true, value_name = "PATH[:NAME]")]
        paths: Vec<PathBuf>,
    },
    /// List the cached images: digest, size, in use, source.
    #[command(alias = "list")]
    Ls {
        #[arg(long, value_enum, default_value = "table")]
        format: ImageFormat,
    },
    /// Remove images (digest or unique prefix) and the layers only they use;
    /// refused while a sandbox uses the image.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        digests: Vec<String>,
    },
    /// Remove every image no sandbox uses, unused layers and what an
    /// interrupted import left.
    Prune,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn table(rows: &[ImageSummary]) -> String {
    let mut out = format!(
        "{:<19} {:>9} {:<6} {}\n",
        "DIGEST", "SIZE", "IN USE", "SOURCE"
    );
    for r in rows {
        let short: String = r.digest.chars().take(19).collect();
        let used = if r.in_use { "yes" } else { "no" };
        out.push_str(&format!(
            "{short:<19} {:>9} {used:<6} {}\n",
            human(r.size_bytes),
            r.source.display()
        ));
    }
    out
}

fn json(rows: &[ImageSummary]) -> String {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "digest": r.digest,
                "source": r.source,
                "size_bytes": r.size_bytes,
                "in_use": r.in_use,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// Runs `cuddy image …`; returns what to print.
pub fn run(a: ImageArgs) -> Result<String, ImageError> {
    let store = ImageStore::open(a.cache.unwrap_or_else(ImageStore::default_root))?;
    match a.command {
        ImageCommand::Import { paths } => {
            let mut out = String::new();
            for p in paths {
                out.push_str(&store.import(&p)?.digest);
                out.push('\n');
            }
            Ok(out)
        }
        ImageCommand::Ls { format } => {
            let rows = store.list()?;
            Ok(match format {
                ImageFormat::Table => table(&rows),
                ImageFormat::Json => json(&rows),
            })
        }
        ImageCommand::Rm { digests } => {
            let mut out = String::new();
            for d in digests {
                store.remove(&d)?;
                out.push_str(&format!("removed {d}\n"));
            }
            Ok(out)
        }
        ImageCommand::Prune => {
            let before = store.list()?.len();
            let freed = store.prune()?;
            let left = store.list()?.len();
            Ok(format!(
                "removed {} images ({left} in use kept), freed {}\n",
                before - left,
                human(freed)
            ))
        }
    }
}
