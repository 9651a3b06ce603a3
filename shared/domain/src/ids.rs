//! Validated identifiers. Every id that crosses an edge is parsed into one of these once;
//! nothing inside the system takes a raw `String` id.
//!
//! The alphabet is deliberately narrow (`a-z`, `0-9`, `-`, `_`): ids become parts of
//! DynamoDB keys, S3 object keys and SNS attributes, and none of those separators (`#`, `/`)
//! can appear inside an id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} may only contain a-z, 0-9, '-' and '_' and must start with a letter or digit")]
    BadCharacter { kind: &'static str },
}

/// Longest id accepted anywhere.
pub const MAX_ID_LEN: usize = 64;

fn validate(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            max: MAX_ID_LEN,
        });
    }
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(IdError::BadCharacter { kind })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                validate($kind, s)?;
                Ok(Self(s.to_owned()))
            }

            /// The id as it appears in keys and on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A tenant: one MSP subscribed to Vigie.
    TenantId,
    "tenant id"
);
id_type!(
    /// A client company of an MSP.
    ClientId,
    "client company id"
);
id_type!(
    /// A site (office, data centre) of a client company.
    SiteId,
    "site id"
);
id_type!(
    /// A device running the agent. Issued by the server at enrolment, never chosen by the agent.
    DeviceId,
    "device id"
);
id_type!(
    /// The public half of an enrolment token, used to find its record.
    EnrollmentTokenId,
    "enrolment token id"
);

/// Lower-case RFC 4648 base32 alphabet (no padding), used for generated ids.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing is not a recoverable condition for a security token.
    #[allow(clippy::expect_used)]
    getrandom::getrandom(&mut buf).expect("the operating system's random source is unavailable");
    buf
}

/// Base32 text of `bytes` (lower case, no padding).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl DeviceId {
    /// A fresh random device id: `dev-` and 26 base32 characters (128 bits).
    pub fn generate() -> Self {
        Self(format!("dev-{}", base32(&random_bytes::<16>())))
    }
}

impl EnrollmentTokenId {
    /// A fresh random token id: `et-` and 16 base32 characters (80 bits).
    pub fn generate() -> Self {
        Self(format!("et-{}", base32(&random_bytes::<10>())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_ids_and_refuses_separators() {
        assert!(TenantId::parse("acme-msp_01").is_ok());
        assert_eq!(
            TenantId::parse(""),
            Err(IdError::Empty { kind: "tenant id" })
        );
        for bad in ["a#b", "a/b", "Acme", "-lead", "é", "a b"] {
            assert!(TenantId::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(SiteId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = DeviceId::generate();
        let b = DeviceId::generate();
        assert_ne!(a, b);
        assert!(DeviceId::parse(a.as_str()).is_ok());
        assert_eq!(a.as_str().len(), 4 + 26);
        assert!(EnrollmentTokenId::parse(EnrollmentTokenId::generate().as_str()).is_ok());
    }

    #[test]
    fn deserialisation_validates() {
        assert!(serde_json::from_str::<ClientId>("\"ok-client\"").is_ok());
        assert!(serde_json::from_str::<ClientId>("\"t#x\"").is_err());
    }

    proptest! {
        #[test]
        fn base32_length_and_alphabet(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = base32(&bytes);
            prop_assert_eq!(s.len(), (bytes.len() * 8).div_ceil(5));
            prop_assert!(s.bytes().all(|c| BASE32.contains(&c)));
        }
    }
}
