//! Claim names and the mapping between JWT claims and a [`Grant`].
//!
//! Vigie's own tokens carry the registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`,
//! `jti`) and four private ones: `vigie:tenant`, `vigie:role`, `vigie:client` (one client
//! company, client viewers only) and `vigie:clients` (array, technicians limited to some client
//! companies). An OIDC provider may carry the same facts under other names (Cognito custom
//! attributes such as `custom:tenant`), hence [`ClaimNames`].

use serde_json::{Map, Value};
use vigie_domain::ids::{ClientId, TenantId};

use crate::{AuthError, Grant, Role};

/// Where the tenant, role and client facts live in a token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub tenant: String,
    pub role: String,
    pub client: String,
    /// An array of client ids, or (for providers whose attributes are plain strings) one
    /// string of ids separated by commas or spaces.
    pub clients: String,
}

impl Default for ClaimNames {
    /// Vigie's names: `vigie:tenant`, `vigie:role`, `vigie:client`, `vigie:clients`.
    fn default() -> Self {
        Self {
            tenant: "vigie:tenant".to_owned(),
            role: "vigie:role".to_owned(),
            client: "vigie:client".to_owned(),
            clients: "vigie:clients".to_owned(),
        }
    }
}

fn bad(reason: &'static str) -> AuthError {
    AuthError::BadClaims { reason }
}

/// An optional string claim; JSON `null` counts as absent.
fn optional_str<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
    reason: &'static str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(reason)),
    }
}

fn parse_clients(value: Option<&Value>) -> Result<Vec<ClientId>, AuthError> {
    const REASON: &str = "clients claim must list valid client ids";
    let ids: Vec<&str> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(bad(REASON)))
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => s
            .split([',', ' '])
            .filter(|part| !part.is_empty())
            .collect(),
        Some(_) => return Err(bad(REASON)),
    };
    ids.into_iter()
        .map(|id| ClientId::parse(id).map_err(|_| bad(REASON)))
        .collect()
}

/// Reads `sub` and the tenant, role and client claims, then checks their consistency.
pub(crate) fn grant_from_claims(
    claims: &Map<String, Value>,
    names: &ClaimNames,
) -> Result<Grant, AuthError> {
    let subject =
        optional_str(claims, "sub", "sub must be a string")?.ok_or(bad("sub is required"))?;
    let role = optional_str(claims, &names.role, "role claim must be a string")?
        .ok_or(bad("role claim is required"))?
        .parse::<Role>()
        .map_err(|_| bad("role claim is not a known role"))?;
    let tenant_id = optional_str(claims, &names.tenant, "tenant claim must be a string")?
        .map(|t| TenantId::parse(t).map_err(|_| bad("tenant claim is not a valid tenant id")))
        .transpose()?;
    let client_id = optional_str(claims, &names.client, "client claim must be a string")?
        .map(|c| ClientId::parse(c).map_err(|_| bad("client claim is not a valid client id")))
        .transpose()?;
    let clients = parse_clients(claims.get(&names.clients))?;
    Grant::new(subject, role, tenant_id, client_id, clients)
}

/// Writes `sub` and the Vigie private claims of `grant` into `claims`.
pub(crate) fn grant_to_claims(grant: &Grant, claims: &mut Map<String, Value>) {
    let names = ClaimNames::default();
    claims.insert("sub".to_owned(), grant.subject().into());
    claims.insert(names.role, grant.role().as_str().into());
    if let Some(tenant) = grant.tenant_id() {
        claims.insert(names.tenant, tenant.as_str().into());
    }
    if let Some(client) = grant.client_id() {
        claims.insert(names.client, client.as_str().into());
    }
    if !grant.clients().is_empty() {
        let ids = grant.clients().iter().map(|c| Value::from(c.as_str()));
        claims.insert(names.clients, Value::Array(ids.collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn grant_round_trips_through_vigie_claims() {
        let grant = Grant::new(
            "tech-1",
            Role::Technician,
            TenantId::parse("acme").ok(),
            None,
            vec![
                ClientId::parse("bakery").expect("id"),
                ClientId::parse("garage").expect("id"),
            ],
        )
        .expect("grant");
        let mut claims = Map::new();
        grant_to_claims(&grant, &mut claims);
        assert_eq!(claims["vigie:clients"], json!(["bakery", "garage"]));
        assert_eq!(
            grant_from_claims(&claims, &ClaimNames::default()),
            Ok(grant)
        );
    }

    #[test]
    fn configured_names_and_string_lists_are_read() {
        let names = ClaimNames {
            tenant: "custom:tenant".into(),
            role: "custom:role".into(),
            client: "custom:client".into(),
            clients: "custom:clients".into(),
        };
        let claims = map(json!({
            "sub": "u1", "custom:tenant": "acme", "custom:role": "technician",
            "custom:clients": "bakery, garage",
            "vigie:role": "msp_admin",
        }));
        let grant = grant_from_claims(&claims, &names).expect("grant");
        assert_eq!(grant.role(), Role::Technician);
        assert_eq!(grant.clients().len(), 2);
        // The default names ignore the custom attributes entirely.
        let refused = grant_from_claims(&claims, &ClaimNames::default());
        assert_eq!(refused, Err(bad("this role requires a tenant")));
    }

    #[test]
    fn mistyped_or_missing_claims_are_refused() {
        let names = ClaimNames::default();
        for claims in [
            json!({"vigie:role": "msp_admin", "vigie:tenant": "acme"}),
            json!({"sub": 5, "vigie:role": "msp_admin", "vigie:tenant": "acme"}),
            json!({"sub": "u", "vigie:tenant": "acme"}),
            json!({"sub": "u", "vigie:role": "root", "vigie:tenant": "acme"}),
            json!({"sub": "u", "vigie:role": "msp_admin", "vigie:tenant": "ACME#1"}),
            json!({"sub": "u", "vigie:role": "technician", "vigie:tenant": "a", "vigie:clients": [1]}),
            json!({"sub": "u", "vigie:role": "client_viewer", "vigie:tenant": "acme"}),
        ] {
            let result = grant_from_claims(&map(claims), &names);
            assert_eq!(result.map_err(|e| e.code()), Err("bad_claims"));
        }
    }
}
