//! Following the change log from another node's writes: a task with a connection of its
//! own (outside the pool) that `LISTEN`s on [`log::CHANNEL`] and reads
//! `changes WHERE id > seen ORDER BY id` whenever a notification arrives, and every
//! [`POLL_EVERY`] regardless (a notification is a wake-up, never the data: one lost or
//! late costs latency, never a record). Records go to the caller's handler in id order,
//! with no gaps (the log has none, see [`log`]).
//!
//! **Trust.** The listener publishes its [`LogState`] on a `tokio::sync::watch`:
//! `Current { through }` only while its connection is up and it has read the log up to
//! `through` since it (re)connected; `Behind` from the moment the connection fails (the
//! connection's end wakes the task at once, not at the next poll) until it has
//! reconnected and caught up again. A node whose memory is fed by the handler trusts that
//! memory only while the state is `Current`: this is how it stops answering from state it
//! cannot vouch for when it loses the database.
//!
//! **Reconnecting** is the task's own business: attempts back off from
//! [`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`], and start over from the first after a
//! connection that got current. On reconnect it first `LISTEN`s, then reads from `seen`
//! (so nothing written in between is missed), then says `Current`.
//!
//! **Lost history.** If records after `seen` were evicted meanwhile (or the database's log
//! never reached `seen`: restored from an older backup), the handler gets
//! [`Feed::Restart`]: its state must be rebuilt from the tables, and records after the
//! given id follow (re-applying records a rebuilt state already reflects is harmless:
//! what they carry is idempotent).
//!
//! **Ending.** Dropping the [`Listener`] ends the task and its connection. A task that
//! ends for any reason, a panicking handler included, leaves its state `Behind`.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::log::{self, Reader};
use super::{database_error, PgStore};
use crate::store::StoreError;
use crate::store::{ChangeRecord, ChangesAfter};

/// The longest a node goes without reading the log while its connection is up.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// The first wait before reconnecting, doubled after each failed attempt…
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// …up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Records read per statement while catching up.
const PAGE: i64 = 1000;

/// A read of the log that takes longer than this counts as a lost connection (a network
/// that drops packets silently never closes the socket).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How the listener's connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "claimd-listener";

/// Whether this node has seen the log up to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// Not connected, or connected and not yet caught up: memory fed by the log cannot be
    /// vouched for.
    Behind,
    /// Connected, and every record up to `through` was handed over; no later one existed
    /// at the last read (at most [`POLL_EVERY`] ago, or at the last notification).
    Current { through: u64 },
}

/// What the handler is given.
#[derive(Debug)]
pub enum Feed<'a> {
    /// The next records, in id order, following the last ones handed over.
    Records(&'a [ChangeRecord]),
    /// The records between the last one handed over and `after` cannot be had (evicted,
    /// or from another history): rebuild from the tables; records after `after` follow.
    Restart { after: u64 },
}

/// A running listener; stopped when dropped.
pub struct Listener {
    state: watch::Receiver<LogState>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Its state, to read now or wait on.
    pub fn state(&self) -> watch::Receiver<LogState> {
        self.state.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The task owns the connection: aborting it closes the connection.
        self.task.abort();
    }
}

impl PgStore {
    /// Starts following the log after `seen` (the id the caller's state reflects),
    /// handing what it reads to `handler` on the listener's task. Starts `Behind`.
    pub fn listen(&self, seen: u64, handler: impl FnMut(Feed<'_>) + Send + 'static) -> Listener {
        self.listen_every(seen, POLL_EVERY, handler)
    }

    /// [`PgStore::listen`], polling every `poll_every` (tests tell polls from
    /// notifications with a long one).
    pub(crate) fn listen_every(
        &self,
        seen: u64,
        poll_every: Duration,
        handler: impl FnMut(Feed<'_>) + Send + 'static,
    ) -> Listener {
        let mut config = self.config().clone();
        config.application_name(APPLICATION_NAME);
        let (sender, state) = watch::channel(LogState::Behind);
        let follower = Follower {
            config,
            seen,
            poll_every,
            handler: Box::new(handler),
            state: sender,
        };
        Listener {
            state,
            task: tokio::spawn(follower.run()),
        }
    }
}

type Handler = Box<dyn FnMut(Feed<'_>) + Send>;

struct Follower {
    config: tokio_postgres::Config,
    seen: u64,
    poll_every: Duration,
    handler: Handler,
    state: watch::Sender<LogState>,
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (err, was_current) = self.follow().await;
            self.set(LogState::Behind);
            if was_current {
                backoff = FIRST_BACKOFF;
                tracing::warn!(error = %err, "lost the change-log connection; reconnecting");
            } else {
                tracing::debug!(error = %err, "change-log connection failed; retrying");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: returns why it ended, and whether it had got current.
    async fn follow(&mut self) -> (StoreError, bool) {
        let connected = match tokio::time::timeout(READ_TIMEOUT, self.config.connect(NoTls)).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(err)) => return (database_error(err), false),
            Err(_) => return (timed_out("connecting"), false),
        };
        let (client, mut connection) = connected;
        // The connection is driven here; a notification wakes the reader, and the end of
        // the connection (closed, or failed) drops `wake`, which wakes it too.
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        let _ = wake.try_send(());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Some(err),
                    None => return None,
                }
            }
        });
        let ended = |driver: tokio::task::JoinHandle<Option<tokio_postgres::Error>>| async move {
            match driver.await {
                Ok(Some(err)) => database_error(err),
                _ => StoreError::Database("the change-log connection closed".into()),
            }
        };
        let listening = async {
            client
                .batch_execute(&format!("LISTEN {}", log::CHANNEL))
                .await
                .map_err(database_error)?;
            Reader::prepare(&client).await
        };
        let reader = match tokio::time::timeout(READ_TIMEOUT, listening).await {
            Ok(Ok(reader)) => reader,
            Ok(Err(err)) => return (err, false),
            Err(_) => return (timed_out("listening"), false),
        };
        let mut current = false;
        loop {
            if let Err(err) = self.catch_up(&client, &reader).await {
                return (err, current);
            }
            current = true;
            tokio::select! {
                notified = woken.recv() => {
                    if notified.is_none() {
                        drop(client);
                        return (ended(driver).await, current);
                    }
                }
                () = tokio::time::sleep(self.poll_every) => {}
            }
        }
    }

    /// Reads until no record is left, handing each page over, then says `Current`.
    async fn catch_up(
        &mut self,
        client: &tokio_postgres::Client,
        reader: &Reader,
    ) -> Result<(), StoreError> {
        loop {
            let answer = tokio::time::timeout(READ_TIMEOUT, reader.read(client, self.seen, PAGE))
                .await
                .map_err(|_| timed_out("reading the change log"))??;
            match answer {
                ChangesAfter::Records { records, .. } => {
                    if let Some(last) = records.last() {
                        self.seen = last.id;
                        (self.handler)(Feed::Records(&records));
                    }
                    if records.len() < PAGE as usize {
                        // No gaps: everything up to the counter the read saw is handed over.
                        self.set(LogState::Current { through: self.seen });
                        return Ok(());
                    }
                }
                ChangesAfter::Gone {
                    evicted_through: after,
                }
                | ChangesAfter::Ahead { through: after } => {
                    tracing::warn!(
                        seen = self.seen,
                        after,
                        "the change log no longer holds what this node has not seen; rebuilding"
                    );
                    self.seen = after;
                    (self.handler)(Feed::Restart { after });
                }
            }
        }
    }

    fn set(&self, state: LogState) {
        self.state.send_if_modified(|now| {
            let changed = *now != state;
            *now = state;
            changed
        });
    }
}

impl Drop for Follower {
    /// The task ended (the listener was dropped, or the handler panicked): nobody vouches
    /// for the log any more, whatever the last state said.
    fn drop(&mut self) {
        self.state.send_replace(LogState::Behind);
    }
}

fn timed_out(what: &str) -> StoreError {
    StoreError::Database(format!("{what} took over {} s", READ_TIMEOUT.as_secs_f32()))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "these tests wait and measure in real time"
)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;
    use crate::store::postgres::log::tests::{append_committed, token};
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::Change;

    /// What a handler was given, for a test to look at.
    #[derive(Default, Clone)]
    struct Seen {
        ids: Vec<u64>,
        changes: Vec<Change>,
        restarts: Vec<u64>,
    }

    fn collector() -> (Arc<Mutex<Seen>>, impl FnMut(Feed<'_>) + Send + 'static) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let handle = seen.clone();
        (seen, move |feed: Feed<'_>| {
            let mut seen = handle.lock().unwrap();
            match feed {
                Feed::Records(records) => {
                    for record in records {
                        seen.ids.push(record.id);
                        seen.changes.push(record.change.clone());
                    }
                }
                Feed::Restart { after } => seen.restarts.push(after),
            }
        })
    }

    async fn wait_for(listener: &Listener, limit: Duration, test: impl Fn(&LogState) -> bool) {
        let mut state = listener.state();
        let reached = tokio::time::timeout(limit, state.wait_for(|now| test(now)))
            .await
            .map(|reached| reached.map(|_| ()));
        assert!(
            matches!(reached, Ok(Ok(()))),
            "state still {:?} after {limit:?}",
            *listener.state().borrow()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL"]
    async fn a_notification_hands_records_over_without_waiting_for_the_poll() {
        let db = TestDatabase::require().await;
        let writer = PgStore::connect(&db.url, 4).await.unwrap();
        let node = PgStore::connect(&db.url, 1).await.unwrap();
        let (seen, handler) = collector();
        // A poll so rare the test would time out waiting for it.
        let listener = node.listen_every(0, Duration::from_secs(600), handler);
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Current { through: 0 }
        })
        .await;
        let mut expected = Vec::new();
        for n in 1..=20u64 {
            let started = Instant::now();
            let ids = append_committed(&writer, 100, &[token(n)]).await;
            expected.extend(ids.clone());
            wait_for(&listener, Duration::from_secs(5), |s| {
                *s == LogState::Current {
                    through: ids.end - 1,
                }
            })
            .await;
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.ids, expected);
        assert_eq!(seen.changes, (1..=20).map(token).collect::<Vec<_>>());
        drop(listener);
        db.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL"]
    async fn the_poll_finds_records_whose_notification_never_came() {
        let db = TestDatabase::require().await;
        let writer = PgStore::connect(&db.url, 2).await.unwrap();
        let node = PgStore::connect(&db.url, 1).await.unwrap();
        let (seen, handler) = collector();
        let listener = node.listen(0, handler);
        wait_for(&listener, Duration::from_secs(5), |s| {
            matches!(s, LogState::Current { .. })
        })
        .await;
        // A record written the log's way, but without its NOTIFY.
        let bytes = crate::store::disk::Stored::to_disk(&crate::store::LoggedChange {
            at: 100,
            change: token(1),
        })
        .unwrap();
        let client = writer.client().await.unwrap();
        client
            .batch_execute("BEGIN; UPDATE change_counter SET last = last + 1")
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO changes (id, at, record) VALUES (1, 100, $1)",
                &[&bytes],
            )
            .await
            .unwrap();
        client.batch_execute("COMMIT").await.unwrap();
        let committed = Instant::now();
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Current { through: 1 }
        })
        .await;
        let waited = committed.elapsed();
        assert!(
            waited < POLL_EVERY + Duration::from_secs(1),
            "found after {waited:?}"
        );
        assert_eq!(seen.lock().unwrap().ids, vec![1]);
        drop(listener);
        db.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn many_writers_on_another_node_are_seen_in_order_within_the_poll_bound() {
        let db = TestDatabase::require().await;
        let writer = PgStore::connect(&db.url, 8).await.unwrap();
        let node = PgStore::connect(&db.url, 1).await.unwrap();
        let (seen, handler) = collector();
        let listener = node.listen(0, handler);
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = 0;
                for n in 0..25u64 {
                    last = append_committed(&writer, 100, &[token(w * 100 + n)])
                        .await
                        .end
                        - 1;
                }
                last
            }));
        }
        let mut last = 0;
        for task in tasks {
            last = last.max(task.await.unwrap());
        }
        assert_eq!(last, 200);
        let done = Instant::now();
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Current { through: 200 }
        })
        .await;
        assert!(done.elapsed() < POLL_EVERY + Duration::from_secs(1));
        assert_eq!(seen.lock().unwrap().ids, (1..=200).collect::<Vec<_>>());
        drop(listener);
        db.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL"]
    async fn a_killed_connection_is_behind_until_it_has_caught_up_again() {
        let db = TestDatabase::require().await;
        let writer = PgStore::connect(&db.url, 2).await.unwrap();
        let node = PgStore::connect(&db.url, 1).await.unwrap();
        append_committed(&writer, 100, &[token(1), token(2)]).await;
        let (seen, handler) = collector();
        // No poll to notice the loss: the connection's end alone must.
        let listener = node.listen_every(0, Duration::from_secs(600), handler);
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Current { through: 2 }
        })
        .await;

        // No new connection to the database while the listener's is ended: it stays down.
        let admin = &db.admin_config();
        crate::store::postgres::testing::execute(
            admin,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name()),
        )
        .await;
        let killed: i64 = writer
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = $1 AND datname = current_database()",
                &[&APPLICATION_NAME],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(killed, 1);
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Behind
        })
        .await;
        // Written while the listener is away.
        append_committed(&writer, 100, &[token(3)]).await;
        append_committed(&writer, 100, &[token(4), token(5)]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*listener.state().borrow(), LogState::Behind);

        crate::store::postgres::testing::execute(
            admin,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name()),
        )
        .await;
        wait_for(&listener, MAX_BACKOFF * 3, |s| {
            *s == LogState::Current { through: 5 }
        })
        .await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.ids, vec![1, 2, 3, 4, 5]);
        assert!(seen.restarts.is_empty());
        drop(listener);
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_node_whose_records_were_evicted_is_told_to_rebuild() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        append_committed(&store, 100, &[token(1), token(2)]).await;
        append_committed(&store, 200, &[token(3)]).await;
        store.evict_changes(150).await.unwrap();
        let (seen, handler) = collector();
        let listener = store.listen(1, handler);
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Current { through: 3 }
        })
        .await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.restarts, vec![2]);
        assert_eq!(seen.ids, vec![3]);
        drop(listener);
        db.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL"]
    async fn a_listener_whose_handler_panicked_is_behind() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        let listener = store.listen(0, |feed: Feed<'_>| {
            if let Feed::Records(records) = feed {
                assert!(records.is_empty(), "a handler that fails");
            }
        });
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Current { through: 0 }
        })
        .await;
        append_committed(&store, 100, &[token(1)]).await;
        wait_for(&listener, Duration::from_secs(5), |s| {
            *s == LogState::Behind
        })
        .await;
        drop(listener);
        db.drop_now().await;
    }
}
