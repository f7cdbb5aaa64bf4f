//! The profile compiled to classic BPF with libseccomp, in the parent: the
//! program is exported to memory (a memfd) and loaded later by the child
//! with one raw seccomp(2) call, so no libseccomp code runs after the fork.

use std::os::fd::AsFd;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::LinuxSeccompOperator as Op;

use super::SeccompError;
use super::profile::{Action, Profile};

/// libseccomp's architecture tokens (equal to the kernel's AUDIT_ARCH_*
/// values, except x32, which the kernel reports as AUDIT_ARCH_X86_64 with
/// __X32_SYSCALL_BIT set in the syscall number) and the spec's names.
pub const ARCHS: &[(u32, ScmpArch, &str)] = &[
    (0x4000_0003, ScmpArch::X86, "SCMP_ARCH_X86"),
    (0xc000_003e, ScmpArch::X8664, "SCMP_ARCH_X86_64"),
    (0x4000_003e, ScmpArch::X32, "SCMP_ARCH_X32"),
    (0x4000_0028, ScmpArch::Arm, "SCMP_ARCH_ARM"),
    (0xc000_00b7, ScmpArch::Aarch64, "SCMP_ARCH_AARCH64"),
    (0x0000_0008, ScmpArch::Mips, "SCMP_ARCH_MIPS"),
    (0x8000_0008, ScmpArch::Mips64, "SCMP_ARCH_MIPS64"),
    (0xa000_0008, ScmpArch::Mips64N32, "SCMP_ARCH_MIPS64N32"),
    (0x4000_0008, ScmpArch::Mipsel, "SCMP_ARCH_MIPSEL"),
    (0xc000_0008, ScmpArch::Mipsel64, "SCMP_ARCH_MIPSEL64"),
    (0xe000_0008, ScmpArch::Mipsel64N32, "SCMP_ARCH_MIPSEL64N32"),
    (0x0000_0014, ScmpArch::Ppc, "SCMP_ARCH_PPC"),
    (0x8000_0015, ScmpArch::Ppc64, "SCMP_ARCH_PPC64"),
    (0xc000_0015, ScmpArch::Ppc64Le, "SCMP_ARCH_PPC64LE"),
    (0x0000_0016, ScmpArch::S390, "SCMP_ARCH_S390"),
    (0x8000_0016, ScmpArch::S390X, "SCMP_ARCH_S390X"),
    (0x0000_000f, ScmpArch::Parisc, "SCMP_ARCH_PARISC"),
    (0x8000_000f, ScmpArch::Parisc64, "SCMP_ARCH_PARISC64"),
    (0xc000_00f3, ScmpArch::Riscv64, "SCMP_ARCH_RISCV64"),
    (0xc000_0102, ScmpArch::Loongarch64, "SCMP_ARCH_LOONGARCH64"),
    (0x0000_0004, ScmpArch::M68k, "SCMP_ARCH_M68K"),
    (0x4000_002a, ScmpArch::Sh, "SCMP_ARCH_SH"),
    (0x0000_002a, ScmpArch::Sheb, "SCMP_ARCH_SHEB"),
];

pub const X32_TOKEN: u32 = 0x4000_003e;

pub fn scmp_arch(token: u32) -> Option<ScmpArch> {
    ARCHS.iter().find(|a| a.0 == token).map(|a| a.1)
}

pub fn arch_name(token: u32) -> String {
    ARCHS
        .iter()
        .find(|a| a.0 == token)
        .map(|a| a.2.to_string())
        .unwrap_or_else(|| format!("{token:#x}"))
}

pub fn native_token() -> u32 {
    let n = ScmpArch::native();
    ARCHS.iter().find(|a| a.1 == n).map(|a| a.0).unwrap_or(0)
}

fn scmp_action(a: Action) -> ScmpAction {
    match a {
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::Trace(t) => ScmpAction::Trace(t as u16),
        Action::Allow => ScmpAction::Allow,
        Action::Log => ScmpAction::Log,
        Action::Notify => ScmpAction::Notify,
    }
}

fn scmp_op(op: Op, value: u64) -> ScmpCompareOp {
    match op {
        Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
        Op::ScmpCmpLt => ScmpCompareOp::Less,
        Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        Op::ScmpCmpEq => ScmpCompareOp::Equal,
        Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        Op::ScmpCmpGt => ScmpCompareOp::Greater,
        Op::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    }
}

fn lib(op: &'static str) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    move |e| SeccompError::Lib {
        op: op.to_string(),
        source: e,
    }
}

/// Builds the libseccomp filter for `p` and exports its BPF.
pub fn libseccomp_bpf(p: &Profile) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut ctx = ScmpFilterContext::new(scmp_action(p.default)).map_err(lib("seccomp_init"))?;
    // cuddy sets no_new_privs itself, only when process.noNewPrivileges says
    // so (libseccomp would set it at load; we load ourselves, but say it).
    ctx.set_ctl_nnp(false).map_err(lib("SCMP_FLTATR_CTL_NNP"))?;
    for &token in &p.archs {
        let arch = scmp_arch(token).ok_or_else(|| SeccompError::Arch(arch_name(token)))?;
        if !ctx
            .is_arch_present(arch)
            .map_err(lib("seccomp_arch_exist"))?
        {
            ctx.add_arch(arch).map_err(|e| SeccompError::Lib {
                op: format!("seccomp_arch_add {}", arch_name(token)),
                source: e,
            })?;
        }
    }
    for r in &p.rules {
        // libseccomp refuses rules equal to the default action; they change
        // nothing anyway.
        if r.action == p.default {
            continue;
        }
        let Ok(sys) = ScmpSyscall::from_name(&r.name) else {
            // As runc: a name this libseccomp does not know (a newer syscall,
            // or another architecture's) is skipped.
            tracing::debug!(
                "seccomp: syscall {:?} unknown to libseccomp, skipped",
                r.name
            );
            continue;
        };
        let act = scmp_action(r.action);
        let res = if r.conds.is_empty() {
            ctx.add_rule(act, sys)
        } else {
            let cmps: Vec<ScmpArgCompare> = r
                .conds
                .iter()
                .map(|c| {
                    if c.op == Op::ScmpCmpMaskedEq {
                        ScmpArgCompare::new(c.index, scmp_op(c.op, c.value), c.value_two)
                    } else {
                        ScmpArgCompare::new(c.index, scmp_op(c.op, 0), c.value)
                    }
                })
                .collect();
            ctx.add_rule_conditional(act, sys, &cmps)
        };
        res.map_err(|e| SeccompError::Lib {
            op: format!("seccomp_rule_add {} ({:?})", r.name, r.action),
            source: e,
        })?;
    }
    export(&ctx)
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    // seccomp_export_bpf_mem needs libseccomp 2.6: export into a memfd.
    let fd =
        nix::sys::memfd::memfd_create(c"cuddy-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| SeccompError::Sys {
                op: "memfd_create".into(),
                source: e,
            })?;
    ctx.export_bpf(fd.as_fd())
        .map_err(lib("seccomp_export_bpf"))?;
    let mut bytes = Vec::new();
    let mut off = 0i64;
    let mut buf = [0u8; 8192];
    loop {
        let n = nix::sys::uio::pread(&fd, &mut buf, off).map_err(|e| SeccompError::Sys {
            op: "read exported BPF".into(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        off += n as i64;
    }
    super::program::decode(&bytes).ok_or(SeccompError::Malformed("libseccomp's export"))
}

/// Resolves `name` for `arch`: the real syscall number there, or None
/// (unknown, or a libseccomp pseudo-number for a syscall that the
/// architecture lacks).
pub fn syscall_nr(name: &str, arch: ScmpArch) -> Option<u32> {
    let nr = ScmpSyscall::from_name_by_arch(name, arch)
        .ok()?
        .as_raw_syscall();
    (nr >= 0).then_some(nr as u32)
}
