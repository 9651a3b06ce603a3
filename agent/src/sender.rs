//! HTTP to the ingestion function: enrolment, configuration, signed batches.
//!
//! One `ureq` agent for the life of the process (one pooled connection), names resolved by
//! [`SystemResolver`](crate::resolver::SystemResolver). Every batch is re-signed at each
//! attempt with the current time; its sequence number and body never change.

use std::io::Read as _;
use std::time::Duration;

use serde::de::DeserializeOwned;
use vigie_domain::ids::DeviceId;
use vigie_domain::protocol::{AgentConfig, EnrollRequest, EnrollResponse, ErrorBody, routes};
use vigie_domain::signing::{DeviceSigningKey, SignedRequest, headers};

use crate::resolver::SystemResolver;
use crate::state::Identity;

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("vigie-agent/", env!("CARGO_PKG_VERSION"));
/// Longest response body read (answers are a few hundred bytes).
const MAX_ANSWER: u64 = 64 * 1024;

/// The HTTP client: 10 s to connect, 30 s for a whole request, no redirects.
pub fn http_client() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .resolver(SystemResolver::new())
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirects(0)
        .max_idle_connections(1)
        .max_idle_connections_per_host(1)
        .user_agent(USER_AGENT)
        .build()
}

/// Why a request other than a batch did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the server refused the request (HTTP {status}, {code}): {message}")]
    Refused {
        status: u16,
        /// The `ErrorBody` code, or `http_<status>` when the answer was not one.
        code: String,
        message: String,
    },
    #[error("could not reach the server: {0}")]
    Transport(String),
    #[error("the server's answer could not be understood: {0}")]
    BadAnswer(String),
}

/// What became of one attempt to deliver a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// 2xx: the server took it.
    Accepted,
    /// 409 `sequence_replayed`: the server already has it.
    Replayed { last_accepted_seq: Option<u64> },
    /// A 4xx the batch can never get past: keep it aside, go on with the next.
    Rejected {
        status: u16,
        code: Option<String>,
        answer: String,
    },
    /// 403 `device_revoked`: stop sending.
    Revoked { message: String },
    /// 429: slow down, at least for `retry_after`.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, a network failure, or a clock the server disagrees with: try again later (not
    /// before `retry_after` when the server said so).
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Sends this device's signed requests.
pub struct Sender {
    http: ureq::Agent,
    base_url: String,
    device: DeviceId,
    key: DeviceSigningKey,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("base_url", &self.base_url)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(http: ureq::Agent, identity: &Identity, key: DeviceSigningKey) -> Self {
        Self {
            http,
            base_url: identity.server_url.trim_end_matches('/').to_owned(),
            device: identity.device_id.clone(),
            key,
        }
    }

    fn signed(
        &self,
        method: &'static str,
        path: &'static str,
        seq: u64,
        body: &[u8],
        now_ms: i64,
    ) -> ureq::Request {
        let signature = self.key.sign(&SignedRequest {
            method,
            path,
            device: &self.device,
            timestamp_ms: now_ms,
            seq,
            body,
        });
        self.http
            .request(method, &format!("{}{path}", self.base_url))
            .set(headers::DEVICE, self.device.as_str())
            .set(headers::TIMESTAMP, &now_ms.to_string())
            .set(headers::SEQUENCE, &seq.to_string())
            .set(headers::SIGNATURE, &signature)
    }

    /// One attempt to deliver batch `seq` (its gzip body), signed at `now_ms`.
    pub fn send_batch(&self, seq: u64, body: &[u8], now_ms: i64) -> SendOutcome {
        let result = self
            .signed("POST", routes::BATCHES, seq, body, now_ms)
            .set("content-type", "application/json")
            .set("content-encoding", "gzip")
            .send_bytes(body);
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return classify(status, &read_answer(response), retry_after);
            }
            Err(ureq::Error::Transport(t)) => {
                return SendOutcome::Retry {
                    reason: t.to_string(),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let answer = read_answer(response);
        if (200..300).contains(&status) {
            SendOutcome::Accepted
        } else {
            SendOutcome::Retry {
                reason: format!("unexpected HTTP {status}: {}", clip(&answer)),
                retry_after: None,
            }
        }
    }

    /// `GET /v1/agent/config`, signed with sequence 0 over an empty body.
    pub fn fetch_config(&self, now_ms: i64) -> Result<AgentConfig, RequestError> {
        let config: AgentConfig =
            answer_json(self.signed("GET", routes::CONFIG, 0, &[], now_ms).call())?;
        if config.is_valid() {
            Ok(config)
        } else {
            Err(RequestError::BadAnswer(format!(
                "configuration out of bounds: {config:?}"
            )))
        }
    }
}

/// `POST /v1/agent/enroll` (unsigned: the token is the credential).
pub fn enroll(
    http: &ureq::Agent,
    base_url: &str,
    request: &EnrollRequest,
) -> Result<EnrollResponse, RequestError> {
    let body = serde_json::to_vec(request).map_err(|e| RequestError::BadAnswer(e.to_string()))?;
    let url = format!("{}{}", base_url.trim_end_matches('/'), routes::ENROLL);
    answer_json(
        http.post(&url)
            .set("content-type", "application/json")
            .send_bytes(&body),
    )
}

/// A 2xx answer parsed as `T`; anything else as a [`RequestError`].
fn answer_json<T: DeserializeOwned>(
    result: Result<ureq::Response, ureq::Error>,
) -> Result<T, RequestError> {
    match result {
        Ok(response) if (200..300).contains(&response.status()) => {
            let answer = read_answer(response);
            serde_json::from_str(&answer)
                .map_err(|e| RequestError::BadAnswer(format!("{e}: {}", clip(&answer))))
        }
        Ok(response) => {
            let status = response.status();
            Err(refused(status, &read_answer(response)))
        }
        Err(ureq::Error::Status(status, response)) => Err(refused(status, &read_answer(response))),
        Err(ureq::Error::Transport(t)) => Err(RequestError::Transport(t.to_string())),
    }
}

fn refused(status: u16, answer: &str) -> RequestError {
    match serde_json::from_str::<ErrorBody>(answer) {
        Ok(body) => RequestError::Refused {
            status,
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => RequestError::Refused {
            status,
            code: format!("http_{status}"),
            message: clip(answer).to_owned(),
        },
    }
}

/// Maps an error status and its answer to what the agent does next.
pub fn classify(status: u16, answer: &str, retry_after: Option<Duration>) -> SendOutcome {
    let detail = serde_json::from_str::<ErrorBody>(answer)
        .ok()
        .map(|b| b.error);
    let code = detail.as_ref().map(|d| d.code.as_str());
    match (status, code) {
        (409, Some("sequence_replayed")) => SendOutcome::Replayed {
            last_accepted_seq: detail.and_then(|d| d.last_accepted_seq),
        },
        (429, _) => SendOutcome::RateLimited { retry_after },
        (403, Some("device_revoked")) => SendOutcome::Revoked {
            message: detail.map(|d| d.message).unwrap_or_default(),
        },
        // The machine's clock is off: the batch is fine, the moment is not.
        (_, Some("stale_timestamp")) | (408, _) => SendOutcome::Retry {
            reason: describe(status, answer),
            retry_after,
        },
        (400..=499, _) => SendOutcome::Rejected {
            status,
            code: code.map(str::to_owned),
            answer: answer.to_owned(),
        },
        _ => SendOutcome::Retry {
            reason: describe(status, answer),
            retry_after,
        },
    }
}

/// "HTTP 503 (code): message" for logs and `status`.
pub fn describe(status: u16, answer: &str) -> String {
    match serde_json::from_str::<ErrorBody>(answer) {
        Ok(b) => format!("HTTP {status} ({}): {}", b.error.code, b.error.message),
        Err(_) if answer.trim().is_empty() => format!("HTTP {status}"),
        Err(_) => format!("HTTP {status}: {}", clip(answer)),
    }
}

fn read_answer(response: ureq::Response) -> String {
    let mut buf = Vec::new();
    let _ = response
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The start of a text, for one log line.
fn clip(text: &str) -> &str {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;
    use vigie_domain::ids::{ClientId, SiteId, TenantId};

    /// One request as the test server saw it.
    #[derive(Debug)]
    pub(crate) struct Recorded {
        pub method: String,
        pub path: String,
        pub headers: HashMap<String, String>,
        pub body: Vec<u8>,
    }

    /// A canned answer: status, extra headers, body.
    pub(crate) type Answer = (u16, Vec<(&'static str, String)>, String);

    /// A server that answers `answers.len()` requests, one connection each, with the canned
    /// status, extra headers and body, and reports what it received.
    pub(crate) fn serve(answers: Vec<Answer>) -> (String, mpsc::Receiver<Recorded>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for (status, extra, body) in answers {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                reader.read_line(&mut line).expect("request line");
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).expect("header");
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut req_body = vec![0u8; len];
                std::io::Read::read_exact(&mut reader, &mut req_body).expect("body");
                let _ = tx.send(Recorded {
                    method,
                    path,
                    headers,
                    body: req_body,
                });
                let mut out = stream;
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in extra {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = out.write_all(head.as_bytes());
                let _ = out.write_all(body.as_bytes());
            }
        });
        (url, rx)
    }

    pub(crate) fn identity(url: &str) -> Identity {
        Identity {
            device_id: DeviceId::generate(),
            tenant_id: TenantId::parse("acme").expect("id"),
            client_id: ClientId::parse("client-1").expect("id"),
            site_id: SiteId::parse("hq").expect("id"),
            server_url: format!("{url}/"),
            enrolled_at_ms: 0,
        }
    }

    pub(crate) fn error(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"because {code}"}}}}"#)
    }

    #[test]
    fn errors_are_classified() {
        let replay =
            r#"{"error":{"code":"sequence_replayed","message":"m","last_accepted_seq":9}}"#;
        assert_eq!(
            classify(409, replay, None),
            SendOutcome::Replayed {
                last_accepted_seq: Some(9)
            }
        );
        assert_eq!(
            classify(429, &error("rate_limited"), Some(Duration::from_secs(7))),
            SendOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(403, &error("device_revoked"), None),
            SendOutcome::Revoked {
                message: "because device_revoked".into()
            }
        );
        for (status, code) in [
            (400, "malformed_json"),
            (401, "bad_signature"),
            (403, "forbidden"),
            (413, "body_too_large"),
            (415, "unsupported_media_type"),
            (422, "invalid_batch"),
        ] {
            assert!(
                matches!(classify(status, &error(code), None), SendOutcome::Rejected { status: s, .. } if s == status),
                "{status}"
            );
        }
        assert!(matches!(
            classify(401, &error("stale_timestamp"), None),
            SendOutcome::Retry { .. }
        ));
        assert_eq!(
            classify(503, &error("unavailable"), Some(Duration::from_secs(5))),
            SendOutcome::Retry {
                reason: "HTTP 503 (unavailable): because unavailable".into(),
                retry_after: Some(Duration::from_secs(5))
            }
        );
        assert!(matches!(
            classify(503, "<html>busy</html>", None),
            SendOutcome::Retry { reason, retry_after: None } if reason == "HTTP 503: <html>busy</html>"
        ));
    }

    #[test]
    fn config_is_fetched_with_a_signed_get() {
        let (url, requests) = serve(vec![(
            200,
            vec![],
            r#"{"sample_interval_s":30,"send_interval_s":120,"heartbeat_s":600}"#.into(),
        )]);
        let identity = identity(&url);
        let key = DeviceSigningKey::generate();
        let public = key.public_key();
        let sender = Sender::new(http_client(), &identity, key);
        let config = sender.fetch_config(1_790_000_000_000).expect("config");
        assert_eq!(
            (config.sample_interval_s, config.send_interval_s),
            (30, 120)
        );
        let r = requests.recv().expect("request");
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", routes::CONFIG)
        );
        assert_eq!(r.headers[headers::SEQUENCE], "0");
        let request = SignedRequest {
            method: "GET",
            path: routes::CONFIG,
            device: &identity.device_id,
            timestamp_ms: 1_790_000_000_000,
            seq: 0,
            body: &[],
        };
        assert_eq!(
            public.verify(&request, &r.headers[headers::SIGNATURE]),
            Ok(())
        );
    }

    #[test]
    fn enrolment_refusals_carry_the_servers_code() {
        let (url, requests) = serve(vec![(401, vec![], error("enrollment_token_invalid"))]);
        let request = EnrollRequest {
            token: "et-x.secret".into(),
            public_key: DeviceSigningKey::generate().public_key().to_base64(),
            hostname: "h".into(),
            os: "Linux".into(),
            agent_version: "0.1.0".into(),
        };
        let e = enroll(&http_client(), &url, &request).expect_err("refused");
        assert_eq!(
            e,
            RequestError::Refused {
                status: 401,
                code: "enrollment_token_invalid".into(),
                message: "because enrollment_token_invalid".into()
            }
        );
        let r = requests.recv().expect("request");
        assert_eq!(r.path, routes::ENROLL);
        let sent: EnrollRequest = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(sent, request);
    }
}
