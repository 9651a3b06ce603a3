//! The MSP's directory: tenants, their client companies and sites.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, SiteId, TenantId};

/// A tenant: one MSP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_ms: i64,
    /// The plan it subscribed to and what it allows.
    pub plan: Plan,
    /// From this time on the tenant's people and integrations are refused.
    pub suspended_ms: Option<i64>,
}

/// A tenant's plan and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `starter`, `pro`, … (free text for the operator's catalogue).
    pub name: String,
    /// Most enrolled devices.
    pub max_devices: u32,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            name: "starter".into(),
            max_devices: 250,
        }
    }
}

impl Tenant {
    /// A new, active tenant on `plan`.
    pub fn new(id: TenantId, name: impl Into<String>, created_ms: i64, plan: Plan) -> Self {
        Self {
            id,
            name: name.into(),
            created_ms,
            plan,
            suspended_ms: None,
        }
    }
}

/// A client company of the MSP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCompany {
    pub tenant: TenantId,
    pub id: ClientId,
    pub name: String,
    pub created_ms: i64,
}

/// A site of a client company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub tenant: TenantId,
    pub client: ClientId,
    pub id: SiteId,
    pub name: String,
    /// IANA time zone of the site (business hours, maintenance windows).
    pub time_zone: String,
    pub created_ms: i64,
}
