//! Time comes from a [`Clock`] so that tests can hold it still or move it by hand.
//! On wasm32 `std::time` aborts the instance; the runtime's clock (`runtime::clock`) reads
//! `Date.now()`.

use crate::domain::Timestamp;

pub trait Clock {
    fn now(&self) -> Timestamp;
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
