//! The Workers clock.

use crate::clock::Clock;
use crate::domain::Timestamp;

/// The Workers clock. Inside a request it only advances across I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeClock;

impl Clock for RuntimeClock {
    /// `Date.now()`: one call and a number back, where `worker::Date::now()` makes a `Date`
    /// object and asks it for its time (two calls and an allocation, several times a request).
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(js_sys::Date::now() as i64)
    }
}
