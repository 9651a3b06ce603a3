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
use vigie_domain::policy::EffectivePolicy;
use vigie_domain::ports::{
    DeviceRegistry, EnrollmentStore, PolicyStore, RedeemOutcome, SequenceOutcome, TelemetryQueue,
};
use vigie_domain::protocol::{
    AgentConfig, BatchAccepted, EnrollRequest, EnrollResponse, limits, routes,
};
use vigie_domain::signing::DevicePublicKey;
use vigie_edge::{HttpRequest, HttpResponse};

pub use error::IngestError;
pub use metrics::IngestCounters;

/// The ingestion service over its ports.
pub struct Ingest<R, E, Q, P, C> {
    registry: R,
    enrollment: E,
    queue: Q,
    /// The tenant's policies: what a device's rules ask its collectors to watch.
    policies: P,
    clock: C,
    counters: IngestCounters,
}

impl<R, E, Q, P, C> Ingest<R, E, Q, P, C>
where
    R: DeviceRegistry,
    E: EnrollmentStore,
    Q: TelemetryQueue,
    P: PolicyStore,
    C: Clock,
{
    pub fn new(registry: R, enrollment: E, queue: Q, policies: P, clock: C) -> Self {
        Self {
            registry,
            enrollment,
            queue,
            policies,
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
                heartbeat_slot_ms: 0,
                usage: Default::default(),
                tags: token.tags.clone(),
                collectors: Vec::new(),
            };
            let outcome = self.enrollment.redeem(&token, &device).await?;
            if let RedeemOutcome::DeviceLimit { max } = outcome {
                return Err(EnrollmentRefusal::DeviceLimit { max }.into());
            }
            if outcome == RedeemOutcome::Enrolled {
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
            tags: device.tags.clone(),
            batch,
        };
        // Queue first, then record the sequence: a crash in between makes the agent retry,
        // and the queue's (device, seq) deduplication keeps that retry from doubling the batch.
        // The collector statuses the batch carries are kept on the device in the same write.
        let message_id = self.queue.enqueue(&envelope).await?;
        match self
            .registry
            .record_batch_observed(
                &device,
                headers.seq,
                envelope.wire_bytes,
                now,
                &envelope.batch.collectors,
            )
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
            samples = envelope.batch.len(),
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

    /// The device's configuration, its collection plan derived from its effective policy
    /// (read fresh: agents ask hourly, and a policy change should reach them by then).
    async fn config(&self, req: &HttpRequest) -> Result<HttpResponse, IngestError> {
        let now = self.clock.now_ms();
        let (_, device) = self.authenticate(req, now).await?;
        let p = &device.placement;
        let policies = self.policies.policies(&p.tenant).await?;
        let effective = EffectivePolicy::for_device(
            policies.iter(),
            &device.id,
            &p.client,
            &p.site,
            &device.tags,
        );
        let mut config = device.config.clone();
        config.collect.merge(&effective.collect_plan());
        Ok(HttpResponse::json(200, &config))
    }
}

#[cfg(test)]
mod tests {
    //! Handler tests over in-memory ports, fed through the Function URL event shape.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use vigie_domain::clock::ManualClock;
    use vigie_domain::enrollment::{EnrollmentToken, Placement};
    use vigie_domain::ids::{ClientId, EnrollmentTokenId, SiteId, TenantId};
    use vigie_domain::intake::gzip;
    use vigie_domain::policy::{Policy, Scope};
    use vigie_domain::ports::StoreError;
    use vigie_domain::signing::{DeviceSigningKey, SignedRequest, headers};
    use vigie_edge::function_url::FunctionUrlRequest;

    use super::*;

    #[derive(Default)]
    struct Memory {
        devices: Mutex<HashMap<DeviceId, Device>>,
        tokens: Mutex<HashMap<EnrollmentTokenId, EnrollmentToken>>,
        queued: Mutex<Vec<BatchEnvelope>>,
        /// Makes the next `record_batch` report that another request won.
        lose_next_race: Mutex<bool>,
        queue_down: Mutex<bool>,
        policies: Mutex<Vec<Policy>>,
    }

    impl PolicyStore for &Memory {
        async fn policies(&self, tenant: &TenantId) -> Result<Vec<Policy>, StoreError> {
            assert_eq!(tenant.as_str(), "msp", "only the device's tenant is read");
            Ok(self.policies.lock().expect("lock").clone())
        }
    }

    impl DeviceRegistry for &Memory {
        async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
            Ok(self.devices.lock().expect("lock").get(id).cloned())
        }

        async fn record_batch(
            &self,
            device: &Device,
            seq: u64,
            _wire_bytes: u64,
            now_ms: i64,
        ) -> Result<SequenceOutcome, StoreError> {
            let mut devices = self.devices.lock().expect("lock");
            let d = devices.get_mut(&device.id).expect("known");
            if std::mem::take(&mut *self.lose_next_race.lock().expect("lock")) {
                d.last_seq = seq;
            }
            if d.last_seq >= seq {
                return Ok(SequenceOutcome::AlreadyAccepted { last: d.last_seq });
            }
            d.last_seq = seq;
            d.last_seen_ms = now_ms;
            Ok(SequenceOutcome::Recorded)
        }

        async fn record_batch_observed(
            &self,
            device: &Device,
            seq: u64,
            wire_bytes: u64,
            now_ms: i64,
            collectors: &[vigie_domain::telemetry::CollectorStatus],
        ) -> Result<SequenceOutcome, StoreError> {
            let outcome = self.record_batch(device, seq, wire_bytes, now_ms).await?;
            if outcome == SequenceOutcome::Recorded {
                let mut devices = self.devices.lock().expect("lock");
                let d = devices.get_mut(&device.id).expect("known");
                d.collectors = d.merged_collectors(collectors);
            }
            Ok(outcome)
        }
    }

    impl EnrollmentStore for &Memory {
        async fn token(
            &self,
            id: &EnrollmentTokenId,
        ) -> Result<Option<EnrollmentToken>, StoreError> {
            Ok(self.tokens.lock().expect("lock").get(id).cloned())
        }

        async fn redeem(
            &self,
            token: &EnrollmentToken,
            device: &Device,
        ) -> Result<RedeemOutcome, StoreError> {
            let mut tokens = self.tokens.lock().expect("lock");
            let stored = tokens.get_mut(&token.id).expect("known");
            if stored.uses != token.uses || stored.revoked {
                return Ok(RedeemOutcome::TokenChanged);
            }
            stored.uses += 1;
            self.devices
                .lock()
                .expect("lock")
                .insert(device.id.clone(), device.clone());
            Ok(RedeemOutcome::Enrolled)
        }
    }

    impl TelemetryQueue for &Memory {
        async fn enqueue(&self, envelope: &BatchEnvelope) -> Result<String, StoreError> {
            if *self.queue_down.lock().expect("lock") {
                return Err(StoreError::Unavailable("queue down".into()));
            }
            let mut q = self.queued.lock().expect("lock");
            q.push(envelope.clone());
            Ok(format!("m-{}", q.len()))
        }
    }

    const NOW: i64 = 1_790_000_000_000;

    fn event(method: &str, path: &str, headers: Vec<(&str, String)>, body: &[u8]) -> HttpRequest {
        let mut req = HttpRequest {
            method: method.into(),
            path: path.into(),
            body: body.to_vec(),
            ..HttpRequest::default()
        };
        for (k, v) in headers {
            req.headers.insert(k.into(), v);
        }
        // Through the Function URL JSON, as Lambda delivers it.
        let json = serde_json::to_string(&FunctionUrlRequest::from_http(&req, NOW)).expect("json");
        serde_json::from_str::<FunctionUrlRequest>(&json)
            .expect("event")
            .into_request()
            .expect("decodes")
    }

    fn body_json(r: &HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("json body")
    }

    async fn enrolled(
        mem: &Memory,
        ingest: &Ingest<&Memory, &Memory, &Memory, &Memory, ManualClock>,
    ) -> (DeviceId, DeviceSigningKey) {
        let placement = Placement {
            tenant: TenantId::parse("msp").expect("id"),
            client: ClientId::parse("acme").expect("id"),
            site: SiteId::parse("hq").expect("id"),
        };
        let (token, plain) =
            EnrollmentToken::issue(placement, NOW, NOW + 3_600_000, 1, "t").expect("token");
        mem.tokens
            .lock()
            .expect("lock")
            .insert(token.id.clone(), token);
        let key = DeviceSigningKey::generate();
        let body = serde_json::json!({
            "token": plain.expose(), "public_key": key.public_key().to_base64(),
            "hostname": "h", "os": "o", "agent_version": "0.1.0"
        });
        let r = ingest
            .handle(&event(
                "POST",
                routes::ENROLL,
                vec![("content-type", "application/json".into())],
                body.to_string().as_bytes(),
            ))
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        (
            DeviceId::parse(body_json(&r)["device_id"].as_str().expect("id")).expect("id"),
            key,
        )
    }

    fn batch_request(device: &DeviceId, key: &DeviceSigningKey, seq: u64) -> HttpRequest {
        observed_batch_request(device, key, seq, serde_json::json!([]))
    }

    fn observed_batch_request(
        device: &DeviceId,
        key: &DeviceSigningKey,
        seq: u64,
        collectors: serde_json::Value,
    ) -> HttpRequest {
        let batch = serde_json::json!({
            "schema": 1,
            "agent": {"version": "0.1.0", "hostname": "h", "os": "o", "kernel": "k", "arch": "x86_64", "boot_time": 1},
            "start_ms": NOW - 1000,
            "offsets_ms": [0],
            "cpu": {"total_pct_x100": [500], "iowait_pct_x100": [0]},
            "collectors": collectors,
        });
        let body = gzip(batch.to_string().as_bytes());
        let sig = key.sign(&SignedRequest {
            method: "POST",
            path: routes::BATCHES,
            device,
            timestamp_ms: NOW,
            seq,
            body: &body,
        });
        event(
            "POST",
            routes::BATCHES,
            vec![
                ("content-type", "application/json".into()),
                ("content-encoding", "gzip".into()),
                (headers::DEVICE, device.to_string()),
                (headers::TIMESTAMP, NOW.to_string()),
                (headers::SEQUENCE, seq.to_string()),
                (headers::SIGNATURE, sig),
            ],
            &body,
        )
    }

    #[tokio::test]
    async fn a_batch_is_queued_once_and_its_replay_is_refused() {
        let mem = Memory::default();
        let ingest = Ingest::new(&mem, &mem, &mem, &mem, ManualClock::at(NOW));
        let (device, key) = enrolled(&mem, &ingest).await;
        let r = ingest.handle(&batch_request(&device, &key, 1)).await;
        assert_eq!(r.status, 202);
        let again = ingest.handle(&batch_request(&device, &key, 1)).await;
        assert_eq!(again.status, 409);
        assert_eq!(body_json(&again)["error"]["last_accepted_seq"], 1);
        assert_eq!(mem.queued.lock().expect("lock").len(), 1);
        assert_eq!(
            mem.queued.lock().expect("lock")[0].tenant_id.as_str(),
            "msp"
        );
    }

    #[tokio::test]
    async fn collector_statuses_are_kept_on_the_device_and_merged() {
        let mem = Memory::default();
        let ingest = Ingest::new(&mem, &mem, &mem, &mem, ManualClock::at(NOW));
        let (device, key) = enrolled(&mem, &ingest).await;
        let first = serde_json::json!([
            {"collector": "smart", "state": "missing_tool", "detail": "smartctl is not installed", "at_ms": NOW - 2000},
            {"collector": "backups", "state": "ok", "at_ms": NOW - 2000},
        ]);
        let r = ingest
            .handle(&observed_batch_request(&device, &key, 1, first))
            .await;
        assert_eq!(r.status, 202);
        // Only what changed comes next: the others stay.
        let second = serde_json::json!([
            {"collector": "backups", "state": "error", "detail": "nightly: unreadable", "at_ms": NOW - 1000},
        ]);
        let r = ingest
            .handle(&observed_batch_request(&device, &key, 2, second))
            .await;
        assert_eq!(r.status, 202);
        let stored = mem.devices.lock().expect("lock")[&device]
            .collectors
            .clone();
        let view: Vec<_> = stored
            .iter()
            .map(|c| (c.collector.as_str(), c.state.as_str(), c.at_ms))
            .collect();
        assert_eq!(
            view,
            [
                ("backups", "error", NOW - 1000),
                ("smart", "missing_tool", NOW - 2000)
            ]
        );
        // A replayed batch changes nothing.
        let replay = serde_json::json!([{"collector": "smart", "state": "ok", "at_ms": NOW}]);
        let r = ingest
            .handle(&observed_batch_request(&device, &key, 2, replay))
            .await;
        assert_eq!(r.status, 409);
        assert_eq!(
            mem.devices.lock().expect("lock")[&device].collectors,
            stored
        );
    }

    #[tokio::test]
    async fn losing_the_sequence_race_answers_replayed_not_accepted() {
        let mem = Memory::default();
        let ingest = Ingest::new(&mem, &mem, &mem, &mem, ManualClock::at(NOW));
        let (device, key) = enrolled(&mem, &ingest).await;
        *mem.lose_next_race.lock().expect("lock") = true;
        let r = ingest.handle(&batch_request(&device, &key, 1)).await;
        assert_eq!(r.status, 409);
        let (refused, accepted) = ingest.counters().snapshot();
        assert_eq!((refused.get("sequence_replayed"), accepted), (Some(&1), 0));
    }

    #[tokio::test]
    async fn a_queue_outage_is_a_retryable_503_and_records_nothing() {
        let mem = Memory::default();
        let ingest = Ingest::new(&mem, &mem, &mem, &mem, ManualClock::at(NOW));
        let (device, key) = enrolled(&mem, &ingest).await;
        *mem.queue_down.lock().expect("lock") = true;
        let r = ingest.handle(&batch_request(&device, &key, 1)).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.headers.get("retry-after").map(String::as_str), Some("5"));
        assert_eq!(
            mem.devices.lock().expect("lock")[&device].last_seq,
            0,
            "the agent's retry will be accepted"
        );
        *mem.queue_down.lock().expect("lock") = false;
        assert_eq!(
            ingest.handle(&batch_request(&device, &key, 1)).await.status,
            202
        );
    }

    #[tokio::test]
    async fn a_used_token_cannot_enrol_twice_and_wrong_methods_are_405() {
        let mem = Memory::default();
        let ingest = Ingest::new(&mem, &mem, &mem, &mem, ManualClock::at(NOW));
        let _ = enrolled(&mem, &ingest).await;
        let token = mem
            .tokens
            .lock()
            .expect("lock")
            .values()
            .next()
            .cloned()
            .expect("token");
        assert_eq!(token.uses, 1);
        let r = ingest
            .handle(&event("GET", routes::BATCHES, vec![], b""))
            .await;
        assert_eq!(
            (r.status, body_json(&r)["error"]["code"].as_str()),
            (405, Some("method_not_allowed"))
        );
    }

    fn config_request(device: &DeviceId, key: &DeviceSigningKey) -> HttpRequest {
        let sig = key.sign(&SignedRequest {
            method: "GET",
            path: routes::CONFIG,
            device,
            timestamp_ms: NOW,
            seq: 0,
            body: b"",
        });
        event(
            "GET",
            routes::CONFIG,
            vec![
                (headers::DEVICE, device.to_string()),
                (headers::TIMESTAMP, NOW.to_string()),
                (headers::SEQUENCE, "0".into()),
                (headers::SIGNATURE, sig),
            ],
            b"",
        )
    }

    #[tokio::test]
    async fn the_config_carries_what_the_device_policy_asks_collectors_to_watch() {
        let mem = Memory::default();
        let ingest = Ingest::new(&mem, &mem, &mem, &mem, ManualClock::at(NOW));
        let (device, key) = enrolled(&mem, &ingest).await;
        let r = ingest.handle(&config_request(&device, &key)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            body_json(&r).get("collect").is_none(),
            "no policy: nothing to collect"
        );

        let services: Policy = serde_json::from_value(serde_json::json!({
            "scope": {"level": "site", "client": "acme", "site": "hq"},
            "rules": [{"id": "svc", "family": "device_down", "kind": "state",
                       "finding": "service", "states": {"failed": "critical"},
                       "subjects": ["nginx", "postgresql"]},
                      {"id": "tls", "family": "certificate_expiry", "kind": "expiry",
                       "reminders": [{"days": 14, "severity": "warning"}],
                       "targets": [{"source": "endpoint", "host": "portal.example", "port": 443}]}]
        }))
        .expect("policy");
        services.validate().expect("valid");
        let elsewhere = Policy {
            scope: Scope::Site {
                client: ClientId::parse("acme").expect("id"),
                site: SiteId::parse("branch").expect("id"),
            },
            rules: serde_json::from_value(serde_json::json!([{"id": "svc2",
                "family": "device_down", "kind": "state", "finding": "service",
                "states": {"failed": "critical"}, "subjects": ["exim"]}]))
            .expect("rules"),
        };
        *mem.policies.lock().expect("lock") = vec![services, elsewhere];
        let r = ingest.handle(&config_request(&device, &key)).await;
        assert_eq!(r.status, 200);
        let config: AgentConfig = serde_json::from_slice(&r.body).expect("config");
        assert_eq!(config.collect.services, ["nginx", "postgresql"]);
        assert_eq!(
            config.collect.certificates[0].target(),
            "portal.example:443"
        );
        assert_eq!(
            config.sample_interval_s,
            AgentConfig::default().sample_interval_s
        );
    }
}
