//! The live feed's listening mark (`migrations/0011`) against real SQLite, in every order its
//! steps can interleave: a feed object opening a socket, and webhooks committing, telling the
//! object when their batch saw the mark, the object clearing the mark when it finds no socket.
//! After every step, an open socket's user is marked; at the end, the socket knows a version
//! at least as new as every committed webhook's.
//!
//! Named case: a webhook committing after the mark but told before the socket was accepted
//! found no socket and was dropped, and the hello carried the version read with the mark
//! (schedule `[0, 1, 1, 1, 2, 2, 0, 2]`). The object now notes what such a notification
//! carried, and the hello carries the newer of the two.

use super::sqlite::SqliteDatabase;
use super::*;
use crate::testing::block_on;
use crate::webhooks::{form, twilio};

const NOW: i64 = 1_800_000_000_000;

fn ada() -> UserId {
    UserId::parse("ada").expect("valid")
}

fn webhook(call: usize) -> crate::domain::Delivery {
    let body = format!(
        "CallSid=CAlisten{call}&CallStatus=completed&Direction=inbound&From=%2B15550001111\
         &To=%2B14155550199&CallDuration=42&SequenceNumber=3"
    );
    let params = form::parse(body.as_bytes()).expect("valid form");
    twilio::voice_status(&params, Timestamp::from_millis(NOW)).expect("parses")
}

/// The feed object as `runtime::live::LiveFeedObject` keeps it: sockets open, the newest
/// version each knows, and the generation it last opened a socket at.
#[derive(Default)]
struct Object {
    socket: Option<Version>,
    generation: Option<u64>,
    /// The newest version a notification brought while no socket was open.
    noted: Version,
}

/// Where one process stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// The opener: marked (with what `listen` returned), not yet accepted.
    Marked(Listening),
    /// A webhook: committed at a version, having seen the mark or not.
    Committed(Version, bool),
    /// A webhook whose notification found no socket: about to clear at a generation.
    Clearing(Option<u64>),
    Done,
    Start,
}

struct Run {
    store: Store<SqliteDatabase>,
    object: Object,
    steps: Vec<Step>,
    committed: Vec<Version>,
}

impl Run {
    fn new(listened_before: bool) -> Self {
        let store = Store::new(SqliteDatabase::migrated());
        store.db_exec(
            "INSERT INTO phone_numbers (e164, user_id, created_at, updated_at) \
             VALUES ('+14155550199', 'ada', 0, 0)",
        );
        let mut object = Object::default();
        if listened_before {
            // A socket was opened and has closed since: the mark is still set.
            let mark = block_on(store.listen(&ada())).expect("marks");
            object.generation = Some(mark.generation);
        }
        Run {
            store,
            object,
            steps: vec![Step::Start; 3],
            committed: Vec::new(),
        }
    }

    fn marked(&self) -> bool {
        let rows = self
            .store
            .db_rows("SELECT listening FROM live_listeners WHERE user_id = 'ada'");
        rows.first().and_then(|r| r["listening"].as_i64()) == Some(1)
    }

    /// Process 0 opens a socket; processes 1 and 2 are webhooks about calls 1 and 2.
    fn step(&mut self, process: usize) {
        let next = match (process, self.steps[process]) {
            (0, Step::Start) => Step::Marked(block_on(self.store.listen(&ada())).expect("marks")),
            (0, Step::Marked(mark)) => {
                // `open_socket` after the mark: synchronously, the generation, the accept and
                // the hello (at the version the mark's batch read, or newer).
                self.object.generation = Some(mark.generation);
                self.object.socket = Some(mark.version.max(self.object.noted));
                Step::Done
            }
            (_, Step::Start) => {
                let claim = format!("claim-{process}");
                let done = block_on(self.store.ingest(&webhook(process), &claim)).expect("ingests");
                let version = done.version.expect("applied to ada");
                self.committed.push(version);
                Step::Committed(version, done.listening)
            }
            (_, Step::Committed(_, false)) => Step::Done,
            (_, Step::Committed(version, true)) => match &mut self.object.socket {
                // `broadcast`: every socket is sent the change.
                Some(known) => {
                    *known = (*known).max(version);
                    Step::Done
                }
                None => {
                    self.object.noted = self.object.noted.max(version);
                    Step::Clearing(self.object.generation)
                }
            },
            (_, Step::Clearing(generation)) => {
                if let Some(generation) = generation {
                    block_on(self.store.stop_listening(&ada(), generation)).expect("clears");
                }
                Step::Done
            }
            (_, done) => done,
        };
        self.steps[process] = next;
    }
}

/// Every order of `counts[p]` steps of each process `p`.
fn schedules(counts: [usize; 3]) -> Vec<Vec<usize>> {
    if counts.iter().all(|&c| c == 0) {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in 0..3 {
        if counts[p] == 0 {
            continue;
        }
        let mut rest = counts;
        rest[p] -= 1;
        for mut tail in schedules(rest) {
            tail.insert(0, p);
            out.push(tail);
        }
    }
    out
}

#[test]
fn a_socket_opened_while_webhooks_commit_never_misses_a_version_in_any_order() {
    let all = schedules([2, 3, 3]);
    assert_eq!(all.len(), 560, "8! / (2! 3! 3!)");
    for listened_before in [false, true] {
        for schedule in &all {
            let mut run = Run::new(listened_before);
            for &p in schedule {
                run.step(p);
                if run.object.socket.is_some() {
                    assert!(
                        run.marked(),
                        "a socket is open but the mark is clear after {schedule:?} \
                         (listened before: {listened_before})"
                    );
                }
            }
            let newest = run.committed.iter().max().copied().expect("both committed");
            assert!(
                run.object.socket.expect("opened") >= newest,
                "the socket knows {:?}, the webhooks committed {:?}, after {schedule:?} \
                 (listened before: {listened_before})",
                run.object.socket,
                run.committed
            );
        }
    }
}

#[test]
fn a_mark_is_cleared_only_at_the_generation_it_was_last_set_at() {
    let s = Store::new(SqliteDatabase::migrated());
    let first = block_on(s.listen(&ada())).expect("marks");
    let second = block_on(s.listen(&ada())).expect("marks");
    assert_eq!(second.generation, first.generation + 1);
    assert!(!block_on(s.stop_listening(&ada(), first.generation)).expect("D1"));
    assert!(block_on(s.stop_listening(&ada(), second.generation)).expect("D1"));
    let bob = UserId::parse("bob").expect("valid");
    assert!(
        !block_on(s.stop_listening(&bob, 1)).expect("D1"),
        "never marked: nothing to clear"
    );
}
