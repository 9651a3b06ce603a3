//! Grouped delivery (the rules are in `vigie_domain::grouping`): a channel with a
//! `group_wait_s` receives the alerts of one site arriving together as one notification.
//!
//! - **Offer.** An event for such a channel is claimed in the delivery log as usual, then opens
//!   the (tenant, site, channel) group or joins the open one, and is recorded `grouped` (so a
//!   redelivered event is done at once and never joins a later group). The event that opens a
//!   group also sends its flush message, delayed by the wait; a redelivery of that event sends
//!   it again if the group is still open (a second flush finds the group delivered).
//! - **Flush.** The flush message closes the group (no member joins after) and delivers it as
//!   one notification, claimed in the delivery log under the group's id: exactly once, retried
//!   with the same backoff as events, one notification counted in the usage.
//!
//! The webhook body of a group (version 1):
//!
//! ```json
//! { "version": 1,
//!   "group": { "group_id": "grp-…", "tenant_id": "…", "client_id": "…", "site_id": "…",
//!              "count": 5, "opened_ms": 1740924300000 },
//!   "alerts": [ <AlertEvent with "sev">, … ],
//!   "text": "5 alerts on site hq (acme)\n[Sev 1 · CRITICAL] …",
//!   "console_url": "https://console.example/t/acme-msp/alerts" }
//! ```
//!
//! signed like an event's body, with `x-vigie-event-id` set to the group id.

use serde_json::{Value, json};
use tracing::{info, warn};
use vigie_domain::alert::AlertEvent;
use vigie_domain::clock::Clock;
use vigie_domain::grouping::{Admission, AlertGroup, AlertGroups, GroupRef, admit, group_title};
use vigie_domain::notification::{ChannelKind, NotificationChannel};
use vigie_domain::ports::{
    ChannelStore, Claim, DeadLetters, DeliveryLog, DeliveryRecord, DeliveryUsage, Mailer,
    RetryQueue, StoreError,
};
use vigie_domain::usage::ChannelType;

use crate::deliver::{Email, HttpRequest, Notification};
use crate::render::{self, EmailContent, html_escape, slack_escape};
use crate::service::{CLAIM_LEASE_MS, Notifier};
use crate::sign::{EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header};

/// Most alerts a chat message lists one by one (the webhook body has them all).
const LISTED: usize = 20;

/// What offering an event to a channel's group did, as the notifier reports it per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// In a group (now, or already): nothing more for this event.
    Grouped,
    /// Another notifier holds the event's claim: try again later.
    Busy,
}

/// One line per alert: the line its own notification would have had.
fn lines(group: &AlertGroup) -> Vec<String> {
    group.members.iter().map(render::line).collect()
}

fn console(console_base: &str, group: &AlertGroup) -> String {
    let tenant = group
        .members
        .first()
        .map_or_else(String::new, |m| m.tenant_id.to_string());
    format!("{}/t/{tenant}/alerts", console_base.trim_end_matches('/'))
}

/// The webhook body of a group (see the module docs).
pub fn webhook_body(group: &AlertGroup, console_base: &str) -> Value {
    let first = group.members.first();
    let alerts: Vec<Value> = group
        .members
        .iter()
        .map(|m| {
            let mut v = json!(m);
            v["sev"] = json!(m.severity.sev_level());
            v
        })
        .collect();
    let mut text = group_title(&group.members);
    for line in lines(group) {
        text.push('\n');
        text.push_str(&line);
    }
    json!({
        "version": render::WEBHOOK_BODY_VERSION,
        "group": {
            "group_id": group.group_id,
            "tenant_id": first.map(|m| &m.tenant_id),
            "client_id": first.map(|m| &m.client_id),
            "site_id": first.map(|m| &m.site_id),
            "count": group.members.len(),
            "opened_ms": group.opened_ms,
        },
        "alerts": alerts,
        "text": text,
        "console_url": console(console_base, group),
    })
}

/// The notification of a group for `channel`; webhooks are signed at `now_s`.
pub fn prepare_group(
    channel: &NotificationChannel,
    group: &AlertGroup,
    console_base: &str,
    now_s: i64,
) -> Notification {
    let title = group_title(&group.members);
    let listed: Vec<String> = lines(group).into_iter().take(LISTED).collect();
    let more = group.members.len().saturating_sub(LISTED);
    let url = console(console_base, group);
    let http = |url: &str, body: String, headers| {
        Notification::Http(HttpRequest {
            channel_id: channel.id.clone(),
            event_id: group.group_id.clone(),
            url: url.to_owned(),
            headers,
            body,
        })
    };
    match &channel.kind {
        ChannelKind::Webhook { url, secret } => {
            let body = webhook_body(group, console_base).to_string();
            let signature = signature_header(secret.expose(), now_s, body.as_bytes());
            let headers = vec![
                (SIGNATURE_HEADER, signature),
                (EVENT_ID_HEADER, group.group_id.clone()),
            ];
            http(url, body, headers)
        }
        ChannelKind::Slack { webhook_url } => {
            let mut list: String = listed
                .iter()
                .map(|l| format!("• {}\n", slack_escape(l)))
                .collect();
            if more > 0 {
                list.push_str(&format!("… and {more} more\n"));
            }
            let body = json!({
                "text": slack_escape(&title),
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": title}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": list}},
                    {"type": "actions", "elements": [{"type": "button",
                        "text": {"type": "plain_text", "text": "Open in Vigie"}, "url": url}]},
                ],
            });
            http(webhook_url, body.to_string(), Vec::new())
        }
        ChannelKind::Teams { webhook_url } => {
            let mut blocks = vec![
                json!({"type": "TextBlock", "text": title, "style": "heading",
                "weight": "Bolder", "size": "Medium", "wrap": true}),
            ];
            blocks.extend(
                listed
                    .iter()
                    .map(|l| json!({"type": "TextBlock", "text": l, "wrap": true})),
            );
            if more > 0 {
                blocks.push(json!({"type": "TextBlock", "text": format!("… and {more} more")}));
            }
            let body = json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard", "version": "1.4", "msteams": {"width": "Full"},
                        "body": blocks,
                        "actions": [{"type": "Action.OpenUrl", "title": "Open in Vigie", "url": url}],
                    },
                }],
            });
            http(webhook_url, body.to_string(), Vec::new())
        }
        ChannelKind::Email { to, from } => {
            let mut text = format!("{title}\n\n");
            let mut items = String::new();
            for l in lines(group) {
                text.push_str(&format!("- {l}\n"));
                items.push_str(&format!("<li>{}</li>\n", html_escape(&l)));
            }
            text.push_str(&format!("\nOpen in Vigie: {url}\n"));
            let html = format!(
                "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n<h2>{}</h2>\n\
                 <ul>\n{items}</ul>\n<p><a href=\"{}\">Open in Vigie</a></p>\n</body></html>\n",
                html_escape(&title),
                html_escape(&url)
            );
            Notification::Email(Email {
                channel_id: channel.id.clone(),
                event_id: group.group_id.clone(),
                to: to.clone(),
                from: from.clone(),
                content: EmailContent {
                    subject: title,
                    text,
                    html,
                },
            })
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
    /// Puts `event` into `channel`'s current group of its site (opening one if needed).
    pub(crate) async fn offer(
        &self,
        channel: &NotificationChannel,
        event: &AlertEvent,
    ) -> Result<Offered, StoreError> {
        let id = channel.id.as_str();
        let now = self.clock.now_ms();
        match self
            .log
            .claim(&event.tenant_id, &event.event_id, id, now, CLAIM_LEASE_MS)
            .await?
        {
            Claim::Done => return Ok(Offered::Grouped),
            Claim::Busy => return Ok(Offered::Busy),
            Claim::Claimed { .. } => {}
        }
        let mut group_id = None;
        for _ in 0..4 {
            let current = self
                .groups
                .current(&event.tenant_id, &event.site_id, id)
                .await?;
            match admit(current.as_ref(), event, id, channel.group_wait_s, now) {
                Admission::Immediate => return Ok(Offered::Grouped),
                Admission::Member { group_id: g } => {
                    // The opener, redelivered: its flush may not have left.
                    if let Some(group) = current.filter(|g| !g.closed)
                        && g == vigie_domain::grouping::group_id(event, id)
                    {
                        self.schedule(event, id, &group.group_id, channel.group_wait_s)
                            .await?;
                    }
                    group_id = Some(g);
                    break;
                }
                Admission::Join { group_id: g } => {
                    if self.groups.join(&event.tenant_id, &g, event).await? {
                        group_id = Some(g);
                        break;
                    }
                }
                Admission::Open {
                    group_id: g,
                    flush_at_ms,
                } => {
                    let group = AlertGroup {
                        group_id: g.clone(),
                        opened_ms: now,
                        flush_at_ms,
                        closed: false,
                        members: vec![event.clone()],
                    };
                    let replacing = current.as_ref().map(|c| c.group_id.as_str());
                    if self
                        .groups
                        .open(&event.tenant_id, &event.site_id, id, &group, replacing)
                        .await?
                    {
                        self.schedule(event, id, &g, channel.group_wait_s).await?;
                        group_id = Some(g);
                        break;
                    }
                }
            }
        }
        let Some(group_id) = group_id else {
            // Other notifiers kept moving the group: the claim lapses and the event comes back.
            warn!(event_id = %event.event_id, channel = id, "group kept changing; retrying later");
            return Ok(Offered::Busy);
        };
        info!(event = "grouped", tenant_id = %event.tenant_id, event_id = %event.event_id, channel = id, group_id = %group_id, "alert joined a group");
        self.log
            .record(
                &event.tenant_id,
                &event.event_id,
                id,
                DeliveryUsage {
                    client: &event.client_id,
                    channel_type: ChannelType::of(&channel.kind),
                },
                &DeliveryRecord {
                    status: "grouped",
                    response_code: None,
                    detail: format!("in group {group_id}"),
                },
                self.clock.now_ms(),
            )
            .await?;
        Ok(Offered::Grouped)
    }

    async fn schedule(
        &self,
        event: &AlertEvent,
        channel: &str,
        group_id: &str,
        wait_s: u32,
    ) -> Result<(), StoreError> {
        let flush = GroupRef {
            tenant_id: event.tenant_id.clone(),
            channel_id: channel.to_owned(),
            group_id: group_id.to_owned(),
        };
        self.groups.schedule_flush(&flush, wait_s).await
    }

    /// Closes a group and delivers it as one notification. True when it must be retried.
    pub(crate) async fn flush(&self, flush: &GroupRef, last: bool) -> Result<bool, StoreError> {
        let tenant = &flush.tenant_id;
        let Some(group) = self.groups.close(tenant, &flush.group_id).await? else {
            warn!(group_id = %flush.group_id, "flush of an unknown group dropped");
            return Ok(false);
        };
        let channels = self.channels_of(tenant).await?;
        let Some(channel) = channels
            .iter()
            .find(|c| c.id.as_str() == flush.channel_id && &c.tenant_id == tenant)
        else {
            warn!(group_id = %flush.group_id, channel = %flush.channel_id, "the group's channel is gone");
            return Ok(false);
        };
        let Some(first) = group.members.first() else {
            return Ok(false);
        };
        let now = self.clock.now_ms();
        let attempt = match self
            .log
            .claim(
                tenant,
                &group.group_id,
                &flush.channel_id,
                now,
                CLAIM_LEASE_MS,
            )
            .await?
        {
            Claim::Done => return Ok(false),
            Claim::Busy => return Ok(true),
            Claim::Claimed { attempt } => attempt,
        };
        let notification = prepare_group(channel, &group, &self.console_base, now / 1000);
        let mut record = self.send(notification).await;
        if last && record.status == "retrying" {
            record.status = "exhausted";
        }
        info!(
            event = "delivery",
            tenant_id = %tenant,
            group_id = %group.group_id,
            channel = %flush.channel_id,
            alerts = group.members.len(),
            attempt,
            status = record.status,
            "{}",
            record.detail
        );
        self.log
            .record(
                tenant,
                &group.group_id,
                &flush.channel_id,
                DeliveryUsage {
                    client: &first.client_id,
                    channel_type: ChannelType::of(&channel.kind),
                },
                &record,
                self.clock.now_ms(),
            )
            .await?;
        Ok(matches!(record.status, "retrying" | "exhausted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_domain::alert::AlertEventKind;
    use vigie_domain::fixtures::event;
    use vigie_domain::ids::TenantId;
    use vigie_domain::notification::{ChannelFilter, ChannelId, WebhookSecret};

    fn group(n: usize) -> AlertGroup {
        AlertGroup {
            group_id: "grp-x".into(),
            opened_ms: 1,
            flush_at_ms: 2,
            closed: true,
            members: (0..n)
                .map(|i| {
                    let mut e = event(AlertEventKind::Opened);
                    e.event_id = format!("evt-{i}");
                    e
                })
                .collect(),
        }
    }

    fn channel(kind: ChannelKind) -> NotificationChannel {
        NotificationChannel {
            id: ChannelId::parse("ops").expect("id"),
            tenant_id: TenantId::parse("acme-msp").expect("id"),
            name: "ops".into(),
            kind,
            filter: ChannelFilter::default(),
            group_wait_s: 30,
        }
    }

    #[test]
    fn a_group_is_one_signed_webhook_listing_every_alert() {
        let secret = "whsec_group_secret_0123456";
        let c = channel(ChannelKind::Webhook {
            url: "https://hooks.example/x".into(),
            secret: WebhookSecret::new(secret),
        });
        let Notification::Http(req) =
            prepare_group(&c, &group(3), "https://c.example", 1_740_924_300)
        else {
            panic!("http");
        };
        let body: Value = serde_json::from_str(&req.body).expect("json");
        assert_eq!(body["alerts"].as_array().map(Vec::len), Some(3));
        assert_eq!(body["group"]["count"], 3);
        assert_eq!(body["alerts"][0]["sev"], 2);
        assert!(
            body["text"]
                .as_str()
                .expect("text")
                .starts_with("3 alerts on site hq (acme)")
        );
        assert!(req.headers.contains(&(EVENT_ID_HEADER, "grp-x".to_owned())));
        let sig = &req
            .headers
            .iter()
            .find(|(h, _)| *h == SIGNATURE_HEADER)
            .expect("signed")
            .1;
        assert!(
            crate::sign::verify(
                secret.as_bytes(),
                sig,
                req.body.as_bytes(),
                1_740_924_300,
                300
            )
            .is_ok()
        );
    }

    #[test]
    fn chat_and_mail_say_how_many_alerts_on_which_site() {
        for kind in [
            ChannelKind::Slack {
                webhook_url: "https://hooks.slack.com/services/x".into(),
            },
            ChannelKind::Teams {
                webhook_url: "https://x.webhook.office.com/x".into(),
            },
        ] {
            let Notification::Http(req) = prepare_group(&channel(kind), &group(25), "https://c", 0)
            else {
                panic!("http");
            };
            assert!(
                req.body.contains("25 alerts on site hq (acme)"),
                "{}",
                req.body
            );
            assert!(req.body.contains("and 5 more"));
        }
        let Notification::Email(mail) = prepare_group(
            &channel(ChannelKind::Email {
                to: vec!["a@x.example".into()],
                from: "v@x.example".into(),
            }),
            &group(2),
            "https://c",
            0,
        ) else {
            panic!("email");
        };
        assert_eq!(mail.content.subject, "2 alerts on site hq (acme)");
        assert_eq!(mail.content.text.matches("\n- ").count(), 2);
    }
}
