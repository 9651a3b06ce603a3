//! A whole local stack for one test: emulator resources under a fresh prefix, a tenant
//! directory, and the local runtime serving the ingestion function on a free port.

use std::net::SocketAddr;

use vigie_aws::adapters::AwsPorts;
use vigie_aws::provision::Provisioned;
use vigie_domain::clock::{Clock, SystemClock};
use vigie_domain::directory::{ClientCompany, Site, Tenant};
use vigie_domain::enrollment::{EnrollmentToken, Placement, TokenPlaintext};
use vigie_domain::ids::{ClientId, SiteId, TenantId};
use vigie_domain::intake::gzip;
use vigie_domain::protocol::routes;
use vigie_domain::signing::{DeviceSigningKey, SignedRequest, headers};
use vigie_domain::telemetry::{Sample, SpoolReport, TelemetryBatch};
use vigie_local::LocalRuntime;

pub struct Stack {
    pub ports: AwsPorts,
    pub provisioned: Provisioned,
    pub runtime: LocalRuntime,
}

pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

pub fn placement(tenant: &str, client: &str, site: &str) -> Placement {
    Placement {
        tenant: TenantId::parse(tenant).expect("valid tenant"),
        client: ClientId::parse(client).expect("valid client"),
        site: SiteId::parse(site).expect("valid site"),
    }
}

impl Stack {
    /// Saves the tenant's signed webhook channel `noc` to `sink`, signing with `secret`;
    /// `group_wait_s` 0 delivers each alert at once.
    pub async fn webhook_channel(
        &self,
        tenant: &TenantId,
        sink: &vigie_local::webhook_sink::WebhookSink,
        secret: &str,
        group_wait_s: u32,
    ) {
        use vigie_domain::notification::{
            ChannelFilter, ChannelId, ChannelKind, NotificationChannel, WebhookSecret,
        };
        self.ports
            .save_channel(&NotificationChannel {
                id: ChannelId::parse("noc").expect("id"),
                tenant_id: tenant.clone(),
                name: "NOC".into(),
                kind: ChannelKind::Webhook {
                    url: sink.url(),
                    secret: WebhookSecret::new(secret),
                },
                filter: ChannelFilter::default(),
                group_wait_s,
            })
            .await
            .expect("channel");
    }

    pub async fn start(test: &str) -> Self {
        let (clients, names, provisioned) = vigie_tests::provisioned(test).await;
        let ports = AwsPorts::connect(clients, names)
            .await
            .expect("connect to provisioned resources");
        let runtime = LocalRuntime::start(&ports, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("local runtime starts");
        Self {
            ports,
            provisioned,
            runtime,
        }
    }

    /// The whole pipeline: ingestion and the evaluator polling the intake queue, with
    /// policies re-read every second so a policy change shows quickly.
    pub async fn start_pipeline(test: &str) -> Self {
        let (clients, names, provisioned) = vigie_tests::provisioned(test).await;
        let ports = AwsPorts::connect(clients, names)
            .await
            .expect("connect to provisioned resources");
        let runtime = LocalRuntime::start_all(
            &ports,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            std::time::Duration::from_secs(1),
        )
        .await
        .expect("local runtime starts");
        Self {
            ports,
            provisioned,
            runtime,
        }
    }

    pub fn url(&self) -> String {
        self.runtime.url()
    }

    /// Creates the tenant, client company and site of `p`.
    pub async fn seed(&self, p: &Placement) {
        let dir = self.ports.directory();
        let now = now_ms();
        dir.put_tenant(&Tenant::new(
            p.tenant.clone(),
            format!("MSP {}", p.tenant),
            now,
            Default::default(),
        ))
        .await
        .expect("tenant");
        dir.put_client(&ClientCompany {
            tenant: p.tenant.clone(),
            id: p.client.clone(),
            name: format!("Client {}", p.client),
            created_ms: now,
        })
        .await
        .expect("client");
        dir.put_site(&Site {
            tenant: p.tenant.clone(),
            client: p.client.clone(),
            id: p.site.clone(),
            name: format!("Site {}", p.site),
            time_zone: "Europe/Paris".into(),
            created_ms: now,
        })
        .await
        .expect("site");
    }

    /// Issues and stores an enrolment token.
    pub async fn token(&self, p: &Placement, uses: u32) -> (EnrollmentToken, TokenPlaintext) {
        self.token_tagged(p, uses, Default::default()).await
    }

    /// Issues and stores an enrolment token whose devices start with `tags`.
    pub async fn token_tagged(
        &self,
        p: &Placement,
        uses: u32,
        tags: vigie_domain::device::Tags,
    ) -> (EnrollmentToken, TokenPlaintext) {
        let now = now_ms();
        let (token, plain) =
            EnrollmentToken::issue(p.clone(), now, now + 3_600_000, uses, "test").expect("issue");
        let token = token.with_tags(tags).expect("valid tags");
        self.ports
            .enrollment()
            .create(&token)
            .await
            .expect("store token");
        (token, plain)
    }
}

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: serde_json::Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// Sends one request with ureq on a blocking thread.
pub async fn send(method: &str, url: String, hdrs: Vec<(String, String)>, body: Vec<u8>) -> Answer {
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut req = ureq::request(&method, &url);
        for (k, v) in &hdrs {
            req = req.set(k, v);
        }
        let result = if body.is_empty() && method == "GET" {
            req.call()
        } else {
            req.send_bytes(&body)
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Answer { status, json }
    })
    .await
    .expect("request thread")
}

/// Enrols a device over HTTP with a fresh key.
pub async fn enroll(url: &str, token: &str) -> (Answer, DeviceSigningKey) {
    let key = DeviceSigningKey::generate();
    let body = serde_json::json!({
        "token": token,
        "public_key": key.public_key().to_base64(),
        "hostname": "test-host",
        "os": "Debian GNU/Linux 12",
        "agent_version": "0.1.0",
    });
    let answer = send(
        "POST",
        format!("{url}{}", routes::ENROLL),
        vec![("content-type".into(), "application/json".into())],
        serde_json::to_vec(&body).expect("json"),
    )
    .await;
    (answer, key)
}

/// Signature headers for a request.
pub fn signed_headers(
    key: &DeviceSigningKey,
    device: &str,
    method: &str,
    path: &str,
    seq: u64,
    ts: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let device_id = vigie_domain::ids::DeviceId::parse(device).expect("device id");
    let sig = key.sign(&SignedRequest {
        method,
        path,
        device: &device_id,
        timestamp_ms: ts,
        seq,
        body,
    });
    vec![
        (headers::DEVICE.into(), device.into()),
        (headers::TIMESTAMP.into(), ts.to_string()),
        (headers::SEQUENCE.into(), seq.to_string()),
        (headers::SIGNATURE.into(), sig),
    ]
}

/// Posts a gzip body as a signed batch.
pub async fn post_batch(
    url: &str,
    key: &DeviceSigningKey,
    device: &str,
    seq: u64,
    ts: i64,
    body: Vec<u8>,
) -> Answer {
    let mut h = signed_headers(key, device, "POST", routes::BATCHES, seq, ts, &body);
    h.push(("content-type".into(), "application/json".into()));
    h.push(("content-encoding".into(), "gzip".into()));
    send("POST", format!("{url}{}", routes::BATCHES), h, body).await
}

/// A small valid batch, gzip-compressed.
pub fn batch_body(now: i64, samples: usize) -> Vec<u8> {
    gzip(&serde_json::to_vec(&sample_batch(now, samples)).expect("json"))
}

pub fn sample_batch(now: i64, samples: usize) -> TelemetryBatch {
    let agent = serde_json::from_value(serde_json::json!({
        "version": "0.1.0", "hostname": "test-host", "os": "Debian", "kernel": "6.1", "arch": "x86_64", "boot_time": now / 1000 - 3600
    }))
    .expect("agent info");
    let rows: Vec<Sample> = (0..samples)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "ts": now - (samples - i) as i64 * 1000,
                "cpu": {"total_pct": 12.5, "per_core_pct": [10.0, 15.0]},
                "memory": {"total_bytes": 8_000_000_000u64, "available_bytes": 4_000_000_000u64, "used_pct": 50.0, "swap_total_bytes": 0, "swap_used_bytes": 0},
                "filesystems": [{"mount": "/", "fs_type": "ext4", "device": "/dev/sda1", "total_bytes": 102_400, "used_bytes": 61_440, "available_bytes": 40_960, "used_pct": 60.0}],
            }))
            .expect("sample")
        })
        .collect();
    TelemetryBatch::from_samples(agent, SpoolReport::default(), &rows)
}
