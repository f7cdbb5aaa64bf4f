//! Catalogue rows: malformed command lines. Placeholders: {ID} a fresh id
//! (must not exist afterwards), {BUNDLE} a good bundle, {CREATED},
//! {RUNNING}, {PAUSED}, {STOPPED} containers in that state (their state must
//! not change), {GHOST} an id that does not exist, {FILE} a file holding the
//! row's text, {DIR} the test's directory.

use super::{Input, Row};

fn a(
    name: &'static str,
    args: &'static [&'static str],
    expect: &'static [&'static str],
    code: i32,
) -> Row {
    Row {
        name,
        input: Input::Cli(args, None),
        expect,
        code,
    }
}

fn f(
    name: &'static str,
    args: &'static [&'static str],
    file: &'static str,
    expect: &'static [&'static str],
) -> Row {
    Row {
        name,
        input: Input::Cli(args, Some(file)),
        expect,
        code: 1,
    }
}

/// runtime.md "Operations" and runc's command line.
pub fn rows() -> Vec<Row> {
    vec![
        // Usage errors (exit 2, as runc's urfave/cli and clap do).
        a(
            "unknown-verb",
            &["frobnicate"],
            &["unrecognized subcommand", "frobnicate"],
            2,
        ),
        a(
            "unknown-flag",
            &["create", "--bogus", "--bundle", "{BUNDLE}", "{ID}"],
            &["unexpected argument", "--bogus"],
            2,
        ),
        a(
            "create-no-id",
            &["create", "--bundle", "{BUNDLE}"],
            &["required", "<ID>"],
            2,
        ),
        a("kill-no-id", &["kill"], &["required", "<ID>"], 2),
        a("exec-no-id", &["exec"], &["required", "<ID>"], 2),
        a(
            "log-format",
            &["--log-format", "xml", "state", "{RUNNING}"],
            &["invalid value", "xml"],
            2,
        ),
        a(
            "pid-file-no-value",
            &["create", "--bundle", "{BUNDLE}", "{ID}", "--pid-file"],
            &["--pid-file", "value"],
            2,
        ),
        // Bad ids (runtime.md "State": id).
        a(
            "id-dotdot-slash",
            &["create", "--bundle", "{BUNDLE}", "../x"],
            &["\"../x\"", "id"],
            1,
        ),
        a(
            "id-empty",
            &["create", "--bundle", "{BUNDLE}", ""],
            &["\"\"", "id"],
            1,
        ),
        a(
            "id-too-long",
            &["create", "--bundle", "{BUNDLE}", "{LONGID}"],
            &["id", "xxxxxxxx"],
            1,
        ),
        a(
            "id-slash-state",
            &["state", "a/../b"],
            &["\"a/../b\"", "id"],
            1,
        ),
        a(
            "id-dotdot-delete",
            &["delete", "--force", ".."],
            &["\"..\"", "id"],
            1,
        ),
        // Unknown containers.
        a(
            "ghost-pause",
            &["pause", "{GHOST}"],
            &["{GHOST}", "does not exist"],
            1,
        ),
        a(
            "ghost-resume",
            &["resume", "{GHOST}"],
            &["{GHOST}", "does not exist"],
            1,
        ),
        a(
            "ghost-exec",
            &["exec", "{GHOST}", "/bin/true"],
            &["{GHOST}", "does not exist"],
            1,
        ),
        a(
            "ghost-update",
            &["update", "--memory", "10M", "{GHOST}"],
            &["{GHOST}", "does not exist"],
            1,
        ),
        a(
            "ghost-ps",
            &["ps", "{GHOST}"],
            &["{GHOST}", "does not exist"],
            1,
        ),
        a(
            "ghost-events",
            &["events", "--stats", "{GHOST}"],
            &["{GHOST}", "does not exist"],
            1,
        ),
        // A verb in the wrong state (runtime.md "Lifecycle").
        a(
            "pause-created",
            &["pause", "{CREATED}"],
            &[
                "{CREATED}",
                "is created",
                "only a running container can be paused",
            ],
            1,
        ),
        a(
            "resume-running",
            &["resume", "{RUNNING}"],
            &[
                "{RUNNING}",
                "is running",
                "only a paused container can be resumed",
            ],
            1,
        ),
        a(
            "exec-stopped",
            &["exec", "{STOPPED}", "/bin/true"],
            &["{STOPPED}", "not running"],
            1,
        ),
        a(
            "update-stopped",
            &["update", "--memory", "10M", "{STOPPED}"],
            &["{STOPPED}", "stopped"],
            1,
        ),
        a(
            "delete-running",
            &["delete", "{RUNNING}"],
            &["{RUNNING}", "is running"],
            1,
        ),
        a(
            "delete-paused",
            &["delete", "{PAUSED}"],
            &["{PAUSED}", "paused"],
            1,
        ),
        a(
            "start-paused",
            &["start", "{PAUSED}"],
            &["{PAUSED}", "paused"],
            1,
        ),
        a(
            "create-existing",
            &["create", "--bundle", "{BUNDLE}", "{RUNNING}"],
            &["{RUNNING}", "already exists"],
            1,
        ),
        // Bad signals (runtime.md "kill").
        a(
            "signal-hex",
            &["kill", "{RUNNING}", "0x9"],
            &["signal", "0x9"],
            1,
        ),
        a("signal-negative", &["kill", "{RUNNING}", "-9"], &["-9"], 2),
        a(
            "signal-empty",
            &["kill", "{RUNNING}", ""],
            &["signal", "\"\""],
            1,
        ),
        a(
            "signal-rtmax-plus",
            &["kill", "{RUNNING}", "SIGRTMAX+5"],
            &["signal", "SIGRTMAX+5"],
            1,
        ),
        // exec flags and --process JSON (runc's process.json).
        a(
            "exec-no-command",
            &["exec", "{RUNNING}"],
            &["needs a command"],
            1,
        ),
        a(
            "exec-user-name",
            &["exec", "-u", "nobody", "{RUNNING}", "/bin/true"],
            &["-u", "nobody", "UID"],
            1,
        ),
        a(
            "exec-process-missing",
            &[
                "exec",
                "--process",
                "{DIR}/no-such-process.json",
                "{RUNNING}",
            ],
            &["--process", "no-such-process.json", "No such file"],
            1,
        ),
        f(
            "process-array",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "[]",
            &["--process", "must be a JSON object"],
        ),
        f(
            "process-syntax",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "{\"args\": [\"/bin/true\"],",
            &["--process", "EOF", "line 1"],
        ),
        f(
            "process-args-string",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "{\"args\": \"/bin/true\", \"cwd\": \"/\", \"user\": {\"uid\": 0, \"gid\": 0}}",
            &["--process", "args", "invalid type"],
        ),
        f(
            "process-cwd-relative",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "{\"args\": [\"/bin/true\"], \"cwd\": \"tmp\", \"user\": {\"uid\": 0, \"gid\": 0}}",
            &["cwd", "\"tmp\"", "absolute"],
        ),
        f(
            "process-no-cwd",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "{\"args\": [\"/bin/true\"], \"user\": {\"uid\": 0, \"gid\": 0}}",
            &["--process", "cwd"],
        ),
        f(
            "process-uid",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "{\"args\": [\"/bin/true\"], \"cwd\": \"/\", \"user\": {\"uid\": 4294967295, \"gid\": 0}}",
            &["process.user.uid", "outside"],
        ),
        f(
            "process-effective",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "{\"args\": [\"/bin/true\"], \"cwd\": \"/\", \"user\": {\"uid\": 0, \"gid\": 0}, \"capabilities\": {\"effective\": [\"CAP_KILL\"], \"permitted\": []}}",
            &["capabilities.effective", "CAP_KILL", "permitted"],
        ),
        f(
            "process-env",
            &["exec", "--process", "{FILE}", "{RUNNING}"],
            "{\"args\": [\"/bin/true\"], \"cwd\": \"/\", \"user\": {\"uid\": 0, \"gid\": 0}, \"env\": [\"NOEQUALS\"]}",
            &["env", "NOEQUALS"],
        ),
        // update --resources JSON and flags (runc update).
        f(
            "resources-array",
            &["update", "--resources", "{FILE}", "{RUNNING}"],
            "[1]",
            &["--resources", "must be a JSON object"],
        ),
        f(
            "resources-syntax",
            &["update", "--resources", "{FILE}", "{RUNNING}"],
            "{\"memory\": ",
            &["--resources", "EOF"],
        ),
        f(
            "resources-limit-string",
            &["update", "--resources", "{FILE}", "{RUNNING}"],
            "{\"memory\": {\"limit\": \"1g\"}}",
            &["--resources", "memory.limit", "invalid type"],
        ),
        f(
            "resources-shares",
            &["update", "--resources", "{FILE}", "{RUNNING}"],
            "{\"cpu\": {\"shares\": 1}}",
            &["cpu.shares", "outside"],
        ),
        f(
            "resources-swappiness",
            &["update", "--resources", "{FILE}", "{RUNNING}"],
            "{\"memory\": {\"swappiness\": 101}}",
            &["linux.resources.memory.swappiness"],
        ),
        a(
            "resources-missing",
            &["update", "--resources", "{DIR}/no-such.json", "{RUNNING}"],
            &["--resources", "no-such.json", "No such file"],
            1,
        ),
        a(
            "update-memory-banana",
            &["update", "--memory", "banana", "{RUNNING}"],
            &["--memory", "banana"],
            1,
        ),
        a(
            "update-blkio-weight",
            &["update", "--blkio-weight", "5", "{RUNNING}"],
            &["--blkio-weight", "5"],
            1,
        ),
        a(
            "update-cpuset",
            &["update", "--cpuset-cpus", "a-b", "{RUNNING}"],
            &["cpu.cpus", "a-b"],
            1,
        ),
        // create/run options.
        a(
            "bundle-missing",
            &["run", "--bundle", "{DIR}/no-bundle", "{ID}"],
            &["no-bundle", "No such file"],
            1,
        ),
        a(
            "config-missing",
            &[
                "create",
                "--bundle",
                "{BUNDLE}",
                "--config",
                "{DIR}/no-config.json",
                "{ID}",
            ],
            &["no-config.json", "No such file"],
            1,
        ),
        a(
            "pid-file-dir-missing",
            &[
                "create",
                "--bundle",
                "{BUNDLE}",
                "--pid-file",
                "{DIR}/no-dir/pid",
                "{ID}",
            ],
            &["no-dir/pid"],
            1,
        ),
        a(
            "console-socket-missing",
            &[
                "create",
                "--bundle",
                "{TTYBUNDLE}",
                "--console-socket",
                "{DIR}/no-socket",
                "{ID}",
            ],
            &["no-socket"],
            1,
        ),
        a(
            "ps-format",
            &["ps", "--format", "yaml", "{RUNNING}"],
            &["invalid value", "yaml"],
            2,
        ),
        a(
            "spec-exists",
            &["spec", "--bundle", "{BUNDLE}"],
            &["config.json", "exists"],
            1,
        ),
    ]
}
