//! `vigie-agent`: the command line. Parses arguments, installs the signal handlers, calls the
//! library and turns its results and events into log lines and exit codes.

use std::fmt::Display;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use vigie_agent::civil::iso8601_utc;
use vigie_agent::cli::{self, Command, EnrollArgs, RunArgs, StatusArgs};
use vigie_agent::collect::Collector;
use vigie_agent::enrollment::{self, EnrollError};
use vigie_agent::runtime::{self, AGENT_VERSION, RunEnd, RunError};
use vigie_agent::state::StateDir;
use vigie_agent::status::Status;
use vigie_domain::clock::{Clock, SystemClock};

/// Exit codes (also listed in the usage text).
const EXIT_OK: u8 = 0;
const EXIT_FAILURE: u8 = 1;
const EXIT_REFUSED: u8 = 2;
const EXIT_REVOKED: u8 = 3;
const EXIT_USAGE: u8 = 64;

/// Set by SIGTERM and SIGINT; the loop checks it between short sleeps.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        #[allow(unsafe_code)]
        // SAFETY: `request_stop` is an `extern "C"` function living for the whole program that
        // only stores to a static atomic, which is async-signal-safe; `signal` touches no
        // memory of ours.
        let previous = unsafe { libc::signal(signal, handler) };
        if previous == libc::SIG_ERR {
            log(
                "WARN",
                format_args!("could not install the handler for signal {signal}"),
            );
        }
    }
}

/// One log line on stderr: timestamp, level, message.
fn log(level: &str, message: impl Display) {
    eprintln!("{} {level:<5} {message}", iso8601_utc(SystemClock.now_ms()));
}

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let command = match cli::parse(std::env::args().skip(1), &env) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("vigie-agent: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    ExitCode::from(match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            EXIT_OK
        }
        Command::Version => {
            println!("vigie-agent {AGENT_VERSION}");
            EXIT_OK
        }
        Command::Enroll(args) => enroll(&args),
        Command::Run(args) => run(&args),
        Command::Status(args) => status(&args),
    })
}

fn enroll(args: &EnrollArgs) -> u8 {
    let dir = StateDir::new(&args.state_dir);
    let agent = Collector::new().agent_info(AGENT_VERSION);
    match enrollment::enroll(
        &dir,
        &args.url,
        &args.token,
        args.force,
        &agent,
        &SystemClock,
    ) {
        Ok(identity) => {
            log(
                "INFO",
                format_args!(
                    "enrolled as {} (tenant {}, client {}, site {}) at {}",
                    identity.device_id,
                    identity.tenant_id,
                    identity.client_id,
                    identity.site_id,
                    identity.server_url
                ),
            );
            println!("{}", identity.device_id);
            EXIT_OK
        }
        Err(EnrollError::Refused { code, message, .. }) => {
            log(
                "ERROR",
                format_args!("enrolment refused: {code}: {message}"),
            );
            EXIT_REFUSED
        }
        Err(e) => {
            log("ERROR", format_args!("enrolment failed: {e}"));
            EXIT_FAILURE
        }
    }
}

fn run(args: &RunArgs) -> u8 {
    install_stop_handlers();
    let dir = StateDir::new(&args.state_dir);
    let mut events = |event: runtime::Event| {
        log(if event.is_problem() { "WARN" } else { "INFO" }, event);
    };
    if args.once {
        return match runtime::run_once(&dir, &args.options, &SystemClock, &STOP, &mut events) {
            Ok(true) => EXIT_OK,
            Ok(false) => {
                log(
                    "WARN",
                    "not everything was delivered; it stays in the spool",
                );
                EXIT_FAILURE
            }
            Err(e) => run_error(&e),
        };
    }
    match runtime::run(&dir, &args.options, &SystemClock, &STOP, &mut events) {
        Ok(RunEnd::Stopped) => EXIT_OK,
        Ok(RunEnd::Revoked) => EXIT_REVOKED,
        Err(e) => run_error(&e),
    }
}

fn run_error(e: &RunError) -> u8 {
    log("ERROR", e);
    match e {
        RunError::Revoked => EXIT_REVOKED,
        RunError::State(_) => EXIT_FAILURE,
    }
}

fn status(args: &StatusArgs) -> u8 {
    let dir = StateDir::new(&args.state_dir);
    let status = match Status::read(&dir) {
        Ok(status) => status,
        Err(e) => {
            log("ERROR", e);
            return EXIT_FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&status) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                log("ERROR", e);
                return EXIT_FAILURE;
            }
        }
    } else {
        print!("{status}");
    }
    if status.enrolled {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}
