use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret, SecretString};

use super::describe;
use crate::adapters::embedded::check_secret_name;
use crate::domain::error::VaultError;
use crate::ports::SecretVault;

/// The vault on AWS Secrets Manager: one secret per grant or key, named
/// under the deployment's prefix (which the IAM policies are scoped to).
#[derive(Clone)]
pub struct SecretsManagerVault {
    client: super::Lazy<Client>,
    /// The customer-managed key new secrets are encrypted with (else AWS's).
    kms_key_id: Option<String>,
}

impl SecretsManagerVault {
    pub fn new(client: super::Lazy<Client>, kms_key_id: Option<String>) -> Self {
        Self { client, kms_key_id }
    }
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> VaultError {
    VaultError::Unavailable(describe(&e))
}

impl SecretsManagerVault {
    /// Stores a new version (named `version` when given: the request token,
    /// so a retry of the same version and value is a no-op), creating the
    /// secret when it is missing.
    async fn store(&self, name: &str, version: Option<&str>, value: &SecretString) -> Result<(), VaultError> {
        check_secret_name(name)?;
        // New versions of an existing secret are the common case.
        for _ in 0..2 {
            let put = self
                .client
                .get()
                .await
                .put_secret_value()
                .secret_id(name)
                .set_client_request_token(version.map(str::to_owned))
                .secret_string(value.expose_secret())
                .send()
                .await;
            match put {
                Ok(_) => return Ok(()),
                Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => {}
                Err(e) => return Err(unavailable(e)),
            }
            let create = self
                .client
                .get()
                .await
                .create_secret()
                .name(name)
                .set_client_request_token(version.map(str::to_owned))
                .secret_string(value.expose_secret())
                .set_kms_key_id(self.kms_key_id.clone())
                .send()
                .await;
            match create {
                Ok(_) => return Ok(()),
                // Created by a concurrent writer: store our value as a new version.
                Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_exists_exception()) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(VaultError::Unavailable("secret kept changing between create and update".into()))
    }
}

#[async_trait]
impl SecretVault for SecretsManagerVault {
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), VaultError> {
        self.store(name, None, value).await
    }

    async fn get(&self, name: &str) -> Result<Option<SecretString>, VaultError> {
        check_secret_name(name)?;
        match self.client.get().await.get_secret_value().secret_id(name).send().await {
            Ok(out) => Ok(out.secret_string.map(SecretString::from)),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put_version(&self, name: &str, version: &str, value: &SecretString) -> Result<(), VaultError> {
        self.store(name, Some(version), value).await
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<Option<SecretString>, VaultError> {
        check_secret_name(name)?;
        match self.client.get().await.get_secret_value().secret_id(name).version_id(version).send().await {
            Ok(out) => Ok(out.secret_string.map(SecretString::from)),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), VaultError> {
        check_secret_name(name)?;
        match self.client.get().await.delete_secret().secret_id(name).force_delete_without_recovery(true).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}
