//! The notifier function: consumes the notification queue (alert events from the alerts topic,
//! raw SNS delivery), and delivers each event to every channel of its tenant that asked for it.
//!
//! Each (event, channel) is claimed in the delivery log before sending, so an event handled
//! twice — SNS and SQS both deliver at least once — reaches each channel once. Channels are
//! independent: one that is down is retried (the message goes back to the queue, and only the
//! channels not yet delivered are tried again) while the others get theirs now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Instrument as _, error, info, info_span, warn};
use vigie_domain::alert::AlertEvent;
use vigie_domain::clock::Clock;
use vigie_domain::ids::TenantId;
use vigie_domain::notification::NotificationChannel;
use vigie_domain::ports::{
    ChannelStore, Claim, DeadLetters, DeliveryLog, DeliveryRecord, StoreError,
};
use vigie_edge::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::deliver::{DeliveryStatus, Notification, deliver, prepare};

/// How long a claim protects an attempt in flight.
const CLAIM_LEASE_MS: i64 = 60_000;

/// How long channels stay cached in a warm function.
pub const CHANNEL_TTL: Duration = Duration::from_secs(30);

/// What became of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOutcome {
    pub delivered: Vec<String>,
    pub retrying: Vec<String>,
    pub failed: Vec<String>,
}

/// The notifier over its ports.
pub struct Notifier<C, L, D, K> {
    channels: C,
    log: L,
    dead: D,
    clock: K,
    console_base: String,
    timeout: Duration,
    channel_ttl: Duration,
    cache: Mutex<HashMap<TenantId, CachedChannels>>,
}

/// A tenant's channels and when they were read.
type CachedChannels = (Instant, Arc<Vec<NotificationChannel>>);

impl<C, L, D, K> Notifier<C, L, D, K>
where
    C: ChannelStore,
    L: DeliveryLog,
    D: DeadLetters,
    K: Clock,
{
    pub fn new(
        channels: C,
        log: L,
        dead: D,
        clock: K,
        console_base: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            channels,
            log,
            dead,
            clock,
            console_base: console_base.to_owned(),
            timeout,
            channel_ttl: CHANNEL_TTL,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How long channels stay cached (default [`CHANNEL_TTL`]).
    pub fn with_channel_ttl(mut self, ttl: Duration) -> Self {
        self.channel_ttl = ttl;
        self
    }

    async fn channels_of(
        &self,
        tenant: &TenantId,
    ) -> Result<Arc<Vec<NotificationChannel>>, StoreError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, c)) = cache.get(tenant)
            && at.elapsed() < self.channel_ttl
        {
            return Ok(Arc::clone(c));
        }
        let fresh = Arc::new(self.channels.channels(tenant).await?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(tenant.clone(), (Instant::now(), Arc::clone(&fresh)));
        }
        Ok(fresh)
    }

    /// Handles one SQS event, reporting the messages to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        for record in event.records {
            let span = info_span!("notification", message_id = %record.message_id);
            let retry = async {
                let event: AlertEvent = match serde_json::from_str(&record.body) {
                    Ok(e) => e,
                    Err(e) => {
                        let reason = format!("not an alert event: {e}");
                        warn!(reason = %reason, "poison message sent to the dead-letter queue");
                        return self.dead.dead_letter(&record.body, &reason).await.is_err();
                    }
                };
                match self.notify(&event).await {
                    Ok(outcome) => !outcome.retrying.is_empty(),
                    Err(e) => {
                        error!(error = %e, event_id = %event.event_id, "notification failed; retrying later");
                        true
                    }
                }
            }
            .instrument(span)
            .await;
            if retry {
                failures.push(BatchItemFailure {
                    item_identifier: record.message_id,
                });
            }
        }
        SqsBatchResponse {
            batch_item_failures: failures,
        }
    }

    /// Delivers one event to every channel of its tenant that accepts it.
    pub async fn notify(&self, event: &AlertEvent) -> Result<EventOutcome, StoreError> {
        let channels = self.channels_of(&event.tenant_id).await?;
        let mut outcome = EventOutcome::default();
        for channel in channels.iter().filter(|c| c.accepts(event)) {
            let id = channel.id.as_str().to_owned();
            let now = self.clock.now_ms();
            match self
                .log
                .claim(&event.tenant_id, &event.event_id, &id, now, CLAIM_LEASE_MS)
                .await?
            {
                Claim::Done => continue,
                Claim::Busy => {
                    outcome.retrying.push(id);
                    continue;
                }
                Claim::Claimed { attempt } => {
                    let record = self.attempt(channel, event, now / 1000).await;
                    info!(
                        event = "delivery",
                        tenant_id = %event.tenant_id,
                        event_id = %event.event_id,
                        channel = %id,
                        attempt,
                        status = record.status,
                        response_code = record.response_code,
                        "{}",
                        record.detail
                    );
                    self.log
                        .record(
                            &event.tenant_id,
                            &event.event_id,
                            &id,
                            &record,
                            self.clock.now_ms(),
                        )
                        .await?;
                    match record.status {
                        "delivered" => outcome.delivered.push(id),
                        "failed" => outcome.failed.push(id),
                        _ => outcome.retrying.push(id),
                    }
                }
            }
        }
        Ok(outcome)
    }

    async fn attempt(
        &self,
        channel: &NotificationChannel,
        event: &AlertEvent,
        now_s: i64,
    ) -> DeliveryRecord {
        match prepare(channel, event, &self.console_base, now_s) {
            Notification::Http(request) => {
                let timeout = self.timeout;
                let result = tokio::task::spawn_blocking(move || deliver(&request, timeout)).await;
                match result {
                    Ok(o) => DeliveryRecord {
                        status: match o.status {
                            DeliveryStatus::Delivered => "delivered",
                            DeliveryStatus::RetryLater => "retrying",
                            DeliveryStatus::Failed => "failed",
                        },
                        response_code: o.response_code,
                        detail: o.detail,
                    },
                    Err(e) => DeliveryRecord {
                        status: "retrying",
                        response_code: None,
                        detail: e.to_string(),
                    },
                }
            }
            // E-mail goes through SES, not built yet: recorded, never silently dropped.
            Notification::Email(_) => DeliveryRecord {
                status: "failed",
                response_code: None,
                detail: "e-mail delivery through SES is not available yet".into(),
            },
        }
    }
}
