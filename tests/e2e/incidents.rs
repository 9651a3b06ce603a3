//! Incidents over real HTTP against the local runtime and the emulator: alerts opened by the
//! evaluator are grouped into an incident, people take its roles, post internal and external
//! status messages from templates, acknowledge and resolve it; the response-times report is
//! checked against the stamps the API recorded. Client viewers see the external face only;
//! concurrent edits all land.

use std::time::Duration;

use serde_json::{Value, json};
use vigie_auth::{Grant, OwnIssuer, Role};
use vigie_domain::ids::{ClientId, DeviceId, TenantId};

use crate::api::{api_stack, as_user, local_issuer};
use crate::evaluate::{disk_policy, envelope, evaluator};
use crate::stack::{Stack, now_ms, placement};

/// A token for `subject` with `role` in `tenant` (viewers: of `client`; technicians limited
/// to `clients`).
fn token(
    own: &OwnIssuer,
    subject: &str,
    role: Role,
    tenant: &TenantId,
    client: Option<&str>,
    clients: &[&str],
) -> String {
    let grant = Grant::new(
        subject,
        role,
        Some(tenant.clone()),
        client.map(|c| ClientId::parse(c).expect("id")),
        clients
            .iter()
            .map(|c| ClientId::parse(c).expect("id"))
            .collect(),
    )
    .expect("grant");
    own.mint(&grant, Duration::from_secs(600), now_ms() / 1000)
        .expect("token")
}

/// Opens a disk alert on a fresh device of `client` through the evaluator (policies in
/// DynamoDB, versioned rule states, the alert record): its id.
async fn open_alert(stack: &Stack, tenant: &str, client: &str) -> String {
    let p = placement(tenant, client, "hq");
    let mut batch = envelope(&DeviceId::generate(), 1, now_ms() - 60_000, 97.0);
    batch.tenant_id = p.tenant;
    batch.client_id = p.client;
    batch.site_id = p.site;
    let events = evaluator(&stack.ports)
        .evaluate(&batch)
        .await
        .expect("evaluates")
        .events;
    events.first().expect("an alert opened").alert_id.clone()
}

fn ms_between(from_ms: &Value, stamp_ms: &Value) -> i64 {
    stamp_ms.as_i64().expect("ms") - from_ms.as_i64().expect("ms")
}

/// Milliseconds between two stamps, in seconds (as the API computes them).
fn secs(stamp_ms: &Value, from_ms: &Value) -> f64 {
    ms_between(from_ms, stamp_ms) as f64 / 1000.0
}

fn actions(incident: &Value) -> Vec<String> {
    incident["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_grouped_into_an_incident_are_worked_to_resolution_and_reported() {
    let own = local_issuer();
    let stack = api_stack("incidents", &own).await;
    let tenant = placement("msp-inc", "acme", "hq").tenant;
    for client in ["acme", "globex"] {
        stack.seed(&placement("msp-inc", client, "hq")).await;
    }
    stack.seed(&placement("msp-else", "acme", "hq")).await;
    for t in ["msp-inc", "msp-else"] {
        stack
            .ports
            .policies()
            .put(
                &placement(t, "acme", "hq").tenant,
                &disk_policy(85.0),
                now_ms(),
            )
            .await
            .expect("policy");
    }
    let disk_a = open_alert(&stack, "msp-inc", "acme").await;
    let disk_b = open_alert(&stack, "msp-inc", "acme").await;
    let globex_alert = open_alert(&stack, "msp-inc", "globex").await;
    let foreign_alert = open_alert(&stack, "msp-else", "acme").await;

    let alice = token(&own, "alice", Role::MspAdmin, &tenant, None, &[]);
    let bob = token(&own, "bob", Role::Technician, &tenant, None, &[]);
    let carol = token(&own, "carol", Role::MspAdmin, &tenant, None, &[]);
    let viewer = token(
        &own,
        "viewer-acme",
        Role::ClientViewer,
        &tenant,
        Some("acme"),
        &[],
    );
    let globex_viewer = token(
        &own,
        "viewer-globex",
        Role::ClientViewer,
        &tenant,
        Some("globex"),
        &[],
    );
    let globex_tech = token(&own, "tech-g", Role::Technician, &tenant, None, &["globex"]);
    let accounting = token(&own, "books", Role::Accounting, &tenant, None, &[]);

    // Open: one alert, a severity, an incident manager.
    let opened = as_user(
        &stack,
        &alice,
        "POST",
        "/v1/incidents",
        json!({ "title": "Mail server disks full", "sev": 2, "alert_ids": [disk_a],
                "roles": { "incident_manager": "alice" } }),
    )
    .await;
    assert_eq!(opened.status, 201, "{:?}", opened.json);
    let id = opened.json["incident_id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("inc-"), "{id}");
    let path = format!("/v1/incidents/{id}");
    assert_eq!(opened.json["client_id"], "acme");
    assert_eq!(opened.json["opened_by"], "alice");
    assert_eq!(opened.json["alerts"][0]["alert_id"], json!(disk_a));
    assert_eq!(
        actions(&opened.json),
        ["opened", "alert_added", "role_assigned"]
    );
    assert_eq!(
        opened.json["timeline"][2]["text"],
        "alice became incident manager"
    );

    // Alerts must exist in the tenant and be visible: unknown, another tenant's, and (for a
    // technician limited to globex) acme's are all 404, and nothing changes.
    for (who, alert) in [
        (&alice, "zz-no-such-alert".to_owned()),
        (&alice, foreign_alert.clone()),
    ] {
        let added = as_user(
            &stack,
            who,
            "POST",
            &format!("{path}/alerts"),
            json!({ "alert_ids": [alert] }),
        )
        .await;
        assert_eq!((added.status, added.code()), (404, "not_found"), "{alert}");
    }
    let hidden = as_user(&stack, &globex_tech, "GET", &path, Value::Null).await;
    assert_eq!(hidden.status, 404, "an acme incident is not globex's");
    let refused = as_user(
        &stack,
        &globex_tech,
        "POST",
        "/v1/incidents",
        json!({ "title": "x", "sev": 3, "alert_ids": [disk_b] }),
    )
    .await;
    assert_eq!(refused.status, 404, "{:?}", refused.json);
    let refused = as_user(
        &stack,
        &globex_tech,
        "POST",
        "/v1/incidents",
        json!({ "title": "x", "sev": 3 }),
    )
    .await;
    assert_eq!((refused.status, refused.code()), (422, "alerts_required"));

    // A second alert of acme; roles (a role left out stays); severity up.
    let added = as_user(
        &stack,
        &bob,
        "POST",
        &format!("{path}/alerts"),
        json!({ "alert_ids": [disk_b, disk_a] }),
    )
    .await;
    assert_eq!(added.status, 200, "{:?}", added.json);
    assert_eq!(
        (&added.json["alert_count"], &added.json["client_id"]),
        (&json!(2), &json!("acme"))
    );
    let roles = as_user(
        &stack,
        &alice,
        "PUT",
        &format!("{path}/roles"),
        json!({ "technical_lead": "bob", "communications_lead": "carol" }),
    )
    .await;
    assert_eq!(
        roles.json["roles"],
        json!({ "incident_manager": "alice", "technical_lead": "bob", "communications_lead": "carol" })
    );
    let sev = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/severity"),
        json!({ "sev": 1 }),
    )
    .await;
    assert_eq!(sev.json["sev"], 1);
    assert_eq!(
        sev.json["timeline"]
            .as_array()
            .and_then(|t| t.last())
            .map(|e| &e["text"]),
        Some(&json!("sev 2 → sev 1"))
    );
    let bad = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/severity"),
        json!({ "sev": 4 }),
    )
    .await;
    assert_eq!((bad.status, bad.code()), (422, "bad_severity"));

    // Status messages from a template: internal with the incident's own fields; external
    // with the client company's name filled from the directory, and nothing internal.
    let internal = as_user(
        &stack,
        &carol,
        "POST",
        &format!("{path}/status-messages"),
        json!({ "audience": "internal", "template": "investigating",
                "fields": { "impact": "mail for all staff", "next_update": "14:30 CET" } }),
    )
    .await;
    assert_eq!(internal.status, 201, "{:?}", internal.json);
    let external = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/status-messages"),
        json!({ "audience": "external", "template": "investigating",
                "fields": { "impact": "e-mail", "next_update": "14:30 CET" } }),
    )
    .await;
    assert_eq!(external.status, 201, "{:?}", external.json);
    let messages = external.json["status_messages"]
        .as_array()
        .expect("messages");
    assert_eq!(
        messages[0]["text"],
        "[Sev 1] Mail server disks full: investigating. Impact: mail for all staff. Incident \
         manager: alice; technical lead: bob. Next update by 14:30 CET."
    );
    assert_eq!(
        messages[1]["text"],
        "Client acme: we are investigating an issue affecting e-mail. We will post an update \
         by 14:30 CET."
    );
    assert_eq!(
        (&messages[1]["audience"], &messages[1]["template"]),
        (&json!("external"), &json!("investigating"))
    );
    // A field the external wording does not take is refused with the list it takes.
    let leak = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/status-messages"),
        json!({ "audience": "external", "template": "identified",
                "fields": { "impact": "e-mail", "next_update": "15:00", "cause": "RAID on srv-01" } }),
    )
    .await;
    assert_eq!((leak.status, leak.code()), (422, "bad_template_fields"));
    assert!(
        leak.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"cause\"") && m.contains("client, impact, next_update")),
        "{:?}",
        leak.json
    );
    let both = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/status-messages"),
        json!({ "audience": "external", "template": "identified", "text": "x" }),
    )
    .await;
    assert_eq!((both.status, both.code()), (422, "bad_message"));

    // Acknowledged by bob; a second acknowledgement keeps the first.
    let acked = as_user(
        &stack,
        &bob,
        "POST",
        &format!("{path}/acknowledge"),
        Value::Null,
    )
    .await;
    assert_eq!(acked.status, 200, "{:?}", acked.json);
    assert_eq!(acked.json["acknowledged"]["by"], "bob");
    let again = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/acknowledge"),
        Value::Null,
    )
    .await;
    assert_eq!(again.json["acknowledged"], acked.json["acknowledged"]);
    assert_eq!(
        again.json["version"], acked.json["version"],
        "nothing written"
    );
    assert_eq!(
        acked.json["time_to_acknowledge_s"],
        json!(secs(
            &acked.json["acknowledged"]["at_ms"],
            &acked.json["opened_ms"]
        ))
    );

    // Concurrent edits by two people all land: none overwrites another.
    let before = acked.json["timeline"].as_array().expect("timeline").len();
    let (comments, status) = (format!("{path}/comments"), format!("{path}/status"));
    let (c1, c2, st, c3) = tokio::join!(
        as_user(
            &stack,
            &bob,
            "POST",
            &comments,
            json!({ "text": "swapping disk 1" })
        ),
        as_user(
            &stack,
            &alice,
            "POST",
            &comments,
            json!({ "text": "client informed" })
        ),
        as_user(
            &stack,
            &alice,
            "POST",
            &status,
            json!({ "status": "identified" })
        ),
        as_user(
            &stack,
            &bob,
            "POST",
            &comments,
            json!({ "text": "swapping disk 2" })
        ),
    );
    assert_eq!(
        [c1.status, c2.status, st.status, c3.status],
        [201, 201, 200, 201],
        "{:?} {:?} {:?} {:?}",
        c1.json,
        c2.json,
        st.json,
        c3.json
    );
    let now = as_user(&stack, &alice, "GET", &path, Value::Null).await;
    let timeline = now.json["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), before + 4, "{timeline:#?}");
    let texts: Vec<&str> = timeline[before..]
        .iter()
        .map(|e| e["text"].as_str().expect("text"))
        .collect();
    for t in [
        "swapping disk 1",
        "client informed",
        "investigating → identified",
        "swapping disk 2",
    ] {
        assert!(texts.contains(&t), "{t} missing from {texts:?}");
    }
    assert_eq!(now.json["status"], "identified");

    // The client's viewer: the incident of its company, external messages only.
    let seen = as_user(&stack, &viewer, "GET", &path, Value::Null).await;
    assert_eq!(seen.status, 200, "{:?}", seen.json);
    assert_eq!(
        seen.json["status_messages"],
        json!([{ "at_ms": messages[1]["at_ms"], "audience": "external",
                 "template": "investigating", "text": messages[1]["text"] }])
    );
    for internal_only in ["timeline", "roles", "alerts", "opened_by", "acknowledged"] {
        assert!(
            seen.json.get(internal_only).is_none(),
            "{internal_only}: {:?}",
            seen.json
        );
    }
    let text = seen.json.to_string();
    for leak in ["bob", "carol", "swapping", &disk_a] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    let listed = as_user(&stack, &viewer, "GET", "/v1/incidents", Value::Null).await;
    assert_eq!(listed.json["items"][0]["incident_id"], json!(id));
    assert!(listed.json["items"][0].get("roles").is_none());
    assert_eq!(
        as_user(&stack, &globex_viewer, "GET", &path, Value::Null)
            .await
            .status,
        404
    );
    let theirs = as_user(&stack, &globex_viewer, "GET", "/v1/incidents", Value::Null).await;
    assert_eq!(theirs.json["items"], json!([]));
    assert_eq!(
        as_user(
            &stack,
            &viewer,
            "POST",
            &format!("{path}/comments"),
            json!({ "text": "hi" })
        )
        .await
        .status,
        403
    );
    // An alert of another company makes it nobody's company: the viewer loses it, then gets
    // it back when the alert is taken out.
    let mixed = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/alerts"),
        json!({ "alert_ids": [globex_alert] }),
    )
    .await;
    assert_eq!(mixed.json["client_id"], Value::Null);
    assert_eq!(
        as_user(&stack, &viewer, "GET", &path, Value::Null)
            .await
            .status,
        404
    );
    let removed = as_user(
        &stack,
        &alice,
        "DELETE",
        &format!("{path}/alerts/{globex_alert}"),
        Value::Null,
    )
    .await;
    assert_eq!(removed.json["client_id"], "acme");
    let gone = as_user(
        &stack,
        &alice,
        "DELETE",
        &format!("{path}/alerts/{globex_alert}"),
        Value::Null,
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        as_user(&stack, &viewer, "GET", &path, Value::Null)
            .await
            .status,
        200
    );

    // Resolved: its duration is recorded; only comments and messages follow.
    let resolved = as_user(
        &stack,
        &bob,
        "POST",
        &format!("{path}/resolve"),
        Value::Null,
    )
    .await;
    assert_eq!(resolved.status, 200, "{:?}", resolved.json);
    assert_eq!(resolved.json["status"], "resolved");
    let r = &resolved.json;
    assert_eq!(r["resolved_ms"], r["resolved"]["at_ms"]);
    assert_eq!(
        r["duration_s"],
        json!(secs(&r["resolved_ms"], &r["opened_ms"]))
    );
    let late = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/severity"),
        json!({ "sev": 2 }),
    )
    .await;
    assert_eq!((late.status, late.code()), (409, "incident_resolved"));
    let pm = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/comments"),
        json!({ "text": "post-mortem on Monday" }),
    )
    .await;
    assert_eq!(pm.status, 201);
    let closing = as_user(
        &stack,
        &alice,
        "POST",
        &format!("{path}/status-messages"),
        json!({ "audience": "external", "template": "resolved", "fields": { "impact": "e-mail" } }),
    )
    .await;
    assert_eq!(closing.status, 201, "{:?}", closing.json);

    // Two more incidents: a Sev 1 acknowledged and resolved, a Sev 3 left open.
    let second = as_user(
        &stack,
        &bob,
        "POST",
        "/v1/incidents",
        json!({ "title": "Backup NAS offline", "sev": 1, "alert_ids": [disk_b] }),
    )
    .await;
    let second_path = format!(
        "/v1/incidents/{}",
        second.json["incident_id"].as_str().expect("id")
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    as_user(
        &stack,
        &bob,
        "POST",
        &format!("{second_path}/acknowledge"),
        Value::Null,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(70)).await;
    let second = as_user(
        &stack,
        &bob,
        "POST",
        &format!("{second_path}/resolve"),
        Value::Null,
    )
    .await;
    assert_eq!(second.json["status"], "resolved");
    let third = as_user(
        &stack,
        &alice,
        "POST",
        "/v1/incidents",
        json!({ "title": "Slow VPN", "sev": 3 }),
    )
    .await;
    assert_eq!(
        (third.status, &third.json["client_id"]),
        (201, &Value::Null)
    );
    // An incident of no company is for unlimited staff only.
    let third_path = format!(
        "/v1/incidents/{}",
        third.json["incident_id"].as_str().expect("id")
    );
    assert_eq!(
        as_user(&stack, &viewer, "GET", &third_path, Value::Null)
            .await
            .status,
        404
    );

    let first = as_user(&stack, &alice, "GET", &path, Value::Null)
        .await
        .json;
    let s = &second.json;
    let (ack1, ack2) = (
        ms_between(&first["opened_ms"], &first["acknowledged"]["at_ms"]),
        ms_between(&s["opened_ms"], &s["acknowledged"]["at_ms"]),
    );
    let (res1, res2) = (
        ms_between(&first["opened_ms"], &first["resolved_ms"]),
        ms_between(&s["opened_ms"], &s["resolved_ms"]),
    );
    assert!(ack2 >= 40 && res2 >= 110, "{ack2} {res2}");
    let from = first["opened_ms"].as_i64().expect("ms");
    let to = now_ms() + 1;
    let report = as_user(
        &stack,
        &accounting,
        "GET",
        &format!("/v1/reports/response-times?from={from}&to={to}"),
        Value::Null,
    )
    .await;
    assert_eq!(report.status, 200, "{:?}", report.json);
    let sev1 = &report.json["by_sev"][0];
    // Both are Sev 1 now (the first was raised): mean and median of two are their middle.
    let mean = |a: i64, b: i64| (a as f64 + b as f64) / 2.0 / 1000.0;
    assert_eq!(
        (sev1["sev"].as_u64(), sev1["incidents"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        sev1["mtta"],
        json!({ "count": 2, "mean_s": mean(ack1, ack2), "median_s": mean(ack1, ack2) })
    );
    assert_eq!(
        sev1["mttr"],
        json!({ "count": 2, "mean_s": mean(res1, res2), "median_s": mean(res1, res2) })
    );
    assert_eq!(
        report.json["by_sev"][2],
        json!({ "sev": 3, "incidents": 1,
                "mtta": { "count": 0, "mean_s": null, "median_s": null },
                "mttr": { "count": 0, "mean_s": null, "median_s": null } })
    );
    assert_eq!(report.json["all"]["incidents"], 3);
    // A window that starts after the first incident leaves only the later ones.
    let later = as_user(
        &stack,
        &alice,
        "GET",
        &format!("/v1/reports/response-times?from={}&to={to}", from + 1),
        Value::Null,
    )
    .await;
    assert_eq!(
        later.json["by_sev"][0]["mttr"]["median_s"],
        json!(res2 as f64 / 1000.0)
    );
    let wide = as_user(
        &stack,
        &alice,
        "GET",
        &format!("/v1/reports/response-times?from=0&to={to}"),
        Value::Null,
    )
    .await;
    assert_eq!((wide.status, wide.code()), (422, "bad_window"));
    assert_eq!(
        as_user(
            &stack,
            &viewer,
            "GET",
            "/v1/reports/response-times",
            Value::Null
        )
        .await
        .status,
        403
    );

    // Lists filter on status and severity.
    let open = as_user(
        &stack,
        &alice,
        "GET",
        "/v1/incidents?status=investigating",
        Value::Null,
    )
    .await;
    let ids: Vec<&Value> = open.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| &i["incident_id"])
        .collect();
    assert_eq!(ids, [&third.json["incident_id"]]);
    let sev1 = as_user(
        &stack,
        &alice,
        "GET",
        "/v1/incidents?sev=1&status=resolved",
        Value::Null,
    )
    .await;
    assert_eq!(sev1.json["items"].as_array().map(Vec::len), Some(2));
    let with_b = as_user(
        &stack,
        &alice,
        "GET",
        &format!("/v1/incidents?alert_id={disk_b}"),
        Value::Null,
    )
    .await;
    assert_eq!(with_b.json["items"].as_array().map(Vec::len), Some(2));
    let with_globex = as_user(
        &stack,
        &alice,
        "GET",
        &format!("/v1/incidents?alert_id={globex_alert}"),
        Value::Null,
    )
    .await;
    assert_eq!(with_globex.json["items"], json!([]), "it was taken out");
    let bad = as_user(&stack, &alice, "GET", "/v1/incidents?sev=5", Value::Null).await;
    assert_eq!((bad.status, bad.code()), (422, "bad_filter"));
    let templates = as_user(
        &stack,
        &bob,
        "GET",
        "/v1/incident-message-templates",
        Value::Null,
    )
    .await;
    assert_eq!(templates.json["items"].as_array().map(Vec::len), Some(5));
}

/// The store itself: eight people changing one incident at the same instant, each from the
/// version it read. Every conditional write that loses re-reads and re-applies, so all eight
/// land, in some order, and the version counts them; a change that changes nothing writes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_to_one_incident_all_land_through_conditional_writes() {
    use vigie_domain::incident::{Incident, IncidentAction, IncidentId};
    let stack = Stack::start("incidents-race").await;
    let tenant = placement("msp-race", "acme", "hq").tenant;
    let store = stack.ports.incidents();
    let mut incident =
        Incident::open(IncidentId::generate(now_ms()), "Race", 2, "a", now_ms()).expect("opens");
    assert!(store.create(&tenant, &mut incident).await.expect("create"));
    assert!(
        !store
            .create(&tenant, &mut incident.clone())
            .await
            .expect("again"),
        "ids are never overwritten"
    );
    let id = incident.incident_id.clone();
    // Each lost race means another writer landed, so eight writers land within eight tries.
    const WRITERS: usize = 8;
    const { assert!(WRITERS <= vigie_aws::incidents::UPDATE_ATTEMPTS) };
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let store = store.clone();
            let (tenant, id) = (tenant.clone(), id.clone());
            tokio::spawn(async move {
                let mut tries = 0;
                let result = store
                    .update(&tenant, &id, |i| {
                        tries += 1;
                        i.apply(
                            IncidentAction::Comment(format!("note {n}")),
                            &format!("p{n}"),
                            now_ms(),
                        )
                    })
                    .await;
                (result.is_ok(), tries)
            })
        })
        .collect();
    let mut total_tries = 0;
    for w in writers {
        let (ok, tries) = w.await.expect("joins");
        assert!(ok);
        total_tries += tries;
    }
    let stored = store.get(&tenant, &id).await.expect("read").expect("there");
    let mut notes: Vec<&str> = stored.timeline[1..]
        .iter()
        .map(|e| e.text.as_str())
        .collect();
    notes.sort_unstable();
    let expected: Vec<String> = (0..WRITERS).map(|n| format!("note {n}")).collect();
    assert_eq!(notes, expected);
    assert_eq!(stored.version, 1 + WRITERS as u64);
    println!("8 concurrent changes took {total_tries} applications (re-applied after a lost race)");
    // Acknowledging twice: the second changes nothing and writes nothing.
    let acked = store
        .update(&tenant, &id, |i| {
            i.apply(IncidentAction::Acknowledge, "a", now_ms())
        })
        .await
        .expect("ack");
    let again = store
        .update(&tenant, &id, |i| {
            i.apply(IncidentAction::Acknowledge, "b", now_ms())
        })
        .await
        .expect("ack again");
    assert_eq!((acked.version, again.version), (10, 10));
    assert_eq!(again.acknowledged, acked.acknowledged);
    // Another tenant's key holds nothing.
    let other = placement("msp-other", "acme", "hq").tenant;
    assert!(store.get(&other, &id).await.expect("read").is_none());
    assert!(matches!(
        store
            .update(&other, &id, |i| i.apply(
                IncidentAction::Acknowledge,
                "x",
                0
            ))
            .await,
        Err(vigie_aws::incidents::UpdateFailed::NotFound)
    ));
}

/// `POST /v1/incidents` with an `Idempotency-Key`: status, body and whether the answer says it
/// was replayed.
async fn open_with_key(stack: &Stack, bearer: &str, key: &str, body: Value) -> (u16, Value, bool) {
    let url = format!("{}/v1/incidents", stack.url());
    let (bearer, key) = (bearer.to_owned(), key.to_owned());
    tokio::task::spawn_blocking(move || {
        let result = ureq::post(&url)
            .set("authorization", &format!("Bearer {bearer}"))
            .set("content-type", "application/json")
            .set("Idempotency-Key", &key)
            .send_bytes(&serde_json::to_vec(&body).expect("json"));
        let resp = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let replayed = resp.header("idempotent-replayed") == Some("true");
        let status = resp.status();
        let json = serde_json::from_str(&resp.into_string().expect("body")).expect("json");
        (status, json, replayed)
    })
    .await
    .expect("request thread")
}

/// An automation that times out and retries opens one incident, not two; the key is the
/// caller's own (another person's same key opens their own), and a bad key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_open_with_the_same_idempotency_key_opens_one_incident() {
    let own = local_issuer();
    let stack = api_stack("incidents-idem", &own).await;
    let tenant = placement("msp-idem", "acme", "hq").tenant;
    stack.seed(&placement("msp-idem", "acme", "hq")).await;
    let psa = token(&own, "psa-sync", Role::MspAdmin, &tenant, None, &[]);
    let bob = token(&own, "bob", Role::Technician, &tenant, None, &[]);
    let body = json!({ "title": "Ticket 4711: VPN down", "sev": 2 });

    let (s1, first, replayed1) = open_with_key(&stack, &psa, "ticket-4711", body.clone()).await;
    assert_eq!((s1, replayed1), (201, false), "{first:?}");
    // The same request again, twice at once: the first incident, nothing new.
    let (a, b) = tokio::join!(
        open_with_key(&stack, &psa, "ticket-4711", body.clone()),
        open_with_key(&stack, &psa, "ticket-4711", body.clone()),
    );
    for (status, again, replayed) in [a, b] {
        assert_eq!((status, replayed), (201, true), "{again:?}");
        assert_eq!(again["incident_id"], first["incident_id"]);
    }
    let (_, other_key, replayed) = open_with_key(&stack, &psa, "ticket-4712", body.clone()).await;
    assert!(!replayed);
    assert_ne!(other_key["incident_id"], first["incident_id"]);
    let (_, other_caller, replayed) =
        open_with_key(&stack, &bob, "ticket-4711", body.clone()).await;
    assert!(!replayed);
    assert_ne!(other_caller["incident_id"], first["incident_id"]);
    let (status, bad, _) = open_with_key(&stack, &psa, &"k".repeat(256), body.clone()).await;
    assert_eq!(
        (status, &bad["error"]["code"]),
        (422, &json!("bad_idempotency_key"))
    );
    let listed = as_user(&stack, &psa, "GET", "/v1/incidents", Value::Null).await;
    assert_eq!(listed.json["items"].as_array().map(Vec::len), Some(3));
}
