//! Polling a future once before any executor owns it, so that work which never waits is
//! answered at once (the runtime entry answers a memory hit without a promise or a task), and
//! handing the rest to an executor without losing a wake-up.
//!
//! The first poll has no executor task to wake, yet a future may keep the waker of its first
//! poll only (the runtime crate's `Delay` hands that waker to its timer once and never looks
//! at later ones). So the first poll's waker is a `Relay`: once an executor drives the future
//! ([`Relayed`]), every wake-up through it wakes that executor's task. A wake-up that comes
//! before the task exists is not lost: an executor polls a new task at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// What the first poll found.
pub enum FirstPoll<F: Future> {
    Ready(F::Output),
    /// Still waiting: drive this from an executor.
    Pending(Relayed<F>),
}

/// Polls `future` once, outside any executor.
pub fn poll_first<F: Future>(future: F) -> FirstPoll<F> {
    let relay = Arc::new(Relay::default());
    let mut inner = Box::pin(future);
    let waker = Waker::from(relay.clone());
    match inner.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(output) => FirstPoll::Ready(output),
        Poll::Pending => FirstPoll::Pending(Relayed { relay, inner }),
    }
}

/// The waker of the first poll: wakes whichever task drives the future now.
#[derive(Default)]
struct Relay(Mutex<Option<Waker>>);

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Ok(task) = self.0.lock() {
            if let Some(task) = task.as_ref() {
                task.wake_by_ref();
            }
        }
    }
}

/// A future after its first poll: each poll tells the `Relay` which task to wake.
pub struct Relayed<F> {
    relay: Arc<Relay>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Relayed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Ok(mut task) = self.relay.0.lock() {
            *task = Some(cx.waker().clone());
        }
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A timer the way the runtime crate's `Delay` is written: it keeps the waker of its first
    /// poll, and firing wakes that one, whoever polls it later.
    struct KeepsFirstWaker {
        kept: Rc<RefCell<Option<Waker>>>,
        fired: Rc<Cell<bool>>,
    }

    impl Future for KeepsFirstWaker {
        type Output = &'static str;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            if self.fired.get() {
                return Poll::Ready("fired");
            }
            self.kept
                .borrow_mut()
                .get_or_insert_with(|| cx.waker().clone());
            Poll::Pending
        }
    }

    #[derive(Default)]
    struct CountingTask(AtomicUsize);

    impl Wake for CountingTask {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn work_that_never_waits_is_answered_by_the_first_poll() {
        assert!(matches!(poll_first(async { 7 }), FirstPoll::Ready(7)));
    }

    /// A timer that keeps its first waker, after its first poll; and how to fire it (through
    /// the waker it kept, as the runtime's timer does).
    fn pending_timer() -> (Relayed<KeepsFirstWaker>, impl Fn()) {
        let kept = Rc::new(RefCell::new(None::<Waker>));
        let fired = Rc::new(Cell::new(false));
        let timer = KeepsFirstWaker {
            kept: kept.clone(),
            fired: fired.clone(),
        };
        let FirstPoll::Pending(relayed) = poll_first(timer) else {
            panic!("the timer has not fired yet");
        };
        let fire = move || {
            fired.set(true);
            kept.borrow().as_ref().expect("kept a waker").wake_by_ref();
        };
        (relayed, fire)
    }

    #[test]
    fn a_future_that_keeps_its_first_waker_still_wakes_the_task_that_drives_it_later() {
        let (mut relayed, fire) = pending_timer();
        let task = Arc::new(CountingTask::default());
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        assert!(Pin::new(&mut relayed).poll(&mut cx).is_pending());
        // The timer fires through the waker it kept from the first poll...
        fire();
        // ...and that reaches the task, which polls the future to its end.
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut relayed).poll(&mut cx), Poll::Ready("fired"));
    }

    #[test]
    fn a_wake_up_before_any_task_drives_the_future_is_harmless() {
        let (mut relayed, fire) = pending_timer();
        fire();
        // A new task polls at once and finds it done.
        let task_waker = Waker::from(Arc::new(CountingTask::default()));
        let mut cx = Context::from_waker(&task_waker);
        assert_eq!(Pin::new(&mut relayed).poll(&mut cx), Poll::Ready("fired"));
    }
}
