//! cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program built from
//! the rules, loaded and attached to the container's cgroup (BPF_F_ALLOW_MULTI,
//! so the parents' programs still apply). On update the new program is attached
//! before the old ones are detached, so there is no window without a filter.
//!
//! Semantics (as v1 and runc): rules apply in order and a later rule overrides
//! an earlier one; a rule of type `a` resets everything before it. The program
//! therefore checks the rules last-first and returns the verdict of the first
//! that matches; nothing matching means deny. An allow rule matches when it
//! grants every requested access; a deny rule when it denies any of them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;
use super::devices;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (see linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx: access_type (type | access << 16), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2; // device type
const R3: u8 = 3; // requested access
const R4: u8 = 4; // major
const R5: u8 = 5; // minor

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

fn access_bits(r: &LinuxDeviceCgroup) -> Result<i32, CgroupError> {
    let mut bits = 0;
    for c in devices::access(r)?.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => ACC_MKNOD,
        };
    }
    Ok(bits)
}

fn dev_number(v: Option<i64>, what: &str) -> Result<Option<i32>, CgroupError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as i32)),
        Some(n) => Err(CgroupError::Invalid {
            field: format!("linux.resources.devices.{what}"),
            reason: format!("{n} is out of range"),
        }),
    }
}

/// Build the program for `rules`.
pub(crate) fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU64_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU64_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let verdict = i32::from(r.allow());
        let typ = match r.typ().unwrap_or_default() {
            LinuxDeviceType::A => {
                // Resets everything before it: the verdict for all that is left.
                p.push(insn(ALU64_MOV_K, R0, 0, 0, verdict));
                p.push(insn(JMP_EXIT, 0, 0, 0, 0));
                return Ok(p);
            }
            LinuxDeviceType::B => DEV_BLOCK,
            LinuxDeviceType::C | LinuxDeviceType::U => DEV_CHAR,
            LinuxDeviceType::P => continue, // FIFOs are not device-controlled
        };
        let acc = access_bits(r)?;
        let mut block: Vec<Insn> = vec![insn(JMP_JNE_K, R2, 0, 0, typ)];
        if let Some(major) = dev_number(r.major(), "major")? {
            block.push(insn(JMP_JNE_K, R4, 0, 0, major));
        }
        if let Some(minor) = dev_number(r.minor(), "minor")? {
            block.push(insn(JMP_JNE_K, R5, 0, 0, minor));
        }
        block.push(insn(ALU64_MOV_X, R1, R3, 0, 0));
        if r.allow() {
            // Matches when no requested bit is outside the rule's.
            block.push(insn(ALU64_AND_K, R1, 0, 0, !acc & 7));
            block.push(insn(JMP_JNE_K, R1, 0, 0, 0));
        } else {
            // Matches when any requested bit is denied.
            block.push(insn(ALU64_AND_K, R1, 0, 0, acc));
            block.push(insn(JMP_JEQ_K, R1, 0, 0, 0));
        }
        block.push(insn(ALU64_MOV_K, R0, 0, 0, verdict));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        // Every jump in the block skips to its end.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JEQ_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(p)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr, as far as the commands used need, zero-padded.
#[repr(C, align(8))]
struct Attr {
    bytes: [u8; 128],
}

impl Attr {
    fn new() -> Attr {
        Attr { bytes: [0; 128] }
    }
    fn u32_at(&mut self, off: usize, v: u32) -> &mut Self {
        self.bytes[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, off: usize, v: u64) -> &mut Self {
        self.bytes[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, writable, zero-padded bpf_attr of the size passed;
    // any pointers stored in it point to buffers the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from(r: i64) -> OwnedFd {
    // SAFETY: `r` is a fresh file descriptor returned by the bpf syscall, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

fn load(insns: &[Insn], dir: &Path) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache";
    let mut log = vec![0u8; 16 * 1024];
    let mut err = None;
    // First without a log (a full log buffer fails the load), then with one to
    // explain a refusal.
    for log_level in [0u32, 1] {
        let mut attr = Attr::new();
        attr.u32_at(0, BPF_PROG_TYPE_CGROUP_DEVICE)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, insns.as_ptr() as u64)
            .u64_at(16, license.as_ptr() as u64);
        if log_level > 0 {
            attr.u32_at(24, log_level)
                .u32_at(28, log.len() as u32)
                .u64_at(32, log.as_mut_ptr() as u64);
        }
        attr.bytes[48..54].copy_from_slice(b"cuddy\0");
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => return Ok(fd_from(fd)),
            Err(e) => err = Some(e),
        }
    }
    let e = err.unwrap_or_else(|| io::Error::other("bpf prog load failed"));
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    let msg = String::from_utf8_lossy(&log[..end]).trim().to_string();
    let source = if msg.is_empty() {
        e
    } else {
        io::Error::new(e.kind(), format!("{e}; verifier: {msg}"))
    };
    Err(CgroupError::Bpf {
        op: "load device filter for",
        path: dir.to_path_buf(),
        source,
    })
}

/// Ids of the device programs attached directly to the cgroup.
fn attached(cg_fd: &OwnedFd, dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::new();
    attr.u32_at(0, cg_fd.as_raw_fd() as u32)
        .u32_at(4, BPF_CGROUP_DEVICE)
        .u64_at(16, ids.as_mut_ptr() as u64)
        .u32_at(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|source| CgroupError::Bpf {
        op: "query device filters of",
        path: dir.to_path_buf(),
        source,
    })?;
    let n = attr.get_u32(24) as usize;
    ids.truncate(n.min(64));
    Ok(ids)
}

/// Build, load and attach the device filter for `rules` to the cgroup `dir`,
/// replacing the filters attached there before.
pub(crate) fn attach_device_filter(
    dir: &Path,
    rules: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    let insns = program(rules)?;
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(|_| CgroupError::Invalid {
        field: "cgroup path".to_string(),
        reason: format!("{dir:?} contains a NUL byte"),
    })?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(CgroupError::Io {
            op: "open",
            path: dir.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    let cg_fd = fd_from(i64::from(raw));
    let old = attached(&cg_fd, dir)?;
    let prog = load(&insns, dir)?;
    let mut attr = Attr::new();
    attr.u32_at(0, cg_fd.as_raw_fd() as u32)
        .u32_at(4, prog.as_raw_fd() as u32)
        .u32_at(8, BPF_CGROUP_DEVICE)
        .u32_at(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| CgroupError::Bpf {
        op: "attach device filter to",
        path: dir.to_path_buf(),
        source,
    })?;
    for id in old {
        let mut a = Attr::new();
        a.u32_at(0, id);
        let old_fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut a) {
            Ok(fd) => fd_from(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(source) => {
                return Err(CgroupError::Bpf {
                    op: "get old device filter of",
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut d = Attr::new();
        d.u32_at(0, cg_fd.as_raw_fd() as u32)
            .u32_at(4, old_fd.as_raw_fd() as u32)
            .u32_at(8, BPF_CGROUP_DEVICE);
        bpf(BPF_PROG_DETACH, &mut d).map_err(|source| CgroupError::Bpf {
            op: "detach old device filter of",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `program` emits.
    fn run(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
        let mut r = [0u64; 11];
        let ctx = [(typ | (access << 16)) as u32, major, minor];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
                ALU64_AND_K => r[dst] &= i.imm as i64 as u64,
                ALU64_RSH_K => r[dst] >>= i.imm,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JEQ_K | JMP_JNE_K => {}
                JMP_EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn runc_default_config() {
        let mut r = rules(r#"[{"allow":false,"access":"rwm"}]"#);
        r.extend(devices::default_allowed_devices());
        let p = program(&r).unwrap();
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 7), 1, "/dev/pts/7");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 11), 0, "/dev/kmsg");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "/dev/sda");
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1, "mknod any");
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD | ACC_READ, 8, 0), 0);
    }

    #[test]
    fn later_rules_override_and_a_resets() {
        let r = rules(
            r#"[{"allow":true,"type":"c","major":1,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"w"},
                {"allow":true,"type":"a","access":"rwm"},
                {"allow":false,"type":"b","access":"w"}]"#,
        );
        let p = program(&r).unwrap();
        // "a" allow resets: 1:5 write allowed again; block writes denied.
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 1);
        let r = rules(
            r#"[{"allow":true,"type":"c","major":1,"access":"rw"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"w"}]"#,
        );
        let p = program(&r).unwrap();
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 1, 3), 0);
        assert_eq!(
            run(&p, DEV_CHAR, ACC_READ, 2, 0),
            0,
            "nothing matches: deny"
        );
    }
}
