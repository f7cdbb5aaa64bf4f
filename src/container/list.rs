//! `state` and `list`.

use std::os::unix::fs::MetadataExt;

use serde_json::{Value, json};

use super::{Result, Root, State, Status, owner_name};
use crate::cli::ListFormat;

/// The state JSON of runtime.md "State" (valid against state-schema.json),
/// plus runc's `rootfs`, `created` and `owner`.
pub fn state_json(root: &Root, st: &State) -> Value {
    let status = root.status(st);
    let pid = if matches!(status, Status::Stopped) {
        0
    } else {
        st.pid
    };
    let mut v = json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": st.id,
        "pid": pid,
        "status": status,
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
        "owner": st.owner,
    });
    if !st.annotations.is_empty() {
        v["annotations"] = json!(st.annotations);
    }
    v
}

pub fn list(root: &Root, format: ListFormat, quiet: bool) -> Result<String> {
    root.sweep_dead_creates();
    let mut states = Vec::new();
    for id in root.ids()? {
        // A container deleted meanwhile is simply not listed.
        if let Ok(st) = root.load(&id) {
            states.push(st);
        }
    }
    if quiet {
        return Ok(states.iter().map(|s| format!("{}\n", s.id)).collect());
    }
    match format {
        ListFormat::Json => {
            let arr: Vec<Value> = states.iter().map(|s| state_json(root, s)).collect();
            Ok(format!("{}\n", Value::Array(arr)))
        }
        ListFormat::Table => {
            let mut out = format!(
                "{:<12} {:<8} {:<10} {:<40} {:<31} {}\n",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"
            );
            for s in &states {
                let v = state_json(root, s);
                let owner = std::fs::metadata(root.dir(&s.id))
                    .map(|m| owner_name(m.uid()))
                    .unwrap_or_else(|_| s.owner.clone());
                out.push_str(&format!(
                    "{:<12} {:<8} {:<10} {:<40} {:<31} {}\n",
                    s.id,
                    v["pid"].as_i64().unwrap_or(0),
                    v["status"].as_str().unwrap_or(""),
                    s.bundle.display(),
                    s.created,
                    owner
                ));
            }
            Ok(out)
        }
    }
}
