//! The set of adapters a function builds once at cold start.

use vigie_domain::ports::StoreError;

use aws_sdk_sqs::types::QueueAttributeName;
use vigie_domain::notification::NotificationChannel;

use crate::alerts_topic::{SnsAlertsTopic, TenantTopics};
use crate::config::{AwsClients, sdk_config};
use crate::devices::DynamoDevices;
use crate::directory::DynamoDirectory;
use crate::email::SesMailer;
use crate::enrollment::DynamoEnrollment;
use crate::evaluation::DynamoEvaluation;
use crate::item::unavailable;
use crate::notifications::{DynamoChannels, DynamoDeliveryLog, SqsConsumedQueue};
use crate::policies::DynamoPolicies;
use crate::provision::sns_arn_prefix;
use crate::resources::ResourceNames;
use crate::telemetry_queue::SqsTelemetryQueue;

/// Environment variable naming the installation's resource prefix.
pub const PREFIX_ENV: &str = "VIGIE_PREFIX";

/// Every adapter over one installation's resources.
#[derive(Debug, Clone)]
pub struct AwsPorts {
    clients: AwsClients,
    names: ResourceNames,
    telemetry_queue_url: String,
    telemetry_dlq_url: String,
    notify_queue_url: String,
    notify_dlq_url: String,
    notify_queue_arn: String,
    events_queue_arn: String,
    escalate_queue_url: String,
    escalate_dlq_url: String,
    /// `arn:aws:sns:<region>:<account>:`
    sns_arn_prefix: String,
}

impl AwsPorts {
    /// From the standard AWS configuration (honouring `AWS_ENDPOINT_URL`) and `VIGIE_PREFIX`.
    pub async fn from_env() -> Result<Self, StoreError> {
        let prefix = std::env::var(PREFIX_ENV)
            .map_err(|_| StoreError::Unavailable(format!("{PREFIX_ENV} is not set")))?;
        let clients = AwsClients::from_config(&sdk_config().await);
        Self::connect(clients, ResourceNames::new(&prefix)).await
    }

    /// Over given clients and names; looks up queue URLs and the region and account once
    /// (cold start).
    pub async fn connect(clients: AwsClients, names: ResourceNames) -> Result<Self, StoreError> {
        let url = |name: String| {
            let sqs = clients.sqs.clone();
            async move {
                let out = sqs
                    .get_queue_url()
                    .queue_name(name)
                    .send()
                    .await
                    .map_err(unavailable)?;
                Ok::<_, StoreError>(out.queue_url.unwrap_or_default())
            }
        };
        let telemetry_queue_url = url(names.telemetry_queue()).await?;
        let telemetry_dlq_url = url(names.telemetry_dlq()).await?;
        let notify_queue_url = url(names.notify_queue()).await?;
        let notify_dlq_url = url(names.notify_dlq()).await?;
        let escalate_queue_url = url(names.escalate_queue()).await?;
        let escalate_dlq_url = url(names.escalate_dlq()).await?;
        // Region and account, for the ARNs of the tenants' topics and of the queues.
        let notify_queue_arn = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&notify_queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        let sns_arn_prefix = sns_arn_prefix(&notify_queue_arn).ok_or_else(|| {
            StoreError::Unavailable(format!("unexpected queue ARN {notify_queue_arn:?}"))
        })?;
        let events_queue_arn = format!(
            "{}{}",
            notify_queue_arn.trim_end_matches(&names.notify_queue()),
            names.events_queue()
        );
        Ok(Self {
            clients,
            names,
            telemetry_queue_url,
            telemetry_dlq_url,
            notify_queue_url,
            notify_dlq_url,
            notify_queue_arn,
            events_queue_arn,
            escalate_queue_url,
            escalate_dlq_url,
            sns_arn_prefix,
        })
    }

    pub fn clients(&self) -> &AwsClients {
        &self.clients
    }

    pub fn names(&self) -> &ResourceNames {
        &self.names
    }

    pub fn devices(&self) -> DynamoDevices {
        DynamoDevices {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn enrollment(&self) -> DynamoEnrollment {
        DynamoEnrollment {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn directory(&self) -> DynamoDirectory {
        DynamoDirectory {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn telemetry_queue(&self) -> SqsTelemetryQueue {
        SqsTelemetryQueue {
            sqs: self.clients.sqs.clone(),
            s3: self.clients.s3.clone(),
            queue_url: self.telemetry_queue_url.clone(),
            dlq_url: self.telemetry_dlq_url.clone(),
            spill_bucket: self.names.spill_bucket(),
        }
    }

    pub fn policies(&self) -> DynamoPolicies {
        DynamoPolicies {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// The tenants' dependency maps (parent devices) and suppressed alerts.
    pub fn dependencies(&self) -> crate::dependencies::DynamoDependencies {
        crate::dependencies::DynamoDependencies {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// Maintenance windows (the API's writes and reads).
    pub fn windows(&self) -> crate::windows::DynamoWindows {
        crate::windows::DynamoWindows {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// Business-hours calendars and on-call schedules: `oncall().calendars()` and
    /// `oncall().schedules()` for the API's versioned reads and writes; the escalation engine
    /// reads one by id through [`vigie_domain::ports::OnCallStore`].
    pub fn oncall(&self) -> crate::oncall::DynamoOnCall {
        crate::oncall::DynamoOnCall {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn evaluation(&self) -> DynamoEvaluation {
        DynamoEvaluation {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// Publishes alert events to their tenant's topic.
    pub fn alerts_topic(&self) -> SnsAlertsTopic {
        SnsAlertsTopic {
            topics: self.tenant_topics(),
        }
    }

    pub fn alert_work(&self) -> crate::alert_work::DynamoAlertWork {
        crate::alert_work::DynamoAlertWork {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// Incidents (the API's reads and writes).
    pub fn incidents(&self) -> crate::incidents::DynamoIncidents {
        crate::incidents::DynamoIncidents {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    fn escalate_queue_arn(&self) -> String {
        format!(
            "{}{}",
            self.notify_queue_arn
                .trim_end_matches(&self.names.notify_queue()),
            self.names.escalate_queue()
        )
    }

    /// Escalation policies and user groups.
    pub fn escalations(&self) -> crate::escalations::DynamoEscalations {
        crate::escalations::DynamoEscalations {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// Notices to the notifier, wake-ups to the escalator.
    pub fn escalation_queue(&self) -> crate::escalations::EscalationQueue {
        crate::escalations::EscalationQueue {
            sqs: self.clients.sqs.clone(),
            notify_queue_url: self.notify_queue_url.clone(),
            escalate_queue_url: self.escalate_queue_url.clone(),
        }
    }

    /// The escalate queue (alert transitions and wake-ups) with its dead-letter queue.
    pub fn escalate_queue(&self) -> SqsConsumedQueue {
        SqsConsumedQueue {
            sqs: self.clients.sqs.clone(),
            url: self.escalate_queue_url.clone(),
            dlq_url: self.escalate_dlq_url.clone(),
        }
    }

    pub fn users(&self) -> crate::users::DynamoUsers {
        crate::users::DynamoUsers {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn api_keys(&self) -> crate::api_keys::DynamoApiKeys {
        crate::api_keys::DynamoApiKeys {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// The tenants' topics and their subscriptions.
    pub fn tenant_topics(&self) -> TenantTopics {
        TenantTopics {
            sns: self.clients.sns.clone(),
            names: self.names.clone(),
            sns_arn_prefix: self.sns_arn_prefix.clone(),
            notify_queue_arn: self.notify_queue_arn.clone(),
            events_queue_arn: self.events_queue_arn.clone(),
            escalate_queue_arn: self.escalate_queue_arn(),
            channels: self.channels(),
        }
    }

    /// Removes a channel and narrows its tenant's notify filter; `false` when there was none.
    pub async fn delete_channel(
        &self,
        tenant: &vigie_domain::ids::TenantId,
        channel: &str,
    ) -> Result<bool, StoreError> {
        let deleted = self.channels().delete(tenant, channel).await?;
        if deleted {
            self.tenant_topics().sync(tenant).await?;
        }
        Ok(deleted)
    }

    /// Stores a (validated) channel and brings its tenant's notify filter to the channels. An
    /// e-mail channel's sender becomes an SES identity (on AWS, verified by its owner).
    pub async fn save_channel(&self, channel: &NotificationChannel) -> Result<(), StoreError> {
        if let vigie_domain::notification::ChannelKind::Email { from, .. } = &channel.kind {
            self.mailer().ensure_sender(from).await?;
        }
        self.channels().put(channel).await?;
        self.tenant_topics().sync(&channel.tenant_id).await?;
        Ok(())
    }

    pub fn heartbeats(&self) -> crate::heartbeats::DynamoHeartbeats {
        crate::heartbeats::DynamoHeartbeats {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// Usage metering: the export's reads, the daily close job's ledger.
    pub fn usage(&self) -> crate::usage::DynamoUsage {
        crate::usage::DynamoUsage {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn channels(&self) -> DynamoChannels {
        DynamoChannels {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn deliveries(&self) -> DynamoDeliveryLog {
        DynamoDeliveryLog {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    /// The notify queue as its consumer sees it: retry delays and the dead-letter queue.
    pub fn notify_queue(&self) -> SqsConsumedQueue {
        SqsConsumedQueue {
            sqs: self.clients.sqs.clone(),
            url: self.notify_queue_url.clone(),
            dlq_url: self.notify_dlq_url.clone(),
        }
    }

    /// Alert groups of the notifier, and their delayed flush messages on the notify queue.
    pub fn alert_groups(&self) -> crate::groups::DynamoAlertGroups {
        crate::groups::DynamoAlertGroups {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
            sqs: self.clients.sqs.clone(),
            queue_url: self.notify_queue_url.clone(),
        }
    }

    pub fn mailer(&self) -> SesMailer {
        SesMailer {
            ses: self.clients.ses.clone(),
        }
    }

    pub fn notify_dlq_url(&self) -> &str {
        &self.notify_dlq_url
    }

    pub fn events_queue_url(&self) -> String {
        self.notify_queue_url
            .trim_end_matches(&self.names.notify_queue())
            .to_owned()
            + &self.names.events_queue()
    }

    pub fn escalate_queue_url(&self) -> &str {
        &self.escalate_queue_url
    }

    pub fn notify_queue_url(&self) -> &str {
        &self.notify_queue_url
    }

    pub fn telemetry_dlq_url(&self) -> &str {
        &self.telemetry_dlq_url
    }
}
