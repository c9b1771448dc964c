use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageHeader};
use aws_sdk_sesv2::Client;

use super::describe;
use crate::domain::error::MailError;
use crate::ports::{Email, Mailer};

/// The mailer on SES v2.
#[derive(Clone)]
pub struct SesMailer {
    client: super::Lazy<Client>,
    /// The configuration set whose bounce and complaint events come back
    /// to the notifier (the template's `EmailConfigurationSet`).
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: super::Lazy<Client>, configuration_set: Option<String>) -> Self {
        Self { client, configuration_set }
    }
}

fn content(data: &str) -> Result<Content, MailError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| MailError::Rejected(e.to_string()))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        if email.to.is_empty() {
            return Err(MailError::Rejected("no recipient".into()));
        }
        let mut message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build());
        for (name, value) in &email.headers {
            let header = MessageHeader::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| MailError::Rejected(e.to_string()))?;
            message = message.headers(header);
        }
        let message = message.build();
        let out = self
            .client
            .get()
            .await
            .send_email()
            .from_email_address(&email.from)
            .destination(Destination::builder().set_to_addresses(Some(email.to.clone())).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match out {
            Ok(o) => Ok(o.message_id.unwrap_or_default()),
            Err(e) => {
                let se = e.as_service_error();
                if se.is_some_and(|se| se.is_too_many_requests_exception() || se.is_limit_exceeded_exception()) {
                    Err(MailError::Throttled)
                } else if se.is_some_and(|se| {
                    se.is_message_rejected()
                        || se.is_mail_from_domain_not_verified_exception()
                        || se.is_bad_request_exception()
                }) {
                    Err(MailError::Rejected(describe(&e)))
                } else {
                    Err(MailError::Unavailable(describe(&e)))
                }
            }
        }
    }
}
