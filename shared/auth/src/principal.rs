//! Who is calling: [`Role`], the validated [`Grant`] a token or key carries, and the
//! authenticated [`Principal`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vigie_domain::ids::{ClientId, TenantId};

use crate::AuthError;

/// What a caller may do. The string forms are stable: they appear in tokens and stored records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The SaaS owner: tenants and platform usage only, never a tenant's monitoring data.
    PlatformOperator,
    /// Owner or administrator of one tenant (an MSP).
    MspAdmin,
    /// A technician of one tenant, possibly limited to some client companies.
    Technician,
    /// Read-only access to one client company of one tenant.
    ClientViewer,
    /// Usage exports only, of one tenant or (without a tenant) of the whole platform.
    Accounting,
}

impl Role {
    /// Every role, for exhaustive checks.
    pub const ALL: [Role; 5] = [
        Role::PlatformOperator,
        Role::MspAdmin,
        Role::Technician,
        Role::ClientViewer,
        Role::Accounting,
    ];

    /// The stable string form (`msp_admin`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformOperator => "platform_operator",
            Role::MspAdmin => "msp_admin",
            Role::Technician => "technician",
            Role::ClientViewer => "client_viewer",
            Role::Accounting => "accounting",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the five role names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownRole)
    }
}

/// Longest accepted `sub`.
const MAX_SUBJECT_LEN: usize = 256;

/// What a credential grants, checked for consistency. Built only through [`Grant::new`], so a
/// client viewer always has a client and a tenant role always has a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    subject: String,
    tenant_id: Option<TenantId>,
    role: Role,
    client_id: Option<ClientId>,
    clients: Vec<ClientId>,
}

impl Grant {
    /// Checks that the parts fit together:
    ///
    /// - `PlatformOperator` has no tenant; `MspAdmin`, `Technician` and `ClientViewer` have one;
    ///   `Accounting` may have one (tenant exports) or not (platform exports);
    /// - `ClientViewer` has exactly one `client_id`, and only it may;
    /// - only `Technician` may be limited to `clients` (empty: all clients of the tenant);
    /// - the subject is not empty.
    pub fn new(
        subject: impl Into<String>,
        role: Role,
        tenant_id: Option<TenantId>,
        client_id: Option<ClientId>,
        clients: Vec<ClientId>,
    ) -> Result<Self, AuthError> {
        let subject = subject.into();
        let bad = |reason| Err(AuthError::BadClaims { reason });
        if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
            return bad("subject must be 1 to 256 characters");
        }
        match (role, &tenant_id) {
            (Role::PlatformOperator, Some(_)) => {
                return bad("a platform operator belongs to no tenant");
            }
            (Role::MspAdmin | Role::Technician | Role::ClientViewer, None) => {
                return bad("this role requires a tenant");
            }
            _ => {}
        }
        match (role, &client_id) {
            (Role::ClientViewer, None) => return bad("a client viewer requires a client"),
            (Role::ClientViewer, Some(_)) | (_, None) => {}
            (_, Some(_)) => return bad("only a client viewer is bound to one client"),
        }
        if role != Role::Technician && !clients.is_empty() {
            return bad("only a technician may be limited to clients");
        }
        Ok(Self {
            subject,
            tenant_id,
            role,
            client_id,
            clients,
        })
    }

    /// Who: the token's `sub` or `apikey:<key id>`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The tenant, `None` only for platform-wide roles.
    pub fn tenant_id(&self) -> Option<&TenantId> {
        self.tenant_id.as_ref()
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The one client company of a client viewer.
    pub fn client_id(&self) -> Option<&ClientId> {
        self.client_id.as_ref()
    }

    /// The client companies a technician is limited to; empty means all of the tenant's.
    pub fn clients(&self) -> &[ClientId] {
        &self.clients
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// A JWT from this issuer (`iss`).
    Jwt { issuer: String },
    /// An API key with this key id.
    ApiKey { key_id: String },
}

/// An authenticated caller: a consistent [`Grant`] and the credential that proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    grant: Grant,
    via: Credential,
}

impl Principal {
    pub(crate) fn new(grant: Grant, via: Credential) -> Self {
        Self { grant, via }
    }

    pub fn subject(&self) -> &str {
        self.grant.subject()
    }

    /// The tenant, `None` only for platform-wide roles.
    pub fn tenant_id(&self) -> Option<&TenantId> {
        self.grant.tenant_id()
    }

    pub fn role(&self) -> Role {
        self.grant.role()
    }

    /// The one client company of a client viewer.
    pub fn client_id(&self) -> Option<&ClientId> {
        self.grant.client_id()
    }

    /// The client companies a technician is limited to; empty means all of the tenant's.
    pub fn clients(&self) -> &[ClientId] {
        self.grant.clients()
    }

    pub fn via(&self) -> &Credential {
        &self.via
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Option<TenantId> {
        TenantId::parse("acme").ok()
    }

    fn client() -> Option<ClientId> {
        ClientId::parse("bakery").ok()
    }

    #[test]
    fn role_strings_round_trip_through_from_str_and_serde() {
        let names = [
            "platform_operator",
            "msp_admin",
            "technician",
            "client_viewer",
            "accounting",
        ];
        for (role, name) in Role::ALL.into_iter().zip(names) {
            assert_eq!(role.as_str(), name);
            assert_eq!(name.parse::<Role>(), Ok(role));
            let json = serde_json::to_string(&role).expect("serialise");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).expect("parse"), role);
        }
        assert_eq!("MspAdmin".parse::<Role>(), Err(UnknownRole));
    }

    #[test]
    fn consistent_grants_are_accepted() {
        assert!(Grant::new("op", Role::PlatformOperator, None, None, vec![]).is_ok());
        assert!(Grant::new("a", Role::MspAdmin, tenant(), None, vec![]).is_ok());
        assert!(
            Grant::new(
                "t",
                Role::Technician,
                tenant(),
                None,
                client().into_iter().collect()
            )
            .is_ok()
        );
        assert!(Grant::new("v", Role::ClientViewer, tenant(), client(), vec![]).is_ok());
        assert!(Grant::new("acc", Role::Accounting, None, None, vec![]).is_ok());
        assert!(Grant::new("acc", Role::Accounting, tenant(), None, vec![]).is_ok());
    }

    #[test]
    fn inconsistent_grants_are_refused() {
        let refused = [
            Grant::new("v", Role::ClientViewer, tenant(), None, vec![]),
            Grant::new("a", Role::MspAdmin, None, None, vec![]),
            Grant::new("t", Role::Technician, None, None, vec![]),
            Grant::new("v", Role::ClientViewer, None, client(), vec![]),
            Grant::new("op", Role::PlatformOperator, tenant(), None, vec![]),
            Grant::new("a", Role::MspAdmin, tenant(), client(), vec![]),
            Grant::new(
                "a",
                Role::MspAdmin,
                tenant(),
                None,
                client().into_iter().collect(),
            ),
            Grant::new("", Role::MspAdmin, tenant(), None, vec![]),
        ];
        for result in refused {
            assert_eq!(result.map_err(|e| e.code()), Err("bad_claims"));
        }
    }
}
