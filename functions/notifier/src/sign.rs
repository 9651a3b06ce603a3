//! Webhook signatures, for us (signing) and for receivers (verifying).
//!
//! Each webhook POST carries
//!
//! ```text
//! x-vigie-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! x-vigie-event-id: <event id>
//! ```
//!
//! A receiver recomputes the HMAC over the raw body bytes, compares in constant time, refuses
//! a `t` too far from its clock (replays), and deduplicates on the event id. A header may carry
//! several `v1=` values (one per secret while a secret is rotated); one match is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-vigie-signature";
pub const EVENT_ID_HEADER: &str = "x-vigie-event-id";

/// A sensible tolerance for receivers: five minutes either way.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<seconds>,v1=<hex>`")]
    Malformed,
    #[error("the signature is {age_s} s away from now, more than the {tolerance_s} s allowed")]
    Stale { age_s: i64, tolerance_s: i64 },
    #[error("no signature matches the body")]
    Mismatch,
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` never fails for it.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `x-vigie-signature` value for `body` sent at `t` (Unix seconds).
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in tag {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("t={t},v1={hex}")
}

/// Checks a received `x-vigie-signature` against the raw body, at `now_s`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => candidates.push(hex_decode(v).ok_or(SignatureError::Malformed)?),
            Some(_) => {} // other schemes, for later versions
            None => return Err(SignatureError::Malformed),
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age_s = now_s.saturating_sub(t);
    if age_s.saturating_abs() > tolerance_s {
        return Err(SignatureError::Stale { age_s, tolerance_s });
    }
    let expected = mac(secret, t, body);
    // `verify_slice` compares in constant time.
    if candidates
        .iter()
        .any(|c| expected.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| char::from(c).to_digit(16);
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some((nibble(*high)? << 4 | nibble(*low)?) as u8),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test-secret-0123456789";
    const BODY: &[u8] = br#"{"version":1,"text":"disk"}"#;
    const NOW: i64 = 1_740_924_300;

    #[test]
    fn round_trip_and_known_answer() {
        let h = signature_header(SECRET, NOW, BODY);
        assert!(
            h.starts_with("t=1740924300,v1=") && h.len() == 16 + 64,
            "{h}"
        );
        assert_eq!(verify(SECRET, &h, BODY, NOW + 10, 300), Ok(()));
        // Computed independently: HMAC-SHA256(key = "key", message = "0.body").
        assert_eq!(
            signature_header(b"key", 0, b"body"),
            "t=0,v1=e0af04d5c83b24373ff89f540d0c8fd9a4e097e2b3ee8318ab5541047697626d"
        );
        assert_ne!(
            signature_header(b"key", 0, b"body"),
            signature_header(b"key", 1, b"body")
        );
    }

    #[test]
    fn refuses_tampering_wrong_secret_and_stale_times() {
        let h = signature_header(SECRET, NOW, BODY);
        let tampered = br#"{"version":1,"text":"DISK"}"#;
        assert_eq!(
            verify(SECRET, &h, tampered, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another-secret-value", &h, BODY, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &h, BODY, NOW + 301, 300),
            Err(SignatureError::Stale {
                age_s: 301,
                tolerance_s: 300
            })
        );
        assert!(matches!(
            verify(SECRET, &h, BODY, NOW - 301, 300),
            Err(SignatureError::Stale { .. })
        ));
        // Moving the timestamp forward invalidates the signature.
        let replayed = h.replace("t=1740924300", "t=1740924900");
        assert_eq!(
            verify(SECRET, &replayed, BODY, NOW + 600, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_and_rotation() {
        for bad in [
            "",
            "v1=00",
            "t=1",
            "t=x,v1=00",
            "t=1,v1=0g",
            "t=1,v1=abc",
            "garbage",
        ] {
            assert_eq!(
                verify(SECRET, bad, BODY, 1, 300),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        let old = signature_header(b"old-secret-0123456", NOW, BODY);
        let new = signature_header(SECRET, NOW, BODY);
        let both = format!("{old},{}", new.split(',').nth(1).unwrap_or_default());
        assert_eq!(verify(SECRET, &both, BODY, NOW, 300), Ok(()));
    }
}
