//! Alert events rendered for people: one line, the webhook body, Slack, Teams, e-mail.
//!
//! Every format is built from the same parts, so the wording matches everywhere:
//!
//! ```text
//! [Sev 2 · WARNING] Disk /var at 91.2 % on srv-files-01 (acme · hq) — above 85 % since 14:05 UTC
//! [RESOLVED] Disk /var back to 62.0 % on srv-files-01 (acme · hq) — was warning, open from 14:05 to 15:25 UTC (1 h 20 min)
//! ```
//!
//! The host name and the subject come from the agent: they are cut to one short line here and
//! escaped for each format (Slack mrkdwn, HTML).

use serde::Serialize;
use serde_json::{Value, json};
use vigie_domain::alert::{AlertEvent, AlertEventKind, Severity};

/// Version of the generic webhook body; bumped only on a breaking change.
pub const WEBHOOK_BODY_VERSION: u32 = 1;

/// An e-mail ready for SES (recipients come from the channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The console page of the event's alert: `{base}/t/{tenant}/alerts/{alert_id}`.
pub fn console_url(console_base: &str, e: &AlertEvent) -> String {
    format!(
        "{}/t/{}/alerts/{}",
        console_base.trim_end_matches('/'),
        e.tenant_id,
        path_segment(&e.alert_id)
    )
}

/// The event in one line, as in a chat notification or an SMS.
pub fn line(e: &AlertEvent) -> String {
    let p = Parts::of(e, "");
    format!("{} {} ({}) — {}", p.tag, p.summary, p.placement, p.tail)
}

/// The generic webhook body (documented in the crate docs):
/// `{"version": 1, "event": <AlertEvent>, "text": <line>, "console_url": <url>}`. The event
/// carries `sev` (1, 2, 3: [`Severity::sev_level`]) next to its `severity`.
pub fn webhook_body(e: &AlertEvent, console_base: &str) -> Value {
    let mut event = json!(e);
    event["sev"] = json!(e.severity.sev_level());
    json!({
        "version": WEBHOOK_BODY_VERSION,
        "event": event,
        "text": line(e),
        "console_url": console_url(console_base, e),
    })
}

/// A Slack incoming-webhook message: a fallback `text` and Block Kit `blocks`.
pub fn slack(e: &AlertEvent, console_base: &str) -> Value {
    let p = Parts::of(e, console_base);
    let fields: Vec<Value> = p
        .fields
        .iter()
        .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(v))}))
        .collect();
    let mut button = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": "Open in Vigie"},
        "url": p.console_url,
    });
    if e.kind != AlertEventKind::Resolved && e.severity == Severity::Critical {
        button["style"] = json!("danger");
    }
    json!({
        "text": slack_escape(&format!("{} {} ({}) — {}", p.tag, p.summary, p.placement, p.tail)),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&p.title(), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&p.sentence)}},
            {"type": "section", "fields": fields},
            {"type": "actions", "elements": [button]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(&p.footer)}]},
        ],
    })
}

/// A Microsoft Teams incoming-webhook message: one Adaptive Card in the `attachments`
/// envelope Teams expects.
pub fn teams(e: &AlertEvent, console_base: &str) -> Value {
    let p = Parts::of(e, console_base);
    let color = match (e.kind, e.severity) {
        (AlertEventKind::Resolved, _) => "Good",
        (_, Severity::Critical) => "Attention",
        (_, Severity::Warning) => "Warning",
        (_, Severity::Info) => "Default",
    };
    let facts: Vec<Value> = p
        .fields
        .iter()
        .map(|(k, v)| json!({"title": k, "value": v}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": [
                    {"type": "TextBlock", "text": p.title(), "style": "heading", "weight": "Bolder",
                     "size": "Medium", "color": color, "wrap": true},
                    {"type": "TextBlock", "text": p.sentence, "wrap": true},
                    {"type": "FactSet", "facts": facts},
                    {"type": "TextBlock", "text": p.footer, "isSubtle": true, "size": "Small",
                     "wrap": true},
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "Open in Vigie", "url": p.console_url}],
            },
        }],
    })
}

/// An e-mail: subject line, plain-text body and a simple HTML body.
pub fn email(e: &AlertEvent, console_base: &str) -> EmailContent {
    let p = Parts::of(e, console_base);
    let width = p.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text = format!("{}\n\n", p.sentence);
    let mut rows = String::new();
    for (k, v) in &p.fields {
        text.push_str(&format!("{:<width$} {v}\n", format!("{k}:")));
        rows.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            html_escape(k),
            html_escape(v)
        ));
    }
    text.push_str(&format!(
        "\nOpen in Vigie: {}\n\n{}\n",
        p.console_url, p.footer
    ));
    let html = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n\
         <h2>{title}</h2>\n<p>{sentence}</p>\n<table cellpadding=\"4\">\n{rows}</table>\n\
         <p><a href=\"{url}\">Open in Vigie</a></p>\n<p style=\"color: #666; font-size: small\">{footer}</p>\n\
         </body></html>\n",
        title = html_escape(&p.title()),
        sentence = html_escape(&p.sentence),
        url = html_escape(&p.console_url),
        footer = html_escape(&p.footer),
    );
    EmailContent {
        subject: format!("{} {} ({})", p.tag, p.summary, p.placement),
        text,
        html,
    }
}

/// The pieces every format is made of.
struct Parts {
    /// `[Sev 2 · WARNING]` or `[RESOLVED]`.
    tag: String,
    /// `Disk /var at 91.2 % on srv-files-01`.
    summary: String,
    /// `acme · hq`.
    placement: String,
    /// What the one-line form says after the dash.
    tail: String,
    /// One or two sentences for bodies and cards.
    sentence: String,
    fields: Vec<(&'static str, String)>,
    footer: String,
    console_url: String,
}

impl Parts {
    fn of(e: &AlertEvent, console_base: &str) -> Self {
        let m = MetricLabel::of(&e.metric);
        let what = m.what(&e.metric, &clean(&e.subject, 64));
        let host = clean(&e.device_name, 64);
        let value = m.value(e.value);
        let threshold = m.threshold(e.threshold);
        let sev = e.severity.as_str();
        let was = e.previous_severity.map_or("", Severity::as_str);
        let dir = if e.value < e.threshold {
            "below"
        } else {
            "above"
        };
        let since = when(e.opened_ms, e.at_ms);
        let tag = match e.kind {
            AlertEventKind::Resolved => "[RESOLVED]".to_owned(),
            _ => format!("[Sev {} · {}]", e.severity.sev_level(), sev.to_uppercase()),
        };
        let detail = e.detail.as_deref().map(|d| clean(d, 200));
        let (summary, tail, sentence) = match (e.kind, &detail) {
            // Rules that know more than a number say it in their own words.
            (AlertEventKind::Resolved, Some(d)) => {
                let lasted = duration(e.at_ms - e.opened_ms);
                (
                    format!("{d} on {host}"),
                    format!(
                        "was {sev}, open from {} to {} UTC ({lasted})",
                        clock(e.opened_ms, e.at_ms),
                        clock(e.at_ms, e.at_ms)
                    ),
                    format!("On {host}: {d}. The {sev} alert lasted {lasted}."),
                )
            }
            (kind, Some(d)) => {
                let tail = match kind {
                    AlertEventKind::SeverityRaised => {
                        format!("raised from {was}; open since {since}")
                    }
                    AlertEventKind::SeverityLowered => {
                        format!("lowered from {was} to {sev}; open since {since}")
                    }
                    AlertEventKind::Reminder => format!("reminder; open since {since}"),
                    AlertEventKind::Flapping => {
                        format!("flapping since {since}; quiet until it settles")
                    }
                    AlertEventKind::Settled => format!("stable again; open since {since}"),
                    _ => format!("since {since}"),
                };
                let change = match kind {
                    AlertEventKind::SeverityRaised => format!(" (raised from {was})"),
                    AlertEventKind::SeverityLowered => format!(" (lowered from {was})"),
                    AlertEventKind::Reminder => " (reminder)".to_owned(),
                    AlertEventKind::Flapping => {
                        " (flapping: changes are not announced until it settles)".to_owned()
                    }
                    AlertEventKind::Settled => " (stable again after flapping)".to_owned(),
                    _ => String::new(),
                };
                (
                    format!("{d} on {host}"),
                    tail,
                    format!("On {host}: {d}. The alert is {sev}{change}."),
                )
            }
            (AlertEventKind::Opened, None) => (
                format!("{what} at {value} on {host}"),
                format!("{dir} {threshold} since {since}"),
                format!(
                    "{what} on {host} is at {value}, {dir} the {sev} threshold of {threshold}."
                ),
            ),
            (AlertEventKind::SeverityRaised | AlertEventKind::Reminder, None) => (
                format!("{what} at {value} on {host}"),
                format!("{dir} {threshold}, raised from {was}; open since {since}"),
                format!(
                    "{what} on {host} rose to {value}, {dir} the {sev} threshold of {threshold} \
                     (was {was})."
                ),
            ),
            (AlertEventKind::SeverityLowered, None) => (
                format!("{what} at {value} on {host}"),
                format!("lowered from {was} to {sev}; open since {since}"),
                format!(
                    "{what} on {host} eased to {value}; the alert is lowered from {was} to {sev} \
                     (threshold {threshold})."
                ),
            ),
            (AlertEventKind::Flapping, None) => (
                format!("{what} flapping on {host}"),
                format!("changing state repeatedly since {since}; quiet until it settles"),
                format!(
                    "{what} on {host} keeps changing state (now {value}, {sev} threshold \
                     {threshold}). Further changes are not announced until it is stable."
                ),
            ),
            (AlertEventKind::Settled, None) => (
                format!("{what} settled at {value} on {host}"),
                format!("stable again, still {sev}; open since {since}"),
                format!(
                    "{what} on {host} stopped flapping and is still {sev} at {value} \
                     (threshold {threshold})."
                ),
            ),
            (AlertEventKind::Resolved, None) => {
                let lasted = duration(e.at_ms - e.opened_ms);
                (
                    format!("{what} back to {value} on {host}"),
                    format!(
                        "was {sev}, open from {} to {} UTC ({lasted})",
                        clock(e.opened_ms, e.at_ms),
                        clock(e.at_ms, e.at_ms)
                    ),
                    format!(
                        "{what} on {host} is back to {value}. The {sev} alert lasted {lasted}."
                    ),
                )
            }
        };
        let mut fields = vec![
            ("Client", e.client_id.to_string()),
            ("Site", e.site_id.to_string()),
            ("Device", host),
        ];
        match detail {
            Some(d) => {
                fields.push(("What", d));
                fields.push(("Severity", sev.to_owned()));
            }
            None => {
                fields.push(("Value", value));
                fields.push(("Threshold", format!("{threshold} ({sev})")));
            }
        }
        fields.push(match e.kind {
            AlertEventKind::Resolved => (
                "Open",
                format!(
                    "{} → {} UTC ({})",
                    clock(e.opened_ms, e.opened_ms + DAY_MS),
                    clock(e.at_ms, e.opened_ms),
                    duration(e.at_ms - e.opened_ms)
                ),
            ),
            _ => ("Since", date_time(e.opened_ms)),
        });
        Self {
            tag,
            summary,
            placement: format!("{} · {}", e.client_id, e.site_id),
            tail,
            sentence,
            fields,
            footer: format!(
                "Rule {} · {} · event {}",
                clean(&e.rule_id, 64),
                e.family.as_str(),
                clean(&e.event_id, 64)
            ),
            console_url: console_url(console_base, e),
        }
    }

    /// `[Sev 2 · WARNING] Disk /var at 91.2 % on srv-files-01`.
    fn title(&self) -> String {
        format!("{} {}", self.tag, self.summary)
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Percent,
    Celsius,
    Plain,
}

/// How people call a metric.
struct MetricLabel {
    name: &'static str,
    /// Whether the subject (mount point, interface, sensor) follows the name.
    per_item: bool,
    unit: Unit,
}

impl MetricLabel {
    const TABLE: [(&'static str, Self); 9] = [
        (
            "filesystem_used_pct",
            Self::new("Disk", true, Unit::Percent),
        ),
        (
            "filesystem_inodes_used_pct",
            Self::new("Inodes", true, Unit::Percent),
        ),
        ("disk_busy_pct", Self::new("Disk busy", true, Unit::Percent)),
        ("cpu_total_pct", Self::new("CPU", false, Unit::Percent)),
        (
            "cpu_iowait_pct",
            Self::new("CPU I/O wait", false, Unit::Percent),
        ),
        ("memory_used_pct", Self::new("Memory", false, Unit::Percent)),
        ("load1", Self::new("Load", false, Unit::Plain)),
        (
            "network_utilisation_pct",
            Self::new("Network", true, Unit::Percent),
        ),
        (
            "temperature_celsius",
            Self::new("Temperature", true, Unit::Celsius),
        ),
    ];

    const fn new(name: &'static str, per_item: bool, unit: Unit) -> Self {
        Self {
            name,
            per_item,
            unit,
        }
    }

    /// The table's label, or the metric's own name for metrics it does not know.
    fn of(metric: &str) -> Self {
        Self::TABLE
            .into_iter()
            .find(|(m, _)| *m == metric)
            .map_or(Self::new("", true, Unit::Plain), |(_, label)| label)
    }

    fn what(&self, metric: &str, subject: &str) -> String {
        let name = if self.name.is_empty() {
            clean(metric, 64)
        } else {
            self.name.to_owned()
        };
        if self.per_item && !subject.is_empty() {
            format!("{name} {subject}")
        } else {
            name
        }
    }

    fn value(&self, x: f64) -> String {
        match self.unit {
            Unit::Percent => format!("{x:.1} %"),
            Unit::Celsius => format!("{x:.1} °C"),
            Unit::Plain => format!("{x:.2}"),
        }
    }

    /// Thresholds are round numbers people chose: no trailing zeros.
    fn threshold(&self, x: f64) -> String {
        if !x.is_finite() {
            return "n/a".to_owned();
        }
        let n = format!("{x:.2}");
        let n = n.trim_end_matches('0').trim_end_matches('.');
        match self.unit {
            Unit::Percent => format!("{n} %"),
            Unit::Celsius => format!("{n} °C"),
            Unit::Plain => n.to_owned(),
        }
    }
}

/// Untrusted text on one short line: control characters become spaces, long text is cut.
fn clean(s: &str, max_chars: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(s.trim(), max_chars)
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Slack mrkdwn treats `&`, `<` and `>` as control characters.
pub(crate) fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A UTC instant, broken down.
struct Utc {
    day: i64,
    year: i64,
    month: u32,
    date: u32,
    hour: i64,
    minute: i64,
}

impl Utc {
    fn at(ms: i64) -> Self {
        let s = ms.div_euclid(1000);
        let day = s.div_euclid(86_400);
        let (year, month, date) = civil_from_days(day);
        let second_of_day = s.rem_euclid(86_400);
        Self {
            day,
            year,
            month,
            date,
            hour: second_of_day / 3600,
            minute: second_of_day % 3600 / 60,
        }
    }
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let date = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, date)
}

const DAY_MS: i64 = 86_400_000;

/// `2025-03-02 14:05 UTC`.
fn date_time(ms: i64) -> String {
    format!("{} UTC", clock(ms, ms + DAY_MS))
}

/// `14:05 UTC` when `ms` falls on the same UTC day as `reference_ms`, else the full date.
fn when(ms: i64, reference_ms: i64) -> String {
    format!("{} UTC", clock(ms, reference_ms))
}

/// `14:05` when `ms` falls on the same UTC day as `reference_ms`, else `2025-03-02 14:05`.
fn clock(ms: i64, reference_ms: i64) -> String {
    let t = Utc::at(ms);
    let hm = format!("{:02}:{:02}", t.hour, t.minute);
    if t.day == Utc::at(reference_ms).day {
        hm
    } else {
        format!("{}-{:02}-{:02} {hm}", t.year, t.month, t.date)
    }
}

/// `45 s`, `12 min`, `1 h 20 min`, `2 d 3 h`.
fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{CONSOLE, event};
    use AlertEventKind::{Opened, Resolved, SeverityLowered, SeverityRaised};
    use insta::{assert_json_snapshot, assert_snapshot};

    const KINDS: [(&str, AlertEventKind); 4] = [
        ("opened", Opened),
        ("raised", SeverityRaised),
        ("lowered", SeverityLowered),
        ("resolved", Resolved),
    ];

    #[test]
    fn lines() {
        let mut all: Vec<String> = KINDS.iter().map(|(_, k)| line(&event(*k))).collect();
        let mut overnight = event(Resolved);
        (overnight.opened_ms, overnight.at_ms) = (1_740_786_600_000, 1_740_791_400_000);
        all.push(line(&overnight));
        assert_snapshot!(all.join("\n"));
    }

    #[test]
    fn webhook_bodies() {
        for (name, kind) in KINDS {
            assert_json_snapshot!(
                format!("webhook_{name}"),
                webhook_body(&event(kind), CONSOLE)
            );
        }
    }

    #[test]
    fn slack_messages() {
        for (name, kind) in KINDS {
            assert_json_snapshot!(format!("slack_{name}"), slack(&event(kind), CONSOLE));
        }
    }

    #[test]
    fn teams_cards() {
        for (name, kind) in KINDS {
            assert_json_snapshot!(format!("teams_{name}"), teams(&event(kind), CONSOLE));
        }
    }

    #[test]
    fn emails() {
        for (name, kind) in KINDS {
            let m = email(&event(kind), CONSOLE);
            let all = format!(
                "Subject: {}\n\n{}\n----- html -----\n{}",
                m.subject, m.text, m.html
            );
            assert_snapshot!(format!("email_{name}"), all);
        }
    }

    #[test]
    fn metric_labels_and_units() {
        let mut e = event(Opened);
        let mut seen = Vec::new();
        for (metric, subject, value, threshold) in [
            ("cpu_total_pct", "", 97.25, 90.0),
            ("memory_used_pct", "", 92.0, 90.0),
            ("temperature_celsius", "Package id 0", 88.5, 85.0),
            ("network_utilisation_pct", "eth0", 96.0, 90.0),
            ("load1", "", 12.5, 8.0),
            ("backup_age_hours", "nas-01", 30.0, 26.5),
        ] {
            e.metric = metric.into();
            e.subject = subject.into();
            e.value = value;
            e.threshold = threshold;
            seen.push(line(&e));
        }
        assert_snapshot!(seen.join("\n"));
        e.threshold = f64::NAN;
        assert!(line(&e).contains("above n/a since"), "{}", line(&e));
    }

    #[test]
    fn rules_with_words_say_them() {
        let mut e = event(Opened);
        e.rule_id = "tpl-device-down-service".into();
        e.family = vigie_domain::alert::AlertFamily::DeviceDown;
        e.subject = "nginx".into();
        e.metric = "finding:service".into();
        e.severity = Severity::Critical;
        (e.value, e.threshold) = (1.0, 1.0);
        e.detail = Some("nginx is failed (systemd: dead)".into());
        let mut lines = vec![line(&e)];
        let mut resolved = e.clone();
        resolved.kind = Resolved;
        resolved.at_ms = e.at_ms + 720_000;
        resolved.detail = Some("nginx is active (systemd: running)".into());
        lines.push(line(&resolved));
        let mut reminder = e.clone();
        reminder.kind = AlertEventKind::Reminder;
        reminder.metric = "finding:certificate".into();
        reminder.severity = Severity::Warning;
        reminder.previous_severity = Some(Severity::Warning);
        reminder.detail =
            Some("certificate of portal.example:443 expires in 13 days (2026-12-04)".into());
        lines.push(line(&reminder));
        let mut brute = e.clone();
        brute.detail = Some("12 failed logins from 203.0.113.9 within 5 min\r\nBcc: x".into());
        lines.push(line(&brute));
        assert_snapshot!(lines.join("\n"));
        let m = email(&e, CONSOLE);
        assert!(
            m.subject
                .contains("nginx is failed (systemd: dead) on srv-files-01"),
            "{}",
            m.subject
        );
        assert!(m.text.contains("What:"), "{}", m.text);
        assert!(!m.text.contains("Threshold:"), "{}", m.text);
        let s = slack(&e, CONSOLE);
        assert_eq!(
            s["blocks"][1]["text"]["text"],
            "On srv-files-01: nginx is failed (systemd: dead). The alert is critical."
        );
    }

    #[test]
    fn agent_supplied_text_cannot_break_out() {
        let mut e = event(Opened);
        e.device_name = "evil\r\nBcc: x@example.com <!channel> & <b>".into();
        e.subject = "/mnt/<https://phish.example|click>".into();
        let m = email(&e, CONSOLE);
        assert!(!m.subject.contains(['\r', '\n']), "{}", m.subject);
        assert!(!m.html.contains("<b>") && !m.html.contains("<https"));
        // Slack parses links and mentions in mrkdwn only; plain_text (the header) is inert.
        let s = slack(&e, CONSOLE);
        let mut mrkdwn = vec![&s["text"], &s["blocks"][1]["text"]["text"]];
        mrkdwn.extend(s["blocks"][2]["fields"].as_array().into_iter().flatten());
        for text in mrkdwn {
            let text = text.as_str().or(text["text"].as_str()).unwrap_or_default();
            assert!(!text.contains(['<', '>']), "{text}");
        }
        e.alert_id = "al/../x y".into();
        assert_eq!(
            console_url("https://console.example/", &e),
            "https://console.example/t/acme-msp/alerts/al%2F..%2Fx%20y"
        );
    }

    #[test]
    fn utc_calendar_and_durations() {
        assert_eq!(date_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(date_time(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(date_time(1_740_924_300_000), "2025-03-02 14:05 UTC");
        assert_eq!(date_time(-1), "1969-12-31 23:59 UTC");
        assert_eq!(date_time(4_102_444_799_000), "2099-12-31 23:59 UTC");
        assert_eq!(when(1_740_924_300_000, 1_740_929_100_000), "14:05 UTC");
        assert_eq!(
            when(1_740_786_600_000, 1_740_791_400_000),
            "2025-02-28 23:50 UTC"
        );
        assert_eq!(
            [45_000, 720_000, 3_600_000, 4_800_000, 183_600_000].map(duration),
            ["45 s", "12 min", "1 h", "1 h 20 min", "2 d 3 h"]
        );
        // Every day of 400 years round-trips through the month lengths.
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for day in 0..146_097 {
            assert_eq!(civil_from_days(day), (y, m, d));
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[m as usize - 1] {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }
}
