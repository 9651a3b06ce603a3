//! The ingestion function: agents enrol, post signed telemetry batches, and fetch their
//! configuration. Served as a Lambda Function URL on AWS and by the local runtime locally;
//! both hand an [`HttpRequest`] to [`Ingest::handle`].

pub mod error;
pub mod metrics;

use tracing::{info, warn};
use vigie_domain::clock::Clock;
use vigie_domain::device::{Device, DeviceStatus};
use vigie_domain::enrollment::{EnrollmentRefusal, split_token};
use vigie_domain::envelope::BatchEnvelope;
use vigie_domain::ids::DeviceId;
use vigie_domain::intake::{BodyEncoding, IntakeRefusal, SignatureHeaders, decode_batch};
use vigie_domain::ports::{
    DeviceRegistry, EnrollmentStore, RedeemOutcome, SequenceOutcome, TelemetryQueue,
};
use vigie_domain::protocol::{
    AgentConfig, BatchAccepted, EnrollRequest, EnrollResponse, limits, routes,
};
use vigie_domain::signing::DevicePublicKey;
use vigie_edge::{HttpRequest, HttpResponse};

pub use error::IngestError;
pub use metrics::IngestCounters;

/// The ingestion service over its ports.
pub struct Ingest<R, E, Q, C> {
    registry: R,
    enrollment: E,
    queue: Q,
    clock: C,
    counters: IngestCounters,
}

impl<R, E, Q, C> Ingest<R, E, Q, C>
where
    R: DeviceRegistry,
    E: EnrollmentStore,
    Q: TelemetryQueue,
    C: Clock,
{
    pub fn new(registry: R, enrollment: E, queue: Q, clock: C) -> Self {
        Self {
            registry,
            enrollment,
            queue,
            clock,
            counters: IngestCounters::default(),
        }
    }

    pub fn counters(&self) -> &IngestCounters {
        &self.counters
    }

    /// Routes one request. Never fails: every error becomes a JSON error response.
    pub async fn handle(&self, req: &HttpRequest) -> HttpResponse {
        let result = match (req.method.as_str(), req.path.as_str()) {
            ("POST", routes::ENROLL) => self.enroll(req).await,
            ("POST", routes::BATCHES) => self.batch(req).await,
            ("GET", routes::CONFIG) => self.config(req).await,
            (_, routes::ENROLL | routes::BATCHES | routes::CONFIG) => {
                Err(IngestError::MethodNotAllowed {
                    method: req.method.clone(),
                    path: req.path.clone(),
                })
            }
            _ => Err(IngestError::NotFound {
                method: req.method.clone(),
                path: req.path.clone(),
            }),
        };
        match result {
            Ok(response) => response,
            Err(e) => {
                let code = e.code();
                self.counters.refused(code);
                let status = e.status();
                if status >= 500 {
                    tracing::error!(event = "refused", code, status, path = %req.path, request_id = %req.request_id, error = ?e, "request failed");
                } else {
                    warn!(event = "refused", code, status, path = %req.path, request_id = %req.request_id, source_ip = %req.source_ip, "request refused: {e}");
                }
                e.to_response()
            }
        }
    }

    async fn enroll(&self, req: &HttpRequest) -> Result<HttpResponse, IngestError> {
        if req.body.len() > limits::MAX_ENROLL_BODY {
            return Err(IntakeRefusal::BodyTooLarge {
                limit: limits::MAX_ENROLL_BODY,
            }
            .into());
        }
        BodyEncoding::from_headers(req.header("content-type"), None)?;
        let body: EnrollRequest =
            serde_json::from_slice(&req.body).map_err(|e| IngestError::BadRequest {
                code: "malformed_json",
                message: format!("the enrolment request is not valid: {e}"),
            })?;
        let public_key = DevicePublicKey::from_base64(&body.public_key).map_err(|e| {
            IngestError::BadRequest {
                code: "malformed_public_key",
                message: e.to_string(),
            }
        })?;
        let (token_id, secret) = split_token(&body.token)?;
        // A token is redeemed with a conditional transaction; a concurrent enrolment with the
        // same token makes it retry against the fresh record.
        for _ in 0..5 {
            let now = self.clock.now_ms();
            let token = self
                .enrollment
                .token(&token_id)
                .await?
                .ok_or(EnrollmentRefusal::Invalid)?;
            token.check_redeemable(secret, now)?;
            let placement = token.placement.clone();
            let device = Device {
                id: DeviceId::generate(),
                placement: placement.clone(),
                public_key,
                status: DeviceStatus::Active,
                hostname: body.hostname.chars().take(253).collect(),
                os: body.os.chars().take(200).collect(),
                agent_version: body.agent_version.chars().take(64).collect(),
                enrolled_ms: now,
                enrolled_with: token.id.clone(),
                last_seq: 0,
                last_seen_ms: 0,
                config: AgentConfig::default(),
                rate_window_ms: 0,
                rate_count: 0,
            };
            if self.enrollment.redeem(&token, &device).await? == RedeemOutcome::Enrolled {
                info!(
                    event = "enrolled",
                    tenant_id = %placement.tenant,
                    client_id = %placement.client,
                    site_id = %placement.site,
                    device_id = %device.id,
                    token_id = %token.id,
                    "device enrolled"
                );
                return Ok(HttpResponse::json(
                    201,
                    &EnrollResponse {
                        device_id: device.id,
                        tenant_id: placement.tenant,
                        client_id: placement.client,
                        site_id: placement.site,
                        config: device.config,
                    },
                ));
            }
        }
        Err(IngestError::Unavailable(
            vigie_domain::ports::StoreError::Unavailable(
                "the enrolment token is under heavy concurrent use".into(),
            ),
        ))
    }

    /// Looks up the device of a signed request and checks the request is fresh and signed by
    /// it. Revocation is told only to a request that proves it is the device.
    async fn authenticate(
        &self,
        req: &HttpRequest,
        now: i64,
    ) -> Result<(SignatureHeaders, Device), IngestError> {
        let headers = SignatureHeaders::parse(|name| req.header(name))?;
        let device = self
            .registry
            .device(&headers.device)
            .await?
            .ok_or(IntakeRefusal::UnknownDevice)?;
        headers.check_clock(now)?;
        headers.verify(&device.public_key, &req.method, &req.path, &req.body)?;
        if device.status == DeviceStatus::Revoked {
            return Err(IntakeRefusal::DeviceRevoked.into());
        }
        Ok((headers, device))
    }

    async fn batch(&self, req: &HttpRequest) -> Result<HttpResponse, IngestError> {
        let now = self.clock.now_ms();
        if req.body.len() > limits::MAX_COMPRESSED_BODY {
            return Err(IntakeRefusal::BodyTooLarge {
                limit: limits::MAX_COMPRESSED_BODY,
            }
            .into());
        }
        let encoding =
            BodyEncoding::from_headers(req.header("content-type"), req.header("content-encoding"))?;
        let (headers, device) = self.authenticate(req, now).await?;
        if headers.seq <= device.last_seq {
            return Err(IntakeRefusal::Replayed {
                seq: headers.seq,
                last: device.last_seq,
            }
            .into());
        }
        device
            .check_rate(now)
            .map_err(|retry_after_s| IntakeRefusal::RateLimited { retry_after_s })?;
        let batch = decode_batch(&req.body, encoding, now)?;
        let placement = &device.placement;
        let envelope = BatchEnvelope {
            tenant_id: placement.tenant.clone(),
            client_id: placement.client.clone(),
            site_id: placement.site.clone(),
            device_id: device.id.clone(),
            seq: headers.seq,
            received_ms: now,
            wire_bytes: req.body.len() as u64,
            batch,
        };
        // Queue first, then record the sequence: a crash in between makes the agent retry,
        // and the queue's (device, seq) deduplication keeps that retry from doubling the batch.
        let message_id = self.queue.enqueue(&envelope).await?;
        match self
            .registry
            .record_batch(&device, headers.seq, now)
            .await?
        {
            SequenceOutcome::Recorded => {}
            SequenceOutcome::AlreadyAccepted { last } => {
                return Err(IntakeRefusal::Replayed {
                    seq: headers.seq,
                    last,
                }
                .into());
            }
            SequenceOutcome::Revoked => return Err(IntakeRefusal::DeviceRevoked.into()),
        }
        self.counters.accepted();
        info!(
            event = "batch_accepted",
            tenant_id = %envelope.tenant_id,
            client_id = %envelope.client_id,
            site_id = %envelope.site_id,
            device_id = %envelope.device_id,
            seq = headers.seq,
            samples = envelope.batch.samples.len(),
            bytes = req.body.len(),
            message_id = %message_id,
            "batch queued"
        );
        Ok(HttpResponse::json(
            202,
            &BatchAccepted {
                seq: headers.seq,
                message_id,
            },
        ))
    }

    async fn config(&self, req: &HttpRequest) -> Result<HttpResponse, IngestError> {
        let now = self.clock.now_ms();
        let (_, device) = self.authenticate(req, now).await?;
        Ok(HttpResponse::json(200, &device.config))
    }
}
