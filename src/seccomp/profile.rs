//! config-linux.md "Seccomp": the OCI section checked and normalised into a
//! [`Profile`], the one form that is compiled, hashed for the cache and
//! validated. Everything the spec says "MUST fail" fails here, before
//! anything is created, with the field named.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompFilterFlag as F,
    LinuxSeccompOperator as Op,
};

/// `<linux/seccomp.h>` filter flags.
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 1 << 1;
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// `MAX_ERRNO`: the kernel clamps a larger SECCOMP_RET_ERRNO datum to it.
const MAX_ERRNO: u32 = 4095;
/// SECCOMP_RET_TRACE passes 16 bits (SECCOMP_RET_DATA) to the tracer.
const MAX_TRACE: u32 = 0xffff;
/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// An action with its data resolved (errnoRet defaults to EPERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u32),
    Trace(u32),
    Allow,
    Log,
    Notify,
}

impl Action {
    /// Allow-like defaults gain nothing from the ENOSYS stub.
    pub fn allows(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    /// (tag, datum) for the canonical encoding.
    pub fn code(self) -> (u8, u32) {
        match self {
            Action::KillThread => (1, 0),
            Action::KillProcess => (2, 0),
            Action::Trap => (3, 0),
            Action::Errno(e) => (4, e),
            Action::Trace(t) => (5, t),
            Action::Allow => (6, 0),
            Action::Log => (7, 0),
            Action::Notify => (8, 0),
        }
    }
}

/// One argument comparison; `value` is the mask for MASKED_EQ (as runc and
/// libseccomp: `(arg & value) == valueTwo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u32,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

/// One libseccomp rule: a syscall name, an action, and conditions that must
/// all hold (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    pub conds: Vec<Cond>,
}

/// The normalised profile: what the BPF program depends on, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub default: Action,
    /// libseccomp architecture tokens, sorted, without duplicates.
    pub archs: Vec<u32>,
    /// Kernel flag bits to load with (NEW_LISTENER added when a rule notifies).
    pub flags: u32,
    /// In config order: the order of rules for one syscall matters.
    pub rules: Vec<Rule>,
}

/// A field of `linux.seccomp` and why it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn action(a: A, errno: Option<u32>, field: &str) -> Result<Action, Invalid> {
    let ef = if field.ends_with("defaultAction") {
        field.replace("defaultAction", "defaultErrnoRet")
    } else {
        field.replace("action", "errnoRet")
    };
    let act = match a {
        A::ScmpActKill | A::ScmpActKillThread => Action::KillThread,
        A::ScmpActKillProcess => Action::KillProcess,
        A::ScmpActTrap => Action::Trap,
        A::ScmpActAllow => Action::Allow,
        A::ScmpActLog => Action::Log,
        A::ScmpActNotify => Action::Notify,
        A::ScmpActErrno => {
            let e = errno.unwrap_or(libc::EPERM as u32);
            if e > MAX_ERRNO {
                return Err(bad(ef, format!("{e} is not an errno (0..={MAX_ERRNO})")));
            }
            return Ok(Action::Errno(e));
        }
        A::ScmpActTrace => {
            let t = errno.unwrap_or(libc::EPERM as u32);
            if t > MAX_TRACE {
                return Err(bad(
                    ef,
                    format!("{t} does not fit SCMP_ACT_TRACE's 16 bits"),
                ));
            }
            return Ok(Action::Trace(t));
        }
    };
    if let Some(e) = errno {
        // config-linux.md: "When the action doesn't support an errno, the
        // runtime MUST print and error and fail."
        return Err(bad(
            ef,
            format!(
                "errno {e} given, but {a} does not return an errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
            ),
        ));
    }
    Ok(act)
}

fn flags(list: &[F]) -> u32 {
    list.iter()
        .map(|f| match f {
            // cuddy's child is single-threaded when it loads the filter:
            // TSYNC has nothing to synchronise (runc ignores it too), and the
            // kernel refuses it with NEW_LISTENER.
            F::SeccompFilterFlagTsync => 0,
            F::SeccompFilterFlagLog => FLAG_LOG,
            F::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            F::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        })
        .fold(0, |a, b| a | b)
}

fn conds(sc: &oci_spec::runtime::LinuxSyscall, field: &str) -> Result<Vec<Cond>, Invalid> {
    let args = sc.args().as_deref().unwrap_or(&[]);
    if args.len() > MAX_ARGS {
        return Err(bad(
            format!("{field}.args"),
            format!("{} comparisons, at most {MAX_ARGS}", args.len()),
        ));
    }
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            if a.index() >= MAX_ARGS {
                return Err(bad(
                    format!("{field}.args[{i}].index"),
                    format!("{} is not a syscall argument (0..=5)", a.index()),
                ));
            }
            Ok(Cond {
                index: a.index() as u32,
                op: a.op(),
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
            })
        })
        .collect()
}

/// Checks and normalises `linux.seccomp`.
pub fn normalise(s: &LinuxSeccomp) -> Result<Profile, Invalid> {
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    if default == Action::Notify {
        return Err(bad(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action: every syscall of the runtime after the load, and of the listener's own set-up, would wait for the listener",
        ));
    }
    let native = super::compile::native_token();
    let mut archs = vec![native];
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        archs.push(match a {
            Arch::ScmpArchNative => native,
            other => {
                let name = other.to_string();
                super::compile::ARCHS
                    .iter()
                    .find(|x| x.2 == name)
                    .map(|x| x.0)
                    .ok_or_else(|| {
                        bad(
                            format!("linux.seccomp.architectures[{i}]"),
                            format!("{name} is not supported"),
                        )
                    })?
            }
        });
    }
    archs.sort_unstable();
    archs.dedup();
    let mut profile = Profile {
        default,
        archs,
        flags: flags(s.flags().as_deref().unwrap_or(&[])),
        rules: Vec::new(),
    };
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        if sc.names().is_empty() {
            return Err(bad(
                format!("{field}.names"),
                "must name at least one syscall",
            ));
        }
        let act = action(sc.action(), sc.errno_ret(), &format!("{field}.action"))?;
        let conds = conds(sc, &field)?;
        // runc/youki: several comparisons of the same argument become
        // separate rules (any may match: OR); otherwise one rule (AND).
        let mut seen = [0u8; MAX_ARGS];
        conds.iter().for_each(|c| seen[c.index as usize] += 1);
        let groups: Vec<Vec<Cond>> = if seen.iter().any(|n| *n > 1) {
            conds.iter().map(|c| vec![*c]).collect()
        } else {
            vec![conds]
        };
        for (j, name) in sc.names().iter().enumerate() {
            if name.is_empty() || name.contains('\0') {
                return Err(bad(format!("{field}.names[{j}]"), "not a syscall name"));
            }
            for g in &groups {
                profile.rules.push(Rule {
                    name: name.clone(),
                    action: act,
                    conds: g.clone(),
                });
            }
        }
    }
    if profile.rules.iter().any(|r| r.action == Action::Notify) {
        if s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(bad(
                "linux.seccomp.listenerPath",
                "a rule uses SCMP_ACT_NOTIFY, so listenerPath must name the seccomp agent's socket",
            ));
        }
        profile.flags |= FLAG_NEW_LISTENER;
    } else {
        // The kernel accepts WAIT_KILLABLE_RECV only with a listener; without
        // one it means nothing.
        profile.flags &= !FLAG_WAIT_KILLABLE_RECV;
    }
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        // config-linux.md: "This field MUST NOT be set if `listenerPath` is not set."
        return Err(bad(
            "linux.seccomp.listenerMetadata",
            "set without listenerPath",
        ));
    }
    if let Some(p) = s
        .listener_path()
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        if !p.is_absolute() {
            return Err(bad(
                "linux.seccomp.listenerPath",
                format!("{} must be an absolute path", p.display()),
            ));
        }
    }
    Ok(profile)
}

/// Canonical, length-prefixed encoding of the profile: two different
/// profiles never encode alike (every field is counted or sized, every
/// errnoRet, flag and architecture is in it).
pub fn encode(p: &Profile, out: &mut Vec<u8>) {
    let act = |out: &mut Vec<u8>, a: Action| {
        let (t, d) = a.code();
        out.push(t);
        out.extend_from_slice(&d.to_le_bytes());
    };
    out.extend_from_slice(b"profile");
    act(out, p.default);
    out.extend_from_slice(&(p.archs.len() as u32).to_le_bytes());
    p.archs
        .iter()
        .for_each(|a| out.extend_from_slice(&a.to_le_bytes()));
    out.extend_from_slice(&p.flags.to_le_bytes());
    out.extend_from_slice(&(p.rules.len() as u32).to_le_bytes());
    for r in &p.rules {
        out.extend_from_slice(&(r.name.len() as u32).to_le_bytes());
        out.extend_from_slice(r.name.as_bytes());
        act(out, r.action);
        out.push(r.conds.len() as u8);
        for c in &r.conds {
            out.push(c.index as u8);
            out.push(c.op as u32 as u8);
            out.extend_from_slice(&c.value.to_le_bytes());
            out.extend_from_slice(&c.value_two.to_le_bytes());
        }
    }
}
