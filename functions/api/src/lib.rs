//! Vigie's tenant API: one HTTP API (a Function URL Lambda) for MSP staff, their client
//! companies, accounting and the platform operator.
//!
//! A request goes: route ([`routes::find`]) → credential (`Authorization: Bearer <jwt>` through
//! [`vigie_auth::Verifier`], or `x-api-key` through the stored [`vigie_auth::ApiKeyRecord`]) →
//! [`access::authorize`] (the route table's roles, the principal's tenant and client
//! companies) → the handler, which reads and writes only under the context's tenant. Another
//! tenant's object, or another client company's for a client viewer, is "not found" — the
//! same answer as a missing one.

pub mod access;
pub mod config;
pub mod error;
mod escalation;
mod handlers;
pub mod openapi;
pub mod routes;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigie_domain::ids::TenantId;

use tracing::{info, warn};
use vigie_auth::{ApiKey, Verified, Verifier, user_id_for};
use vigie_aws::adapters::AwsPorts;
use vigie_domain::clock::Clock;
use vigie_edge::{HttpRequest, HttpResponse};

pub use error::ApiError;

/// The API over the AWS adapters.
pub struct Api<K> {
    ports: AwsPorts,
    verifier: Verifier,
    clock: K,
    /// Public keys of Vigie's own issuer, served at `/.well-known/jwks.json`.
    jwks: serde_json::Value,
    /// Where the console lives (links in test notifications).
    console_base: String,
    /// Whether a tenant is suspended, as read recently.
    suspended: Mutex<HashMap<TenantId, (Instant, bool)>>,
}

/// How long a tenant's suspension is cached in a warm function.
pub const TENANT_TTL: Duration = Duration::from_secs(30);

impl<K: Clock> Api<K> {
    pub fn new(ports: AwsPorts, verifier: Verifier, clock: K, jwks: serde_json::Value) -> Self {
        Self {
            ports,
            verifier,
            clock,
            jwks,
            console_base: std::env::var("VIGIE_CONSOLE_URL")
                .unwrap_or_else(|_| "https://console.vigie.example".into()),
            suspended: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets what is cached about `tenant` (after suspending or resuming it here).
    pub(crate) fn forget_tenant(&self, tenant: &TenantId) {
        if let Ok(mut cache) = self.suspended.lock() {
            cache.remove(tenant);
        }
    }

    /// Refuses the people and keys of a suspended tenant (cached for [`TENANT_TTL`]).
    async fn check_not_suspended(&self, tenant: &TenantId) -> Result<(), ApiError> {
        let cached = self.suspended.lock().ok().and_then(|cache| {
            cache
                .get(tenant)
                .filter(|(at, _)| at.elapsed() < TENANT_TTL)
                .map(|(_, s)| *s)
        });
        let suspended = match cached {
            Some(s) => s,
            None => {
                let s = self
                    .ports
                    .directory()
                    .tenant(tenant)
                    .await?
                    .is_some_and(|t| t.suspended_ms.is_some());
                if let Ok(mut cache) = self.suspended.lock() {
                    cache.insert(tenant.clone(), (Instant::now(), s));
                }
                s
            }
        };
        if suspended {
            return Err(ApiError::TenantSuspended);
        }
        Ok(())
    }

    /// Handles one request; every failure is a JSON error with a stable code.
    pub async fn handle(&self, request: &HttpRequest) -> HttpResponse {
        let response = match self.dispatch(request).await {
            Ok(response) => response,
            Err(e) => {
                if e.status() >= 500 {
                    warn!(error = %e, code = e.code(), path = %request.path, "API request failed");
                }
                e.to_response()
            }
        };
        info!(
            event = "api_request",
            method = %request.method,
            path = %request.path,
            status = response.status,
            request_id = %request.request_id,
        );
        response
    }

    async fn dispatch(&self, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/openapi.json" | "/v1/openapi.json") => {
                return Ok(HttpResponse::json(200, &openapi::document()));
            }
            ("GET", "/.well-known/jwks.json") => return Ok(HttpResponse::json(200, &self.jwks)),
            _ => {}
        }
        let matched = routes::find(&request.method, &request.path).map_err(|no| match no {
            routes::NoMatch::Path => ApiError::NoRoute {
                method: request.method.clone(),
                path: request.path.clone(),
            },
            routes::NoMatch::Method(allowed) => ApiError::MethodNotAllowed {
                method: request.method.clone(),
                path: request.path.clone(),
                allow: allowed.join(", "),
            },
        })?;
        let caller = self.authenticate(request).await?;
        match access::authorize(caller, matched.route)? {
            access::Access::Member(context) => {
                if let Some(tenant) = context.principal().tenant_id() {
                    self.check_not_suspended(tenant).await?;
                }
                handlers::handle(self, &context, &matched, request).await
            }
            access::Access::Stranger(identity) => {
                handlers::accept_invitation(self, identity, request).await
            }
        }
    }

    async fn authenticate(&self, request: &HttpRequest) -> Result<access::Caller, ApiError> {
        if let Some(header) = request.header("authorization") {
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or(ApiError::Unauthenticated)?;
            return match self.verifier.verify_any(token.trim()).await? {
                Verified::Principal(p) => Ok(access::Caller::Member(p)),
                Verified::Identity(identity) => {
                    // A person without role claims: their user record says what they may do.
                    let user_id = user_id_for(identity.issuer(), identity.subject());
                    match self.ports.users().user(&user_id).await? {
                        Some(user) if user.removed_ms.is_none() => {
                            Ok(access::Caller::Member(user.principal(identity)?))
                        }
                        _ => Ok(access::Caller::Stranger(identity)),
                    }
                }
            };
        }
        if let Some(presented) = request.header("x-api-key") {
            let (key_id, secret) = ApiKey::parse_presented(presented.trim())?;
            let record = self
                .ports
                .api_keys()
                .get(key_id.as_str())
                .await?
                .ok_or(vigie_auth::AuthError::ApiKeyUnknown)?;
            let now = self.clock.now_ms();
            let principal = record.verify(secret, now)?;
            if let Err(e) = self.ports.api_keys().touch(&record, now).await {
                warn!(error = %e, "could not note the API key's use");
            }
            return Ok(access::Caller::Member(principal));
        }
        Err(ApiError::Unauthenticated)
    }
}

/// Shared handle for the Lambda main and the local runtime.
pub type SharedApi<K> = Arc<Api<K>>;
