//! The one place that builds storage keys. Every DynamoDB key, and every S3 object key that
//! holds tenant data, is made here; adapters never format a key themselves.
//!
//! Tenant-scoped records live under the tenant's partition `T#<tenant>`, so a query can only
//! ever see one tenant. Two records are reached by an identity the caller presents instead of a
//! tenant — a device (by its device id, to verify a signature) and an enrolment token (by its
//! token id) — and both carry their tenant inside; the adapter that reads them hands back the
//! tenant from the record, never from the request.
//!
//! See ARCHITECTURE.md for the full list of access patterns.

use crate::ids::{ClientId, DeviceId, EnrollmentTokenId, SiteId, TenantId};
use crate::incident::IncidentId;
use crate::usage::{Day, Month};

/// Separator between key parts. Ids cannot contain it (see [`crate::ids`]).
pub const SEP: char = '#';

/// A table key: partition and sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableKey {
    pub pk: String,
    pub sk: String,
}

/// Key of the `gsi1` index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexKey {
    pub gsi1pk: String,
    pub gsi1sk: String,
}

fn key(pk: String, sk: String) -> TableKey {
    TableKey { pk, sk }
}

/// Keys inside one tenant. Obtaining one requires a [`TenantId`]: there is no way to build a
/// tenant-scoped key without naming the tenant.
#[derive(Debug, Clone, Copy)]
pub struct TenantKeys<'a> {
    tenant: &'a TenantId,
}

impl<'a> TenantKeys<'a> {
    pub fn new(tenant: &'a TenantId) -> Self {
        Self { tenant }
    }

    fn pk(&self) -> String {
        format!("T{SEP}{}", self.tenant)
    }

    /// The tenant's own record.
    pub fn tenant(&self) -> TableKey {
        key(self.pk(), "TENANT".into())
    }

    /// How many devices the tenant has enrolled (and not revoked): checked against its plan.
    pub fn device_count(&self) -> TableKey {
        key(self.pk(), "DEVICECOUNT".into())
    }

    pub fn client(&self, client: &ClientId) -> TableKey {
        key(self.pk(), format!("CLIENT{SEP}{client}"))
    }

    /// Prefix of every client-company record, for `begins_with` queries.
    pub fn clients_prefix(&self) -> (String, String) {
        (self.pk(), format!("CLIENT{SEP}"))
    }

    pub fn site(&self, client: &ClientId, site: &SiteId) -> TableKey {
        key(self.pk(), format!("SITE{SEP}{client}{SEP}{site}"))
    }

    /// Where the sites of one client company sort (`Query begins_with`).
    pub fn sites_prefix(&self, client: &ClientId) -> (String, String) {
        (self.pk(), format!("SITE{SEP}{client}{SEP}"))
    }

    /// The index entry listing a device under its tenant, client company and site.
    pub fn device_index(&self, client: &ClientId, site: &SiteId, device: &DeviceId) -> IndexKey {
        IndexKey {
            gsi1pk: format!("{}{SEP}DEVICES", self.pk()),
            gsi1sk: format!("C{SEP}{client}{SEP}S{SEP}{site}{SEP}D{SEP}{device}"),
        }
    }

    /// `gsi1` partition of the tenant's devices and the sort-key prefix narrowing it to one
    /// client company (and site).
    pub fn devices_query(
        &self,
        client: Option<&ClientId>,
        site: Option<&SiteId>,
    ) -> (String, String) {
        let pk = format!("{}{SEP}DEVICES", self.pk());
        let prefix = match (client, site) {
            (Some(c), Some(s)) => format!("C{SEP}{c}{SEP}S{SEP}{s}{SEP}"),
            (Some(c), None) => format!("C{SEP}{c}{SEP}"),
            _ => format!("C{SEP}"),
        };
        (pk, prefix)
    }

    /// `gsi1` partition of the tenant's enrolment tokens.
    pub fn enrollment_tokens_partition(&self) -> String {
        format!("{}{SEP}ENROLL", self.pk())
    }

    /// The index entry listing an enrolment token under its tenant.
    pub fn enrollment_token_index(&self, created_ms: i64, token: &EnrollmentTokenId) -> IndexKey {
        IndexKey {
            gsi1pk: self.enrollment_tokens_partition(),
            gsi1sk: format!("{created_ms:015}{SEP}{token}"),
        }
    }

    /// Partition holding one device's evaluation state: rule states and the event outbox.
    /// One query reads everything the evaluator needs about the device.
    pub fn device_state_partition(&self, device: &DeviceId) -> String {
        format!("{}{SEP}D{SEP}{device}", self.pk())
    }

    /// State of one rule on one item of a device.
    pub fn rule_state(&self, device: &DeviceId, rule: &str, subject: &str) -> TableKey {
        key(
            self.device_state_partition(device),
            format!("STATE{SEP}{rule}{SEP}{subject}"),
        )
    }

    /// An alert event not yet published (transactional outbox).
    pub fn outbox_event(&self, device: &DeviceId, event_id: &str) -> TableKey {
        key(
            self.device_state_partition(device),
            format!("OUTBOX{SEP}{event_id}"),
        )
    }

    /// An alert a maintenance window holds back (its latest event, the template of the one
    /// announcement owed when the window ends). In the device's partition, so the evaluator's
    /// one query reads it with the states.
    pub fn held_alert(&self, device: &DeviceId, alert_id: &str) -> TableKey {
        key(
            self.device_state_partition(device),
            format!("HELD{SEP}{alert_id}"),
        )
    }

    /// A maintenance window of the tenant.
    pub fn maintenance_window(&self, window_id: &str) -> TableKey {
        key(self.pk(), format!("WINDOW{SEP}{window_id}"))
    }

    /// Prefix of every maintenance window of the tenant.
    pub fn maintenance_windows_prefix(&self) -> (String, String) {
        (self.pk(), format!("WINDOW{SEP}"))
    }

    /// An escalation policy of the tenant.
    pub fn escalation_policy(&self, policy_id: &str) -> TableKey {
        key(self.pk(), format!("ESCPOLICY{SEP}{policy_id}"))
    }

    /// Prefix of every escalation policy of the tenant.
    pub fn escalation_policies_prefix(&self) -> (String, String) {
        (self.pk(), format!("ESCPOLICY{SEP}"))
    }

    /// A user group of the tenant (people an escalation step notifies together).
    pub fn user_group(&self, group_id: &str) -> TableKey {
        key(self.pk(), format!("USERGROUP{SEP}{group_id}"))
    }

    /// Prefix of every user group of the tenant.
    pub fn user_groups_prefix(&self) -> (String, String) {
        (self.pk(), format!("USERGROUP{SEP}"))
    }

    /// A business-hours calendar of the tenant.
    pub fn business_calendar(&self, calendar_id: &str) -> TableKey {
        key(self.pk(), format!("CALENDAR{SEP}{calendar_id}"))
    }

    /// Prefix of every business-hours calendar of the tenant.
    pub fn business_calendars_prefix(&self) -> (String, String) {
        (self.pk(), format!("CALENDAR{SEP}"))
    }

    /// An on-call schedule of the tenant.
    pub fn oncall_schedule(&self, schedule_id: &str) -> TableKey {
        key(self.pk(), format!("ONCALL{SEP}{schedule_id}"))
    }

    /// Prefix of every on-call schedule of the tenant.
    pub fn oncall_schedules_prefix(&self) -> (String, String) {
        (self.pk(), format!("ONCALL{SEP}"))
    }

    /// The current record of an alert.
    pub fn alert(&self, alert_id: &str) -> TableKey {
        key(self.pk(), format!("ALERT{SEP}{alert_id}"))
    }

    /// One episode of an alert (from its opening to its resolution), kept for the history:
    /// sorted by opening time.
    pub fn alert_episode(&self, opened_ms: i64, alert_id: &str) -> TableKey {
        key(
            self.pk(),
            format!("EPISODE{SEP}{opened_ms:015}{SEP}{alert_id}"),
        )
    }

    /// The episodes opened in `[from_ms, to_ms)`: (partition, lowest and highest sort key).
    pub fn alert_episodes_range(&self, from_ms: i64, to_ms: i64) -> (String, String, String) {
        (
            self.pk(),
            format!("EPISODE{SEP}{:015}", from_ms.max(0)),
            format!("EPISODE{SEP}{:015}", (to_ms - 1).max(0)) + "~",
        )
    }

    /// A device's link to its parent device (the dependency map). All links of a tenant
    /// share its partition under one prefix, so the whole map is one query.
    pub fn device_parent(&self, child: &DeviceId) -> TableKey {
        key(self.pk(), format!("PARENT{SEP}{child}"))
    }

    /// The version of the tenant's dependency map: every link change moves it, conditioned on
    /// the version the change was checked against, so two concurrent changes cannot make a
    /// cycle together.
    pub fn dependency_map_version(&self) -> TableKey {
        key(self.pk(), "PARENTMAP".into())
    }

    /// The tenant's dependency links: (partition, sort-key prefix).
    pub fn device_parents_prefix(&self) -> (String, String) {
        (self.pk(), format!("PARENT{SEP}"))
    }

    /// A child's alert suppressed behind (attached to) its parent device's alert.
    pub fn suppressed_alert(&self, parent_alert_id: &str, child_alert_id: &str) -> TableKey {
        key(
            self.pk(),
            format!("SUPPRESSED{SEP}{parent_alert_id}{SEP}{child_alert_id}"),
        )
    }

    /// The alerts attached to a parent's alert: (partition, sort-key prefix).
    pub fn suppressed_alerts_prefix(&self, parent_alert_id: &str) -> (String, String) {
        (self.pk(), format!("SUPPRESSED{SEP}{parent_alert_id}{SEP}"))
    }

    /// A group of alert events waiting to go to one channel as one notification.
    pub fn alert_group(&self, group_id: &str) -> TableKey {
        key(self.pk(), format!("GROUP{SEP}{group_id}"))
    }

    /// Which group is the current one of (site, channel).
    pub fn current_group(&self, site: &SiteId, channel: &str) -> TableKey {
        key(self.pk(), format!("GROUPCUR{SEP}{site}{SEP}{channel}"))
    }

    /// The human side (acknowledgement, assignee, comments) of one episode of an alert.
    pub fn alert_work(&self, alert_id: &str, opened_ms: i64) -> TableKey {
        key(
            self.pk(),
            format!("ALERTWORK{SEP}{alert_id}{SEP}{opened_ms:015}"),
        )
    }

    /// An incident of the tenant (its whole document, with a `version`).
    pub fn incident(&self, incident: &IncidentId) -> TableKey {
        key(self.pk(), format!("INCIDENT{SEP}{incident}"))
    }

    /// The incident opened by one request with an `Idempotency-Key` (`digest`: see
    /// [`crate::incident::idempotency_digest`]): a retried request finds it instead of
    /// opening a second one.
    pub fn incident_request(&self, digest: &str) -> TableKey {
        key(self.pk(), format!("IDEMKEY{SEP}INCIDENT{SEP}{digest}"))
    }

    /// The incidents opened in `[from_ms, to_ms)`: (partition, lowest and highest sort key).
    /// Incident ids start with their opening time, so this is a key range.
    pub fn incidents_range(&self, from_ms: i64, to_ms: i64) -> (String, String, String) {
        (
            self.pk(),
            format!("INCIDENT{SEP}{}", IncidentId::lower_bound(from_ms)),
            format!("INCIDENT{SEP}{}", IncidentId::upper_bound(to_ms - 1)),
        )
    }

    /// An episode whose escalation has something due, in the escalation timer index (`gsi1`,
    /// platform-wide partitions, sorted by due time): the sweeper reads only what is due, so
    /// its cost follows due timers, not pending ones. Shard = a hash of the alert, so no
    /// partition takes every write.
    pub fn escalation_timer(&self, alert_id: &str, opened_ms: i64, due_ms: i64) -> IndexKey {
        let shard = escalation_shard(alert_id);
        IndexKey {
            gsi1pk: escalation_timer_partition(shard),
            gsi1sk: format!(
                "{due:015}{SEP}{}{SEP}{alert_id}{SEP}{opened_ms:015}",
                self.tenant,
                due = due_ms.max(0)
            ),
        }
    }

    /// A user of the tenant in the tenant's list (`gsi1`).
    pub fn user_index(&self, user_id: &str) -> IndexKey {
        IndexKey {
            gsi1pk: self.pk(),
            gsi1sk: format!("USER{SEP}{user_id}"),
        }
    }

    /// An invitation of the tenant in the tenant's list (`gsi1`).
    pub fn invitation_index(&self, invitation_id: &str) -> IndexKey {
        IndexKey {
            gsi1pk: self.pk(),
            gsi1sk: format!("INVITE{SEP}{invitation_id}"),
        }
    }

    /// The tenant's list of one kind on `gsi1` (`USER`, `INVITE`, `APIKEY`).
    pub fn index_prefix(&self, kind: &str) -> (String, String) {
        (self.pk(), format!("{kind}{SEP}"))
    }

    /// An API key of the tenant in the tenant's list (`gsi1`).
    pub fn api_key_index(&self, key_id: &str) -> IndexKey {
        IndexKey {
            gsi1pk: self.pk(),
            gsi1sk: format!("APIKEY{SEP}{key_id}"),
        }
    }

    /// The tenant's API keys on `gsi1` (`Query begins_with`).
    pub fn api_keys_index_prefix(&self) -> (String, String) {
        (self.pk(), format!("APIKEY{SEP}"))
    }

    /// Where every alert's current record sorts (`Query begins_with`).
    pub fn alerts_prefix(&self) -> (String, String) {
        (self.pk(), format!("ALERT{SEP}"))
    }

    /// The policy at one scope (`scope_key` from [`crate::policy::Scope::key`]).
    pub fn policy(&self, scope_key: &str) -> TableKey {
        key(self.pk(), format!("POLICY{SEP}{scope_key}"))
    }

    /// Prefix of every policy of the tenant.
    pub fn policies_prefix(&self) -> (String, String) {
        (self.pk(), format!("POLICY{SEP}"))
    }

    /// A notification channel of the tenant.
    pub fn channel(&self, channel: &str) -> TableKey {
        key(self.pk(), format!("CHANNEL{SEP}{channel}"))
    }

    /// Prefix of every channel of the tenant.
    pub fn channels_prefix(&self) -> (String, String) {
        (self.pk(), format!("CHANNEL{SEP}"))
    }

    /// The delivery record of one alert event to one channel. All deliveries of an event share
    /// a partition.
    pub fn delivery(&self, event_id: &str, channel: &str) -> TableKey {
        key(
            format!("{}{SEP}DELIVERY{SEP}{event_id}", self.pk()),
            format!("CHANNEL{SEP}{channel}"),
        )
    }

    /// Object key of a batch parked in the spill bucket.
    pub fn spilled_batch(&self, device: &DeviceId, seq: u64) -> String {
        format!("{}spill/{device}/{seq:020}.json", self.object_prefix())
    }

    /// Object key prefix of the tenant's data in any bucket.
    pub fn object_prefix(&self) -> String {
        format!("tenants/{}/", self.tenant)
    }

    // ---- Usage metering (see `crate::usage`) -------------------------------------------------

    /// The usage of one client company on one UTC day.
    pub fn usage_day(&self, day: Day, client: &ClientId) -> TableKey {
        key(self.pk(), format!("USAGE{SEP}{day}{SEP}{client}"))
    }

    /// Partition and inclusive sort-key bounds of the usage items of days `from..=to`.
    pub fn usage_days_range(&self, from: Day, to: Day) -> (String, String, String) {
        // Client ids are lower-case letters, digits, '-' and '_': all sort before '~'.
        (
            self.pk(),
            format!("USAGE{SEP}{from}{SEP}"),
            format!("USAGE{SEP}{to}{SEP}~"),
        )
    }

    /// Partition and sort-key prefix of the usage items of one month's days.
    pub fn usage_month_prefix(&self, month: Month) -> (String, String) {
        (self.pk(), format!("USAGE{SEP}{month}-"))
    }

    /// The immutable summary of a closed month.
    pub fn usage_closed_month(&self, month: Month) -> TableKey {
        key(self.pk(), format!("USAGECLOSED{SEP}{month}"))
    }
    // ---- end of usage metering ---------------------------------------------------------------
}

/// A device's identity record: found by the device id the agent presents, holds the tenant,
/// client company, site and public key.
pub fn device_identity(device: &DeviceId) -> TableKey {
    key(format!("DEV{SEP}{device}"), "IDENTITY".into())
}

/// An enrolment token's record: found by the token id the installer presents.
pub fn enrollment_token(token: &EnrollmentTokenId) -> TableKey {
    key(format!("ENROLL{SEP}{token}"), "TOKEN".into())
}

/// An API key's record: found by the key id the caller presents (`vk_<id>_<secret>`); holds
/// its scope (a tenant, or the platform) inside.
pub fn api_key(key_id: &str) -> TableKey {
    key(format!("APIKEY{SEP}{key_id}"), "KEY".into())
}

/// A platform-wide API key in the platform's list (`gsi1`).
pub fn platform_api_key_index(key_id: &str) -> IndexKey {
    IndexKey {
        gsi1pk: "PLATFORM".into(),
        gsi1sk: format!("APIKEY{SEP}{key_id}"),
    }
}

/// A user record: found by the user id derived from a verified identity; holds its tenant.
pub fn user_record(user_id: &str) -> TableKey {
    key(format!("USER{SEP}{user_id}"), "USER".into())
}

/// An invitation: found by the id in the code the invitee presents; holds its tenant.
pub fn invitation(invitation_id: &str) -> TableKey {
    key(format!("INVITE{SEP}{invitation_id}"), "INVITE".into())
}

/// The platform's list of tenants (the operator's view), on `gsi1`.
pub fn tenants_index(tenant: &TenantId) -> IndexKey {
    IndexKey {
        gsi1pk: "TENANTS".into(),
        gsi1sk: tenant.to_string(),
    }
}

/// Partition of [`tenants_index`].
pub const TENANTS_INDEX_PARTITION: &str = "TENANTS";

/// A device's entry in the heartbeat slot of its due time. Slots are platform-wide (the sweeper
/// reads every tenant's late devices); the entry names its tenant and device.
pub fn heartbeat_entry(slot_ms: i64, tenant: &TenantId, device: &DeviceId) -> TableKey {
    key(
        format!("HB{SEP}{slot_ms}"),
        format!("{tenant}{SEP}{device}"),
    )
}

/// Partition of one heartbeat slot.
pub fn heartbeat_slot_partition(slot_ms: i64) -> String {
    format!("HB{SEP}{slot_ms}")
}

/// Partitions of the escalation timer index.
pub const ESCALATION_SHARDS: u32 = 4;

fn escalation_shard(alert_id: &str) -> u32 {
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in alert_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % ESCALATION_SHARDS
}

/// One partition of the escalation timer index.
pub fn escalation_timer_partition(shard: u32) -> String {
    format!("ESCDUE{SEP}{shard}")
}

/// The sort-key bound of timers due at or before `due_ms` (`gsi1sk <= bound`).
pub fn escalation_timer_bound(due_ms: i64) -> String {
    format!("{:015}{SEP}~", due_ms.max(0))
}

/// The sweeper's cursor: the last slot it finished.
pub fn sweeper_cursor() -> TableKey {
    key("SWEEPER".into(), "CURSOR".into())
}

/// A device whose counting day `day` is not yet handed to the usage items. Platform-wide, like
/// the heartbeat slots: the daily close job reads the partitions of the days that ended.
pub fn usage_open_entry(day: Day, tenant: &TenantId, device: &DeviceId) -> TableKey {
    key(usage_open_partition(day), format!("{tenant}{SEP}{device}"))
}

/// Partition of the devices still counting `day`.
pub fn usage_open_partition(day: Day) -> String {
    format!("USAGEOPEN{SEP}{day}")
}

/// A tenant that has usage in `month` (written with each day handed over), so closing a month
/// lists its tenants without a scan.
pub fn usage_month_tenant(month: Month, tenant: &TenantId) -> TableKey {
    key(usage_month_partition(month), tenant.to_string())
}

/// Partition of the tenants with usage in `month`.
pub fn usage_month_partition(month: Month) -> String {
    format!("USAGEMONTH{SEP}{month}")
}

/// Splits a key built here back into its parts (for tests and diagnostics).
pub fn parts(k: &str) -> Vec<&str> {
    k.split(SEP).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9_-]{0,20}"
    }

    proptest! {
        #[test]
        fn tenant_keys_decode_back_to_their_ids(t in id(), c in id(), s in id()) {
            let tenant = TenantId::parse(&t).expect("valid");
            let client = ClientId::parse(&c).expect("valid");
            let site = SiteId::parse(&s).expect("valid");
            let k = TenantKeys::new(&tenant).site(&client, &site);
            prop_assert_eq!(parts(&k.pk), vec!["T", t.as_str()]);
            prop_assert_eq!(parts(&k.sk), vec!["SITE", c.as_str(), s.as_str()]);
        }

        #[test]
        fn two_tenants_never_share_a_partition(a in id(), b in id(), c in id()) {
            prop_assume!(a != b);
            let ta = TenantId::parse(&a).expect("valid");
            let tb = TenantId::parse(&b).expect("valid");
            let client = ClientId::parse(&c).expect("valid");
            prop_assert_ne!(TenantKeys::new(&ta).client(&client).pk, TenantKeys::new(&tb).client(&client).pk);
            let (pa, _) = TenantKeys::new(&ta).devices_query(None, None);
            let (pb, _) = TenantKeys::new(&tb).devices_query(None, None);
            prop_assert_ne!(pa, pb);
        }
    }

    #[test]
    fn usage_keys_sort_by_day_and_bound_their_range() {
        let t = TenantId::parse("msp").expect("valid");
        let keys = TenantKeys::new(&t);
        let day = |s: &str| Day::parse(s).expect("day");
        let client = ClientId::parse("zz_z-9").expect("valid");
        let (pk, lo, hi) = keys.usage_days_range(day("2025-03-01"), day("2025-03-31"));
        for inside in ["2025-03-01", "2025-03-15", "2025-03-31"] {
            let k = keys.usage_day(day(inside), &client);
            assert_eq!(k.pk, pk);
            assert!(lo <= k.sk && k.sk <= hi, "{inside}");
        }
        for outside in ["2025-02-28", "2025-04-01"] {
            let k = keys.usage_day(day(outside), &client);
            assert!(!(lo <= k.sk && k.sk <= hi), "{outside}");
        }
        let (_, prefix) = keys.usage_month_prefix(Month::parse("2025-03").expect("month"));
        assert!(
            keys.usage_day(day("2025-03-31"), &client)
                .sk
                .starts_with(&prefix)
        );
        assert!(
            !keys
                .usage_closed_month(Month::parse("2025-03").expect("m"))
                .sk
                .starts_with(&prefix)
        );
        assert_eq!(
            parts(
                &usage_open_entry(
                    day("2025-03-02"),
                    &t,
                    &DeviceId::parse("dev-x").expect("id")
                )
                .sk
            ),
            vec!["msp", "dev-x"]
        );
    }

    #[test]
    fn incident_keys_sort_by_opening_time_within_their_range() {
        let t = TenantId::parse("msp").expect("valid");
        let keys = TenantKeys::new(&t);
        let (pk, lo, hi) = keys.incidents_range(1_000, 2_000);
        for (opened, inside) in [(999, false), (1_000, true), (1_999, true), (2_000, false)] {
            let k = keys.incident(&IncidentId::generate(opened));
            assert_eq!(k.pk, pk);
            assert_eq!(lo <= k.sk && k.sk <= hi, inside, "{opened}");
        }
        // Nothing else of the tenant falls in the range.
        assert!(!(lo <= keys.alert("a").sk && keys.alert("a").sk <= hi));
    }

    #[test]
    fn calendars_and_schedules_have_their_own_prefixes() {
        let t = TenantId::parse("msp").expect("valid");
        let keys = TenantKeys::new(&t);
        let cal = keys.business_calendar("office");
        let sched = keys.oncall_schedule("office");
        assert_eq!(
            (cal.pk.as_str(), cal.sk.as_str()),
            ("T#msp", "CALENDAR#office")
        );
        assert_eq!(sched.sk, "ONCALL#office");
        assert!(cal.sk.starts_with(&keys.business_calendars_prefix().1));
        assert!(!sched.sk.starts_with(&keys.business_calendars_prefix().1));
        assert!(!cal.sk.starts_with(&keys.oncall_schedules_prefix().1));
        assert!(
            !keys
                .maintenance_window("office")
                .sk
                .starts_with(&keys.oncall_schedules_prefix().1)
        );
    }

    #[test]
    fn a_client_prefix_does_not_match_a_longer_client_id() {
        let t = TenantId::parse("msp").expect("valid");
        let keys = TenantKeys::new(&t);
        let (_, prefix) = keys.devices_query(Some(&ClientId::parse("acme").expect("valid")), None);
        let other = keys.device_index(
            &ClientId::parse("acme-2").expect("valid"),
            &SiteId::parse("hq").expect("valid"),
            &DeviceId::parse("dev-x").expect("valid"),
        );
        assert!(!other.gsi1sk.starts_with(&prefix));
    }
}
