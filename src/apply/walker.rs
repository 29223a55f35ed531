//! The walker: runs a graph of tasks, each as soon as everything it waits
//! for has finished — not level by level — with at most `parallelism` in
//! flight. A failed task skips everything that waits on it (transitively);
//! independent branches go on. Once cancelled, nothing new starts and the
//! tasks in flight finish.
//!
//! Among ready tasks, the one heading the longest chain of waiting tasks
//! starts first (list scheduling by critical path), so that a small
//! `parallelism` is not spent on short branches while the long one waits.

use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::task::JoinSet;

/// What became of one task; `E` is how a task fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<E> {
    Done,
    Failed(E),
    /// Not run because the task it names (an index) failed, or was itself
    /// skipped because of that failure.
    Skipped {
        because: usize,
    },
    /// Not started: the walk was cancelled first.
    NotStarted,
}

/// Stops a walk from starting anything new (Ctrl-C).
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Cancel {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// Runs task `i` of `waits_for` (the indices task `i` waits for) by calling
/// `run(i)`. Returns an outcome per task. `waits_for` must be acyclic; the
/// tasks in a cycle would never start and are reported `NotStarted`.
pub async fn walk<F, Fut, E>(
    waits_for: &[Vec<usize>],
    parallelism: usize,
    cancel: &Cancel,
    run: F,
) -> Vec<Outcome<E>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Clone + Send + 'static,
{
    let count = waits_for.len();
    let parallelism = parallelism.max(1);
    let mut waiting_on: Vec<usize> = waits_for.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (task, waits) in waits_for.iter().enumerate() {
        for &other in waits {
            dependents[other].push(task);
        }
    }
    let priority = chain_lengths(&dependents, waits_for);
    let mut outcomes: Vec<Option<Outcome<E>>> = vec![None; count];
    let mut ready: BinaryHeap<(usize, std::cmp::Reverse<usize>)> = (0..count)
        .filter(|&task| waiting_on[task] == 0)
        .map(|task| (priority[task], std::cmp::Reverse(task)))
        .collect();
    let mut running: JoinSet<(usize, Result<(), E>)> = JoinSet::new();
    loop {
        while running.len() < parallelism && !cancel.is_cancelled() {
            let Some((_, std::cmp::Reverse(task))) = ready.pop() else {
                break;
            };
            let future = run(task);
            tracing::trace!(task, "walker: starting");
            running.spawn(async move { (task, future.await) });
        }
        if running.is_empty() {
            break;
        }
        let finished = tokio::select! {
            finished = running.join_next() => finished,
            _ = cancel.notify.notified(), if !cancel.is_cancelled() => continue,
        };
        let Some(finished) = finished else { break };
        let (task, result) = match finished {
            Ok(pair) => pair,
            // A task that panicked: its index is lost with it, so the panic
            // is passed on rather than leaving its dependents waiting.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        match result {
            Ok(()) => {
                outcomes[task] = Some(Outcome::Done);
                for &dependent in &dependents[task] {
                    waiting_on[dependent] -= 1;
                    if waiting_on[dependent] == 0 && outcomes[dependent].is_none() {
                        ready.push((priority[dependent], std::cmp::Reverse(dependent)));
                    }
                }
            }
            Err(failure) => {
                outcomes[task] = Some(Outcome::Failed(failure));
                let skipped = skip_dependents(task, &dependents, &mut outcomes);
                tracing::debug!(
                    task,
                    skipped,
                    "walker: task failed; its dependents are skipped"
                );
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or(Outcome::NotStarted))
        .collect()
}

/// Marks everything that waits on `failed` skipped; returns how many.
fn skip_dependents<E>(
    failed: usize,
    dependents: &[Vec<usize>],
    outcomes: &mut [Option<Outcome<E>>],
) -> usize {
    let mut skipped = 0;
    let mut stack = dependents[failed].clone();
    while let Some(task) = stack.pop() {
        if outcomes[task].is_none() {
            outcomes[task] = Some(Outcome::Skipped { because: failed });
            skipped += 1;
            stack.extend(dependents[task].iter().copied());
        }
    }
    skipped
}

/// For each task, the number of tasks on the longest chain that starts with
/// it (itself included): how much waits on it.
fn chain_lengths(dependents: &[Vec<usize>], waits_for: &[Vec<usize>]) -> Vec<usize> {
    let count = dependents.len();
    // Kahn's order from the sinks (tasks nothing waits on) backwards.
    let mut remaining: Vec<usize> = dependents.iter().map(Vec::len).collect();
    let mut queue: Vec<usize> = (0..count).filter(|&t| remaining[t] == 0).collect();
    let mut length = vec![1usize; count];
    while let Some(task) = queue.pop() {
        for &before in &waits_for[task] {
            length[before] = length[before].max(length[task] + 1);
            remaining[before] -= 1;
            if remaining[before] == 0 {
                queue.push(before);
            }
        }
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_task_starts_when_its_own_dependencies_finish_not_its_level() {
        // 0 (slow) and 1 (fast) are independent; 2 waits only for 1. 2 must
        // finish before 0 does.
        let order = Arc::new(Mutex::new(Vec::new()));
        let waits = vec![vec![], vec![], vec![1]];
        let outcomes = runtime().block_on(walk(&waits, 10, &Cancel::default(), |task| {
            let order = order.clone();
            async move {
                let millis = [200, 10, 10][task];
                tokio::time::sleep(Duration::from_millis(millis)).await;
                order.lock().unwrap().push(task);
                Ok(())
            }
        }));
        assert_eq!(outcomes, vec![Outcome::<String>::Done; 3]);
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 0]);
    }

    #[test]
    fn a_failure_skips_its_dependents_and_the_rest_finishes() {
        // 0 fails; 1 waits for 0; 2 waits for 1; 3 is independent.
        let waits = vec![vec![], vec![0], vec![1], vec![]];
        let outcomes = runtime().block_on(walk(&waits, 2, &Cancel::default(), |task| async move {
            if task == 0 {
                Err("boom".to_string())
            } else {
                Ok(())
            }
        }));
        assert_eq!(
            outcomes,
            vec![
                Outcome::Failed("boom".into()),
                Outcome::Skipped { because: 0 },
                Outcome::Skipped { because: 0 },
                Outcome::Done
            ]
        );
    }

    #[test]
    fn never_more_than_parallelism_in_flight() {
        let in_flight = Arc::new(Mutex::new((0usize, 0usize)));
        let waits = vec![Vec::new(); 20];
        runtime().block_on(walk(&waits, 3, &Cancel::default(), |_| {
            let in_flight = in_flight.clone();
            async move {
                {
                    let mut counts = in_flight.lock().unwrap();
                    counts.0 += 1;
                    counts.1 = counts.1.max(counts.0);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                in_flight.lock().unwrap().0 -= 1;
                Ok::<(), String>(())
            }
        }));
        assert_eq!(in_flight.lock().unwrap().1, 3);
    }

    #[test]
    fn cancelling_starts_nothing_new_and_lets_running_tasks_finish() {
        let cancel = Cancel::default();
        let waits = vec![vec![], vec![0]];
        let outcomes = runtime().block_on(walk(&waits, 1, &cancel, |task| {
            let cancel = cancel.clone();
            async move {
                if task == 0 {
                    cancel.cancel();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok::<(), String>(())
            }
        }));
        assert_eq!(outcomes, vec![Outcome::Done, Outcome::NotStarted]);
    }

    #[test]
    fn the_longest_chain_starts_first() {
        // 0 → 1 → 2 is a chain; 3 and 4 stand alone; with one slot the
        // chain's head goes first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let waits = vec![vec![], vec![0], vec![1], vec![], vec![]];
        runtime().block_on(walk(&waits, 1, &Cancel::default(), |task| {
            let order = order.clone();
            async move {
                order.lock().unwrap().push(task);
                Ok::<(), String>(())
            }
        }));
        assert_eq!(order.lock().unwrap()[0], 0);
    }
}
