//! Authorization, in one place: a principal and a route give a [`Context`] or a refusal.
//! Handlers only ever see the tenant and client companies the context grants; every storage
//! key they build comes from `vigie_domain::keys::TenantKeys::new(context.tenant())`.

use vigie_auth::{Identity, Principal, Role};
use vigie_domain::ids::{ClientId, TenantId};

use crate::error::ApiError;
use crate::routes::{Realm, Route};

/// What a caller may reach on one request.
#[derive(Debug, Clone)]
pub struct Context {
    principal: Principal,
    tenant: Option<TenantId>,
    /// `None`: every client company of the tenant; `Some`: only these.
    clients: Option<Vec<ClientId>>,
}

impl Context {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The caller's tenant. Only tenant routes reach handlers that call this; it is never
    /// taken from the path or the body.
    pub fn tenant(&self) -> Result<&TenantId, ApiError> {
        self.tenant
            .as_ref()
            .ok_or(ApiError::NotFound { what: "tenant" })
    }

    /// Whether the caller may see objects of `client` (a client viewer: only its own; a
    /// technician: the companies it is limited to, if any).
    pub fn may_see(&self, client: &ClientId) -> bool {
        self.clients.as_ref().is_none_or(|c| c.contains(client))
    }

    /// The client companies the caller is limited to, if any.
    pub fn client_limit(&self) -> Option<&[ClientId]> {
        self.clients.as_deref()
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Someone with a role (from the token's claims, an API key or a user record).
    Member(Principal),
    /// A verified identity without a membership.
    Stranger(Identity),
}

/// What a route may work with: a member's context, or a stranger's identity (only on
/// [`Realm::Identity`] routes).
#[derive(Debug, Clone)]
pub enum Access {
    Member(Context),
    Stranger(Identity),
}

/// Checks `caller` against `route`.
pub fn authorize(caller: Caller, route: &Route) -> Result<Access, ApiError> {
    match (caller, route.realm) {
        (Caller::Stranger(identity), Realm::Identity) => Ok(Access::Stranger(identity)),
        (Caller::Stranger(_), _) => Err(ApiError::NoMembership),
        (Caller::Member(_), Realm::Identity) => Err(ApiError::Conflict {
            code: "already_member",
            message: "this identity is already a member of a tenant".into(),
        }),
        (Caller::Member(principal), _) => authorize_member(principal, route).map(Access::Member),
    }
}

/// Checks `principal` against `route`: the role must be listed (else 403), and a tenant
/// route needs a tenant-bound principal.
pub fn authorize_member(principal: Principal, route: &Route) -> Result<Context, ApiError> {
    let role = principal.role();
    if !route.roles.contains(&role) {
        return Err(ApiError::Forbidden {
            role: role.as_str().to_owned(),
            action: route.summary,
        });
    }
    let tenant = principal.tenant_id().cloned();
    // Tenant routes need a tenant-bound caller; platform routes a platform-wide one (a
    // tenant's accounting key reads its tenant's usage, never the platform's).
    if (route.realm == Realm::Tenant && tenant.is_none())
        || (route.realm == Realm::Platform && tenant.is_some())
    {
        return Err(ApiError::Forbidden {
            role: role.as_str().to_owned(),
            action: route.summary,
        });
    }
    let clients = match role {
        Role::ClientViewer => Some(principal.client_id().into_iter().cloned().collect()),
        Role::Technician if !principal.clients().is_empty() => Some(principal.clients().to_vec()),
        _ => None,
    };
    Ok(Context {
        principal,
        tenant,
        clients,
    })
}
