//! The MSP's directory: tenants, their client companies and sites.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, SiteId, TenantId};

/// A tenant: one MSP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_ms: i64,
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
