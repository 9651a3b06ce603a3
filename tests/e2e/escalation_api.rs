//! Escalation policies, the built-in escalation templates and user groups through the tenant
//! API over real HTTP against the local runtime and the emulator; and an alert episode that
//! carries a running escalation, as a technician sees it and stops it.

use serde_json::{Value, json};
use vigie_auth::Role;
use vigie_domain::escalation::{AlertFacts, Escalation, EscalationPolicy, People, Resolver};
use vigie_domain::ids::{ClientId, DeviceId, SiteId};

use crate::api::{api_stack, as_user, local_issuer, mint, seed};
use crate::stack::now_ms;

fn items(answer: &Value) -> Vec<Value> {
    answer["items"].as_array().cloned().unwrap_or_default()
}

fn ids(answer: &Value, field: &str) -> Vec<String> {
    items(answer)
        .iter()
        .filter_map(|i| i[field].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_write_policies_and_groups_that_name_only_what_the_tenant_has() {
    let own = local_issuer();
    let stack = api_stack("esc-api", &own).await;
    let ours = seed(&stack, "msp-esc", "acme", "hq", "ops").await;
    let admin = mint(&own, Role::MspAdmin, Some(&ours.tenant), None);
    let tech = mint(&own, Role::Technician, Some(&ours.tenant), None);
    let user = ours.params["user_id"].clone();
    // The supervision contract's hours and the night on-call schedule, as the calendar API
    // stores them.
    let oncall = stack.ports.oncall();
    let calendar: vigie_calendar::BusinessCalendar = serde_json::from_value(json!({
        "id": "supervised-hours", "name": "Supervision", "time_zone": "Europe/Paris",
        "scope": { "level": "tenant" },
        "weekly": [{ "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"],
            "start": "06:00", "end": "22:00" }]
    }))
    .expect("calendar");
    calendar.validate().expect("valid calendar");
    oncall
        .calendars()
        .put(&ours.tenant, "supervised-hours", &calendar, now_ms())
        .await
        .expect("store calendar");
    let schedule: vigie_calendar::OnCallSchedule = serde_json::from_value(json!({
        "id": "night", "name": "Night", "time_zone": "Europe/Paris",
        "layers": [{ "name": "base", "participants": [user],
            "rotation": { "type": "weekly" }, "start": "2026-03-30T09:00" }]
    }))
    .expect("schedule");
    schedule.validate().expect("valid schedule");
    oncall
        .schedules()
        .put(&ours.tenant, "night", &schedule, now_ms())
        .await
        .expect("store schedule");

    // A user group: its members must be users of the tenant.
    let group = as_user(
        &stack,
        &admin,
        "PUT",
        "/v1/user-groups/admins",
        json!({ "name": "Admins", "members": [user] }),
    )
    .await;
    assert_eq!(group.status, 200, "{:?}", group.json);
    assert_eq!(
        group.json,
        json!({ "group_id": "admins", "name": "Admins", "members": [user] })
    );
    let ghosts = as_user(
        &stack,
        &admin,
        "PUT",
        "/v1/user-groups/ghosts",
        json!({ "name": "Ghosts", "members": [user, "usr-nobody"] }),
    )
    .await;
    assert_eq!((ghosts.status, ghosts.code()), (422, "unknown_user"));
    assert!(ghosts.json.to_string().contains("usr-nobody"));
    let mismatch = as_user(
        &stack,
        &admin,
        "PUT",
        "/v1/user-groups/admins",
        json!({ "group_id": "other", "name": "Admins", "members": [] }),
    )
    .await;
    assert_eq!((mismatch.status, mismatch.code()), (422, "id_mismatch"));
    let listed = as_user(&stack, &tech, "GET", "/v1/user-groups", Value::Null).await;
    assert_eq!(listed.status, 200);
    assert_eq!(ids(&listed.json, "group_id"), ["admins", "grp-acme"]);
    let not_a_writer = as_user(
        &stack,
        &tech,
        "PUT",
        "/v1/user-groups/admins",
        json!({ "name": "Mine", "members": [] }),
    )
    .await;
    assert_eq!(not_a_writer.status, 403);

    // A policy naming the channel, the group and the user reads back as written.
    let servers = json!({
        "name": "Servers",
        "applies": { "families": ["backup_failure"], "roles": ["server"] },
        "repeat": 1,
        "steps": [
            { "do": "notify", "to": [{ "type": "channel", "channel_id": "ops" },
                { "type": "group", "group_id": "admins" }],
              "cc": [{ "type": "user", "user_id": user }, { "type": "on_call", "schedule_id": "night" }],
              "say": "Look now" },
            { "do": "wait", "minutes": 15 },
            { "do": "notify_assignee" },
            { "do": "wait", "minutes": 30 }
        ]
    });
    let put = as_user(
        &stack,
        &admin,
        "PUT",
        "/v1/escalation-policies/servers",
        servers.clone(),
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.json);
    assert_eq!(put.json["policy_id"], "servers");
    assert_eq!(put.json["steps"], servers["steps"]);
    assert_eq!(
        (&put.json["repeat"], &put.json["time_zone"]),
        (&json!(1), &json!("UTC"))
    );
    let got = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/escalation-policies/servers",
        Value::Null,
    )
    .await;
    assert_eq!((got.status, &got.json), (200, &put.json));
    let listed = as_user(&stack, &tech, "GET", "/v1/escalation-policies", Value::Null).await;
    assert_eq!(ids(&listed.json, "policy_id"), ["esc-acme", "servers"]);

    // What the policy names must exist; the error says which one is missing.
    let with_step = |step: Value| {
        let mut p = servers.clone();
        p["steps"][2] = step;
        p
    };
    for (body, code, named) in [
        (
            with_step(
                json!({ "do": "notify", "to": [{ "type": "channel", "channel_id": "pager" }] }),
            ),
            "unknown_channel",
            "pager",
        ),
        (
            with_step(json!({ "do": "notify", "to": [{ "type": "group", "group_id": "night" }] })),
            "unknown_group",
            "night",
        ),
        (
            with_step(json!({ "do": "notify", "to": [{ "type": "user", "user_id": "usr-zz" }] })),
            "unknown_user",
            "usr-zz",
        ),
        (
            with_step(
                json!({ "do": "notify", "to": [{ "type": "on_call", "schedule_id": "day" }] }),
            ),
            "unknown_schedule",
            "day",
        ),
        (
            {
                let mut p = servers.clone();
                p["calendar_id"] = json!("office-hours");
                p
            },
            "unknown_calendar",
            "office-hours",
        ),
        (
            with_step(json!({ "do": "wait", "minutes": 0 })),
            "bad_escalation_policy",
            "step 3",
        ),
        (
            with_step(json!({ "do": "wait", "until": "25:00" })),
            "bad_escalation_policy",
            "step 3",
        ),
        (
            {
                let mut p = servers.clone();
                p["steps"].as_array_mut().expect("steps").pop();
                p
            },
            "bad_escalation_policy",
            "end with a wait",
        ),
    ] {
        let refused = as_user(
            &stack,
            &admin,
            "PUT",
            "/v1/escalation-policies/servers",
            body,
        )
        .await;
        assert_eq!((refused.status, refused.code()), (422, code), "{named}");
        let message = refused.json["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(named), "{message}");
    }
    // None of the refused writes replaced the stored policy.
    let still = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/escalation-policies/servers",
        Value::Null,
    )
    .await;
    assert_eq!(still.json, put.json);

    // The built-in templates, with the parameters they need.
    let listed = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/escalation-templates",
        Value::Null,
    )
    .await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    assert_eq!(
        ids(&listed.json, "template_id"),
        ["server-backup-same-day", "workstation-backup-next-day"]
    );
    let contact_required: Vec<Value> = items(&listed.json)
        .iter()
        .map(|t| {
            t["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "client_contact"))
                .map(|p| p["required"].clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(contact_required, [json!(false), json!(true)]);

    let sup = json!({ "type": "group", "group_id": "admins" });
    let mailbox = json!({ "type": "email", "address": "supervision@msp.example" });
    let manager = json!({ "type": "user", "user_id": user });
    let contact = json!({ "type": "email", "address": "it@acme.example", "name": "Acme IT" });
    let params = json!({
        "supervisors": sup, "supervision_mailbox": mailbox, "account_manager": manager,
        "calendar_id": "supervised-hours", "time_zone": "Europe/Paris"
    });
    let made = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/escalation-policies/from-template/server-backup-same-day",
        params.clone(),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    assert_eq!(made.json["policy_id"], "server-backup-same-day");
    assert_eq!(
        made.json["steps"],
        json!([
            { "do": "notify", "to": [sup], "say": "A server or NAS backup failed: handle it today." },
            { "do": "wait", "minutes": 120 },
            { "do": "notify", "to": [manager], "cc": [mailbox],
              "say": "The backup failure was not handled within 2 hours. Check in parallel that the local backup works." },
            { "do": "wait", "minutes": 120 },
            { "do": "raise_severity" },
            { "do": "notify", "to": [sup, manager], "cc": [mailbox],
              "say": "Still failing after 4 hours: escalate for action today." }
        ])
    );
    assert_eq!(
        made.json["applies"],
        json!({ "families": ["backup_failure"], "roles": ["server", "nas"] })
    );
    assert_eq!(
        (
            &made.json["sev3"],
            &made.json["ack_timeout_minutes"],
            &made.json["calendar_id"],
            &made.json["time_zone"]
        ),
        (
            &json!("now"),
            &json!(240),
            &json!("supervised-hours"),
            &json!("Europe/Paris")
        )
    );
    assert_eq!(
        made.json["template"],
        json!({ "template_id": "server-backup-same-day", "version": 1 })
    );
    // Stored: a GET reads the same policy.
    let stored = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/escalation-policies/server-backup-same-day",
        Value::Null,
    )
    .await;
    assert_eq!(stored.json, made.json);
    // Again: the id is taken; the stored policy is not replaced.
    let again = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/escalation-policies/from-template/server-backup-same-day",
        params.clone(),
    )
    .await;
    assert_eq!((again.status, again.code()), (409, "policy_exists"));

    let mut ws_params = params.clone();
    ws_params["client_contact"] = contact.clone();
    ws_params["policy_id"] = json!("acme-workstations");
    ws_params["clients"] = json!(["acme"]);
    let ws = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/escalation-policies/from-template/workstation-backup-next-day",
        ws_params,
    )
    .await;
    assert_eq!(ws.status, 201, "{:?}", ws.json);
    assert_eq!(ws.json["policy_id"], "acme-workstations");
    assert_eq!(
        ws.json["steps"],
        json!([
            { "do": "wait", "until": "09:00", "days_later": 1, "open_days_only": true },
            { "do": "notify", "to": [contact], "cc": [manager, mailbox],
              "say": "The backup of this workstation failed. It may simply be off or offline: please switch it on and connect it, or tell us." },
            { "do": "wait", "until": "09:00", "days_later": 7, "open_days_only": true },
            { "do": "notify", "to": [sup], "cc": [manager, mailbox],
              "say": "No change and no answer for a week: phone the client, and write the call in the alert." }
        ])
    );
    assert_eq!(
        ws.json["applies"],
        json!({ "families": ["backup_failure"], "roles": ["workstation"], "clients": ["acme"] })
    );
    assert_eq!(ws.json["sev3"], "business_hours");

    // The workstation template needs the client contact; unknown templates are 404; the
    // template's recipients are checked like any policy's (and nothing is stored).
    let mut no_contact = params.clone();
    no_contact["policy_id"] = json!("ws-2");
    let refused = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/escalation-policies/from-template/workstation-backup-next-day",
        no_contact,
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "bad_template_params")
    );
    let unknown = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/escalation-policies/from-template/nas-weekly",
        params.clone(),
    )
    .await;
    assert_eq!(unknown.status, 404);
    let mut nobody = params.clone();
    nobody["policy_id"] = json!("srv-2");
    nobody["supervisors"] = json!({ "type": "group", "group_id": "night" });
    let refused = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/escalation-policies/from-template/server-backup-same-day",
        nobody.clone(),
    )
    .await;
    assert_eq!((refused.status, refused.code()), (422, "unknown_group"));
    nobody["supervisors"] = json!({ "type": "on_call", "schedule_id": "night" });
    nobody["calendar_id"] = json!("weekdays");
    let refused = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/escalation-policies/from-template/server-backup-same-day",
        nobody,
    )
    .await;
    assert_eq!((refused.status, refused.code()), (422, "unknown_calendar"));
    let absent = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/escalation-policies/srv-2",
        Value::Null,
    )
    .await;
    assert_eq!(absent.status, 404);
    let not_a_writer = as_user(
        &stack,
        &tech,
        "POST",
        "/v1/escalation-policies/from-template/server-backup-same-day",
        params.clone(),
    )
    .await;
    assert_eq!(not_a_writer.status, 403);

    // A group a policy names cannot be deleted; the refusal names every such policy.
    let in_use = as_user(
        &stack,
        &admin,
        "DELETE",
        "/v1/user-groups/admins",
        Value::Null,
    )
    .await;
    assert_eq!((in_use.status, in_use.code()), (409, "group_in_use"));
    let message = in_use.json["error"]["message"].as_str().unwrap_or_default();
    for policy in ["acme-workstations", "server-backup-same-day", "servers"] {
        assert!(message.contains(policy), "{message}");
    }
    for policy in ["acme-workstations", "server-backup-same-day", "servers"] {
        let deleted = as_user(
            &stack,
            &admin,
            "DELETE",
            &format!("/v1/escalation-policies/{policy}"),
            Value::Null,
        )
        .await;
        assert_eq!(
            (deleted.status, &deleted.json["policy_id"]),
            (200, &json!(policy))
        );
    }
    let gone = as_user(
        &stack,
        &admin,
        "DELETE",
        "/v1/escalation-policies/servers",
        Value::Null,
    )
    .await;
    assert_eq!(gone.status, 404);
    let deleted = as_user(
        &stack,
        &admin,
        "DELETE",
        "/v1/user-groups/admins",
        Value::Null,
    )
    .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.json);
    let gone = as_user(&stack, &tech, "GET", "/v1/user-groups/admins", Value::Null).await;
    assert_eq!(gone.status, 404);
}

/// Calendars and rosters the test does not need: always open, nobody on call.
struct Open;

impl Resolver for Open {
    fn next_open(&self, _calendar: &str, at_ms: i64) -> Option<i64> {
        Some(at_ms)
    }
    fn at_local_time(
        &self,
        _calendar: Option<&str>,
        _zone: &str,
        after_ms: i64,
        _at: (u8, u8),
        _days_later: u32,
        _open_days_only: bool,
    ) -> i64 {
        after_ms
    }
    fn on_call(&self, _schedule: &str, _at_ms: i64) -> Option<String> {
        None
    }
    fn group_members(&self, _group: &str) -> Vec<String> {
        Vec::new()
    }
    fn describe(&self, _zone: &str, at_ms: i64) -> String {
        at_ms.to_string()
    }
}

fn actions(escalation: &Value) -> Vec<String> {
    escalation["trace"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|l| l["action"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_escalation_shows_on_the_alert_and_stops_when_a_technician_acknowledges() {
    let own = local_issuer();
    let stack = api_stack("esc-alert", &own).await;
    let ours = seed(&stack, "msp-escal", "acme", "hq", "ops").await;
    let tech = mint(&own, Role::Technician, Some(&ours.tenant), None);
    let alert_id = ours.params["alert_id"].clone();
    let tenant = ours.tenant.clone();

    // The seeded alert's episode gets an escalation, started and its first step run, as the
    // escalator would have stored it.
    let record = stack
        .ports
        .evaluation()
        .alert(&tenant, &alert_id)
        .await
        .expect("read")
        .expect("the alert");
    let opened_ms = record["opened_ms"].as_i64().expect("opened");
    let text = |f: &str| record[f].as_str().unwrap_or_default().to_owned();
    let facts = AlertFacts {
        tenant_id: tenant.clone(),
        alert_id: alert_id.clone(),
        opened_ms,
        client_id: ClientId::parse(&text("client_id")).expect("client"),
        site_id: SiteId::parse(&text("site_id")).expect("site"),
        device_id: DeviceId::parse(&text("device_id")).expect("device"),
        device_name: text("device_name"),
        family: serde_json::from_value(record["family"].clone()).expect("family"),
        severity: serde_json::from_value(record["severity"].clone()).expect("severity"),
        subject: text("subject"),
        detail: None,
        role: None,
    };
    let policy: EscalationPolicy = stack
        .ports
        .escalations()
        .policy(&tenant, "esc-acme")
        .await
        .expect("read")
        .expect("seeded policy");
    let started = now_ms();
    let mut escalation = Escalation::start(&policy, facts, started, &Open);
    escalation.run_due(started, &People::default(), &Open);
    // Handed to the notifier (not part of this test).
    escalation.outbox.clear();
    let work_store = stack.ports.alert_work();
    let (mut work, version) = work_store
        .work(&tenant, &alert_id, opened_ms)
        .await
        .expect("read");
    work.escalation = Some(escalation);
    assert!(
        work_store
            .save(&tenant, &alert_id, opened_ms, &work, version)
            .await
            .expect("save")
    );

    let path = format!("/v1/alerts/{alert_id}");
    let got = as_user(&stack, &tech, "GET", &path, Value::Null).await;
    assert_eq!(got.status, 200, "{:?}", got.json);
    let e = &got.json["escalation"];
    assert_eq!(
        (&e["policy_id"], &e["policy_name"], &e["state"], &e["round"]),
        (
            &json!("esc-acme"),
            &json!("servers of acme"),
            &json!("running"),
            &json!(0)
        )
    );
    assert_eq!(e["due_ms"], json!(started + 30 * 60_000));
    assert_eq!(e["next_step"]["number"], 3);
    assert_eq!(
        e["next_step"]["step"]["to"][0]["user_id"],
        json!(ours.params["user_id"])
    );
    assert_eq!(e["owner_deadline_ms"], Value::Null);
    assert_eq!(actions(e), ["started", "notified", "waiting"]);
    // The existing fields are unchanged.
    assert_eq!(
        (&got.json["status"], &got.json["alert_id"]),
        (&json!("open"), &json!(alert_id))
    );
    // The list shows it too.
    let listed = as_user(&stack, &tech, "GET", "/v1/alerts", Value::Null).await;
    let item = items(&listed.json)
        .into_iter()
        .find(|a| a["alert_id"] == json!(alert_id))
        .expect("listed");
    assert_eq!(item["escalation"]["state"], "running");

    // Taking the alert makes the technician the owner, due before the next step.
    let taken = as_user(&stack, &tech, "POST", &format!("{path}/take"), Value::Null).await;
    assert_eq!(taken.status, 200, "{:?}", taken.json);
    assert_eq!(
        taken.json["escalation"]["owner_deadline_ms"],
        json!(started + 30 * 60_000)
    );
    assert_eq!(
        actions(&taken.json["escalation"])
            .last()
            .map(String::as_str),
        Some("assigned")
    );

    // Acknowledging stops it, and the answer says so.
    let acked = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{path}/acknowledge"),
        Value::Null,
    )
    .await;
    assert_eq!(acked.status, 200, "{:?}", acked.json);
    let e = &acked.json["escalation"];
    assert_eq!(e["state"], "acknowledged");
    assert_eq!(e["acknowledged_by"], "user-technician");
    assert_eq!(
        (&e["due_ms"], &e["next_step"], &e["owner_deadline_ms"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(
        actions(e).last().map(String::as_str),
        Some("acknowledged"),
        "{e:?}"
    );
    assert_eq!(acked.json["status"], "acknowledged");
    // Stored: read again, and in the store nothing is due any more.
    let again = as_user(&stack, &tech, "GET", &path, Value::Null).await;
    assert_eq!(again.json["escalation"], acked.json["escalation"]);
    let (stored, _) = work_store
        .work(&tenant, &alert_id, opened_ms)
        .await
        .expect("read");
    let stored = stored.escalation.expect("escalation");
    assert_eq!((stored.timer_ms(), stored.is_live()), (None, false));

    // Resolving by hand ends it.
    let resolved = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{path}/resolve"),
        Value::Null,
    )
    .await;
    assert_eq!(resolved.status, 200, "{:?}", resolved.json);
    let e = &resolved.json["escalation"];
    assert_eq!(
        (&e["state"], &e["stop_reason"]),
        (&json!("stopped"), &json!("resolved_by_hand"))
    );
    assert_eq!(actions(e).last().map(String::as_str), Some("stopped"));
}
