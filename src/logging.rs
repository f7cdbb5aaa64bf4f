//! runc-compatible logging: `--log FILE` with `--log-format text|json`.
//!
//! containerd's runc shim reads the last `"level":"error"` line of the JSON log
//! to report why the runtime failed, so the JSON shape matches runc's
//! (`{"level":"error","msg":"...","time":"..."}`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::utils::rfc3339_now;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("open log file {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

enum Sink {
    Stderr,
    File(Mutex<File>),
}

struct RuncLayer {
    sink: Sink,
    format: LogFormat,
    max: Level,
}

#[derive(Default)]
struct MsgVisitor {
    msg: String,
    extra: Vec<(String, String)>,
}

impl Visit for MsgVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.extra
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.extra
                .push((field.name().to_string(), value.to_string()));
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Formats one log line in runc's text (logrus) or JSON shape.
pub fn format_line(
    format: LogFormat,
    level: &str,
    msg: &str,
    extra: &[(String, String)],
) -> String {
    let time = rfc3339_now();
    match format {
        LogFormat::Json => {
            let mut obj = serde_json::Map::new();
            obj.insert("level".into(), level.into());
            obj.insert("msg".into(), msg.into());
            obj.insert("time".into(), time.into());
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone().into());
            }
            serde_json::Value::Object(obj).to_string()
        }
        LogFormat::Text => {
            let mut s = format!("time=\"{time}\" level={level} msg={msg:?}");
            for (k, v) in extra {
                s.push_str(&format!(" {k}={v:?}"));
            }
            s
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *metadata.level() <= self.max
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > self.max {
            return;
        }
        let mut v = MsgVisitor::default();
        event.record(&mut v);
        let mut line = format_line(self.format, level_name(&level), &v.msg, &v.extra);
        line.push('\n');
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Sink::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }
}

/// Installs the global logger. Errors are additionally printed on stderr by
/// `main`, once, whatever the log destination.
/// Whether `init` sent the log to a file (then warnings are also printed
/// on stderr, where the caller sees them).
static TO_FILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A warning, as errors are reported: `cuddy: warning: ...` on stderr, and
/// when the log is a file (--log), a warning record there too, in its
/// format (without --log the log is stderr: printed once).
pub fn warn(msg: &str) {
    if TO_FILE.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("{msg}");
    }
    eprintln!("cuddy: warning: {msg}");
}

pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> Result<(), LogError> {
    TO_FILE.store(log.is_some(), std::sync::atomic::Ordering::Relaxed);
    let sink = match log {
        Some(p) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(p)
                .map_err(|source| LogError::Open {
                    path: p.display().to_string(),
                    source,
                })?;
            Sink::File(Mutex::new(f))
        }
        None => Sink::Stderr,
    };
    let max = if debug { Level::DEBUG } else { Level::WARN };
    let layer = RuncLayer { sink, format, max };
    // A second init (library users) is harmless: keep the first.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_runc_shape() {
        let l = format_line(LogFormat::Json, "error", "boom \"x\"", &[]);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn text_line_quotes_msg() {
        let l = format_line(LogFormat::Text, "warning", "a b", &[]);
        assert!(l.contains("level=warning msg=\"a b\""), "{l}");
    }
}
