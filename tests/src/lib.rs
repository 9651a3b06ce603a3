//! Test support for Vigie's end-to-end tests.
//!
//! Every test binary shares one emulator: either the one named by `VIGIE_EMULATOR_URL`
//! (LocalStack in Docker, a moto server started by hand) or a moto server started on first
//! use and kept for the life of the process. The emulator stops when the test process exits,
//! however it exits, because the runner stops at end-of-file on its stdin. Each test gets its
//! own random resource prefix, so tests run in parallel without colliding.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use vigie_aws::config::{AwsClients, sdk_config_for_endpoint};
use vigie_aws::provision::{Provisioned, provision};
use vigie_aws::resources::ResourceNames;
use vigie_emulator::{Emulator, endpoint_from_env, project_root};

/// The emulator of this process: its endpoint, and the child process (if we started it),
/// which is never dropped: it is stopped by the end of the process.
struct SharedEmulator {
    endpoint: String,
    _started: Option<Emulator>,
}

static EMULATOR: OnceLock<Result<SharedEmulator, String>> = OnceLock::new();

/// The endpoint of the process-wide emulator, starting it (and installing it, the first time
/// on this machine) if `VIGIE_EMULATOR_URL` is not set. Blocks; from async code prefer
/// [`emulator_clients`] or [`provisioned`], which call it off the runtime's worker threads.
///
/// Panics (failing the test) with the reason when the emulator cannot be started.
pub fn emulator_endpoint() -> String {
    let shared = EMULATOR.get_or_init(|| {
        if let Some(endpoint) = endpoint_from_env() {
            return Ok(SharedEmulator {
                endpoint,
                _started: None,
            });
        }
        Emulator::start(&project_root())
            .map(|emulator| SharedEmulator {
                endpoint: emulator.endpoint().to_owned(),
                _started: Some(emulator),
            })
            .map_err(|error| error.to_string())
    });
    match shared {
        Ok(shared) => shared.endpoint.clone(),
        Err(reason) => panic!("cannot start the local AWS emulator: {reason}"),
    }
}

/// A resource prefix for one test: the test's name reduced to at most 11 lower-case letters
/// and digits, a '-', and 8 random hex digits (at most 20 characters; valid in bucket names).
pub fn unique_prefix(test: &str) -> String {
    let mut stem: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(11)
        .collect();
    if stem.is_empty() {
        stem.push('t');
    }
    format!("{stem}-{:08x}", random_u32())
}

/// Random enough to keep concurrent tests and test runs apart (not for cryptography).
fn random_u32() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    let hash = hasher.finish();
    (hash ^ (hash >> 32)) as u32
}

/// AWS clients pointed at the process-wide emulator.
pub async fn emulator_clients() -> AwsClients {
    let endpoint = match tokio::task::spawn_blocking(emulator_endpoint).await {
        Ok(endpoint) => endpoint,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    AwsClients::from_config(&sdk_config_for_endpoint(&endpoint).await)
}

/// Clients, fresh resource names for `test`, and those resources provisioned on the emulator.
pub async fn provisioned(test: &str) -> (AwsClients, ResourceNames, Provisioned) {
    let clients = emulator_clients().await;
    let names = ResourceNames::new(&unique_prefix(test));
    match provision(&clients, &names).await {
        Ok(provisioned) => (clients, names, provisioned),
        Err(error) => panic!("provisioning {} failed: {error}", names.prefix()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_short_distinct_and_bucket_safe() {
        let first = unique_prefix("Provision_Is_Idempotent::with-long-name");
        let second = unique_prefix("Provision_Is_Idempotent::with-long-name");
        assert_ne!(first, second);
        for prefix in [first, second, unique_prefix(""), unique_prefix("__")] {
            assert!(prefix.len() <= 20, "{prefix}");
            assert!(
                prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{prefix}"
            );
            assert!(
                prefix.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{prefix}"
            );
        }
    }
}
