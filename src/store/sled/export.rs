//! Reading a whole sled store out, record by record, for `claimd migrate` (moving it to
//! PostgreSQL). Read-only: nothing here writes a tree.
//!
//! Each record comes out as the store keeps it: its key decoded into its id, the value's
//! bytes exactly as on disk (`disk::Stored`, the format byte and bincode, which the
//! PostgreSQL rows carry unchanged), and the record decoded from those bytes (for the
//! columns that repeat its fields, and so a damaged record stops the move instead of
//! being copied). The addresses' index `emails` and the mail queue's `mail_index` are not
//! read: what they hold is in the users' and the mails' records. The trees are read with
//! the server stopped (the store is opened exclusively), so what is read is one consistent
//! state.
//!
//! The deny list is the one part that is not one record per key: an entry lives in every
//! bucket its range covers (see [`super::deny`]), each copy holding the entry's last
//! `exp`; [`SledStore::export_deny_entries`] folds the copies into one entry per id.

use std::collections::BTreeMap;

use super::disk::Stored;
use super::{codec, corrupt, DenyKind, SledStore, StoreError};
use crate::domain::{MailId, SessionId, TenantId, UserId};
use crate::store::model::{ExportSource, Exported, ExportedSession, Items, Records};
use crate::store::{InvitationBook, KeyRecord, ServiceRecord, SessionRecord, TenantRecord};
use crate::store::{MailLinks, QueuedMail, UserRecord, MAX_LEEWAY_SECONDS};

/// The records of `tree`, with keys read by `key` (`None`: a key of the wrong size,
/// reported as damage of `name`).
fn records<K: 'static, R: Stored + 'static>(
    tree: &sled::Tree,
    name: &'static str,
    key: fn(&[u8]) -> Option<K>,
) -> Records<K, R> {
    Box::new(tree.iter().map(move |entry| {
        let (raw_key, value) = entry?;
        let key = key(&raw_key).ok_or_else(|| damaged(name, "a key of the wrong form"))?;
        let record = R::from_disk(&value).map_err(corrupt(name))?;
        Ok(Exported {
            key,
            bytes: value.to_vec(),
            record,
        })
    }))
}

fn damaged(tree: &'static str, what: &str) -> StoreError {
    StoreError::Corrupt {
        tree,
        source: codec::CodecError::Decode(what.into()),
    }
}

fn text_key(key: &[u8]) -> Option<String> {
    String::from_utf8(key.to_vec()).ok()
}

impl ExportSource for SledStore {
    /// Every user, in id order (creation order).
    ///
    /// # Errors
    /// The store is being reopened; each item: storage failures, damaged records.
    fn export_users(&self) -> Result<Records<UserId, UserRecord>, StoreError> {
        Ok(records(&self.engine()?.users, "users", UserId::from_slice))
    }

    /// Every tenant, in id order.
    ///
    /// # Errors
    /// As `export_users`.
    fn export_tenants(&self) -> Result<Records<TenantId, TenantRecord>, StoreError> {
        Ok(records(
            &self.engine()?.tenants,
            "tenants",
            TenantId::from_slice,
        ))
    }

    /// Every session, live or revoked and not yet evicted, with its acknowledged
    /// generation.
    ///
    /// # Errors
    /// As `export_users`.
    fn export_sessions(&self) -> Result<Items<ExportedSession>, StoreError> {
        let engine = self.engine()?;
        let acks = engine.session_acks.clone();
        let sessions = records(&engine.sessions, "sessions", SessionId::from_slice);
        Ok(Box::new(sessions.map(move |session| {
            let session: Exported<SessionId, SessionRecord> = session?;
            let acknowledged = acks
                .get(session.key.as_bytes())?
                .map(|bytes| codec::decode_u64(&bytes).map_err(corrupt("session_acks")))
                .transpose()?;
            Ok(ExportedSession {
                session,
                acknowledged,
            })
        })))
    }

    /// Every signing key, by key id.
    ///
    /// # Errors
    /// As `export_users`.
    fn export_keys(&self) -> Result<Records<String, KeyRecord>, StoreError> {
        Ok(records(&self.engine()?.keys, "keys", text_key))
    }

    /// Every service credential, by client id.
    ///
    /// # Errors
    /// As `export_users`.
    fn export_services(&self) -> Result<Records<String, ServiceRecord>, StoreError> {
        Ok(records(&self.engine()?.services, "services", text_key))
    }

    /// Every tenant's invitation book, by tenant id.
    ///
    /// # Errors
    /// As `export_users`.
    fn export_invitation_books(&self) -> Result<Records<TenantId, InvitationBook>, StoreError> {
        Ok(records(
            &self.engine()?.invitations,
            "invitations",
            TenantId::from_slice,
        ))
    }

    /// Every invitation code's digest with the tenant it admits into.
    ///
    /// # Errors
    /// The store is being reopened; each item: storage failures, damaged keys or values.
    fn export_invitation_codes(&self) -> Result<Items<([u8; 32], TenantId)>, StoreError> {
        let codes = self.engine()?.invitation_codes.clone();
        Ok(Box::new(codes.iter().map(|entry| {
            let (digest, tenant) = entry?;
            let digest = <[u8; 32]>::try_from(&digest[..])
                .map_err(|_| damaged("invitation_codes", "a code digest not of 32 bytes"))?;
            let tenant = TenantId::from_slice(&tenant)
                .ok_or_else(|| damaged("invitation_codes", "a tenant id not of 16 bytes"))?;
            Ok((digest, tenant))
        })))
    }

    /// Every mail of `mail_queue`, by mail id. `mail_index` is not read: its entries repeat
    /// each mail's due time and expiry, which the importing backend reads from the record.
    ///
    /// # Errors
    /// As `export_users`.
    fn export_mail_queue(&self) -> Result<Records<MailId, QueuedMail>, StoreError> {
        Ok(records(
            &self.engine()?.mail_queue,
            "mail_queue",
            MailId::from_slice,
        ))
    }

    /// Every user's links book, by user id.
    ///
    /// # Errors
    /// As `export_users`.
    fn export_mail_links(&self) -> Result<Records<UserId, MailLinks>, StoreError> {
        Ok(records(
            &self.engine()?.mail_links,
            "mail_links",
            UserId::from_slice,
        ))
    }

    /// Every deny entry some token may still need at `now`, one per id: its kind, its id
    /// and the last `exp` it refuses (the largest found among its copies). Entries whose
    /// last `exp` is past the largest leeway a configuration may set are left out, as
    /// eviction would drop them (their tokens are dead under any configuration).
    ///
    /// # Errors
    /// Storage failures, damaged entries.
    fn export_deny_entries(&self, now: u64) -> Result<BTreeMap<(u8, [u8; 16]), u64>, StoreError> {
        let horizon = now.saturating_sub(MAX_LEEWAY_SECONDS);
        let engine = self.engine()?;
        let mut entries: BTreeMap<(u8, [u8; 16]), u64> = BTreeMap::new();
        engine.deny.read_buckets(|_, tree| {
            for tag in [DenyKind::Token.tag(), DenyKind::Session.tag()] {
                for pair in tree.scan_prefix([tag]) {
                    let (key, value) = pair?;
                    let id = <[u8; 16]>::try_from(&key[1..])
                        .map_err(|_| damaged("deny", "an entry id not of 16 bytes"))?;
                    let exp = codec::decode_u64(&value).map_err(corrupt("deny"))?;
                    if exp < horizon {
                        continue;
                    }
                    let last = entries.entry((tag, id)).or_insert(exp);
                    *last = (*last).max(exp);
                }
            }
            Ok(true)
        })?;
        Ok(entries)
    }

    /// The highest change-log id on disk (or the highest evicted one when the log is
    /// empty): where a log that continues this one starts.
    ///
    /// # Errors
    /// The store is being reopened.
    fn export_changes_through(&self) -> Result<u64, StoreError> {
        Ok(self.engine()?.changes.finished_through())
    }

    fn longest_access_ttl(&self) -> u64 {
        SledStore::longest_access_ttl(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::test_store;

    #[test]
    fn deny_copies_fold_into_one_entry_with_their_last_exp() {
        let (_dir, store) = test_store();
        let now = 2_000_000_000;
        // A session entry spans many buckets; a token entry sits in one.
        store
            .deny(DenyKind::Session, &[3; 16], now..=now + 900)
            .unwrap();
        store
            .deny(DenyKind::Token, &[4; 16], now + 60..=now + 60)
            .unwrap();
        // Dead under any leeway: left out.
        let dead = now - MAX_LEEWAY_SECONDS - 1;
        store.deny(DenyKind::Token, &[5; 16], dead..=dead).unwrap();
        assert!(store.deny_buckets() > 3);

        let entries = store.export_deny_entries(now).unwrap();

        assert_eq!(
            entries.into_iter().collect::<Vec<_>>(),
            vec![((b'j', [4; 16]), now + 60), ((b's', [3; 16]), now + 900)]
        );
    }

    #[test]
    fn records_come_out_with_their_stored_bytes() {
        let (_dir, store) = test_store();
        let service = ServiceRecord {
            name: "billing".into(),
            secret_digest: [9; 32],
            created_at: 1_700_000_000,
        };
        store.put_service("svc-1", &service).unwrap();

        let exported: Vec<_> = store
            .export_services()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();

        assert_eq!(exported.len(), 1);
        assert_eq!(exported[0].key, "svc-1");
        assert_eq!(exported[0].record, service);
        assert_eq!(exported[0].bytes, Stored::to_disk(&service).unwrap());
    }

    #[test]
    fn mails_and_links_books_come_out_whatever_their_delivery() {
        use crate::mail::{EmailAddress, LinkPurpose};
        let (_dir, store) = test_store();
        let now = 2_000_000_000;
        let user = UserId::generate();
        let to = EmailAddress::parse("ada@example.org").unwrap();
        let record = UserRecord {
            email: Some(to.clone()),
            ..crate::store::model::fixtures::user("ada", None)
        };
        store.create_user(user, &record, None, now).unwrap();
        let first = QueuedMail::new(user, LinkPurpose::Magic, to.clone(), now, 600);
        let second = QueuedMail::new(user, LinkPurpose::Magic, to, now + 1, 600);
        store.queue_mail(&first, now).unwrap();
        store.queue_mail(&second, now + 1).unwrap();

        let mails: Vec<_> = store
            .export_mail_queue()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let books: Vec<_> = store
            .export_mail_links()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();

        let mut ids: Vec<MailId> = mails.iter().map(|mail| mail.key).collect();
        ids.sort_by_key(|id| *id.as_bytes());
        let mut expected = vec![first.id, second.id];
        expected.sort_by_key(|id| *id.as_bytes());
        assert_eq!(ids, expected, "the superseded mail too");
        for mail in &mails {
            assert_eq!(
                Some(&mail.record),
                store.queued_mail(mail.key).unwrap().as_ref()
            );
            assert_eq!(mail.bytes, Stored::to_disk(&mail.record).unwrap());
        }
        assert_eq!(books.len(), 1);
        assert_eq!(books[0].key, user);
        assert_eq!(books[0].record.links.len(), 2);
    }
}
