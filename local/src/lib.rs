//! The local runtime: every Vigie Lambda handler in one process, against the emulator (or real
//! AWS). HTTP requests are turned into the exact Function URL event and back, so handlers take
//! the same path as on AWS.
//!
//! Hosted: the ingestion function (HTTP), the evaluator (SQS poller on the intake queue), the
//! notifier (SQS poller on the notification queue), the silence sweeper and the usage close (schedule ticks).

pub mod pollers;
pub mod webhook_sink;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use vigie_aws::adapters::AwsPorts;
use vigie_aws::devices::DynamoDevices;
use vigie_aws::enrollment::DynamoEnrollment;
use vigie_aws::telemetry_queue::SqsTelemetryQueue;
use vigie_domain::clock::{Clock, SystemClock};
use vigie_domain::protocol::limits;
use vigie_edge::function_url::{FunctionUrlRequest, FunctionUrlResponse};
use vigie_edge::{HttpRequest, HttpResponse};
use vigie_ingest::Ingest;

/// The ingestion function over the AWS adapters.
pub type IngestService = Ingest<
    DynamoDevices,
    DynamoEnrollment,
    SqsTelemetryQueue,
    vigie_aws::policies::DynamoPolicies,
    SystemClock,
>;

/// The notifier over the AWS adapters.
pub type NotifierService = vigie_notifier::service::Notifier<
    vigie_aws::notifications::DynamoChannels,
    vigie_aws::notifications::DynamoDeliveryLog,
    vigie_aws::notifications::SqsConsumedQueue,
    SystemClock,
    vigie_aws::email::SesMailer,
    vigie_aws::groups::DynamoAlertGroups,
>;

/// The tenant API over the AWS adapters.
pub type ApiService = vigie_api::Api<SystemClock>;

/// Who the local tenant API trusts: issuers, and the JWKS it publishes.
#[derive(Debug, Clone)]
pub struct ApiAuth {
    pub issuers: Vec<vigie_auth::IssuerConfig>,
    pub jwks: serde_json::Value,
}

impl ApiAuth {
    /// Trusts Vigie's own issuer `own` (tokens minted with it pass).
    pub fn own(own: &vigie_auth::OwnIssuer) -> Self {
        Self {
            issuers: vec![own.issuer_config()],
            jwks: own.jwks(),
        }
    }
}

/// Vigie's own token issuer for local use: its Ed25519 key in `path` (PKCS#8 PEM, mode 0600),
/// created on first use. `cargo xtask token` mints with the same key.
pub fn local_issuer(path: &std::path::Path) -> std::io::Result<vigie_auth::OwnIssuer> {
    let issuer = vigie_api::config::DEFAULT_ISSUER;
    let audience = vigie_api::config::DEFAULT_AUDIENCE;
    if let Ok(pem) = std::fs::read_to_string(path) {
        return vigie_auth::OwnIssuer::from_pkcs8_pem(issuer, audience, &pem)
            .map_err(std::io::Error::other);
    }
    let own = vigie_auth::OwnIssuer::generate(issuer, audience);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, own.to_pkcs8_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(own)
}

/// Knobs of [`LocalRuntime::start_with`].
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// How long a tenant's policies and channels stay cached.
    pub policy_ttl: std::time::Duration,
    /// How the notifier's retries back off.
    pub notify_backoff: vigie_notifier::service::Backoff,
    /// Serve the tenant API (every path but `/v1/agent/…`) with these issuers.
    pub api: Option<ApiAuth>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            policy_ttl: std::time::Duration::from_secs(30),
            notify_backoff: vigie_notifier::service::Backoff::default(),
            api: None,
        }
    }
}

/// The evaluator over the AWS adapters.
pub type EvaluatorService = vigie_evaluator::Evaluator<
    vigie_aws::policies::DynamoPolicies,
    vigie_aws::evaluation::DynamoEvaluation,
    vigie_aws::alerts_topic::SnsAlertsTopic,
    SqsTelemetryQueue,
    SystemClock,
>;

/// How often the local runtime runs the silence sweeper (on AWS: a one-minute schedule).
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the local runtime runs the escalation sweep and audit (on AWS: every minute and
/// every 10 minutes).
pub const ESCALATION_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
pub const ESCALATION_AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the local runtime runs the usage close (on AWS: hourly).
pub const USAGE_CLOSE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Largest request body the local HTTP front accepts (the handler enforces its own limits).
const MAX_HTTP_BODY: usize = limits::MAX_COMPRESSED_BODY * 2;

/// A running local runtime.
pub struct LocalRuntime {
    addr: SocketAddr,
    ingest: Arc<IngestService>,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    batches: tokio::sync::broadcast::Sender<vigie_domain::envelope::BatchEnvelope>,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LocalRuntime {
    /// Binds `listen` (port 0 picks a free port) and starts serving the ingestion function.
    pub async fn start(ports: &AwsPorts, listen: SocketAddr) -> std::io::Result<Self> {
        Self::start_front(ports, listen, None).await
    }

    async fn start_front(
        ports: &AwsPorts,
        listen: SocketAddr,
        api: Option<Arc<ApiService>>,
    ) -> std::io::Result<Self> {
        let ingest = Arc::new(Ingest::new(
            ports.devices(),
            ports.enrollment(),
            ports.telemetry_queue(),
            ports.policies(),
            SystemClock,
        ));
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let front = Front {
            ingest: Arc::clone(&ingest),
            api,
        };
        let server = tokio::spawn(serve(listener, front, rx));
        tracing::info!(%addr, "local runtime listening");
        Ok(Self {
            addr,
            ingest,
            shutdown: Some(tx),
            server,
            pollers: Vec::new(),
            batches: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// Starts everything: the ingestion function, the evaluator polling the intake queue and
    /// the notifier polling the notification queue. `policy_ttl` is how long a tenant's
    /// policies and channels stay cached.
    pub async fn start_all(
        ports: &AwsPorts,
        listen: SocketAddr,
        policy_ttl: std::time::Duration,
    ) -> std::io::Result<Self> {
        let options = RuntimeOptions {
            policy_ttl,
            ..RuntimeOptions::default()
        };
        Self::start_with(ports, listen, &options).await
    }

    /// [`Self::start_all`] with every knob.
    pub async fn start_with(
        ports: &AwsPorts,
        listen: SocketAddr,
        options: &RuntimeOptions,
    ) -> std::io::Result<Self> {
        let policy_ttl = options.policy_ttl;
        let api = match &options.api {
            Some(auth) => {
                let verifier =
                    vigie_auth::Verifier::new(auth.issuers.clone(), Arc::new(SystemClock))
                        .map_err(std::io::Error::other)?;
                Some(Arc::new(vigie_api::Api::new(
                    ports.clone(),
                    verifier,
                    SystemClock,
                    auth.jwks.clone(),
                )))
            }
            None => None,
        };
        let mut runtime = Self::start_front(ports, listen, api).await?;
        let evaluator = Arc::new(
            EvaluatorService::new(
                ports.policies(),
                ports.evaluation(),
                ports.alerts_topic(),
                ports.telemetry_queue(),
                SystemClock,
            )
            .with_policy_ttl(policy_ttl),
        );
        let sqs = ports.clients().sqs.clone();
        let queue = pollers::PolledQueue::lookup(&sqs, ports.telemetry_queue().queue_url())
            .await
            .map_err(std::io::Error::other)?;
        let watchers = runtime.batches.clone();
        runtime.pollers.push(tokio::spawn(pollers::run(
            sqs.clone(),
            queue,
            move |event| {
                let evaluator = Arc::clone(&evaluator);
                // Whoever watches (the demo) sees each inline batch handed to the evaluator.
                if watchers.receiver_count() > 0 {
                    for r in &event.records {
                        if let Ok(vigie_domain::envelope::IntakeMessage::Batch(e)) =
                            serde_json::from_str(&r.body)
                        {
                            let _ = watchers.send(*e);
                        }
                    }
                }
                async move { evaluator.handle(event).await }
            },
        )));
        let mail_from = std::env::var("VIGIE_MAIL_FROM")
            .unwrap_or_else(|_| vigie_notifier::service::DEFAULT_MAIL_FROM.to_owned());
        ports
            .mailer()
            .ensure_sender(&mail_from)
            .await
            .map_err(std::io::Error::other)?;
        let notifier = Arc::new(
            vigie_notifier::service::Notifier::new(
                ports.channels(),
                ports.deliveries(),
                ports.notify_queue(),
                SystemClock,
                ports.mailer(),
                "http://localhost:8080",
                std::time::Duration::from_secs(3),
            )
            .with_channel_ttl(policy_ttl)
            .with_backoff(options.notify_backoff)
            .with_mail_from(&mail_from)
            .with_groups(ports.alert_groups()),
        );
        // The escalator: its queue (alert transitions, wake-ups), its sweep and its audit.
        let escalator = Arc::new(vigie_escalator::Escalator::new(
            ports,
            vigie_escalator::resolver::DynamoRosters {
                ports: ports.clone(),
            },
            SystemClock,
        ));
        let queue = pollers::PolledQueue::lookup(&sqs, ports.escalate_queue_url())
            .await
            .map_err(std::io::Error::other)?;
        let handler = Arc::clone(&escalator);
        runtime.pollers.push(tokio::spawn(pollers::run(
            sqs.clone(),
            queue,
            move |event| {
                let escalator = Arc::clone(&handler);
                async move { escalator.handle(event).await }
            },
        )));
        let sweeping = Arc::clone(&escalator);
        runtime.pollers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(ESCALATION_SWEEP_EVERY);
            let mut audits = tokio::time::interval(ESCALATION_AUDIT_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = sweeping.sweep().await {
                            tracing::warn!(error = %e, "escalation sweep failed; next tick retries");
                        }
                    }
                    _ = audits.tick() => {
                        if let Err(e) = sweeping.audit().await {
                            tracing::warn!(error = %e, "escalation audit failed; next tick retries");
                        }
                    }
                }
            }
        }));
        // The silence sweeper on a schedule, as EventBridge would run it.
        let sweeper = vigie_evaluator::silence::SilenceSweeper::new(
            ports.devices(),
            ports.evaluation(),
            ports.alerts_topic(),
            ports.heartbeats(),
            SystemClock,
        );
        runtime.pollers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = sweeper.sweep().await {
                    tracing::warn!(error = %e, "silence sweep failed; next tick retries");
                }
            }
        }));
        // The usage close on a schedule (on AWS: hourly; it only works after midnight).
        let close = vigie_evaluator::usage_close::UsageClose::new(ports.usage(), SystemClock);
        runtime.pollers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(USAGE_CLOSE_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = close.run().await {
                    tracing::warn!(error = %e, "usage close failed; next tick retries");
                }
            }
        }));
        let queue = pollers::PolledQueue::lookup(&sqs, ports.notify_queue_url())
            .await
            .map_err(std::io::Error::other)?;
        runtime
            .pollers
            .push(tokio::spawn(pollers::run(sqs, queue, move |event| {
                let notifier = Arc::clone(&notifier);
                async move { notifier.handle(event).await }
            })));
        Ok(runtime)
    }

    /// Batches as the evaluator receives them (only with [`LocalRuntime::start_all`]).
    pub fn watch_batches(
        &self,
    ) -> tokio::sync::broadcast::Receiver<vigie_domain::envelope::BatchEnvelope> {
        self.batches.subscribe()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL agents use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ingest(&self) -> &IngestService {
        &self.ingest
    }

    /// Stops accepting, drops every open connection, stops the pollers.
    pub async fn stop(mut self) {
        for p in &self.pollers {
            p.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        self.server.abort();
        for p in &self.pollers {
            p.abort();
        }
    }
}

/// What the local HTTP front serves: the agent's routes go to ingestion, everything else to
/// the tenant API when there is one (on AWS: two Function URLs).
#[derive(Clone)]
struct Front {
    ingest: Arc<IngestService>,
    api: Option<Arc<ApiService>>,
}

async fn serve(listener: TcpListener, front: Front, mut shutdown: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let front = front.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let front = front.clone();
                        async move { Ok::<_, Infallible>(route(&front, req, peer).await) }
                    });
                    if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn route(
    front: &Front,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let ingest = &front.ingest;
    let (parts, body) = req.into_parts();
    if parts.method == hyper::Method::GET && parts.uri.path() == "/_local/metrics" {
        let text = ingest.counters().render_prometheus();
        return to_hyper(HttpResponse::with_body(
            200,
            "text/plain; version=0.0.4",
            text.into_bytes(),
        ));
    }
    let body = match Limited::new(body, MAX_HTTP_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            let error = vigie_domain::intake::IntakeRefusal::BodyTooLarge {
                limit: limits::MAX_COMPRESSED_BODY,
            };
            ingest.counters().refused(error.code());
            return to_hyper(vigie_ingest::IngestError::from(error).to_response());
        }
    };
    let mut headers = std::collections::BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw = HttpRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body,
        source_ip: peer.ip().to_string(),
        request_id: vigie_domain::ids::base32(&vigie_domain::ids::random_bytes::<10>()),
    };
    // Through the exact Function URL event shape, as on AWS.
    let event = FunctionUrlRequest::from_http(&raw, SystemClock.now_ms());
    let response = match serde_json::to_vec(&event)
        .ok()
        .and_then(|json| serde_json::from_slice::<FunctionUrlRequest>(&json).ok())
        .map(FunctionUrlRequest::into_request)
    {
        Some(Ok(request)) => match &front.api {
            Some(api) if !request.path.starts_with("/v1/agent/") => api.handle(&request).await,
            _ => ingest.handle(&request).await,
        },
        _ => HttpResponse::error(
            400,
            "malformed_body_encoding",
            "the request could not be decoded",
        ),
    };
    let wire = FunctionUrlResponse::from(response);
    let status = wire.status_code;
    let body = wire.body_bytes().unwrap_or_default();
    to_hyper(HttpResponse {
        status,
        headers: wire.headers,
        body,
    })
}

fn to_hyper(r: HttpResponse) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(r.status);
    for (name, value) in &r.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| {
            hyper::Response::new(Full::new(Bytes::from_static(
                b"{\"error\":{\"code\":\"internal\",\"message\":\"bad response\"}}",
            )))
        })
}
