//! The set of adapters a function builds once at cold start.

use vigie_domain::ports::StoreError;

use crate::alerts_topic::SnsAlertsTopic;
use crate::config::{AwsClients, sdk_config};
use crate::devices::DynamoDevices;
use crate::directory::DynamoDirectory;
use crate::enrollment::DynamoEnrollment;
use crate::evaluation::DynamoEvaluation;
use crate::item::unavailable;
use crate::notifications::{DynamoChannels, DynamoDeliveryLog, SqsDeadLetters};
use crate::policies::DynamoPolicies;
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
    alerts_topic_arn: String,
}

impl AwsPorts {
    /// From the standard AWS configuration (honouring `AWS_ENDPOINT_URL`) and `VIGIE_PREFIX`.
    pub async fn from_env() -> Result<Self, StoreError> {
        let prefix = std::env::var(PREFIX_ENV)
            .map_err(|_| StoreError::Unavailable(format!("{PREFIX_ENV} is not set")))?;
        let clients = AwsClients::from_config(&sdk_config().await);
        Self::connect(clients, ResourceNames::new(&prefix)).await
    }

    /// Over given clients and names; looks up queue URLs and the topic ARN once (cold start).
    /// `VIGIE_ALERTS_TOPIC_ARN` spares the topic lookup where it is known (AWS template).
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
        let alerts_topic_arn = match std::env::var("VIGIE_ALERTS_TOPIC_ARN") {
            Ok(arn) if !arn.is_empty() => arn,
            // CreateTopic is idempotent and answers the ARN of an existing topic.
            _ => clients
                .sns
                .create_topic()
                .name(names.alerts_topic())
                .send()
                .await
                .map_err(unavailable)?
                .topic_arn
                .unwrap_or_default(),
        };
        Ok(Self {
            clients,
            names,
            telemetry_queue_url,
            telemetry_dlq_url,
            notify_queue_url,
            notify_dlq_url,
            alerts_topic_arn,
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

    pub fn evaluation(&self) -> DynamoEvaluation {
        DynamoEvaluation {
            client: self.clients.dynamodb.clone(),
            table: self.names.table(),
        }
    }

    pub fn alerts_topic(&self) -> SnsAlertsTopic {
        SnsAlertsTopic {
            sns: self.clients.sns.clone(),
            topic_arn: self.alerts_topic_arn.clone(),
        }
    }

    pub fn heartbeats(&self) -> crate::heartbeats::DynamoHeartbeats {
        crate::heartbeats::DynamoHeartbeats {
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

    pub fn notify_dead_letters(&self) -> SqsDeadLetters {
        SqsDeadLetters {
            sqs: self.clients.sqs.clone(),
            url: self.notify_dlq_url.clone(),
        }
    }

    pub fn notify_queue_url(&self) -> &str {
        &self.notify_queue_url
    }

    pub fn telemetry_dlq_url(&self) -> &str {
        &self.telemetry_dlq_url
    }
}
