//! Service credentials: client ids and secrets other services present (HTTP Basic) to
//! introspect and revoke tokens. The secret is shown once, at creation.

use secrecy::ExposeSecret as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::admin::Administration;
use super::secrets::random_secret;
use super::AuthError;
use crate::secret::SecretString;
use crate::store::ServiceRecord;

/// A new credential, as shown once: the JSON answer carries the secret, `Debug` does not.
#[derive(Debug, Clone, Serialize)]
pub struct NewService {
    pub client_id: String,
    #[serde(serialize_with = "crate::secret::serialize")]
    pub client_secret: SecretString,
    pub name: String,
}

/// A credential as listed (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub client_id: String,
    pub name: String,
    pub created_at: u64,
}

impl Administration {
    /// Creates a service credential. Durable on return.
    ///
    /// # Errors
    /// `InvalidRequest` for an empty or overlong name.
    pub async fn create_service(&self, name: &str) -> Result<NewService, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::InvalidRequest(
                "name: expected 1 to 128 printable characters".into(),
            ));
        }
        let client_id = format!("svc_{}", uuid::Uuid::now_v7().simple());
        let client_secret = random_secret(32);
        let record = ServiceRecord {
            name: name.to_string(),
            secret_digest: Sha256::digest(client_secret.expose_secret().as_bytes()).into(),
            created_at: self.core.clock.now(),
        };
        self.core.store.put_service(&client_id, &record).await?;
        self.core.store.wait_durable().await?;
        tracing::info!(%client_id, "service credential created");
        Ok(NewService {
            client_id,
            client_secret,
            name: record.name,
        })
    }

    /// Every service credential.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_services(&self) -> Result<Vec<ServiceView>, AuthError> {
        Ok(self
            .core
            .store
            .list_services()
            .await?
            .into_iter()
            .map(|(client_id, record)| ServiceView {
                client_id,
                name: record.name,
                created_at: record.created_at,
            })
            .collect())
    }

    /// Removes a service credential.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn delete_service(&self, client_id: &str) -> Result<(), AuthError> {
        if !self.core.store.delete_service(client_id).await? {
            return Err(AuthError::NotFound);
        }
        self.core.store.wait_durable().await?;
        Ok(())
    }
}
