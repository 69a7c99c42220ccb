//! The live feed on Workers: the per-user Durable Object (`LiveFeedObject`, binding `LIVE`)
//! and the worker's side of it ([`WorkersLive`], [`forward_upgrade`]).
//!
//! The object's internal routes (reached only through the binding, never from the internet):
//! - `POST /tickets` `{"userId", "digest"}` → `{"expiresAtMs"}`, or 429 past the open-ticket cap;
//! - `GET /connect?secret=…` with `Upgrade: websocket` → 101 and `hello`, 401 for a ticket it
//!   cannot redeem, 429 past the socket cap;
//! - `POST /notify` with a [`Notification`] → 204, after sending it to every socket. A webhook
//!   asks only for a user marked as listening (`migrations/0011`): the object marks its user in
//!   D1 before it accepts a socket, and clears the mark when a notification finds no socket.

use super::bind::{error_text, Env, ObjectNamespace, ObjectState};
use super::d1::D1;
use super::kv::WorkersRuntime;
use crate::cache::Runtime;
use crate::domain::{UserId, Version};
use crate::error::{AppError, AppResult};
use crate::live::{
    answer_client_frame, change, hello, secret_digest, ClientFrameAnswer, IssuedTicket, LiveFeed,
    Notification, Ticket, TicketBook, TicketRefusal, MAX_SOCKETS_PER_USER,
};
use crate::store::Store;
use js_sys::{Array, Object, Reflect};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

const TICKETS_KEY: &str = "tickets";
const USER_KEY: &str = "user";
const VERSION_KEY: &str = "version";
const GENERATION_KEY: &str = "generation";

/// The object's storage, its values read and written as plain JavaScript values: the user as
/// a string, the version and the generation as numbers, the ticket book as
/// `{ open: [[digest, expiresAtMs], …] }`. Those are the shapes `worker::Storage` stored them
/// in (through serde-wasm-bindgen), so an object that stored them before reads them the same;
/// going through the binding directly leaves serde's deserializers (and the float formatting
/// their error messages need) out of the module. A value of another shape reads as absent.
struct ObjectStorage(super::bind::ObjectStorage);

type JsResult<T> = std::result::Result<T, JsValue>;

impl ObjectStorage {
    fn of(state: &ObjectState) -> JsResult<Self> {
        Ok(ObjectStorage(state.storage()))
    }

    /// The value under `key`: `undefined` when there is none.
    async fn get(&self, key: &str) -> JsResult<JsValue> {
        super::settle::settled(&self.0.get_value(key)?).await
    }

    async fn put(&self, key: &str, value: JsValue) -> JsResult<()> {
        super::settle::settled(&self.0.put(key, value)?).await?;
        Ok(())
    }

    /// A whole, non-negative number stored under `key`.
    async fn number(&self, key: &str) -> JsResult<Option<u64>> {
        Ok(whole(&self.get(key).await?))
    }

    async fn put_number(&self, key: &str, n: u64) -> JsResult<()> {
        // Versions and generations stay far inside f64's exact integers (2^53).
        self.put(key, JsValue::from_f64(n as f64)).await
    }

    async fn text(&self, key: &str) -> JsResult<Option<String>> {
        Ok(self.get(key).await?.as_string())
    }

    /// The ticket book; an empty one when none is stored (or it is not one).
    async fn tickets(&self) -> JsResult<TicketBook> {
        Ok(read_ticket_book(&self.get(TICKETS_KEY).await?).unwrap_or_default())
    }

    async fn put_tickets(&self, book: &TicketBook) -> JsResult<()> {
        let open: Array = book
            .open
            .iter()
            .map(|(digest, expires)| {
                Array::of2(
                    &JsValue::from_str(digest),
                    &JsValue::from_f64(*expires as f64),
                )
            })
            .collect();
        let stored = Object::new();
        Reflect::set(&stored, &JsValue::from_str("open"), &open)?;
        self.put(TICKETS_KEY, stored.into()).await
    }
}

/// A number that is a whole, non-negative `u64` exactly.
fn whole(value: &JsValue) -> Option<u64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    value
        .as_f64()
        .filter(|n| n.fract() == 0.0 && (0.0..=EXACT).contains(n))
        .map(|n| n as u64)
}

/// `{ open: [[digest, expiresAtMs], …] }` as a ticket book, or `None` for any other shape.
fn read_ticket_book(value: &JsValue) -> Option<TicketBook> {
    let open: Array = Reflect::get(value, &JsValue::from_str("open"))
        .ok()?
        .dyn_into()
        .ok()?;
    let open = open
        .iter()
        .map(|entry| {
            let entry: Array = entry.dyn_into().ok()?;
            let digest = entry.get(0).as_string()?;
            let expires = entry.get(1).as_f64().filter(|n| n.fract() == 0.0)?;
            Some((digest, expires as i64))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(TicketBook { open })
}

/// Written by `json_writer`, read back by hand (`read_issue_request`).
struct IssueRequest {
    user_id: String,
    digest: String,
}
crate::json_object!(IssueRequest { "userId": user_id, "digest": digest });

struct IssueAnswer {
    expires_at_ms: i64,
}
crate::json_object!(IssueAnswer { "expiresAtMs": expires_at_ms });

/// A ticket request as the object receives it, or `None`.
fn read_issue_request(text: &str) -> Option<IssueRequest> {
    let v = crate::json::parse(text.as_bytes()).ok()?;
    Some(IssueRequest {
        user_id: v.get("userId")?.as_str()?.to_owned(),
        digest: v.get("digest")?.as_str()?.to_owned(),
    })
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

#[wasm_bindgen(inline_js = r#"
export function upgraded(socket) {
  return new Response(null, { status: 101, webSocket: socket });
}"#)]
extern "C" {
    /// The `101 Switching Protocols` answer that hands the runtime the client's end.
    fn upgraded(socket: &web_sys::WebSocket) -> web_sys::Response;
}

/// The runtime's response for an app response (the object's own routes answer the worker).
fn js_response(res: crate::http::Response) -> JsResult<web_sys::Response> {
    super::entry::to_runtime_response(res)
}

fn js_error(e: &AppError) -> JsResult<web_sys::Response> {
    js_response(crate::http::respond::error(e))
}

/// One user's live feed: their open tickets and sockets, and the newest version sent.
///
/// Exported to the runtime as the `LiveFeedObject` class with its own bindings (the state, its
/// storage and hibernating sockets through `runtime::bind`, requests and responses as the
/// runtime's own): each handler runs on the request's executor (`settle::answer`).
#[wasm_bindgen]
pub struct LiveFeedObject {
    feed: Rc<Feed>,
}

struct Feed {
    state: ObjectState,
    env: Env,
    /// The largest version sent on this feed, once read from storage (`None` until then).
    last_version: Cell<Option<Version>>,
    /// The listening mark's generation this object last opened a socket at
    /// (`migrations/0011`), kept in storage too for after an eviction.
    generation: Cell<Option<u64>>,
    /// The newest version a notification brought while no socket was open. A socket being
    /// opened says hello with at least this: such a notification may have come between the
    /// mark and the accept (`store::listener_tests` names the case).
    noted: Cell<Version>,
}

#[wasm_bindgen]
impl LiveFeedObject {
    #[wasm_bindgen(constructor)]
    pub fn new(state: ObjectState, env: Env) -> LiveFeedObject {
        LiveFeedObject {
            feed: Rc::new(Feed {
                state,
                env,
                last_version: Cell::new(None),
                generation: Cell::new(None),
                noted: Cell::new(Version::ZERO),
            }),
        }
    }

    pub fn fetch(&self, req: web_sys::Request) -> JsResult<JsValue> {
        let feed = self.feed.clone();
        super::settle::answer(async move { feed.fetch(req).await.map(JsValue::from) })
    }

    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn web_socket_message(&self, ws: web_sys::WebSocket, message: JsValue) -> JsResult<()> {
        let answer = match message.as_string() {
            Some(text) => answer_client_frame(Some(&text), text.len()),
            None => {
                let bytes = message
                    .dyn_ref::<js_sys::ArrayBuffer>()
                    .map_or(0, |b| b.byte_length() as usize);
                answer_client_frame(None, bytes)
            }
        };
        match answer {
            ClientFrameAnswer::Reply(text) => ws.send_with_str(text),
            ClientFrameAnswer::Close(code, reason) => ws.close_with_code_and_reason(code, reason),
        }
    }

    #[wasm_bindgen(js_name = webSocketClose)]
    pub fn web_socket_close(&self, ws: web_sys::WebSocket, _code: u16, _reason: JsValue) {
        // Completes the closing handshake; the socket may already be gone.
        let _ = ws.close_with_code_and_reason(1000, "closed");
    }

    #[wasm_bindgen(js_name = webSocketError)]
    pub fn web_socket_error(&self, _ws: JsValue, _error: JsValue) {}
}

impl Feed {
    async fn fetch(&self, req: web_sys::Request) -> JsResult<web_sys::Response> {
        // The runtime's own URL string, its path and query split off by hand: a URL parser
        // (and its IDNA tables) for one path and one parameter would weigh more than this.
        let url = req.url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let rest = rest.split('#').next().unwrap_or_default();
        let (path, query) = match rest.find('/') {
            Some(at) => rest[at..].split_once('?').unwrap_or((&rest[at..], "")),
            None => ("/", ""),
        };
        match (req.method().as_str(), path) {
            ("POST", "/tickets") => self.issue(req).await,
            ("GET", "/connect") => self.open_socket(query).await,
            ("POST", "/notify") => self.broadcast(req).await,
            _ => js_error(&AppError::NotFound),
        }
    }

    async fn stored_version(&self) -> Version {
        if let Some(v) = self.last_version.get() {
            return v;
        }
        let stored = match ObjectStorage::of(&self.state) {
            Ok(storage) => storage.number(VERSION_KEY).await.ok().flatten(),
            Err(_) => None,
        };
        let v = Version::new(stored.unwrap_or(0));
        self.last_version.set(Some(v));
        v
    }

    /// Raises the feed's version to at least `v` and returns it: the feed never goes back.
    async fn advance(&self, v: Version) -> Version {
        let last = self.stored_version().await;
        if v > last {
            self.last_version.set(Some(v));
            let stored = match ObjectStorage::of(&self.state) {
                Ok(storage) => storage.put_number(VERSION_KEY, v.get()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                super::bind::warn(&format!("live: storing the feed version: {e:?}"));
            }
            v
        } else {
            last
        }
    }

    async fn issue(&self, req: web_sys::Request) -> JsResult<web_sys::Response> {
        let ask = match req.text() {
            Ok(text) => super::settle::settled(&text)
                .await
                .ok()
                .and_then(|t| t.as_string()),
            Err(_) => None,
        };
        let Some(ask) = ask.as_deref().and_then(read_issue_request) else {
            return js_error(&AppError::InvalidJson("a ticket request".into()));
        };
        let storage = ObjectStorage::of(&self.state)?;
        let mut book = storage.tickets().await?;
        match book.issue(ask.digest, now_ms()) {
            Ok(expires_at_ms) => {
                storage.put_tickets(&book).await?;
                storage
                    .put(USER_KEY, JsValue::from_str(&ask.user_id))
                    .await?;
                js_response(crate::http::respond::json(
                    200,
                    &IssueAnswer { expires_at_ms },
                ))
            }
            Err(_) => js_error(&AppError::RateLimited("open live tickets")),
        }
    }

    async fn open_socket(&self, query: &str) -> JsResult<web_sys::Response> {
        let secret = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "secret")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let storage = ObjectStorage::of(&self.state)?;
        let mut book = storage.tickets().await?;
        let redeemed = book.redeem(&secret_digest(&secret), now_ms());
        // Spent (or expired entries pruned) before anything else can fail.
        storage.put_tickets(&book).await?;
        if let Err(TicketRefusal::NotValid | TicketRefusal::TooMany) = redeemed {
            return js_error(&AppError::Unauthorized(
                "the live ticket is used, expired or was never issued",
            ));
        }
        if self.state.get_websockets()?.length() as usize >= MAX_SOCKETS_PER_USER {
            return js_error(&AppError::RateLimited("open live sockets"));
        }
        let user = storage.text(USER_KEY).await?;
        let Some(user) = user.as_deref().and_then(UserId::parse) else {
            return js_error(&AppError::internal("a live object without its user"));
        };
        // Marked as listening before the socket is accepted, in the batch that reads the
        // version the hello carries (`migrations/0011`): a webhook committed before the mark
        // is in that version, one after it sees the mark and is told. Without the mark no
        // webhook would be told, so a socket that cannot be marked is refused (the console
        // falls back to polling and retries).
        let mark = match self.store() {
            Ok(store) => store.listen(&user).await,
            Err(e) => Err(e),
        };
        let mark = match mark {
            Ok(mark) => mark,
            Err(e) => {
                super::bind::warn(&format!("live: marking {user} as listening: {e}"));
                return js_error(&AppError::unavailable("the live feed"));
            }
        };
        let advanced = self.advance(mark.version).await;
        // No await from here to the accept: a notification that came since the mark (noted,
        // as it found no socket) is in the hello, and one after it finds the socket.
        let version = advanced.max(self.noted.get());
        self.last_version.set(Some(version));
        self.generation.set(Some(mark.generation));
        let (client, server) = super::bind::web_socket_pair();
        self.state.accept_websocket(&server)?;
        server.send_with_str(&hello(&user, version))?;
        let stored = storage.put_number(GENERATION_KEY, mark.generation).await;
        let stored = match stored {
            Ok(()) if version > advanced => storage.put_number(VERSION_KEY, version.get()).await,
            other => other,
        };
        if let Err(e) = stored {
            super::bind::warn(&format!(
                "live: storing the feed's generation and version: {e:?}"
            ));
        }
        Ok(upgraded(&client))
    }

    fn store(&self) -> AppResult<Store<D1>> {
        self.env
            .binding::<JsValue>("DB")
            .map(|db| Store::new(D1(Rc::new(db))))
            .ok_or_else(|| AppError::unavailable("the DB binding is missing"))
    }

    /// No socket is open: clears the user's listening mark at the generation this object last
    /// opened a socket at (a socket opened since, by this object, moved it: the clear then
    /// matches nothing). Unknown generation (never opened, or the record lost): left alone.
    async fn stop_listening(&self) {
        let Ok(storage) = ObjectStorage::of(&self.state) else {
            return;
        };
        let generation = match self.generation.get() {
            Some(g) => Some(g),
            None => storage.number(GENERATION_KEY).await.ok().flatten(),
        };
        let user = storage.text(USER_KEY).await.ok().flatten();
        let (Some(generation), Some(user)) = (generation, user.as_deref().and_then(UserId::parse))
        else {
            return;
        };
        let cleared = match self.store() {
            Ok(store) => store.stop_listening(&user, generation).await,
            Err(e) => Err(e),
        };
        if let Err(e) = cleared {
            // Left set: the next webhook asks again, at the cost of one more request.
            super::bind::warn(&format!("live: clearing {user}'s listening mark: {e}"));
        }
    }

    async fn broadcast(&self, req: web_sys::Request) -> JsResult<web_sys::Response> {
        let body = super::settle::settled(&req.array_buffer()?).await?;
        let body = js_sys::Uint8Array::new(&body).to_vec();
        let Some((kind, call_ids, version)) = Notification::parse(&body) else {
            return js_error(&AppError::InvalidJson("a notification".into()));
        };
        let sockets = self.state.get_websockets()?;
        if sockets.length() == 0 {
            // Nobody to tell, and nothing to keep: a socket opened later starts from the
            // version D1 gives it (`open_socket`), which is at least this one. The mark that
            // brought this request here is stale: cleared, so later webhooks skip this object.
            // (Unless a socket is being opened: its hello carries the version noted here.)
            self.noted.set(self.noted.get().max(version));
            self.stop_listening().await;
            return js_response(crate::http::respond::no_content());
        }
        let version = self.advance(version).await;
        let message = change(kind, &call_ids, version);
        for ws in sockets.iter() {
            // A socket closing meanwhile is not an error of the feed.
            let _ = ws
                .unchecked_into::<web_sys::WebSocket>()
                .send_with_str(&message);
        }
        js_response(crate::http::respond::no_content())
    }
}

/// The worker's side of the feed, through the `LIVE` binding.
pub struct WorkersLive {
    pub namespace: ObjectNamespace,
    pub rt: WorkersRuntime,
}

fn post_json(url: &str, body: String) -> JsResult<web_sys::Request> {
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "application/json")?;
    new_request(url, "POST", &headers, Some(&JsValue::from(body)))
}

/// `Request::new_with_init` without `worker::RequestInit`, whose conversion serializes the `cf`
/// options (image resizing and the rest): with the JWKS fetch made the same way, 5 KB of the
/// gzipped module for requests that never set them. The same request otherwise: method,
/// headers, `redirect: "follow"`.
fn new_request(
    url: &str,
    method: &str,
    headers: &web_sys::Headers,
    body: Option<&JsValue>,
) -> JsResult<web_sys::Request> {
    let init = web_sys::RequestInit::new();
    init.set_headers(headers);
    init.set_method(method);
    init.set_redirect(web_sys::RequestRedirect::Follow);
    if let Some(body) = body {
        init.set_body(body);
    }
    web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| {
        e.as_string().map_or_else(
            || "invalid URL or options for Request".into(),
            JsValue::from,
        )
    })
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::unavailable(format!("live feed: {what}: {e}"))
}

impl LiveFeed for WorkersLive {
    async fn issue_ticket(&self, user: &UserId) -> AppResult<IssuedTicket> {
        let secret = Ticket::new_secret()?;
        let id = self
            .namespace
            .id_from_name(user.as_str())
            .map_err(|e| unavailable("object id", error_text(&e)))?;
        let object = id.to_string();
        let stub = self
            .namespace
            .get(&id)
            .map_err(|e| unavailable("stub", error_text(&e)))?;
        let body = crate::json_writer::to_string(&IssueRequest {
            user_id: user.as_str().to_owned(),
            digest: secret_digest(&secret),
        });
        let req = post_json("https://live/tickets", body)
            .map_err(|e| unavailable("request", error_text(&e)))?;
        let res = stub
            .fetch_request(&req)
            .await
            .map_err(|e| unavailable("issuing a ticket", error_text(&e)))?;
        match res.status() {
            200 => {
                let text = match res.text() {
                    Ok(text) => super::settle::settled(&text).await,
                    Err(e) => Err(e),
                };
                let text = text
                    .map_err(|e| unavailable("ticket answer", error_text(&e)))?
                    .as_string()
                    .unwrap_or_default();
                let expires_at_ms = crate::json::parse(text.as_bytes())
                    .ok()
                    .and_then(|v| v.get("expiresAtMs")?.as_i64())
                    .ok_or_else(|| unavailable("ticket answer", "not a ticket answer"))?;
                Ok(IssuedTicket {
                    ticket: Ticket { object, secret }.encode(),
                    expires_at_ms,
                })
            }
            429 => Err(AppError::RateLimited("open live tickets")),
            s => Err(unavailable("issuing a ticket", format!("status {s}"))),
        }
    }

    fn notify(&self, user: &UserId, notification: Notification) {
        let stub = self
            .namespace
            .id_from_name(user.as_str())
            .and_then(|id| self.namespace.get(&id));
        let user = user.clone();
        self.rt.spawn(Box::pin(async move {
            let sent = async {
                let body = crate::json_writer::to_string(&notification);
                let res = stub?
                    .fetch_request(&post_json("https://live/notify", body)?)
                    .await?;
                match res.status() {
                    204 => Ok(()),
                    s => Err(JsValue::from_str(&format!("status {s}"))),
                }
            }
            .await;
            if let Err(e) = sent {
                super::bind::warn(&format!(
                    "live: notifying {user}'s feed: {}",
                    error_text(&e)
                ));
            }
        }));
    }
}

/// Hands an admitted upgrade to the ticket's object, which redeems the ticket and answers 101
/// (or 401 / 429). A ticket naming no object of this namespace is 401.
pub async fn forward_upgrade(
    namespace: Option<&ObjectNamespace>,
    ticket: &Ticket,
    req: &web_sys::Request,
) -> JsResult<web_sys::Response> {
    let Some(namespace) = namespace else {
        return js_error(&AppError::NotConfigured("the LIVE binding"));
    };
    let Ok(stub) = namespace
        .id_from_string(&ticket.object)
        .and_then(|id| namespace.get(&id))
    else {
        return js_error(&AppError::Unauthorized(
            "the live ticket is used, expired or was never issued",
        ));
    };
    let inner = new_request(
        &format!("https://live/connect?secret={}", ticket.secret),
        "GET",
        &req.headers(),
        None,
    )?;
    stub.fetch_request(&inner).await
}

/// The feed as this deployment has it: through the `LIVE` binding, or absent (503 on the live
/// routes, nothing sent after writes).
pub enum EnvLive {
    Bound(WorkersLive),
    Absent(crate::live::NoLiveFeed),
}

impl EnvLive {
    /// The `LIVE` namespace (looked up once per isolate by the entry), or its absence.
    pub fn from_namespace(namespace: Option<ObjectNamespace>, rt: WorkersRuntime) -> Self {
        match namespace {
            Some(namespace) => EnvLive::Bound(WorkersLive { namespace, rt }),
            None => EnvLive::Absent(crate::live::NoLiveFeed),
        }
    }
}

impl LiveFeed for EnvLive {
    fn configured(&self) -> bool {
        matches!(self, EnvLive::Bound(_))
    }

    async fn issue_ticket(&self, user: &UserId) -> AppResult<IssuedTicket> {
        match self {
            EnvLive::Bound(live) => live.issue_ticket(user).await,
            EnvLive::Absent(none) => none.issue_ticket(user).await,
        }
    }

    fn notify(&self, user: &UserId, notification: Notification) {
        if let EnvLive::Bound(live) = self {
            live.notify(user, notification);
        }
    }
}
