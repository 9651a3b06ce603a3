//! Where a tenant's notifications go, and which alert events each destination wants.

use std::fmt;

use crate::alert::{AlertEvent, AlertFamily, Severity};
use crate::ids::{ClientId, IdError, SiteId, TenantId, base32, random_bytes};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

/// A channel's id. Same alphabet as the domain's ids: it becomes part of storage keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ChannelId(String);

impl ChannelId {
    /// Parses and validates a channel id (`a-z`, `0-9`, `-`, `_`, at most 64 characters).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        // The domain's validator, reached through an id type with the same rules.
        TenantId::parse(s).map_err(|e| match e {
            IdError::Empty { .. } => IdError::Empty { kind: "channel id" },
            IdError::TooLong { max, .. } => IdError::TooLong {
                kind: "channel id",
                max,
            },
            IdError::BadCharacter { .. } => IdError::BadCharacter { kind: "channel id" },
        })?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId({})", self.0)
    }
}

impl<'de> Deserialize<'de> for ChannelId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The shared secret a webhook receiver uses to check `x-vigie-signature`. Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Shortest secret accepted by [`NotificationChannel::validate`].
    pub const MIN_LEN: usize = 16;

    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// A fresh secret: `whsec_` and 52 base32 characters (256 bits).
    pub fn generate() -> Self {
        Self(format!("whsec_{}", base32(&random_bytes::<32>())))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// How a channel is reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelKind {
    /// Our own JSON body, signed with the channel's secret.
    Webhook { url: String, secret: WebhookSecret },
    /// A Slack incoming webhook.
    Slack { webhook_url: String },
    /// A Microsoft Teams incoming webhook (or a Workflows "post to a channel" URL).
    Teams { webhook_url: String },
    /// E-mail, sent through SES by the AWS adapter.
    Email { to: Vec<String>, from: String },
}

/// Which events a channel wants. Empty lists mean "all".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelFilter {
    pub min_severity: Severity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<AlertFamily>,
}

impl Default for ChannelFilter {
    fn default() -> Self {
        Self {
            min_severity: Severity::Info,
            clients: Vec::new(),
            sites: Vec::new(),
            families: Vec::new(),
        }
    }
}

/// The severity an event is routed on: the higher of its severity and the one it had before.
///
/// A channel hears an alert enter its band (opened or raised to at least `min_severity`), move
/// inside it, and leave it (lowered from, or resolved at, a severity it accepts). A `resolved`
/// event carries the severity the alert had, so it reaches the channels that heard it open.
pub fn routing_severity(e: &AlertEvent) -> Severity {
    e.routing_severity()
}

/// The SNS message attributes the alerts topic carries, as the filter policies expect them.
/// `severity` is the [`routing_severity`].
pub fn message_attributes(e: &AlertEvent) -> [(&'static str, String); 7] {
    [
        ("tenant_id", e.tenant_id.to_string()),
        ("client_id", e.client_id.to_string()),
        ("site_id", e.site_id.to_string()),
        ("severity", routing_severity(e).as_str().to_owned()),
        ("family", e.family.as_str().to_owned()),
        ("kind", e.kind.as_str().to_owned()),
        ("event_id", e.event_id.clone()),
    ]
}

/// SNS refuses a filter policy whose value lists multiply to more than this.
const SNS_MAX_COMBINATIONS: usize = 150;

impl ChannelFilter {
    pub fn accepts(&self, e: &AlertEvent) -> bool {
        routing_severity(e) >= self.min_severity
            && (self.clients.is_empty() || self.clients.contains(&e.client_id))
            && (self.sites.is_empty() || self.sites.contains(&e.site_id))
            && (self.families.is_empty() || self.families.contains(&e.family))
    }

    /// Severities at or above `min_severity`, lowest first.
    fn severities(&self) -> Vec<&'static str> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .filter(|s| *s >= self.min_severity)
            .map(Severity::as_str)
            .collect()
    }
}

/// Why a channel definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelInvalid {
    #[error("the channel needs a name")]
    NoName,
    #[error("{0:?} is not an https URL (plain http is only allowed to loopback)")]
    BadUrl(String),
    #[error(
        "the webhook secret must be at least {} characters",
        WebhookSecret::MIN_LEN
    )]
    ShortSecret,
    #[error("an e-mail channel needs at least one recipient")]
    NoRecipient,
    #[error("{0:?} is not an e-mail address")]
    BadAddress(String),
    #[error(
        "group_wait_s may not exceed {} seconds",
        crate::grouping::MAX_GROUP_WAIT_S
    )]
    GroupWaitTooLong,
}

/// One destination of a tenant's notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationChannel {
    pub id: ChannelId,
    pub tenant_id: TenantId,
    pub name: String,
    pub kind: ChannelKind,
    #[serde(default)]
    pub filter: ChannelFilter,
    /// How long alerts of one site wait to be delivered together as one notification, in
    /// seconds (0: each alert at once; see [`crate::grouping`]).
    #[serde(default = "default_group_wait_s")]
    pub group_wait_s: u32,
}

fn default_group_wait_s() -> u32 {
    crate::grouping::DEFAULT_GROUP_WAIT_S
}

impl NotificationChannel {
    /// Checks what the types cannot: a name, reachable URLs, a long enough secret, addresses.
    pub fn validate(&self) -> Result<(), ChannelInvalid> {
        if self.name.trim().is_empty() {
            return Err(ChannelInvalid::NoName);
        }
        if self.group_wait_s > crate::grouping::MAX_GROUP_WAIT_S {
            return Err(ChannelInvalid::GroupWaitTooLong);
        }
        match &self.kind {
            ChannelKind::Webhook { url, secret } => {
                check_url(url)?;
                if secret.0.len() < WebhookSecret::MIN_LEN {
                    return Err(ChannelInvalid::ShortSecret);
                }
            }
            ChannelKind::Slack { webhook_url } | ChannelKind::Teams { webhook_url } => {
                check_url(webhook_url)?;
            }
            ChannelKind::Email { to, from } => {
                if to.is_empty() {
                    return Err(ChannelInvalid::NoRecipient);
                }
                for address in to.iter().chain([from]) {
                    check_address(address)?;
                }
            }
        }
        Ok(())
    }

    /// Whether this channel wants `e`. Never true for another tenant's event.
    pub fn accepts(&self, e: &AlertEvent) -> bool {
        e.tenant_id == self.tenant_id && self.filter.accepts(e)
    }

    /// The SNS subscription filter policy over the attributes of [`message_attributes`].
    ///
    /// The tenant and severity always filter; `client_id`, `site_id` and `family` only when
    /// the filter names some. When the lists would exceed SNS's 150 combinations, the widest
    /// optional ones are left out: the policy then lets more through and [`Self::accepts`]
    /// still decides.
    pub fn sns_filter_policy(&self) -> Value {
        let f = &self.filter;
        let mut optional: Vec<(&str, Vec<String>)> = [
            (
                "client_id",
                f.clients.iter().map(ToString::to_string).collect(),
            ),
            ("site_id", f.sites.iter().map(ToString::to_string).collect()),
            (
                "family",
                f.families.iter().map(|x| x.as_str().to_owned()).collect(),
            ),
        ]
        .into_iter()
        .filter(|(_, values): &(&str, Vec<String>)| !values.is_empty())
        .collect();
        let severities = f.severities();
        let combinations = |o: &[(&str, Vec<String>)]| {
            o.iter().map(|(_, v)| v.len()).product::<usize>() * severities.len()
        };
        while combinations(&optional) > SNS_MAX_COMBINATIONS {
            let widest = (0..optional.len()).max_by_key(|&i| optional[i].1.len());
            if let Some(i) = widest {
                optional.remove(i);
            }
        }
        let mut policy = Map::new();
        policy.insert("tenant_id".into(), json!([self.tenant_id.as_str()]));
        policy.insert("severity".into(), json!(severities));
        for (key, values) in optional {
            policy.insert(key.into(), json!(values));
        }
        Value::Object(policy)
    }
}

/// A filter policy no message matches: tenant ids are never empty.
fn matches_nothing() -> Value {
    json!({ "tenant_id": [""] })
}

/// The SNS filter policy of the subscription that feeds a tenant's alert events to the
/// notifier: exactly the events at least one of `channels` asks for.
///
/// SNS accepts one subscription per (topic, queue), so the channels of a tenant share one
/// subscription of the notify queue to the tenant's topic. With no channel its policy matches
/// nothing, so a tenant without channels costs the notifier nothing; with one it is that
/// channel's [`NotificationChannel::sns_filter_policy`]; with several, their union as one flat
/// policy (the lowest severity; a client, site or family list only where every channel has
/// one). A union can let through an event no single channel wants (critical of client A and
/// warning of client B pass "warning+ of A or B"), never fewer;
/// [`NotificationChannel::accepts`] then decides per channel. (`$or` policies would be exact,
/// but their complexity accounting differs between SNS and the emulators.)
pub fn tenant_filter_policy(channels: &[NotificationChannel]) -> Value {
    match channels {
        [] => matches_nothing(),
        [only] => only.sns_filter_policy(),
        _ => union(channels),
    }
}

/// One flat policy letting through at least everything any of `channels` accepts.
fn union(channels: &[NotificationChannel]) -> Value {
    let Some(first) = channels.first() else {
        return matches_nothing();
    };
    let lowest = channels
        .iter()
        .map(|c| c.filter.min_severity)
        .min()
        .unwrap_or(Severity::Info);
    // A list survives only if every channel restricts on it (else someone wants all values).
    fn merge<T: Clone + Ord>(lists: impl Iterator<Item = Vec<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for list in lists {
            if list.is_empty() {
                return Vec::new();
            }
            out.extend(list);
        }
        out.sort();
        out.dedup();
        out
    }
    let merged = NotificationChannel {
        filter: ChannelFilter {
            min_severity: lowest,
            clients: merge(channels.iter().map(|c| c.filter.clients.clone())),
            sites: merge(channels.iter().map(|c| c.filter.sites.clone())),
            families: merge(channels.iter().map(|c| c.filter.families.clone())),
        },
        ..first.clone()
    };
    merged.sns_filter_policy()
}

fn check_url(url: &str) -> Result<(), ChannelInvalid> {
    let bad = || ChannelInvalid::BadUrl(url.to_owned());
    let (rest, loopback_only) = match url.split_once("://") {
        Some(("https", rest)) => (rest, false),
        Some(("http", rest)) => (rest, true),
        _ => return Err(bad()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    let is_loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if host.is_empty() || host.contains(char::is_whitespace) || (loopback_only && !is_loopback) {
        return Err(bad());
    }
    Ok(())
}

fn check_address(address: &str) -> Result<(), ChannelInvalid> {
    let ok = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
    }) && !address.contains(|c: char| c.is_whitespace() || c == ',' || c == '<');
    if ok {
        Ok(())
    } else {
        Err(ChannelInvalid::BadAddress(address.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertEventKind;
    use crate::fixtures::event;

    fn channel(filter: ChannelFilter) -> NotificationChannel {
        NotificationChannel {
            id: ChannelId::parse("ops-slack").expect("id"),
            tenant_id: TenantId::parse("acme-msp").expect("id"),
            name: "Ops on Slack".into(),
            kind: ChannelKind::Slack {
                webhook_url: "https://hooks.slack.com/services/T0/B0/x".into(),
            },
            filter,
            group_wait_s: 0,
        }
    }

    fn warning_and_up() -> ChannelFilter {
        ChannelFilter {
            min_severity: Severity::Warning,
            ..ChannelFilter::default()
        }
    }

    #[test]
    fn filter_on_severity_client_site_and_family() {
        let opened = event(AlertEventKind::Opened);
        assert!(channel(ChannelFilter::default()).accepts(&opened));
        assert!(channel(warning_and_up()).accepts(&opened));
        let critical_only = ChannelFilter {
            min_severity: Severity::Critical,
            ..ChannelFilter::default()
        };
        assert!(!channel(critical_only).accepts(&opened));

        let other_client = ChannelFilter {
            clients: vec![ClientId::parse("globex").expect("id")],
            ..ChannelFilter::default()
        };
        assert!(!channel(other_client).accepts(&opened));
        let same_site = ChannelFilter {
            clients: vec![opened.client_id.clone()],
            sites: vec![opened.site_id.clone()],
            families: vec![AlertFamily::Resources],
            ..ChannelFilter::default()
        };
        assert!(channel(same_site.clone()).accepts(&opened));
        let other_family = ChannelFilter {
            families: vec![AlertFamily::Malware],
            ..same_site
        };
        assert!(!channel(other_family).accepts(&opened));
    }

    #[test]
    fn never_accepts_another_tenants_event() {
        let mut e = event(AlertEventKind::Opened);
        e.tenant_id = TenantId::parse("other-msp").expect("id");
        assert!(!channel(ChannelFilter::default()).accepts(&e));
    }

    #[test]
    fn channels_hear_alerts_leave_their_band() {
        let critical_only = channel(ChannelFilter {
            min_severity: Severity::Critical,
            ..ChannelFilter::default()
        });
        let raised = event(AlertEventKind::SeverityRaised);
        assert!(critical_only.accepts(&raised));
        // Lowered critical → warning: the critical channel hears it leave.
        let lowered = event(AlertEventKind::SeverityLowered);
        assert!(critical_only.accepts(&lowered));
        // Resolved carries the severity it had: warning here, so only warning channels hear it.
        let resolved = event(AlertEventKind::Resolved);
        assert_eq!(resolved.severity, Severity::Warning);
        assert!(!critical_only.accepts(&resolved));
        assert!(channel(warning_and_up()).accepts(&resolved));
        let mut info = event(AlertEventKind::Resolved);
        info.severity = Severity::Info;
        assert!(!channel(warning_and_up()).accepts(&info));
    }

    #[test]
    fn sns_policy_names_the_tenant_and_the_accepted_severities() {
        assert_eq!(
            channel(warning_and_up()).sns_filter_policy(),
            json!({"tenant_id": ["acme-msp"], "severity": ["warning", "critical"]})
        );
        let scoped = ChannelFilter {
            min_severity: Severity::Info,
            clients: vec![ClientId::parse("acme").expect("id")],
            sites: vec![],
            families: vec![AlertFamily::Resources, AlertFamily::DeviceDown],
        };
        assert_eq!(
            channel(scoped).sns_filter_policy(),
            json!({
                "tenant_id": ["acme-msp"],
                "severity": ["info", "warning", "critical"],
                "client_id": ["acme"],
                "family": ["resources", "device_down"],
            })
        );
    }

    #[test]
    fn sns_policy_stays_within_150_combinations() {
        let wide = ChannelFilter {
            min_severity: Severity::Info,
            clients: (0..10)
                .map(|i| ClientId::parse(&format!("c{i}")).expect("id"))
                .collect(),
            sites: (0..20)
                .map(|i| SiteId::parse(&format!("s{i}")).expect("id"))
                .collect(),
            families: vec![AlertFamily::Resources],
        };
        let policy = channel(wide).sns_filter_policy();
        assert!(policy.get("site_id").is_none(), "{policy}");
        assert_eq!(policy["client_id"].as_array().map(Vec::len), Some(10));
        assert_eq!(policy["family"], json!(["resources"]));
    }

    #[test]
    fn policy_and_attributes_agree_with_accepts() {
        for kind in [
            AlertEventKind::Opened,
            AlertEventKind::SeverityRaised,
            AlertEventKind::SeverityLowered,
            AlertEventKind::Resolved,
        ] {
            let e = event(kind);
            for min_severity in [Severity::Info, Severity::Warning, Severity::Critical] {
                let ch = channel(ChannelFilter {
                    min_severity,
                    ..ChannelFilter::default()
                });
                let policy = ch.sns_filter_policy();
                let passes = message_attributes(&e).iter().all(|(key, value)| {
                    policy
                        .get(*key)
                        .and_then(Value::as_array)
                        .is_none_or(|allowed| allowed.contains(&json!(value)))
                });
                assert_eq!(passes, ch.accepts(&e), "{kind:?} at {min_severity:?}");
            }
        }
    }

    /// SNS's matching of exact-string lists and `$or`, as far as our policies use it.
    fn sns_matches(policy: &Value, attributes: &[(&str, String)]) -> bool {
        let Some(keys) = policy.as_object() else {
            return false;
        };
        keys.iter().all(|(key, rule)| match (key.as_str(), rule) {
            ("$or", Value::Array(branches)) => branches.iter().any(|b| sns_matches(b, attributes)),
            (_, Value::Array(allowed)) => attributes
                .iter()
                .find(|(name, _)| *name == key)
                .is_some_and(|(_, value)| allowed.contains(&json!(value))),
            _ => false,
        })
    }

    fn arbitrary_channel(seed: u64) -> NotificationChannel {
        let pick = |shift: u64, n: u64| (seed >> shift) % n;
        let severities = [Severity::Info, Severity::Warning, Severity::Critical];
        let clients = ["acme", "globex", "initech"];
        let sites = ["hq", "lab"];
        let families = [
            AlertFamily::Resources,
            AlertFamily::DeviceDown,
            AlertFamily::Malware,
        ];
        let subset = |bits: u64, n: usize| (0..n).filter(move |i| bits & (1 << i) != 0);
        channel(ChannelFilter {
            min_severity: severities[pick(0, 3) as usize],
            clients: subset(pick(2, 8), 3)
                .map(|i| ClientId::parse(clients[i]).expect("id"))
                .collect(),
            sites: subset(pick(5, 4), 2)
                .map(|i| SiteId::parse(sites[i]).expect("id"))
                .collect(),
            families: subset(pick(7, 8), 3).map(|i| families[i]).collect(),
        })
    }

    fn arbitrary_event(seed: u64) -> AlertEvent {
        let kinds = [
            AlertEventKind::Opened,
            AlertEventKind::SeverityRaised,
            AlertEventKind::SeverityLowered,
            AlertEventKind::Resolved,
        ];
        let mut e = event(kinds[(seed % 4) as usize]);
        e.client_id =
            ClientId::parse(["acme", "globex", "initech"][(seed >> 2) as usize % 3]).expect("id");
        e.site_id = SiteId::parse(["hq", "lab"][(seed >> 4) as usize % 2]).expect("id");
        e.family = [
            AlertFamily::Resources,
            AlertFamily::DeviceDown,
            AlertFamily::Malware,
        ][(seed >> 5) as usize % 3];
        e
    }

    #[test]
    fn a_tenant_without_channels_receives_nothing() {
        let policy = tenant_filter_policy(&[]);
        for kind in [AlertEventKind::Opened, AlertEventKind::Resolved] {
            assert!(!sns_matches(&policy, &message_attributes(&event(kind))));
        }
        let one = channel(warning_and_up());
        assert_eq!(
            tenant_filter_policy(std::slice::from_ref(&one)),
            one.sns_filter_policy()
        );
    }

    proptest::proptest! {
        /// The tenant's subscription lets through every event some channel accepts; with one
        /// channel, exactly those; and it is a valid SNS policy (at most 150 combinations).
        #[test]
        fn tenant_policy_passes_what_some_channel_accepts(
            channel_seeds in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..12),
            event_seed in proptest::prelude::any::<u64>(),
        ) {
            let channels: Vec<_> = channel_seeds.iter().map(|s| arbitrary_channel(*s)).collect();
            let e = arbitrary_event(event_seed);
            let policy = tenant_filter_policy(&channels);
            let passes = sns_matches(&policy, &message_attributes(&e));
            let wanted = channels.iter().any(|c| c.accepts(&e));
            if channels.len() < 2 {
                proptest::prop_assert_eq!(passes, wanted, "{}", policy);
            } else {
                proptest::prop_assert!(passes || !wanted, "{}", policy);
            }
            let combinations: usize = policy
                .as_object()
                .map(|keys| keys.values().filter_map(Value::as_array).map(Vec::len).product())
                .unwrap_or(0);
            proptest::prop_assert!(combinations <= SNS_MAX_COMBINATIONS);
        }
    }

    #[test]
    fn several_channels_share_their_union() {
        let scoped = |severity, client: &str, families: Vec<AlertFamily>| {
            channel(ChannelFilter {
                min_severity: severity,
                clients: vec![ClientId::parse(client).expect("id")],
                families,
                ..ChannelFilter::default()
            })
        };
        let policy = tenant_filter_policy(&[
            scoped(Severity::Critical, "acme", vec![AlertFamily::Malware]),
            scoped(Severity::Warning, "globex", vec![]),
        ]);
        // Clients listed by both channels survive; families only by one do not.
        assert_eq!(
            policy,
            json!({
                "tenant_id": ["acme-msp"],
                "severity": ["warning", "critical"],
                "client_id": ["acme", "globex"],
            })
        );
    }

    #[test]
    fn validation_and_serde() {
        assert!(channel(ChannelFilter::default()).validate().is_ok());
        let mut ch = channel(ChannelFilter::default());
        for (url, ok) in [
            ("http://127.0.0.1:8080/hook", true),
            ("http://localhost/hook", true),
            ("http://[::1]:9/x", true),
            ("http://hooks.example.com/x", false),
            ("http://127.0.0.1.evil.example/x", false),
            ("ftp://example.com", false),
            ("https://", false),
        ] {
            ch.kind = ChannelKind::Teams {
                webhook_url: url.into(),
            };
            assert_eq!(ch.validate().is_ok(), ok, "{url}");
        }
        ch.kind = ChannelKind::Webhook {
            url: "https://example.com/hook".into(),
            secret: WebhookSecret::new("short"),
        };
        assert_eq!(ch.validate(), Err(ChannelInvalid::ShortSecret));
        ch.kind = ChannelKind::Email {
            to: vec!["ops@acme.example".into(), "not an address".into()],
            from: "alerts@vigie.example".into(),
        };
        assert!(matches!(ch.validate(), Err(ChannelInvalid::BadAddress(_))));

        let secret = WebhookSecret::generate();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(…)");
        ch.kind = ChannelKind::Webhook {
            url: "https://example.com/hook".into(),
            secret,
        };
        assert!(ch.validate().is_ok());
        let text = serde_json::to_string(&ch).expect("json");
        assert!(text.contains(r#""type":"webhook""#), "{text}");
        let back: NotificationChannel = serde_json::from_str(&text).expect("json");
        assert_eq!(back, ch);
        assert!(serde_json::from_str::<ChannelId>(r#""Bad#id""#).is_err());
    }
}
