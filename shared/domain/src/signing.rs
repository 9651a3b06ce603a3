//! The request signing format shared by the agent and the ingestion function.
//!
//! Every agent request carries four headers: the device id, a timestamp (Unix ms), a sequence
//! number and an Ed25519 signature. The signature covers a canonical text that binds all of
//! them to the method, the path and the SHA-256 of the exact body bytes sent (compressed, as
//! on the wire):
//!
//! ```text
//! VIGIE-ED25519-V1\n<METHOD>\n<path>\n<device id>\n<timestamp ms>\n<seq>\n<hex sha256(body)>
//! ```
//!
//! Batches carry a strictly increasing sequence number; other requests use 0.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};

use crate::ids::{DeviceId, random_bytes};

/// The scheme name, first line of the canonical text.
pub const SCHEME: &str = "VIGIE-ED25519-V1";

/// Header names (lower case, as Lambda Function URLs deliver them).
pub mod headers {
    pub const DEVICE: &str = "x-vigie-device";
    pub const TIMESTAMP: &str = "x-vigie-timestamp";
    pub const SEQUENCE: &str = "x-vigie-seq";
    pub const SIGNATURE: &str = "x-vigie-signature";
}

/// Why a key or signature could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key is not 32 bytes of base64")]
    MalformedPublicKey,
    #[error("the signature is not 64 bytes of base64")]
    MalformedSignature,
    #[error("the signature does not match the request")]
    Mismatch,
}

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub device: &'a DeviceId,
    pub timestamp_ms: i64,
    pub seq: u64,
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    /// The canonical text the signature is computed over.
    pub fn canonical(&self) -> Vec<u8> {
        let digest = Sha256::digest(self.body);
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        format!(
            "{SCHEME}\n{}\n{}\n{}\n{}\n{}\n{hex}",
            self.method, self.path, self.device, self.timestamp_ms, self.seq
        )
        .into_bytes()
    }
}

/// A device's private key. Lives only on the device (file mode 0600).
pub struct DeviceSigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for DeviceSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSigningKey(<secret>)")
    }
}

impl DeviceSigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>()))
    }

    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> DevicePublicKey {
        DevicePublicKey(self.0.verifying_key())
    }

    /// Signs a request; the result is the base64 value of the signature header.
    pub fn sign(&self, request: &SignedRequest<'_>) -> String {
        B64.encode(self.0.sign(&request.canonical()).to_bytes())
    }
}

/// A device's public key, stored on the server at enrolment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DevicePublicKey(ed25519_dalek::VerifyingKey);

impl std::fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevicePublicKey({})", self.to_base64())
    }
}

impl DevicePublicKey {
    /// Parses the base64 form used on the wire and in storage.
    pub fn from_base64(s: &str) -> Result<Self, SignatureError> {
        let bytes = B64
            .decode(s.trim())
            .map_err(|_| SignatureError::MalformedPublicKey)?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SignatureError::MalformedPublicKey)?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map(Self)
            .map_err(|_| SignatureError::MalformedPublicKey)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    /// Checks a base64 signature header against a request. Uses strict verification
    /// (rejects small-order keys and non-canonical signatures).
    pub fn verify(
        &self,
        request: &SignedRequest<'_>,
        signature_b64: &str,
    ) -> Result<(), SignatureError> {
        let bytes = B64
            .decode(signature_b64.trim())
            .map_err(|_| SignatureError::MalformedSignature)?;
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|_| SignatureError::MalformedSignature)?;
        let sig = ed25519_dalek::Signature::from_bytes(&arr);
        self.0
            .verify_strict(&request.canonical(), &sig)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request<'a>(device: &'a DeviceId, body: &'a [u8], seq: u64, ts: i64) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            path: "/v1/agent/batches",
            device,
            timestamp_ms: ts,
            seq,
            body,
        }
    }

    #[test]
    fn another_devices_key_does_not_verify() {
        let device = DeviceId::generate();
        let mine = DeviceSigningKey::generate();
        let theirs = DeviceSigningKey::generate();
        let req = request(&device, b"{}", 1, 1);
        let sig = theirs.sign(&req);
        assert_eq!(
            mine.public_key().verify(&req, &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            mine.public_key().verify(&req, "not base64!"),
            Err(SignatureError::MalformedSignature)
        );
    }

    #[test]
    fn public_key_round_trips_through_base64() {
        let key = DeviceSigningKey::generate();
        let pk = key.public_key();
        assert_eq!(DevicePublicKey::from_base64(&pk.to_base64()), Ok(pk));
        assert_eq!(
            DevicePublicKey::from_base64("AAAA"),
            Err(SignatureError::MalformedPublicKey)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sign_then_verify_round_trips(body in proptest::collection::vec(any::<u8>(), 0..512), seq in any::<u64>(), ts in any::<i64>()) {
            let device = DeviceId::generate();
            let key = DeviceSigningKey::generate();
            let req = request(&device, &body, seq, ts);
            let sig = key.sign(&req);
            prop_assert_eq!(key.public_key().verify(&req, &sig), Ok(()));
        }

        #[test]
        fn any_flipped_byte_fails(body in proptest::collection::vec(any::<u8>(), 1..256), flip in any::<usize>(), bit in 0u8..8, which in 0usize..5) {
            let device = DeviceId::generate();
            let key = DeviceSigningKey::generate();
            let req = request(&device, &body, 7, 1_790_000_000_000);
            let sig = key.sign(&req);
            let pk = key.public_key();
            match which {
                // a flipped bit in the body
                0 => {
                    let mut b = body.clone();
                    let i = flip % b.len();
                    b[i] ^= 1 << bit;
                    prop_assert!(pk.verify(&request(&device, &b, 7, 1_790_000_000_000), &sig).is_err());
                }
                // a flipped bit in the signature bytes
                1 => {
                    let mut raw = B64.decode(&sig).expect("own signature decodes");
                    let i = flip % raw.len();
                    raw[i] ^= 1 << bit;
                    prop_assert!(pk.verify(&req, &B64.encode(raw)).is_err());
                }
                // another sequence number, timestamp, path
                2 => prop_assert!(pk.verify(&request(&device, &body, 8, 1_790_000_000_000), &sig).is_err()),
                3 => prop_assert!(pk.verify(&request(&device, &body, 7, 1_790_000_000_001), &sig).is_err()),
                _ => {
                    let other = SignedRequest { path: "/v1/agent/config", ..req };
                    prop_assert!(pk.verify(&other, &sig).is_err());
                }
            }
        }
    }
}
