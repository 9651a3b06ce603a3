//! The local AWS emulator: moto's server, installed into a project-local virtualenv and run as
//! a child process that lives exactly as long as its parent.
//!
//! * [`ensure_installed`] creates `localstack/.venv` and installs `localstack/requirements.txt`
//!   into it (once per requirements change; safe when several processes call it at once).
//! * [`Emulator::start`] runs `localstack/moto_runner.py`, waits for its ready line and checks
//!   that it answers HTTP. The runner exits when its stdin reaches end-of-file, so it dies with
//!   the process that started it even if that process crashes or is killed.
//! * [`endpoint_from_env`] lets a user point everything at an emulator that is already running
//!   (LocalStack in Docker, or a moto server started by hand) with `VIGIE_EMULATOR_URL`.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Environment variable naming an emulator that is already running, e.g. `http://localhost:4566`.
pub const EMULATOR_URL_ENV: &str = "VIGIE_EMULATOR_URL";
/// Environment variable naming the Python used to create the virtualenv (default `python3`).
pub const PYTHON_ENV: &str = "VIGIE_PYTHON";

/// The line the runner prints once the server answers, followed by a space and the URL.
const READY_MARKER: &str = "VIGIE_EMULATOR_READY";
const REQUIREMENTS: &str = "localstack/requirements.txt";
const RUNNER: &str = "localstack/moto_runner.py";
const VENV: &str = "localstack/.venv";
const INSTALL_LOCK: &str = "localstack/.venv.lock";
/// Inside the venv, so deleting the venv also forgets the stamp.
const STAMP_FILE: &str = ".vigie-requirements";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const INSTALL_LOCK_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// A lock older than this is considered abandoned (a killed installer), whoever holds it.
const STALE_LOCK_AGE: Duration = Duration::from_secs(15 * 60);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How many lines of a child's stderr are kept for error messages.
const TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "`{python}` was not found: install Python 3 (3.9 or later) or set {PYTHON_ENV} to a Python interpreter"
    )]
    PythonMissing { python: String },

    #[error("{} not found: is {} the Vigie workspace root?", .path.display(), .root.display())]
    RequirementsMissing { root: PathBuf, path: PathBuf },

    #[error("creating the virtualenv {} with `{python} -m venv` failed ({status}):\n{stderr_tail}", .venv.display())]
    VenvFailed {
        python: String,
        venv: PathBuf,
        status: ExitStatus,
        stderr_tail: String,
    },

    #[error("`pip install -r {REQUIREMENTS}` failed ({status}):\n{stderr_tail}")]
    PipFailed {
        status: ExitStatus,
        stderr_tail: String,
    },

    #[error("gave up after {waited:?} waiting for another process to finish installing the emulator (lock file {})", .lock.display())]
    InstallLockTimeout { lock: PathBuf, waited: Duration },

    #[error("the emulator runner exited before it was ready ({status}):\n{stderr_tail}")]
    RunnerExited { status: String, stderr_tail: String },

    #[error("the emulator was not ready after {waited:?}:\n{stderr_tail}")]
    TimedOut {
        waited: Duration,
        stderr_tail: String,
    },

    #[error("the emulator at {endpoint} does not answer HTTP: {reason}")]
    Unhealthy { endpoint: String, reason: String },

    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmulatorError {
    let path = path.to_path_buf();
    move |source| EmulatorError::Io {
        action,
        path,
        source,
    }
}

/// The workspace root: the nearest ancestor holding `localstack/requirements.txt`, searched
/// from this crate's source directory (known at compile time), then from the current directory.
/// Falls back to the current directory, so a later call reports the missing file clearly.
pub fn project_root() -> PathBuf {
    let from_manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(root) = find_root_from(from_manifest) {
        return root;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    find_root_from(&cwd).unwrap_or(cwd)
}

fn find_root_from(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(REQUIREMENTS).is_file())
        .map(Path::to_path_buf)
}

/// The URL of an emulator that is already running, from `VIGIE_EMULATOR_URL` (if set and not
/// empty), without a trailing slash.
pub fn endpoint_from_env() -> Option<String> {
    let url = std::env::var(EMULATOR_URL_ENV).ok()?;
    let url = url.trim().trim_end_matches('/');
    (!url.is_empty()).then(|| url.to_owned())
}

/// Makes sure `localstack/.venv` exists with `localstack/requirements.txt` installed, and
/// returns the path of the venv's Python.
///
/// Skips all work when the stamp file in the venv matches the requirements' hash. Concurrent
/// callers (several test binaries) serialise on `localstack/.venv.lock`; the ones that waited
/// find the stamp written and return at once.
pub fn ensure_installed(project_root: &Path) -> Result<PathBuf, EmulatorError> {
    let requirements_path = project_root.join(REQUIREMENTS);
    let requirements = fs::read(&requirements_path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            EmulatorError::RequirementsMissing {
                root: project_root.to_path_buf(),
                path: requirements_path.clone(),
            }
        } else {
            io_error("reading", &requirements_path)(source)
        }
    })?;
    let stamp = format!("requirements-fnv1a64 {:016x}\n", fnv1a64(&requirements));
    let venv = project_root.join(VENV);
    let python = venv_python(&venv);

    if is_installed(&venv, &python, &stamp) {
        return Ok(python);
    }

    let _lock = InstallLock::acquire(&project_root.join(INSTALL_LOCK), || {
        is_installed(&venv, &python, &stamp)
    })?;
    // Another process may have finished the job while we waited for the lock.
    if is_installed(&venv, &python, &stamp) {
        return Ok(python);
    }

    if !python.is_file() {
        create_venv(&venv)?;
    }
    let stamp_path = venv.join(STAMP_FILE);
    // A stale stamp must not survive a failed install.
    match fs::remove_file(&stamp_path) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => {
            return Err(io_error("removing", &stamp_path)(source));
        }
        _ => {}
    }
    pip_install(&python, &requirements_path, project_root)?;
    fs::write(&stamp_path, stamp).map_err(io_error("writing", &stamp_path))?;
    Ok(python)
}

fn is_installed(venv: &Path, python: &Path, stamp: &str) -> bool {
    python.is_file() && fs::read_to_string(venv.join(STAMP_FILE)).is_ok_and(|found| found == stamp)
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn create_venv(venv: &Path) -> Result<(), EmulatorError> {
    let python = std::env::var(PYTHON_ENV)
        .ok()
        .filter(|python| !python.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    // A venv without its interpreter is a half-made one: start again.
    if venv.exists() {
        fs::remove_dir_all(venv).map_err(io_error("removing the broken virtualenv", venv))?;
    }
    let output = Command::new(&python)
        .arg("-m")
        .arg("venv")
        .arg(venv)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                EmulatorError::PythonMissing {
                    python: python.clone(),
                }
            } else {
                io_error("running Python to create", venv)(source)
            }
        })?;
    if !output.status.success() {
        return Err(EmulatorError::VenvFailed {
            python,
            venv: venv.to_path_buf(),
            status: output.status,
            stderr_tail: tail(&output.stderr, TAIL_LINES),
        });
    }
    Ok(())
}

fn pip_install(python: &Path, requirements: &Path, cwd: &Path) -> Result<(), EmulatorError> {
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error("running pip with", python))?;
    if !output.status.success() {
        let mut stderr = output.stderr;
        if stderr.iter().all(u8::is_ascii_whitespace) {
            stderr = output.stdout;
        }
        return Err(EmulatorError::PipFailed {
            status: output.status,
            stderr_tail: tail(&stderr, TAIL_LINES),
        });
    }
    Ok(())
}

/// An exclusive lock on the install, held while the file exists (created with `create_new`).
struct InstallLock {
    path: PathBuf,
}

impl InstallLock {
    /// Waits for the lock; gives up early (returning no lock) if `done()` becomes true while
    /// waiting. Removes a lock whose holder is gone or that is older than [`STALE_LOCK_AGE`].
    fn acquire(path: &Path, done: impl Fn() -> bool) -> Result<Option<Self>, EmulatorError> {
        let started = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    // The pid lets a later process see that the holder is gone.
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(Some(Self {
                        path: path.to_path_buf(),
                    }));
                }
                Err(source) if source.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(io_error("creating the lock file", path)(source)),
            }
            if done() {
                return Ok(None);
            }
            if lock_is_stale(path) {
                let _ = fs::remove_file(path);
                continue;
            }
            if started.elapsed() > INSTALL_LOCK_TIMEOUT {
                return Err(EmulatorError::InstallLockTimeout {
                    lock: path.to_path_buf(),
                    waited: started.elapsed(),
                });
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn lock_is_stale(path: &Path) -> bool {
    let age = fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok());
    if age.is_some_and(|age| age > STALE_LOCK_AGE) {
        return true;
    }
    // Where /proc exists (Linux), a lock whose holder has exited is stale at once. The pid is
    // only trusted once written and when the lock is more than a moment old.
    let holder = fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    match holder {
        Some(pid) if Path::new("/proc/self").exists() => {
            !Path::new(&format!("/proc/{pid}")).exists()
                && age.is_some_and(|age| age > Duration::from_secs(1))
        }
        _ => false,
    }
}

/// A running moto server, stopped when this value is dropped (or when this process exits: the
/// runner stops at end-of-file on its stdin).
pub struct Emulator {
    endpoint: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("endpoint", &self.endpoint)
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Emulator {
    /// Installs the emulator if needed, starts it on a free port of 127.0.0.1 and waits until it
    /// answers HTTP.
    pub fn start(project_root: &Path) -> Result<Self, EmulatorError> {
        let python = ensure_installed(project_root)?;
        let runner = project_root.join(RUNNER);
        let mut child = Command::new(&python)
            .arg(&runner)
            .current_dir(project_root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error("starting", &runner))?;

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = child.stderr.take().map(|stderr| {
            let tail = Arc::clone(&stderr_tail);
            thread::spawn(move || keep_tail(stderr, &tail))
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || watch_stdout(stdout, &ready_tx));
        }
        let stdin = child.stdin.take();

        let mut emulator = Self {
            endpoint: String::new(),
            child,
            stdin,
            stderr_tail,
        };
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(endpoint) => emulator.endpoint = endpoint,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed without the ready line: the runner died.
                let status = emulator.wait_for_exit(Duration::from_secs(5));
                if let Some(reader) = stderr_reader {
                    let _ = reader.join();
                }
                return Err(EmulatorError::RunnerExited {
                    status,
                    stderr_tail: emulator.stderr_tail(),
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(EmulatorError::TimedOut {
                    waited: READY_TIMEOUT,
                    stderr_tail: emulator.stderr_tail(),
                });
            }
        }
        health_check(&emulator.endpoint)?;
        Ok(emulator)
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|lines| Vec::from(lines.clone()).join("\n"))
            .unwrap_or_default()
    }

    fn wait_for_exit(&mut self, grace: Duration) -> String {
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return "still running; killed".to_owned();
                }
                Err(error) => return format!("unknown: {error}"),
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Closing stdin asks the runner to stop the server and exit.
        drop(self.stdin.take());
        self.wait_for_exit(STOP_GRACE);
    }
}

fn watch_stdout(stdout: impl Read, ready: &mpsc::Sender<String>) {
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let Ok(line) = line else { return };
        if let Some(url) = line.trim().strip_prefix(READY_MARKER) {
            let _ = ready.send(url.trim().trim_end_matches('/').to_owned());
            break;
        }
    }
    // Keep draining so the runner never blocks on a full pipe.
    for line in lines {
        if line.is_err() {
            break;
        }
    }
}

fn keep_tail(stderr: impl Read, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Ok(mut lines) = tail.lock() {
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }
}

/// One plain HTTP/1.0 request to the moto API; any HTTP status line counts as healthy.
fn health_check(endpoint: &str) -> Result<(), EmulatorError> {
    let unhealthy = |reason: String| EmulatorError::Unhealthy {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| unhealthy("not an http:// URL".to_owned()))?;
    let authority = authority.split('/').next().unwrap_or(authority);
    let address = authority
        .to_socket_addrs()
        .map_err(|error| unhealthy(error.to_string()))?
        .next()
        .ok_or_else(|| unhealthy("no address".to_owned()))?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|error| unhealthy(error.to_string()))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|error| unhealthy(error.to_string()))?;
    write!(
        stream,
        "GET /moto-api/ HTTP/1.0\r\nHost: {authority}\r\n\r\n"
    )
    .map_err(|error| unhealthy(error.to_string()))?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .map_err(|error| unhealthy(error.to_string()))?;
    if status_line.starts_with("HTTP/1.") {
        Ok(())
    } else {
        Err(unhealthy(format!(
            "unexpected answer {:?}",
            status_line.trim()
        )))
    }
}

/// The last `lines` lines of a child's output, as text.
fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// FNV-1a, 64 bits: enough to notice that the requirements changed (not a security check).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_workspace_root() {
        let root = project_root();
        assert!(root.join(REQUIREMENTS).is_file(), "{}", root.display());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail(b"a", 5), "a");
        assert_eq!(tail(b"", 5), "");
    }

    #[test]
    fn hash_changes_with_content() {
        assert_ne!(fnv1a64(b"moto==5.2.5"), fnv1a64(b"moto==5.2.6"));
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() -> Result<(), EmulatorError> {
        let dir = std::env::temp_dir().join(format!("vigie-emulator-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
        let path = dir.join("lock");
        let first = InstallLock::acquire(&path, || false)?;
        assert!(first.is_some());
        // Held by a live process (us): a second caller that is already done does not wait.
        let second = InstallLock::acquire(&path, || true)?;
        assert!(second.is_none());
        drop(first);
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}
