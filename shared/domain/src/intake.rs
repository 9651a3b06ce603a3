//! The intake check of a telemetry batch, pure: headers → clock → signature → size →
//! decompression (bounded) → parse → validate. The ingestion function wraps it with the device
//! lookup, the sequence check and the queue.

use std::io::Read as _;

use serde::Deserialize;

use crate::ids::DeviceId;
use crate::protocol::limits;
use crate::signing::{DevicePublicKey, SignedRequest, headers};
use crate::telemetry::{BatchInvalid, SCHEMA_VERSION, TelemetryBatch};

/// Why a request is refused. Each variant has a stable [`code`](IntakeRefusal::code); the
/// ingestion function maps each to an HTTP status in one place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntakeRefusal {
    #[error("missing header {0}: agent requests must be signed")]
    MissingHeader(&'static str),
    #[error("header {0} is malformed")]
    MalformedHeader(&'static str),
    #[error("this device is not enrolled")]
    UnknownDevice,
    #[error("this device has been revoked")]
    DeviceRevoked,
    #[error("the signature does not verify against the device's key")]
    BadSignature,
    #[error("the request timestamp is {skew_s} s away from the server's clock (limit {limit_s} s)")]
    StaleTimestamp { skew_s: i64, limit_s: i64 },
    #[error("sequence number {seq} was already accepted (last accepted: {last})")]
    Replayed { seq: u64, last: u64 },
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the body inflates to more than {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("the body is not valid gzip")]
    MalformedCompression,
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("schema version {0} is not supported (this server understands {SCHEMA_VERSION})")]
    UnsupportedSchema(u32),
    #[error("the batch is invalid: {0}")]
    Invalid(String),
    #[error("too many requests from this device; retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u32 },
}

impl IntakeRefusal {
    /// The stable code that goes into the error body and the refusal counters.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature",
            Self::MalformedHeader(_) => "malformed_header",
            Self::UnknownDevice => "unknown_device",
            Self::DeviceRevoked => "device_revoked",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::Replayed { .. } => "sequence_replayed",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::DecompressedTooLarge { .. } => "decompressed_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::MalformedCompression => "malformed_compression",
            Self::MalformedJson(_) => "malformed_json",
            Self::UnsupportedSchema(_) => "unsupported_schema_version",
            Self::Invalid(_) => "invalid_batch",
            Self::RateLimited { .. } => "rate_limited",
        }
    }
}

impl From<BatchInvalid> for IntakeRefusal {
    fn from(e: BatchInvalid) -> Self {
        match e {
            BatchInvalid::UnsupportedSchema(v) => Self::UnsupportedSchema(v),
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// The signature headers of an agent request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub device: DeviceId,
    pub timestamp_ms: i64,
    pub seq: u64,
    pub signature: String,
}

impl SignatureHeaders {
    /// Reads the four headers through `get` (header lookup by lower-case name).
    pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, IntakeRefusal> {
        let need = |name: &'static str| {
            get(name)
                .map(str::trim)
                .ok_or(IntakeRefusal::MissingHeader(name))
        };
        let device = DeviceId::parse(need(headers::DEVICE)?)
            .map_err(|_| IntakeRefusal::MalformedHeader(headers::DEVICE))?;
        let timestamp_ms = need(headers::TIMESTAMP)?
            .parse()
            .map_err(|_| IntakeRefusal::MalformedHeader(headers::TIMESTAMP))?;
        let seq = need(headers::SEQUENCE)?
            .parse()
            .map_err(|_| IntakeRefusal::MalformedHeader(headers::SEQUENCE))?;
        let signature = need(headers::SIGNATURE)?.to_owned();
        if signature.len() > 128 {
            return Err(IntakeRefusal::MalformedHeader(headers::SIGNATURE));
        }
        Ok(Self {
            device,
            timestamp_ms,
            seq,
            signature,
        })
    }

    /// Checks the timestamp is within the skew window of `now_ms`.
    pub fn check_clock(&self, now_ms: i64) -> Result<(), IntakeRefusal> {
        let skew = self.timestamp_ms.saturating_sub(now_ms);
        if skew.abs() > limits::MAX_CLOCK_SKEW_MS {
            return Err(IntakeRefusal::StaleTimestamp {
                skew_s: skew / 1000,
                limit_s: limits::MAX_CLOCK_SKEW_MS / 1000,
            });
        }
        Ok(())
    }

    /// Verifies the signature over `method`, `path` and the exact body bytes.
    pub fn verify(
        &self,
        key: &DevicePublicKey,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(), IntakeRefusal> {
        let request = SignedRequest {
            method,
            path,
            device: &self.device,
            timestamp_ms: self.timestamp_ms,
            seq: self.seq,
            body,
        };
        key.verify(&request, &self.signature)
            .map_err(|_| IntakeRefusal::BadSignature)
    }
}

/// How the body is encoded, from `Content-Type` and `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Gzip,
    Identity,
}

impl BodyEncoding {
    pub fn from_headers(
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<Self, IntakeRefusal> {
        let media = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(IntakeRefusal::UnsupportedMediaType(format!(
                "content-type must be application/json, got {:?}",
                content_type.unwrap_or("")
            )));
        }
        match content_encoding.map(str::trim) {
            None | Some("") | Some("identity") => Ok(Self::Identity),
            Some(e) if e.eq_ignore_ascii_case("gzip") => Ok(Self::Gzip),
            Some(other) => Err(IntakeRefusal::UnsupportedMediaType(format!(
                "content-encoding must be gzip or identity, got {other:?}"
            ))),
        }
    }
}

/// Inflates at most `limit` bytes; more is a refusal, decided before the rest is inflated.
pub fn inflate_bounded(body: &[u8], limit: usize) -> Result<Vec<u8>, IntakeRefusal> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(16).min(limit));
    // The body is already in memory: read it as a buffer, without another 32 KiB copy buffer.
    let decoder = flate2::bufread::GzDecoder::new(body);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| IntakeRefusal::MalformedCompression)?;
    if out.len() > limit {
        return Err(IntakeRefusal::DecompressedTooLarge { limit });
    }
    Ok(out)
}

/// Decodes and validates a batch body (already size-checked on the wire).
pub fn decode_batch(
    body: &[u8],
    encoding: BodyEncoding,
    now_ms: i64,
) -> Result<TelemetryBatch, IntakeRefusal> {
    let inflated;
    let json = match encoding {
        BodyEncoding::Gzip => {
            inflated = inflate_bounded(body, limits::MAX_DECOMPRESSED_BODY)?;
            &inflated[..]
        }
        BodyEncoding::Identity => {
            if body.len() > limits::MAX_DECOMPRESSED_BODY {
                return Err(IntakeRefusal::BodyTooLarge {
                    limit: limits::MAX_DECOMPRESSED_BODY,
                });
            }
            body
        }
    };
    let batch: TelemetryBatch =
        serde_json::from_slice(json).map_err(|e| classify_parse_error(json, e))?;
    batch.validate(now_ms)?;
    Ok(batch)
}

/// A parse failure is either broken JSON (400), another schema version (422), or JSON of the
/// wrong shape (422). Only the slow path pays for telling them apart.
fn classify_parse_error(json: &[u8], e: serde_json::Error) -> IntakeRefusal {
    #[derive(Deserialize)]
    struct VersionOnly {
        schema: Option<u32>,
    }
    if e.is_syntax() || e.is_eof() {
        return IntakeRefusal::MalformedJson(e.to_string());
    }
    match serde_json::from_slice::<VersionOnly>(json) {
        Ok(VersionOnly { schema: Some(v) }) if v != SCHEMA_VERSION => {
            IntakeRefusal::UnsupportedSchema(v)
        }
        _ => IntakeRefusal::Invalid(e.to_string()),
    }
}

/// The whole pure check of a batch request, for a device whose key is known.
/// This is the ingest hot path measured by `benches/intake.rs`.
pub fn check_batch(
    headers: &SignatureHeaders,
    key: &DevicePublicKey,
    path: &str,
    encoding: BodyEncoding,
    body: &[u8],
    now_ms: i64,
) -> Result<TelemetryBatch, IntakeRefusal> {
    if body.len() > limits::MAX_COMPRESSED_BODY {
        return Err(IntakeRefusal::BodyTooLarge {
            limit: limits::MAX_COMPRESSED_BODY,
        });
    }
    headers.check_clock(now_ms)?;
    headers.verify(key, "POST", path, body)?;
    decode_batch(body, encoding, now_ms)
}

/// Gzip-compresses a body (the agent's side of [`decode_batch`]).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::routes;
    use crate::signing::DeviceSigningKey;
    use crate::telemetry::batch::tests::batch;

    const NOW: i64 = 1_790_000_000_000;

    fn signed(
        key: &DeviceSigningKey,
        device: &DeviceId,
        body: &[u8],
        seq: u64,
        ts: i64,
    ) -> SignatureHeaders {
        let sig = key.sign(&SignedRequest {
            method: "POST",
            path: routes::BATCHES,
            device,
            timestamp_ms: ts,
            seq,
            body,
        });
        SignatureHeaders {
            device: device.clone(),
            timestamp_ms: ts,
            seq,
            signature: sig,
        }
    }

    #[test]
    fn a_signed_gzip_batch_passes() {
        let key = DeviceSigningKey::generate();
        let device = DeviceId::generate();
        let body = gzip(&serde_json::to_vec(&batch(NOW, 60)).expect("json"));
        let h = signed(&key, &device, &body, 1, NOW);
        let b = check_batch(
            &h,
            &key.public_key(),
            routes::BATCHES,
            BodyEncoding::Gzip,
            &body,
            NOW,
        )
        .expect("accepted");
        assert_eq!(b.len(), 60);
    }

    #[test]
    fn refusals_carry_their_codes() {
        let key = DeviceSigningKey::generate();
        let device = DeviceId::generate();
        let pk = key.public_key();
        let json = serde_json::to_vec(&batch(NOW, 1)).expect("json");
        let body = gzip(&json);

        let h = signed(&key, &device, &body, 1, NOW - 10 * 60_000);
        let e = check_batch(&h, &pk, routes::BATCHES, BodyEncoding::Gzip, &body, NOW)
            .expect_err("stale");
        assert_eq!(e.code(), "stale_timestamp");

        let h = signed(&DeviceSigningKey::generate(), &device, &body, 1, NOW);
        let e = check_batch(&h, &pk, routes::BATCHES, BodyEncoding::Gzip, &body, NOW)
            .expect_err("forged");
        assert_eq!(e.code(), "bad_signature");

        let garbage = b"not gzip at all".to_vec();
        let h = signed(&key, &device, &garbage, 1, NOW);
        let e = check_batch(&h, &pk, routes::BATCHES, BodyEncoding::Gzip, &garbage, NOW)
            .expect_err("bad gzip");
        assert_eq!(e.code(), "malformed_compression");

        let broken = gzip(b"{\"schema\": 1, \"agent\":");
        let h = signed(&key, &device, &broken, 1, NOW);
        let e = check_batch(&h, &pk, routes::BATCHES, BodyEncoding::Gzip, &broken, NOW)
            .expect_err("bad json");
        assert_eq!(e.code(), "malformed_json");

        let mut v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        v["schema"] = 2.into();
        let v2 = gzip(&serde_json::to_vec(&v).expect("json"));
        let h = signed(&key, &device, &v2, 1, NOW);
        let e =
            check_batch(&h, &pk, routes::BATCHES, BodyEncoding::Gzip, &v2, NOW).expect_err("v2");
        assert_eq!(e.code(), "unsupported_schema_version");

        v["schema"] = 1.into();
        v["offsets_ms"] = serde_json::json!(["yesterday"]);
        let wrong = gzip(&serde_json::to_vec(&v).expect("json"));
        let h = signed(&key, &device, &wrong, 1, NOW);
        let e = check_batch(&h, &pk, routes::BATCHES, BodyEncoding::Gzip, &wrong, NOW)
            .expect_err("shape");
        assert_eq!(e.code(), "invalid_batch");
    }

    #[test]
    fn a_zip_bomb_is_refused_without_inflating_it() {
        // 64 MiB of zeros compress to ~64 KiB: under the wire limit, far over the inflate limit.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < limits::MAX_COMPRESSED_BODY);
        let e = inflate_bounded(&bomb, limits::MAX_DECOMPRESSED_BODY).expect_err("bomb");
        assert_eq!(
            e,
            IntakeRefusal::DecompressedTooLarge {
                limit: limits::MAX_DECOMPRESSED_BODY
            }
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(
            BodyEncoding::from_headers(Some("application/json"), Some("gzip")),
            Ok(BodyEncoding::Gzip)
        );
        assert_eq!(
            BodyEncoding::from_headers(Some("application/json; charset=utf-8"), None),
            Ok(BodyEncoding::Identity)
        );
        assert_eq!(
            BodyEncoding::from_headers(Some("text/plain"), None).map_err(|e| e.code()),
            Err("unsupported_media_type")
        );
        assert_eq!(
            BodyEncoding::from_headers(Some("application/json"), Some("br")).map_err(|e| e.code()),
            Err("unsupported_media_type")
        );
    }

    #[test]
    fn headers_parse_and_refuse() {
        let d = DeviceId::generate();
        let ts = NOW.to_string();
        let get = |n: &str| match n {
            headers::DEVICE => Some(d.as_str()),
            headers::TIMESTAMP => Some(ts.as_str()),
            headers::SEQUENCE => Some("12"),
            headers::SIGNATURE => Some("c2ln"),
            _ => None,
        };
        let h = SignatureHeaders::parse(get).expect("parses");
        assert_eq!(h.seq, 12);
        let missing = SignatureHeaders::parse(|n| {
            if n == headers::SIGNATURE {
                None
            } else {
                get(n)
            }
        });
        assert_eq!(missing.map_err(|e| e.code()), Err("missing_signature"));
        let bad = SignatureHeaders::parse(|n| {
            if n == headers::SEQUENCE {
                Some("-1")
            } else {
                get(n)
            }
        });
        assert_eq!(bad.map_err(|e| e.code()), Err("malformed_header"));
    }
}
