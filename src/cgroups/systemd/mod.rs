//! The systemd cgroup driver's building blocks: a container's cgroup as a
//! transient scope unit created over D-Bus (`StartTransientUnit`), as runc's
//! `--systemd-cgroup` does.
//!
//! - [`wire`]: the D-Bus marshalling; [`dbus`]: messages and a synchronous
//!   connection (no thread: cuddy forks from a single-threaded process);
//! - [`unit`]: the scope's name from `cgroupsPath` `slice:prefix:name`, its
//!   cgroupfs path and its properties;
//! - [`Manager`]: the calls on `org.freedesktop.systemd1.Manager`, each waiting
//!   for its job (`JobRemoved`, matched before the call so it cannot be missed).
//!
//! Facts (opencontainers/cgroups `systemd/common.go`, crun `cgroup-systemd.c`):
//! - a job is waited for at most 30 s;
//! - `UnitExists` (a failed or stale unit of the same name) is answered by
//!   `ResetFailedUnit` and one retry;
//! - `StopUnit` of a unit that is gone fails with `NoSuchUnit`, which is success.
//!
//! [`driver`] puts it on [`crate::cgroups::Cgroup`]: create, update, destroy.

pub mod dbus;
mod driver;
pub mod unit;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_real;

use std::time::Duration;

use dbus::{Connection, DbusError, Message};
use wire::Value;

/// systemd's bus name, manager object and interface.
pub const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the systemd driver; each names the unit and the operation.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// Reaching systemd failed (before any unit is involved).
    #[error("systemd {op}: {source}")]
    Bus {
        op: String,
        #[source]
        source: Box<DbusError>,
    },
    /// A D-Bus call or wait failed (the source names the D-Bus error).
    #[error("systemd unit {unit}: {op}: {source}")]
    Dbus {
        unit: String,
        op: String,
        #[source]
        source: Box<DbusError>,
    },
    /// The unit's job finished without success.
    #[error("systemd unit {unit}: {op}: job {job} finished with result {result:?}")]
    Job {
        unit: String,
        op: String,
        job: String,
        result: String,
    },
    /// systemd answered something this driver does not understand.
    #[error("systemd {op}: unexpected reply {reply}")]
    Reply { op: String, reply: String },
}

/// A connection to systemd's manager.
#[derive(Debug)]
pub struct Manager {
    conn: Connection,
    /// systemd's version (`252` from `252.30-1~deb12u2`).
    pub version: u32,
    subscribed: bool,
}

/// A call to systemd's manager. `NO_AUTO_START`: where systemd is not running,
/// the bus must answer at once (the system bus "activates" it with /bin/false).
fn manager_call(member: &str, body: Vec<Value>) -> Message {
    let mut m = Message::call(SYSTEMD, MANAGER_PATH, MANAGER, member, body);
    m.flags = dbus::NO_AUTO_START;
    m
}

/// The leading number of systemd's `Version` property.
pub fn parse_version(v: &str) -> Option<u32> {
    let v = v.trim_start_matches('v');
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Manager {
    /// Connect to systemd on the system bus.
    pub fn connect() -> Result<Manager, SystemdError> {
        let conn = Connection::system().map_err(|source| SystemdError::Bus {
            op: "connecting to the system bus".into(),
            source: Box::new(source),
        })?;
        Manager::on(conn)
    }

    /// Use `conn` (any bus where `org.freedesktop.systemd1` answers).
    pub fn on(mut conn: Connection) -> Result<Manager, SystemdError> {
        let op = "reading the Manager's Version";
        let mut get = Message::call(
            SYSTEMD,
            MANAGER_PATH,
            "org.freedesktop.DBus.Properties",
            "Get",
            vec![Value::Str(MANAGER.into()), Value::Str("Version".into())],
        );
        get.flags = dbus::NO_AUTO_START;
        let reply = conn.call(get).map_err(|source| SystemdError::Bus {
            op: op.into(),
            source: Box::new(source),
        })?;
        let version = match reply.body.first() {
            Some(Value::Variant(v)) => v.as_str().and_then(parse_version),
            _ => None,
        };
        let Some(version) = version else {
            return Err(SystemdError::Reply {
                op: op.into(),
                reply: format!("{:?}", reply.body),
            });
        };
        Ok(Manager {
            conn,
            version,
            subscribed: false,
        })
    }

    fn call(&mut self, unit: &str, op: &str, msg: Message) -> Result<Message, SystemdError> {
        self.conn.call(msg).map_err(|source| SystemdError::Dbus {
            unit: unit.into(),
            op: op.into(),
            source: Box::new(source),
        })
    }

    /// Receive `JobRemoved` (a match rule, and `Subscribe` as go-systemd does).
    fn subscribe(&mut self, unit: &str) -> Result<(), SystemdError> {
        if self.subscribed {
            return Ok(());
        }
        let rule = format!(
            "type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'"
        );
        let add = Message::call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            vec![Value::Str(rule)],
        );
        self.call(unit, "AddMatch for JobRemoved", add)?;
        match self.conn.call(manager_call("Subscribe", Vec::new())) {
            Ok(_) => {}
            Err(DbusError::Remote { name, .. }) if name.ends_with(".AlreadySubscribed") => {}
            Err(source) => {
                return Err(SystemdError::Dbus {
                    unit: unit.into(),
                    op: "Subscribe".into(),
                    source: Box::new(source),
                });
            }
        }
        self.subscribed = true;
        Ok(())
    }

    /// Wait for the `JobRemoved` of `job`; its result must be `done`.
    fn wait_job(&mut self, unit: &str, op: &str, reply: &Message) -> Result<(), SystemdError> {
        let Some(Value::Path(job)) = reply.body.first() else {
            return Err(SystemdError::Reply {
                op: op.into(),
                reply: format!("{:?}", reply.body),
            });
        };
        let job = job.clone();
        let what = format!("JobRemoved for {job}");
        let sig = self
            .conn
            .wait_signal(&what, JOB_TIMEOUT, |m| {
                m.member.as_deref() == Some("JobRemoved")
                    && m.body.get(1) == Some(&Value::Path(job.clone()))
            })
            .map_err(|source| SystemdError::Dbus {
                unit: unit.into(),
                op: op.into(),
                source: Box::new(source),
            })?;
        let result = sig.body.get(3).and_then(Value::as_str).unwrap_or("");
        if result != "done" {
            return Err(SystemdError::Job {
                unit: unit.into(),
                op: op.into(),
                job,
                result: result.into(),
            });
        }
        Ok(())
    }

    /// Whether file descriptors can be passed (for `PIDFDs`).
    pub fn can_pass_fds(&self) -> bool {
        self.conn.unix_fds
    }

    /// Start the transient unit `unit` with `props` and wait for its job.
    pub fn start_transient_unit(
        &mut self,
        unit: &str,
        props: Vec<Value>,
    ) -> Result<(), SystemdError> {
        self.start_transient_unit_with_fds(unit, props, &[])
    }

    /// As [`Manager::start_transient_unit`], passing `fds` (which `h` values
    /// in `props` index: `PIDFDs`).
    pub fn start_transient_unit_with_fds(
        &mut self,
        unit: &str,
        props: Vec<Value>,
        fds: &[std::os::fd::RawFd],
    ) -> Result<(), SystemdError> {
        self.subscribe(unit)?;
        let op = "StartTransientUnit";
        let body = vec![
            Value::Str(unit.into()),
            Value::Str("replace".into()),
            Value::Array("(sv)".into(), props),
            Value::Array("(sa(sv))".into(), Vec::new()),
        ];
        let start = |body: Vec<Value>| {
            let mut m = manager_call(op, body);
            m.fds = fds.to_vec();
            m
        };
        let reply = match self.conn.call(start(body.clone())) {
            Err(DbusError::Remote { name, .. }) if name.ends_with(".UnitExists") => {
                // A failed unit of that name (a container that died with
                // this id): forget it and try once more.
                self.reset_failed(unit)?;
                self.call(unit, op, start(body))?
            }
            r => r.map_err(|source| SystemdError::Dbus {
                unit: unit.into(),
                op: op.into(),
                source: Box::new(source),
            })?,
        };
        self.wait_job(unit, op, &reply)
    }

    /// `ResetFailedUnit`; a unit that does not exist is fine.
    pub fn reset_failed(&mut self, unit: &str) -> Result<(), SystemdError> {
        let msg = manager_call("ResetFailedUnit", vec![Value::Str(unit.into())]);
        match self.conn.call(msg) {
            Ok(_) => Ok(()),
            Err(DbusError::Remote { name, .. }) if name.ends_with(".NoSuchUnit") => Ok(()),
            Err(source) => Err(SystemdError::Dbus {
                unit: unit.into(),
                op: "ResetFailedUnit".into(),
                source: Box::new(source),
            }),
        }
    }

    /// Stop `unit` and wait for it; a unit already gone is success.
    pub fn stop_unit(&mut self, unit: &str) -> Result<(), SystemdError> {
        self.subscribe(unit)?;
        let op = "StopUnit";
        let msg = manager_call(
            op,
            vec![Value::Str(unit.into()), Value::Str("replace".into())],
        );
        match self.conn.call(msg) {
            Ok(reply) => self.wait_job(unit, op, &reply)?,
            Err(DbusError::Remote { name, .. }) if name.ends_with(".NoSuchUnit") => return Ok(()),
            Err(source) => {
                return Err(SystemdError::Dbus {
                    unit: unit.into(),
                    op: op.into(),
                    source: Box::new(source),
                });
            }
        }
        // A scope whose processes were killed may be left "failed".
        self.reset_failed(unit)
    }

    /// `SetUnitProperties` (runtime: until the unit goes, as runc's update).
    pub fn set_unit_properties(
        &mut self,
        unit: &str,
        props: Vec<Value>,
    ) -> Result<(), SystemdError> {
        let op = "SetUnitProperties";
        let body = vec![
            Value::Str(unit.into()),
            Value::Bool(true),
            Value::Array("(sv)".into(), props),
        ];
        self.call(unit, op, manager_call(op, body)).map(|_| ())
    }
}
