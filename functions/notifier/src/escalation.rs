//! Escalation notices (see `vigie_domain::escalation`): one step's notification, delivered to
//! each of its recipients — a channel of the tenant, a user's address on record, an address —
//! once per (notice, recipient): the delivery log's claim is keyed on both, so a notice the
//! escalator handed over twice is sent once.
//!
//! Webhook body (signed like alert events; `x-vigie-event-id` is the notice id):
//!
//! ```json
//! {"version": 1, "type": "escalation", "notice": { "notice_id": "esc-…", "step": 2, "round": 0,
//!  "policy_id": "…", "policy_name": "…", "say": "…", "alert": {…}, "to": [...], "cc": [...],
//!  "due_ms": …, "at_ms": … }, "copy": false, "text": "<headline>: <say>", "console_url": "…"}
//! ```

use serde_json::{Value, json};
use vigie_domain::escalation::{Notice, Recipient};
use vigie_domain::notification::{ChannelId, ChannelKind, NotificationChannel};

use crate::deliver::{Email, HttpRequest, Notification};
use crate::render::{EmailContent, html_escape};
use crate::sign::{EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header};

/// The console page of the notice's alert.
pub fn console_url(console_base: &str, n: &Notice) -> String {
    format!(
        "{}/t/{}/alerts/{}",
        console_base.trim_end_matches('/'),
        n.tenant_id,
        n.alert.alert_id
    )
}

/// The notice in one line.
pub fn text(n: &Notice, copy: bool) -> String {
    let mut t = n.headline();
    if let Some(say) = &n.say {
        t.push_str(": ");
        t.push_str(say);
    }
    if copy {
        t.push_str(" (copy)");
    }
    t
}

pub fn webhook_body(n: &Notice, copy: bool, console_base: &str) -> Value {
    json!({
        "version": crate::render::WEBHOOK_BODY_VERSION,
        "type": "escalation",
        "notice": n,
        "copy": copy,
        "text": text(n, copy),
        "console_url": console_url(console_base, n),
    })
}

pub fn email(n: &Notice, copy: bool, console_base: &str) -> EmailContent {
    let url = console_url(console_base, n);
    let who = |rs: &[Recipient]| {
        rs.iter()
            .map(|r| match r {
                Recipient::Channel { channel_id } => format!("channel {channel_id}"),
                Recipient::User {
                    user_id,
                    address: Some(a),
                } => format!("{user_id} <{a}>"),
                Recipient::User { user_id, .. } => user_id.clone(),
                Recipient::Email { address } => address.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut body = format!(
        "{}\n\nPolicy: {} (step {}{})\nTo: {}\n",
        text(n, copy),
        n.policy_name,
        n.step,
        if n.round > 0 {
            format!(", pass {}", n.round + 1)
        } else {
            String::new()
        },
        who(&n.to)
    );
    if !n.cc.is_empty() {
        body.push_str(&format!("Copy: {}\n", who(&n.cc)));
    }
    if let Some(d) = &n.alert.detail {
        body.push_str(&format!("\n{d}\n"));
    }
    body.push_str(&format!("\n{url}\n"));
    let html = format!(
        "<p>{}</p><pre>{}</pre><p><a href=\"{}\">Open the alert</a></p>",
        html_escape(&text(n, copy)),
        html_escape(&body),
        html_escape(&url)
    );
    EmailContent {
        subject: format!(
            "{}[Vigie] {}",
            if copy { "Copy: " } else { "" },
            n.headline()
        ),
        text: body,
        html,
    }
}

/// Why a recipient cannot be sent a notice (recorded `failed`, never retried).
pub type Undeliverable = String;

/// Renders `n` for one recipient. `channels`: the tenant's; `mail_from`: the sender of
/// e-mails to people (an e-mail channel's recipients use the channel's own sender).
pub fn prepare(
    n: &Notice,
    recipient: &Recipient,
    copy: bool,
    channels: &[NotificationChannel],
    mail_from: &str,
    console_base: &str,
    now_s: i64,
) -> Result<(Notification, Option<ChannelKind>), Undeliverable> {
    let escalation_id = || ChannelId::parse("escalation").expect("a valid channel id");
    let mail = |to: Vec<String>| Email {
        channel_id: escalation_id(),
        event_id: n.notice_id.clone(),
        to,
        from: mail_from.to_owned(),
        content: email(n, copy, console_base),
    };
    match recipient {
        Recipient::Channel { channel_id } => {
            let channel = channels
                .iter()
                .find(|c| c.id.as_str() == channel_id)
                .ok_or_else(|| format!("channel {channel_id} does not exist (any more)"))?;
            let http = |url: &str, body: String, headers| {
                Notification::Http(HttpRequest {
                    channel_id: channel.id.clone(),
                    event_id: n.notice_id.clone(),
                    url: url.to_owned(),
                    headers,
                    body,
                })
            };
            let line = text(n, copy);
            let notification = match &channel.kind {
                ChannelKind::Webhook { url, secret } => {
                    let body = webhook_body(n, copy, console_base).to_string();
                    let signature = signature_header(secret.expose(), now_s, body.as_bytes());
                    http(
                        url,
                        body,
                        vec![
                            (SIGNATURE_HEADER, signature),
                            (EVENT_ID_HEADER, n.notice_id.clone()),
                        ],
                    )
                }
                ChannelKind::Slack { webhook_url } => http(
                    webhook_url,
                    json!({"text": format!("{line}\n<{}|Open the alert>", console_url(console_base, n))})
                        .to_string(),
                    Vec::new(),
                ),
                ChannelKind::Teams { webhook_url } => http(
                    webhook_url,
                    json!({"text": format!("{line} — {}", console_url(console_base, n))})
                        .to_string(),
                    Vec::new(),
                ),
                ChannelKind::Email { to, from } => Notification::Email(Email {
                    channel_id: channel.id.clone(),
                    event_id: n.notice_id.clone(),
                    to: to.clone(),
                    from: from.clone(),
                    content: email(n, copy, console_base),
                }),
            };
            Ok((notification, Some(channel.kind.clone())))
        }
        Recipient::User {
            user_id,
            address: Some(a),
        } => {
            let _ = user_id;
            Ok((Notification::Email(mail(vec![a.clone()])), None))
        }
        Recipient::User { user_id, .. } => Err(format!(
            "user {user_id} has no e-mail address on record (or left the tenant)"
        )),
        Recipient::Email { address } => {
            Ok((Notification::Email(mail(vec![address.clone()])), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_domain::alert::{AlertFamily, Severity};
    use vigie_domain::escalation::AlertFacts;
    use vigie_domain::ids::{ClientId, DeviceId, SiteId, TenantId};

    fn notice() -> Notice {
        Notice {
            notice_id: "esc-1".into(),
            tenant_id: TenantId::parse("msp").expect("id"),
            alert: AlertFacts {
                tenant_id: TenantId::parse("msp").expect("id"),
                alert_id: "al-1".into(),
                opened_ms: 0,
                client_id: ClientId::parse("acme").expect("id"),
                site_id: SiteId::parse("hq").expect("id"),
                device_id: DeviceId::parse("dev-1").expect("id"),
                device_name: "ws-anna".into(),
                family: AlertFamily::BackupFailure,
                severity: Severity::Info,
                subject: "nightly".into(),
                detail: Some("nightly failed".into()),
                role: None,
            },
            step: 2,
            round: 0,
            policy_id: "ws".into(),
            policy_name: "Workstation backup".into(),
            to: vec![Recipient::Email {
                address: "anna@acme.example".into(),
            }],
            cc: vec![Recipient::User {
                user_id: "usr-am".into(),
                address: Some("am@msp.example".into()),
            }],
            say: Some("please switch it on".into()),
            due_ms: 0,
            at_ms: 0,
        }
    }

    #[test]
    fn people_get_an_email_with_the_instruction_and_who_else_was_told() {
        let n = notice();
        let (note, kind) = prepare(&n, &n.cc[0], true, &[], "noc@msp.example", "https://c", 0)
            .expect("deliverable");
        assert!(kind.is_none());
        let Notification::Email(e) = note else {
            panic!("an e-mail")
        };
        assert_eq!(e.to, vec!["am@msp.example".to_owned()]);
        assert_eq!(e.from, "noc@msp.example");
        assert!(
            e.content
                .subject
                .starts_with("Copy: [Vigie] [Sev 3 · escalation step 2] backup failure on ws-anna")
        );
        assert!(
            e.content.text.contains("please switch it on"),
            "{}",
            e.content.text
        );
        assert!(e.content.text.contains("To: anna@acme.example"));
        assert!(e.content.text.contains("Copy: usr-am <am@msp.example>"));
    }

    #[test]
    fn a_missing_channel_or_address_is_undeliverable() {
        let n = notice();
        let gone = Recipient::Channel {
            channel_id: "noc".into(),
        };
        assert!(prepare(&n, &gone, false, &[], "x@y.z", "", 0).is_err());
        let nobody = Recipient::User {
            user_id: "usr-x".into(),
            address: None,
        };
        assert!(prepare(&n, &nobody, false, &[], "x@y.z", "", 0).is_err());
    }
}
