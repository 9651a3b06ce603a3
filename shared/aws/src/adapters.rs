//! The set of adapters a function builds once at cold start.

use vigie_domain::ports::StoreError;

use crate::config::{AwsClients, sdk_config};
use crate::devices::DynamoDevices;
use crate::directory::DynamoDirectory;
use crate::enrollment::DynamoEnrollment;
use crate::item::unavailable;
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
}

impl AwsPorts {
    /// From the standard AWS configuration (honouring `AWS_ENDPOINT_URL`) and `VIGIE_PREFIX`.
    pub async fn from_env() -> Result<Self, StoreError> {
        let prefix = std::env::var(PREFIX_ENV)
            .map_err(|_| StoreError::Unavailable(format!("{PREFIX_ENV} is not set")))?;
        let clients = AwsClients::from_config(&sdk_config().await);
        Self::connect(clients, ResourceNames::new(&prefix)).await
    }

    /// Over given clients and names; looks up the queue URLs once.
    pub async fn connect(clients: AwsClients, names: ResourceNames) -> Result<Self, StoreError> {
        let telemetry_queue_url = clients
            .sqs
            .get_queue_url()
            .queue_name(names.telemetry_queue())
            .send()
            .await
            .map_err(unavailable)?
            .queue_url
            .unwrap_or_default();
        Ok(Self {
            clients,
            names,
            telemetry_queue_url,
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
            spill_bucket: self.names.spill_bucket(),
        }
    }
}
