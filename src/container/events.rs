//! `events`: runc's event stream. `--stats` prints one
//! `{"type":"stats","id":ID,"data":{...}}` line; without it, a stats event
//! every `--interval` and an `{"type":"oom","id":ID}` event each time the
//! kernel OOM-kills a process of the container, until the container stops.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ContainerError, Result, Root, Status};
use crate::cgroups::{Cgroup, CgroupError, Stats};

/// How often the OOM counter and the container's status are checked.
const POLL: Duration = Duration::from_millis(100);

/// Parses a Go duration as runc's `--interval` takes it: `5s`, `250ms`, `1m30s`, `1.5h`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = |why: &str| {
        ContainerError::Cgroup(CgroupError::Invalid {
            field: "--interval".into(),
            reason: format!("{s:?}: {why}"),
        })
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad("empty duration"));
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n]
            .parse()
            .map_err(|_| bad("expected a number followed by a unit (ns, us, ms, s, m, h)"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad("expected a unit: ns, us, ms, s, m or h")),
        };
        rest = &rest[u..];
        total += num * secs;
    }
    if !(total > 0.0 && total < 1e9) {
        return Err(bad("the interval must be greater than 0"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// How many processes the kernel OOM-killed in the cgroup so far (v1
/// memory.oom_control or v2 memory.events `oom_kill`); None if unknown.
pub(crate) fn oom_kills(cg: &Cgroup) -> Option<u64> {
    let file = match cg.v1_dir("memory") {
        Some(d) => d.join("memory.oom_control"),
        None => cg.unified_dir()?.join("memory.events"),
    };
    counter(&file, "oom_kill")
}

fn counter(file: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// runc's types.Event, fields in runc's order.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Stats>,
}

fn stats_event<'a>(id: &'a str, cg: &Cgroup) -> Result<Event<'a>> {
    Ok(Event {
        typ: "stats",
        id,
        data: Some(cg.stats()?),
    })
}

/// Writes one event line; false when the reader went away (stop quietly).
fn emit(out: &mut impl Write, ev: &Event) -> Result<bool> {
    let line = serde_json::to_string(ev)
        .map_err(|e| ContainerError::Unsupported(format!("serialize {} event: {e}", ev.typ)))?;
    let r = writeln!(out, "{line}").and_then(|_| out.flush());
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(ContainerError::Io {
            op: "write",
            path: "stdout".into(),
            source: e,
        }),
    }
}

pub fn events(
    root: &Root,
    id: &str,
    stats_only: bool,
    interval: &str,
    out: &mut impl Write,
) -> Result<()> {
    let interval = parse_duration(interval)?;
    let st = root.load(id)?;
    let status = root.status(&st);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(ContainerError::BadStatus {
            id: id.into(),
            status,
            hint: "events need a created, running or paused container",
        });
    }
    let cg = st.cgroup.clone().ok_or_else(|| {
        ContainerError::Unsupported(format!("container {id:?} has no cgroup: no events"))
    })?;
    if stats_only {
        emit(out, &stats_event(id, &cg)?)?;
        return Ok(());
    }
    let mut seen = oom_kills(&cg).unwrap_or(0);
    let mut next = Instant::now() + interval;
    loop {
        let stopped = root.status(&st) == Status::Stopped;
        if let Some(n) = oom_kills(&cg) {
            for _ in seen..n {
                if !emit(
                    out,
                    &Event {
                        typ: "oom",
                        id,
                        data: None,
                    },
                )? {
                    return Ok(());
                }
            }
            seen = seen.max(n);
        }
        if stopped {
            return Ok(());
        }
        let now = Instant::now();
        if now >= next {
            match stats_event(id, &cg) {
                Ok(ev) => {
                    if !emit(out, &ev)? {
                        return Ok(());
                    }
                }
                // The container may be going away meanwhile: say so, go on.
                Err(e) => tracing::warn!("events: stats of {id:?}: {e}"),
            }
            next += interval;
            if next < now {
                next = now + interval;
            }
        }
        std::thread::sleep(
            POLL.min(next.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, ms) in [
            ("5s", 5000),
            ("250ms", 250),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("100us", 0),
        ] {
            assert_eq!(parse_duration(s).unwrap().as_millis(), ms, "{s}");
        }
        for s in ["", "5", "0s", "-1s", "5x", "s"] {
            assert!(
                parse_duration(s)
                    .unwrap_err()
                    .to_string()
                    .contains("--interval"),
                "{s}"
            );
        }
    }

    #[test]
    fn counters() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("memory.events");
        std::fs::write(&f, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n").unwrap();
        assert_eq!(counter(&f, "oom_kill"), Some(2));
        assert_eq!(counter(&f, "oom"), Some(1));
        assert_eq!(counter(&f, "nope"), None);
    }
}
