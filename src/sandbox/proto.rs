//! The wire between a [`super::Running`] and its helper process: frames of
//! `[u32 LE json length][json][u32 LE payload length][payload]` on a unix
//! stream socket. The JSON says what the frame is; the payload carries file
//! contents and captured output as raw bytes (no base64).

use std::io::{Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The largest JSON header accepted (a spec is a few KiB).
const MAX_JSON: u32 = 1 << 20;
/// The largest payload accepted: files and captured output up to 256 MiB.
pub(crate) const MAX_PAYLOAD: u32 = 256 << 20;

/// What the sandbox runs on, as the parent asked for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Source {
    /// A root filesystem directory, used read-only as the overlay's lower layer.
    Rootfs(PathBuf),
    /// An OCI image layout directory or a `docker save` tarball.
    Image(PathBuf),
}

/// One `mount(src, dst, readonly)` of the builder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindMount {
    pub src: PathBuf,
    pub dst: String,
    pub readonly: bool,
}

/// Everything the helper needs to make the container: the builder's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    pub source: Source,
    /// Empty: the image's Entrypoint + Cmd.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub user: Option<(u32, u32)>,
    pub hostname: Option<String>,
    pub mounts: Vec<BindMount>,
    pub tmpfs: Vec<String>,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    /// `--network MODE` text (none, host, bridge[=NAME], cni[=NAME]).
    pub network: Option<String>,
    /// `--publish` texts.
    pub publish: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub state_root: PathBuf,
    pub image_cache: Option<PathBuf>,
}

/// Parent to helper.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// First frame: make and start the container.
    Start(Box<Spec>),
    /// SIGKILL every process of the container.
    Kill,
    /// Payload: the file's new contents.
    WriteFile {
        path: String,
        mode: u32,
    },
    ReadFile {
        path: String,
    },
}

/// Helper to parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Started {
        id: String,
        pid: i32,
    },
    /// The request (or the start) failed; the message names op and path.
    Failed {
        message: String,
    },
    /// Sent once, unasked, when the container's process ended. Payload:
    /// stdout then stderr (`stdout_len` bytes of stdout).
    Exited {
        status: i32,
        timed_out: bool,
        stdout_len: u64,
    },
    /// WriteFile done.
    Written,
    /// ReadFile: the payload is the file.
    File,
}

/// Writes one frame.
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T, payload: &[u8]) -> std::io::Result<()> {
    let json = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let too_big = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large");
    let jl = u32::try_from(json.len()).map_err(|_| too_big())?;
    let pl = u32::try_from(payload.len()).map_err(|_| too_big())?;
    if jl > MAX_JSON || pl > MAX_PAYLOAD {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(8 + json.len() + payload.len());
    buf.extend_from_slice(&jl.to_le_bytes());
    buf.extend_from_slice(&json);
    buf.extend_from_slice(&pl.to_le_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

fn read_len(r: &mut impl Read, max: u32) -> std::io::Result<usize> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    let n = u32::from_le_bytes(b);
    if n > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {n} bytes exceeds the limit of {max}"),
        ));
    }
    Ok(n as usize)
}

/// Reads one frame; `Ok(None)` on a clean EOF before its first byte.
pub fn recv<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
) -> std::io::Result<Option<(T, Vec<u8>)>> {
    let jl = match read_len(r, MAX_JSON) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut json = vec![0u8; jl];
    r.read_exact(&mut json)?;
    let pl = read_len(r, MAX_PAYLOAD)?;
    let mut payload = vec![0u8; pl];
    r.read_exact(&mut payload)?;
    let msg = serde_json::from_slice(&json)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Some((msg, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_binary_payloads() {
        let mut buf = Vec::new();
        send(
            &mut buf,
            &Request::WriteFile {
                path: "/a".into(),
                mode: 0o644,
            },
            &[0, 255, 10],
        )
        .unwrap();
        send(&mut buf, &Request::Kill, &[]).unwrap();
        let mut r = &buf[..];
        let (m, p): (Request, _) = recv(&mut r).unwrap().unwrap();
        assert!(matches!(m, Request::WriteFile { ref path, mode: 0o644 } if path == "/a"));
        assert_eq!(p, vec![0, 255, 10]);
        let (m, p): (Request, _) = recv(&mut r).unwrap().unwrap();
        assert!(matches!(m, Request::Kill) && p.is_empty());
        assert!(recv::<Request>(&mut r).unwrap().is_none());
    }

    #[test]
    fn oversized_or_truncated_frames_are_errors() {
        let mut r: &[u8] = &(MAX_JSON + 1).to_le_bytes();
        assert!(recv::<Request>(&mut r).is_err());
        let mut buf = Vec::new();
        send(&mut buf, &Request::Kill, b"xyz").unwrap();
        buf.truncate(buf.len() - 1);
        assert!(recv::<Request>(&mut &buf[..]).is_err());
    }
}
