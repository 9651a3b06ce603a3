//! The agent's state directory and the small files in it.
//!
//! ```text
//! /var/lib/vigie-agent/          (mode 0700)
//!   identity.json                device, tenant, client company, site, server URL, enrolled at
//!   device.key                   32-byte Ed25519 secret, mode 0600, never sent
//!   config.json                  the last good configuration the server handed out
//!   state.json                   next sequence number, delivery counters, drops not yet reported
//!   lock                         held (flock) by the one process writing here
//!   spool/<seq:020>.batch        pending gzip batch bodies, oldest = lowest seq
//!   rejected/<seq:020>.batch     batches the server will never accept …
//!   rejected/<seq:020>.error.json  … and why
//! ```
//!
//! Every file is replaced atomically: written to `<name>.tmp`, synced, renamed, and the
//! directory synced. A crash leaves either the old or the new version, plus at worst a stray
//! `.tmp` file that readers ignore.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigie_domain::ids::{ClientId, DeviceId, SiteId, TenantId};
use vigie_domain::protocol::AgentConfig;
use vigie_domain::signing::DeviceSigningKey;

/// Where the state lives unless `--state-dir` or [`STATE_DIR_ENV`] says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vigie-agent";
/// Environment variable naming the state directory.
pub const STATE_DIR_ENV: &str = "VIGIE_AGENT_STATE_DIR";

/// Why the state directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("this machine is not enrolled ({} is missing); run `vigie-agent enroll` first", .0.display())]
    NotEnrolled(PathBuf),
    #[error("{}: a device key must be exactly 32 bytes", .0.display())]
    BadKey(PathBuf),
    #[error("another vigie-agent process is using {}", .0.display())]
    Busy(PathBuf),
}

impl StateError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Who this device is, as the server told it at enrolment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub site_id: SiteId,
    /// Base URL of the ingestion function, without a trailing slash.
    pub server_url: String,
    /// Unix milliseconds.
    pub enrolled_at_ms: i64,
}

/// Counters and the sequence number, rewritten after every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentState {
    /// The sequence number the next batch gets. Never goes down.
    pub next_seq: u64,
    /// When the server last accepted (or acknowledged) a batch, Unix ms.
    pub last_success_ms: Option<i64>,
    /// The last delivery failure, cleared by the next success.
    pub last_error: Option<String>,
    /// Batches the server accepted (202).
    pub sent: u64,
    /// Batches the server already had (409 `sequence_replayed`).
    pub replay_acknowledged: u64,
    /// Batches moved to `rejected/`.
    pub rejected: u64,
    /// Batches dropped because the spool was full, ever.
    pub dropped_total: u64,
    /// Dropped batches not yet reported to the server in a batch's `spool` field.
    pub dropped_unreported: u64,
    /// First and last sequence number of those unreported drops.
    pub dropped_seq_range: Option<(u64, u64)>,
    /// The server said this device is revoked: nothing is sent until it is enrolled again.
    pub revoked: bool,
}

impl Default for AgentState {
    fn default() -> Self {
        Self {
            next_seq: 1,
            last_success_ms: None,
            last_error: None,
            sent: 0,
            replay_acknowledged: 0,
            rejected: 0,
            dropped_total: 0,
            dropped_unreported: 0,
            dropped_seq_range: None,
            revoked: false,
        }
    }
}

/// The state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

/// The exclusive lock on a state directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity.json")
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("device.key")
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }
    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("spool")
    }
    pub fn rejected_dir(&self) -> PathBuf {
        self.root.join("rejected")
    }
    fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Creates the directory tree (mode 0700: it holds the private key).
    pub fn create(&self) -> Result<(), StateError> {
        for dir in [self.root.clone(), self.spool_dir(), self.rejected_dir()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(StateError::io(&dir))?;
        }
        Ok(())
    }

    /// Takes the exclusive lock: one process at a time writes sequence numbers and the spool.
    pub fn lock(&self) -> Result<StateLock, StateError> {
        self.create()?;
        let path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(StateError::io(&path))?;
        if try_flock(&file).map_err(StateError::io(&path))? {
            Ok(StateLock { _file: file })
        } else {
            Err(StateError::Busy(self.root.clone()))
        }
    }

    pub fn is_enrolled(&self) -> bool {
        self.identity_path().exists()
    }

    pub fn read_identity(&self) -> Result<Identity, StateError> {
        let path = self.identity_path();
        match read_json(&path)? {
            Some(identity) => Ok(identity),
            None => Err(StateError::NotEnrolled(path)),
        }
    }

    pub fn write_identity(&self, identity: &Identity) -> Result<(), StateError> {
        write_json(&self.identity_path(), identity)
    }

    pub fn read_key(&self) -> Result<DeviceSigningKey, StateError> {
        let path = self.key_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotEnrolled(path));
            }
            Err(e) => return Err(StateError::io(&path)(e)),
        };
        let secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StateError::BadKey(path.clone()))?;
        Ok(DeviceSigningKey::from_bytes(&secret))
    }

    /// Writes a new key next to the current one (`device.key.new`, mode 0600 from creation);
    /// [`StateDir::commit_key`] puts it in place once the server has accepted it.
    pub fn write_pending_key(&self, key: &DeviceSigningKey) -> Result<PathBuf, StateError> {
        let path = self.root.join("device.key.new");
        // A leftover from an interrupted enrolment may have any mode: start afresh.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(StateError::io(&path)(e));
            }
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(StateError::io(&path))?;
        file.write_all(&key.to_bytes())
            .and_then(|()| file.sync_all())
            .map_err(StateError::io(&path))?;
        Ok(path)
    }

    pub fn commit_key(&self, pending: &Path) -> Result<(), StateError> {
        let path = self.key_path();
        fs::rename(pending, &path).map_err(StateError::io(&path))?;
        sync_dir(&self.root).map_err(StateError::io(&self.root))
    }

    /// The counters; a fresh state when the file does not exist yet.
    pub fn read_state(&self) -> Result<AgentState, StateError> {
        Ok(read_json(&self.state_path())?.unwrap_or_default())
    }

    pub fn write_state(&self, state: &AgentState) -> Result<(), StateError> {
        write_json(&self.state_path(), state)
    }

    /// The last good configuration, if the server ever sent one.
    pub fn read_config(&self) -> Result<Option<AgentConfig>, StateError> {
        read_json(&self.config_path())
    }

    pub fn write_config(&self, config: &AgentConfig) -> Result<(), StateError> {
        write_json(&self.config_path(), config)
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another process holds the lock.
fn try_flock(file: &File) -> io::Result<bool> {
    #[allow(unsafe_code)]
    // SAFETY: flock(2) reads no memory of ours; it takes a descriptor, valid for the duration
    // of the call because `file` is borrowed, and integer flags.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Corrupt {
            path: path.to_owned(),
            source,
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomically(path, &bytes).map_err(StateError::io(path))
}

/// `path` + `.tmp`: where a file is written before it is renamed into place.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` (mode 0600): temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A fresh state directory under the system temp dir.
    pub(crate) fn scratch(name: &str) -> StateDir {
        let root = std::env::temp_dir().join(format!(
            "vigie-agent-{name}-{}-{:016x}",
            std::process::id(),
            crate::random::random_u64()
        ));
        let dir = StateDir::new(root);
        dir.create().expect("create state dir");
        dir
    }

    #[test]
    fn the_key_is_private_and_round_trips() {
        let dir = scratch("key");
        assert!(matches!(dir.read_key(), Err(StateError::NotEnrolled(_))));
        let key = DeviceSigningKey::generate();
        let pending = dir.write_pending_key(&key).expect("write key");
        let mode = fs::metadata(&pending).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        dir.commit_key(&pending).expect("commit");
        assert_eq!(dir.read_key().expect("read").public_key(), key.public_key());
        let root_mode = fs::metadata(dir.root()).expect("meta").permissions().mode();
        assert_eq!(root_mode & 0o777, 0o700);
        fs::write(dir.key_path(), b"short").expect("write");
        assert!(matches!(dir.read_key(), Err(StateError::BadKey(_))));
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn state_files_round_trip_and_default() {
        let dir = scratch("state");
        assert_eq!(dir.read_state().expect("default"), AgentState::default());
        assert_eq!(dir.read_config().expect("none"), None);
        let state = AgentState {
            next_seq: 42,
            dropped_seq_range: Some((3, 9)),
            ..AgentState::default()
        };
        dir.write_state(&state).expect("write");
        assert_eq!(dir.read_state().expect("read"), state);
        assert!(!temp_path(&dir.state_path()).exists());
        fs::write(dir.state_path(), b"{not json").expect("write");
        assert!(matches!(dir.read_state(), Err(StateError::Corrupt { .. })));
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = scratch("lock");
        let held = dir.lock().expect("first lock");
        // flock locks belong to the open file description: a second open conflicts even
        // within one process.
        assert!(matches!(dir.lock(), Err(StateError::Busy(_))));
        drop(held);
        assert!(dir.lock().is_ok());
        fs::remove_dir_all(dir.root()).ok();
    }
}
