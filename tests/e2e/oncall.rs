//! Business-hours calendars and on-call schedules end to end: stored through the API over
//! real HTTP against the emulator, holidays imported from a real iCalendar file, and the
//! answers ("open at T?", "who is on call at T?") checked at exact instants, across the
//! daylight-saving changes.

use serde_json::{Value, json};
use vigie_auth::Role;

use crate::api::{api_stack, as_user, local_issuer, mint};
use crate::stack::{Answer, Stack, placement};

const FRENCH_HOLIDAYS: &str = include_str!("../../shared/calendar/fixtures/jours-feries-fr.ics");

fn utc(s: &str) -> i64 {
    vigie_calendar::parse_instant(s).expect("instant")
}

async fn call(stack: &Stack, token: &str, method: &str, path: &str, body: Value) -> Answer {
    as_user(stack, token, method, path, body).await
}

/// The MISSION's supervision contract: Monday to Saturday 06:00–22:00, Paris.
fn supervision(scope: Value) -> Value {
    json!({
        "name": "Supervision contract",
        "time_zone": "Europe/Paris",
        "scope": scope,
        "weekly": [{ "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"],
                     "start": "06:00", "end": "22:00" }],
        "exceptions": [{ "date": "2026-12-24", "hours": [{ "start": "06:00", "end": "12:00" }],
                         "note": "Christmas Eve" }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_calendars_imported_from_ical_scoped_and_answered_across_dst() {
    let own = local_issuer();
    let stack = api_stack("oncall-cal", &own).await;
    let p = placement("msp-hours", "acme", "hq");
    stack.seed(&p).await;
    stack.seed(&placement("msp-hours", "globex", "hq")).await;
    let admin = mint(&own, Role::MspAdmin, Some(&p.tenant), None);
    let tech = mint(&own, Role::Technician, Some(&p.tenant), None);
    let viewer = mint(&own, Role::ClientViewer, Some(&p.tenant), Some("acme"));
    let acme = json!({ "level": "client", "client": "acme" });

    // Refusals, with stable codes.
    let mut bad = supervision(acme.clone());
    bad["time_zone"] = json!("Europe/Lutece");
    let a = call(&stack, &admin, "PUT", "/v1/business-calendars/sup", bad).await;
    assert_eq!(
        (a.status, a.code()),
        (422, "unknown_time_zone"),
        "{:?}",
        a.json
    );
    let mut bad = supervision(acme.clone());
    bad["weekly"][0]["end"] = json!("05:00");
    let a = call(&stack, &admin, "PUT", "/v1/business-calendars/sup", bad).await;
    assert_eq!((a.status, a.code()), (422, "bad_calendar"), "{:?}", a.json);
    let a = call(
        &stack,
        &admin,
        "PUT",
        "/v1/business-calendars/sup",
        supervision(json!({ "level": "tag", "key": "role", "value": "server" })),
    )
    .await;
    assert_eq!((a.status, a.code()), (422, "bad_scope"), "{:?}", a.json);
    let mut bad = supervision(acme.clone());
    bad["colour"] = json!("blue");
    let a = call(&stack, &admin, "PUT", "/v1/business-calendars/sup", bad).await;
    assert_eq!((a.status, a.code()), (422, "bad_body"), "{:?}", a.json);
    let a = call(
        &stack,
        &admin,
        "PUT",
        "/v1/business-calendars/sup",
        supervision(json!({ "level": "client", "client": "nobody" })),
    )
    .await;
    assert_eq!(a.status, 404, "{:?}", a.json);
    let a = call(
        &stack,
        &tech,
        "PUT",
        "/v1/business-calendars/sup",
        supervision(acme.clone()),
    )
    .await;
    assert_eq!(a.status, 403, "technicians do not write calendars");

    // Stored, for acme and for globex.
    let a = call(
        &stack,
        &admin,
        "PUT",
        "/v1/business-calendars/sup-acme",
        supervision(acme.clone()),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["calendar_id"], "sup-acme");
    assert_eq!(a.json["weekly"][0]["end"], "22:00");
    let a = call(
        &stack,
        &admin,
        "PUT",
        "/v1/business-calendars/sup-globex",
        supervision(json!({ "level": "site", "client": "globex", "site": "hq" })),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.json);

    // iCalendar import, twice: the second adds nothing.
    let import = |body: Value| {
        call(
            &stack,
            &admin,
            "POST",
            "/v1/business-calendars/sup-acme/holidays",
            body,
        )
    };
    let first = import(json!({ "ical": FRENCH_HOLIDAYS })).await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    let added = first.json["added"].as_u64().expect("added");
    // 8 fixed holidays for this year and 5 more, and the 6 movable ones of 2026 and 2027.
    assert_eq!(added, 8 * 6 + 6, "{:?}", first.json["calendar"]["holidays"]);
    assert_eq!(first.json["holidays"], added);
    let holidays = &first.json["calendar"]["holidays"];
    let named = |date: &str| {
        holidays
            .as_array()
            .expect("list")
            .iter()
            .find(|h| h["date"] == date)
            .map(|h| h["name"].as_str().unwrap_or_default().to_owned())
    };
    // Yearly rules are imported for this year and the next five (the API's clock is real).
    let next_year = vigie_calendar::LocalCalendar::utc()
        .to_local(crate::stack::now_ms())
        .0
        .year()
        + 1;
    let bastille = format!("{next_year}-07-14");
    assert_eq!(named(&bastille).as_deref(), Some("Fête nationale"));
    assert_eq!(named("2027-05-17").as_deref(), Some("Lundi de Pentecôte"));
    assert_eq!(
        named("2026-01-15"),
        None,
        "a timed meeting is not a holiday"
    );
    let second = import(json!({ "ical": FRENCH_HOLIDAYS })).await;
    assert_eq!((second.status, &second.json["added"]), (200, &json!(0)));
    assert_eq!(second.json["holidays"], added);
    let listed = import(json!({ "holidays": [
        { "date": "2026-12-31", "name": "Saint-Sylvestre (fermeture)" },
        { "date": "2026-12-25", "name": "Noël again" }
    ] }))
    .await;
    assert_eq!(listed.json["added"], 1, "{:?}", listed.json);
    let broken = import(json!({ "ical": "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261301\nEND:VEVENT\nEND:VCALENDAR\n" })).await;
    assert_eq!((broken.status, broken.code()), (422, "bad_ical"));
    assert!(
        broken.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 3")),
        "{:?}",
        broken.json
    );
    let both = import(json!({ "ical": FRENCH_HOLIDAYS, "holidays": [] })).await;
    assert_eq!(both.code(), "bad_body");

    // Open at T, across the spring change: closed Saturday 28 March 22:30 CET, opens Monday
    // 30 March 06:00 CEST (04:00 UTC) and closes at 22:00 CEST (20:00 UTC).
    let open = |at: String| {
        let stack = &stack;
        let viewer = viewer.clone();
        async move {
            call(
                stack,
                &viewer,
                "GET",
                &format!("/v1/business-calendars/sup-acme/open?at={at}"),
                Value::Null,
            )
            .await
        }
    };
    let a = open("2026-03-28T22:30:00%2B01:00".into()).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["open"], false);
    assert_eq!(a.json["local"], "2026-03-28T22:30+01:00");
    assert_eq!(a.json["next_open_ms"], utc("2026-03-30T04:00Z"));
    assert_eq!(a.json["next_open_local"], "2026-03-30T06:00+02:00");
    assert_eq!(a.json["next_close_ms"], utc("2026-03-30T20:00Z"));
    // Autumn: open Monday 26 October 06:00 CET (05:00 UTC), until 22:00 CET (21:00 UTC).
    let a = open(utc("2026-10-26T05:00Z").to_string()).await;
    assert_eq!(
        (a.json["open"].clone(), a.json["next_close_ms"].clone()),
        (json!(true), json!(utc("2026-10-26T21:00Z")))
    );
    // 14 July 2027 (imported) is closed; Christmas Eve closes at noon.
    let a = open(format!("{bastille}T10:00:00Z")).await;
    assert_eq!(a.json["open"], false, "{:?}", a.json);
    assert!(
        a.json["next_open_local"]
            .as_str()
            .is_some_and(|l| !l.starts_with(&bastille) && l.contains("T06:00+02:00")),
        "{:?}",
        a.json
    );
    let a = open("2026-12-24T09:00:00Z".into()).await;
    assert_eq!(a.json["next_close_local"], "2026-12-24T12:00+01:00");
    let a = open("yesterday".into()).await;
    assert_eq!((a.status, a.code()), (422, "bad_instant"));

    // A viewer of acme sees acme's calendar only; technicians see both.
    let a = call(
        &stack,
        &viewer,
        "GET",
        "/v1/business-calendars/sup-globex",
        Value::Null,
    )
    .await;
    assert_eq!(a.status, 404);
    let a = call(
        &stack,
        &viewer,
        "GET",
        "/v1/business-calendars",
        Value::Null,
    )
    .await;
    let ids: Vec<&str> = a.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["calendar_id"].as_str())
        .collect();
    assert_eq!(ids, ["sup-acme"]);
    let a = call(&stack, &tech, "GET", "/v1/business-calendars", Value::Null).await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(2));
    let a = call(
        &stack,
        &tech,
        "GET",
        "/v1/business-calendars/sup-globex",
        Value::Null,
    )
    .await;
    assert_eq!(a.json["scope"]["site"], "hq");

    // The escalation engine reads the same document by id.
    let stored = vigie_domain::ports::OnCallStore::business_calendar::<
        vigie_calendar::BusinessCalendar,
    >(&stack.ports.oncall(), &p.tenant, "sup-acme")
    .await
    .expect("read")
    .expect("stored");
    assert_eq!(stored.holidays.len() as u64, added + 1);
    assert!(!stored.is_open(utc(&format!("{bastille}T10:00:00Z"))));

    let a = call(
        &stack,
        &admin,
        "DELETE",
        "/v1/business-calendars/sup-acme",
        Value::Null,
    )
    .await;
    assert_eq!(a.status, 200);
    let a = call(
        &stack,
        &admin,
        "GET",
        "/v1/business-calendars/sup-acme",
        Value::Null,
    )
    .await;
    assert_eq!(a.status, 404);
}

/// A 24/7 weekly base rotation and a weekday office-hours layer on top, in Paris.
fn msp_schedule() -> Value {
    json!({
        "name": "MSP on-call",
        "time_zone": "Europe/Paris",
        "layers": [
            { "name": "base", "participants": ["usr-alice", "usr-bob"],
              "rotation": { "type": "weekly" }, "start": "2026-03-23T09:00" },
            { "name": "office", "participants": ["usr-carol", "usr-dave"],
              "rotation": { "type": "daily" }, "start": "2026-03-23T08:00",
              "active": [{ "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                           "start": "08:00", "end": "18:00" }] }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_on_call_at_any_time_across_dst_with_a_technician_swapping_a_shift() {
    let own = local_issuer();
    let stack = api_stack("oncall-who", &own).await;
    let p = placement("msp-oncall", "acme", "hq");
    stack.seed(&p).await;
    let admin = mint(&own, Role::MspAdmin, Some(&p.tenant), None);
    let tech = mint(&own, Role::Technician, Some(&p.tenant), None);
    let viewer = mint(&own, Role::ClientViewer, Some(&p.tenant), Some("acme"));
    let path = "/v1/oncall-schedules/msp";

    // Refusals.
    let mut bad = msp_schedule();
    bad["layers"] = json!([]);
    let a = call(&stack, &admin, "PUT", path, bad).await;
    assert_eq!((a.status, a.code()), (422, "bad_schedule"), "{:?}", a.json);
    let mut bad = msp_schedule();
    bad["layers"][0]["rotation"] = json!({ "type": "weekly", "hours": 12 });
    let a = call(&stack, &admin, "PUT", path, bad).await;
    assert_eq!((a.status, a.code()), (422, "bad_body"), "{:?}", a.json);
    let a = call(&stack, &tech, "PUT", path, msp_schedule()).await;
    assert_eq!(a.status, 403);

    let a = call(&stack, &admin, "PUT", path, msp_schedule()).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["layers"][1]["rotation"]["type"], "daily");

    let who = |at: String| {
        let stack = &stack;
        let tech = tech.clone();
        async move {
            let a = call(
                stack,
                &tech,
                "GET",
                &format!("{path}/on-call?at={at}"),
                Value::Null,
            )
            .await;
            assert_eq!(a.status, 200, "{:?}", a.json);
            a.json
        }
    };
    // Saturday 28 March: the base layer (alice's week from Monday 23 09:00 CET), since the
    // office layer stopped on Friday at 18:00 CET, until it starts again on Monday 30 at
    // 08:00 — summer time by then (06:00 UTC).
    let a = who(utc("2026-03-28T12:00Z").to_string()).await;
    let on = &a["on_call"];
    assert_eq!(
        (on["user"].clone(), on["layer"].clone()),
        (json!("usr-alice"), json!("base"))
    );
    assert_eq!(on["since_ms"], utc("2026-03-27T17:00Z"));
    assert_eq!(on["since_local"], "2026-03-27T18:00+01:00");
    assert_eq!(on["until_ms"], utc("2026-03-30T06:00Z"));
    assert_eq!(on["until_local"], "2026-03-30T08:00+02:00");
    // Monday 30 March 10:00 CEST: the office layer's eighth day (dave), 08:00–18:00 CEST.
    let a = who("2026-03-30T10:00:00%2B02:00".into()).await;
    let on = &a["on_call"];
    assert_eq!(
        (on["user"].clone(), on["layer"].clone()),
        (json!("usr-dave"), json!("office"))
    );
    assert_eq!(
        (on["since_ms"].clone(), on["until_ms"].clone()),
        (
            json!(utc("2026-03-30T06:00Z")),
            json!(utc("2026-03-30T16:00Z"))
        )
    );
    // That evening the base layer shows through: bob's week began at 09:00 CEST.
    let a = who(utc("2026-03-30T16:30Z").to_string()).await;
    assert_eq!(a["on_call"]["user"], "usr-bob");
    assert_eq!(a["on_call"]["until_ms"], utc("2026-03-31T06:00Z"));
    // Sunday 25 October (the clocks go back): alice from Friday 18:00 CEST to Monday 08:00
    // CET (07:00 UTC).
    let a = who("2026-10-25T12:00:00Z".into()).await;
    let on = &a["on_call"];
    assert_eq!(on["user"], "usr-alice");
    assert_eq!(on["since_ms"], utc("2026-10-23T16:00Z"));
    assert_eq!(on["until_ms"], utc("2026-10-26T07:00Z"));
    assert_eq!(on["until_local"], "2026-10-26T08:00+01:00");
    // A future instant: Monday 4 January 2027 09:00 CET, the office layer's 288th day.
    let a = who("2027-01-04T09:00:00%2B01:00".into()).await;
    assert_eq!(a["on_call"]["user"], "usr-dave");
    assert_eq!(a["on_call"]["since_local"], "2027-01-04T08:00+01:00");
    // Before the first hand-off nobody is on call.
    let a = who(utc("2026-03-01T00:00Z").to_string()).await;
    assert_eq!(a["on_call"], Value::Null);

    // A technician swaps Sunday 25 October 11:00–15:00 CET with eve.
    let swap = json!({ "user": "usr-eve", "start": "2026-10-25T11:00:00+01:00",
                       "end": "2026-10-25T15:00:00+01:00", "note": "alice at a wedding" });
    let added = call(
        &stack,
        &tech,
        "POST",
        &format!("{path}/overrides"),
        swap.clone(),
    )
    .await;
    assert_eq!(added.status, 201, "{:?}", added.json);
    let override_id = added.json["override"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The same request again (a retry) adds nothing.
    let again = call(&stack, &tech, "POST", &format!("{path}/overrides"), swap).await;
    assert_eq!(again.status, 201);
    assert_eq!(
        again.json["schedule"]["overrides"].as_array().map(Vec::len),
        Some(1)
    );
    let a = who("2026-10-25T10:00:00Z".into()).await;
    let on = &a["on_call"];
    assert_eq!(
        (
            on["user"].clone(),
            on["layer"].clone(),
            on["override_id"].clone()
        ),
        (json!("usr-eve"), Value::Null, json!(override_id))
    );
    assert_eq!(
        (on["since_ms"].clone(), on["until_ms"].clone()),
        (
            json!(utc("2026-10-25T10:00Z")),
            json!(utc("2026-10-25T14:00Z"))
        )
    );
    let shifts = call(
        &stack,
        &tech,
        "GET",
        &format!("{path}/shifts?from=2026-10-25T00:00:00Z&to=2026-10-26T00:00:00Z"),
        Value::Null,
    )
    .await;
    let got: Vec<(String, i64, i64)> = shifts.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| {
            (
                s["user"].as_str().unwrap_or_default().to_owned(),
                s["start_ms"].as_i64().unwrap_or(0),
                s["end_ms"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "usr-alice".to_owned(),
                utc("2026-10-25T00:00Z"),
                utc("2026-10-25T10:00Z")
            ),
            (
                "usr-eve".to_owned(),
                utc("2026-10-25T10:00Z"),
                utc("2026-10-25T14:00Z")
            ),
            (
                "usr-alice".to_owned(),
                utc("2026-10-25T14:00Z"),
                utc("2026-10-26T00:00Z")
            ),
        ]
    );
    let a = call(
        &stack,
        &tech,
        "GET",
        &format!("{path}/shifts?from=0&to={}", 91 * 86_400_000i64),
        Value::Null,
    )
    .await;
    assert_eq!((a.status, a.code()), (422, "bad_range"));
    let a = call(
        &stack,
        &viewer,
        "GET",
        &format!("{path}/on-call"),
        Value::Null,
    )
    .await;
    assert_eq!(a.status, 403, "viewers do not read on-call schedules");

    // Four shift swaps at once all land (each edit is conditional on the version it read).
    let post = |i: i64| {
        let body = json!({ "id": format!("swap-{i}"), "user": format!("usr-{i}"),
            "start": utc("2027-02-01T00:00Z") + i * 3_600_000,
            "end": utc("2027-02-01T01:00Z") + i * 3_600_000 });
        let (stack, tech) = (&stack, tech.clone());
        async move { call(stack, &tech, "POST", &format!("{path}/overrides"), body).await }
    };
    let (a, b, c, d) = tokio::join!(post(0), post(1), post(2), post(3));
    for a in [a, b, c, d] {
        assert_eq!(a.status, 201, "{:?}", a.json);
    }
    let a = call(&stack, &tech, "GET", path, Value::Null).await;
    assert_eq!(
        a.json["overrides"].as_array().map(Vec::len),
        Some(5),
        "{:?}",
        a.json["overrides"]
    );

    // An admin edits the rotations without sending overrides: the swaps are kept.
    let mut edited = msp_schedule();
    edited["name"] = json!("MSP on-call (2027)");
    let a = call(&stack, &admin, "PUT", path, edited).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["overrides"].as_array().map(Vec::len), Some(5));

    // Removing the swap gives the shift back to alice.
    let del = call(
        &stack,
        &tech,
        "DELETE",
        &format!("{path}/overrides/{override_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(del.status, 200, "{:?}", del.json);
    let a = who("2026-10-25T10:00:00Z".into()).await;
    assert_eq!(a["on_call"]["user"], "usr-alice");
    let del = call(
        &stack,
        &tech,
        "DELETE",
        &format!("{path}/overrides/{override_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(del.status, 404);

    // The escalation engine reads the schedule by id.
    let s = vigie_domain::ports::OnCallStore::oncall_schedule::<vigie_calendar::OnCallSchedule>(
        &stack.ports.oncall(),
        &p.tenant,
        "msp",
    )
    .await
    .expect("read")
    .expect("stored");
    assert_eq!(
        s.on_call_at(utc("2026-03-30T08:00Z"))
            .map(|a| a.user)
            .as_deref(),
        Some("usr-dave")
    );
}
