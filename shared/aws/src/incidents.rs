//! Incidents in DynamoDB: one item per incident in the tenant's partition
//! (`T#<tenant>` / `INCIDENT#<incident id>`), the incident as a JSON document plus its
//! `version`. Incident ids begin with their opening time, so "incidents opened between" is a
//! key range of one partition.
//!
//! Every change reads the document (consistently), applies the domain's action and writes it
//! back with `PutItem` conditioned on the version read; on a conflict it reads again and
//! re-applies, so two people editing at once both land and neither overwrites the other.

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
        crate::item::applied(put.send().await)
    }

    fn put_request(
        &self,
        tenant: &TenantId,
        incident: &Incident,
    ) -> Result<aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder, StoreError>
    {
        let key = TenantKeys::new(tenant).incident(&incident.incident_id);
        let item = document_item(&key, KIND, tenant, incident)?
            .n("version", incident.version)
            .n("opened_ms", incident.opened_ms)
            .n("sev", incident.sev)
            .s("status", incident.status.as_str())
            .build();
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
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(tenant).incident(incident_id))))
            .consistent_read(true)
            .send()
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
            let mut incident = self
                .get(tenant, incident_id)
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
            if crate::item::applied(put.send().await)? {
                return Ok(incident);
            }
        }
        Err(UpdateFailed::Busy)
    }
}
