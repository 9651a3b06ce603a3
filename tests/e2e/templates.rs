//! Policy templates through the tenant API, against the emulator: listed with their defaults,
//! applied at a client company with overrides (stored policy, a device's effective policy and
//! the agent's collection plan all follow), applied again (nothing changes), applied with other
//! settings (only the template's own rules change), removed (only its rules go), and refused
//! to the wrong roles, to limited technicians outside their companies and across tenants.
//! A template applied through the API then raises alerts whose detail the API shows.

use std::time::Duration;

use serde_json::{Value, json};
use vigie_auth::{Grant, OwnIssuer, Role};
use vigie_domain::ids::{ClientId, DeviceId, TenantId};
use vigie_domain::protocol::routes;
use vigie_domain::signing::DeviceSigningKey;

use crate::api::{api_stack, as_user, local_issuer, mint};
use crate::stack::{Stack, enroll, now_ms, placement, send, signed_headers};

const CERTS: &str = "/v1/policies/client%3Aacme/templates/certificate-expiry";

/// The ids of a policy view's rules, in order.
fn rule_ids(policy: &Value) -> Vec<String> {
    policy["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The rule `id` of a policy view.
fn rule<'a>(policy: &'a Value, id: &str) -> &'a Value {
    policy["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no rule {id} in {policy}"))
}

/// The certificate targets the device's agent is asked to watch (its signed config route).
async fn agent_certificates(stack: &Stack, key: &DeviceSigningKey, device: &str) -> Value {
    let h = signed_headers(key, device, "GET", routes::CONFIG, 0, now_ms(), b"");
    let cfg = send(
        "GET",
        format!("{}{}", stack.url(), routes::CONFIG),
        h,
        vec![],
    )
    .await;
    assert_eq!(cfg.status, 200, "{:?}", cfg.json);
    cfg.json["collect"]
        .get("certificates")
        .cloned()
        .unwrap_or(json!([]))
}

fn technician_of(own: &OwnIssuer, tenant: &TenantId, clients: &[&str]) -> String {
    let grant = Grant::new(
        "limited-tech",
        Role::Technician,
        Some(tenant.clone()),
        None,
        clients
            .iter()
            .map(|c| ClientId::parse(c).expect("id"))
            .collect(),
    )
    .expect("grant");
    own.mint(&grant, Duration::from_secs(600), now_ms() / 1000)
        .expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_listed_applied_with_overrides_idempotently_and_removed_alone() {
    let own = local_issuer();
    let stack = api_stack("tpl-api", &own).await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    stack.seed(&placement("msp-alpha", "globex", "hq")).await;
    stack.seed(&placement("msp-beta", "initech", "plant")).await;
    let (_, plain) = stack.token(&p, 1).await;
    let (enrolled, key) = enroll(&stack.url(), plain.expose()).await;
    assert_eq!(enrolled.status, 201, "{:?}", enrolled.json);
    let device = enrolled.json["device_id"].as_str().expect("id").to_owned();

    let admin = mint(&own, Role::MspAdmin, Some(&p.tenant), None);
    let tech = mint(&own, Role::Technician, Some(&p.tenant), None);
    let viewer = mint(&own, Role::ClientViewer, Some(&p.tenant), Some("acme"));
    let accounting = mint(&own, Role::Accounting, Some(&p.tenant), None);
    let beta = placement("msp-beta", "initech", "plant").tenant;
    let beta_admin = mint(&own, Role::MspAdmin, Some(&beta), None);
    let globex_tech = technician_of(&own, &p.tenant, &["globex"]);
    let call = |token: &str, method: &'static str, path: &str, body: Value| {
        let (stack, token, path) = (&stack, token.to_owned(), path.to_owned());
        async move { as_user(stack, &token, method, &path, body).await }
    };
    let policy_now = || call(&admin, "GET", "/v1/policies/client%3Aacme", Value::Null);

    // The MSP's own rule at the client company, which templates must leave alone.
    let own_rule = json!({ "id": "disk-var", "family": "resources", "metric": "filesystem_used_pct",
        "subject": "/var", "direction": "above", "warning": { "threshold": 70 } });
    let put = call(
        &admin,
        "PUT",
        "/v1/policies/client%3Aacme",
        json!({ "rules": [own_rule] }),
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.json);

    // 1. The catalogue: every built-in template with its rules' defaults, paged.
    let list = call(&tech, "GET", "/v1/policy-templates?limit=200", Value::Null).await;
    assert_eq!(list.status, 200, "{:?}", list.json);
    let items = list.json["items"].as_array().expect("items");
    assert_eq!(items.len(), vigie_domain::templates::builtin().len());
    let certs = items
        .iter()
        .find(|t| t["template_id"] == "certificate-expiry")
        .expect("certificate template listed");
    assert_eq!(
        (&certs["family"], &certs["version"]),
        (&json!("certificate_expiry"), &json!(1))
    );
    assert_eq!(
        rule(certs, "tpl-certificate-expiry-expiry")["reminders"],
        json!([{"days": 30.0, "severity": "info"}, {"days": 14.0, "severity": "warning"},
            {"days": 3.0, "severity": "critical"}])
    );
    let first = call(&admin, "GET", "/v1/policy-templates?limit=3", Value::Null).await;
    assert_eq!(first.json["items"].as_array().map(Vec::len), Some(3));
    let cursor = first.json["next_cursor"].as_str().expect("a next page");
    let second = call(
        &admin,
        "GET",
        &format!("/v1/policy-templates?limit=3&cursor={cursor}"),
        Value::Null,
    )
    .await;
    assert_ne!(second.json["items"][0], first.json["items"][0]);
    let one = call(
        &admin,
        "GET",
        "/v1/policy-templates/certificate-expiry",
        Value::Null,
    )
    .await;
    assert_eq!((one.status, &one.json), (200, certs));
    let none = call(&admin, "GET", "/v1/policy-templates/coffee", Value::Null).await;
    assert_eq!((none.status, none.code()), (404, "not_found"));

    // 2. Applied at the client company by a technician, reminders at 60/14/3 days and two
    //    certificates to watch.
    let targets = json!([
        { "source": "endpoint", "host": "intranet.acme.example", "port": 443 },
        { "source": "file", "path": "/etc/ssl/acme/vpn.pem" }
    ]);
    let overrides = json!({ "overrides": { "expiry": {
        "reminders": [{"days": 60, "severity": "info"}, {"days": 14, "severity": "warning"},
            {"days": 3, "severity": "critical"}],
        "targets": targets } } });
    assert_eq!(agent_certificates(&stack, &key, &device).await, json!([]));
    let applied = call(&tech, "POST", CERTS, overrides.clone()).await;
    assert_eq!(applied.status, 200, "{:?}", applied.json);
    assert_eq!(
        applied.json["applied"],
        json!({ "template": "certificate-expiry", "version": 1 })
    );
    assert_eq!(applied.json["scope"], "client:acme");
    assert_eq!(
        rule_ids(&applied.json),
        [
            "disk-var",
            "tpl-certificate-expiry-expiry",
            "tpl-certificate-expiry-validity"
        ]
    );
    let stored = policy_now().await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json["rules"], applied.json["rules"]);
    let expiry = rule(&stored.json, "tpl-certificate-expiry-expiry");
    assert_eq!(expiry["reminders"][0]["days"], 60.0);
    assert_eq!(expiry["targets"], targets);
    // The device under acme gets the rules, from the client company's scope …
    let effective = call(
        &tech,
        "GET",
        &format!("/v1/devices/{device}/effective-policy"),
        Value::Null,
    )
    .await;
    assert_eq!(effective.status, 200, "{:?}", effective.json);
    let from_template = effective.json["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["rule"]["id"] == "tpl-certificate-expiry-expiry")
        .expect("in force on the device");
    assert_eq!(from_template["from"], "client:acme");
    assert_eq!(from_template["rule"]["reminders"][0]["days"], 60.0);
    // … and its agent is asked to watch the two certificates.
    assert_eq!(agent_certificates(&stack, &key, &device).await, targets);

    // 3. Applied again, the same: the same policy.
    let again = call(&tech, "POST", CERTS, overrides.clone()).await;
    assert_eq!(again.status, 200, "{:?}", again.json);
    assert_eq!(policy_now().await.json, stored.json);

    // 4. Another template at the same scope keeps the first one's rules.
    let resources = call(
        &admin,
        "POST",
        "/v1/policies/client%3Aacme/templates/resources",
        Value::Null,
    )
    .await;
    assert_eq!(resources.status, 200, "{:?}", resources.json);
    let with_both = policy_now().await.json;
    assert_eq!(rule_ids(&with_both).len(), 1 + 2 + 4);
    assert_eq!(
        rule(&with_both, "tpl-certificate-expiry-expiry"),
        rule(&stored.json, "tpl-certificate-expiry-expiry")
    );

    // 5. Applied with other settings (as a newer version would bring other defaults: the
    //    built-in versions are constants of this build, so a test cannot bump one; the
    //    replacement path is the same, see `templates::tests`): only its own rules change.
    let changed = call(
        &tech,
        "POST",
        CERTS,
        json!({ "overrides": { "expiry": { "reminders": [{"days": 21, "severity": "warning"}] },
            "validity": { "enabled": false } } }),
    )
    .await;
    assert_eq!(changed.status, 200, "{:?}", changed.json);
    let after = policy_now().await.json;
    assert_eq!(rule_ids(&after).len(), 7, "{after}");
    for id in rule_ids(&with_both) {
        if !id.starts_with("tpl-certificate-expiry-") {
            assert_eq!(rule(&after, &id), rule(&with_both, &id), "{id} untouched");
        }
    }
    let expiry = rule(&after, "tpl-certificate-expiry-expiry");
    assert_eq!(
        expiry["reminders"],
        json!([{"days": 21.0, "severity": "warning"}])
    );
    assert!(expiry.get("targets").is_none(), "overrides are not kept");
    assert_eq!(
        rule(&after, "tpl-certificate-expiry-validity")["enabled"],
        false
    );
    assert_eq!(agent_certificates(&stack, &key, &device).await, json!([]));

    // 6. Bad overrides: 422 with a stable code and the reason, and nothing stored.
    for (body, code, words) in [
        (
            json!({ "overrides": { "expirey": {} } }),
            "unknown_template_rule",
            "expirey",
        ),
        (
            json!({ "overrides": { "expiry": { "kind": "state" } } }),
            "fixed_template_field",
            "kind",
        ),
        (
            json!({ "overrides": { "expiry": { "reminders": "soon" } } }),
            "bad_override",
            "tpl-certificate-expiry-expiry",
        ),
        (
            json!({ "overrides": { "expiry": { "reminders": [
                {"days": 30, "severity": "critical"}, {"days": 3, "severity": "info"}] } } }),
            "bad_policy",
            "severity",
        ),
        (json!({ "overides": {} }), "bad_body", "overides"),
    ] {
        let refused = call(&admin, "POST", CERTS, body.clone()).await;
        assert_eq!((refused.status, refused.code()), (422, code), "{body}");
        let message = refused.json["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(words), "{body}: {message}");
    }
    assert_eq!(policy_now().await.json, after);

    // 7. Who may: viewers and accounting do not see templates; a technician limited to
    //    globex reaches neither acme nor the whole tenant; another tenant finds no acme.
    for token in [&viewer, &accounting] {
        for (method, path) in [
            ("GET", "/v1/policy-templates"),
            ("GET", "/v1/policy-templates/resources"),
            ("POST", CERTS),
            ("DELETE", CERTS),
        ] {
            let refused = call(token, method, path, Value::Null).await;
            assert_eq!(
                (refused.status, refused.code()),
                (403, "forbidden"),
                "{method} {path}"
            );
        }
    }
    for path in [CERTS, "/v1/policies/tenant/templates/certificate-expiry"] {
        let refused = call(&globex_tech, "POST", path, Value::Null).await;
        assert_eq!(
            (refused.status, refused.code()),
            (404, "not_found"),
            "{path}"
        );
    }
    let globex = call(
        &globex_tech,
        "POST",
        "/v1/policies/client%3Aglobex/templates/malware",
        Value::Null,
    )
    .await;
    assert_eq!(globex.status, 200, "{:?}", globex.json);
    for method in ["POST", "DELETE"] {
        let refused = call(&beta_admin, method, CERTS, Value::Null).await;
        assert_eq!((refused.status, refused.code()), (404, "not_found"));
    }
    assert_eq!(policy_now().await.json, after);

    // 8. Removed: only its rules go; removing it again finds nothing to remove.
    let removed = call(&tech, "DELETE", CERTS, Value::Null).await;
    assert_eq!(removed.status, 200, "{:?}", removed.json);
    assert_eq!(
        removed.json["removed"],
        json!({ "template": "certificate-expiry", "rules": 2 })
    );
    let left = policy_now().await.json;
    let mut expected: Vec<String> = rule_ids(&after)
        .into_iter()
        .filter(|id| !id.starts_with("tpl-certificate-expiry-"))
        .collect();
    assert_eq!(rule_ids(&left), expected);
    assert_eq!(rule(&left, "disk-var")["subject"], "/var");
    let gone = call(&tech, "DELETE", CERTS, Value::Null).await;
    assert_eq!((gone.status, gone.code()), (404, "not_found"));
    // A template applied where there was no policy creates it.
    let site = call(
        &admin,
        "POST",
        "/v1/policies/site%3Aacme%2Fhq/templates/updates",
        Value::Null,
    )
    .await;
    assert_eq!(site.status, 200, "{:?}", site.json);
    expected = vec![
        "tpl-updates-security".into(),
        "tpl-updates-manual".into(),
        "tpl-updates-reboot".into(),
    ];
    assert_eq!(rule_ids(&site.json), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_applied_through_the_api_raises_alerts_whose_detail_the_api_shows() {
    let own = local_issuer();
    let stack = api_stack("tpl-detail", &own).await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let admin = mint(&own, Role::MspAdmin, Some(&p.tenant), None);
    let applied = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/policies/tenant/templates/device-down",
        json!({ "overrides": { "service": { "subjects": ["nginx"], "for_s": 0 } } }),
    )
    .await;
    assert_eq!(applied.status, 200, "{:?}", applied.json);

    let ev = crate::evaluate::evaluator(&stack.ports);
    let device = DeviceId::generate();
    let t0 = now_ms() - 10 * 60_000;
    let service = |seq: u64, at: i64, state: &str, sub: &str| {
        let mut e = crate::evaluate::envelope(&device, seq, at, 40.0);
        e.batch.findings = vec![vigie_domain::telemetry::Finding::Service(
            vigie_domain::telemetry::ServiceFinding {
                observed_ms: at,
                name: "nginx".into(),
                state: state.into(),
                sub_state: Some(sub.into()),
                via: "systemd".into(),
            },
        )];
        e
    };
    let opened = ev
        .evaluate(&service(1, t0, "failed", "dead"))
        .await
        .expect("evaluates")
        .events;
    assert_eq!(opened.len(), 1, "{opened:?}");
    let alert = format!("/v1/alerts/{}", opened[0].alert_id);
    let view = as_user(&stack, &admin, "GET", &alert, Value::Null).await;
    assert_eq!(view.status, 200, "{:?}", view.json);
    assert_eq!(
        (&view.json["rule_id"], &view.json["detail"]),
        (
            &json!("tpl-device-down-service"),
            &json!("nginx is failed (systemd: dead)")
        )
    );
    let history = as_user(
        &stack,
        &admin,
        "GET",
        &format!("/v1/alert-history?since_ms={}", t0 - 1),
        Value::Null,
    )
    .await;
    assert_eq!(history.status, 200, "{:?}", history.json);
    assert_eq!(
        history.json["items"][0]["detail"],
        "nginx is failed (systemd: dead)"
    );

    // Resolved: the record says how it ended.
    let resolved = ev
        .evaluate(&service(2, t0 + 60_000, "active", "running"))
        .await
        .expect("evaluates")
        .events;
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let view = as_user(&stack, &admin, "GET", &alert, Value::Null).await;
    assert_eq!(
        (&view.json["status"], &view.json["detail"]),
        (
            &json!("resolved"),
            &json!("nginx is active (systemd: running)")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_of_one_scope_at_once_both_land_and_a_stale_one_is_refused() {
    let own = local_issuer();
    let stack = api_stack("tpl-race", &own).await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let store = stack.ports.policies();
    let scope = vigie_domain::policy::Scope::Tenant;

    // The store: a replace made on a stale read is refused, and the newer write stays.
    let empty = vigie_domain::policy::Policy {
        scope: scope.clone(),
        rules: vec![],
    };
    assert!(
        store
            .replace(&p.tenant, None, &empty, now_ms())
            .await
            .expect("first")
    );
    assert!(
        !store
            .replace(&p.tenant, None, &empty, now_ms())
            .await
            .expect("absent no more"),
        "a write expecting no policy must not overwrite one"
    );
    let read = store
        .get(&p.tenant, &scope)
        .await
        .expect("read")
        .expect("stored");
    let newer = vigie_domain::policy::Policy {
        scope: scope.clone(),
        rules: vigie_domain::templates::template("malware")
            .expect("t")
            .rules,
    };
    assert!(
        store
            .replace(&p.tenant, Some(&read), &newer, now_ms())
            .await
            .expect("newer")
    );
    assert!(
        !store
            .replace(&p.tenant, Some(&read), &empty, now_ms())
            .await
            .expect("stale")
    );
    let now = store
        .get(&p.tenant, &scope)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(now.policy, newer);

    // The API: five templates applied at once at the same scope all end up in its policy.
    let admin = mint(&own, Role::MspAdmin, Some(&p.tenant), None);
    let names = [
        "resources",
        "updates",
        "accounts",
        "intrusion",
        "overheating",
    ];
    let answers = futures_join(names.map(|name| {
        let (stack, admin) = (&stack, admin.clone());
        async move {
            as_user(
                stack,
                &admin,
                "POST",
                &format!("/v1/policies/tenant/templates/{name}"),
                Value::Null,
            )
            .await
        }
    }))
    .await;
    for a in &answers {
        assert_eq!(a.status, 200, "{:?}", a.json);
    }
    let stored = store
        .get(&p.tenant, &scope)
        .await
        .expect("read")
        .expect("stored");
    let expected: usize = ["malware"]
        .iter()
        .chain(names.iter())
        .map(|n| vigie_domain::templates::template(n).expect("t").rules.len())
        .sum();
    assert_eq!(stored.policy.rules.len(), expected, "{:?}", stored.policy);
}

/// Runs the futures concurrently and answers their outputs in order.
async fn futures_join<F: std::future::Future>(futures: [F; 5]) -> Vec<F::Output> {
    let [a, b, c, d, e] = futures;
    let (a, b, c, d, e) = tokio::join!(a, b, c, d, e);
    vec![a, b, c, d, e]
}
