//! `ps`: the container's processes, from its cgroup.

use std::process::Command;

use super::{ContainerError, Result, Root};
use crate::cli::PsFormat;

/// The container's pids as a JSON array, or ps(1)'s table (default `-ef`)
/// filtered to those pids, as runc does.
pub fn ps(root: &Root, id: &str, format: PsFormat, ps_args: &[String]) -> Result<String> {
    let st = root.load(id)?;
    let pids = match &st.cgroup {
        Some(cg) => cg.pids()?,
        None => Vec::new(),
    };
    match format {
        PsFormat::Json => Ok(format!("{}\n", serde_json::Value::from(pids))),
        PsFormat::Table => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                ps_args.to_vec()
            };
            let out = Command::new("ps")
                .args(&args)
                .output()
                .map_err(|e| ContainerError::Io {
                    op: "run",
                    path: format!("ps {}", args.join(" ")).into(),
                    source: e,
                })?;
            if !out.status.success() {
                return Err(ContainerError::Unsupported(format!(
                    "ps {} failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            filter_table(&String::from_utf8_lossy(&out.stdout), &pids)
        }
    }
}

/// Keeps the header and the lines whose PID column is one of `pids`.
fn filter_table(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| {
            ContainerError::Unsupported(format!(
                "ps output has no PID column (header {header:?}): pass ps options that include it"
            ))
        })?;
    let mut out = format!("{header}\n");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_filter() {
        let t = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\nroot 42 1 0 10:00 ? 00:00:00 sleep 42\n";
        assert_eq!(
            filter_table(t, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 42\n"
        );
        assert!(filter_table("UID CMD\n", &[1]).is_err());
    }
}
