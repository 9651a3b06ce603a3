//! The command line, parsed by hand: `enroll`, `run`, `status`, `version`, `help`.

use std::path::PathBuf;
use std::time::Duration;

use crate::runtime::RunOptions;
use crate::spool::SpoolLimits;
use crate::state::{DEFAULT_STATE_DIR, STATE_DIR_ENV};
use crate::watch::Tools;

/// Environment variable holding the enrolment token (keeps it out of `ps` output).
pub const TOKEN_ENV: &str = "VIGIE_AGENT_ENROLL_TOKEN";
/// Environment variable bounding the spool in batches.
pub const SPOOL_BATCHES_ENV: &str = "VIGIE_AGENT_SPOOL_MAX_BATCHES";
/// Environment variable bounding the spool in MiB.
pub const SPOOL_MIB_ENV: &str = "VIGIE_AGENT_SPOOL_MAX_MIB";
/// Environment variable naming the machine root the collectors and watchers read.
pub const ROOT_ENV: &str = "VIGIE_AGENT_ROOT";
/// Environment variable capping every watcher's cadence, in seconds.
pub const WATCH_EVERY_ENV: &str = "VIGIE_AGENT_WATCH_EVERY";
/// Environment variable holding directories searched for tools before the system ones.
pub const TOOLS_PATH_ENV: &str = "VIGIE_AGENT_TOOLS_PATH";

pub const USAGE: &str = "\
vigie-agent: the Vigie monitoring agent

USAGE:
    vigie-agent enroll --url URL --token TOKEN [--force] [--state-dir DIR]
    vigie-agent run [--once] [--sample-interval S] [--send-interval S]
                    [--spool-max-batches N] [--spool-max-mib N] [--state-dir DIR]
                    [--root DIR] [--watch-every S] [--tools-path DIRS]
    vigie-agent status [--json] [--state-dir DIR]
    vigie-agent version
    vigie-agent help

COMMANDS:
    enroll   Create this device's key, redeem the enrolment token at URL and store the
             identity the server assigns. Refuses if already enrolled, unless --force.
    run      Sample the machine, spool signed batches on disk and send them. Stops cleanly
             on SIGTERM or SIGINT. With --once: one sample, one batch, one delivery attempt;
             exits 0 if everything spooled was delivered, 1 otherwise.
    status   Show the identity, the spool and the delivery counters (--json: as JSON).
    version  Print the version.

OPTIONS:
    --state-dir DIR          State directory [env VIGIE_AGENT_STATE_DIR]
                             [default: /var/lib/vigie-agent]
    --token TOKEN            Enrolment token [env VIGIE_AGENT_ENROLL_TOKEN]
    --sample-interval S      Seconds between samples (overrides the server's configuration)
    --send-interval S        Seconds between batches (overrides the server's configuration)
    --spool-max-batches N    Spool bound in batches [env VIGIE_AGENT_SPOOL_MAX_BATCHES]
                             [default: 5000]
    --spool-max-mib N        Spool bound in MiB [env VIGIE_AGENT_SPOOL_MAX_MIB] [default: 50]
    --root DIR               The machine's root directory, where the collectors and watchers
                             read proc/, sys/, etc/ and var/ (a container that mounts the
                             host at /host; fixture trees) [env VIGIE_AGENT_ROOT] [default: /]
    --watch-every S          Runs every watcher at least every S seconds (their own cadences
                             are 1 min to 1 h; for diagnostics and tests)
                             [env VIGIE_AGENT_WATCH_EVERY]
    --tools-path DIRS        Colon-separated directories searched for the programs watchers
                             run (apt-get, clamscan, smartctl, ...) before the system ones
                             [env VIGIE_AGENT_TOOLS_PATH]

EXIT CODES:
    0 success   1 failure (not delivered, unreachable, I/O)   2 enrolment refused by the server
    3 device revoked   64 usage error
";

/// A parsed command line.
#[derive(Debug, Clone)]
pub enum Command {
    Help,
    Version,
    Enroll(EnrollArgs),
    Run(RunArgs),
    Status(StatusArgs),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollArgs {
    pub state_dir: PathBuf,
    /// Base URL without a trailing slash.
    pub url: String,
    pub token: String,
    pub force: bool,
}

#[derive(Debug, Clone)]
pub struct RunArgs {
    pub state_dir: PathBuf,
    pub once: bool,
    pub options: RunOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs {
    pub state_dir: PathBuf,
    pub json: bool,
}

/// What is wrong with the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("no command given")]
    NoCommand,
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("`{command}` does not take {option:?}")]
    UnknownOption {
        command: &'static str,
        option: String,
    },
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{option}: {value:?} is not {expected}")]
    BadValue {
        option: String,
        value: String,
        expected: &'static str,
    },
    #[error("`{command}` needs {what}")]
    Required {
        command: &'static str,
        what: &'static str,
    },
}

/// The options of one command, as `--name value`, `--name=value` or `--switch`.
struct Options {
    command: &'static str,
    args: std::vec::IntoIter<String>,
}

impl Options {
    /// The next option name and its inline value (`--name=value`), if any.
    fn next(&mut self) -> Option<(String, Option<String>)> {
        let arg = self.args.next()?;
        Some(match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        })
    }

    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, UsageError> {
        match inline.or_else(|| self.args.next()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(UsageError::MissingValue(name.to_owned())),
        }
    }

    fn switch(&self, name: &str, inline: Option<String>) -> Result<(), UsageError> {
        match inline {
            None => Ok(()),
            Some(value) => Err(UsageError::BadValue {
                option: name.to_owned(),
                value,
                expected: "expected (this option takes no value)",
            }),
        }
    }

    fn unknown(&self, option: String) -> UsageError {
        UsageError::UnknownOption {
            command: self.command,
            option,
        }
    }
}

fn number(option: &str, value: &str, min: u64) -> Result<u64, UsageError> {
    match value.parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(UsageError::BadValue {
            option: option.to_owned(),
            value: value.to_owned(),
            expected: "a positive whole number",
        }),
    }
}

fn seconds(option: &str, value: &str) -> Result<Duration, UsageError> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.1..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(UsageError::BadValue {
            option: option.to_owned(),
            value: value.to_owned(),
            expected: "a number of seconds between 0.1 and 86400",
        }),
    }
}

/// A directory option: not empty (an empty value would silently mean the current directory).
fn directory(option: &str, value: &str) -> Result<PathBuf, UsageError> {
    if value.trim().is_empty() {
        return Err(UsageError::BadValue {
            option: option.to_owned(),
            value: value.to_owned(),
            expected: "a directory",
        });
    }
    Ok(PathBuf::from(value))
}

/// A colon-separated search path; empty entries (`a::b`, a trailing `:`) are skipped.
fn search_path(option: &str, value: &str) -> Result<Vec<PathBuf>, UsageError> {
    let dirs: Vec<PathBuf> = value
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    if dirs.is_empty() {
        return Err(UsageError::BadValue {
            option: option.to_owned(),
            value: value.to_owned(),
            expected: "colon-separated directories",
        });
    }
    Ok(dirs)
}

/// Checks the server URL's shape; returns it without a trailing slash.
fn server_url(value: &str) -> Result<String, UsageError> {
    let url = value.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(UsageError::BadValue {
            option: "--url".into(),
            value: value.to_owned(),
            expected: "an http:// or https:// URL",
        }),
    }
}

/// Parses the arguments after the program name. `env` reads environment variables.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let command = args.next().ok_or(UsageError::NoCommand)?;
    let command: &'static str = match command.as_str() {
        "help" | "--help" | "-h" => return Ok(Command::Help),
        "version" | "--version" | "-V" => return Ok(Command::Version),
        "enroll" => "enroll",
        "run" => "run",
        "status" => "status",
        _ => return Err(UsageError::UnknownCommand(command)),
    };
    let mut opts = Options {
        command,
        args: args.collect::<Vec<_>>().into_iter(),
    };

    let mut state_dir = env(STATE_DIR_ENV).filter(|d| !d.is_empty());
    let mut url = None;
    let mut token = env(TOKEN_ENV).filter(|t| !t.is_empty());
    let mut force = false;
    let mut once = false;
    let mut json = false;
    let mut options = RunOptions::default();
    let mut limits = SpoolLimits::default();
    if let Some(v) = env(SPOOL_BATCHES_ENV) {
        limits.max_batches = number(SPOOL_BATCHES_ENV, &v, 1)? as usize;
    }
    if let Some(v) = env(SPOOL_MIB_ENV) {
        limits.max_bytes = number(SPOOL_MIB_ENV, &v, 1)? << 20;
    }
    let mut root = env(ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| directory(ROOT_ENV, &v))
        .transpose()?;
    let mut watch_every = env(WATCH_EVERY_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| seconds(WATCH_EVERY_ENV, &v))
        .transpose()?;
    let mut tools_path = env(TOOLS_PATH_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| search_path(TOOLS_PATH_ENV, &v))
        .transpose()?;

    while let Some((name, inline)) = opts.next() {
        match (command, name.as_str()) {
            (_, "--help" | "-h") => return Ok(Command::Help),
            (_, "--state-dir") => state_dir = Some(opts.value(&name, inline)?),
            ("enroll", "--url") => url = Some(server_url(&opts.value(&name, inline)?)?),
            ("enroll", "--token") => token = Some(opts.value(&name, inline)?),
            ("enroll", "--force") => {
                opts.switch(&name, inline)?;
                force = true;
            }
            ("run", "--once") => {
                opts.switch(&name, inline)?;
                once = true;
            }
            ("run", "--sample-interval") => {
                options.sample_interval = Some(seconds(&name, &opts.value(&name, inline)?)?);
            }
            ("run", "--send-interval") => {
                options.send_interval = Some(seconds(&name, &opts.value(&name, inline)?)?);
            }
            ("run", "--spool-max-batches") => {
                limits.max_batches = number(&name, &opts.value(&name, inline)?, 1)? as usize;
            }
            ("run", "--spool-max-mib") => {
                limits.max_bytes = number(&name, &opts.value(&name, inline)?, 1)? << 20;
            }
            ("run", "--root") => root = Some(directory(&name, &opts.value(&name, inline)?)?),
            ("run", "--watch-every") => {
                watch_every = Some(seconds(&name, &opts.value(&name, inline)?)?);
            }
            ("run", "--tools-path") => {
                tools_path = Some(search_path(&name, &opts.value(&name, inline)?)?);
            }
            ("status", "--json") => {
                opts.switch(&name, inline)?;
                json = true;
            }
            _ => return Err(opts.unknown(name)),
        }
    }
    options.limits = limits;
    if let Some(root) = root {
        options.watch.root = root;
    }
    options.watch.every_at_most = watch_every;
    if let Some(dirs) = tools_path {
        options.watch.tools = Tools::with_first(dirs);
    }
    let state_dir = PathBuf::from(state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned()));

    Ok(match command {
        "enroll" => Command::Enroll(EnrollArgs {
            state_dir,
            url: url.ok_or(UsageError::Required {
                command,
                what: "--url URL",
            })?,
            token: token.ok_or(UsageError::Required {
                command,
                what: "--token TOKEN (or VIGIE_AGENT_ENROLL_TOKEN)",
            })?,
            force,
        }),
        "run" => Command::Run(RunArgs {
            state_dir,
            once,
            options,
        }),
        _ => Command::Status(StatusArgs { state_dir, json }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn enroll_takes_url_token_force_and_state_dir() {
        let Ok(Command::Enroll(e)) = parse(
            args(
                "enroll --url https://x.lambda-url.eu-west-3.on.aws/ --token=et-a.b --force --state-dir /tmp/s",
            ),
            &no_env,
        ) else {
            panic!("enroll expected");
        };
        assert_eq!(
            e,
            EnrollArgs {
                state_dir: "/tmp/s".into(),
                url: "https://x.lambda-url.eu-west-3.on.aws".into(),
                token: "et-a.b".into(),
                force: true,
            }
        );
        assert_eq!(
            parse(args("enroll --url http://127.0.0.1:9000"), &no_env).err(),
            Some(UsageError::Required {
                command: "enroll",
                what: "--token TOKEN (or VIGIE_AGENT_ENROLL_TOKEN)"
            })
        );
        let env = |k: &str| (k == TOKEN_ENV).then(|| "et-env.secret".to_owned());
        assert!(matches!(
            parse(args("enroll --url http://127.0.0.1:9000"), &env),
            Ok(Command::Enroll(EnrollArgs { token, .. })) if token == "et-env.secret"
        ));
        for bad in ["ftp://x", "http://", "x.example", "https:///path"] {
            assert!(
                matches!(
                    parse(args(&format!("enroll --token t --url {bad}")), &no_env),
                    Err(UsageError::BadValue { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn run_takes_intervals_and_spool_bounds() {
        let env = |k: &str| match k {
            STATE_DIR_ENV => Some("/srv/vigie".to_owned()),
            SPOOL_MIB_ENV => Some("8".to_owned()),
            _ => None,
        };
        let Ok(Command::Run(r)) = parse(
            args("run --once --sample-interval 2 --send-interval=0.5 --spool-max-batches 10"),
            &env,
        ) else {
            panic!("run expected");
        };
        assert!(r.once);
        assert_eq!(r.state_dir, PathBuf::from("/srv/vigie"));
        assert_eq!(r.options.sample_interval, Some(Duration::from_secs(2)));
        assert_eq!(r.options.send_interval, Some(Duration::from_millis(500)));
        assert_eq!(
            r.options.limits,
            SpoolLimits {
                max_batches: 10,
                max_bytes: 8 << 20
            }
        );
        let Ok(Command::Run(r)) = parse(args("run"), &no_env) else {
            panic!("run expected");
        };
        assert_eq!(r.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(r.options.limits, SpoolLimits::default());
        assert!(!r.once && r.options.sample_interval.is_none());
    }

    #[test]
    fn run_takes_a_root_a_watch_cadence_and_a_tools_path() {
        let Ok(Command::Run(r)) = parse(
            args("run --root /host --watch-every 1 --tools-path=/opt/av/bin::/srv/tools:"),
            &no_env,
        ) else {
            panic!("run expected");
        };
        let w = &r.options.watch;
        assert_eq!(w.root, PathBuf::from("/host"));
        assert_eq!(w.every_at_most, Some(Duration::from_secs(1)));
        let path = w.tools.search_path();
        assert_eq!(
            &path[..3],
            [
                PathBuf::from("/opt/av/bin"),
                PathBuf::from("/srv/tools"),
                PathBuf::from("/usr/local/sbin")
            ],
            "the given directories first, then the system ones"
        );
        assert_eq!(path.len(), 2 + Tools::default().search_path().len());

        // The same from the environment; the command line wins.
        let env = |k: &str| match k {
            ROOT_ENV => Some("/mnt/host".to_owned()),
            WATCH_EVERY_ENV => Some("5".to_owned()),
            TOOLS_PATH_ENV => Some("/opt/tools".to_owned()),
            _ => None,
        };
        let Ok(Command::Run(r)) = parse(args("run"), &env) else {
            panic!("run expected");
        };
        assert_eq!(r.options.watch.root, PathBuf::from("/mnt/host"));
        assert_eq!(r.options.watch.every_at_most, Some(Duration::from_secs(5)));
        assert_eq!(
            r.options.watch.tools.search_path()[0],
            PathBuf::from("/opt/tools")
        );
        let Ok(Command::Run(r)) = parse(args("run --root /r"), &env) else {
            panic!("run expected");
        };
        assert_eq!(r.options.watch.root, PathBuf::from("/r"));

        // Defaults: the real machine, the watchers' own cadences, the system path.
        let Ok(Command::Run(r)) = parse(args("run"), &no_env) else {
            panic!("run expected");
        };
        assert_eq!(r.options.watch.root, PathBuf::from("/"));
        assert_eq!(r.options.watch.every_at_most, None);
        assert_eq!(
            r.options.watch.tools.search_path(),
            Tools::default().search_path()
        );

        for bad in [
            "run --watch-every 0",
            "run --watch-every soon",
            "run --tools-path :",
            "run --root=",
        ] {
            assert!(
                matches!(
                    parse(args(bad), &no_env),
                    Err(UsageError::BadValue { .. } | UsageError::MissingValue(_))
                ),
                "{bad}"
            );
        }
        let env = |k: &str| (k == WATCH_EVERY_ENV).then(|| "-1".to_owned());
        assert!(matches!(
            parse(args("run"), &env),
            Err(UsageError::BadValue { option, .. }) if option == WATCH_EVERY_ENV
        ));
        assert!(matches!(
            parse(args("status --root /host"), &no_env),
            Err(UsageError::UnknownOption { .. })
        ));
    }

    #[test]
    fn mistakes_are_usage_errors() {
        assert_eq!(parse(args(""), &no_env).err(), Some(UsageError::NoCommand));
        assert_eq!(
            parse(args("start"), &no_env).err(),
            Some(UsageError::UnknownCommand("start".into()))
        );
        assert!(matches!(
            parse(args("status --once"), &no_env),
            Err(UsageError::UnknownOption {
                command: "status",
                ..
            })
        ));
        assert_eq!(
            parse(args("run --sample-interval"), &no_env).err(),
            Some(UsageError::MissingValue("--sample-interval".into()))
        );
        assert!(matches!(
            parse(args("run --send-interval 0"), &no_env),
            Err(UsageError::BadValue { .. })
        ));
        assert!(matches!(
            parse(args("run --spool-max-batches 0"), &no_env),
            Err(UsageError::BadValue { .. })
        ));
        assert!(matches!(
            parse(args("run --once=yes"), &no_env),
            Err(UsageError::BadValue { .. })
        ));
        assert!(matches!(
            parse(args("status --json"), &no_env),
            Ok(Command::Status(StatusArgs { json: true, .. }))
        ));
        assert!(matches!(
            parse(args("run --help"), &no_env),
            Ok(Command::Help)
        ));
        assert!(matches!(
            parse(args("--version"), &no_env),
            Ok(Command::Version)
        ));
    }
}
