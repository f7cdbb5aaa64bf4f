//! The ENOSYS stub (runc's patchbpf): BPF placed in front of libseccomp's
//! program that returns ENOSYS for syscall numbers above the highest one the
//! profile names on each of its architectures. A syscall newer than the
//! profile then looks unimplemented, and the C library falls back (glibc
//! tries clone3, and uses clone after ENOSYS, but not after EPERM).
//!
//! Kernel facts used: `struct seccomp_data` starts with `int nr` then
//! `__u32 arch` (an AUDIT_ARCH_* value); x32 syscalls arrive with
//! `arch == AUDIT_ARCH_X86_64` and `__X32_SYSCALL_BIT` (0x40000000) set in
//! `nr`; classic BPF conditional jumps are relative and at most 255.

use libc::sock_filter;

use super::compile::{X32_TOKEN, scmp_arch, syscall_nr};
use super::profile::Profile;

/// Bumped whenever the stub's code changes (part of the cache key).
pub const STUB_VERSION: u32 = 1;

const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const RET_ERRNO: u32 = 0x0005_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JSET_K: u16 = 0x45;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;

#[derive(Clone, Copy)]
enum To {
    Next,
    Enosys,
    Filter,
    Ahead(usize),
}

struct Asm {
    ins: Vec<(u16, To, To, u32)>,
}

impl Asm {
    fn op(&mut self, code: u16, jt: To, jf: To, k: u32) {
        self.ins.push((code, jt, jf, k));
    }
    /// `jgt max -> ENOSYS, else -> the filter`, or straight to the filter
    /// when the profile names nothing for this ABI.
    fn check(&mut self, max: Option<u32>) {
        match max {
            Some(m) => self.op(JGT_K, To::Enosys, To::Filter, m),
            None => self.op(JA, To::Next, To::Next, 0),
        }
    }
}

/// The highest syscall number the profile names for `token`, if any.
fn max_nr(p: &Profile, token: u32) -> Option<u32> {
    let arch = scmp_arch(token)?;
    let mut names: Vec<&str> = p.rules.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().filter_map(|n| syscall_nr(n, arch)).max()
}

/// The stub for `p`, or nothing when the default action allows (ENOSYS
/// would then be stricter than the profile) or no arch has a known name.
pub fn enosys_stub(p: &Profile) -> Vec<sock_filter> {
    if p.default.allows() {
        return Vec::new();
    }
    let mut a = Asm { ins: Vec::new() };
    let has_x32 = p.archs.contains(&X32_TOKEN);
    let mut blocks: Vec<(u32, Option<u32>, Option<Option<u32>>)> = Vec::new();
    for &t in &p.archs {
        if t == X32_TOKEN {
            continue;
        }
        let max = max_nr(p, t);
        if t == AUDIT_ARCH_X86_64 {
            let x32 = has_x32.then(|| max_nr(p, X32_TOKEN));
            blocks.push((t, max, x32));
        } else if max.is_some() {
            blocks.push((t, max, None));
        }
    }
    if has_x32 && !p.archs.contains(&AUDIT_ARCH_X86_64) {
        // x32 alone (not an x86-64 host's native arch): only its numbers.
        blocks.push((AUDIT_ARCH_X86_64, None, Some(max_nr(p, X32_TOKEN))));
    }
    if blocks
        .iter()
        .all(|b| b.1.is_none() && b.2.flatten().is_none())
    {
        return Vec::new();
    }
    a.op(LD_W_ABS, To::Next, To::Next, 4); // arch
    for (i, (audit, max, x32)) in blocks.iter().enumerate() {
        let start = a.ins.len();
        // Instructions of this block after the jeq: ld nr + checks.
        let body = if *audit == AUDIT_ARCH_X86_64 { 4 } else { 2 };
        let next = if i + 1 == blocks.len() {
            To::Filter
        } else {
            To::Ahead(start + 1 + body)
        };
        a.op(JEQ_K, To::Next, next, *audit);
        a.op(LD_W_ABS, To::Next, To::Next, 0); // nr
        if *audit == AUDIT_ARCH_X86_64 {
            a.op(JSET_K, To::Ahead(start + 4), To::Next, X32_SYSCALL_BIT);
            a.check(*max);
            // x32 numbers, when the profile covers x32; else libseccomp's
            // filter decides (bad architecture).
            a.check(x32.flatten());
        } else {
            a.check(*max);
        }
    }
    resolve(a)
}

fn resolve(a: Asm) -> Vec<sock_filter> {
    let n = a.ins.len();
    let enosys = n; // ret ERRNO(ENOSYS), then the filter at n + 1
    let target = |pc: usize, t: To| -> u32 {
        let abs = match t {
            To::Next => pc + 1,
            To::Enosys => enosys,
            To::Filter => enosys + 1,
            To::Ahead(x) => x,
        };
        (abs - pc - 1) as u32
    };
    let mut out: Vec<sock_filter> = a
        .ins
        .iter()
        .enumerate()
        .map(|(pc, &(code, jt, jf, k))| {
            if code == JA {
                // A `ja` with Next/Next means "to the filter".
                sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k: target(pc, To::Filter),
                }
            } else if code & 0x07 == 0x05 {
                sock_filter {
                    code,
                    jt: target(pc, jt) as u8,
                    jf: target(pc, jf) as u8,
                    k,
                }
            } else {
                sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                }
            }
        })
        .collect();
    out.push(sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: RET_ERRNO | libc::ENOSYS as u32,
    });
    out
}
