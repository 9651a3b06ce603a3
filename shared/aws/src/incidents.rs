//! Incidents in DynamoDB: one item per incident in the tenant's partition
//! (`T#<tenant>` / `INCIDENT#<incident id>`), the incident as a JSON document plus its
//! `version`. Incident ids begin with their opening time, so "incidents opened between" is a
//! key range of one partition.
//!
//! Every change reads the document (consistently), applies the domain's action and writes it
//! back with `PutItem` conditioned on the version read; on a conflict it reads again and
//! re-applies, so two people editing at once both land and neither overwrites the other.
//!
//! SDK calls are awaited boxed: a debug build moves a future through the stack of every
//! caller that awaits it, and the API's callers are already deep in a 2 MiB worker stack.

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_domain::ids::TenantId;
use vigie_domain::incident::{Incident, IncidentId};
use vigie_domain::keys::TenantKeys;
use vigie_domain::ports::StoreError;

use crate::item::{ItemExt, Range, document_item, key_of, query_all, unavailable};

const KIND: &str = "incident";

/// How many times a change is re-applied after losing a race before giving up.
pub const UPDATE_ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
pub struct DynamoIncidents {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

/// What [`DynamoIncidents::create_once`] did.
#[derive(Debug)]
pub enum Created {
    /// The incident is stored.
    Stored,
    /// Another incident has this id (40 random bits collided): try another id.
    IdTaken,
    /// The same request opened this incident before: nothing new was stored.
    Replayed(Box<Incident>),
}

/// Why [`DynamoIncidents::update`] did not store a change.
#[derive(Debug)]
pub enum UpdateFailed<E> {
    /// No such incident in the tenant.
    NotFound,
    /// The change itself refused (the caller's error).
    Refused(E),
    /// Others kept changing it for [`UPDATE_ATTEMPTS`] tries.
    Busy,
    Store(StoreError),
}

impl<E> From<StoreError> for UpdateFailed<E> {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("incident: {e}"))
}

fn parse(item: &crate::item::Item) -> Result<Incident, StoreError> {
    let mut incident: Incident = serde_json::from_str(item.string(KIND)?).map_err(corrupt)?;
    incident.version = item.number("version")?;
    Ok(incident)
}

impl DynamoIncidents {
    /// Stores a new incident (its id must be new: `false` if it exists). Its version becomes 1.
    pub async fn create(
        &self,
        tenant: &TenantId,
        incident: &mut Incident,
    ) -> Result<bool, StoreError> {
        incident.version = 1;
        let put = self
            .put_request(tenant, incident)?
            .condition_expression("attribute_not_exists(pk)");
        crate::item::applied(Box::pin(put.send()).await)
    }

    /// Stores a new incident opened by a request carrying an idempotency key (`digest`), in
    /// one transaction with a record of the key (kept at least a day: `expires_at_s`, a TTL
    /// that only cleans up). A retried request finds the key taken and gets the incident the
    /// first one opened.
    pub async fn create_once(
        &self,
        tenant: &TenantId,
        incident: &mut Incident,
        digest: &str,
        expires_at_s: i64,
    ) -> Result<Created, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        incident.version = 1;
        let keys = TenantKeys::new(tenant);
        let incident_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.item(tenant, incident)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        let request_key = keys.incident_request(digest);
        let request_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(
                crate::item::ItemBuilder::keyed(&request_key)
                    .s("kind", "incident_request")
                    .s("tenant_id", tenant.as_str())
                    .s("incident_id", incident.incident_id.as_str())
                    .n("expires_at", expires_at_s)
                    .build(),
            ))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        let result = Box::pin(
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(incident_put).build())
                .transact_items(TransactWriteItem::builder().put(request_put).build())
                .send(),
        )
        .await;
        let reasons: Vec<Option<String>> = match result {
            Ok(_) => return Ok(Created::Stored),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => return Err(unavailable(e)),
            },
        };
        let failed =
            |i: usize| reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed");
        if failed(1) {
            let out = Box::pin(
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key_of(&request_key)))
                    .consistent_read(true)
                    .send(),
            )
            .await
            .map_err(unavailable)?;
            let first = out
                .item
                .as_ref()
                .ok_or_else(|| corrupt("an idempotency key vanished"))?
                .parsed("incident_id", IncidentId::parse)?;
            return match Box::pin(self.get(tenant, &first)).await? {
                Some(existing) => Ok(Created::Replayed(Box::new(existing))),
                None => Err(corrupt(format!(
                    "idempotency key names a missing incident {first}"
                ))),
            };
        }
        if failed(0) {
            return Ok(Created::IdTaken);
        }
        Err(StoreError::Unavailable(format!(
            "opening an incident was cancelled: {reasons:?}"
        )))
    }

    fn item(
        &self,
        tenant: &TenantId,
        incident: &Incident,
    ) -> Result<crate::item::Item, StoreError> {
        let key = TenantKeys::new(tenant).incident(&incident.incident_id);
        Ok(document_item(&key, KIND, tenant, incident)?
            .n("version", incident.version)
            .n("opened_ms", incident.opened_ms)
            .n("sev", incident.sev)
            .s("status", incident.status.as_str())
            .build())
    }

    fn put_request(
        &self,
        tenant: &TenantId,
        incident: &Incident,
    ) -> Result<aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder, StoreError>
    {
        let item = self.item(tenant, incident)?;
        Ok(self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item)))
    }

    /// One incident of the tenant (another tenant's is simply absent under this key).
    pub async fn get(
        &self,
        tenant: &TenantId,
        incident_id: &IncidentId,
    ) -> Result<Option<Incident>, StoreError> {
        let out = Box::pin(
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key_of(&TenantKeys::new(tenant).incident(incident_id))))
                .consistent_read(true)
                .send(),
        )
        .await
        .map_err(unavailable)?;
        out.item.as_ref().map(parse).transpose()
    }

    /// The incidents opened in `[from_ms, to_ms)`, oldest first:
    /// `Query pk = T#<tenant> AND sk BETWEEN INCIDENT#inc-<from> AND INCIDENT#inc-<to - 1>~`.
    pub async fn opened_between(
        &self,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Incident>, StoreError> {
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        let (pk, lo, hi) = TenantKeys::new(tenant).incidents_range(from_ms, to_ms);
        query_all(
            &self.client,
            &self.table,
            false,
            &pk,
            Range::Between(lo, hi),
        )
        .await?
        .iter()
        .map(parse)
        .collect()
    }

    /// Reads the incident, applies `change` and stores it if nobody changed it in between;
    /// otherwise reads again and re-applies (up to [`UPDATE_ATTEMPTS`] times). `change` must
    /// be a pure function of the incident it is given: it may run several times.
    pub async fn update<E>(
        &self,
        tenant: &TenantId,
        incident_id: &IncidentId,
        mut change: impl FnMut(&mut Incident) -> Result<(), E>,
    ) -> Result<Incident, UpdateFailed<E>> {
        for _ in 0..UPDATE_ATTEMPTS {
            let mut incident = Box::pin(self.get(tenant, incident_id))
                .await?
                .ok_or(UpdateFailed::NotFound)?;
            let read = incident.version;
            let before = incident.clone();
            change(&mut incident).map_err(UpdateFailed::Refused)?;
            if incident == before {
                // Nothing changed (a repeated acknowledgement): nothing to write.
                return Ok(incident);
            }
            incident.version = read + 1;
            let put = self
                .put_request(tenant, &incident)?
                .condition_expression("version = :read")
                .expression_attribute_values(":read", AttributeValue::N(read.to_string()));
            if crate::item::applied(Box::pin(put.send()).await)? {
                return Ok(incident);
            }
        }
        Err(UpdateFailed::Busy)
    }
}
