//! Read-backs shared between the creates and updates in flight: after a
//! change the object is described, so that the state is what AWS reports.
//! One Describe call per object would double the calls of an apply; here,
//! while a Describe of a kind is in flight, the read-backs asked for
//! meanwhile wait and go together as the next call (up to `READ_BATCH`
//! ids) — a group commit. The first one goes at once, so a lone change
//! waits no longer than before.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use infra_provider_sdk::{Attributes, ProviderError};
use tokio::sync::oneshot;

use crate::Kind;

/// What a Describe said of one object: its attributes and whether it is
/// ready (an instance is once it runs), or nothing (not visible yet).
pub type Described = Option<(Attributes, bool)>;

type Answer = oneshot::Sender<Result<Described, ProviderError>>;

#[derive(Default)]
pub struct ReadBacks {
    queues: Mutex<BTreeMap<Kind, Queue>>,
}

#[derive(Default)]
struct Queue {
    /// A caller is describing this kind: the others wait for it.
    driving: bool,
    waiting: Vec<(String, Answer)>,
}

impl ReadBacks {
    /// Describes the object `id` of `kind`, together with the other
    /// objects of that kind asked for at the same time; `describe` makes
    /// one call for the ids it is given. The calls are made by a task of
    /// their own, so that a caller given up on (a cancelled apply) never
    /// leaves the others waiting for it.
    pub async fn describe<F, Fut>(
        self: &Arc<Self>,
        kind: Kind,
        id: &str,
        batch: usize,
        describe: F,
    ) -> Result<Described, ProviderError>
    where
        F: Fn(Vec<String>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<BTreeMap<String, (Attributes, bool)>, ProviderError>>
            + Send
            + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let drive = {
            let mut queues = self.queues.lock().expect("read-backs");
            let queue = queues.entry(kind).or_default();
            queue.waiting.push((id.to_string(), answer));
            !std::mem::replace(&mut queue.driving, true)
        };
        if drive {
            tokio::spawn(self.clone().drive(kind, batch, describe));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(ProviderError::new("the read-back was abandoned")))
    }

    /// Describes what is waiting, round after round, until no one is.
    async fn drive<F, Fut>(self: Arc<Self>, kind: Kind, batch: usize, describe: F)
    where
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Result<BTreeMap<String, (Attributes, bool)>, ProviderError>>,
    {
        loop {
            let round: Vec<(String, Answer)> = {
                let mut queues = self.queues.lock().expect("read-backs");
                let queue = queues.entry(kind).or_default();
                if queue.waiting.is_empty() {
                    queue.driving = false;
                    return;
                }
                let take = queue.waiting.len().min(batch);
                queue.waiting.drain(..take).collect()
            };
            let mut ids: Vec<String> = round.iter().map(|(id, _)| id.clone()).collect();
            ids.sort();
            ids.dedup();
            match describe(ids).await {
                Ok(found) => {
                    for (id, answer) in round {
                        let _ = answer.send(Ok(found.get(&id).cloned()));
                    }
                }
                Err(error) => {
                    for (_, answer) in round {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn read_backs_asked_for_during_a_describe_share_the_next_one() {
        let read_backs = Arc::new(ReadBacks::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let largest = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..10 {
            let (read_backs, calls, largest) = (read_backs.clone(), calls.clone(), largest.clone());
            tasks.spawn(async move {
                let id = format!("sg-{i}");
                let described = read_backs
                    .describe(Kind::SecurityGroup, &id, 100, move |ids| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        largest.fetch_max(ids.len(), Ordering::SeqCst);
                        async move {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            Ok(ids
                                .into_iter()
                                .filter(|id| id != "sg-7")
                                .map(|id| {
                                    (id.clone(), ([("id".to_string(), id.into())].into(), true))
                                })
                                .collect())
                        }
                    })
                    .await
                    .unwrap();
                (i, described)
            });
            // The first one is in flight before the others ask.
            if i == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        let answers = tasks.join_all().await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one alone, then nine together"
        );
        assert_eq!(largest.load(Ordering::SeqCst), 9);
        for (i, described) in answers {
            match described {
                Some((state, ready)) => {
                    assert!(ready);
                    assert_eq!(state["id"], format!("sg-{i}"), "each gets its own object");
                }
                None => assert_eq!(i, 7, "only sg-7 was not found"),
            }
        }
    }

    #[tokio::test]
    async fn a_caller_given_up_on_leaves_no_one_waiting() {
        let read_backs = Arc::new(ReadBacks::default());
        let slow = |ids: Vec<String>| async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Ok(ids
                .into_iter()
                .map(|id| (id.clone(), (Attributes::new(), true)))
                .collect())
        };
        let first = {
            let read_backs = read_backs.clone();
            tokio::spawn(async move { read_backs.describe(Kind::Instance, "i-1", 100, slow).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // The first caller is cancelled while its Describe is in flight.
        first.abort();
        let second = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_backs.describe(Kind::Instance, "i-2", 100, slow),
        )
        .await
        .expect("the second read-back is answered");
        assert!(second.unwrap().is_some());
    }
}
