//! Fakes for host tests of the cache and of the app over it: an in-memory KV that can fail, and
//! a runtime whose background work runs when the test says.

use super::{KvTier, LocalFuture, Runtime};
use crate::error::{AppError, AppResult};
use crate::testing::block_on;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

#[derive(Default)]
pub struct FakeKv {
    pub data: RefCell<HashMap<String, String>>,
    pub fail: Cell<bool>,
    pub reads: Cell<u64>,
    pub writes: RefCell<Vec<String>>,
}

impl KvTier for FakeKv {
    async fn get(&self, key: &str) -> AppResult<Option<String>> {
        self.reads.set(self.reads.get() + 1);
        if self.fail.get() {
            return Err(AppError::unavailable("KV: injected"));
        }
        Ok(self.data.borrow().get(key).cloned())
    }
    async fn put(&self, key: &str, head: &str, data: &str, ttl_secs: u64) -> AppResult<()> {
        let value = [head, data].concat();
        assert!(ttl_secs >= 60, "KV refuses TTLs under 60 s");
        if self.fail.get() {
            return Err(AppError::unavailable("KV: injected"));
        }
        self.writes.borrow_mut().push(key.to_owned());
        self.data.borrow_mut().insert(key.into(), value);
        Ok(())
    }
}

/// Yields once: stands for any real I/O wait.
pub struct YieldOnce(pub bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[derive(Clone, Default)]
pub struct TestRuntime {
    queue: Rc<RefCell<Vec<LocalFuture>>>,
    /// When set, timers fire at once: anything that yields loses a race against them.
    pub timers_fire_at_once: Rc<Cell<bool>>,
    /// When set, a timer moves this clock on by its delay as it is set (then yields once):
    /// for background work that waits until the clock says a time has come.
    pub timers_advance: Rc<RefCell<Option<Rc<crate::clock::ManualClock>>>>,
}

impl Runtime for TestRuntime {
    fn spawn(&self, fut: LocalFuture) {
        self.queue.borrow_mut().push(fut);
    }
    fn sleep(&self, ms: u32) -> LocalFuture {
        if let Some(clock) = self.timers_advance.borrow().as_ref() {
            clock.advance(i64::from(ms));
        }
        Box::pin(YieldOnce(self.timers_fire_at_once.get()))
    }
}

impl TestRuntime {
    /// Polls each queued task once, keeping those not finished; returns how many finished.
    pub fn poll_background_once(&self) -> usize {
        let tasks: Vec<LocalFuture> = self.queue.borrow_mut().drain(..).collect();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut finished = 0;
        for mut task in tasks {
            match task.as_mut().poll(&mut cx) {
                Poll::Ready(()) => finished += 1,
                Poll::Pending => self.queue.borrow_mut().push(task),
            }
        }
        finished
    }

    /// Drops the background work queued so far unrun, as a runtime does when it cancels a
    /// request's `waitUntil`; returns how many tasks it dropped.
    pub fn cancel_background(&self) -> usize {
        let dropped: Vec<LocalFuture> = self.queue.borrow_mut().drain(..).collect();
        dropped.len()
    }

    pub fn run_background(&self) -> usize {
        let mut ran = 0;
        loop {
            let next: Vec<LocalFuture> = self.queue.borrow_mut().drain(..).collect();
            if next.is_empty() {
                return ran;
            }
            for f in next {
                block_on(f);
                ran += 1;
            }
        }
    }
}
