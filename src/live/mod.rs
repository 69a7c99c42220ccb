//! The live feed: a dashboard learns of committed changes over a WebSocket instead of polling.
//!
//! One Durable Object per user (binding `LIVE`, `runtime/live.rs`) holds that user's sockets with the
//! WebSocket Hibernation API, so an idle dashboard costs nothing. Everything here is plain Rust
//! the object and the routes share: tickets, the messages on the wire, the answer to a client
//! frame, and the [`LiveFeed`] port the routes talk to.
//!
//! ```text
//! dashboard            worker                      LiveFeed object (user u)        D1
//!    | POST /api/live/tickets (JWT) |                         |                       |
//!    |----------------------------->| issue(u) -------------->| keeps sha256(secret)  |
//!    |<-- 201 {ticket, expiresAt} --|<------------------------|                       |
//!    | GET /api/live?ticket=… (Upgrade: websocket)            |                       |
//!    |----------------------------->| forwards the upgrade -->| redeems once, reads u's version
//!    |<========== 101, then {"type":"hello","userId":u,"version":v} ================>|
//!    |                              |                         |                       |
//! provider -- signed webhook ------>| one D1 batch ---------------------------------->|
//!    |                              |<-- version v+1 ---------------------------------|
//! provider <------------- 2xx ------|                         |                       |
//!    |                              | waitUntil: notify ----->| sends to u's sockets  |
//!    |<======= {"type":"changed","callIds":[…],"version":"v+1"} ===|                   |
//!    | GET /api/webhook-calls, X-Min-Version: v+1 (through the cache)                  |
//! ```
//!
//! - A **ticket** is `<object id>.<secret>`: the object id (hex, as the runtime prints it)
//!   routes the upgrade to the user's object without naming the user in a URL; the secret is
//!   128 random bits. The object keeps only the secret's SHA-256 with its expiry, redeems it
//!   once, and forgets it after [`TICKET_TTL_MS`]. A ticket for Ada opens Ada's object only:
//!   Bob's object has never seen its digest. No bearer token ever travels in a URL.
//! - **Bounds**: at most [`MAX_OPEN_TICKETS`] unexpired tickets and [`MAX_SOCKETS_PER_USER`]
//!   sockets per user (past either, 429 `rate_limited`); a client frame is at most
//!   [`MAX_CLIENT_FRAME_BYTES`] of JSON `{"type":"ping"}`. Anything else closes the socket with
//!   1008 (policy violation), or 1009 when too big.
//! - **Versions** on the feed never go back: the object sends the larger of the version it was
//!   told and the largest it has sent before.
//! - A **failed notification** is logged and dropped; it never fails or repeats the webhook.
//!   The next change carries a newer version anyway, and a reconnecting client gets `hello`
//!   with the current one.

use crate::domain::{CallId, UserId, Version};
use crate::error::AppResult;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a ticket can be redeemed after it was issued.
pub const TICKET_TTL_MS: i64 = 60_000;
/// Unexpired, unredeemed tickets one user may hold.
pub const MAX_OPEN_TICKETS: usize = 32;
/// Open sockets one user may hold (tabs, screens); past it an upgrade gets 429.
pub const MAX_SOCKETS_PER_USER: usize = 32;
/// The largest client frame accepted (a ping is 15 bytes).
pub const MAX_CLIENT_FRAME_BYTES: usize = 256;
/// Call ids one notification names at most (a delivery names one; deletions one).
pub const MAX_CALL_IDS: usize = 64;
/// WebSocket close codes (RFC 6455 §7.4.1).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;

const SECRET_HEX_LEN: usize = 32;
const MAX_OBJECT_HEX_LEN: usize = 128;

/// A ticket as the client holds it: which object, and the secret that object will redeem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub object: String,
    pub secret: String,
}

impl Ticket {
    /// `<object id>.<secret>`, both lower-case hex; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        let (object, secret) = raw.split_once('.')?;
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let ok = !object.is_empty()
            && object.len() <= MAX_OBJECT_HEX_LEN
            && hex(object)
            && secret.len() == SECRET_HEX_LEN
            && hex(secret);
        ok.then(|| Ticket {
            object: object.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}", self.object, self.secret)
    }

    /// A fresh secret: 128 bits from the platform's CSPRNG, as hex.
    pub fn new_secret() -> AppResult<String> {
        let mut bytes = [0u8; SECRET_HEX_LEN / 2];
        getrandom::fill(&mut bytes)
            .map_err(|e| crate::error::AppError::internal(format!("getrandom: {e}")))?;
        Ok(crate::hex::encode(bytes))
    }
}

/// What the object stores for a secret: its digest, never the secret itself.
pub fn secret_digest(secret: &str) -> String {
    crate::hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A ticket issued to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTicket {
    pub ticket: String,
    /// Epoch ms (not written: the ticket route writes its own `expiresAt`).
    pub expires_at_ms: i64,
}

/// Why a ticket could not be issued or redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketRefusal {
    /// Too many unexpired tickets: the client is opening sockets in a loop.
    TooMany,
    /// Never issued, already used, or expired.
    NotValid,
}

/// One user's outstanding tickets (digest → expiry), as the object stores them
/// (`runtime::live` writes it as `{ open: [[digest, expiresAtMs], …] }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketBook {
    /// `(digest, expires_at_ms)`, oldest first.
    pub open: Vec<(String, i64)>,
}

impl TicketBook {
    fn prune(&mut self, now_ms: i64) {
        self.open.retain(|(_, expires)| *expires > now_ms);
    }

    /// Records a new ticket's digest; returns its expiry.
    pub fn issue(&mut self, digest: String, now_ms: i64) -> Result<i64, TicketRefusal> {
        self.prune(now_ms);
        if self.open.len() >= MAX_OPEN_TICKETS {
            return Err(TicketRefusal::TooMany);
        }
        let expires = now_ms.saturating_add(TICKET_TTL_MS);
        self.open.push((digest, expires));
        Ok(expires)
    }

    /// Spends the ticket whose secret has `digest`: true once, while it is unexpired.
    pub fn redeem(&mut self, digest: &str, now_ms: i64) -> Result<(), TicketRefusal> {
        self.prune(now_ms);
        let at = self
            .open
            .iter()
            .position(|(d, _)| bool::from(d.as_bytes().ct_eq(digest.as_bytes())))
            .ok_or(TicketRefusal::NotValid)?;
        self.open.remove(at);
        Ok(())
    }
}

/// What changed, as the worker tells a user's object after the D1 batch committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Changed,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Changed => "changed",
            ChangeKind::Deleted => "deleted",
        }
    }
}

impl crate::json_writer::ToJson for ChangeKind {
    fn write_json(&self, out: &mut String) {
        crate::json_writer::write_str(out, self.as_str());
    }
}

/// A notification from the worker to a user's object: written by `json_writer`, read by hand
/// ([`Notification::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub kind: ChangeKind,
    pub call_ids: Vec<String>,
    /// The version token after the change.
    pub version: String,
}
crate::json_object!(Notification {
    "kind": kind,
    "callIds": call_ids,
    "version": version,
});

/// The socket's first message (members in byte order, as before).
struct Hello<'a> {
    kind: &'static str,
    user_id: &'a UserId,
    version: String,
}
crate::json_object!(Hello<'_> { "type": kind, "userId": user_id, "version": version });

/// A change as sockets receive it (members in byte order, as before).
struct Change<'a> {
    call_ids: &'a [CallId],
    kind: &'static str,
    version: String,
}
crate::json_object!(Change<'_> { "callIds": call_ids, "type": kind, "version": version });

impl Notification {
    pub fn new(kind: ChangeKind, call_ids: &[CallId], version: Version) -> Self {
        Self {
            kind,
            call_ids: call_ids
                .iter()
                .take(MAX_CALL_IDS)
                .map(|c| c.as_str().to_owned())
                .collect(),
            version: version.token(),
        }
    }

    /// A notification as the object receives it: well-formed ids and version, or `None`.
    pub fn parse(body: &[u8]) -> Option<(ChangeKind, Vec<CallId>, Version)> {
        let n = crate::json::parse(body).ok()?;
        let kind = match n.get("kind")?.as_str()? {
            "changed" => ChangeKind::Changed,
            "deleted" => ChangeKind::Deleted,
            _ => return None,
        };
        let listed = n.get("callIds")?.as_array()?;
        if listed.len() > MAX_CALL_IDS {
            return None;
        }
        let ids: Option<Vec<CallId>> = listed.iter().map(|c| CallId::parse(c.as_str()?)).collect();
        Some((
            kind,
            ids?,
            Version::parse_token(n.get("version")?.as_str()?)?,
        ))
    }
}

/// A server message, as a JSON text frame.
pub fn hello(user: &UserId, version: Version) -> String {
    crate::json_writer::to_string(&Hello {
        kind: "hello",
        user_id: user,
        version: version.token(),
    })
}

pub fn change(kind: ChangeKind, call_ids: &[CallId], version: Version) -> String {
    crate::json_writer::to_string(&Change {
        call_ids,
        kind: kind.as_str(),
        version: version.token(),
    })
}

pub const PONG: &str = r#"{"type":"pong"}"#;

/// How the object answers one frame from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrameAnswer {
    Reply(&'static str),
    Close(u16, &'static str),
}

/// A client frame: text `{"type":"ping"}` gets a pong; anything else ends the connection.
pub fn answer_client_frame(text: Option<&str>, len: usize) -> ClientFrameAnswer {
    if len > MAX_CLIENT_FRAME_BYTES {
        return ClientFrameAnswer::Close(CLOSE_TOO_BIG, "frame too large");
    }
    let Some(text) = text else {
        return ClientFrameAnswer::Close(CLOSE_POLICY_VIOLATION, "binary frames are not accepted");
    };
    // Exactly `{"type":"ping"}`, in any spacing: one member, a string.
    let ping = crate::json::parse(text.as_bytes())
        .ok()
        .and_then(|v| {
            let o = v.as_object()?;
            (o.len() == 1).then(|| o.get("type")?.as_str().map(|t| t == "ping"))?
        })
        .unwrap_or(false);
    if ping {
        ClientFrameAnswer::Reply(PONG)
    } else {
        ClientFrameAnswer::Close(CLOSE_POLICY_VIOLATION, "expected {\"type\":\"ping\"}")
    }
}

/// The live feed as the routes see it.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait LiveFeed {
    /// False when the deployment has no `LIVE` binding.
    fn configured(&self) -> bool {
        true
    }
    /// A single-use ticket for `user`'s feed.
    async fn issue_ticket(&self, user: &UserId) -> AppResult<IssuedTicket>;
    /// Tells `user`'s object of a committed change, off the response path; failures are
    /// logged, never returned.
    fn notify(&self, user: &UserId, notification: Notification);
}

/// A deployment without the `LIVE` binding: the routes answer 503 `not_configured`, and
/// nothing is sent after writes.
pub struct NoLiveFeed;

impl LiveFeed for NoLiveFeed {
    fn configured(&self) -> bool {
        false
    }

    async fn issue_ticket(&self, _user: &UserId) -> AppResult<IssuedTicket> {
        Err(crate::error::AppError::NotConfigured("the LIVE binding"))
    }

    fn notify(&self, _user: &UserId, _notification: Notification) {}
}

/// A feed for host tests: issues tickets from one book per user and records notifications.
#[cfg(test)]
#[derive(Default)]
pub struct RecordingLive {
    pub books: std::cell::RefCell<std::collections::HashMap<UserId, TicketBook>>,
    pub sent: std::cell::RefCell<Vec<(UserId, Notification)>>,
    pub now_ms: std::cell::Cell<i64>,
}

#[cfg(test)]
impl LiveFeed for RecordingLive {
    async fn issue_ticket(&self, user: &UserId) -> AppResult<IssuedTicket> {
        let secret = Ticket::new_secret()?;
        let expires_at_ms = self
            .books
            .borrow_mut()
            .entry(user.clone())
            .or_default()
            .issue(secret_digest(&secret), self.now_ms.get())
            .map_err(|_| crate::error::AppError::RateLimited("open live tickets"))?;
        let object = crate::hex::encode(user.as_str());
        Ok(IssuedTicket {
            ticket: Ticket { object, secret }.encode(),
            expires_at_ms,
        })
    }

    fn notify(&self, user: &UserId, notification: Notification) {
        self.sent.borrow_mut().push((user.clone(), notification));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_an_object_id_and_a_secret_in_lower_case_hex() {
        let secret = Ticket::new_secret().expect("random");
        assert_eq!(secret.len(), 32);
        let t = Ticket {
            object: "0a1b2c".into(),
            secret: secret.clone(),
        };
        assert_eq!(Ticket::parse(&t.encode()), Some(t));
        for bad in [
            "",
            "abc",
            ".0123456789abcdef0123456789abcdef",
            "0a1b.0123456789abcdef0123456789abcde",
            "0a1b.0123456789ABCDEF0123456789ABCDEF",
            "0a1b.0123456789abcdef0123456789abcdef0",
            "zz.0123456789abcdef0123456789abcdef",
            "0a.1b.0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(Ticket::parse(bad), None, "{bad:?}");
        }
        assert_ne!(Ticket::new_secret().expect("random"), secret);
    }

    #[test]
    fn a_ticket_is_redeemed_once_and_only_before_it_expires() {
        let mut book = TicketBook::default();
        let d = secret_digest("s1");
        assert_eq!(book.issue(d.clone(), 1_000), Ok(1_000 + TICKET_TTL_MS));
        assert_eq!(
            book.redeem(&secret_digest("other"), 1_001),
            Err(TicketRefusal::NotValid)
        );
        assert_eq!(book.redeem(&d, 1_001), Ok(()));
        assert_eq!(book.redeem(&d, 1_002), Err(TicketRefusal::NotValid), "used");
        let late = secret_digest("s2");
        book.issue(late.clone(), 2_000).expect("room");
        assert_eq!(
            book.redeem(&late, 2_000 + TICKET_TTL_MS),
            Err(TicketRefusal::NotValid),
            "expired"
        );
        assert!(book.open.is_empty(), "expired tickets are forgotten");
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_open_tickets_and_expired_ones_free_room() {
        let mut book = TicketBook::default();
        for i in 0..MAX_OPEN_TICKETS {
            book.issue(secret_digest(&i.to_string()), 0).expect("room");
        }
        assert_eq!(
            book.issue(secret_digest("one more"), 1),
            Err(TicketRefusal::TooMany)
        );
        assert!(book.issue(secret_digest("later"), TICKET_TTL_MS).is_ok());
        assert_eq!(book.open.len(), 1);
    }

    #[test]
    fn notifications_round_trip_and_refuse_what_the_worker_never_sends() {
        let ids = [CallId::parse("CA1").expect("id")];
        let n = Notification::new(ChangeKind::Deleted, &ids, Version::new(42));
        let body = crate::json_writer::to_vec(&n);
        assert_eq!(
            Notification::parse(&body),
            Some((ChangeKind::Deleted, ids.to_vec(), Version::new(42)))
        );
        for bad in [
            r#"{"kind":"changed","callIds":["CA 1"],"version":"1"}"#,
            r#"{"kind":"changed","callIds":[],"version":"-1"}"#,
            r#"{"kind":"moved","callIds":[],"version":"1"}"#,
            "not json",
        ] {
            assert_eq!(Notification::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn server_messages_are_the_documented_json() {
        let ada = UserId::parse("ada").expect("id");
        let hello: serde_json::Value =
            serde_json::from_str(&hello(&ada, Version::new(7))).expect("json");
        assert_eq!(
            hello,
            serde_json::json!({"type":"hello","userId":"ada","version":"7"})
        );
        let ids = [CallId::parse("CA1").expect("id")];
        let changed: serde_json::Value =
            serde_json::from_str(&change(ChangeKind::Changed, &ids, Version::new(8)))
                .expect("json");
        assert_eq!(
            changed,
            serde_json::json!({"type":"changed","callIds":["CA1"],"version":"8"})
        );
        let deleted: serde_json::Value =
            serde_json::from_str(&change(ChangeKind::Deleted, &ids, Version::new(9)))
                .expect("json");
        assert_eq!(deleted["type"], "deleted");
    }

    #[test]
    fn a_ping_gets_a_pong_and_anything_else_closes_with_a_policy_code() {
        assert_eq!(
            answer_client_frame(Some(r#"{"type":"ping"}"#), 15),
            ClientFrameAnswer::Reply(PONG)
        );
        for bad in [
            r#"{"type":"pong"}"#,
            "ping",
            "{}",
            r#"{"type":"ping","x":1}"#,
        ] {
            assert!(
                matches!(
                    answer_client_frame(Some(bad), bad.len()),
                    ClientFrameAnswer::Close(CLOSE_POLICY_VIOLATION, _)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            answer_client_frame(None, 4),
            ClientFrameAnswer::Close(CLOSE_POLICY_VIOLATION, _)
        ));
        let big = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_CLIENT_FRAME_BYTES)
        );
        assert!(matches!(
            answer_client_frame(Some(&big), big.len()),
            ClientFrameAnswer::Close(CLOSE_TOO_BIG, _)
        ));
    }
}
