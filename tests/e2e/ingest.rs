//! The ingestion function over real HTTP, against the emulator: enrolment, accepted batches on
//! the queue, and every refusal with its status and code.

use vigie_aws::aws_sdk_dynamodb::types::AttributeValue;
use vigie_domain::envelope::attributes;
use vigie_domain::intake::gzip;
use vigie_domain::keys::device_identity;
use vigie_domain::protocol::{limits, routes};
use vigie_domain::signing::DeviceSigningKey;

use crate::stack::{
    Stack, batch_body, enroll, now_ms, placement, post_batch, sample_batch, send, signed_headers,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_device_lands_its_batches_on_the_queue_with_its_placement() {
    let stack = Stack::start("ingest-accept").await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let (_, token) = stack.token(&p, 1).await;
    let (answer, key) = enroll(&stack.url(), token.expose()).await;
    assert_eq!(answer.status, 201, "{:?}", answer.json);
    let device = answer.json["device_id"]
        .as_str()
        .expect("device id")
        .to_owned();
    assert_eq!(answer.json["tenant_id"], "msp-alpha");
    assert_eq!(answer.json["config"]["sample_interval_s"], 60);

    for seq in 1..=3 {
        let a = post_batch(
            &stack.url(),
            &key,
            &device,
            seq,
            now_ms(),
            batch_body(now_ms(), 2),
        )
        .await;
        assert_eq!(a.status, 202, "{:?}", a.json);
        assert_eq!(a.json["seq"], seq);
    }

    // The configuration route answers the signed device.
    let h = signed_headers(&key, &device, "GET", routes::CONFIG, 0, now_ms(), b"");
    let cfg = send(
        "GET",
        format!("{}{}", stack.url(), routes::CONFIG),
        h,
        vec![],
    )
    .await;
    assert_eq!(cfg.status, 200, "{:?}", cfg.json);
    assert_eq!(cfg.json["send_interval_s"], 60);

    // The queue holds the three batches, in order, with tenant, client, site and device.
    let sqs = &stack.ports.clients().sqs;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&stack.provisioned.telemetry_queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(
                vigie_aws::aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            let attr = |n: &str| {
                m.message_attributes()
                    .and_then(|a| a.get(n))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            };
            assert_eq!(attr(attributes::TENANT).as_deref(), Some("msp-alpha"));
            assert_eq!(attr(attributes::CLIENT).as_deref(), Some("acme"));
            assert_eq!(attr(attributes::SITE).as_deref(), Some("hq"));
            assert_eq!(attr(attributes::DEVICE).as_deref(), Some(device.as_str()));
            let body: serde_json::Value =
                serde_json::from_str(m.body().expect("body")).expect("json");
            assert_eq!(body["kind"], "batch");
            assert_eq!(body["tenant_id"], "msp-alpha");
            assert_eq!(
                body["batch"]["offsets_ms"].as_array().map(Vec::len),
                Some(2)
            );
            seen.push(body["seq"].as_u64().expect("seq"));
            sqs.delete_message()
                .queue_url(&stack.provisioned.telemetry_queue_url)
                .receipt_handle(m.receipt_handle().expect("handle"))
                .send()
                .await
                .expect("delete");
        }
        if seen.len() >= 3 {
            break;
        }
    }
    assert_eq!(seen, vec![1, 2, 3]);
    let (_, accepted) = stack.runtime.ingest().counters().snapshot();
    assert_eq!(accepted, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_stale_oversized_and_malformed_batches_are_refused_with_their_codes() {
    let stack = Stack::start("ingest-refuse").await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let (_, token) = stack.token(&p, 2).await;
    let (a, key) = enroll(&stack.url(), token.expose()).await;
    assert_eq!(a.status, 201);
    let device = a.json["device_id"].as_str().expect("device").to_owned();
    let (b, other_key) = enroll(&stack.url(), token.expose()).await;
    assert_eq!(b.status, 201);
    let url = stack.url();
    let now = now_ms();

    // Accept seq 1 so the replay has something to replay.
    let body = batch_body(now, 1);
    assert_eq!(
        post_batch(&url, &key, &device, 1, now, body.clone())
            .await
            .status,
        202
    );

    let cases: Vec<(&str, crate::stack::Answer, u16, &str)> = vec![
        (
            "forged signature",
            post_batch(
                &url,
                &DeviceSigningKey::generate(),
                &device,
                2,
                now,
                body.clone(),
            )
            .await,
            401,
            "bad_signature",
        ),
        (
            "another device's key",
            post_batch(&url, &other_key, &device, 2, now, body.clone()).await,
            401,
            "bad_signature",
        ),
        (
            "replayed batch",
            post_batch(&url, &key, &device, 1, now_ms(), body.clone()).await,
            409,
            "sequence_replayed",
        ),
        (
            "stale timestamp",
            post_batch(&url, &key, &device, 2, now - 10 * 60_000, body.clone()).await,
            401,
            "stale_timestamp",
        ),
        (
            "future timestamp",
            post_batch(&url, &key, &device, 2, now + 10 * 60_000, body.clone()).await,
            401,
            "stale_timestamp",
        ),
        (
            "oversized body",
            post_batch(
                &url,
                &key,
                &device,
                2,
                now,
                vec![7u8; limits::MAX_COMPRESSED_BODY + 1],
            )
            .await,
            413,
            "body_too_large",
        ),
        (
            "zip bomb",
            post_batch(&url, &key, &device, 2, now, gzip(&vec![b' '; 64 << 20])).await,
            413,
            "decompressed_too_large",
        ),
        (
            "malformed JSON",
            post_batch(&url, &key, &device, 2, now, gzip(b"{\"schema\":1,")).await,
            400,
            "malformed_json",
        ),
        (
            "not gzip",
            post_batch(&url, &key, &device, 2, now, b"plain".to_vec()).await,
            400,
            "malformed_compression",
        ),
        (
            "wrong schema version",
            post_batch(&url, &key, &device, 2, now, {
                let mut v = serde_json::to_value(sample_batch(now, 1)).expect("json");
                v["schema"] = 2.into();
                gzip(&serde_json::to_vec(&v).expect("json"))
            })
            .await,
            422,
            "unsupported_schema_version",
        ),
        (
            "batch naming a tenant",
            post_batch(&url, &key, &device, 2, now, {
                let mut v = serde_json::to_value(sample_batch(now, 1)).expect("json");
                v["tenant_id"] = "msp-beta".into();
                gzip(&serde_json::to_vec(&v).expect("json"))
            })
            .await,
            422,
            "invalid_batch",
        ),
        (
            "unknown device",
            post_batch(
                &url,
                &key,
                "dev-unknownunknownunknownunk",
                2,
                now,
                body.clone(),
            )
            .await,
            401,
            "unknown_device",
        ),
        (
            "unsigned",
            send(
                "POST",
                format!("{url}{}", routes::BATCHES),
                vec![
                    ("content-type".into(), "application/json".into()),
                    ("content-encoding".into(), "gzip".into()),
                ],
                body.clone(),
            )
            .await,
            401,
            "missing_signature",
        ),
        (
            "wrong media type",
            {
                let mut h = signed_headers(&key, &device, "POST", routes::BATCHES, 2, now, &body);
                h.push(("content-type".into(), "text/csv".into()));
                send("POST", format!("{url}{}", routes::BATCHES), h, body.clone()).await
            },
            415,
            "unsupported_media_type",
        ),
        (
            "unknown route",
            send("GET", format!("{url}/v1/nothing"), vec![], vec![]).await,
            404,
            "not_found",
        ),
    ];
    for (what, answer, status, code) in &cases {
        assert_eq!(
            (answer.status, answer.code()),
            (*status, *code),
            "{what}: {:?}",
            answer.json
        );
        assert!(
            answer.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what} has a message"
        );
    }
    let (refused, accepted) = stack.runtime.ingest().counters().snapshot();
    assert_eq!(accepted, 1, "no refused batch was queued");
    assert_eq!(refused.get("bad_signature"), Some(&2));
    assert_eq!(refused.get("stale_timestamp"), Some(&2));
    for (_, _, _, code) in &cases {
        assert!(
            refused.get(*code).is_some_and(|n| *n >= 1),
            "{code} counted"
        );
    }
    // The replay told the agent what the server has.
    assert_eq!(cases[2].1.json["error"]["last_accepted_seq"], 1);

    // A device over its rate: 429 with retry-after.
    let table = stack.provisioned.table_name.clone();
    let key_of = device_identity(&vigie_domain::ids::DeviceId::parse(&device).expect("id"));
    let window = now_ms() - now_ms().rem_euclid(60_000);
    stack
        .ports
        .clients()
        .dynamodb
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(key_of.pk.clone()))
        .key("sk", AttributeValue::S(key_of.sk.clone()))
        .update_expression("SET rate_window_ms = :w, rate_count = :c")
        .expression_attribute_values(":w", AttributeValue::N(window.to_string()))
        .expression_attribute_values(
            ":c",
            AttributeValue::N(vigie_domain::device::MAX_BATCHES_PER_MINUTE.to_string()),
        )
        .send()
        .await
        .expect("fill the rate window");
    let limited = post_batch(&url, &key, &device, 2, now_ms(), batch_body(now_ms(), 1)).await;
    if now_ms() - window < 60_000 {
        assert_eq!(
            (limited.status, limited.code()),
            (429, "rate_limited"),
            "{:?}",
            limited.json
        );
    }

    // A revoked device is told so once it proves who it is.
    assert!(
        stack
            .ports
            .devices()
            .revoke(
                &p.tenant,
                &vigie_domain::ids::DeviceId::parse(&device).expect("id")
            )
            .await
            .expect("revoke")
    );
    let revoked = post_batch(&url, &key, &device, 3, now_ms(), batch_body(now_ms(), 1)).await;
    assert_eq!((revoked.status, revoked.code()), (403, "device_revoked"));
    let forged = post_batch(
        &url,
        &DeviceSigningKey::generate(),
        &device,
        3,
        now_ms(),
        batch_body(now_ms(), 1),
    )
    .await;
    assert_eq!(
        forged.code(),
        "bad_signature",
        "revocation is not revealed to a forger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_tokens_expire_run_out_are_revocable_and_bind_their_tenant() {
    let stack = Stack::start("ingest-tokens").await;
    let a = placement("msp-alpha", "acme", "hq");
    let b = placement("msp-beta", "globex", "paris");
    stack.seed(&a).await;
    stack.seed(&b).await;
    let url = stack.url();

    // Single use: the second enrolment is refused.
    let (_, single) = stack.token(&a, 1).await;
    assert_eq!(enroll(&url, single.expose()).await.0.status, 201);
    let (used, _) = enroll(&url, single.expose()).await;
    assert_eq!(
        (used.status, used.code()),
        (403, "enrollment_token_used_up")
    );

    // Expired.
    let now = now_ms();
    let (mut expired, plain) = vigie_domain::enrollment::EnrollmentToken::issue(
        a.clone(),
        now - 7_200_000,
        now - 60_000,
        5,
        "old",
    )
    .expect("issue");
    expired.expires_ms = now - 1;
    stack
        .ports
        .enrollment()
        .create(&expired)
        .await
        .expect("store");
    let (ans, _) = enroll(&url, plain.expose()).await;
    assert_eq!((ans.status, ans.code()), (403, "enrollment_token_expired"));

    // Revoked, and a tenant cannot revoke another tenant's token.
    let (tok, plain) = stack.token(&a, 5).await;
    assert!(
        !stack
            .ports
            .enrollment()
            .revoke(&b.tenant, &tok.id)
            .await
            .expect("call"),
        "tenant B cannot revoke A's token"
    );
    assert!(
        stack
            .ports
            .enrollment()
            .revoke(&a.tenant, &tok.id)
            .await
            .expect("call")
    );
    let (ans, _) = enroll(&url, plain.expose()).await;
    assert_eq!((ans.status, ans.code()), (403, "enrollment_token_revoked"));

    // Unknown and malformed tokens.
    let (ans, _) = enroll(
        &url,
        "et-aaaaaaaaaaaaaaaa.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    assert_eq!((ans.status, ans.code()), (401, "enrollment_token_invalid"));
    let (ans, _) = enroll(&url, "garbage").await;
    assert_eq!((ans.status, ans.code()), (401, "enrollment_token_invalid"));

    // Tenant A's token, with the agent claiming tenant B: refused outright...
    let (_, token_a) = stack.token(&a, 2).await;
    let key = DeviceSigningKey::generate();
    let claim = serde_json::json!({
        "token": token_a.expose(), "public_key": key.public_key().to_base64(),
        "hostname": "h", "os": "o", "agent_version": "0.1.0",
        "tenant_id": "msp-beta", "site_id": "paris",
    });
    let ans = send(
        "POST",
        format!("{url}{}", routes::ENROLL),
        vec![("content-type".into(), "application/json".into())],
        serde_json::to_vec(&claim).expect("json"),
    )
    .await;
    assert_eq!(
        (ans.status, ans.code()),
        (400, "malformed_json"),
        "{:?}",
        ans.json
    );
    // ...and a plain enrolment with it lands in tenant A, never in B.
    let (ans, _) = enroll(&url, token_a.expose()).await;
    assert_eq!(ans.status, 201);
    assert_eq!(ans.json["tenant_id"], "msp-alpha");
    let devices_b = stack
        .ports
        .devices()
        .list(&b.tenant, None, None)
        .await
        .expect("list");
    assert!(
        devices_b.is_empty(),
        "tenant B has no devices: {devices_b:?}"
    );
    let devices_a = stack
        .ports
        .devices()
        .list(&a.tenant, None, None)
        .await
        .expect("list");
    assert_eq!(devices_a.len(), 2);
    assert!(devices_a.iter().all(|d| d.placement == a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_large_for_sqs_travels_through_the_spill_bucket() {
    let stack = Stack::start("ingest-spill").await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let (_, token) = stack.token(&p, 1).await;
    let (a, key) = enroll(&stack.url(), token.expose()).await;
    let device = a.json["device_id"].as_str().expect("device").to_owned();

    // A day of minute samples from a 64-core server: far over an SQS message once inflated.
    let now = now_ms();
    let mut batch = sample_batch(now, vigie_domain::telemetry::bounds::MAX_SAMPLES);
    let cpu = batch.cpu.as_mut().expect("cpu");
    cpu.per_core_pct_x100 = (0..64u32)
        .map(|core| {
            (0..batch.offsets_ms.len())
                .map(|i| Some((core * 37 + i as u32 * 11) % 10_000))
                .collect()
        })
        .collect();
    let json = serde_json::to_vec(&batch).expect("json");
    assert!(
        json.len() > vigie_domain::envelope::MAX_INLINE_MESSAGE,
        "{} bytes",
        json.len()
    );
    let answer = post_batch(&stack.url(), &key, &device, 1, now_ms(), gzip(&json)).await;
    assert_eq!(answer.status, 202, "{:?}", answer.json);

    let sqs = &stack.ports.clients().sqs;
    let raw = sqs
        .receive_message()
        .queue_url(&stack.provisioned.telemetry_queue_url)
        .visibility_timeout(0)
        .send()
        .await
        .expect("receive");
    let body: serde_json::Value =
        serde_json::from_str(raw.messages()[0].body().expect("body")).expect("json");
    assert_eq!(body["kind"], "spilled");
    assert_eq!(body["bucket"], stack.provisioned.spill_bucket.as_str());
    assert!(
        body["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("tenants/msp-alpha/spill/"))
    );

    let got = stack
        .ports
        .telemetry_queue()
        .receive(10, 1)
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].envelope.batch, batch,
        "the whole batch comes back from the spill bucket"
    );
    assert_eq!(got[0].envelope.tenant_id.as_str(), "msp-alpha");
}
