//! The `cuddy` command: parse the runc-compatible CLI, dispatch, print an
//! error once (stderr, and the --log file when given), exit non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cuddy::cli::{CgroupManager, Cli, Command, CreateFlags};
use cuddy::container::{self, ContainerError, CreateOptions, Root};

fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/cuddy");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("cuddy"),
        _ => PathBuf::from(format!("/tmp/cuddy-{}", nix::unistd::geteuid())),
    }
}

/// Refuses modes that are not implemented, instead of half-working.
fn check_modes(cli: &Cli) -> Result<(), ContainerError> {
    let rootless = cli.rootless.as_deref().unwrap_or("auto");
    if !matches!(rootless, "true" | "false" | "auto") {
        return Err(ContainerError::Unsupported(format!(
            "--rootless {rootless:?}: expected true, false or auto"
        )));
    }
    if rootless == "true" || (rootless == "auto" && !nix::unistd::geteuid().is_root()) {
        return Err(ContainerError::Unsupported("rootless containers (cuddy run by a non-root user, or --rootless true) are not supported yet by cuddy".into()));
    }
    Ok(())
}

/// Writes to stdout. A reader that went away (`cuddy state ID | head`)
/// is not an error (print! would panic on EPIPE: Rust ignores SIGPIPE).
fn emit(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("cuddy: write stdout: {e}")
        }
        _ => {}
    }
}

fn print_json(v: &serde_json::Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => emit(&format!("{s}\n")),
        Err(e) => eprintln!("cuddy: {e}"),
    }
}

/// `--systemd-cgroup` is runc's spelling of `--cgroup-manager systemd`.
fn manager(cli: &Cli) -> Option<CgroupManager> {
    if cli.systemd_cgroup {
        return Some(CgroupManager::Systemd);
    }
    cli.cgroup_manager
}

fn create_options(f: CreateFlags, id: String, manager: Option<CgroupManager>) -> CreateOptions {
    CreateOptions {
        // As crun: `--config config.json` is the bundle's own file; any
        // other relative name is taken from the current directory.
        config: f.config.filter(|c| c.as_os_str() != "config.json"),
        no_cgroup: manager == Some(CgroupManager::Disabled),
        systemd_cgroup: manager == Some(CgroupManager::Systemd),
        id,
        bundle: f.bundle,
        pid_file: f.pid_file,
        console_socket: f.console_socket,
        no_pivot: f.no_pivot,
        no_new_keyring: f.no_new_keyring,
        preserve_fds: f.preserve_fds,
        network: cuddy::network::Options {
            mode: f.network,
            ips: f.ip,
            mac: f.mac,
            publish: f.publish,
            dns: f.dns,
            cni_config_dir: f.cni_config_dir,
            cni_plugin_dir: f.cni_plugin_dir,
        },
        // As runc: a container outlives the cuddy that made it, even
        // `cuddy run`'s when cuddy is SIGKILLed.
        parent_death_signal: None,
    }
}

fn dispatch(cli: Cli) -> Result<i32, ContainerError> {
    let root = Root::new(cli.root.clone().unwrap_or_else(default_root));
    if matches!(cli.command, Command::Create(_) | Command::Run(_)) {
        check_modes(&cli)?;
    }
    let manager = manager(&cli);
    match cli.command {
        Command::Create(a) => {
            container::create(&root, &create_options(a.flags, a.id, manager))?;
            Ok(0)
        }
        Command::Run(a) => container::run(
            &root,
            &create_options(a.flags, a.id, manager),
            a.detach,
            a.keep,
        ),
        Command::Start(a) => container::start(&root, &a.id).map(|_| 0),
        Command::State(a) => {
            let st = root.load(&a.id)?;
            print_json(&container::state_json(&root, &st));
            Ok(0)
        }
        Command::Exec(a) => {
            let opts = container::ExecOptions {
                id: a.id,
                process: a.process,
                detach: a.detach,
                pid_file: a.pid_file,
                tty: a.tty,
                console_socket: a.console_socket,
                cwd: a.cwd,
                env: a.env,
                user: a.user,
                additional_gids: a.additional_gids,
                caps: a.cap,
                no_new_privs: a.no_new_privs,
                preserve_fds: a.preserve_fds,
                ignore_paused: a.ignore_paused,
                apparmor: a.apparmor,
                process_label: a.process_label,
                args: a.command,
            };
            container::exec(&root, &opts)
        }
        Command::Kill(a) => container::kill(&root, &a.id, &a.signal, a.all).map(|_| 0),
        Command::Delete(a) if a.regex => {
            container::delete_matching(&root, &a.id, a.force).map(|_| 0)
        }
        Command::Delete(a) => container::delete(&root, &a.id, a.force).map(|_| 0),
        Command::List(a) => {
            emit(&container::list(&root, a.format, a.quiet)?);
            Ok(0)
        }
        Command::Spec(a) => {
            let path = a.bundle.join("config.json");
            if path.exists() {
                return Err(ContainerError::Unsupported(format!(
                    "{}: file already exists",
                    path.display()
                )));
            }
            let uid = nix::unistd::geteuid().as_raw();
            let gid = nix::unistd::getegid().as_raw();
            let v = cuddy::spec::default_spec(a.rootless, uid, gid);
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            // O_CREAT|O_EXCL: never writes through a symlink planted there.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, (text + "\n").as_bytes()))
                .map_err(|source| ContainerError::Io {
                    op: "write",
                    path,
                    source,
                })?;
            Ok(0)
        }
        Command::Features(_) => {
            print_json(&cuddy::features::features());
            Ok(0)
        }
        Command::Pause(a) => container::pause(&root, &a.id).map(|_| 0),
        Command::Resume(a) => container::resume(&root, &a.id).map(|_| 0),
        Command::Update(a) => {
            let res = container::resources_from_args(&a)?;
            container::update(&root, &a.id, &res).map(|_| 0)
        }
        Command::Events(a) => container::events(
            &root,
            &a.id,
            a.stats,
            &a.interval,
            &mut std::io::stdout().lock(),
        )
        .map(|_| 0),
        Command::Ps(a) => {
            emit(&container::ps(&root, &a.id, a.format, &a.ps_args)?);
            Ok(0)
        }
        Command::Network(a) => {
            emit(&cuddy::cli::network_run(&root.path, a)?);
            Ok(0)
        }
        // Handled in main (their errors are not ContainerErrors).
        Command::Image(_) | Command::Sandbox(_) => unreachable!("handled in main"),
    }
}

/// `create`, `run` and `exec` fork container processes from this program:
/// it must first re-execute itself from a sealed view of its binary
/// (CVE-2019-5736, src/exeseal.rs). Decided on the raw arguments, before any
/// other work, so that the work is done once, by the sealed process. A word
/// that only looks like one of these verbs (a container named "run") costs
/// one needless re-execution, nothing else; the library's own check
/// (`container::create`/`exec` refuse an unsealed program) is the backstop.
fn may_fork_containers() -> bool {
    std::env::args_os()
        .skip(1)
        .any(|a| a == "create" || a == "run" || a == "exec" || a == "sandbox")
}

use cuddy::utils::error_chain as chain;

/// Fds 3..3+N that this command passes on to the container: --preserve-fds
/// plus LISTEN_FDS (create, run, exec); none for the other commands.
fn passed_fds(cli: &Cli) -> u32 {
    let preserve = match &cli.command {
        Command::Create(a) => a.flags.preserve_fds,
        Command::Run(a) => a.flags.preserve_fds,
        Command::Exec(a) => a.preserve_fds,
        _ => return 0,
    };
    preserve.saturating_add(cuddy::fds::listen_fds())
}

fn main() -> ExitCode {
    if may_fork_containers() {
        if let Err(e) = cuddy::exeseal::ensure_sealed() {
            eprintln!("cuddy: {e}");
            return ExitCode::FAILURE;
        }
    }
    let cli = Cli::parse();
    // First thing: no fd the caller leaked survives an execve of ours (the
    // CVE-2024-21626 class); children also close them right after clone.
    if let Err(e) = cuddy::fds::mark_inherited_cloexec(passed_fds(&cli)) {
        eprintln!("cuddy: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = cuddy::logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("cuddy: {e}");
        return ExitCode::FAILURE;
    }
    let logged = cli.log.is_some();
    let result: Result<i32, Box<dyn std::error::Error>> = match cli.command {
        Command::Image(a) => cuddy::cli::image_run(a)
            .map(|out| {
                emit(&out);
                0
            })
            .map_err(Into::into),
        Command::Sandbox(a) => cuddy::cli::sandbox::run(a, cli.root).map_err(Into::into),
        command => dispatch(Cli { command, ..cli }).map_err(Into::into),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            let msg = chain(e.as_ref());
            if logged {
                tracing::error!("{msg}");
            }
            eprintln!("cuddy: {msg}");
            ExitCode::FAILURE
        }
    }
}
