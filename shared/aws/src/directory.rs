//! Tenants, client companies and sites in DynamoDB.

use vigie_domain::directory::{ClientCompany, Plan, Site, Tenant};
use vigie_domain::ids::{ClientId, SiteId, TenantId};
use vigie_domain::keys::{TENANTS_INDEX_PARTITION, TenantKeys, tenants_index};
use vigie_domain::ports::StoreError;

use crate::item::{
    Item, ItemBuilder, ItemExt, Range, applied, key_of, put_item, query_all, query_prefix,
    unavailable,
};

fn tenant_from_item(item: &Item) -> Result<Tenant, StoreError> {
    let defaults = Plan::default();
    let suspended: i64 = item.number_or("suspended_ms", 0)?;
    Ok(Tenant {
        id: item.parsed("tenant_id", TenantId::parse)?,
        name: item.string("name")?.to_owned(),
        created_ms: item.number("created_ms")?,
        plan: Plan {
            name: item
                .get("plan")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or(defaults.name),
            max_devices: item.number_or("max_devices", defaults.max_devices)?,
        },
        suspended_ms: (suspended > 0).then_some(suspended),
    })
}

/// The directory in the Vigie table.
#[derive(Debug, Clone)]
pub struct DynamoDirectory {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoDirectory {
    async fn put(&self, item: Item) -> Result<(), StoreError> {
        put_item(&self.client, &self.table, item).await
    }

    /// Puts `item` unless its key exists; `false` when it did.
    async fn insert(&self, item: Item) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        crate::item::applied(result)
    }

    fn tenant_item(t: &Tenant) -> Item {
        ItemBuilder::keyed(&TenantKeys::new(&t.id).tenant())
            .index(&tenants_index(&t.id))
            .s("kind", "tenant")
            .s("tenant_id", t.id.as_str())
            .s("name", &t.name)
            .n("created_ms", t.created_ms)
            .s("plan", &t.plan.name)
            .n("max_devices", t.plan.max_devices)
            .n("suspended_ms", t.suspended_ms.unwrap_or(0))
            .build()
    }

    /// Creates a tenant; `false` if it exists.
    pub async fn create_tenant(&self, t: &Tenant) -> Result<bool, StoreError> {
        self.insert(Self::tenant_item(t)).await
    }

    /// Every tenant (the platform operator's list), from the tenants index.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        query_all(
            &self.client,
            &self.table,
            true,
            TENANTS_INDEX_PARTITION,
            Range::All,
        )
        .await?
        .iter()
        .map(tenant_from_item)
        .collect()
    }

    fn client_item(c: &ClientCompany) -> Item {
        ItemBuilder::keyed(&TenantKeys::new(&c.tenant).client(&c.id))
            .s("kind", "client")
            .s("tenant_id", c.tenant.as_str())
            .s("client_id", c.id.as_str())
            .s("name", &c.name)
            .n("created_ms", c.created_ms)
            .build()
    }

    /// Creates a client company; `false` if it exists.
    pub async fn create_client(&self, c: &ClientCompany) -> Result<bool, StoreError> {
        self.insert(Self::client_item(c)).await
    }

    /// One client company of `tenant`.
    pub async fn client(
        &self,
        tenant: &TenantId,
        id: &ClientId,
    ) -> Result<Option<ClientCompany>, StoreError> {
        let Some(item) = self.get(&TenantKeys::new(tenant).client(id)).await? else {
            return Ok(None);
        };
        Ok(Some(ClientCompany {
            tenant: tenant.clone(),
            id: id.clone(),
            name: item.string("name")?.to_owned(),
            created_ms: item.number("created_ms")?,
        }))
    }

    /// Creates a site; `false` if it exists.
    pub async fn create_site(&self, s: &Site) -> Result<bool, StoreError> {
        self.insert(Self::site_item(s)).await
    }

    async fn get(&self, key: &vigie_domain::keys::TableKey) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// Suspends (`Some(time)`) or resumes (`None`) a tenant; `false` if there is none.
    pub async fn set_suspended(
        &self,
        id: &TenantId,
        suspended_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(id).tenant())))
            .update_expression("SET suspended_ms = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":s",
                aws_sdk_dynamodb::types::AttributeValue::N(suspended_ms.unwrap_or(0).to_string()),
            )
            .send()
            .await;
        applied(result)
    }

    pub async fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        self.put(Self::tenant_item(t)).await
    }

    pub async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let Some(item) = self.get(&TenantKeys::new(id).tenant()).await? else {
            return Ok(None);
        };
        Ok(Some(tenant_from_item(&item)?))
    }

    pub async fn put_client(&self, c: &ClientCompany) -> Result<(), StoreError> {
        self.put(Self::client_item(c)).await
    }

    /// The tenant's client companies.
    pub async fn clients(&self, tenant: &TenantId) -> Result<Vec<ClientCompany>, StoreError> {
        query_prefix(
            &self.client,
            &self.table,
            TenantKeys::new(tenant).clients_prefix(),
        )
        .await?
        .iter()
        .map(|item| {
            Ok(ClientCompany {
                tenant: tenant.clone(),
                id: item.parsed("client_id", ClientId::parse)?,
                name: item.string("name")?.to_owned(),
                created_ms: item.number("created_ms")?,
            })
        })
        .collect()
    }

    fn site_item(s: &Site) -> Item {
        ItemBuilder::keyed(&TenantKeys::new(&s.tenant).site(&s.client, &s.id))
            .s("kind", "site")
            .s("tenant_id", s.tenant.as_str())
            .s("client_id", s.client.as_str())
            .s("site_id", s.id.as_str())
            .s("name", &s.name)
            .s("time_zone", &s.time_zone)
            .n("created_ms", s.created_ms)
            .build()
    }

    pub async fn put_site(&self, s: &Site) -> Result<(), StoreError> {
        self.put(Self::site_item(s)).await
    }

    /// The sites of one client company of `tenant`.
    pub async fn sites(
        &self,
        tenant: &TenantId,
        client: &ClientId,
    ) -> Result<Vec<Site>, StoreError> {
        query_prefix(
            &self.client,
            &self.table,
            TenantKeys::new(tenant).sites_prefix(client),
        )
        .await?
        .iter()
        .map(|item| {
            Ok(Site {
                tenant: tenant.clone(),
                client: client.clone(),
                id: item.parsed("site_id", SiteId::parse)?,
                name: item.string("name")?.to_owned(),
                time_zone: item.string("time_zone")?.to_owned(),
                created_ms: item.number("created_ms")?,
            })
        })
        .collect()
    }

    pub async fn site(
        &self,
        tenant: &TenantId,
        client: &ClientId,
        id: &SiteId,
    ) -> Result<Option<Site>, StoreError> {
        let Some(item) = self.get(&TenantKeys::new(tenant).site(client, id)).await? else {
            return Ok(None);
        };
        Ok(Some(Site {
            tenant: tenant.clone(),
            client: client.clone(),
            id: id.clone(),
            name: item.string("name")?.to_owned(),
            time_zone: item.string("time_zone")?.to_owned(),
            created_ms: item.number("created_ms")?,
        }))
    }
}
