//! The parallel pipeline shared by `reconstruct` and `verify`: plan each mailbox, spread
//! its message files over every worker in runs, finish the mailbox when its last run is
//! done.
//!
//! Two queues: mailboxes to plan (fed in order by the calling thread, bounded) and runs of
//! files (fed by whichever worker planned the mailbox). Workers take files first and plan
//! only when no run is waiting, so planning never gets far ahead of the files and memory
//! stays bounded, while planning itself (lock, list, read the small files) runs on every
//! core. Tasks are runs of files, not mailboxes, so many small mailboxes and one huge
//! mailbox both keep every worker busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What a pipeline does with mailboxes and files.
pub trait Planner: Sync {
    /// A mailbox to plan.
    type Target: Send;
    /// A planned mailbox: holds its files' outcomes until it is finished.
    type Job: Send + Sync;

    /// Plan one mailbox (`order` is its position, for reports in order). `None` when it
    /// was handled entirely here (nothing to scan, or an error reported).
    fn plan(&self, order: usize, target: Self::Target) -> Option<Self::Job>;
    /// Number of message files of a planned mailbox.
    fn files(&self, job: &Self::Job) -> usize;
    /// Files per run for this mailbox (small when files are read, large when stat'ed).
    fn run_len(&self, job: &Self::Job) -> usize;
    /// Process files `start..end` of the mailbox.
    fn process(&self, job: &Self::Job, start: usize, end: usize);
    /// Called once, after every file of the mailbox was processed.
    fn finish(&self, job: &Self::Job);
}

struct Planned<J> {
    job: J,
    remaining: AtomicUsize,
}

/// Run `planner` over `targets` with `threads` workers. Returns when every mailbox is
/// finished. A panic in a worker is reported as `Err`.
///
/// The targets are all in memory already, so a worker that finds no run waiting takes
/// the next target itself: no thread has to be woken to hand one over (a feeding thread,
/// woken once per mailbox, used to preempt a worker each time).
pub fn run<P: Planner>(planner: &P, targets: Vec<P::Target>, threads: usize) -> Result<(), String> {
    let threads = threads.max(1);
    type Run<J> = (Arc<Planned<J>>, usize, usize);
    let targets = parking_lot::Mutex::new(targets.into_iter().enumerate());
    // `None` is a wake-up: a worker waiting for runs re-checks whether the work is done.
    let (file_tx, file_rx) = crossbeam::channel::unbounded::<Option<Run<P::Job>>>();
    // Mailboxes being planned plus runs queued or being processed.
    let busy = AtomicUsize::new(0);
    // Every target was taken.
    let drained = AtomicBool::new(false);
    // A worker panicked: the others stop instead of waiting for its work forever (the
    // panic reaches the caller through the scope).
    let failed = AtomicBool::new(false);
    let wake_all = || {
        for _ in 0..threads {
            let _ = file_tx.send(None);
        }
    };
    // One unit of work done. The last one, once every target is taken, wakes the workers
    // waiting for runs so that they see the end. (SeqCst pairs with the waiter's store of
    // `drained` and load of `busy`: one of the two sees the other.)
    let done_one = || {
        if busy.fetch_sub(1, Ordering::SeqCst) == 1 && drained.load(Ordering::SeqCst) {
            wake_all();
        }
    };
    // A worker that stops, whether done or panicking, wakes the waiting ones: a worker may
    // have swallowed the wake-up meant for another on its way out.
    struct OnExit<'a, F: Fn()>(&'a AtomicBool, F);
    impl<F: Fn()> Drop for OnExit<'_, F> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::SeqCst);
            }
            (self.1)();
        }
    }

    let plan_one = |order: usize, target: P::Target| {
        if let Some(job) = planner.plan(order, target) {
            let n = planner.files(&job);
            if n == 0 {
                planner.finish(&job);
                return;
            }
            let len = planner.run_len(&job).max(1);
            let planned = Arc::new(Planned { job, remaining: AtomicUsize::new(n) });
            let mut start = 0;
            while start < n {
                let end = (start + len).min(n);
                busy.fetch_add(1, Ordering::SeqCst);
                // Cannot fail: this worker holds a receiver.
                let _ = file_tx.send(Some((planned.clone(), start, end)));
                start = end;
            }
        }
    };
    let work = || {
        let _guard = OnExit(&failed, wake_all);
        loop {
            if failed.load(Ordering::SeqCst) {
                break;
            }
            let run = match file_rx.try_recv() {
                Ok(r) => r,
                Err(_) => {
                    // No run waiting: plan the next mailbox (taking it and counting it
                    // busy under the lock, so that no one sees "drained and idle" while
                    // it is being planned).
                    let next = {
                        let mut t = targets.lock();
                        let next = t.next();
                        match next {
                            Some(_) => busy.fetch_add(1, Ordering::SeqCst),
                            None => {
                                drained.store(true, Ordering::SeqCst);
                                0
                            }
                        };
                        next
                    };
                    if let Some((order, target)) = next {
                        plan_one(order, target);
                        done_one();
                        continue;
                    }
                    if busy.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    // Others are still planning or processing: wait for their runs, or
                    // for the wake-up at the end.
                    match file_rx.recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
            };
            let Some((planned, start, end)) = run else { continue };
            planner.process(&planned.job, start, end);
            if planned.remaining.fetch_sub(end - start, Ordering::AcqRel) == end - start {
                planner.finish(&planned.job);
            }
            done_one();
        }
    };
    crossbeam::scope(|s| {
        for _ in 0..threads {
            s.spawn(|_| work());
        }
    })
    .map_err(|_| "a worker thread panicked".to_string())
}

/// Walk a tree with `threads` workers: `visit` handles one node and pushes its children
/// onto the vector it is given. Returns when every node was visited. Used for discovery,
/// where listing directories one after another would leave every other core idle.
pub fn walk<T: Send>(roots: Vec<T>, threads: usize, visit: impl Fn(T, &mut Vec<T>) + Sync) {
    struct State<T> {
        todo: Vec<T>,
        busy: usize,
        /// A visit panicked: everyone stops (the panic reaches the caller through the scope).
        failed: bool,
    }
    /// Marks one visit done, even when it panics, so no worker waits forever.
    struct Done<'a, T> {
        state: &'a parking_lot::Mutex<State<T>>,
        changed: &'a parking_lot::Condvar,
        children: Vec<T>,
    }
    impl<T> Drop for Done<'_, T> {
        fn drop(&mut self) {
            let mut s = self.state.lock();
            s.busy -= 1;
            s.failed |= std::thread::panicking();
            s.todo.append(&mut self.children);
            drop(s);
            self.changed.notify_all();
        }
    }
    let state = parking_lot::Mutex::new(State { todo: roots, busy: 0, failed: false });
    let changed = parking_lot::Condvar::new();
    let work = || {
        loop {
            let node = {
                let mut s = state.lock();
                loop {
                    if s.failed {
                        return;
                    }
                    if let Some(n) = s.todo.pop() {
                        s.busy += 1;
                        break n;
                    }
                    if s.busy == 0 {
                        return;
                    }
                    changed.wait(&mut s);
                }
            };
            let mut done = Done { state: &state, changed: &changed, children: Vec::new() };
            visit(node, &mut done.children);
        }
    };
    if threads <= 1 {
        return work();
    }
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    struct Count {
        done: Mutex<Vec<(usize, usize)>>,
    }
    struct Job {
        order: usize,
        n: usize,
        seen: AtomicUsize,
    }
    impl Planner for Count {
        type Target = usize;
        type Job = Job;
        fn plan(&self, order: usize, n: usize) -> Option<Job> {
            (order % 5 != 4).then(|| Job { order, n, seen: AtomicUsize::new(0) })
        }
        fn files(&self, j: &Job) -> usize {
            j.n
        }
        fn run_len(&self, _: &Job) -> usize {
            7
        }
        fn process(&self, j: &Job, s: usize, e: usize) {
            j.seen.fetch_add(e - s, Ordering::Relaxed);
        }
        fn finish(&self, j: &Job) {
            self.done.lock().push((j.order, j.seen.load(Ordering::Relaxed)));
        }
    }

    #[test]
    fn every_file_is_processed_once_and_every_mailbox_finished_once() {
        for threads in [1, 2, 5] {
            let c = Count { done: Mutex::new(Vec::new()) };
            let sizes: Vec<usize> = (0..200).map(|i| (i * 37) % 101).collect();
            run(&c, sizes.clone(), threads).expect("run");
            let mut done = c.done.into_inner();
            done.sort_unstable();
            let expect: Vec<(usize, usize)> =
                sizes.iter().enumerate().filter(|(i, _)| i % 5 != 4).map(|(i, &n)| (i, n)).collect();
            assert_eq!(done, expect, "threads {threads}");
        }
    }

    #[test]
    fn a_panicking_worker_fails_the_run_instead_of_hanging_it() {
        struct Boom;
        impl Planner for Boom {
            type Target = usize;
            type Job = usize;
            fn plan(&self, _: usize, n: usize) -> Option<usize> {
                Some(n)
            }
            fn files(&self, j: &usize) -> usize {
                *j
            }
            fn run_len(&self, _: &usize) -> usize {
                3
            }
            fn process(&self, j: &usize, s: usize, _: usize) {
                assert!(!(*j == 40 && s == 9), "boom");
            }
            fn finish(&self, _: &usize) {}
        }
        for threads in [1, 2, 4] {
            let r = run(&Boom, (0..100).collect(), threads);
            assert!(r.is_err(), "threads {threads}");
        }
    }

    #[test]
    fn walk_visits_every_node_once() {
        for threads in [1, 2, 4] {
            // Node n has children 2n+1 and 2n+2 below 1000.
            let seen = Mutex::new(Vec::new());
            walk(vec![0u32], threads, |n, out| {
                seen.lock().push(n);
                out.extend([2 * n + 1, 2 * n + 2].into_iter().filter(|&c| c < 1000));
            });
            let mut v = seen.into_inner();
            v.sort_unstable();
            assert_eq!(v, (0..1000).collect::<Vec<_>>(), "threads {threads}");
        }
        walk(Vec::<u32>::new(), 2, |_, _| panic!("no node"));
    }
}
