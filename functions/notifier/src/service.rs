//! The notifier function: consumes the notification queue (alert events from the alerts topic,
//! raw SNS delivery), and delivers each event to every channel of its tenant that asked for it.
//!
//! Each (event, channel) is claimed in the delivery log before sending, so an event handled
//! twice — SNS and SQS both deliver at least once — reaches each channel once. Channels are
//! independent: one that is down is retried (the message goes back to the queue, and only the
//! channels not yet delivered are tried again) while the others get theirs now.
//!
//! Retries back off: a failed message is made invisible for `base × 2^(receives − 1)` (capped),
//! through [`RetryQueue`]. On the queue's last receive (its redrive limit) the channels still
//! failing are recorded `exhausted` and the message goes on to the dead-letter queue; a redrive
//! from there tries them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Instrument as _, error, info, info_span, warn};
use vigie_aws::escalations::NoticeMessage;
use vigie_domain::alert::AlertEvent;
use vigie_domain::clock::Clock;
use vigie_domain::escalation::Notice;
use vigie_domain::grouping::{AlertGroups, FlushMessage, NoGrouping};
use vigie_domain::ids::TenantId;
use vigie_domain::notification::NotificationChannel;
use vigie_domain::ports::{
    ChannelStore, Claim, DeadLetters, DeliveryLog, DeliveryRecord, DeliveryUsage, MailError,
    Mailer, OutgoingEmail, RetryQueue, StoreError,
};
use vigie_domain::usage::ChannelType;
use vigie_edge::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::deliver::{DeliveryStatus, Notification, deliver, prepare};

/// How long a claim protects an attempt in flight.
pub(crate) const CLAIM_LEASE_MS: i64 = 60_000;

/// How long channels stay cached in a warm function.
pub const CHANNEL_TTL: Duration = Duration::from_secs(30);

/// How failed messages back off, and when they give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed receive.
    pub base_s: u32,
    /// Longest delay.
    pub max_s: u32,
    /// The queue's redrive limit: the receive after which SQS dead-letters the message.
    pub max_receives: u32,
}

impl Default for Backoff {
    /// 30 s, 60 s, 120 s, 240 s, then the dead-letter queue (five receives).
    fn default() -> Self {
        Self {
            base_s: 30,
            max_s: 900,
            max_receives: vigie_aws::provision::MAX_RECEIVE_COUNT,
        }
    }
}

impl Backoff {
    /// The delay after the `receives`-th failed receive.
    pub fn delay_s(&self, receives: u32) -> u32 {
        let doublings = receives.saturating_sub(1).min(20);
        self.base_s.saturating_mul(1 << doublings).min(self.max_s)
    }
}

/// What became of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOutcome {
    pub delivered: Vec<String>,
    pub retrying: Vec<String>,
    pub failed: Vec<String>,
    /// Channels not sent to because of a maintenance window.
    pub suppressed: Vec<String>,
}

/// The notifier over its ports; `G` keeps alert groups (see [`crate::grouping`]), none by
/// default.
pub struct Notifier<C, L, Q, K, M, G = NoGrouping> {
    channels: C,
    pub(crate) log: L,
    queue: Q,
    pub(crate) clock: K,
    mailer: M,
    pub(crate) groups: G,
    backoff: Backoff,
    pub(crate) console_base: String,
    timeout: Duration,
    channel_ttl: Duration,
    cache: Mutex<HashMap<TenantId, CachedChannels>>,
    /// Sender of escalation e-mails to people (users, addresses).
    mail_from: String,
}

/// The default sender of escalation e-mails (`VIGIE_MAIL_FROM` overrides it in the functions).
pub const DEFAULT_MAIL_FROM: &str = "escalation@vigie.localhost";

/// A tenant's channels and when they were read.
type CachedChannels = (Instant, Arc<Vec<NotificationChannel>>);

impl<C, L, Q, K, M> Notifier<C, L, Q, K, M> {
    /// `queue` is the notify queue (retries) with its dead-letter queue (poison messages).
    pub fn new(
        channels: C,
        log: L,
        queue: Q,
        clock: K,
        mailer: M,
        console_base: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            channels,
            log,
            queue,
            clock,
            mailer,
            groups: NoGrouping,
            backoff: Backoff::default(),
            console_base: console_base.to_owned(),
            timeout,
            channel_ttl: CHANNEL_TTL,
            cache: Mutex::new(HashMap::new()),
            mail_from: DEFAULT_MAIL_FROM.to_owned(),
        }
    }
}

impl<C, L, Q, K, M, G> Notifier<C, L, Q, K, M, G>
where
    C: ChannelStore,
    L: DeliveryLog,
    Q: DeadLetters + RetryQueue,
    K: Clock,
    M: Mailer,
    G: AlertGroups,
{
    /// Keeps alert groups in `groups`: channels with a `group_wait_s` get one notification per
    /// site and wait instead of one per alert.
    pub fn with_groups<H: AlertGroups>(self, groups: H) -> Notifier<C, L, Q, K, M, H> {
        Notifier {
            channels: self.channels,
            log: self.log,
            queue: self.queue,
            clock: self.clock,
            mailer: self.mailer,
            groups,
            backoff: self.backoff,
            console_base: self.console_base,
            timeout: self.timeout,
            channel_ttl: self.channel_ttl,
            cache: self.cache,
            mail_from: self.mail_from,
        }
    }

    /// How retries back off (default [`Backoff::default`]).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The sender of escalation e-mails to people (default [`DEFAULT_MAIL_FROM`]); on AWS it
    /// must be a verified SES identity.
    pub fn with_mail_from(mut self, from: &str) -> Self {
        self.mail_from = from.to_owned();
        self
    }

    /// How long channels stay cached (default [`CHANNEL_TTL`]).
    pub fn with_channel_ttl(mut self, ttl: Duration) -> Self {
        self.channel_ttl = ttl;
        self
    }

    pub(crate) async fn channels_of(
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
                let receives = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(1);
                let last = receives >= self.backoff.max_receives;
                // A group's flush (see `crate::grouping`), else an alert event.
                let retry = match serde_json::from_str::<FlushMessage>(&record.body) {
                    Ok(m) => Some(self.flush(&m.group_flush, last).await.unwrap_or_else(|e| {
                        error!(error = %e, group_id = %m.group_flush.group_id, "group flush failed; retrying later");
                        true
                    })),
                    Err(_) => None,
                };
                // An escalation step's notice (see `crate::escalation`).
                let retry = match retry {
                    Some(r) => Some(r),
                    None => match serde_json::from_str::<NoticeMessage>(&record.body) {
                        Ok(m) => Some(match self.deliver_notice(&m.escalation_notice, last).await {
                            Ok(outcome) => !outcome.retrying.is_empty(),
                            Err(e) => {
                                error!(error = %e, notice_id = %m.escalation_notice.notice_id, "escalation notice failed; retrying later");
                                true
                            }
                        }),
                        Err(_) => None,
                    },
                };
                if let Some(retry) = retry {
                    if retry {
                        let delay = if last { 0 } else { self.backoff.delay_s(receives) };
                        if let Err(e) = self.queue.retry_after(&record.receipt_handle, delay).await {
                            warn!(error = %e, "could not set the retry delay; the queue's default applies");
                        }
                    }
                    return retry;
                }
                let event: AlertEvent = match serde_json::from_str(&record.body) {
                    Ok(e) => e,
                    Err(e) => {
                        let reason = format!("not an alert event: {e}");
                        warn!(reason = %reason, "poison message sent to the dead-letter queue");
                        return self.queue.dead_letter(&record.body, &reason).await.is_err();
                    }
                };
                let receives = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(1);
                let last = receives >= self.backoff.max_receives;
                let retry = match self.notify_attempt(&event, last).await {
                    Ok(outcome) => !outcome.retrying.is_empty(),
                    Err(e) => {
                        error!(error = %e, event_id = %event.event_id, "notification failed; retrying later");
                        true
                    }
                };
                if retry {
                    // The last receive moves on to the dead-letter queue at once.
                    let delay = if last { 0 } else { self.backoff.delay_s(receives) };
                    if let Err(e) = self.queue.retry_after(&record.receipt_handle, delay).await {
                        warn!(error = %e, "could not set the retry delay; the queue's default applies");
                    }
                }
                retry
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
        self.notify_attempt(event, false).await
    }

    /// [`Self::notify`]; on the `last` attempt, channels still failing are `exhausted`.
    async fn notify_attempt(
        &self,
        event: &AlertEvent,
        last: bool,
    ) -> Result<EventOutcome, StoreError> {
        let channels = self.channels_of(&event.tenant_id).await?;
        let mut outcome = EventOutcome::default();
        for channel in channels.iter().filter(|c| c.accepts(event)) {
            let id = channel.id.as_str().to_owned();
            if channel.group_wait_s > 0 && self.groups.enabled() {
                if self.offer(channel, event).await? == crate::grouping::Offered::Busy {
                    outcome.retrying.push(id);
                }
                continue;
            }
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
                    let mut record = match crate::maintenance::suppressed(event) {
                        Some(record) => record,
                        None => self.attempt(channel, event, now / 1000).await,
                    };
                    if last && record.status == "retrying" {
                        record.status = "exhausted";
                        record.detail = format!(
                            "gave up after {attempt} attempts, the event goes to the dead-letter queue; last: {}",
                            record.detail
                        );
                    }
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
                            DeliveryUsage {
                                client: &event.client_id,
                                channel_type: ChannelType::of(&channel.kind),
                            },
                            &record,
                            self.clock.now_ms(),
                        )
                        .await?;
                    match record.status {
                        "delivered" => outcome.delivered.push(id),
                        vigie_domain::maintenance::SUPPRESSED_MAINTENANCE => {
                            outcome.suppressed.push(id)
                        }
                        "failed" => outcome.failed.push(id),
                        // Still reported for retry, so SQS moves the message to the DLQ.
                        _ => outcome.retrying.push(id),
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Delivers an escalation notice to each of its recipients, once per (notice, recipient).
    pub async fn deliver_notice(
        &self,
        notice: &Notice,
        last: bool,
    ) -> Result<EventOutcome, StoreError> {
        let tenant = &notice.tenant_id;
        let channels = self.channels_of(tenant).await?;
        let mut outcome = EventOutcome::default();
        for (recipient, copy) in notice.recipients() {
            let key = recipient.key();
            let now = self.clock.now_ms();
            let attempt = match self
                .log
                .claim(tenant, &notice.notice_id, &key, now, CLAIM_LEASE_MS)
                .await?
            {
                Claim::Done => continue,
                Claim::Busy => {
                    outcome.retrying.push(key);
                    continue;
                }
                Claim::Claimed { attempt } => attempt,
            };
            let (mut record, kind) = match crate::escalation::prepare(
                notice,
                recipient,
                copy,
                &channels,
                &self.mail_from,
                &self.console_base,
                now / 1000,
            ) {
                Ok((notification, kind)) => (self.send(notification).await, kind),
                Err(why) => (
                    DeliveryRecord {
                        status: "failed",
                        response_code: None,
                        detail: why,
                    },
                    None,
                ),
            };
            if last && record.status == "retrying" {
                record.status = "exhausted";
                record.detail = format!(
                    "gave up after {attempt} attempts, the notice goes to the dead-letter queue; last: {}",
                    record.detail
                );
            }
            info!(
                event = "escalation_delivery",
                tenant_id = %tenant,
                notice_id = %notice.notice_id,
                recipient = %key,
                step = notice.step,
                attempt,
                status = record.status,
                "{}",
                record.detail
            );
            let channel_type = kind.as_ref().map_or(ChannelType::Email, ChannelType::of);
            self.log
                .record(
                    tenant,
                    &notice.notice_id,
                    &key,
                    DeliveryUsage {
                        client: &notice.alert.client_id,
                        channel_type,
                    },
                    &record,
                    self.clock.now_ms(),
                )
                .await?;
            match record.status {
                "delivered" => outcome.delivered.push(key),
                "failed" => outcome.failed.push(key),
                _ => outcome.retrying.push(key),
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
        self.send(prepare(channel, event, &self.console_base, now_s))
            .await
    }

    /// Sends a prepared notification and says how it went.
    pub(crate) async fn send(&self, notification: Notification) -> DeliveryRecord {
        match notification {
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
            Notification::Email(email) => {
                let outgoing = OutgoingEmail {
                    from: email.from,
                    to: email.to,
                    subject: email.content.subject,
                    text: email.content.text,
                    html: email.content.html,
                };
                match self.mailer.send(&outgoing).await {
                    Ok(message_id) => DeliveryRecord {
                        status: "delivered",
                        response_code: None,
                        detail: format!("sent, message id {message_id}"),
                    },
                    Err(MailError::Refused(why)) => DeliveryRecord {
                        status: "failed",
                        response_code: None,
                        detail: format!("e-mail refused: {why}"),
                    },
                    Err(MailError::Unavailable(why)) => DeliveryRecord {
                        status: "retrying",
                        response_code: None,
                        detail: format!("e-mail not sent yet: {why}"),
                    },
                }
            }
        }
    }
}
