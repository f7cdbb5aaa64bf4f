//! Finding the `cuddy` binary that runs a sandbox's helper.

use std::path::{Path, PathBuf};

use super::{Result, SandboxError};

fn is_file(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file())
}

/// `explicit`, else `$CUDDY_BIN`, else `cuddy` next to the current
/// executable or one directory above it (cargo puts test executables in
/// target/*/deps/ and the binary in target/*/), else the first `cuddy` in
/// PATH. The error lists every place tried.
pub fn binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else if let Some(p) = std::env::var_os("CUDDY_BIN").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(p));
    } else {
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join("cuddy"));
                if let Some(up) = dir.parent() {
                    candidates.push(up.join("cuddy"));
                }
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join("cuddy")));
        }
    }
    for c in candidates {
        if is_file(&c) {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    let how = match (explicit, std::env::var_os("CUDDY_BIN")) {
        (Some(_), _) => "Sandbox::binary: ",
        (None, Some(v)) if !v.is_empty() => "$CUDDY_BIN: ",
        _ => "",
    };
    Err(SandboxError::Binary {
        tried: format!("{how}{}", tried.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_binary_that_is_missing_is_named() {
        let e = binary(Some(Path::new("/nonexistent/cuddy")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Sandbox::binary: /nonexistent/cuddy"), "{e}");
        let bin = std::env::current_exe().unwrap();
        assert_eq!(binary(Some(&bin)).unwrap(), bin);
    }
}
