//! The signing-key ring on PostgreSQL: the `keys` table, key id → record, one ring for
//! every node. A key put or removed logs `KeysChanged` in the same transaction, so every
//! node learns of a rotation started on any of them from the log (and fetches the ring
//! again).

use super::{database_error, log, PgStore};
use crate::store::disk::Stored;
use crate::store::{corrupt, Change, KeyRecord, StoreError};

impl PgStore {
    /// Every key in the ring, oldest first (key ids are time-ordered; the column sorts
    /// bytewise).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn signing_keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        let client = self.client().await?;
        client
            .query("SELECT kid, record FROM keys ORDER BY kid", &[])
            .await
            .map_err(database_error)?
            .iter()
            .map(|row| {
                let bytes: &[u8] = row.get(1);
                Ok((
                    row.get::<_, String>(0),
                    Stored::from_disk(bytes).map_err(corrupt("keys"))?,
                ))
            })
            .collect()
    }

    /// Adds or replaces a key, and logs that the key set changed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn put_signing_key(&self, kid: &str, key: &KeyRecord) -> Result<(), StoreError> {
        let record = Stored::to_disk(key).map_err(corrupt("keys"))?;
        self.write_key(
            "INSERT INTO keys (kid, record) VALUES ($1, $2)
             ON CONFLICT (kid) DO UPDATE SET record = EXCLUDED.record",
            kid,
            Some(record),
        )
        .await
    }

    /// Removes a key, and logs that the key set changed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        self.write_key("DELETE FROM keys WHERE kid = $1", kid, None)
            .await
    }

    async fn write_key(
        &self,
        statement: &str,
        kid: &str,
        record: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        match &record {
            Some(record) => tx.execute(statement, &[&kid, record]).await,
            None => tx.execute(statement, &[&kid]).await,
        }
        .map_err(database_error)?;
        let ids = log::append(&tx, self.clock.now(), &[Change::KeysChanged]).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::ChangesAfter;

    fn key(created_at: u64) -> KeyRecord {
        KeyRecord {
            alg: "EdDSA".into(),
            private_key: "not a key: the store does not read it".into(),
            created_at,
            signs_from: created_at,
            retired_at: None,
        }
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn the_ring_is_kept_in_key_order_and_every_change_is_logged() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        // "Z" sorts before "a" bytewise, after it in most locales.
        store.put_signing_key("a-2", &key(2)).await.unwrap();
        store.put_signing_key("Z-1", &key(1)).await.unwrap();
        store.put_signing_key("a-2", &key(3)).await.unwrap();
        let ring = store.signing_keys().await.unwrap();
        assert_eq!(
            ring.iter()
                .map(|(kid, k)| (kid.as_str(), k.created_at))
                .collect::<Vec<_>>(),
            vec![("Z-1", 1), ("a-2", 3)]
        );
        store.remove_signing_key("Z-1").await.unwrap();
        assert_eq!(store.signing_keys().await.unwrap().len(), 1);
        let ChangesAfter::Records { records, .. } = store.changes_after(0, 10).await.unwrap()
        else {
            panic!("nothing evicted");
        };
        assert_eq!(records.len(), 4);
        assert!(records.iter().all(|r| r.change == Change::KeysChanged));
        db.drop_now().await;
    }
}
