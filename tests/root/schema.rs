//! The JSON cuddy prints, validated against the OCI runtime spec's own
//! schemas (schema/state-schema.json, features-schema.json,
//! config-schema.json) with a real JSON Schema validator.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::require_root;

/// The spec text lies beside the checkout (../shared), as on CI.
fn schema_dir() -> PathBuf {
    let beside =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/oci-runtime-spec/schema");
    if beside.exists() {
        return beside;
    }
    let fixed = PathBuf::from("/work/shared/oci-runtime-spec/schema");
    assert!(
        fixed.exists(),
        "the OCI runtime spec schemas are not beside the checkout"
    );
    fixed
}

fn validate(schema: &str, doc: &[u8]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integration/schema_check.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(schema_dir())
        .arg(schema)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the schema check (integration/test.sh installs python3-jsonschema)");
    child.stdin.take().unwrap().write_all(doc).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{schema}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(doc)
    );
}

/// runtime.md "State": created, running and stopped states are valid.
#[test]
fn state_features_and_spec_match_the_schemas() {
    require_root!();
    let ctx = Ctx::new("schema");
    let id = ctx.id("a");
    let b = ctx.bundle("a", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    for status in ["created", "running", "stopped"] {
        match status {
            "running" => assert_ok(&ctx.cuddy(&["start", &id]), "start"),
            "stopped" => {
                assert_ok(&ctx.cuddy(&["kill", &id, "KILL"]), "kill");
                wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
            }
            _ => {}
        }
        let out = ctx.cuddy(&["state", &id]);
        assert_ok(&out, "state");
        assert!(stdout(&out).contains(status));
        validate("state-schema.json", &out.stdout);
    }
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");

    let out = ctx.cuddy(&["features"]);
    assert_ok(&out, "features");
    validate("features-schema.json", &out.stdout);

    for rootless in [false, true] {
        let dir = ctx.dir.path().join(format!("spec-{rootless}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec!["spec", "--bundle", dir.to_str().unwrap()];
        if rootless {
            args.push("--rootless");
        }
        assert_ok(&ctx.cuddy(&args), "spec");
        validate(
            "config-schema.json",
            &std::fs::read(dir.join("config.json")).unwrap(),
        );
    }
}
