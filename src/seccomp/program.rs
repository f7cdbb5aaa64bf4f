//! The compiled filter as the child loads it: classic BPF instructions plus
//! the seccomp(2) flags, checked to be well-formed, and the one syscall.

use std::os::fd::{AsFd, AsRawFd};

use libc::sock_filter;

use super::profile::FLAG_NEW_LISTENER;
use crate::process::sync::{Channel, Msg};

/// BPF_MAXINSNS: the kernel refuses longer classic BPF programs.
pub const MAX_INSNS: usize = 4096;
/// `sizeof(struct seccomp_data)`: loads must stay inside it.
const SECCOMP_DATA_LEN: u32 = 64;

/// When the child loads the filter (runc's order): without no_new_privs,
/// loading needs CAP_SYS_ADMIN, so it happens before the capabilities are
/// dropped; with no_new_privs as late as possible before execve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    BeforeCaps,
    Late,
}

/// A compiled seccomp filter, ready for seccomp(SECCOMP_SET_MODE_FILTER).
#[derive(Debug, Clone)]
pub struct Program {
    pub(super) filter: Vec<sock_filter>,
    pub(super) flags: u32,
    pub(super) stage: Stage,
    /// listenerPath and listenerMetadata when a rule notifies.
    pub(super) listener: Option<(std::path::PathBuf, Option<String>)>,
}

impl Program {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// The seccomp(2) flags the filter is loaded with.
    pub fn flags(&self) -> u32 {
        self.flags
    }
}

/// Native-endian `struct sock_filter` array from bytes, well-formed or None.
pub fn decode(bytes: &[u8]) -> Option<Vec<sock_filter>> {
    if bytes.len() % 8 != 0 {
        return None;
    }
    let prog: Vec<sock_filter> = bytes
        .chunks_exact(8)
        .map(|c| sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    well_formed(&prog).then_some(prog)
}

pub fn encode(prog: &[sock_filter], out: &mut Vec<u8>) {
    for i in prog {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
}

/// Structural checks (the kernel's seccomp_check_filter does the rest at
/// load): a length the kernel takes, jumps that stay inside, loads inside
/// `struct seccomp_data`, and a final return.
pub fn well_formed(prog: &[sock_filter]) -> bool {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return false;
    }
    let n = prog.len();
    let last_ret = prog[n - 1].code & 0x07 == 0x06;
    last_ret
        && prog.iter().enumerate().all(|(pc, i)| match i.code & 0x07 {
            // BPF_JMP: BPF_JA uses k, the others jt/jf.
            0x05 if i.code & 0xf0 == 0x00 => pc + 1 + (i.k as usize) < n,
            0x05 => pc + 1 + (i.jt as usize) < n && pc + 1 + (i.jf as usize) < n,
            // BPF_LD|BPF_W|BPF_ABS
            0x00 if i.code == 0x20 => i.k % 4 == 0 && i.k < SECCOMP_DATA_LEN,
            _ => true,
        })
}

/// The lowest free fd number: the one the kernel gives the next new fd.
fn lowest_free_fd(any: &impl AsFd) -> Result<i32, String> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd we hold returns a new fd we own.
    let fd = unsafe { libc::fcntl(any.as_fd().as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("seccomp: dup: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: closing the fd we just created.
    unsafe { libc::close(fd) };
    Ok(fd)
}

/// Loads `prog` in the calling (child) process when `stage` is its stage:
/// one seccomp(2) call, no allocation, no libseccomp. With a listener, the
/// parent is first told the fd number the listener will get (the lowest
/// free one, since nothing else is opened in between): it takes the fd with
/// pidfd_getfd(2), so this process never has to make a syscall that the
/// profile might notify before the agent has the listener.
pub fn load(prog: Option<&Program>, stage: Stage, chan: &Channel) -> Result<(), String> {
    let Some(p) = prog.filter(|p| p.stage == stage) else {
        return Ok(());
    };
    let fprog = libc::sock_fprog {
        len: p.filter.len() as u16,
        filter: p.filter.as_ptr() as *mut sock_filter,
    };
    let want = if p.flags & FLAG_NEW_LISTENER != 0 {
        let fd = lowest_free_fd(chan)?;
        chan.send(&Msg::SeccompListener(fd))
            .map_err(|e| format!("sync: send: {e}"))?;
        Some(fd)
    } else {
        None
    };
    // SAFETY: fprog points at `len` valid instructions that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EACCES) {
            " (no_new_privs is unset and the process lacks CAP_SYS_ADMIN)"
        } else {
            ""
        };
        return Err(format!(
            "seccomp(SECCOMP_SET_MODE_FILTER, flags {:#x}, {} instructions) (linux.seccomp): {e}{hint}",
            p.flags,
            p.filter.len()
        ));
    }
    if want.is_some_and(|w| i64::from(w) != r as i64) {
        return Err(format!(
            "seccomp: the listener got fd {r}, not the announced {want:?}"
        ));
    }
    if want.is_some() {
        // A barrier: go on (and, above all, never execve, which closes the
        // listener) only once the parent has the listener. Its result does
        // not matter: either the parent's ack arrives after the hand-off, or
        // the recv itself is notified, which an agent can only answer once
        // it has the listener.
        let _ = chan.recv();
    }
    Ok(())
}
