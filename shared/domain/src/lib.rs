//! Vigie's domain: the words of the product and the rules between them.
//!
//! Invariants: this crate does no I/O, depends on no AWS SDK, no Lambda crate and no async
//! runtime. Time is passed in (see [`clock`]), never read inside logic.

pub mod alert;
pub mod checks;
pub mod clock;
pub mod dependency;
pub mod device;
pub mod directory;
pub mod enrollment;
pub mod envelope;
pub mod escalation;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod flapping;
pub mod grouping;
pub mod ids;
pub mod incident;
pub mod intake;
pub mod keys;
pub mod maintenance;
pub mod notification;
pub mod policy;
pub mod ports;
pub mod protocol;
pub mod rules;
pub mod signing;
pub mod telemetry;
pub mod templates;
pub mod usage;
pub mod workflow;
