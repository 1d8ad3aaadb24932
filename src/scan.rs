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
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam::channel::{Sender, TryRecvError};

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
pub fn run<P: Planner>(planner: &P, targets: Vec<P::Target>, threads: usize) -> Result<(), String> {
    let threads = threads.max(1);
    type Run<J> = (Arc<Planned<J>>, usize, usize);
    let (plan_tx, plan_rx) = crossbeam::channel::bounded::<(usize, P::Target)>(threads * 2);
    let (file_tx, file_rx) = crossbeam::channel::unbounded::<Run<P::Job>>();
    // Plans sent plus runs queued, not yet done.
    let outstanding = AtomicUsize::new(0);
    // A worker panicked: the others stop instead of waiting for its work forever (the
    // panic reaches the caller through the scope).
    let failed = std::sync::atomic::AtomicBool::new(false);
    struct OnPanic<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for OnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Release);
            }
        }
    }

    let plan_one = |order: usize, target: P::Target, file_tx: &Sender<Run<P::Job>>| {
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
                outstanding.fetch_add(1, Ordering::AcqRel);
                if file_tx.send((planned.clone(), start, end)).is_err() {
                    outstanding.fetch_sub(1, Ordering::AcqRel);
                    break;
                }
                start = end;
            }
        }
    };

    crossbeam::scope(|s| {
        for _ in 0..threads {
            let (plan_rx, file_rx, file_tx) = (plan_rx.clone(), file_rx.clone(), file_tx.clone());
            let (plan_one, outstanding, failed) = (&plan_one, &outstanding, &failed);
            s.spawn(move |_| {
                let _guard = OnPanic(failed);
                let mut plans_open = true;
                loop {
                    if failed.load(Ordering::Acquire) {
                        break;
                    }
                    let run = match file_rx.try_recv() {
                        Ok(r) => Some(r),
                        Err(_) if plans_open => match plan_rx.try_recv() {
                            Ok((order, target)) => {
                                plan_one(order, target, &file_tx);
                                outstanding.fetch_sub(1, Ordering::AcqRel);
                                None
                            }
                            Err(TryRecvError::Disconnected) => {
                                plans_open = false;
                                None
                            }
                            Err(TryRecvError::Empty) => crossbeam::channel::select! {
                                recv(file_rx) -> r => r.ok(),
                                recv(plan_rx) -> p => {
                                    match p {
                                        Ok((order, target)) => {
                                            plan_one(order, target, &file_tx);
                                            outstanding.fetch_sub(1, Ordering::AcqRel);
                                        }
                                        Err(_) => plans_open = false,
                                    }
                                    None
                                }
                            },
                        },
                        Err(_) => {
                            if outstanding.load(Ordering::Acquire) == 0 {
                                break;
                            }
                            file_rx.recv_timeout(std::time::Duration::from_millis(2)).ok()
                        }
                    };
                    let Some((planned, start, end)) = run else { continue };
                    planner.process(&planned.job, start, end);
                    if planned.remaining.fetch_sub(end - start, Ordering::AcqRel) == end - start {
                        planner.finish(&planned.job);
                    }
                    outstanding.fetch_sub(1, Ordering::AcqRel);
                }
            });
        }
        drop((plan_rx, file_rx, file_tx));
        for (order, target) in targets.into_iter().enumerate() {
            outstanding.fetch_add(1, Ordering::AcqRel);
            if plan_tx.send((order, target)).is_err() {
                outstanding.fetch_sub(1, Ordering::AcqRel);
                break;
            }
        }
        drop(plan_tx);
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
