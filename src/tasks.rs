//! The request's own executor: a request's future is polled once where it arrives, and, when it
//! waits, again from the very promise reaction that ends its wait, without a trip through a
//! task queue.
//!
//! Why: under wasm-bindgen's executor a request that waits on one promise (a KV hit, a D1 page)
//! paid for a promise and a closure to become a task, a `queueMicrotask` round trip to be
//! polled first, two closures made and dropped per awaited promise, and another
//! `queueMicrotask` round trip to be polled when that promise settled — a dozen crossings
//! between wasm and JavaScript, where the work needs two. Here:
//! - [`start`] polls the future at once, outside any task; work that never waits (the health
//!   route, a memory hit) is answered by that poll.
//! - Work that waits becomes a task, and keeps the waker of that first poll: a [`Waker`]
//!   naming the task, valid for the task's whole life (a timer that keeps the first waker it
//!   saw still reaches the task).
//! - A wake-up from inside [`from_settled_promise`] (the runtime calls it from the one
//!   callback every awaited promise settles through: a promise reaction, with nothing of the
//!   worker on the stack) polls the task there and then.
//! - Any other wake-up (a timer, another task, the task itself while it is polled) is queued,
//!   and the queue is drained once per microtask ([`drain`], which the runtime schedules when
//!   the queue stops being empty). No task is ever polled inside another's poll: a waker may
//!   be woken while its waker holds a `RefCell` borrow.
//!
//! Single-threaded (wasm32): the state is thread-local, and a waker is only an index into it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A handful of tasks at a time (one per request in flight in the isolate), so plain lists
/// searched by id: smaller in the module than a map, and as fast at that size.
#[derive(Default)]
struct Tasks {
    /// Each live task's id and future; `None` while it is being polled.
    live: Vec<(u64, Option<TaskFuture>)>,
    next_id: u64,
    /// Tasks woken outside a settled promise, in order, each once.
    queued: Vec<u64>,
    /// Whether a drain has been asked for and has not run yet.
    drain_asked: bool,
    /// How the runtime drains the queue soon (`queueMicrotask`); none: the tests drain.
    schedule_drain: Option<Box<dyn Fn()>>,
}

impl Tasks {
    fn future(&mut self, id: u64) -> Option<&mut Option<TaskFuture>> {
        self.live
            .iter_mut()
            .find(|(live, _)| *live == id)
            .map(|(_, future)| future)
    }

    fn end(&mut self, id: u64) {
        self.live.retain(|(live, _)| *live != id);
    }
}

thread_local! {
    static TASKS: RefCell<Tasks> = RefCell::new(Tasks::default());
    /// A task is being polled (so a wake-up now must not poll another).
    static POLLING: Cell<bool> = const { Cell::new(false) };
    /// Inside [`from_settled_promise`]: a wake-up may poll its task at once.
    static SETTLING: Cell<bool> = const { Cell::new(false) };
}

/// How the runtime gets [`drain`] called soon after the first task is queued: once per isolate.
pub fn set_drain_scheduler(schedule: impl Fn() + 'static) {
    TASKS.with(|t| t.borrow_mut().schedule_drain = Some(Box::new(schedule)));
}

/// A task's waker: its id.
struct TaskWaker(u64);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        wake_task(self.0);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake_task(self.0);
    }
}

fn wake_task(id: u64) {
    if SETTLING.get() && !POLLING.get() {
        run(id);
        return;
    }
    let schedule = TASKS.with(|t| {
        let mut t = t.borrow_mut();
        if !t.live.iter().any(|(live, _)| *live == id) || t.queued.contains(&id) {
            return false;
        }
        t.queued.push(id);
        !std::mem::replace(&mut t.drain_asked, true)
    });
    if schedule {
        // The scheduler is taken out while it runs: it may call into JavaScript, and nothing
        // it does may find the tasks borrowed.
        let scheduler = TASKS.with(|t| t.borrow_mut().schedule_drain.take());
        if let Some(s) = scheduler {
            s();
            TASKS.with(|t| {
                t.borrow_mut().schedule_drain.get_or_insert(s);
            });
        }
    }
}

/// Polls task `id` once, unless it has ended or is being polled (its wake-up is then queued by
/// [`wake_task`] instead).
fn run(id: u64) {
    let Some(mut future) = TASKS.with(|t| t.borrow_mut().future(id).and_then(Option::take)) else {
        return;
    };
    let waker = Waker::from(Arc::new(TaskWaker(id)));
    let settling = SETTLING.replace(false);
    POLLING.set(true);
    let done = future
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready();
    POLLING.set(false);
    SETTLING.set(settling);
    TASKS.with(|t| {
        let mut t = t.borrow_mut();
        if done {
            t.end(id);
        } else if let Some(slot) = t.future(id) {
            *slot = Some(future);
        }
    });
}

/// Polls every task queued before this call, each once.
pub fn drain() {
    let ready: Vec<u64> = TASKS.with(|t| {
        let mut t = t.borrow_mut();
        t.drain_asked = false;
        std::mem::take(&mut t.queued)
    });
    for id in ready {
        run(id);
    }
}

/// Runs `settle` (the runtime's callback for a settled promise) so that a task it wakes is
/// polled at once, before it returns.
pub fn from_settled_promise(settle: impl FnOnce()) {
    let outer = SETTLING.replace(true);
    settle();
    SETTLING.set(outer);
}

/// Polls `future` once. Finished: its output. Otherwise it goes on as a task: `later` is called
/// once, now, for what to hand the caller meanwhile (the runtime's promise of the output) and
/// what to do with the output when the task finishes.
pub fn start<T: 'static, R>(
    future: impl Future<Output = T> + 'static,
    later: impl FnOnce() -> (R, Box<dyn FnOnce(T)>),
) -> Result<T, R> {
    let id = TASKS.with(|t| {
        let mut t = t.borrow_mut();
        t.next_id = t.next_id.wrapping_add(1);
        t.next_id
    });
    let mut future = Box::pin(future);
    let waker = Waker::from(Arc::new(TaskWaker(id)));
    // Registered (while being polled) before the first poll, so that a wake-up during it is
    // queued rather than lost.
    TASKS.with(|t| t.borrow_mut().live.push((id, None)));
    let outer = (POLLING.replace(true), SETTLING.replace(false));
    let first = future.as_mut().poll(&mut Context::from_waker(&waker));
    POLLING.set(outer.0);
    SETTLING.set(outer.1);
    match first {
        Poll::Ready(output) => {
            TASKS.with(|t| t.borrow_mut().end(id));
            Ok(output)
        }
        Poll::Pending => {
            let (handed, finish) = later();
            let task: TaskFuture = Box::pin(async move { finish(future.await) });
            TASKS.with(|t| {
                if let Some(slot) = t.borrow_mut().future(id) {
                    *slot = Some(task);
                }
            });
            Err(handed)
        }
    }
}

/// How many tasks are waiting (for the tests).
#[cfg(test)]
fn live_tasks() -> usize {
    TASKS.with(|t| t.borrow().live.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// A future that waits until `open` is set, keeping every waker it is polled with (as a
    /// promise or a timer of the runtime keeps the one it was given).
    #[derive(Clone, Default)]
    struct Gate {
        open: Rc<Cell<bool>>,
        wakers: Rc<RefCell<Vec<Waker>>>,
        polls: Rc<Cell<u32>>,
    }

    impl Gate {
        fn wait(&self) -> impl Future<Output = ()> {
            let gate = self.clone();
            std::future::poll_fn(move |cx| {
                gate.polls.set(gate.polls.get() + 1);
                if gate.open.get() {
                    Poll::Ready(())
                } else {
                    gate.wakers.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                }
            })
        }

        /// Opens, waking only the first waker the gate kept.
        fn open_with_first_waker(&self) {
            self.open.set(true);
            let first = self.wakers.borrow().first().cloned();
            if let Some(w) = first {
                w.wake();
            }
        }
    }

    /// Starts `future`, recording its output in the returned cell when it finishes later.
    fn started<T: 'static>(
        future: impl Future<Output = T> + 'static,
    ) -> (Option<T>, Rc<RefCell<Option<T>>>) {
        let out = Rc::new(RefCell::new(None));
        let sink = out.clone();
        let now = start(future, move || {
            let finish: Box<dyn FnOnce(T)> = Box::new(move |v| *sink.borrow_mut() = Some(v));
            ((), finish)
        });
        (now.ok(), out)
    }

    #[test]
    fn work_that_never_waits_is_answered_by_the_first_poll_and_leaves_no_task() {
        let before = live_tasks();
        let (now, _) = started(async { 7 });
        assert_eq!(now, Some(7));
        assert_eq!(live_tasks(), before);
    }

    #[test]
    fn a_task_woken_by_a_settled_promise_is_polled_there_and_finishes() {
        let gate = Gate::default();
        let wait = gate.wait();
        let (now, out) = started(async move {
            wait.await;
            "done"
        });
        assert_eq!(now, None);
        from_settled_promise(|| gate.open_with_first_waker());
        assert_eq!(
            *out.borrow(),
            Some("done"),
            "polled inside the settle callback"
        );
    }

    #[test]
    fn a_wake_up_from_elsewhere_waits_for_the_drain() {
        let asked = Rc::new(Cell::new(0));
        let counter = asked.clone();
        set_drain_scheduler(move || counter.set(counter.get() + 1));
        let gate = Gate::default();
        let wait = gate.wait();
        let (_, out) = started(async move {
            wait.await;
            1
        });
        gate.open_with_first_waker(); // a timer, say: not a settled promise
        assert_eq!(*out.borrow(), None, "not polled by the wake-up itself");
        assert_eq!(asked.get(), 1, "a drain was asked for, once");
        drain();
        assert_eq!(*out.borrow(), Some(1));
    }

    #[test]
    fn a_timer_that_keeps_the_first_poll_s_waker_still_reaches_the_task() {
        // The first poll happens before the task exists; its waker must outlive that moment.
        let gate = Gate::default();
        let wait = gate.wait();
        let (_, out) = started(async move {
            wait.await;
            std::future::ready(()).await;
            "fired"
        });
        assert_eq!(gate.wakers.borrow().len(), 1, "only the first poll saw it");
        from_settled_promise(|| gate.open_with_first_waker());
        assert_eq!(*out.borrow(), Some("fired"));
    }

    #[test]
    fn a_task_is_never_polled_inside_another_task_s_poll() {
        let second = Gate::default();
        let wait = second.wait();
        let (_, out) = started(async move {
            wait.await;
            2
        });
        // The first task, when polled from a settled promise, wakes the second: that wake-up
        // must be queued, not run inside the first task's poll.
        let first = Gate::default();
        let first_wait = first.wait();
        let opener = second.clone();
        let seen_inside = Rc::new(Cell::new(None));
        let seen = seen_inside.clone();
        let observed = out.clone();
        let _ = started(async move {
            first_wait.await;
            opener.open_with_first_waker();
            seen.set(Some(observed.borrow().is_some()));
        });
        from_settled_promise(|| first.open_with_first_waker());
        assert_eq!(
            seen_inside.get(),
            Some(false),
            "the second did not run inside the first"
        );
        drain();
        assert_eq!(*out.borrow(), Some(2));
    }

    #[test]
    fn a_task_that_wakes_itself_is_polled_again_by_the_drain_not_recursively() {
        let polls = Rc::new(Cell::new(0));
        let counted = polls.clone();
        let (_, out) = started(std::future::poll_fn(move |cx| {
            counted.set(counted.get() + 1);
            if counted.get() < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready("third")
            }
        }));
        assert_eq!(polls.get(), 1);
        drain();
        assert_eq!(polls.get(), 2);
        drain();
        assert_eq!(*out.borrow(), Some("third"));
    }

    #[test]
    fn a_wake_up_after_the_task_ended_does_nothing() {
        let gate = Gate::default();
        let wait = gate.wait();
        let (_, out) = started(async move {
            wait.await;
        });
        from_settled_promise(|| gate.open_with_first_waker());
        assert!(out.borrow().is_some());
        let kept = gate.wakers.borrow()[0].clone();
        from_settled_promise(|| kept.wake_by_ref());
        kept.wake();
        drain();
        assert_eq!(gate.polls.get(), 2);
    }
}
