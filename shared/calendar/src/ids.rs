//! Ids of the calendar documents a tenant names itself (business calendars, on-call
//! schedules): same alphabet as the domain's ids, since they become part of storage keys.

use std::fmt;

use serde::{Deserialize, Serialize};
use vigie_domain::ids::{IdError, TenantId};

macro_rules! document_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id (`a-z`, `0-9`, `-`, `_`, at most 64 characters).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                // The domain's validator, reached through an id type with the same rules.
                TenantId::parse(s).map_err(|e| match e {
                    IdError::Empty { .. } => IdError::Empty { kind: $kind },
                    IdError::TooLong { max, .. } => IdError::TooLong { kind: $kind, max },
                    IdError::BadCharacter { .. } => IdError::BadCharacter { kind: $kind },
                })?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

document_id!(
    /// A business-hours calendar's id inside a tenant.
    CalendarId,
    "calendar id"
);
document_id!(
    /// An on-call schedule's id inside a tenant.
    ScheduleId,
    "schedule id"
);
document_id!(
    /// An override's id inside its on-call schedule.
    OverrideId,
    "override id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_domain_alphabet() {
        assert_eq!(
            CalendarId::parse("support-hours").map(|c| c.to_string()),
            Ok("support-hours".to_owned())
        );
        for bad in ["", "Bad", "a#b", &"x".repeat(65)] {
            assert!(CalendarId::parse(bad).is_err(), "{bad}");
            assert!(ScheduleId::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ScheduleId>("\"on/call\"").is_err());
        assert_eq!(
            serde_json::to_string(&ScheduleId::parse("night").expect("id")).expect("json"),
            "\"night\""
        );
    }
}
