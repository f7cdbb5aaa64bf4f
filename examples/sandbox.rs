//! A throwaway sandbox through cuddy's library API: runs a command in a new
//! container from a rootfs and exits with its status.
//!
//!     sandbox ROOTFS CMD [ARGS...]
//!
//! cuddy forks the container's init without re-executing itself, so the
//! library must be called from a single-threaded process like this one
//! (see docs/library.md).

use std::process::ExitCode;

use cuddy::container::{self, CreateOptions, Root};

fn main() -> ExitCode {
    // First: the container's init is forked from this program, so it must
    // run from a sealed view of its binary (re-executes it when needed).
    if let Err(e) = cuddy::exeseal::ensure_sealed() {
        eprintln!("sandbox: {e}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: sandbox ROOTFS CMD [ARGS...]");
        return ExitCode::from(2);
    }
    let dir = match tempfile::Builder::new().prefix("cuddy-sandbox-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sandbox: tempdir: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The default config (what `cuddy spec` writes), pointed at the rootfs.
    let mut config = cuddy::spec::default_spec(false, 0, 0);
    config["root"]["path"] = args[0].clone().into();
    config["process"]["args"] = args[1..].to_vec().into();
    config["process"]["terminal"] = false.into();
    let bundle = dir.path().join("bundle");
    if let Err(e) = std::fs::create_dir(&bundle)
        .and_then(|()| std::fs::write(bundle.join("config.json"), config.to_string()))
    {
        eprintln!("sandbox: write bundle: {e}");
        return ExitCode::FAILURE;
    }
    let root = Root::new(dir.path().join("state"));
    let opts = CreateOptions {
        id: format!("sandbox-{}", std::process::id()),
        bundle,
        ..Default::default()
    };
    // Foreground run: create, start, wait, delete; the container's status.
    match container::run(&root, &opts, false, false) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}
