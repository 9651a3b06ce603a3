//! Built-in policy templates: one per alert family, with the field's usual defaults, that an
//! MSP applies in one step at any scope (tenant, tag such as `role=server`, client company,
//! site, device) and adjusts per rule.
//!
//! Every rule of a template has the id `tpl-<template>-<name>` (e.g. `tpl-resources-disk`),
//! so applying a template to a policy is idempotent, and applying it again (a newer version,
//! other overrides) replaces exactly its own rules and leaves the MSP's own rules alone.
//!
//! Overrides are per rule: a JSON object merged over the rule's fields (objects merge key by
//! key, anything else replaces), e.g. `{"disk": {"warning": {"threshold": 80}}}` or
//! `{"leavers": {"subjects": ["bob", "carol"]}}` or `{"cpu": {"enabled": false}}`. A rule's
//! `id` and `kind` cannot be overridden; the result must validate like any rule.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::alert::AlertFamily;
use crate::policy::{Policy, PolicyInvalid, Rule, RuleId, Scope};

/// A built-in template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    /// `resources`, `device-down`, … (the family's name with hyphens).
    pub id: String,
    /// Raised whenever its rules' defaults change.
    pub version: u32,
    pub family: AlertFamily,
    pub title: &'static str,
    pub description: &'static str,
    /// The rules with their defaults, ids already namespaced.
    pub rules: Vec<Rule>,
}

/// Per rule (its short name, `disk`, or its full id, `tpl-resources-disk`): fields to merge.
pub type Overrides = BTreeMap<String, Map<String, Value>>;

/// Why a template could not be instantiated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("no built-in template `{0}`")]
    UnknownTemplate(String),
    #[error("template {template} has no rule `{rule}`")]
    UnknownRule { template: String, rule: String },
    #[error("rule {rule}: `{field}` cannot be overridden")]
    Fixed { rule: String, field: &'static str },
    #[error("rule {rule}: {message}")]
    Malformed { rule: String, message: String },
    #[error(transparent)]
    Invalid(#[from] PolicyInvalid),
}

/// The namespace of a template's rule ids.
fn prefix(template: &str) -> String {
    format!("tpl-{template}-")
}

/// Merges `patch` into `base`: objects key by key, anything else replaces.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

impl Template {
    /// Whether a rule id belongs to this template (any version of it).
    pub fn owns(&self, rule: &RuleId) -> bool {
        rule.as_str().starts_with(&prefix(&self.id))
    }

    /// The template's rules with `overrides` applied, each validated.
    pub fn instantiate(&self, overrides: &Overrides) -> Result<Vec<Rule>, TemplateError> {
        let p = prefix(&self.id);
        for name in overrides.keys() {
            let full = if name.starts_with(&p) {
                name.clone()
            } else {
                format!("{p}{name}")
            };
            if !self.rules.iter().any(|r| r.id.as_str() == full) {
                return Err(TemplateError::UnknownRule {
                    template: self.id.clone(),
                    rule: name.clone(),
                });
            }
        }
        let mut out = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let short = rule.id.as_str().trim_start_matches(&p);
            let patch = overrides
                .get(short)
                .or_else(|| overrides.get(rule.id.as_str()));
            let Some(patch) = patch else {
                out.push(rule.clone());
                continue;
            };
            for field in ["id", "kind"] {
                if patch.contains_key(field) {
                    return Err(TemplateError::Fixed {
                        rule: rule.id.to_string(),
                        field: if field == "id" { "id" } else { "kind" },
                    });
                }
            }
            let malformed = |e: serde_json::Error| TemplateError::Malformed {
                rule: rule.id.to_string(),
                message: e.to_string(),
            };
            let mut value = serde_json::to_value(rule).map_err(malformed)?;
            merge(&mut value, &Value::Object(patch.clone()));
            out.push(serde_json::from_value(value).map_err(malformed)?);
        }
        Policy {
            scope: Scope::Tenant,
            rules: out.clone(),
        }
        .validate()?;
        Ok(out)
    }

    /// `existing` rules with this template applied: its previous rules (any version) replaced
    /// by the instantiated ones, every other rule kept in place.
    pub fn apply(
        &self,
        existing: &[Rule],
        overrides: &Overrides,
    ) -> Result<Vec<Rule>, TemplateError> {
        let mut rules: Vec<Rule> = existing
            .iter()
            .filter(|r| !self.owns(&r.id))
            .cloned()
            .collect();
        rules.extend(self.instantiate(overrides)?);
        Ok(rules)
    }
}

/// A built-in template by id.
pub fn template(id: &str) -> Result<Template, TemplateError> {
    builtin()
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| TemplateError::UnknownTemplate(id.to_owned()))
}

fn make(
    family: AlertFamily,
    version: u32,
    title: &'static str,
    description: &'static str,
    rules: Vec<(&str, Value)>,
) -> Template {
    let id = family.as_str().replace('_', "-");
    let rules = rules
        .into_iter()
        .map(|(name, mut body)| {
            merge(
                &mut body,
                &json!({"id": format!("{}{name}", prefix(&id)), "family": family}),
            );
            // The built-in rules are constants, parsed and validated by this module's tests.
            serde_json::from_value(body).expect("built-in template rules parse")
        })
        .collect();
    Template {
        id,
        version,
        family,
        title,
        description,
        rules,
    }
}

/// Every built-in template: one per alert family except agent health (built in, always on).
pub fn builtin() -> Vec<Template> {
    use AlertFamily::*;
    vec![
        make(
            Overheating,
            1,
            "Overheating",
            "A temperature sensor above 80 °C for 5 min (warning) or 90 °C for 2 min (critical).",
            vec![(
                "temperature",
                json!({"metric": "temperature_celsius", "direction": "above",
                    "warning": {"threshold": 80, "for_s": 300},
                    "critical": {"threshold": 90, "for_s": 120}, "hysteresis": 3}),
            )],
        ),
        make(
            DeviceDown,
            1,
            "Service or disk down",
            "A service that must run is failed or stopped (list the services in `subjects`); a \
             disk's SMART health fails or sectors are waiting to be reallocated.",
            vec![
                (
                    "service",
                    json!({"kind": "state", "finding": "service", "subjects": [],
                        "states": {"failed": "critical", "inactive": "critical",
                                   "not_found": "warning"}, "for_s": 60}),
                ),
                (
                    "smart",
                    json!({"kind": "state", "finding": "smart",
                        "states": {"failed": "critical"}}),
                ),
                (
                    "smart-sectors",
                    json!({"metric": "smart_pending_sectors", "direction": "above",
                        "warning": {"threshold": 0}, "max_gap_s": 4_294_967_295_u32}),
                ),
            ],
        ),
        make(
            NetworkSaturated,
            1,
            "Network saturated",
            "An interface above 80 % of its link speed for 10 min (warning) or 95 % for 5 min \
             (critical).",
            vec![(
                "utilisation",
                json!({"metric": "network_utilisation_pct", "direction": "above",
                    "warning": {"threshold": 80, "for_s": 600},
                    "critical": {"threshold": 95, "for_s": 300}, "hysteresis": 5}),
            )],
        ),
        make(
            Resources,
            1,
            "Resources",
            "Disk 85 % / 95 %, CPU 90 % / 98 % for 15 min, memory 90 % / 97 % for 10 min, and a \
             disk that will be full within 24 h (6 h: critical) at the current rate.",
            vec![
                (
                    "disk",
                    json!({"metric": "filesystem_used_pct", "direction": "above",
                        "warning": {"threshold": 85, "for_s": 300},
                        "critical": {"threshold": 95, "for_s": 300}, "hysteresis": 2}),
                ),
                (
                    "cpu",
                    json!({"metric": "cpu_total_pct", "direction": "above",
                        "warning": {"threshold": 90, "for_s": 900},
                        "critical": {"threshold": 98, "for_s": 900}, "hysteresis": 5}),
                ),
                (
                    "memory",
                    json!({"metric": "memory_used_pct", "direction": "above",
                        "warning": {"threshold": 90, "for_s": 600},
                        "critical": {"threshold": 97, "for_s": 600}, "hysteresis": 3}),
                ),
                (
                    "disk-filling",
                    json!({"kind": "rate", "metric": "filesystem_used_pct", "limit": 100,
                        "window_s": 3600, "warning_h": 24, "critical_h": 6}),
                ),
            ],
        ),
        make(
            BackupFailure,
            1,
            "Backup failure",
            "A backup job reports a failure, or has no successful run for 26 h (50 h: \
             critical). Meant for servers (apply at `role=server`); list the jobs in `sources`.",
            vec![
                (
                    "failed",
                    json!({"kind": "state", "finding": "backup",
                        "states": {"failed": "critical", "warning": "warning",
                                   "never": "warning"}}),
                ),
                (
                    "age",
                    json!({"kind": "absence", "warning_h": 26, "critical_h": 50}),
                ),
            ],
        ),
        make(
            CertificateExpiry,
            1,
            "Certificate expiry",
            "Reminders 30, 14 and 3 days before a certificate expires; a chain that does not \
             verify or an endpoint that does not answer. List endpoints and files in `targets`.",
            vec![
                (
                    "expiry",
                    json!({"kind": "expiry", "reminders": [
                        {"days": 30, "severity": "info"},
                        {"days": 14, "severity": "warning"},
                        {"days": 3, "severity": "critical"}]}),
                ),
                (
                    "validity",
                    json!({"kind": "state", "finding": "certificate",
                        "states": {"invalid_chain": "warning", "unreachable": "warning",
                                   "unreadable": "warning"}}),
                ),
            ],
        ),
        make(
            Intrusion,
            1,
            "Intrusion attempt",
            "10 failed logins from one source within 5 min; a new device on the network.",
            vec![
                (
                    "failed-logins",
                    json!({"kind": "count", "event": "auth_failure", "per": "source",
                        "at_least": 10, "window_s": 300, "clear_after_s": 900,
                        "severity": "warning"}),
                ),
                (
                    "new-neighbour",
                    json!({"kind": "event", "events": ["neighbour_new"], "severity": "info",
                        "clear_after_s": 3600}),
                ),
            ],
        ),
        make(
            Malware,
            1,
            "Malware",
            "A threat found (critical), no antivirus installed (warning), signatures older than \
             7 days (warning).",
            vec![
                (
                    "threat",
                    json!({"kind": "state", "finding": "antivirus",
                        "states": {"infected": "critical", "absent": "warning"}}),
                ),
                (
                    "signatures",
                    json!({"metric": "antivirus_signature_age_h", "direction": "above",
                        "warning": {"threshold": 168}, "max_gap_s": 4_294_967_295_u32}),
                ),
            ],
        ),
        make(
            Updates,
            1,
            "Updates",
            "Security updates pending for more than 7 days; updates that need someone to act; a \
             reboot required for more than 3 days.",
            vec![
                (
                    "security",
                    json!({"kind": "inventory", "condition": "security_pending_days",
                        "warning": 7}),
                ),
                (
                    "manual",
                    json!({"kind": "inventory", "condition": "manual_pending", "warning": 0}),
                ),
                (
                    "reboot",
                    json!({"kind": "inventory", "condition": "reboot_required_days",
                        "warning": 3}),
                ),
            ],
        ),
        make(
            Accounts,
            1,
            "Accounts",
            "A new administrator, a password changed, a login from a new source, and accounts \
             of people who left still active (fill `subjects` of `leavers`).",
            vec![
                (
                    "new-admin",
                    json!({"kind": "event", "events": ["admin_added"], "severity": "warning",
                        "clear_after_s": 86_400}),
                ),
                (
                    "password-changed",
                    json!({"kind": "event", "events": ["password_changed"], "severity": "info",
                        "clear_after_s": 3600}),
                ),
                (
                    "new-source",
                    json!({"kind": "event", "events": ["login_new_source"],
                        "severity": "warning", "clear_after_s": 3600}),
                ),
                (
                    "leavers",
                    json!({"kind": "state", "finding": "account", "subjects": [],
                        "states": {"active": "warning"}}),
                ),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;

    fn overrides(v: Value) -> Overrides {
        serde_json::from_value(v).expect("overrides")
    }

    #[test]
    fn every_template_validates_with_unique_namespaced_ids() {
        let all = builtin();
        let mut ids = Vec::new();
        for t in &all {
            let rules = t.instantiate(&Overrides::new()).expect("valid");
            assert_eq!(rules, t.rules);
            for r in &rules {
                assert!(
                    r.id.as_str().starts_with(&format!("tpl-{}-", t.id)),
                    "{}",
                    r.id
                );
                assert_eq!(r.family, t.family, "{}", r.id);
                assert!(!ids.contains(&r.id), "duplicate {}", r.id);
                ids.push(r.id.clone());
            }
            assert!(t.version >= 1 && !t.title.is_empty() && !t.description.is_empty());
        }
        // All templates together form one valid policy.
        Policy {
            scope: Scope::Tenant,
            rules: all.iter().flat_map(|t| t.rules.clone()).collect(),
        }
        .validate()
        .expect("all templates together");
    }

    #[test]
    fn every_family_but_agent_health_has_a_template() {
        let all = builtin();
        for f in AlertFamily::ALL {
            let covered = all.iter().any(|t| t.family == f);
            assert_eq!(covered, f != AlertFamily::AgentHealth, "{f:?}");
        }
    }

    #[test]
    fn the_usual_defaults() {
        let res = template("resources").expect("resources");
        let disk = res.rules[0].as_threshold().expect("threshold");
        assert_eq!(
            (
                disk.warning.map(|l| l.threshold),
                disk.critical.map(|l| l.threshold)
            ),
            (Some(85.0), Some(95.0))
        );
        let tls = template("certificate-expiry").expect("tls");
        let Check::Expiry(e) = &tls.rules[0].check else {
            panic!("expiry rule")
        };
        assert_eq!(
            e.reminders.iter().map(|r| r.days).collect::<Vec<_>>(),
            [30.0, 14.0, 3.0]
        );
        let backup = template("backup-failure").expect("backup");
        let Check::Absence(a) = &backup.rules[1].check else {
            panic!("absence rule")
        };
        assert_eq!(a.warning_h, Some(26.0));
    }

    #[test]
    fn overrides_change_thresholds_and_lists_and_are_checked() {
        let res = template("resources").expect("resources");
        let rules = res
            .instantiate(&overrides(json!({
                "disk": {"warning": {"threshold": 80}},
                "tpl-resources-cpu": {"enabled": false}
            })))
            .expect("valid");
        let disk = rules[0].as_threshold().expect("threshold");
        assert_eq!(
            disk.warning.map(|l| (l.threshold, l.for_s)),
            Some((80.0, 300))
        );
        assert!(!rules[1].enabled);

        let acc = template("accounts").expect("accounts");
        let rules = acc
            .instantiate(&overrides(
                json!({"leavers": {"subjects": ["bob", "carol"]}}),
            ))
            .expect("valid");
        let Check::State(s) = &rules[3].check else {
            panic!("state rule")
        };
        assert_eq!(
            s.subjects.as_deref(),
            Some(&["bob".to_owned(), "carol".to_owned()][..])
        );

        assert_eq!(
            res.instantiate(&overrides(json!({"diks": {}}))),
            Err(TemplateError::UnknownRule {
                template: "resources".into(),
                rule: "diks".into()
            })
        );
        assert!(matches!(
            res.instantiate(&overrides(json!({"disk": {"kind": "rate"}}))),
            Err(TemplateError::Fixed { field: "kind", .. })
        ));
        let e = res
            .instantiate(&overrides(json!({"disk": {"warning": {"threshold": 99}}})))
            .expect_err("warning beyond critical");
        assert!(e.to_string().contains("tpl-resources-disk"), "{e}");
        let e = res
            .instantiate(&overrides(json!({"disk": {"warning": "high"}})))
            .expect_err("malformed");
        assert!(matches!(e, TemplateError::Malformed { .. }), "{e}");
        assert!(template("coffee").is_err());
    }

    #[test]
    fn applying_is_idempotent_and_replaces_only_its_own_rules() {
        let mine: Rule = serde_json::from_value(json!({
            "id": "disk-var", "family": "resources", "metric": "filesystem_used_pct",
            "subject": "/var", "direction": "above", "warning": {"threshold": 70}
        }))
        .expect("rule");
        let res = template("resources").expect("resources");
        let once = res
            .apply(std::slice::from_ref(&mine), &Overrides::new())
            .expect("applied");
        let twice = res.apply(&once, &Overrides::new()).expect("applied");
        assert_eq!(once, twice);
        assert_eq!(once[0], mine);
        // A newer version (here: other defaults) replaces exactly the template's rules.
        let mut newer = res.clone();
        newer.version += 1;
        newer.rules.truncate(1);
        let updated = newer.apply(&twice, &Overrides::new()).expect("applied");
        assert_eq!(updated.len(), 2);
        assert_eq!(updated[0], mine);
        // Another template's rules are not touched.
        let both = template("updates")
            .expect("updates")
            .apply(&updated, &Overrides::new())
            .expect("applied");
        assert_eq!(
            res.apply(&both, &Overrides::new()).expect("applied").len(),
            1 + 4 + 3
        );
    }
}
