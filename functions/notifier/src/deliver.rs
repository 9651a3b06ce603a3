//! From a channel and an event to a notification, and HTTP delivery with a retry verdict.
//!
//! [`prepare`] is pure: it renders and signs. Only [`deliver`] does I/O, and only for HTTP
//! channels; e-mail leaves as an [`Email`] for the SES adapter, so nothing can try to POST one.

use std::io::Read as _;
use std::time::Duration;

use vigie_domain::alert::AlertEvent;

use crate::channel::{ChannelId, ChannelKind, NotificationChannel};
use crate::render::{self, EmailContent};
use crate::sign::{EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header};

/// A notification ready to leave.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// A JSON POST (webhook, Slack, Teams): send it with [`deliver`].
    Http(HttpRequest),
    /// An e-mail: sent through SES by the AWS adapter.
    Email(Email),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub channel_id: ChannelId,
    pub event_id: String,
    pub url: String,
    /// Besides `content-type: application/json`.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub channel_id: ChannelId,
    pub event_id: String,
    pub to: Vec<String>,
    pub from: String,
    pub content: EmailContent,
}

/// Renders `event` for `channel`; webhooks are signed at `now_s` (Unix seconds).
pub fn prepare(
    channel: &NotificationChannel,
    event: &AlertEvent,
    console_base: &str,
    now_s: i64,
) -> Notification {
    let http = |url: &str, body: String, headers| {
        Notification::Http(HttpRequest {
            channel_id: channel.id.clone(),
            event_id: event.event_id.clone(),
            url: url.to_owned(),
            headers,
            body,
        })
    };
    match &channel.kind {
        ChannelKind::Webhook { url, secret } => {
            let body = render::webhook_body(event, console_base).to_string();
            let signature = signature_header(secret.expose(), now_s, body.as_bytes());
            let headers = vec![
                (SIGNATURE_HEADER, signature),
                (EVENT_ID_HEADER, event.event_id.clone()),
            ];
            http(url, body, headers)
        }
        ChannelKind::Slack { webhook_url } => {
            let body = render::slack(event, console_base).to_string();
            http(webhook_url, body, Vec::new())
        }
        ChannelKind::Teams { webhook_url } => {
            let body = render::teams(event, console_base).to_string();
            http(webhook_url, body, Vec::new())
        }
        ChannelKind::Email { to, from } => Notification::Email(Email {
            channel_id: channel.id.clone(),
            event_id: event.event_id.clone(),
            to: to.clone(),
            from: from.clone(),
            content: render::email(event, console_base),
        }),
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The receiver answered 2xx.
    Delivered,
    /// Worth another try later: 408, 429, 5xx, no answer, a transport error.
    RetryLater,
    /// The receiver refused it (other 3xx/4xx): retrying would not help.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub status: DeliveryStatus,
    pub response_code: Option<u16>,
    /// For people: the status line and the start of the response, or the transport error.
    pub detail: String,
}

/// The verdict for an HTTP status code.
pub fn classify(code: u16) -> DeliveryStatus {
    match code {
        200..=299 => DeliveryStatus::Delivered,
        408 | 429 | 500..=599 => DeliveryStatus::RetryLater,
        _ => DeliveryStatus::Failed,
    }
}

/// How much of a response body is kept in [`DeliveryOutcome::detail`].
const DETAIL_BODY_BYTES: u64 = 300;

/// POSTs `request` with `content-type: application/json`, giving up after `timeout` overall.
/// Redirects are not followed (a 3xx is `Failed`).
pub fn deliver(request: &HttpRequest, timeout: Duration) -> DeliveryOutcome {
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .user_agent(concat!("vigie-notifier/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut post = agent
        .post(&request.url)
        .set("content-type", "application/json");
    for (name, value) in &request.headers {
        post = post.set(name, value);
    }
    let (response_code, detail) = match post.send_string(&request.body) {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            let code = response.status();
            let mut detail = format!("HTTP {code} {}", response.status_text());
            let mut start = String::new();
            // A body that is not text, or does not arrive in time, is simply left out.
            let _ = response
                .into_reader()
                .take(DETAIL_BODY_BYTES)
                .read_to_string(&mut start);
            let start = start.trim();
            if !start.is_empty() {
                detail.push_str(": ");
                detail.push_str(start);
            }
            (Some(code), detail)
        }
        Err(ureq::Error::Transport(transport)) => (None, transport.to_string()),
    };
    let status = response_code.map_or(DeliveryStatus::RetryLater, classify);
    let outcome = DeliveryOutcome {
        status,
        response_code,
        detail,
    };
    let (channel_id, event_id) = (request.channel_id.as_str(), request.event_id.as_str());
    match status {
        DeliveryStatus::Delivered => {
            tracing::debug!(channel_id, event_id, code = ?response_code, "notification delivered");
        }
        DeliveryStatus::RetryLater => {
            tracing::warn!(channel_id, event_id, code = ?response_code, detail = %outcome.detail,
                "notification not delivered, will retry");
        }
        DeliveryStatus::Failed => {
            tracing::error!(channel_id, event_id, code = ?response_code, detail = %outcome.detail,
                "notification refused by the receiver");
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelFilter, WebhookSecret};
    use crate::sign::verify;
    use crate::testing::{CONSOLE, event};
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};
    use std::time::Instant;
    use vigie_domain::alert::AlertEventKind;
    use vigie_domain::ids::TenantId;

    const NOW: i64 = 1_740_924_300;

    /// What the test server saw: lower-cased headers and the body.
    struct Received {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Serves one request on 127.0.0.1 with `response` (`None`: accept, read, never answer).
    fn serve_once(response: Option<&'static str>) -> (String, JoinHandle<Option<Received>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            let mut reader = BufReader::new(stream.try_clone().ok()?);
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).ok()?;
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).ok()?;
            match response {
                Some(r) => (&stream).write_all(r.as_bytes()).ok()?,
                // Hold the connection until the client gives up.
                None => while reader.read(&mut [0; 64]).is_ok_and(|n| n > 0) {},
            }
            Some(Received { headers, body })
        });
        (url, handle)
    }

    fn webhook(url: &str) -> NotificationChannel {
        NotificationChannel {
            id: ChannelId::parse("ops-hook").expect("id"),
            tenant_id: TenantId::parse("acme-msp").expect("id"),
            name: "Ops webhook".into(),
            kind: ChannelKind::Webhook {
                url: url.into(),
                secret: WebhookSecret::new("whsec_test-secret-0123456789"),
            },
            filter: ChannelFilter::default(),
            group_wait_s: 0,
        }
    }

    fn http(n: Notification) -> HttpRequest {
        match n {
            Notification::Http(r) => r,
            Notification::Email(e) => panic!("expected an HTTP request, got {e:?}"),
        }
    }

    #[test]
    fn delivered_webhook_verifies_on_the_receiver() {
        let (url, server) = serve_once(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        ));
        let e = event(AlertEventKind::Opened);
        let request = http(prepare(&webhook(&url), &e, CONSOLE, NOW));
        let outcome = deliver(&request, Duration::from_secs(5));
        assert_eq!(outcome.status, DeliveryStatus::Delivered, "{outcome:?}");
        assert_eq!(outcome.response_code, Some(200));
        assert_eq!(outcome.detail, "HTTP 200 OK: ok");

        let got = server.join().expect("server").expect("a request");
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.header("x-vigie-event-id"), Some(e.event_id.as_str()));
        let signature = got.header("x-vigie-signature").expect("signed");
        let secret = b"whsec_test-secret-0123456789";
        assert_eq!(verify(secret, signature, &got.body, NOW + 2, 300), Ok(()));
        let body: serde_json::Value = serde_json::from_slice(&got.body).expect("json");
        assert_eq!(body["version"], 1);
        assert_eq!(body["event"]["event_id"], e.event_id.as_str());
    }

    #[test]
    fn server_errors_retry_and_refusals_fail() {
        for (response, status, code) in [
            (
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom",
                DeliveryStatus::RetryLater,
                500,
            ),
            (
                "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n",
                DeliveryStatus::RetryLater,
                429,
            ),
            (
                "HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\nno_service",
                DeliveryStatus::Failed,
                404,
            ),
            (
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n",
                DeliveryStatus::Failed,
                302,
            ),
        ] {
            let (url, server) = serve_once(Some(response));
            let request = http(prepare(
                &webhook(&url),
                &event(AlertEventKind::Opened),
                CONSOLE,
                NOW,
            ));
            let outcome = deliver(&request, Duration::from_secs(5));
            assert_eq!(
                (outcome.status, outcome.response_code),
                (status, Some(code)),
                "{outcome:?}"
            );
            assert!(server.join().expect("server").is_some());
        }
    }

    #[test]
    fn silent_server_and_closed_port_retry_later() {
        let (url, server) = serve_once(None);
        let request = http(prepare(
            &webhook(&url),
            &event(AlertEventKind::Opened),
            CONSOLE,
            NOW,
        ));
        let started = Instant::now();
        let outcome = deliver(&request, Duration::from_millis(300));
        let took = started.elapsed();
        assert_eq!(outcome.status, DeliveryStatus::RetryLater, "{outcome:?}");
        assert_eq!(outcome.response_code, None);
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(server.join().expect("server").is_some());

        // Nothing listens on a port just released.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let request = HttpRequest {
            url: format!("http://127.0.0.1:{port}/hook"),
            ..request
        };
        let outcome = deliver(&request, Duration::from_millis(300));
        assert_eq!(outcome.status, DeliveryStatus::RetryLater, "{outcome:?}");
    }

    #[test]
    fn slack_teams_and_email_are_prepared_for_their_transport() {
        let e = event(AlertEventKind::Resolved);
        let mut ch = webhook("unused");
        ch.kind = ChannelKind::Slack {
            webhook_url: "https://hooks.slack.com/services/T0/B0/x".into(),
        };
        let slack = http(prepare(&ch, &e, CONSOLE, NOW));
        assert!(slack.headers.is_empty(), "no signature for Slack");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&slack.body).expect("json"),
            render::slack(&e, CONSOLE)
        );
        ch.kind = ChannelKind::Teams {
            webhook_url: "https://acme.webhook.office.com/x".into(),
        };
        assert!(
            http(prepare(&ch, &e, CONSOLE, NOW))
                .body
                .contains("AdaptiveCard")
        );
        ch.kind = ChannelKind::Email {
            to: vec!["ops@acme.example".into()],
            from: "alerts@vigie.example".into(),
        };
        match prepare(&ch, &e, CONSOLE, NOW) {
            Notification::Email(m) => {
                assert_eq!(m.to, ["ops@acme.example"]);
                assert!(m.content.subject.starts_with("[RESOLVED] Disk /var"));
            }
            other => panic!("expected an e-mail, got {other:?}"),
        }
    }

    #[test]
    fn classification() {
        use DeliveryStatus::*;
        assert_eq!(
            [200, 202, 204, 301, 400, 403, 404, 408, 410, 429, 500, 503].map(classify),
            [
                Delivered, Delivered, Delivered, Failed, Failed, Failed, Failed, RetryLater,
                Failed, RetryLater, RetryLater, RetryLater
            ]
        );
    }
}
