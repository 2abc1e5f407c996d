//! Refresh acknowledgements recorded a moment after their answers (see
//! `Sessions::acknowledge`), by one task for the whole server, and known to this process
//! from the moment they are queued.
//!
//! The moment is there so that the store never holds an acknowledgement whose answer
//! had not left when the process died: recorded first and killed before answering, a node
//! made the client's retry a "reuse" and logged it out (issue 19 §5, with
//! `refresh_reuse_grace = "0s"` on PostgreSQL). Meanwhile this process already knows it
//! ([`Acknowledgements::pending`]), so a replay here is judged at once; only another
//! node, within the moment, takes it for a retry.
//!
//! Each answered rotation used to spawn a task of its own that slept through the delay
//! and then wrote: at ten thousand rotations a second that is ten thousand sleeping
//! futures, each as large as the store's biggest write future, and it took a server
//! from 31 MiB to 180 MiB in a ten-second burst (measured: 83 MiB with no delayed
//! acknowledgement at all). Queued here, a pending acknowledgement costs one small entry,
//! and the writes happen in arrival order once due: the delay is the same for every one,
//! so the queue is already sorted by due time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::domain::SessionId;
use crate::store::Store;

/// One acknowledgement waiting for its time.
struct Pending {
    due: Instant,
    sid: SessionId,
    generation: u64,
}

/// The queue's sending end; the writing task ends when it is dropped, and what it still
/// holds is dropped with it (an acknowledgement not written only lets a later replay of
/// the previous token count once as a retry).
pub(crate) struct Acknowledgements {
    sender: mpsc::UnboundedSender<Pending>,
    queued: Arc<Queued>,
    /// What the delay is measured on: a test moves it instead of sleeping through it.
    clock: Clock,
}

/// The newest generation queued per session, until the task has written it.
type Queued = Mutex<HashMap<SessionId, u64>>;

impl Acknowledgements {
    /// Starts the task that writes acknowledgements into `store` when they fall due on
    /// `clock`. Needs a Tokio runtime.
    pub(crate) fn start(store: Arc<Store>, clock: Clock) -> Acknowledgements {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queued = Arc::new(Queued::default());
        tokio::spawn(write_when_due(
            store,
            clock.clone(),
            receiver,
            Arc::clone(&queued),
        ));
        Acknowledgements {
            sender,
            queued,
            clock,
        }
    }

    /// Records `generation` of `sid` as acknowledged `delay` from now; this process
    /// knows it at once.
    pub(crate) fn after(&self, delay: Duration, sid: SessionId, generation: u64) {
        {
            let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            let newest = queued.entry(sid).or_insert(generation);
            *newest = (*newest).max(generation);
        }
        let pending = Pending {
            due: self.clock.instant() + delay,
            sid,
            generation,
        };
        // The task ends only with the server; an acknowledgement sent after that is moot.
        let _ = self.sender.send(pending);
    }

    /// The newest generation of `sid` acknowledged here and not yet written to the store.
    pub(crate) fn pending(&self, sid: SessionId) -> Option<u64> {
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&sid)
            .copied()
    }
}

async fn write_when_due(
    store: Arc<Store>,
    clock: Clock,
    mut receiver: mpsc::UnboundedReceiver<Pending>,
    queued: Arc<Queued>,
) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    loop {
        let next_due = queue.front().map(|pending| pending.due);
        let clock = &clock;
        let until_due = async move {
            match next_due {
                Some(due) => clock.sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = receiver.recv() => match received {
                Some(pending) => queue.push_back(pending),
                None => return,
            },
            () = until_due => {
                let now = clock.instant();
                let mut due = Vec::new();
                while queue.front().is_some_and(|pending| pending.due <= now) {
                    let Some(pending) = queue.pop_front() else { break };
                    due.push((pending.sid, pending.generation));
                }
                // All that fell due in one write.
                if let Err(err) = store.acknowledge_generations(due.clone()).await {
                    tracing::debug!(error = %err, "could not record a refresh acknowledgement");
                }
                let mut queued = queued.lock().unwrap_or_else(PoisonError::into_inner);
                for (sid, generation) in due {
                    if queued.get(&sid) == Some(&generation) {
                        queued.remove(&sid);
                    }
                }
            }
        }
    }
}
