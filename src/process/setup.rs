//! The process attributes of config.md "Process" applied in the child:
//! rlimits, scheduler, I/O priority, user and groups (verified after the
//! switch), capabilities, and the working directory resolved inside the
//! root. The program itself is `program.rs`.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy, Process};

use super::ProcessError;
use crate::spec::RLIMITS;

fn err(op: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let op = op.into();
    move |source| ProcessError::Sys { op, source }
}

pub fn rlimits(p: &Process) -> Result<(), ProcessError> {
    for r in p.rlimits().iter().flatten() {
        let name = r.typ().to_string();
        let name = if name.starts_with("RLIMIT_") {
            name
        } else {
            format!("RLIMIT_{name}")
        };
        let Some((_, res)) = RLIMITS.iter().find(|(n, _)| *n == name) else {
            return Err(ProcessError::Sys {
                op: format!("setrlimit {name}"),
                source: Errno::EINVAL,
            });
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: valid resource number and rlimit struct.
        if unsafe { libc::setrlimit(*res as _, &lim) } < 0 {
            return Err(err(format!(
                "setrlimit {name} (soft {}, hard {})",
                r.soft(),
                r.hard()
            ))(Errno::last()));
        }
    }
    Ok(())
}

/// `struct sched_attr` for sched_setattr(2).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

pub fn scheduler(p: &Process) -> Result<(), ProcessError> {
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: a valid sched_attr with its size; pid 0 is the caller.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
        let e = Errno::last();
        // Kernel fact: with CONFIG_RT_GROUP_SCHED and a cgroup v1 cpu
        // controller, a task may become SCHED_FIFO/RR only when its cpu
        // cgroup has realtime runtime (cpu.rt_runtime_us > 0); a new cgroup
        // has none. On cgroup v2 such a kernel has no rt_runtime file at all:
        // every non-root cgroup with the cpu controller has none (seen on a
        // 6.18 kernel with CONFIG_RT_GROUP_SCHED=y; Debian's kernels are
        // built without it). EPERM then is not a missing capability (cuddy still holds
        // CAP_SYS_NICE here, before the capabilities are dropped).
        let rt = policy == libc::SCHED_FIFO as u32 || policy == libc::SCHED_RR as u32;
        let why = if rt && e == Errno::EPERM {
            "; a realtime policy needs realtime runtime in the container's cpu cgroup (cgroup v1 cpu.rt_runtime_us is 0 unless linux.resources.cpu.realtimeRuntime/realtimePeriod give it some, within the parent's; on cgroup v2 a kernel built with CONFIG_RT_GROUP_SCHED gives none to any non-root cgroup with the cpu controller, for any runtime)"
        } else {
            ""
        };
        return Err(err(format!(
            "sched_setattr (process.scheduler policy {}){why}",
            s.policy()
        ))(e));
    }
    Ok(())
}

/// The spelling of `process.scheduler.flags` in the runtime spec
/// (config.md "Process") paired with the one the parser (oci-spec) takes.
const SCHED_FLAG_NAMES: &[(&str, &str)] = &[
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

/// Rewrites the spec's scheduler flag names in a `process` JSON object to
/// the parser's; returns whether anything changed.
pub fn spec_sched_flag_names(process: &mut serde_json::Value) -> bool {
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return false;
    };
    let mut changed = false;
    for f in flags.iter_mut() {
        if let Some((_, to)) = SCHED_FLAG_NAMES.iter().find(|(from, _)| f == from) {
            *f = serde_json::Value::String((*to).to_string());
            changed = true;
        }
    }
    changed
}

/// `PR_SET_PDEATHSIG`: `sig` to this process when the thread that created
/// it exits. Kernel facts this relies on: the setting is cleared when the
/// effective or filesystem uid/gid change and on a set-id or
/// file-capability execve, so it is set after `user_and_caps`; it is kept
/// across an ordinary execve; sent by the kernel from an ancestor PID
/// namespace it reaches a namespace's init even without a handler. A
/// creator that died before this call is no longer our parent and sends
/// nothing: the init then sees EOF on the sync channel and exits
/// (`init::committed`), so there is no window.
pub fn parent_death_signal(sig: nix::sys::signal::Signal) -> Result<(), ProcessError> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(ProcessError::Sys {
            op: format!("prctl(PR_SET_PDEATHSIG, {sig})"),
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// `linux.personality` (config-linux.md "Personality"): personality(2) with
/// PER_LINUX or PER_LINUX32 (which makes uname(2) report a 32-bit machine,
/// i686 on x86_64). Inherited across execve; set last, just before it.
pub fn personality(p: Option<&oci_spec::runtime::LinuxPersonality>) -> Result<(), ProcessError> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let Some(p) = p else {
        return Ok(());
    };
    // linux/personality.h: PER_LINUX 0x0000, PER_LINUX32 0x0008.
    let persona: libc::c_ulong = match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    // SAFETY: plain syscall with an integer argument.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(err(format!(
            "personality {} (linux.personality)",
            p.domain()
        ))(Errno::last()));
    }
    Ok(())
}

pub fn io_priority(p: &Process) -> Result<(), ProcessError> {
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        return Err(ProcessError::Sys {
            op: format!(
                "ioprio_set (process.ioPriority.priority {} not in 0..7)",
                io.priority()
            ),
            source: Errno::EINVAL,
        });
    }
    let value = (class << 13) | io.priority() as i32;
    // SAFETY: plain syscall; IOPRIO_WHO_PROCESS (1) with pid 0 is the caller.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) } < 0 {
        return Err(err("ioprio_set (process.ioPriority)")(Errno::last()));
    }
    Ok(())
}

/// A new session keyring named after the container, so containers do not
/// share the caller's keys (as runc does unless --no-new-keyring).
pub fn join_session_keyring(id: &str) -> Result<(), ProcessError> {
    let name = CString::new(format!("_ses.{id}")).map_err(|_| err("keyctl")(Errno::EINVAL))?;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING (1) with a NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
    // Kernels without keys, or a user namespace that may not: not fatal.
    if r < 0 && !matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM | Errno::EACCES) {
        return Err(err("keyctl join session keyring")(Errno::last()));
    }
    Ok(())
}

fn to_caps(
    set: Option<&HashSet<oci_spec::runtime::Capability>>,
    field: &str,
) -> Result<caps::CapsHashSet, ProcessError> {
    let mut out = caps::CapsHashSet::new();
    let supported = caps::runtime::thread_all_supported();
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: Cap = name.parse().map_err(|_| ProcessError::Sys {
            op: format!("process.capabilities.{field}: unknown capability {name}"),
            source: Errno::EINVAL,
        })?;
        if supported.contains(&cap) {
            out.insert(cap);
        } else {
            tracing::warn!(
                "process.capabilities.{field}: {name} is not supported by this kernel, ignored"
            );
        }
    }
    Ok(out)
}

/// Drops the bounding set, switches user and groups keeping capabilities,
/// then sets the remaining capability sets. The bounding set goes first
/// because dropping from it needs CAP_SETPCAP, which the user switch may lose.
pub fn user_and_caps(p: &Process, in_userns: bool) -> Result<(), ProcessError> {
    let c = p.capabilities().as_ref();
    let bounding = to_caps(c.and_then(|c| c.bounding().as_ref()), "bounding")?;
    let effective = to_caps(c.and_then(|c| c.effective().as_ref()), "effective")?;
    let permitted = to_caps(c.and_then(|c| c.permitted().as_ref()), "permitted")?;
    let inheritable = to_caps(c.and_then(|c| c.inheritable().as_ref()), "inheritable")?;
    let ambient = to_caps(c.and_then(|c| c.ambient().as_ref()), "ambient")?;
    let cap_err = |op: &str| {
        let op = op.to_string();
        move |e: caps::errors::CapsError| ProcessError::Sys {
            op: format!("{op}: {e}"),
            source: Errno::EPERM,
        }
    };

    for cap in caps::runtime::thread_all_supported() {
        if !bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(cap_err("drop bounding capability"))?;
        }
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0 {
        return Err(err("prctl(PR_SET_KEEPCAPS)")(Errno::last()));
    }
    let user = p.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    let groups_set = match nix::unistd::setgroups(&gids) {
        Ok(()) => true,
        // A user namespace with setgroups denied (rootless) cannot set
        // groups; that is fine only when none were asked for.
        Err(Errno::EPERM) if in_userns && gids.is_empty() => false,
        Err(e) => {
            return Err(err(format!(
                "setgroups {:?} (process.user.additionalGids)",
                user.additional_gids()
            ))(e));
        }
    };
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(err(format!("setresgid {} (process.user.gid)", user.gid())))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(err(format!("setresuid {} (process.user.uid)", user.uid())))?;
    verify_ids(user, groups_set.then_some(gids.as_slice()))?;
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };

    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(cap_err("set inheritable capabilities"))?;
    let current =
        caps::read(None, CapSet::Permitted).map_err(cap_err("read permitted capabilities"))?;
    let eff_now: caps::CapsHashSet = effective.intersection(&current).copied().collect();
    caps::set(None, CapSet::Effective, &eff_now).map_err(cap_err("set effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(cap_err(
        "set permitted capabilities (process.capabilities.permitted)",
    ))?;
    caps::set(None, CapSet::Effective, &effective).map_err(cap_err(
        "set effective capabilities (process.capabilities.effective must be within permitted)",
    ))?;
    caps::clear(None, CapSet::Ambient).map_err(cap_err("clear ambient capabilities"))?;
    raise_ambient(&ambient, &permitted, &inheritable);
    Ok(())
}

/// Raises the ambient capabilities. The kernel raises one only if it is
/// both permitted and inheritable (capabilities(7)). Configs that list
/// ambient capabilities without inheritable ones are common (runc 1.1's
/// `runc spec` wrote ambient = permitted and no inheritable): runc up to 1.1
/// ignored them silently (its capability package dropped the prctl error),
/// runc 1.2 warns and goes on. cuddy skips those at debug level, in one line
/// (they can never be raised: a fact of the config, not of the host), and
/// warns, as runc 1.2, only when the kernel refuses one that is both
/// permitted and inheritable (e.g. SECBIT_NO_CAP_AMBIENT_RAISE).
fn raise_ambient(ambient: &CapsHashSet, permitted: &CapsHashSet, inheritable: &CapsHashSet) {
    let mut skipped: Vec<String> = Vec::new();
    for cap in ambient {
        if !(permitted.contains(cap) && inheritable.contains(cap)) {
            skipped.push(cap.to_string());
        } else if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
            tracing::warn!("process.capabilities.ambient: {cap} not raised: {e}");
        }
    }
    if !skipped.is_empty() {
        skipped.sort();
        tracing::debug!(
            "process.capabilities.ambient: {} skipped: not both permitted and inheritable",
            skipped.join(", ")
        );
    }
}

/// Checks that the switch really gave the ids asked for (real, effective
/// and saved uid/gid, and the supplementary groups): a value the kernel
/// reads as "unchanged" (`(uid_t)-1`) or any other surprise is an error, not
/// a process left running as root.
fn verify_ids(user: &oci_spec::runtime::User, gids: Option<&[Gid]>) -> Result<(), ProcessError> {
    let r = nix::unistd::getresuid().map_err(err("getresuid"))?;
    let want = Uid::from_raw(user.uid());
    if [r.real, r.effective, r.saved] != [want; 3] {
        return Err(err(format!(
            "verify uid: asked for {} (process.user.uid), running as {}/{}/{}",
            user.uid(),
            r.real,
            r.effective,
            r.saved
        ))(Errno::EPERM));
    }
    let g = nix::unistd::getresgid().map_err(err("getresgid"))?;
    let want = Gid::from_raw(user.gid());
    if [g.real, g.effective, g.saved] != [want; 3] {
        return Err(err(format!(
            "verify gid: asked for {} (process.user.gid), running as {}/{}/{}",
            user.gid(),
            g.real,
            g.effective,
            g.saved
        ))(Errno::EPERM));
    }
    // Rootless with setgroups denied keeps the inherited groups (None).
    let Some(gids) = gids else { return Ok(()) };
    let mut have = nix::unistd::getgroups().map_err(err("getgroups"))?;
    let mut want: Vec<Gid> = gids.to_vec();
    have.sort_unstable_by_key(|g| g.as_raw());
    have.dedup();
    want.sort_unstable_by_key(|g| g.as_raw());
    want.dedup();
    if have != want {
        return Err(err(format!(
            "verify additional gids: asked for {want:?} (process.user.additionalGids), have {have:?}"
        ))(Errno::EPERM));
    }
    Ok(())
}

/// Changes to `cwd` (process.cwd or `exec --cwd`) resolved inside our root
/// ("/" is the container's root by now): openat2 with RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS, so neither a symlink to `/proc/self/fd/N` nor `..`
/// can lead out (the CVE-2024-21626 class), then fchdir, then getcwd must
/// give an absolute path that is not "(unreachable)..." (as runc's
/// verifyCwd). Runs as the final user, so search permission is checked as a
/// chdir would.
pub fn chdir_in_root(cwd: &Path, field: &str) -> Result<(), String> {
    let fail = |why: String| format!("{field} {}: {why}", cwd.display());
    let root = match crate::mounts::openat2(
        libc::AT_FDCWD,
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    ) {
        // A seccomp profile older than openat2 (its ENOSYS stub): chdir, and
        // the getcwd check below still refuses a directory outside the root.
        Err(Errno::ENOSYS) => {
            nix::unistd::chdir(cwd).map_err(|e| fail(format!("chdir: {e}")))?;
            return verify_cwd(cwd, field);
        }
        r => r.map_err(|e| fail(format!("open /: {e}")))?,
    };
    let dir = crate::mounts::open_in_root(
        std::os::fd::AsRawFd::as_raw_fd(&root),
        cwd,
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| {
        if e == Errno::ELOOP {
            fail(
                "refusing a /proc magic link (or too many symlinks) in the working directory"
                    .into(),
            )
        } else {
            fail(std::io::Error::from(e).to_string())
        }
    })?;
    nix::unistd::fchdir(&dir).map_err(|e| fail(format!("fchdir: {e}")))?;
    verify_cwd(cwd, field)
}

/// getcwd must give an absolute path inside our root (not "(unreachable)").
fn verify_cwd(cwd: &Path, field: &str) -> Result<(), String> {
    let fail = |why: String| format!("{field} {}: {why}", cwd.display());
    let now = nix::unistd::getcwd().map_err(|e| fail(format!("getcwd: {e}")))?;
    if !now.is_absolute() || now.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        return Err(fail(format!(
            "the working directory is outside the container ({})",
            now.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// config.md "Process": every flag name the runtime spec lists parses.
    #[test]
    fn spec_scheduler_flag_names_parse() {
        let mut p = serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "scheduler": {"policy": "SCHED_DEADLINE", "flags": [
                "SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
                "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS",
                "SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"]}
        });
        assert!(serde_json::from_value::<oci_spec::runtime::Process>(p.clone()).is_err());
        assert!(super::spec_sched_flag_names(&mut p));
        let parsed: oci_spec::runtime::Process = serde_json::from_value(p).expect("parses");
        let flags = parsed.scheduler().as_ref().and_then(|s| s.flags().clone());
        assert_eq!(flags.map(|f| f.len()), Some(7));
    }
}
