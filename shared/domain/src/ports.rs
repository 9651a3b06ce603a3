//! The ports the domain needs from the outside world. Adapters (DynamoDB, SQS, …) implement
//! them in `vigie-aws`; unit tests implement them in memory.
//!
//! They are plain traits returning `Send` futures, so the domain needs no async runtime.

use std::future::Future;

use std::collections::HashMap;

use crate::alert::AlertEvent;
use crate::device::Device;
use crate::enrollment::EnrollmentToken;
use crate::envelope::BatchEnvelope;
use crate::envelope::IntakeMessage;
use crate::ids::{ClientId, DeviceId, EnrollmentTokenId, TenantId};
use crate::policy::{Policy, StateKey};
use crate::rules::RuleState;
use crate::usage::{Day, Month, UsageRow};

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
    /// The tenant has as many devices as its plan allows.
    DeviceLimit {
        max: u32,
    },
}

/// Devices' identity records.
pub trait DeviceRegistry: Send + Sync {
    fn device(
        &self,
        id: &DeviceId,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// Records `seq` as the device's last accepted batch, only if it is higher than the stored
    /// one and the device is active; also counts the batch in the device's rate window and its
    /// `wire_bytes` in the device's usage day (see [`crate::usage::plan_batch`]): exactly once
    /// per accepted sequence number.
    fn record_batch(
        &self,
        device: &Device,
        seq: u64,
        wire_bytes: u64,
        now_ms: i64,
    ) -> impl Future<Output = Result<SequenceOutcome, StoreError>> + Send;

    /// [`DeviceRegistry::record_batch`], also keeping on the device record the collector
    /// statuses the batch carries, in the same write (see [`Device::merged_collectors`]).
    /// The default keeps none: for registries that do not show collector statuses.
    fn record_batch_observed(
        &self,
        device: &Device,
        seq: u64,
        wire_bytes: u64,
        now_ms: i64,
        collectors: &[crate::telemetry::CollectorStatus],
    ) -> impl Future<Output = Result<SequenceOutcome, StoreError>> + Send {
        let _ = collectors;
        self.record_batch(device, seq, wire_bytes, now_ms)
    }
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

/// The tenant's policies.
pub trait PolicyStore: Send + Sync {
    fn policies(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Policy>, StoreError>> + Send;
}

/// A stored rule state with the version it was read at (for conditional writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versioned {
    pub state: RuleState,
    pub version: u64,
}

/// An event committed to the outbox, not yet published.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub event: AlertEvent,
    /// When its commit happened, Unix ms: an entry older than a grace period was left by an
    /// evaluator that stopped between commit and publish.
    pub committed_ms: i64,
}

/// Everything the evaluator keeps about one device, read in one go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceEvaluationState {
    pub states: HashMap<StateKey, Versioned>,
    pub outbox: Vec<PendingEvent>,
    /// Alerts a maintenance window holds back, by alert id: the latest event of each (see
    /// [`crate::maintenance`]). The store writes a hold for a committed event whose effect is
    /// `hidden` or `unannounced` (and not a resolution), and removes it for a resolution with
    /// either effect and for `raised_after_window`.
    pub held: HashMap<String, AlertEvent>,
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// Another evaluator changed one of the states first: read again and re-evaluate.
    Conflict,
}

/// A state change to write: the key, the new state, and the version it was read at (`None`:
/// it did not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub key: StateKey,
    pub state: RuleState,
    pub read_version: Option<u64>,
}

/// Rule states, the alert records and the event outbox of devices.
pub trait EvaluationStore: Send + Sync {
    fn load(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
    ) -> impl Future<Output = Result<DeviceEvaluationState, StoreError>> + Send;

    /// In one transaction: every state change (each only if still at its read version), every
    /// event into the outbox, and the alert records the events update.
    fn commit(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        changes: &[StateChange],
        events: &[AlertEvent],
        now_ms: i64,
    ) -> impl Future<Output = Result<CommitOutcome, StoreError>> + Send;

    /// Removes a published event from the outbox.
    fn published(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        event_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The device's parent in the dependency map (see [`crate::dependency`]). The defaults of
    /// this and the next methods describe a store without dependencies.
    fn parent_of(
        &self,
        _tenant: &TenantId,
        _device: &DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceId>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// The devices whose parent is `device`.
    fn children_of(
        &self,
        _tenant: &TenantId,
        _device: &DeviceId,
    ) -> impl Future<Output = Result<Vec<DeviceId>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Attaches a suppressed child alert's event to its parent's alert (listed with it).
    fn attach_suppressed(
        &self,
        _parent_alert_id: &str,
        _child: &AlertEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Has the silence sweeper look at `device` again once `at_ms` has passed.
    fn recheck(
        &self,
        _tenant: &TenantId,
        _device: &DeviceId,
        _at_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// The tenant's maintenance windows, stored as documents. The window type lives in
/// `vigie-calendar` (local time, time zones), which depends on this crate, so the port is
/// generic over the document: the store keeps JSON and does not know its shape.
pub trait WindowStore: Send + Sync {
    fn windows<W: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<W>, StoreError>> + Send;
}

/// Business-hours calendars and on-call schedules, by id, as the escalation engine reads
/// them when a step runs. Like [`WindowStore`], generic over the document: the types live in
/// `vigie-calendar`.
pub trait OnCallStore: Send + Sync {
    fn business_calendar<C: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
        calendar_id: &str,
    ) -> impl Future<Output = Result<Option<C>, StoreError>> + Send;

    fn oncall_schedule<S: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
        schedule_id: &str,
    ) -> impl Future<Output = Result<Option<S>, StoreError>> + Send;
}

/// The alerts topic.
pub trait AlertPublisher: Send + Sync {
    fn publish(&self, event: &AlertEvent) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where intake messages come from: resolves spilled batches, and parks poison messages.
pub trait IntakeSource: Send + Sync {
    fn resolve(
        &self,
        message: IntakeMessage,
    ) -> impl Future<Output = Result<BatchEnvelope, StoreError>> + Send;

    /// Sends a message that can never be processed to the dead-letter queue with the reason.
    fn dead_letter(
        &self,
        body: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// When a message that failed comes back: the queue's consumer sets it per message (SQS
/// `ChangeMessageVisibility`), so retries back off instead of hammering a receiver that is down.
pub trait RetryQueue: Send + Sync {
    fn retry_after(
        &self,
        receipt_handle: &str,
        delay_s: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An e-mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why an e-mail did not leave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Refused for good (unverified sender, bad address, message rejected): retrying won't help.
    #[error("refused: {0}")]
    Refused(String),
    /// Throttled or unavailable: worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Sends e-mail (SES in production and on the emulator).
pub trait Mailer: Send + Sync {
    /// Sends `email`, answering the provider's message id.
    fn send(&self, email: &OutgoingEmail)
    -> impl Future<Output = Result<String, MailError>> + Send;
}

/// The tenant's notification channels.
pub trait ChannelStore: Send + Sync {
    fn channels(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<crate::notification::NotificationChannel>, StoreError>> + Send;
}

/// What a claim on a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours to attempt; this is attempt number `attempt`.
    Claimed { attempt: u32 },
    /// Already delivered (or refused for good): nothing to do.
    Done,
    /// Another notifier holds a fresh claim on it.
    Busy,
}

/// How a delivery attempt ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// `delivered`, `retrying`, `exhausted` (retries used up; the message went to the
    /// dead-letter queue, and a redrive from there tries again) or `failed` (refused for good).
    pub status: &'static str,
    pub response_code: Option<u16>,
    pub detail: String,
}

/// Whose usage a delivery counts in, and as which channel type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryUsage<'a> {
    pub client: &'a ClientId,
    pub channel_type: crate::usage::ChannelType,
}

/// One record per (alert event, channel): claims make a delivery happen once even when the
/// same event is handled twice at the same time.
pub trait DeliveryLog: Send + Sync {
    fn claim(
        &self,
        tenant: &TenantId,
        event_id: &str,
        channel: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records how an attempt ended. A `delivered` record counts one notification of
    /// `channel_type` in the usage of (tenant, `client`) — once: in the same transaction, only
    /// if the delivery was not recorded delivered already.
    fn record(
        &self,
        tenant: &TenantId,
        event_id: &str,
        channel: &str,
        usage: DeliveryUsage<'_>,
        record: &DeliveryRecord,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where messages that can never be processed go, with the reason.
pub trait DeadLetters: Send + Sync {
    fn dead_letter(
        &self,
        body: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A device whose heartbeat entry sits in a slot that has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatEntry {
    pub slot_ms: i64,
    pub tenant: TenantId,
    pub device: DeviceId,
}

/// The heartbeat slots the silence sweeper reads, and its cursor.
pub trait HeartbeatIndex: Send + Sync {
    /// Entries of the slots in `[from_ms, to_ms)` (both multiples of the slot width).
    fn due(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Future<Output = Result<Vec<HeartbeatEntry>, StoreError>> + Send;

    fn remove(&self, entry: &HeartbeatEntry)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts an entry in a slot (idempotent): the sweeper looks at the device again then, e.g.
    /// when the maintenance window that silenced its "device down" ends.
    fn schedule(
        &self,
        entry: &HeartbeatEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The first slot not yet swept (0: never swept).
    fn cursor(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Moves the cursor from `from` to `to`; false when another sweeper moved it first.
    fn advance(&self, from: i64, to: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A device whose counting day `day` is not handed over yet (listed when the day opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUsageDay {
    pub day: Day,
    pub tenant: TenantId,
    pub device: DeviceId,
}

/// What handing over a device's finished day did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Its counts were added to the usage item now.
    Flushed,
    /// Nothing to do: the device handed the day over itself (its next batch), or is gone.
    AlreadyFlushed,
}

/// A month's usage rows and whether they are the closed (final) summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthUsage {
    pub closed: bool,
    /// Per client, and the tenant total (client `*`).
    pub rows: Vec<UsageRow>,
}

/// The usage items: the daily close job's side (open days, hand-over, month close) and the
/// export's reads.
pub trait UsageLedger: Send + Sync {
    /// Devices still counting `day`.
    fn open_days(
        &self,
        day: Day,
    ) -> impl Future<Output = Result<Vec<OpenUsageDay>, StoreError>> + Send;

    /// Hands the device's counts of `entry.day` to its usage item and moves the device's
    /// counting day to `today` with nothing counted — in one transaction conditioned on the
    /// device still counting that day with the counts read, so it happens once even when its
    /// ingest races with it. Removes the entry.
    fn flush(
        &self,
        entry: &OpenUsageDay,
        today: Day,
    ) -> impl Future<Output = Result<FlushOutcome, StoreError>> + Send;

    /// Tenants with usage handed over in `month`.
    fn tenants_in(
        &self,
        month: Month,
    ) -> impl Future<Output = Result<Vec<TenantId>, StoreError>> + Send;

    /// Writes the month's summary if it is not written yet; true when this call wrote it.
    fn close_month(
        &self,
        tenant: &TenantId,
        month: Month,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
