//! Business-hours calendars and on-call schedules in DynamoDB: one item per document in the
//! tenant's partition (`T#<tenant>` / `CALENDAR#<id>`, `T#<tenant>` / `ONCALL#<id>`), the
//! document as JSON (`vigie-calendar`'s `BusinessCalendar` and `OnCallSchedule`; this crate
//! stores them without knowing their shape) and a version moved by every write.
//!
//! Replacing a whole document (`PUT`) is last-writer-wins, but still moves the version, so an
//! edit of part of a document (adding an override, importing holidays) that read an older
//! version fails its condition and reads again: two edits at once both land.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use vigie_domain::ids::TenantId;
use vigie_domain::keys::{TableKey, TenantKeys};
use vigie_domain::ports::{OnCallStore, StoreError};

use crate::item::{ItemBuilder, ItemExt, applied, key_of, list_documents, unavailable};

/// How many times [`TenantDocuments::edit`] reads again after losing a race.
const EDIT_ATTEMPTS: usize = 5;

/// Which documents a [`TenantDocuments`] handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    BusinessCalendar,
    OnCallSchedule,
}

impl DocumentKind {
    /// The item's `kind`, also the attribute holding the JSON.
    fn name(self) -> &'static str {
        match self {
            Self::BusinessCalendar => "business_calendar",
            Self::OnCallSchedule => "oncall_schedule",
        }
    }

    fn key(self, tenant: &TenantId, id: &str) -> TableKey {
        let keys = TenantKeys::new(tenant);
        match self {
            Self::BusinessCalendar => keys.business_calendar(id),
            Self::OnCallSchedule => keys.oncall_schedule(id),
        }
    }

    fn prefix(self, tenant: &TenantId) -> (String, String) {
        let keys = TenantKeys::new(tenant);
        match self {
            Self::BusinessCalendar => keys.business_calendars_prefix(),
            Self::OnCallSchedule => keys.oncall_schedules_prefix(),
        }
    }
}

/// A document and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// What [`TenantDocuments::edit`] did.
#[derive(Debug)]
pub enum Edited<T, R> {
    /// There is no such document.
    Missing,
    /// Stored: the new document and what the change said.
    Done(T, R),
}

/// Why an edit did not land.
#[derive(Debug, thiserror::Error)]
pub enum EditError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change refused the document as read (nothing was written).
    #[error("refused")]
    Refused(E),
    /// Every attempt lost a race with another writer.
    #[error("the document kept changing during the edit; retry")]
    Contended,
}

/// One kind of tenant document (calendars or schedules).
#[derive(Debug, Clone)]
pub struct TenantDocuments {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    pub(crate) kind: DocumentKind,
}

impl TenantDocuments {
    /// One document of the tenant (another tenant's is simply absent under this key).
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&self.kind.key(tenant, id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| {
                let value = serde_json::from_str(item.string(self.kind.name())?)
                    .map_err(|e| StoreError::Corrupt(format!("{}: {e}", self.kind.name())))?;
                Ok(Versioned {
                    value,
                    version: item.number_or("version", 0)?,
                })
            })
            .transpose()
    }

    /// Every document of the tenant: `Query pk = T#<tenant> AND begins_with(sk, <KIND>#)`.
    pub async fn list<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<T>, StoreError> {
        list_documents(
            &self.client,
            &self.table,
            self.kind.prefix(tenant),
            self.kind.name(),
        )
        .await
    }

    /// Creates or replaces a document (the caller validates it first); moves its version.
    pub async fn put<T: serde::Serialize>(
        &self,
        tenant: &TenantId,
        id: &str,
        value: &T,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&self.kind.key(tenant, id))))
            .update_expression("SET #kind = :kind, #tenant = :tenant, #doc = :doc, #updated = :now ADD #version :one")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#tenant", "tenant_id")
            .expression_attribute_names("#doc", self.kind.name())
            .expression_attribute_names("#updated", "updated_ms")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":kind", AttributeValue::S(self.kind.name().into()))
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
            .expression_attribute_values(":doc", AttributeValue::S(json))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Replaces a document if its stored version is still `read_version`; `false` when
    /// someone wrote it in between (or removed it).
    pub async fn replace_if<T: serde::Serialize>(
        &self,
        tenant: &TenantId,
        id: &str,
        value: &T,
        read_version: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item = ItemBuilder::keyed(&self.kind.key(tenant, id))
            .s("kind", self.kind.name())
            .s("tenant_id", tenant.as_str())
            .s(self.kind.name(), json)
            .n("updated_ms", now_ms)
            .n("version", read_version + 1)
            .build();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(pk) AND version = :read")
            .expression_attribute_values(":read", AttributeValue::N(read_version.to_string()));
        applied(put.send().await)
    }

    /// Reads a document, applies `change` and stores the result if nobody wrote it
    /// meanwhile; on a lost race, reads again (a few times) so concurrent edits all land.
    /// `change` may run more than once and must depend only on the document it is given.
    pub async fn edit<T, R, E>(
        &self,
        tenant: &TenantId,
        id: &str,
        now_ms: i64,
        mut change: impl FnMut(&mut T) -> Result<R, E>,
    ) -> Result<Edited<T, R>, EditError<E>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        for _ in 0..EDIT_ATTEMPTS {
            let Some(Versioned { mut value, version }) = self.get::<T>(tenant, id).await? else {
                return Ok(Edited::Missing);
            };
            let said = change(&mut value).map_err(EditError::Refused)?;
            if self.replace_if(tenant, id, &value, version, now_ms).await? {
                return Ok(Edited::Done(value, said));
            }
        }
        Err(EditError::Contended)
    }

    /// Removes a document; false when there was none.
    pub async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&self.kind.key(tenant, id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| a.contains_key("pk")))
    }
}

/// Business calendars and on-call schedules of every tenant.
#[derive(Debug, Clone)]
pub struct DynamoOnCall {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoOnCall {
    /// The business-hours calendars (`CALENDAR#<id>`).
    pub fn calendars(&self) -> TenantDocuments {
        self.documents(DocumentKind::BusinessCalendar)
    }

    /// The on-call schedules (`ONCALL#<id>`).
    pub fn schedules(&self) -> TenantDocuments {
        self.documents(DocumentKind::OnCallSchedule)
    }

    fn documents(&self, kind: DocumentKind) -> TenantDocuments {
        TenantDocuments {
            client: self.client.clone(),
            table: self.table.clone(),
            kind,
        }
    }
}

impl OnCallStore for DynamoOnCall {
    async fn business_calendar<C: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
        calendar_id: &str,
    ) -> Result<Option<C>, StoreError> {
        Ok(self
            .calendars()
            .get(tenant, calendar_id)
            .await?
            .map(|v| v.value))
    }

    async fn oncall_schedule<S: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
        schedule_id: &str,
    ) -> Result<Option<S>, StoreError> {
        Ok(self
            .schedules()
            .get(tenant, schedule_id)
            .await?
            .map(|v| v.value))
    }
}
