//! Reading and writing DynamoDB items: the only place `AttributeValue` meets domain values.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_domain::keys::{IndexKey, TableKey};
use vigie_domain::ports::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// Builds an item attribute by attribute.
#[derive(Debug, Default)]
pub struct ItemBuilder(Item);

impl ItemBuilder {
    pub fn keyed(key: &TableKey) -> Self {
        let mut b = Self::default();
        b.0.insert("pk".into(), AttributeValue::S(key.pk.clone()));
        b.0.insert("sk".into(), AttributeValue::S(key.sk.clone()));
        b
    }

    pub fn index(mut self, key: &IndexKey) -> Self {
        self.0
            .insert("gsi1pk".into(), AttributeValue::S(key.gsi1pk.clone()));
        self.0
            .insert("gsi1sk".into(), AttributeValue::S(key.gsi1sk.clone()));
        self
    }

    pub fn s(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), AttributeValue::S(value.into()));
        self
    }

    pub fn n(mut self, name: &str, value: impl ToString) -> Self {
        self.0
            .insert(name.into(), AttributeValue::N(value.to_string()));
        self
    }

    /// A map of strings (left out when empty).
    pub fn string_map(
        mut self,
        name: &str,
        map: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        if !map.is_empty() {
            let m = map
                .iter()
                .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
                .collect();
            self.0.insert(name.into(), AttributeValue::M(m));
        }
        self
    }

    pub fn b(mut self, name: &str, value: bool) -> Self {
        self.0.insert(name.into(), AttributeValue::Bool(value));
        self
    }

    pub fn build(self) -> Item {
        self.0
    }
}

/// The key of an item as DynamoDB wants it.
pub fn key_of(key: &TableKey) -> Item {
    ItemBuilder::keyed(key).build()
}

fn corrupt(name: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute {name}: {what}"))
}

/// Typed reads from an item; a missing or mistyped attribute is a corrupt record.
pub trait ItemExt {
    fn string(&self, name: &str) -> Result<&str, StoreError>;
    fn number<T: FromStr>(&self, name: &str) -> Result<T, StoreError>;
    fn number_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, StoreError>;
    fn boolean(&self, name: &str) -> Result<bool, StoreError>;
    /// A map of strings; missing is empty.
    fn string_map(
        &self,
        name: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError>;
    fn parsed<T, E>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError>
    where
        E: std::fmt::Display;
}

impl ItemExt for Item {
    fn string(&self, name: &str) -> Result<&str, StoreError> {
        match self.get(name) {
            Some(AttributeValue::S(s)) => Ok(s),
            Some(_) => Err(corrupt(name, "not a string")),
            None => Err(corrupt(name, "missing")),
        }
    }

    fn number<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        match self.get(name) {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| corrupt(name, "not a number of the expected kind")),
            Some(_) => Err(corrupt(name, "not a number")),
            None => Err(corrupt(name, "missing")),
        }
    }

    fn number_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, StoreError> {
        if self.contains_key(name) {
            self.number(name)
        } else {
            Ok(default)
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, StoreError> {
        match self.get(name) {
            Some(AttributeValue::Bool(b)) => Ok(*b),
            Some(_) => Err(corrupt(name, "not a boolean")),
            None => Err(corrupt(name, "missing")),
        }
    }

    fn string_map(
        &self,
        name: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        match self.get(name) {
            None => Ok(Default::default()),
            Some(AttributeValue::M(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    AttributeValue::S(s) => Ok((k.clone(), s.clone())),
                    _ => Err(corrupt(name, "a value is not a string")),
                })
                .collect(),
            Some(_) => Err(corrupt(name, "not a map")),
        }
    }

    fn parsed<T, E>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError>
    where
        E: std::fmt::Display,
    {
        parse(self.string(name)?).map_err(|e| corrupt(name, &e.to_string()))
    }
}

/// Maps any SDK error to a retryable storage error, keeping the whole error chain as text.
pub fn unavailable<E>(e: E) -> StoreError
where
    E: std::error::Error,
{
    StoreError::Unavailable(aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
}

/// Which items a [`query_all`] reads: one partition of the table or of `gsi1`, and a sort-key
/// condition.
#[derive(Debug, Clone)]
pub enum Range {
    /// Sort key starting with the string.
    Prefix(String),
    /// Sort key between the two, inclusive.
    Between(String, String),
    /// The whole partition.
    All,
}

/// Whether a conditional write applied: `Ok(false)` when its condition failed, an error for
/// anything else.
pub fn applied<T, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(|s| s.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// Every item of partition `pk` (of `gsi1` when `index`) within `range`, across pages.
pub async fn query_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    index: bool,
    pk: &str,
    range: Range,
) -> Result<Vec<Item>, StoreError> {
    let (pk_name, sk_name) = if index {
        ("gsi1pk", "gsi1sk")
    } else {
        ("pk", "sk")
    };
    let condition = match &range {
        Range::Prefix(_) => format!("{pk_name} = :pk AND begins_with({sk_name}, :lo)"),
        Range::Between(..) => format!("{pk_name} = :pk AND {sk_name} BETWEEN :lo AND :hi"),
        Range::All => format!("{pk_name} = :pk"),
    };
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let mut query = client
            .query()
            .table_name(table)
            .key_condition_expression(&condition)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .set_exclusive_start_key(start);
        if index {
            query = query.index_name("gsi1");
        }
        match &range {
            Range::Prefix(lo) => {
                query = query.expression_attribute_values(":lo", AttributeValue::S(lo.clone()));
            }
            Range::Between(lo, hi) => {
                query = query
                    .expression_attribute_values(":lo", AttributeValue::S(lo.clone()))
                    .expression_attribute_values(":hi", AttributeValue::S(hi.clone()));
            }
            Range::All => {}
        }
        let page = query.send().await.map_err(unavailable)?;
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Every item of partition `pk` whose sort key starts with `prefix`, across pages.
pub async fn query_prefix(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    (pk, prefix): (String, String),
) -> Result<Vec<Item>, StoreError> {
    query_all(client, table, false, &pk, Range::Prefix(prefix)).await
}

/// Deletes one item (nothing happens when it is absent).
pub async fn delete_key(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &vigie_domain::keys::TableKey,
) -> Result<(), StoreError> {
    client
        .delete_item()
        .table_name(table)
        .set_key(Some(key_of(key)))
        .send()
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Writes (replaces) one item.
pub async fn put_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
) -> Result<(), StoreError> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// An item holding one record as a JSON document in the attribute named after its `kind`
/// (policies, channels): the domain type is the schema, the item only adds keys.
pub fn document_item<T: serde::Serialize>(
    key: &TableKey,
    kind: &str,
    tenant: &vigie_domain::ids::TenantId,
    value: &T,
) -> Result<ItemBuilder, StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(ItemBuilder::keyed(key)
        .s("kind", kind)
        .s("tenant_id", tenant.as_str())
        .s(kind, json))
}

/// Every document of `kind` under a partition prefix (see [`document_item`]).
pub async fn list_documents<T: serde::de::DeserializeOwned>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    prefix: (String, String),
    kind: &str,
) -> Result<Vec<T>, StoreError> {
    query_prefix(client, table, prefix)
        .await?
        .iter()
        .map(|item| {
            serde_json::from_str(item.string(kind)?)
                .map_err(|e| StoreError::Corrupt(format!("{kind}: {e}")))
        })
        .collect()
}
