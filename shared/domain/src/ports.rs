//! The ports the domain needs from the outside world. Adapters (DynamoDB, SQS, …) implement
//! them in `vigie-aws`; unit tests implement them in memory.
//!
//! They are plain traits returning `Send` futures, so the domain needs no async runtime.

use std::future::Future;

use crate::device::Device;
use crate::enrollment::EnrollmentToken;
use crate::envelope::BatchEnvelope;
use crate::ids::{DeviceId, EnrollmentTokenId};

/// A storage or messaging failure. `Unavailable` is worth retrying; `Corrupt` is not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
}

/// What became of an attempt to record an accepted batch's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceOutcome {
    Recorded,
    /// Another request recorded this or a later sequence number first.
    AlreadyAccepted {
        last: u64,
    },
    /// The device was revoked meanwhile.
    Revoked,
}

/// What became of an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeemOutcome {
    Enrolled,
    /// The token changed under us (another device used it, or it was revoked): read it again.
    TokenChanged,
}

/// Devices' identity records.
pub trait DeviceRegistry: Send + Sync {
    fn device(
        &self,
        id: &DeviceId,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// Records `seq` as the device's last accepted batch, only if it is higher than the stored
    /// one and the device is active; also counts the batch in the device's rate window.
    fn record_batch(
        &self,
        device: &Device,
        seq: u64,
        now_ms: i64,
    ) -> impl Future<Output = Result<SequenceOutcome, StoreError>> + Send;
}

/// Enrolment tokens and the enrolment transaction.
pub trait EnrollmentStore: Send + Sync {
    fn token(
        &self,
        id: &EnrollmentTokenId,
    ) -> impl Future<Output = Result<Option<EnrollmentToken>, StoreError>> + Send;

    /// In one transaction: counts one use of `token` (only if its use count and revocation are
    /// still what was read) and creates `device`.
    fn redeem(
        &self,
        token: &EnrollmentToken,
        device: &Device,
    ) -> impl Future<Output = Result<RedeemOutcome, StoreError>> + Send;
}

/// The intake queue between the ingestion function and the evaluators.
pub trait TelemetryQueue: Send + Sync {
    /// Enqueues a verified batch; returns the queue's message id. Enqueueing the same
    /// (device, seq) twice within the queue's deduplication window yields one message.
    fn enqueue(
        &self,
        envelope: &BatchEnvelope,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}
