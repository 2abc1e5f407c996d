//! Service credentials on PostgreSQL: the `services` table, client id → record (the
//! SHA-256 of the secret, never the secret). Nothing here changes how tokens are
//! answered, so nothing is logged.

use super::{database_error, PgStore};
use crate::store::disk::Stored;
use crate::store::{corrupt, ServiceRecord, StoreError};

impl PgStore {
    /// Stores a service credential (replacing one under the same client id).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn put_service(
        &self,
        client_id: &str,
        service: &ServiceRecord,
    ) -> Result<(), StoreError> {
        let record = Stored::to_disk(service).map_err(corrupt("services"))?;
        self.client()
            .await?
            .execute(
                "INSERT INTO services (client_id, record) VALUES ($1, $2)
                 ON CONFLICT (client_id) DO UPDATE SET record = EXCLUDED.record",
                &[&client_id, &record],
            )
            .await
            .map_err(database_error)?;
        Ok(())
    }

    /// Reads a service credential.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn service(&self, client_id: &str) -> Result<Option<ServiceRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM services WHERE client_id = $1")
            .await
            .map_err(database_error)?;
        client
            .query_opt(&statement, &[&client_id])
            .await
            .map_err(database_error)?
            .map(|row| Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("services")))
            .transpose()
    }

    /// Every service credential, by client id.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn list_services(&self) -> Result<Vec<(String, ServiceRecord)>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT client_id, record FROM services ORDER BY client_id",
                &[],
            )
            .await
            .map_err(database_error)?
            .iter()
            .map(|row| {
                Ok((
                    row.get::<_, String>(0),
                    Stored::from_disk(row.get::<_, &[u8]>(1)).map_err(corrupt("services"))?,
                ))
            })
            .collect()
    }

    /// Removes a service credential; returns whether it existed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn delete_service(&self, client_id: &str) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute("DELETE FROM services WHERE client_id = $1", &[&client_id])
            .await
            .map_err(database_error)?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testing::TestDatabase;

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_service_is_stored_listed_and_deleted() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        let billing = ServiceRecord {
            name: "billing".into(),
            secret_digest: [0x5a; 32],
            created_at: 1_795_000_000,
        };
        let mut search = billing.clone();
        search.name = "search".into();
        store.put_service("svc-b", &search).await.unwrap();
        store.put_service("svc-a", &billing).await.unwrap();
        assert!(store.service("svc-a").await.unwrap().unwrap() == billing);
        assert!(store.service("svc-x").await.unwrap().is_none());
        let listed = store.list_services().await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|(id, s)| (id.as_str(), s.name.as_str()))
                .collect::<Vec<_>>(),
            vec![("svc-a", "billing"), ("svc-b", "search")]
        );
        assert!(store.delete_service("svc-a").await.unwrap());
        assert!(!store.delete_service("svc-a").await.unwrap());
        assert_eq!(store.list_services().await.unwrap().len(), 1);
        db.drop_now().await;
    }
}
