//! The one provisioning routine: every AWS resource of one Vigie installation, created
//! idempotently (running it again succeeds and changes nothing), and its best-effort teardown.
//!
//! The same routine serves the local emulator (moto, LocalStack) and the tests; it is written
//! against the behaviour of real AWS (e.g. `UpdateTimeToLive` fails when TTL is already on, so
//! it is described first).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, DefaultRetention,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    VersioningConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::error::display::DisplayErrorContext;
use tracing::debug;

use crate::config::AwsClients;
use crate::resources::ResourceNames;

/// Partition key, sort key and the one GSI of the single table.
pub const PARTITION_KEY: &str = "pk";
pub const SORT_KEY: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PARTITION_KEY: &str = "gsi1pk";
pub const GSI1_SORT_KEY: &str = "gsi1sk";
/// Items carrying this attribute (epoch seconds) are expired by DynamoDB.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Receives before a message moves to its dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;
pub const TELEMETRY_VISIBILITY_TIMEOUT_SECS: u32 = 60;
/// 14 days, the SQS maximum.
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 60 * 60;

/// Knobs of [`provision_with`].
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Default COMPLIANCE-mode retention of the audit bucket. Compliance retention cannot be
    /// shortened or removed once set; keep it small outside production.
    pub audit_retention_days: i32,
    /// How long to wait for the table (and its GSI) to become ACTIVE.
    pub table_active_timeout: Duration,
}

impl Default for ProvisionOptions {
    /// Development defaults: one day of audit retention.
    fn default() -> Self {
        Self {
            audit_retention_days: 1,
            table_active_timeout: Duration::from_secs(120),
        }
    }
}

/// What [`provision`] created or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub table_name: String,
    pub telemetry_queue_url: String,
    pub telemetry_queue_arn: String,
    pub telemetry_dlq_url: String,
    pub telemetry_dlq_arn: String,
    pub notify_queue_url: String,
    pub notify_queue_arn: String,
    pub notify_dlq_url: String,
    pub notify_dlq_arn: String,
    pub events_queue_url: String,
    pub events_queue_arn: String,
    pub escalate_queue_url: String,
    pub escalate_queue_arn: String,
    pub escalate_dlq_url: String,
    /// The ARN pattern of the tenants' alerts topics (`arn:aws:sns:<region>:<account>:<prefix>-alerts-*`);
    /// the topics themselves are created per tenant ([`crate::alerts_topic::TenantTopics`]).
    pub alerts_topics_pattern: String,
    pub audit_bucket: String,
    pub reports_bucket: String,
    pub spill_bucket: String,
}

/// The kind of resource an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Table,
    Queue,
    Topic,
    Subscription,
    Bucket,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Table => "DynamoDB table",
            Self::Queue => "SQS queue",
            Self::Topic => "SNS topic",
            Self::Subscription => "SNS subscription on topic",
            Self::Bucket => "S3 bucket",
        })
    }
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{kind} {name}: {action} failed: {}", DisplayErrorContext(.source.as_ref()))]
    Aws {
        kind: ResourceKind,
        name: String,
        action: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{kind} {name}: {action} answered without {field}")]
    MissingField {
        kind: ResourceKind,
        name: String,
        action: &'static str,
        field: &'static str,
    },
    #[error("DynamoDB table {name} is not ACTIVE after {waited:?} (last status: {status})")]
    TableNotActive {
        name: String,
        waited: Duration,
        status: String,
    },
}

impl ProvisionError {
    /// The name of the resource the error is about.
    pub fn resource(&self) -> &str {
        match self {
            Self::Aws { name, .. }
            | Self::MissingField { name, .. }
            | Self::TableNotActive { name, .. } => name,
        }
    }
}

/// A closure turning an SDK (or builder) error into a [`ProvisionError::Aws`].
fn failed<E>(
    kind: ResourceKind,
    name: &str,
    action: &'static str,
) -> impl FnOnce(E) -> ProvisionError + use<E>
where
    E: StdError + Send + Sync + 'static,
{
    let name = name.to_owned();
    move |source| ProvisionError::Aws {
        kind,
        name,
        action,
        source: Box::new(source),
    }
}

fn missing(
    kind: ResourceKind,
    name: &str,
    action: &'static str,
    field: &'static str,
) -> ProvisionError {
    ProvisionError::MissingField {
        kind,
        name: name.to_owned(),
        action,
        field,
    }
}

/// Provisions everything with [`ProvisionOptions::default`].
pub async fn provision(
    clients: &AwsClients,
    names: &ResourceNames,
) -> Result<Provisioned, ProvisionError> {
    provision_with(clients, names, &ProvisionOptions::default()).await
}

/// Creates (or finds) the table, queues (with the policies letting the tenants' alerts topics
/// send to them) and buckets of `names`. Tenants' topics are created per tenant.
pub async fn provision_with(
    clients: &AwsClients,
    names: &ResourceNames,
    options: &ProvisionOptions,
) -> Result<Provisioned, ProvisionError> {
    debug!(prefix = names.prefix(), "provisioning");
    let table_name = names.table();
    ensure_table(&clients.dynamodb, &table_name, options.table_active_timeout).await?;

    let sqs = &clients.sqs;
    let (telemetry_dlq_url, telemetry_dlq_arn) =
        ensure_queue(sqs, &names.telemetry_dlq(), fifo_dlq_attributes()).await?;
    let (telemetry_queue_url, telemetry_queue_arn) = ensure_queue(
        sqs,
        &names.telemetry_queue(),
        telemetry_attributes(&telemetry_dlq_arn),
    )
    .await?;
    let (notify_dlq_url, notify_dlq_arn) =
        ensure_queue(sqs, &names.notify_dlq(), standard_dlq_attributes()).await?;
    let (notify_queue_url, notify_queue_arn) = ensure_queue(
        sqs,
        &names.notify_queue(),
        notify_attributes(&notify_dlq_arn),
    )
    .await?;

    let (events_queue_url, events_queue_arn) =
        ensure_queue(sqs, &names.events_queue(), events_attributes()).await?;
    let (escalate_dlq_url, escalate_dlq_arn) =
        ensure_queue(sqs, &names.escalate_dlq(), standard_dlq_attributes()).await?;
    let (escalate_queue_url, escalate_queue_arn) = ensure_queue(
        sqs,
        &names.escalate_queue(),
        notify_attributes(&escalate_dlq_arn),
    )
    .await?;
    let alerts_topics_pattern = format!(
        "{}{}*",
        sns_arn_prefix(&notify_queue_arn).ok_or_else(|| missing(
            ResourceKind::Queue,
            &names.notify_queue(),
            "GetQueueAttributes",
            "a well-formed QueueArn"
        ))?,
        names.alerts_topic_prefix()
    );
    for (name, url, arn) in [
        (names.notify_queue(), &notify_queue_url, &notify_queue_arn),
        (names.events_queue(), &events_queue_url, &events_queue_arn),
        (
            names.escalate_queue(),
            &escalate_queue_url,
            &escalate_queue_arn,
        ),
    ] {
        allow_topics_to_send(sqs, &name, url, arn, &alerts_topics_pattern).await?;
    }
    // Topics of tenants that existed before the escalate queue did get its subscription too
    // (a new tenant's topic gets it from `TenantTopics::sync`).
    subscribe_existing_topics(
        &clients.sns,
        &alerts_topics_pattern,
        &escalate_queue_arn,
        &crate::alerts_topic::escalate_subscription_attributes(),
    )
    .await?;

    let s3 = &clients.s3;
    for bucket in [names.reports_bucket(), names.spill_bucket()] {
        ensure_bucket(s3, &bucket, false).await?;
        enable_versioning(s3, &bucket).await?;
    }
    let audit_bucket = names.audit_bucket();
    ensure_bucket(s3, &audit_bucket, true).await?;
    enable_versioning(s3, &audit_bucket).await?;
    ensure_default_retention(s3, &audit_bucket, options.audit_retention_days).await?;

    debug!(prefix = names.prefix(), "provisioned");
    Ok(Provisioned {
        table_name,
        telemetry_queue_url,
        telemetry_queue_arn,
        telemetry_dlq_url,
        telemetry_dlq_arn,
        notify_queue_url,
        notify_queue_arn,
        notify_dlq_url,
        notify_dlq_arn,
        events_queue_url,
        events_queue_arn,
        escalate_queue_url,
        escalate_queue_arn,
        escalate_dlq_url,
        alerts_topics_pattern,
        audit_bucket,
        reports_bucket: names.reports_bucket(),
        spill_bucket: names.spill_bucket(),
    })
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

async fn ensure_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    active_timeout: Duration,
) -> Result<(), ProvisionError> {
    use aws_sdk_dynamodb::operation::create_table::CreateTableError;
    const KIND: ResourceKind = ResourceKind::Table;

    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(failed(KIND, table, "building the key schema"))
    };
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(failed(KIND, table, "building the attribute definitions"))
    };
    let gsi1 = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1_PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(GSI1_SORT_KEY, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(failed(KIND, table, "building the GSI"))?;

    let created = dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .attribute_definitions(string_attribute(PARTITION_KEY)?)
        .attribute_definitions(string_attribute(SORT_KEY)?)
        .attribute_definitions(string_attribute(GSI1_PARTITION_KEY)?)
        .attribute_definitions(string_attribute(GSI1_SORT_KEY)?)
        .global_secondary_indexes(gsi1)
        .send()
        .await;
    match created {
        Ok(_) => debug!(table, "table created"),
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            debug!(table, "table exists");
        }
        Err(error) => return Err(failed(KIND, table, "CreateTable")(error)),
    }

    wait_until_active(dynamodb, table, active_timeout).await?;

    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(failed(KIND, table, "DescribeTimeToLive"))?;
    let ttl = ttl.time_to_live_description();
    let ttl_on = ttl.and_then(|ttl| ttl.attribute_name()) == Some(TTL_ATTRIBUTE)
        && matches!(
            ttl.and_then(|ttl| ttl.time_to_live_status()),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        );
    if !ttl_on {
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(failed(KIND, table, "building the TTL specification"))?;
        dynamodb
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(failed(KIND, table, "UpdateTimeToLive"))?;
        debug!(table, attribute = TTL_ATTRIBUTE, "TTL enabled");
    }
    Ok(())
}

async fn wait_until_active(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let started = Instant::now();
    loop {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(failed(ResourceKind::Table, table, "DescribeTable"))?;
        let description = described.table();
        let status = description.and_then(|table| table.table_status());
        let indexes_active = description
            .map(|table| table.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .all(|index| {
                index
                    .index_status()
                    .is_none_or(|status| *status == IndexStatus::Active)
            });
        if status == Some(&TableStatus::Active) && indexes_active {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(ProvisionError::TableNotActive {
                name: table.to_owned(),
                waited: started.elapsed(),
                status: status.map_or_else(|| "unknown".to_owned(), |status| status.to_string()),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// SQS

pub type QueueAttributes = HashMap<QueueAttributeName, String>;

fn redrive_policy(dlq_arn: &str) -> String {
    serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT })
        .to_string()
}

fn fifo_dlq_attributes() -> QueueAttributes {
    HashMap::from([
        (QueueAttributeName::FifoQueue, "true".to_owned()),
        (
            QueueAttributeName::ContentBasedDeduplication,
            "false".to_owned(),
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        ),
    ])
}

fn telemetry_attributes(dlq_arn: &str) -> QueueAttributes {
    HashMap::from([
        (QueueAttributeName::FifoQueue, "true".to_owned()),
        (
            QueueAttributeName::ContentBasedDeduplication,
            "false".to_owned(),
        ),
        // High-throughput FIFO: deduplication and ordering per device (message group).
        (
            QueueAttributeName::DeduplicationScope,
            "messageGroup".to_owned(),
        ),
        (
            QueueAttributeName::FifoThroughputLimit,
            "perMessageGroupId".to_owned(),
        ),
        (
            QueueAttributeName::VisibilityTimeout,
            TELEMETRY_VISIBILITY_TIMEOUT_SECS.to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive_policy(dlq_arn)),
    ])
}

fn standard_dlq_attributes() -> QueueAttributes {
    HashMap::from([(
        QueueAttributeName::MessageRetentionPeriod,
        DLQ_RETENTION_SECS.to_string(),
    )])
}

/// Alert events wait here for the audit writer: kept as long as SQS allows.
fn events_attributes() -> QueueAttributes {
    HashMap::from([(
        QueueAttributeName::MessageRetentionPeriod,
        DLQ_RETENTION_SECS.to_string(),
    )])
}

/// `arn:aws:sns:<region>:<account>:` from any ARN of the same region and account (a queue's).
pub fn sns_arn_prefix(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(_service), Some(region), Some(account), Some(_)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(format!("arn:{partition}:sns:{region}:{account}:"))
}

fn notify_attributes(dlq_arn: &str) -> QueueAttributes {
    HashMap::from([(QueueAttributeName::RedrivePolicy, redrive_policy(dlq_arn))])
}

/// Creates `name` with `attributes`, or brings an existing queue's mutable attributes to
/// them. Returns the queue's URL and ARN.
pub async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: QueueAttributes,
) -> Result<(String, String), ProvisionError> {
    use aws_sdk_sqs::operation::create_queue::CreateQueueError;
    const KIND: ResourceKind = ResourceKind::Queue;

    let created = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await;
    let url = match created {
        Ok(output) => {
            debug!(
                queue = name,
                "queue created or found with the same attributes"
            );
            output
                .queue_url
                .ok_or_else(|| missing(KIND, name, "CreateQueue", "QueueUrl"))?
        }
        // The queue exists with other attribute values: converge the mutable ones.
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(CreateQueueError::QueueNameExists(_))
            ) =>
        {
            let url = queue_url(sqs, name).await?;
            let mut mutable = attributes;
            mutable.remove(&QueueAttributeName::FifoQueue);
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(mutable))
                .send()
                .await
                .map_err(failed(KIND, name, "SetQueueAttributes"))?;
            debug!(queue = name, "queue attributes updated");
            url
        }
        Err(error) => return Err(failed(KIND, name, "CreateQueue")(error)),
    };
    let arn = queue_arn(sqs, name, &url).await?;
    Ok((url, arn))
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, ProvisionError> {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(failed(ResourceKind::Queue, name, "GetQueueUrl"))?
        .queue_url
        .ok_or_else(|| missing(ResourceKind::Queue, name, "GetQueueUrl", "QueueUrl"))
}

async fn queue_arn(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    url: &str,
) -> Result<String, ProvisionError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(failed(ResourceKind::Queue, name, "GetQueueAttributes"))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| missing(ResourceKind::Queue, name, "GetQueueAttributes", "QueueArn"))
}

/// Sets the queue policy letting the SNS topics whose ARN matches `topic_arn_pattern` (`*`
/// and `?` wildcards) send to the queue, replacing any other policy: provisioning owns it.
pub async fn allow_topics_to_send(
    sqs: &aws_sdk_sqs::Client,
    queue_name: &str,
    queue_url: &str,
    queue_arn: &str,
    topic_arn_pattern: &str,
) -> Result<(), ProvisionError> {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowSnsTopics",
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnLike": { "aws:SourceArn": topic_arn_pattern } },
        }],
    });
    sqs.set_queue_attributes()
        .queue_url(queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(failed(
            ResourceKind::Queue,
            queue_name,
            "SetQueueAttributes(Policy)",
        ))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// SNS

/// Subscribes the queue `queue_arn` to `topic_arn` once: an existing SQS subscription of that
/// queue is kept and given `attributes` (e.g. `RawMessageDelivery`, `FilterPolicy`). Returns
/// the subscription ARN.
pub async fn ensure_sqs_subscription(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
    attributes: &HashMap<String, String>,
) -> Result<String, ProvisionError> {
    const KIND: ResourceKind = ResourceKind::Subscription;
    let mut next_token = None;
    let existing = loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(failed(KIND, topic_arn, "ListSubscriptionsByTopic"))?;
        let found = page.subscriptions().iter().find(|subscription| {
            subscription.protocol() == Some("sqs") && subscription.endpoint() == Some(queue_arn)
        });
        if let Some(arn) = found.and_then(|subscription| subscription.subscription_arn()) {
            break Some(arn.to_owned());
        }
        match page.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => break None,
        }
    };

    match existing {
        Some(subscription_arn) => {
            for (name, value) in attributes {
                sns.set_subscription_attributes()
                    .subscription_arn(&subscription_arn)
                    .attribute_name(name)
                    .attribute_value(value)
                    .send()
                    .await
                    .map_err(failed(KIND, topic_arn, "SetSubscriptionAttributes"))?;
            }
            debug!(topic = topic_arn, queue = queue_arn, "subscription exists");
            Ok(subscription_arn)
        }
        None => {
            let arn = sns
                .subscribe()
                .topic_arn(topic_arn)
                .protocol("sqs")
                .endpoint(queue_arn)
                .set_attributes(Some(attributes.clone()))
                .return_subscription_arn(true)
                .send()
                .await
                .map_err(failed(KIND, topic_arn, "Subscribe"))?
                .subscription_arn
                .ok_or_else(|| missing(KIND, topic_arn, "Subscribe", "SubscriptionArn"))?;
            debug!(topic = topic_arn, queue = queue_arn, "subscribed");
            Ok(arn)
        }
    }
}

/// Ensures `queue_arn`'s subscription on every existing topic matching `pattern` (`…*`).
async fn subscribe_existing_topics(
    sns: &aws_sdk_sns::Client,
    pattern: &str,
    queue_arn: &str,
    attributes: &HashMap<String, String>,
) -> Result<(), ProvisionError> {
    let prefix = pattern.trim_end_matches('*');
    let mut next_token = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(next_token)
            .send()
            .await
            .map_err(failed(ResourceKind::Subscription, prefix, "ListTopics"))?;
        for topic in page.topics() {
            if let Some(arn) = topic.topic_arn().filter(|a| a.starts_with(prefix)) {
                ensure_sqs_subscription(sns, arn, queue_arn, attributes).await?;
            }
        }
        match page.next_token {
            Some(t) if !t.is_empty() => next_token = Some(t),
            _ => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// S3

async fn ensure_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    object_lock: bool,
) -> Result<(), ProvisionError> {
    use aws_sdk_s3::operation::create_bucket::CreateBucketError;

    let mut request = s3.create_bucket().bucket(bucket);
    // us-east-1 takes no location constraint; every other region needs one.
    if let Some(region) = s3
        .config()
        .region()
        .map(|region| region.as_ref().to_owned())
        && region != "us-east-1"
    {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    if object_lock {
        request = request.object_lock_enabled_for_bucket(true);
    }
    match request.send().await {
        Ok(_) => debug!(bucket, "bucket created (or re-created in us-east-1)"),
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(CreateBucketError::BucketAlreadyOwnedByYou(_))
            ) =>
        {
            debug!(bucket, "bucket exists");
        }
        Err(error) => return Err(failed(ResourceKind::Bucket, bucket, "CreateBucket")(error)),
    }
    Ok(())
}

async fn enable_versioning(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), ProvisionError> {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(failed(ResourceKind::Bucket, bucket, "PutBucketVersioning"))?;
    Ok(())
}

async fn ensure_default_retention(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    days: i32,
) -> Result<(), ProvisionError> {
    let configuration = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder()
                        .mode(ObjectLockRetentionMode::Compliance)
                        .days(days)
                        .build(),
                )
                .build(),
        )
        .build();
    s3.put_object_lock_configuration()
        .bucket(bucket)
        .object_lock_configuration(configuration)
        .send()
        .await
        .map_err(failed(
            ResourceKind::Bucket,
            bucket,
            "PutObjectLockConfiguration",
        ))?;
    debug!(bucket, days, "default COMPLIANCE retention set");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Teardown

/// Deletes everything [`provision`] created, best effort: every step is attempted, failures are
/// logged at debug level and skipped. Returns how many steps failed.
///
/// The audit bucket usually stays behind: objects under COMPLIANCE retention cannot be deleted
/// until the retention ends. On the emulator that is harmless: the bucket dies with it.
pub async fn teardown(clients: &AwsClients, names: &ResourceNames) -> usize {
    let mut failures = 0;
    let mut note = |what: &str, name: &str, error: Option<String>| {
        if let Some(error) = error {
            failures += 1;
            debug!(resource = name, error, "teardown: {what} failed");
        }
    };

    let table = names.table();
    let result = clients
        .dynamodb
        .delete_table()
        .table_name(&table)
        .send()
        .await;
    note(
        "DeleteTable",
        &table,
        result
            .err()
            .map(|error| DisplayErrorContext(error).to_string()),
    );

    match tenant_topics(&clients.sns, &names.alerts_topic_prefix()).await {
        Ok(topics) => {
            for arn in topics {
                for subscription in subscriptions_of(&clients.sns, &arn).await {
                    let result = clients
                        .sns
                        .unsubscribe()
                        .subscription_arn(&subscription)
                        .send()
                        .await;
                    note(
                        "Unsubscribe",
                        &subscription,
                        result.err().map(|e| DisplayErrorContext(e).to_string()),
                    );
                }
                let result = clients.sns.delete_topic().topic_arn(&arn).send().await;
                note(
                    "DeleteTopic",
                    &arn,
                    result.err().map(|e| DisplayErrorContext(e).to_string()),
                );
            }
        }
        Err(error) => note("ListTopics", &names.alerts_topic_prefix(), Some(error)),
    }

    for queue in [
        names.telemetry_queue(),
        names.telemetry_dlq(),
        names.notify_queue(),
        names.notify_dlq(),
        names.events_queue(),
        names.escalate_queue(),
        names.escalate_dlq(),
    ] {
        match queue_url(&clients.sqs, &queue).await {
            Ok(url) => {
                let result = clients.sqs.delete_queue().queue_url(url).send().await;
                note(
                    "DeleteQueue",
                    &queue,
                    result.err().map(|e| DisplayErrorContext(e).to_string()),
                );
            }
            Err(error) => note("GetQueueUrl", &queue, Some(error.to_string())),
        }
    }

    for bucket in [
        names.reports_bucket(),
        names.spill_bucket(),
        names.audit_bucket(),
    ] {
        if let Err(error) = empty_bucket(&clients.s3, &bucket).await {
            note("emptying", &bucket, Some(error));
        }
        let result = clients.s3.delete_bucket().bucket(&bucket).send().await;
        note(
            "DeleteBucket",
            &bucket,
            result.err().map(|e| DisplayErrorContext(e).to_string()),
        );
    }
    failures
}

/// The ARNs of the topics whose name starts with `name_prefix`.
async fn tenant_topics(
    sns: &aws_sdk_sns::Client,
    name_prefix: &str,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut next_token = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|error| DisplayErrorContext(error).to_string())?;
        out.extend(
            page.topics()
                .iter()
                .filter_map(|topic| topic.topic_arn())
                .filter(|arn| {
                    arn.rsplit(':')
                        .next()
                        .is_some_and(|name| name.starts_with(name_prefix))
                })
                .map(str::to_owned),
        );
        match page.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(out),
        }
    }
}

/// The subscription ARNs of `topic_arn` (first page: a tenant topic has two).
async fn subscriptions_of(sns: &aws_sdk_sns::Client, topic_arn: &str) -> Vec<String> {
    sns.list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .map(|page| {
            page.subscriptions()
                .iter()
                .filter_map(|s| s.subscription_arn())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes every version and delete marker of `bucket`; stops when a pass deletes nothing
/// (objects under retention).
async fn empty_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    loop {
        let listed = s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .map_err(|error| DisplayErrorContext(error).to_string())?;
        let versions = listed
            .versions()
            .iter()
            .map(|version| (version.key(), version.version_id()))
            .chain(
                listed
                    .delete_markers()
                    .iter()
                    .map(|marker| (marker.key(), marker.version_id())),
            );
        let mut deleted = 0;
        let mut refused = None;
        for (key, version_id) in versions {
            let Some(key) = key else { continue };
            let result = s3
                .delete_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version_id.map(str::to_owned))
                .send()
                .await;
            match result {
                Ok(_) => deleted += 1,
                Err(error) => refused = Some(DisplayErrorContext(error).to_string()),
            }
        }
        if deleted == 0 {
            return refused.map_or(Ok(()), Err);
        }
    }
}
