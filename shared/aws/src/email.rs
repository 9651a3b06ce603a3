//! E-mail through Amazon SES (API v2): the [`Mailer`] port, and sender identities.

use aws_sdk_sesv2::error::SdkError;
use aws_sdk_sesv2::operation::create_email_identity::CreateEmailIdentityError;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_smithy_types::error::display::DisplayErrorContext;
use tracing::{debug, info};
use vigie_domain::ports::{MailError, Mailer, OutgoingEmail, StoreError};

use crate::item::unavailable;

#[derive(Debug, Clone)]
pub struct SesMailer {
    pub(crate) ses: aws_sdk_sesv2::Client,
}

fn utf8(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Refused(e.to_string()))
}

impl SesMailer {
    /// Makes `address` (or its domain) a sender identity, if it is not one yet. On AWS this
    /// starts the identity's verification: SES refuses to send from it until it is verified.
    pub async fn ensure_sender(&self, address: &str) -> Result<(), StoreError> {
        match self
            .ses
            .create_email_identity()
            .email_identity(address)
            .send()
            .await
        {
            Ok(_) => {
                info!(
                    sender = address,
                    "e-mail sender identity created (to be verified on AWS)"
                );
                Ok(())
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateEmailIdentityError::AlreadyExistsException(_))
                ) =>
            {
                debug!(sender = address, "e-mail sender identity exists");
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let message = Message::builder()
            .subject(utf8(&email.subject)?)
            .body(
                Body::builder()
                    .text(utf8(&email.text)?)
                    .html(utf8(&email.html)?)
                    .build(),
            )
            .build();
        let sent = self
            .ses
            .send_email()
            .from_email_address(&email.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(email.to.clone()))
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(classify)?;
        Ok(sent.message_id.unwrap_or_default())
    }
}

/// Refusals that a retry cannot change, apart from throttling and outages.
fn classify(e: SdkError<SendEmailError>) -> MailError {
    let text = DisplayErrorContext(&e).to_string();
    match e.as_service_error() {
        Some(
            SendEmailError::MessageRejected(_)
            | SendEmailError::MailFromDomainNotVerifiedException(_)
            | SendEmailError::AccountSuspendedException(_)
            | SendEmailError::SendingPausedException(_)
            | SendEmailError::NotFoundException(_)
            | SendEmailError::BadRequestException(_),
        ) => MailError::Refused(text),
        _ => MailError::Unavailable(text),
    }
}
