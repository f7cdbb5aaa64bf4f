//! The bad input catalogue (issue 11): malformed bundles and command lines,
//! one row each, run by one test. Every row states its input, a fragment
//! of the message it must give (naming the field or path), its exit code,
//! and is followed by proof that nothing was left behind: no state entry,
//! cgroup, mount or process of the row's id, and the containers the rows
//! act on unchanged. runtime.md "Errors": a failing operation MUST leave the
//! container's state as it was. A failure report names every failing row.

#![allow(clippy::unwrap_used)]

#[path = "catalogue/cli_rows.rs"]
mod cli_rows;
#[path = "catalogue/config_rows.rs"]
mod config_rows;
#[path = "catalogue/linux_rows.rs"]
mod linux_rows;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;
use crate::require_root;

/// One malformed input.
pub struct Row {
    pub name: &'static str,
    pub input: Input,
    /// Fragments stderr must contain (placeholders replaced).
    pub expect: &'static [&'static str],
    /// The exit code: 1 for a refused operation, 2 for a usage error.
    pub code: i32,
}

pub enum Input {
    /// The default config, edited (the test's directory given for paths);
    /// run as `create`.
    Config(fn(&mut Value, &Path)),
    /// config.json's text; run as `create`.
    Text(&'static str),
    /// cuddy's arguments, and the text of {FILE} when there is one.
    Cli(&'static [&'static str], Option<&'static str>),
}

/// The containers the CLI rows act on, and what must stay as it is.
struct World {
    subst: Vec<(&'static str, String)>,
    /// (id, status) of each standing container.
    standing: Vec<(String, String)>,
    config: PathBuf,
    config_text: Vec<u8>,
}

fn setup(ctx: &Ctx) -> World {
    let good = ctx.bundle("good", &ctx.config(&["/bin/sleep", "1000"]));
    let mut tty = ctx.config(&["/bin/sh"]);
    tty["process"]["terminal"] = Value::Bool(true);
    let tty = ctx.bundle("tty", &tty);
    let b = good.to_str().unwrap();
    let mk = |name: &str, verbs: &[&[&str]]| {
        let id = ctx.id(name);
        assert_ok(&ctx.cuddy(&["create", "--bundle", b, &id]), "create");
        for v in verbs {
            let mut args = v.to_vec();
            args.push(&id);
            assert_ok(&ctx.cuddy(&args), "setup");
        }
        id
    };
    let created = mk("created", &[]);
    let running = mk("running", &[&["start"]]);
    let paused = mk("paused", &[&["start"], &["pause"]]);
    let stopped = mk("stopped", &[&["start"]]);
    assert_ok(&ctx.cuddy(&["kill", &stopped, "KILL"]), "kill");
    wait_until("stopped", || ctx.state(&stopped)["status"] == "stopped");
    let standing = [&created, &running, &paused, &stopped]
        .iter()
        .map(|id| {
            (
                id.to_string(),
                ctx.state(id)["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let config = good.join("config.json");
    World {
        subst: vec![
            ("{BUNDLE}", b.to_string()),
            ("{TTYBUNDLE}", tty.to_str().unwrap().to_string()),
            ("{CREATED}", created),
            ("{RUNNING}", running),
            ("{PAUSED}", paused),
            ("{STOPPED}", stopped),
            (
                "{GHOST}",
                format!("cuddy-t-cat-ghost-{}", std::process::id()),
            ),
            ("{DIR}", ctx.dir.path().to_str().unwrap().to_string()),
            ("{LONGID}", "x".repeat(1025)),
        ],
        standing,
        config_text: std::fs::read(&config).unwrap(),
        config,
    }
}

fn subst(w: &World, s: &str, id: &str, file: &Path) -> String {
    let mut s = s
        .replace("{ID}", id)
        .replace("{FILE}", file.to_str().unwrap());
    for (k, v) in &w.subst {
        s = s.replace(k, v);
    }
    s
}

/// Runs one row; `Err` says what is wrong with it.
fn run_row(ctx: &Ctx, w: &World, row: &Row) -> Result<(), String> {
    let id = ctx.id(row.name);
    let file = ctx.dir.path().join(format!("{}.input", row.name));
    let args: Vec<String> = match &row.input {
        Input::Config(edit) => {
            let mut c = ctx.config(&["/bin/true"]);
            edit(&mut c, ctx.dir.path());
            let b = ctx.bundle(row.name, &c);
            create_args(&b, &id)
        }
        Input::Text(text) => {
            let b = ctx.bundle(row.name, &Value::Null);
            std::fs::write(b.join("config.json"), text).unwrap();
            create_args(&b, &id)
        }
        Input::Cli(args, text) => {
            if let Some(t) = text {
                std::fs::write(&file, t).unwrap();
            }
            args.iter().map(|a| subst(w, a, &id, &file)).collect()
        }
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ctx.cuddy(&args);
    let err = stderr(&out);
    let mut wrong = Vec::new();
    if out.status.code() != Some(row.code) {
        wrong.push(format!(
            "exit {:?}, expected {}",
            out.status.code(),
            row.code
        ));
    }
    for e in row.expect {
        let e = subst(w, e, &id, &file);
        if !err.contains(&e) {
            wrong.push(format!("no {e:?} in the message"));
        }
    }
    if row.code == 1 && err.matches("cuddy:").count() != 1 {
        wrong.push("the error is not printed exactly once".into());
    }
    let cli = matches!(row.input, Input::Cli(..));
    wrong.extend(leftovers(ctx, w, &id, cli));
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n    stderr: {}",
            wrong.join("; "),
            err.trim_end()
        ))
    }
}

fn create_args(bundle: &Path, id: &str) -> Vec<String> {
    let b = bundle.to_str().unwrap();
    ["create", "--bundle", b, id].map(String::from).to_vec()
}

/// What a failed row must not have changed: nothing of `id`, no new state
/// entry, and (for a command line, which may name them) the standing
/// containers and the good bundle as they were.
fn leftovers(ctx: &Ctx, w: &World, id: &str, cli: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ctx.assert_no_leftovers(id);
    }));
    if caught.is_err() {
        wrong.push(format!("{id} left something behind (see the panic above)"));
    }
    if processes_naming(id) > 0 {
        wrong.push(format!("a process of {id} is left"));
    }
    let mut entries: Vec<String> = std::fs::read_dir(&ctx.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !w.standing.iter().any(|(s, _)| s == n))
        .collect();
    entries.retain(|n| !n.starts_with('.'));
    if !entries.is_empty() {
        wrong.push(format!("new state entries: {entries:?}"));
        // Removed, so that the next rows are judged on their own.
        for e in &entries {
            let _ = ctx.cuddy(&["delete", "--force", e]);
        }
    }
    if !cli {
        return wrong;
    }
    let list = ctx.cuddy(&["list", "--format", "json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
    for (sid, status) in &w.standing {
        let now = list
            .as_array()
            .and_then(|l| l.iter().find(|c| c["id"] == sid.as_str()))
            .map(|c| c["status"].clone())
            .unwrap_or_default();
        if now != status.as_str() {
            wrong.push(format!("{sid} is {now} now, was {status}"));
        }
    }
    if std::fs::read(&w.config).unwrap() != w.config_text {
        wrong.push(format!("{} was changed", w.config.display()));
    }
    wrong
}

/// Live (not zombie) processes whose command line names `id`, other than
/// a delete.
fn processes_naming(id: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if cmd.contains(id)
            && !cmd.contains(" delete ")
            && !stat.is_empty()
            && !stat.contains(") Z")
        {
            n += 1;
        }
    }
    n
}

#[test]
fn bad_input_catalogue() {
    require_root!();
    let ctx = Ctx::new("cat");
    let w = setup(&ctx);
    let rows: Vec<Row> = config_rows::rows()
        .into_iter()
        .chain(linux_rows::rows())
        .chain(cli_rows::rows())
        .collect();
    assert!(rows.len() >= 80, "{} rows", rows.len());
    let mut failed = Vec::new();
    for row in &rows {
        let t = std::time::Instant::now();
        let res = run_row(&ctx, &w, row);
        eprintln!("catalogue row {}: {:?}", row.name, t.elapsed());
        if let Err(e) = res {
            failed.push(format!("  {}: {e}", row.name));
        }
    }
    eprintln!("catalogue: {} rows, {} failed", rows.len(), failed.len());
    assert!(failed.is_empty(), "failing rows:\n{}", failed.join("\n"));
}
