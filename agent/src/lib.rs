//! The Vigie agent as a library: collectors, spool, signed sender. `main.rs` is the CLI.
//!
//! Code map:
//! - [`collect`]: reads `/proc` and `/sys` into the domain's `Sample`s;
//! - [`watch`]: watchers for services, backups, certificates, logins, antivirus, updates,
//!   accounts, SMART and neighbours (findings, events, collector statuses);
//! - [`state`]: the state directory (identity, key, counters, atomic writes, lock);
//! - [`spool`]: pending batches on disk, bounded, strictly increasing sequence numbers;
//! - [`sender`]: HTTP to the ingestion function (enrol, configuration, signed batches);
//! - [`resolver`]: host names without glibc NSS (hosts file, minimal DNS over UDP);
//! - [`backoff`]: exponential backoff with full jitter;
//! - [`runtime`]: the loop (sample, batch, spool, drain) and `--once`;
//! - [`enrollment`], [`status`], [`cli`]: the commands and their arguments;
//! - [`civil`], [`random`]: ISO-8601 dates and random numbers without extra crates.
//!
//! The library returns results and reports [`runtime::Event`]s; only the binary prints.

pub mod backoff;
pub mod civil;
pub mod cli;
pub mod collect;
pub mod enrollment;
pub mod random;
pub mod resolver;
pub mod runtime;
pub mod sender;
pub mod spool;
pub mod state;
pub mod status;
pub mod watch;
