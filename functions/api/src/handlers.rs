//! One function per operation. Each reads and writes only under `context.tenant()` and hides
//! objects of client companies the caller may not see behind "not found".

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use vigie_domain::clock::Clock;
use vigie_domain::directory::{ClientCompany, Site, Tenant};
use vigie_domain::enrollment::{EnrollmentToken, Placement};
use vigie_domain::ids::{ClientId, DeviceId, EnrollmentTokenId, IdError, SiteId, TenantId};
use vigie_domain::notification::{ChannelFilter, ChannelId, ChannelKind, NotificationChannel};
use vigie_domain::ports::ChannelStore;
use vigie_edge::{HttpRequest, HttpResponse};

use crate::access::Context;
use crate::error::ApiError;
use crate::routes::{Matched, Operation};
use crate::{Api, views};

/// Largest page a list answers.
const MAX_LIMIT: usize = 200;
const DEFAULT_LIMIT: usize = 50;

pub(crate) async fn handle<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params {
        path: &matched.params,
        query: parse_query(&request.query),
    };
    let now = api.clock.now_ms();
    let ports = &api.ports;
    let ok = |value: Value| Ok(HttpResponse::json(matched.route.success, &value));
    match matched.route.operation {
        Operation::Me => {
            let pr = context.principal();
            ok(json!({
                "subject": pr.subject(),
                "role": pr.role().as_str(),
                "tenant_id": pr.tenant_id(),
                "client_id": pr.client_id(),
                "clients": pr.clients(),
            }))
        }
        Operation::ListTenants => {
            let tenants = ports.directory().tenants().await?;
            page(tenants, |t| t.id.to_string(), views::tenant, &p)
        }
        Operation::CreateTenant => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewTenant {
                tenant_id: TenantId,
                name: String,
            }
            let body: NewTenant = json_body(request)?;
            let tenant = Tenant {
                id: body.tenant_id,
                name: name(&body.name)?,
                created_ms: now,
            };
            if !ports.directory().create_tenant(&tenant).await? {
                return Err(ApiError::Conflict {
                    code: "tenant_exists",
                    message: format!("tenant {} exists", tenant.id),
                });
            }
            // Its alerts topic and subscriptions, before its first alert.
            ports.tenant_topics().sync(&tenant.id).await?;
            ok(views::tenant(&tenant))
        }
        Operation::GetTenant => {
            let id = p.id("tenant_id", TenantId::parse, "tenant")?;
            let tenant = ports.directory().tenant(&id).await?;
            tenant.map_or(Err(ApiError::NotFound { what: "tenant" }), |t| {
                ok(views::tenant(&t))
            })
        }
        Operation::ListClients => {
            let tenant = context.tenant()?;
            let clients: Vec<_> = ports
                .directory()
                .clients(tenant)
                .await?
                .into_iter()
                .filter(|c| context.may_see(&c.id))
                .collect();
            page(clients, |c| c.id.to_string(), views::client, &p)
        }
        Operation::CreateClient => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewClient {
                client_id: ClientId,
                name: String,
            }
            let body: NewClient = json_body(request)?;
            let client = ClientCompany {
                tenant: context.tenant()?.clone(),
                id: body.client_id,
                name: name(&body.name)?,
                created_ms: now,
            };
            if !ports.directory().create_client(&client).await? {
                return Err(ApiError::Conflict {
                    code: "client_exists",
                    message: format!("client company {} exists", client.id),
                });
            }
            ok(views::client(&client))
        }
        Operation::GetClient => {
            let client = visible_client(api, context, &p).await?;
            ok(views::client(&client))
        }
        Operation::CreateSite => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewSite {
                site_id: SiteId,
                name: String,
                time_zone: Option<String>,
            }
            let client = visible_client(api, context, &p).await?;
            let body: NewSite = json_body(request)?;
            let site = Site {
                tenant: client.tenant,
                client: client.id,
                id: body.site_id,
                name: name(&body.name)?,
                time_zone: body.time_zone.unwrap_or_else(|| "UTC".into()),
                created_ms: now,
            };
            if !ports.directory().create_site(&site).await? {
                return Err(ApiError::Conflict {
                    code: "site_exists",
                    message: format!("site {} exists", site.id),
                });
            }
            ok(views::site(&site))
        }
        Operation::GetSite => {
            let client = visible_client(api, context, &p).await?;
            let site_id = p.id("site_id", SiteId::parse, "site")?;
            let site = ports
                .directory()
                .site(&client.tenant, &client.id, &site_id)
                .await?
                .ok_or(ApiError::NotFound { what: "site" })?;
            ok(views::site(&site))
        }
        Operation::ListDevices => {
            let tenant = context.tenant()?;
            let client = p.query_id("client_id", ClientId::parse)?;
            let site = p.query_id("site_id", SiteId::parse)?;
            if site.is_some() && client.is_none() {
                return Err(ApiError::invalid(
                    "bad_filter",
                    "filtering on site_id needs client_id too",
                ));
            }
            let devices: Vec<_> = ports
                .devices()
                .list(tenant, client.as_ref(), site.as_ref())
                .await?
                .into_iter()
                .filter(|d| context.may_see(&d.placement.client))
                .collect();
            page(devices, |d| d.id.to_string(), |d| views::device(d, now), &p)
        }
        Operation::GetDevice => {
            let device = visible_device(api, context, &p).await?;
            ok(views::device(&device, now))
        }
        Operation::RevokeDevice => {
            let device = visible_device(api, context, &p).await?;
            if !ports
                .devices()
                .revoke(context.tenant()?, &device.id)
                .await?
            {
                return Err(ApiError::NotFound { what: "device" });
            }
            let device = visible_device(api, context, &p).await?;
            ok(views::device(&device, now))
        }
        Operation::CreateEnrollmentToken => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewToken {
                client_id: ClientId,
                site_id: SiteId,
                #[serde(default = "default_expiry")]
                expires_in_s: i64,
                #[serde(default = "one")]
                max_uses: u32,
                #[serde(default)]
                label: String,
                #[serde(default)]
                tags: vigie_domain::device::Tags,
            }
            fn default_expiry() -> i64 {
                7 * 86_400
            }
            fn one() -> u32 {
                1
            }
            let body: NewToken = json_body(request)?;
            let tenant = context.tenant()?;
            if ports
                .directory()
                .site(tenant, &body.client_id, &body.site_id)
                .await?
                .is_none()
            {
                return Err(ApiError::NotFound { what: "site" });
            }
            let placement = Placement {
                tenant: tenant.clone(),
                client: body.client_id,
                site: body.site_id,
            };
            let (token, plaintext) = EnrollmentToken::issue(
                placement,
                now,
                now.saturating_add(body.expires_in_s.saturating_mul(1000)),
                body.max_uses,
                &body.label,
            )
            .and_then(|(t, plain)| Ok((t.with_tags(body.tags)?, plain)))
            .map_err(|e| ApiError::invalid("bad_token_request", e.to_string()))?;
            ports.enrollment().create(&token).await?;
            let mut view = views::enrollment_token(&token, now);
            view["token"] = json!(plaintext.expose());
            ok(view)
        }
        Operation::ListEnrollmentTokens => {
            let tokens = ports.enrollment().list(context.tenant()?).await?;
            page(
                tokens,
                |t| t.id.to_string(),
                |t| views::enrollment_token(t, now),
                &p,
            )
        }
        Operation::RevokeEnrollmentToken => {
            let tenant = context.tenant()?;
            let id = p.id("token_id", EnrollmentTokenId::parse, "enrolment token")?;
            if !ports.enrollment().revoke(tenant, &id).await? {
                return Err(ApiError::NotFound {
                    what: "enrolment token",
                });
            }
            let token = ports
                .enrollment()
                .list(tenant)
                .await?
                .into_iter()
                .find(|t| t.id == id)
                .ok_or(ApiError::NotFound {
                    what: "enrolment token",
                })?;
            ok(views::enrollment_token(&token, now))
        }
        Operation::ListChannels => {
            let channels = ports.channels().channels(context.tenant()?).await?;
            page(channels, |c| c.id.to_string(), views::channel, &p)
        }
        Operation::PutChannel => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct ChannelInput {
                name: String,
                kind: ChannelKind,
                #[serde(default)]
                filter: ChannelFilter,
            }
            let id = p.id("channel_id", ChannelId::parse, "channel")?;
            let body: ChannelInput = json_body(request)?;
            let channel = NotificationChannel {
                id,
                tenant_id: context.tenant()?.clone(),
                name: body.name,
                kind: body.kind,
                filter: body.filter,
            };
            channel
                .validate()
                .map_err(|e| ApiError::invalid("bad_channel", e.to_string()))?;
            ports.save_channel(&channel).await?;
            ok(views::channel(&channel))
        }
        Operation::GetChannel => {
            let id = p.id("channel_id", ChannelId::parse, "channel")?;
            let channel = ports
                .channels()
                .channels(context.tenant()?)
                .await?
                .into_iter()
                .find(|c| c.id == id)
                .ok_or(ApiError::NotFound { what: "channel" })?;
            ok(views::channel(&channel))
        }
        Operation::GetAlert => {
            let alert_id = p.path_str("alert_id")?;
            let record = ports
                .evaluation()
                .alert(context.tenant()?, alert_id)
                .await?
                .filter(|r| {
                    r["client_id"]
                        .as_str()
                        .and_then(|c| ClientId::parse(c).ok())
                        .is_some_and(|c| context.may_see(&c))
                })
                .ok_or(ApiError::NotFound { what: "alert" })?;
            ok(record)
        }
    }
}

async fn visible_client<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
) -> Result<ClientCompany, ApiError> {
    let id = p.id("client_id", ClientId::parse, "client company")?;
    if !context.may_see(&id) {
        return Err(ApiError::NotFound {
            what: "client company",
        });
    }
    api.ports
        .directory()
        .client(context.tenant()?, &id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "client company",
        })
}

async fn visible_device<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
) -> Result<vigie_domain::device::Device, ApiError> {
    let id = p.id("device_id", DeviceId::parse, "device")?;
    api.ports
        .devices()
        .get(context.tenant()?, &id)
        .await?
        .filter(|d| context.may_see(&d.placement.client))
        .ok_or(ApiError::NotFound { what: "device" })
}

struct Params<'a> {
    path: &'a BTreeMap<&'static str, String>,
    query: BTreeMap<String, String>,
}

impl Params<'_> {
    fn path_str(&self, name: &str) -> Result<&str, ApiError> {
        self.path
            .get(name)
            .map(String::as_str)
            .ok_or(ApiError::NotFound { what: "object" })
    }

    /// A path id; one that cannot exist is simply not found.
    fn id<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, IdError>,
        what: &'static str,
    ) -> Result<T, ApiError> {
        parse(self.path_str(name)?).map_err(|_| ApiError::NotFound { what })
    }

    fn query_id<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, IdError>,
    ) -> Result<Option<T>, ApiError> {
        self.query
            .get(name)
            .map(|v| parse(v).map_err(|e| ApiError::invalid("bad_filter", format!("{name}: {e}"))))
            .transpose()
    }
}

/// One page of `items` ordered by `key`, after the `cursor` query parameter, `limit` long.
fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    view: impl Fn(&T) -> Value,
    p: &Params<'_>,
) -> Result<HttpResponse, ApiError> {
    let limit = match p.query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("bad_limit", format!("limit must be 1 to {MAX_LIMIT}"))
            })?,
    };
    let after = match p.query.get("cursor") {
        None => None,
        Some(c) => Some(
            B64.decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid("bad_cursor", "the cursor is not one we gave"))?,
        ),
    };
    items.sort_by_key(&key);
    let rest: Vec<&T> = items
        .iter()
        .filter(|i| after.as_ref().is_none_or(|a| key(i) > *a))
        .collect();
    let next = (rest.len() > limit).then(|| B64.encode(key(rest[limit - 1])));
    let values: Vec<Value> = rest.into_iter().take(limit).map(view).collect();
    Ok(HttpResponse::json(
        200,
        &json!({ "items": values, "next_cursor": next }),
    ))
}

fn json_body<T: serde::de::DeserializeOwned>(request: &HttpRequest) -> Result<T, ApiError> {
    if request.body.is_empty() {
        return Err(ApiError::invalid("bad_body", "a JSON body is required"));
    }
    serde_json::from_slice(&request.body).map_err(|e| ApiError::invalid("bad_body", e.to_string()))
}

fn name(name: &str) -> Result<String, ApiError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 {
        return Err(ApiError::invalid(
            "bad_name",
            "a name is 1 to 200 characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// `a=1&b=x%20y` → map (last value wins).
fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = parse_query("client_id=acme&label=a%20b+c&x=%zz&limit=");
        assert_eq!(q["client_id"], "acme");
        assert_eq!(q["label"], "a b c");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["limit"], "");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%41"), "A");
    }
}
