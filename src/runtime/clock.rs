//! The Workers clock.

use crate::clock::Clock;
use crate::domain::Timestamp;

/// The Workers clock. Inside a request it only advances across I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeClock;

impl Clock for RuntimeClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(worker::Date::now().as_millis() as i64)
    }
}
