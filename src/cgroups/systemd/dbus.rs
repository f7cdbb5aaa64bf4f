//! A small synchronous D-Bus client: messages, SASL EXTERNAL, method calls,
//! signals. No thread, no event loop (cuddy forks from a single-threaded
//! process); every receive is bounded by `SO_RCVTIMEO`.
//!
//! Facts the code depends on (D-Bus specification):
//! - a message is a 16-byte fixed header (`l` for little-endian, the type, the
//!   flags, protocol version 1, the body length, the serial), the header fields
//!   `a(yv)`, padding to 8, then the body;
//! - after connecting, the client sends one NUL byte, then the line-based SASL
//!   exchange; `AUTH EXTERNAL` without an identity is answered by `DATA`, an
//!   empty `DATA` by `OK <guid>` when the server takes the identity from the
//!   socket's credentials (sd-bus does this; it also works in a user
//!   namespace, where the uid in hex would not match); then `BEGIN`;
//! - the first call must be `org.freedesktop.DBus.Hello`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::wire::{Decoder, Encoder, Value, WireError};

/// The system bus socket when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// Header flag: do not start (activate) the destination if it is not running.
pub const NO_AUTO_START: u8 = 0x2;
/// The largest message accepted (the specification's maximum is 128 MiB; the
/// replies cuddy waits for are tiny).
const MAX_MESSAGE: usize = 16 << 20;
/// How long one call waits for its reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the D-Bus client; each names the bus address or the method.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// The address is not one this client can connect to.
    #[error("D-Bus address {address:?}: {reason}")]
    Address { address: String, reason: String },
    /// Connecting to the bus socket failed.
    #[error("connecting to the D-Bus socket {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The SASL exchange failed.
    #[error("D-Bus authentication (EXTERNAL) failed: {reason}")]
    Auth { reason: String },
    /// Reading or writing the socket failed (a timeout included).
    #[error("D-Bus {op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// A message could not be encoded or decoded.
    #[error("D-Bus {op}: {source}")]
    Wire {
        op: String,
        #[source]
        source: WireError,
    },
    /// The peer answered with a D-Bus error.
    #[error("D-Bus {method}: {name}: {message}")]
    Remote {
        method: String,
        name: String,
        message: String,
    },
    /// Nothing matching arrived in time.
    #[error("D-Bus: no {what} within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
}

/// The message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1
    MethodCall = 1,
    /// 2
    MethodReturn = 2,
    /// 3
    Error = 3,
    /// 4
    Signal = 4,
}

/// A D-Bus message (the header fields the client uses, and the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub kind: Kind,
    /// The flags ([`NO_AUTO_START`]...).
    pub flags: u8,
    /// The serial (set by [`Connection::send`]).
    pub serial: u32,
    /// PATH (1)
    pub path: Option<String>,
    /// INTERFACE (2)
    pub interface: Option<String>,
    /// MEMBER (3)
    pub member: Option<String>,
    /// ERROR_NAME (4)
    pub error_name: Option<String>,
    /// REPLY_SERIAL (5)
    pub reply_serial: Option<u32>,
    /// DESTINATION (6)
    pub destination: Option<String>,
    /// SENDER (7)
    pub sender: Option<String>,
    /// The body's values (the SIGNATURE field (8) is derived from them).
    pub body: Vec<Value>,
    /// File descriptors to pass with the message (`h` values index them;
    /// UNIX_FDS (9) is their count). Borrowed: the caller keeps them open.
    pub fds: Vec<RawFd>,
    /// UNIX_FDS of a received message (the descriptors are not taken).
    pub unix_fds: u32,
}

impl Message {
    /// A method call.
    pub fn call(dest: &str, path: &str, iface: &str, member: &str, body: Vec<Value>) -> Self {
        Message {
            kind: Kind::MethodCall,
            flags: 0,
            serial: 0,
            path: Some(path.into()),
            interface: Some(iface.into()),
            member: Some(member.into()),
            error_name: None,
            reply_serial: None,
            destination: Some(dest.into()),
            sender: None,
            body,
            fds: Vec::new(),
            unix_fds: 0,
        }
    }

    /// The reply to `call` (for a peer serving calls).
    pub fn reply_to(call: &Message, body: Vec<Value>) -> Self {
        let mut m = Message::call("", "", "", "", body);
        (m.kind, m.path, m.interface, m.member) = (Kind::MethodReturn, None, None, None);
        m.reply_serial = Some(call.serial);
        m.destination = call.sender.clone();
        m
    }

    /// An error reply to `call`.
    pub fn error_to(call: &Message, name: &str, text: &str) -> Self {
        let mut m = Message::reply_to(call, vec![Value::Str(text.into())]);
        m.kind = Kind::Error;
        m.error_name = Some(name.into());
        m
    }

    /// A broadcast signal.
    pub fn signal(path: &str, iface: &str, member: &str, body: Vec<Value>) -> Self {
        let mut m = Message::call("", path, iface, member, body);
        m.kind = Kind::Signal;
        m.destination = None;
        m
    }

    /// `interface.member` for messages.
    pub fn method_name(&self) -> String {
        format!(
            "{}.{}",
            self.interface.as_deref().unwrap_or(""),
            self.member.as_deref().unwrap_or("")
        )
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        self.body.iter().map(Value::signature).collect()
    }

    /// The wire bytes.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut body = Encoder::default();
        for v in &self.body {
            body.put(v)?;
        }
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![
                Value::Byte(code),
                Value::Variant(Box::new(v)),
            ]));
        };
        let strings = [
            (1, self.path.as_ref().map(|p| Value::Path(p.clone()))),
            (2, self.interface.clone().map(Value::Str)),
            (3, self.member.clone().map(Value::Str)),
            (4, self.error_name.clone().map(Value::Str)),
            (5, self.reply_serial.map(Value::U32)),
            (6, self.destination.clone().map(Value::Str)),
            (7, self.sender.clone().map(Value::Str)),
        ];
        for (code, v) in strings {
            if let Some(v) = v {
                field(code, v);
            }
        }
        if !self.body.is_empty() {
            field(8, Value::Sig(self.signature()));
        }
        if !self.fds.is_empty() {
            let n = u32::try_from(self.fds.len()).unwrap_or(u32::MAX);
            field(9, Value::U32(n));
        }
        let body_len = u32::try_from(body.buf.len()).map_err(|_| WireError::Encode {
            reason: "body longer than 4 GiB".into(),
        })?;
        let mut out = Encoder::default();
        for v in [
            Value::Byte(b'l'),
            Value::Byte(self.kind as u8),
            Value::Byte(self.flags),
            Value::Byte(1),
            Value::U32(body_len),
            Value::U32(self.serial),
            Value::Array("(yv)".into(), fields),
        ] {
            out.put(&v)?;
        }
        while out.buf.len() % 8 != 0 {
            out.buf.push(0);
        }
        out.buf.extend_from_slice(&body.buf);
        Ok(out.buf)
    }

    /// Parse a whole message (as framed by [`frame_len`]).
    pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
        let mut d = Decoder::new(buf);
        let head = d.get_all("yyyyuua(yv)")?;
        let bad = |reason: String| WireError::Decode { offset: 0, reason };
        if head[0] != Value::Byte(b'l') {
            return Err(bad(format!(
                "byte order {:?} is not little-endian",
                head[0]
            )));
        }
        let kind = match head[1] {
            Value::Byte(1) => Kind::MethodCall,
            Value::Byte(2) => Kind::MethodReturn,
            Value::Byte(3) => Kind::Error,
            Value::Byte(4) => Kind::Signal,
            ref other => return Err(bad(format!("unknown message type {other:?}"))),
        };
        let mut m = Message::call("", "", "", "", Vec::new());
        (m.kind, m.path, m.interface, m.member, m.destination) = (kind, None, None, None, None);
        if let Value::Byte(f) = head[2] {
            m.flags = f;
        }
        m.serial = head[5].as_u32().unwrap_or(0);
        let mut signature = String::new();
        if let Value::Array(_, fields) = &head[6] {
            for f in fields {
                let Value::Struct(pair) = f else { continue };
                let (Some(Value::Byte(code)), Some(Value::Variant(v))) =
                    (pair.first(), pair.get(1))
                else {
                    continue;
                };
                let s = v.as_str().map(str::to_string);
                match code {
                    1 => m.path = s,
                    2 => m.interface = s,
                    3 => m.member = s,
                    4 => m.error_name = s,
                    5 => m.reply_serial = v.as_u32(),
                    6 => m.destination = s,
                    7 => m.sender = s,
                    8 => signature = s.unwrap_or_default(),
                    9 => m.unix_fds = v.as_u32().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let body_start = d.pos.div_ceil(8) * 8;
        let mut body = Decoder::new(buf.get(body_start..).unwrap_or(&[]));
        m.body = body.get_all(&signature)?;
        Ok(m)
    }
}

/// The total length of a message from its first 16 bytes.
pub fn frame_len(head: &[u8; 16]) -> usize {
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let fields_len = word(12) as usize;
    let header = (16 + fields_len).div_ceil(8) * 8;
    header.saturating_add(word(4) as usize)
}

/// The socket path of the first `unix:path=` or `unix:abstract=` entry of a
/// D-Bus address (`;`-separated entries, `,`-separated keys).
pub fn socket_path(address: &str) -> Result<String, DbusError> {
    for entry in address.split(';') {
        let Some(keys) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in keys.split(',') {
            if let Some(p) = kv.strip_prefix("path=") {
                return Ok(p.to_string());
            }
            if let Some(p) = kv.strip_prefix("abstract=") {
                return Ok(format!("@{p}"));
            }
        }
    }
    Err(DbusError::Address {
        address: address.to_string(),
        reason: "no unix:path= or unix:abstract= entry".into(),
    })
}

/// A connection to a bus.
#[derive(Debug)]
pub struct Connection {
    sock: UnixStream,
    serial: u32,
    /// Messages received while waiting for something else (signals).
    queue: VecDeque<Message>,
    /// Our unique name (from Hello).
    pub unique_name: String,
    /// Whether the bus agreed to pass file descriptors (`NEGOTIATE_UNIX_FD`).
    pub unix_fds: bool,
}

fn io_err(op: &str) -> impl FnOnce(io::Error) -> DbusError + '_ {
    move |source| DbusError::Io {
        op: op.to_string(),
        source,
    }
}

impl Connection {
    /// Connect to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` or [`SYSTEM_BUS`]).
    pub fn system() -> Result<Connection, DbusError> {
        let address =
            std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| SYSTEM_BUS.to_string());
        Connection::open(&address)
    }

    /// Connect to `address`, authenticate and say Hello.
    pub fn open(address: &str) -> Result<Connection, DbusError> {
        let path = socket_path(address)?;
        // std's UnixStream sockets are SOCK_CLOEXEC.
        let sock = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes());
                addr.and_then(|a| UnixStream::connect_addr(&a))
            }
            None => UnixStream::connect(&path),
        }
        .map_err(|source| DbusError::Connect { path, source })?;
        sock.set_write_timeout(Some(CALL_TIMEOUT))
            .map_err(io_err("setting SO_SNDTIMEO"))?;
        let mut conn = Connection {
            sock,
            serial: 0,
            queue: VecDeque::new(),
            unique_name: String::new(),
            unix_fds: false,
        };
        conn.authenticate()?;
        let hello = Message::call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            Vec::new(),
        );
        let reply = conn.call(hello)?;
        conn.unique_name = reply
            .body
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(conn)
    }

    fn read_line(&mut self) -> Result<String, DbusError> {
        self.sock
            .set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(io_err("setting SO_RCVTIMEO"))?;
        let mut line = Vec::new();
        // Byte by byte: nothing after the line may be consumed.
        while !line.ends_with(b"\r\n") {
            let mut b = [0u8; 1];
            let n = self
                .sock
                .read(&mut b)
                .map_err(io_err("reading the auth reply"))?;
            if n == 0 || line.len() > 4096 {
                return Err(DbusError::Auth {
                    reason: "the bus closed the connection".into(),
                });
            }
            line.push(b[0]);
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn auth_line(&mut self, line: &str) -> Result<String, DbusError> {
        self.sock
            .write_all(line.as_bytes())
            .map_err(io_err("writing the auth request"))?;
        self.read_line()
    }

    fn authenticate(&mut self) -> Result<(), DbusError> {
        self.sock
            .write_all(b"\0")
            .map_err(io_err("writing the credentials byte"))?;
        let mut reply = self.auth_line("AUTH EXTERNAL\r\n")?;
        if reply.starts_with("DATA") {
            reply = self.auth_line("DATA\r\n")?;
        }
        if !reply.starts_with("OK ") {
            // Older servers want the identity: the uid as hex-encoded ASCII.
            self.auth_line("CANCEL\r\n")?;
            let uid = nix::unistd::geteuid().as_raw().to_string();
            let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
            reply = self.auth_line(&format!("AUTH EXTERNAL {hex}\r\n"))?;
        }
        if !reply.starts_with("OK ") {
            return Err(DbusError::Auth {
                reason: format!("the bus answered {reply:?}"),
            });
        }
        // For PIDFDs: file descriptors ride along as SCM_RIGHTS.
        let reply = self.auth_line("NEGOTIATE_UNIX_FD\r\n")?;
        self.unix_fds = reply.starts_with("AGREE_UNIX_FD");
        self.sock
            .write_all(b"BEGIN\r\n")
            .map_err(io_err("writing BEGIN"))
    }

    /// Send a message, giving it the next serial; returns the serial.
    pub fn send(&mut self, mut msg: Message) -> Result<u32, DbusError> {
        self.serial = self.serial.wrapping_add(1).max(1);
        msg.serial = self.serial;
        let op = format!("sending {}", msg.method_name());
        let bytes = msg.encode().map_err(|source| DbusError::Wire {
            op: op.clone(),
            source,
        })?;
        if msg.fds.is_empty() {
            self.sock.write_all(&bytes).map_err(io_err(&op))?;
            return Ok(msg.serial);
        }
        // The descriptors go with the first byte(s) of the message.
        use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
        let cmsg = [ControlMessage::ScmRights(&msg.fds)];
        let iov = [std::io::IoSlice::new(&bytes)];
        let flags = MsgFlags::MSG_NOSIGNAL;
        let n = sendmsg::<UnixAddr>(self.sock.as_raw_fd(), &iov, &cmsg, flags, None)
            .map_err(|e| io_err(&op)(io::Error::from(e)))?;
        self.sock.write_all(&bytes[n..]).map_err(io_err(&op))?;
        Ok(msg.serial)
    }

    /// Receive one message, waiting until `deadline` at most.
    fn receive(&mut self, deadline: Instant, what: &str) -> Result<Message, DbusError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return Err(DbusError::Timeout {
                what: what.to_string(),
                timeout: CALL_TIMEOUT,
            });
        }
        self.sock
            .set_read_timeout(Some(timeout))
            .map_err(io_err("setting SO_RCVTIMEO"))?;
        let op = format!("waiting for {what}");
        let mut head = [0u8; 16];
        self.sock.read_exact(&mut head).map_err(io_err(&op))?;
        let len = frame_len(&head);
        if !(16..=MAX_MESSAGE).contains(&len) {
            return Err(DbusError::Io {
                op,
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("message of {len} bytes"),
                ),
            });
        }
        let mut buf = head.to_vec();
        buf.resize(len, 0);
        self.sock.read_exact(&mut buf[16..]).map_err(io_err(&op))?;
        Message::decode(&buf).map_err(|source| DbusError::Wire { op, source })
    }

    /// Call a method and wait for its reply; a D-Bus error becomes
    /// [`DbusError::Remote`]. Signals received meanwhile are kept for
    /// [`Connection::wait_signal`].
    pub fn call(&mut self, msg: Message) -> Result<Message, DbusError> {
        let method = msg.method_name();
        let serial = self.send(msg)?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        let what = format!("the reply to {method}");
        loop {
            let m = self.receive(deadline, &what)?;
            if m.reply_serial != Some(serial) {
                if m.kind == Kind::Signal {
                    self.queue.push_back(m);
                }
                continue;
            }
            if m.kind == Kind::Error {
                return Err(DbusError::Remote {
                    method,
                    name: m.error_name.unwrap_or_default(),
                    message: m.body.first().and_then(Value::as_str).unwrap_or("").into(),
                });
            }
            return Ok(m);
        }
    }

    /// Wait (at most `timeout`) for a signal that `matches` accepts; other
    /// signals are dropped.
    pub fn wait_signal(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Message) -> bool,
    ) -> Result<Message, DbusError> {
        if let Some(i) = self.queue.iter().position(&matches) {
            if let Some(m) = self.queue.remove(i) {
                return Ok(m);
            }
        }
        self.queue.clear();
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.receive(deadline, what).map_err(|e| match e {
                DbusError::Io { source, .. }
                    if matches!(
                        source.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    DbusError::Timeout {
                        what: what.to_string(),
                        timeout,
                    }
                }
                DbusError::Timeout { what, .. } => DbusError::Timeout { what, timeout },
                e => e,
            })?;
            if m.kind == Kind::Signal && matches(&m) {
                return Ok(m);
            }
        }
    }

    /// Receive the next message of any kind (for peers serving calls, in tests).
    pub fn next_message(&mut self, timeout: Duration) -> Result<Message, DbusError> {
        if let Some(m) = self.queue.pop_front() {
            return Ok(m);
        }
        self.receive(Instant::now() + timeout, "a message")
    }
}
