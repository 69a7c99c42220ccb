//! Time comes from a [`Clock`] so that tests can hold it still or move it by hand.
//! On wasm32 `std::time` aborts the instance; the runtime clock reads `Date.now()`.

use crate::domain::Timestamp;

pub trait Clock {
    fn now(&self) -> Timestamp;
}

/// The Workers clock. Inside a request it only advances across I/O.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeClock;

#[cfg(target_arch = "wasm32")]
impl Clock for RuntimeClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(worker::Date::now().as_millis() as i64)
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug, Default)]
pub struct ManualClock(std::cell::Cell<i64>);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        Self(std::cell::Cell::new(ms))
    }

    pub fn advance(&self, ms: i64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.get())
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for std::rc::Rc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
