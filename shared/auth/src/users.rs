//! People of a tenant: the user record an identity points to, and the invitations that make
//! one. A user's id is derived from the identity (issuer and subject), so a verified token
//! finds its record with one read and nobody can claim another's.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vigie_domain::ids::{ClientId, TenantId, base32, random_bytes};

use crate::{AuthError, Grant, Identity, Principal, Role};

/// `usr-` and 20 base32 characters of SHA-256(issuer, subject).
pub fn user_id_for(issuer: &str, subject: &str) -> String {
    let digest = Sha256::new()
        .chain_update(issuer.as_bytes())
        .chain_update([0u8])
        .chain_update(subject.as_bytes())
        .finalize();
    format!("usr-{}", &base32(&digest)[..20])
}

/// What a person may do in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub role: Role,
    /// A client viewer's client company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    /// A technician's client companies (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientId>,
}

impl Membership {
    /// Checks the membership as a grant in `tenant` would be checked.
    pub fn check(&self, tenant: &TenantId) -> Result<(), AuthError> {
        if matches!(self.role, Role::PlatformOperator) {
            return Err(AuthError::BadClaims {
                reason: "a tenant member cannot be a platform operator",
            });
        }
        Grant::new(
            "check",
            self.role,
            Some(tenant.clone()),
            self.client_id.clone(),
            self.clients.clone(),
        )
        .map(|_| ())
    }
}

/// A person in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: String,
    pub tenant_id: TenantId,
    pub issuer: String,
    pub subject: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(flatten)]
    pub membership: Membership,
    pub created_ms: i64,
    /// Invited by whom (a subject).
    pub invited_by: String,
    /// Access removed at this time.
    #[serde(default)]
    pub removed_ms: Option<i64>,
}

impl UserRecord {
    /// The principal `identity` is, by this record. Refused when the record is another
    /// identity's or access was removed.
    pub fn principal(&self, identity: Identity) -> Result<Principal, AuthError> {
        if self.removed_ms.is_some()
            || identity.issuer() != self.issuer
            || identity.subject() != self.subject
        {
            return Err(AuthError::BadClaims {
                reason: "no membership",
            });
        }
        let grant = Grant::new(
            self.subject.clone(),
            self.membership.role,
            Some(self.tenant_id.clone()),
            self.membership.client_id.clone(),
            self.membership.clients.clone(),
        )?;
        identity.with_grant(grant)
    }
}

const INVITE_PREFIX: &str = "inv_";
const INVITE_SECRET_LEN: usize = 52;

/// An invitation into a tenant, accepted once with its code `inv_<id>_<secret>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub invitation_id: String,
    pub tenant_id: TenantId,
    pub email: String,
    #[serde(flatten)]
    pub membership: Membership,
    pub secret_sha256: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub invited_by: String,
    #[serde(default)]
    pub accepted_by: Option<String>,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
}

/// Why an invitation cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvitationRefused {
    #[error("the invitation code is not valid")]
    Invalid,
    #[error("the invitation has expired")]
    Expired,
    #[error("the invitation was already accepted")]
    Accepted,
    #[error("the invitation was revoked")]
    Revoked,
}

impl InvitationRefused {
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invitation_invalid",
            Self::Expired => "invitation_expired",
            Self::Accepted => "invitation_accepted",
            Self::Revoked => "invitation_revoked",
        }
    }
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Invitation {
    /// A new invitation and its one-time code.
    pub fn issue(
        tenant_id: TenantId,
        email: String,
        membership: Membership,
        invited_by: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(Self, String), AuthError> {
        membership.check(&tenant_id)?;
        let invitation_id = format!("inv-{}", base32(&random_bytes::<10>()));
        let secret = base32(&random_bytes::<32>());
        let code = format!("{INVITE_PREFIX}{invitation_id}_{secret}");
        Ok((
            Self {
                invitation_id,
                tenant_id,
                email,
                membership,
                secret_sha256: sha256_hex(&secret),
                created_ms: now_ms,
                expires_ms,
                invited_by: invited_by.to_owned(),
                accepted_by: None,
                revoked_ms: None,
            },
            code,
        ))
    }

    /// The invitation id and secret of a presented code.
    pub fn parse_code(code: &str) -> Result<(&str, &str), InvitationRefused> {
        let rest = code
            .strip_prefix(INVITE_PREFIX)
            .ok_or(InvitationRefused::Invalid)?;
        let (id, secret) = rest.rsplit_once('_').ok_or(InvitationRefused::Invalid)?;
        if !id.starts_with("inv-") || secret.len() != INVITE_SECRET_LEN {
            return Err(InvitationRefused::Invalid);
        }
        Ok((id, secret))
    }

    /// Whether `secret` opens this invitation at `now_ms`.
    pub fn check(&self, secret: &str, now_ms: i64) -> Result<(), InvitationRefused> {
        let presented = sha256_hex(secret);
        if !bool::from(presented.as_bytes().ct_eq(self.secret_sha256.as_bytes())) {
            return Err(InvitationRefused::Invalid);
        }
        if self.revoked_ms.is_some() {
            return Err(InvitationRefused::Revoked);
        }
        if self.accepted_by.is_some() {
            return Err(InvitationRefused::Accepted);
        }
        if now_ms >= self.expires_ms {
            return Err(InvitationRefused::Expired);
        }
        Ok(())
    }

    /// The user record `identity` becomes by accepting.
    pub fn user_for(&self, identity: &Identity, now_ms: i64) -> UserRecord {
        UserRecord {
            user_id: user_id_for(identity.issuer(), identity.subject()),
            tenant_id: self.tenant_id.clone(),
            issuer: identity.issuer().to_owned(),
            subject: identity.subject().to_owned(),
            email: identity
                .email()
                .map(str::to_owned)
                .or(Some(self.email.clone())),
            membership: self.membership.clone(),
            created_ms: now_ms,
            invited_by: self.invited_by.clone(),
            removed_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme-msp").expect("id")
    }

    #[test]
    fn user_ids_are_stable_and_distinct() {
        let a = user_id_for("https://idp", "user-1");
        assert_eq!(a, user_id_for("https://idp", "user-1"));
        assert_ne!(a, user_id_for("https://idp", "user-2"));
        assert_ne!(a, user_id_for("https://other", "user-1"));
        // No ambiguity from concatenation.
        assert_ne!(user_id_for("ab", "c"), user_id_for("a", "bc"));
        assert!(a.starts_with("usr-") && a.len() == 24, "{a}");
    }

    #[test]
    fn an_invitation_opens_once_with_its_code() {
        let viewer = Membership {
            role: Role::ClientViewer,
            client_id: Some(ClientId::parse("bakery").expect("id")),
            clients: vec![],
        };
        let (mut inv, code) =
            Invitation::issue(tenant(), "ana@x.example".into(), viewer, "boss", 0, 1000)
                .expect("valid");
        let (id, secret) = Invitation::parse_code(&code).expect("code");
        assert_eq!(id, inv.invitation_id);
        assert!(!code.contains(&inv.secret_sha256));
        assert_eq!(inv.check(secret, 10), Ok(()));
        assert_eq!(
            inv.check("x".repeat(52).as_str(), 10),
            Err(InvitationRefused::Invalid)
        );
        assert_eq!(inv.check(secret, 1000), Err(InvitationRefused::Expired));
        inv.accepted_by = Some("usr-x".into());
        assert_eq!(inv.check(secret, 10), Err(InvitationRefused::Accepted));
        assert_eq!(
            Invitation::parse_code("inv_nope"),
            Err(InvitationRefused::Invalid)
        );
        // A viewer without a client cannot be invited.
        let bad = Membership {
            role: Role::ClientViewer,
            client_id: None,
            clients: vec![],
        };
        assert!(Invitation::issue(tenant(), "b@x.example".into(), bad, "boss", 0, 1000).is_err());
    }
}
