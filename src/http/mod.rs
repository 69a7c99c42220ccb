//! The HTTP surface: plain request/response values, authentication, the route table and the
//! handlers. Nothing here touches the Workers runtime, so [`App::handle`] runs in host tests
//! exactly as in production; the runtime entry (`runtime/entry.rs`) only converts to and from the
//! runtime's request and response.
//!
//! Routes: [`routes::ROUTES`] lists every path with its `Allow`, and is what routing and the
//! 405 answers are both built from (a test holds it to `openapi.yaml`'s paths and methods);
//! `App::route` picks each row's handler, one match arm per row, in the feature modules below.
//! The one upgrade, `GET /api/live`, is admitted here and forwarded by the runtime entry.

mod admin;
mod cache;
mod calls;
mod intents;
mod live;
pub mod params;
pub mod respond;
pub mod routes;
mod webhooks;

use crate::auth;
use crate::cache::CacheControl;
use crate::clock::Clock;
use crate::config::{Config, VERSION};
use crate::domain::{CallId, UserId, Version};
pub use crate::domain::{DEFAULT_PAGE_LIMIT, DEFAULT_SUMMARY_LIMIT};
use crate::error::{AppError, AppResult};
use crate::reads::ReadModel;
use crate::store::{ActivityLog, CallDeletion, Ingested, PhoneDirectory};
use crate::webhooks::parking::Parking;
use crate::webhooks::Delivery;

/// Users with webhook traffic within this window count as recently active (cache warming).
pub const RECENT_ACTIVITY_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Other,
}

impl Method {
    /// The method's name, as `Allow` lists it (`OTHER` for one the app does not know).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// A request as the app sees it. Header names are lower-case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The full URL as received (scheme, host, path, query).
    pub url: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The request headers the app reads for a method, lower-case. The runtime adapter copies only
/// these into [`Request::headers`] (one lookup each) instead of walking every header a browser
/// or the edge sends; [`Request::header`] holds the app to the list in debug builds, so a name
/// used but not listed fails the host tests rather than reading as absent in production.
pub fn read_headers(method: Method) -> &'static [&'static str] {
    match method {
        // Reads: the token, conditional and freshness headers, CORS, the live upgrade.
        Method::Get | Method::Head => &[
            "authorization",
            "if-none-match",
            "origin",
            "upgrade",
            "x-min-version",
        ],
        Method::Options => &["access-control-request-headers", "origin"],
        // Webhooks (every provider's signature headers), deletions and the operator routes.
        Method::Post | Method::Put | Method::Delete | Method::Other => &[
            "authorization",
            "content-length",
            "content-type",
            "origin",
            "svix-id",
            "svix-signature",
            "svix-timestamp",
            "webhook-id",
            "webhook-signature",
            "webhook-timestamp",
            "x-retell-signature",
            "x-twilio-signature",
        ],
    }
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        debug_assert!(
            read_headers(self.method).contains(&name),
            "`{name}` is read on {:?} but not in read_headers, so the runtime would never copy it",
            self.method
        );
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

/// A response's body: bytes of its own, or a read's body shared with the payload that keeps
/// it ([`crate::reads::Payload::body`]), which the runtime copies out as it sends it.
#[derive(Debug, Clone)]
pub enum Body {
    Owned(Vec<u8>),
    Shared(std::rc::Rc<String>),
}

impl Default for Body {
    fn default() -> Self {
        Body::Owned(Vec::new())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Owned(bytes)
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Body::Owned(bytes) => bytes,
            Body::Shared(text) => text.as_bytes(),
        }
    }
}

/// The same bytes, however they are held.
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response, and what the log line should say about it.
pub struct Handled {
    pub response: Response,
    /// The error behind an error response.
    pub error: Option<AppError>,
    /// Something an operator should know although the request succeeded (a parked delivery).
    pub note: Option<String>,
    /// An admitted live-feed upgrade: the runtime entry hands the request to the user's
    /// object with this ticket instead of sending `response`.
    pub upgrade: Option<crate::live::Ticket>,
}

/// What a handler reports besides its response.
#[derive(Default)]
pub struct Aside {
    pub note: std::cell::RefCell<Option<String>>,
    pub upgrade: std::cell::RefCell<Option<crate::live::Ticket>>,
}

/// Applies verified webhook deliveries (the D1 store).
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait DeliverySink {
    /// Applies `delivery` once per `claim`, reading back `refresh`'s views for a watched owner
    /// in the same batch.
    async fn ingest(
        &self,
        delivery: &Delivery,
        claim: &str,
        refresh: &crate::store::RefreshAsk,
    ) -> AppResult<Ingested>;
}

impl<D: crate::store::Database> DeliverySink for crate::store::Store<D> {
    async fn ingest(
        &self,
        delivery: &Delivery,
        claim: &str,
        refresh: &crate::store::RefreshAsk,
    ) -> AppResult<Ingested> {
        crate::store::Store::ingest_refreshing(self, delivery, claim, refresh).await
    }
}

/// The services the routes use, named once so handlers take a single type parameter.
pub trait Services {
    type Reads: ReadModel + CacheControl;
    type Writes: PhoneDirectory + DeliverySink + ActivityLog + CallDeletion;
    type Parking: Parking;
    type Clock: Clock;
    type Live: crate::live::LiveFeed;
    type Keys: auth::PublicKeys;
}

/// The application: configuration plus the services the routes use.
pub struct App<'a, S: Services> {
    pub config: &'a Config,
    pub reads: &'a S::Reads,
    pub writes: &'a S::Writes,
    pub parking: &'a S::Parking,
    pub clock: &'a S::Clock,
    pub live: &'a S::Live,
    /// The identity provider's JWKS (`JWT_JWKS_URL`), or [`auth::NoPublicKeys`].
    pub keys: &'a S::Keys,
}

impl<S: Services> App<'_, S> {
    pub async fn handle(&self, req: &Request) -> Handled {
        let aside = Aside::default();
        let (response, error) = match self.route(req, &aside).await {
            Ok(res) => (res, None),
            Err(e) => (respond::error(&e), Some(e)),
        };
        let mut response = respond::with_cors(response, req, &self.config.allowed_origins);
        if req.method == Method::Head {
            response.body = Body::default();
        }
        Handled {
            response,
            error,
            note: aside.note.into_inner(),
            upgrade: aside.upgrade.into_inner(),
        }
    }

    async fn route(&self, req: &Request, aside: &Aside) -> AppResult<Response> {
        use routes::RouteId as R;
        let note = &aside.note;
        if req.method == Method::Options {
            return Ok(respond::no_content());
        }
        let segments: Vec<&str> = req
            .path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .collect();
        let (route, param) = routes::find(&segments).ok_or(AppError::NotFound)?;
        if !route.allows(req.method) {
            return Err(AppError::MethodNotAllowed { allow: route.allow });
        }
        // The row's `{…}` segment; every row that has one has exactly one.
        let id = param.unwrap_or("");
        match route.id {
            R::Health => Ok(health()),
            R::Calls => calls::list(self, req).await,
            R::Call if req.method == Method::Delete => calls::delete(self, req, id).await,
            R::Call => calls::detail(self, req, id).await,
            R::CallEnhanced => calls::enhanced(self, req, id).await,
            R::IntentSummary => intents::summary(self, req).await,
            R::IntentAnalysis => intents::analysis(self, req, id).await,
            R::CacheStats => cache::stats(self, req).await,
            R::CacheKeys => cache::keys(self, req).await,
            R::CacheWarm => cache::warm(self, req).await,
            R::CachePurge => cache::purge(self, req).await,
            R::LiveTickets => live::ticket(self, req).await,
            R::Live => live::connect(self, req, &aside.upgrade),
            R::TwilioVoiceStatus => webhooks::twilio_voice_status(self, req, note).await,
            R::TwilioRecordingStatus => webhooks::twilio_recording_status(self, req, note).await,
            R::Events => webhooks::standard_event(self, req, note).await,
            R::Retell => webhooks::retell_event(self, req, note).await,
            R::AdminParked => admin::parked(self, req).await,
            R::AdminRequeueParked => admin::requeue_parked(self, req).await,
            R::AdminPhoneNumber if req.method == Method::Delete => {
                admin::delete_phone_number(self, req, id).await
            }
            R::AdminPhoneNumber => admin::put_phone_number(self, req, id).await,
        }
    }

    /// The dashboard user behind the request's bearer JWT: HS256 with `JWT_SECRET`, or a key
    /// from `JWT_JWKS_URL` (either configured is enough).
    async fn user(&self, req: &Request) -> AppResult<UserId> {
        let secret = self.config.jwt_secret.as_ref();
        if secret.is_none() && !auth::PublicKeys::configured(self.keys) {
            return Err(AppError::NotConfigured("JWT_SECRET or JWT_JWKS_URL"));
        }
        let header = req
            .header("authorization")
            .ok_or(AppError::Unauthorized("a bearer token is required"))?;
        let token = auth::bearer_token(header).ok_or(AppError::Unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ))?;
        let verifiers = auth::Verifiers {
            secret: secret.map(|s| s.expose().as_bytes()),
            keys: self.keys,
            expect: auth::Expectations {
                issuer: self.config.jwt_issuer.as_deref(),
                audience: self.config.jwt_audience.as_deref(),
            },
        };
        let now_secs = self.clock.now().millis().div_euclid(1000);
        auth::verify_bearer(token, &verifiers, now_secs)
            .await
            .map_err(|e| AppError::Unauthorized(e.message()))
    }

    /// True when the request carries the operator's `ADMIN_TOKEN`.
    fn is_admin(&self, req: &Request) -> bool {
        let Some(expected) = self.config.admin_token.as_ref() else {
            return false;
        };
        req.header("authorization")
            .and_then(auth::bearer_token)
            .is_some_and(|t| auth::secrets_match(t, expected.expose()))
    }

    /// Admits the operator's `ADMIN_TOKEN`; a valid dashboard JWT is recognised and refused
    /// with 403 so its holder learns the route exists but is not theirs.
    async fn admin(&self, req: &Request) -> AppResult<()> {
        let expected = self
            .config
            .admin_token
            .as_ref()
            .ok_or(AppError::NotConfigured("ADMIN_TOKEN"))?;
        let token = req
            .header("authorization")
            .and_then(auth::bearer_token)
            .ok_or(AppError::Unauthorized("the admin token is required"))?;
        if auth::secrets_match(token, expected.expose()) {
            return Ok(());
        }
        if self.user(req).await.is_ok() {
            return Err(AppError::Forbidden);
        }
        Err(AppError::Unauthorized("the admin token is not valid"))
    }
}

/// Refuses a body whose `Content-Type` is not `expected` (parameters such as `charset` are
/// ignored).
pub(crate) fn require_media_type(req: &Request, expected: &'static str) -> AppResult<()> {
    let given = req.header("content-type").unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType(expected))
    }
}

/// A small JSON object body for an operator route: the right media type, at most `max`
/// bytes, and an object — whose members are among `known`, when given (`shape` says which,
/// in the error).
/// The routes read their members from it ([`member`]): one JSON reader, where a derived
/// decoder per body cost the module one each.
pub(crate) fn small_object(
    req: &Request,
    max: usize,
    shape: &str,
    known: Option<&[&str]>,
) -> AppResult<serde_json::Map<String, serde_json::Value>> {
    require_media_type(req, "application/json")?;
    if req.body.len() > max {
        return Err(AppError::PayloadTooLarge);
    }
    let body = match crate::json::parse(&req.body) {
        Ok(serde_json::Value::Object(body)) => body,
        Ok(_) => return Err(AppError::InvalidJson(format!("the body must be {shape}"))),
        Err(e) => {
            return Err(AppError::InvalidJson(format!(
                "the body must be {shape}: {e}"
            )))
        }
    };
    let unknown = |k: &&String| known.is_some_and(|known| !known.contains(&k.as_str()));
    if let Some(other) = body.keys().find(unknown) {
        let mut expected = String::new();
        for k in known.unwrap_or_default() {
            if !expected.is_empty() {
                expected.push_str(", ");
            }
            expected.push('`');
            expected.push_str(k);
            expected.push('`');
        }
        return Err(AppError::InvalidJson(format!(
            "the body must be {shape}: unknown field `{other}`, expected one of {expected}"
        )));
    }
    Ok(body)
}

/// The member `name` of a [`small_object`] body as `read` reads it: `None` when absent or
/// `null`, an error saying what it must be (`kind`) when `read` refuses it.
pub(crate) fn member<T>(
    body: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    kind: &str,
    read: impl FnOnce(&serde_json::Value) -> Option<T>,
) -> AppResult<Option<T>> {
    crate::json::optional(body, name, read)
        .ok_or_else(|| AppError::InvalidJson(format!("`{name}` must be {kind}")))
}

/// A call id from a path segment. Ids that cannot exist are simply not found.
/// The path and the query of an absolute URL, exactly as written (no decoding, no
/// re-encoding): `https://host/a/b?x=1#f` gives `("/a/b", "x=1")`. `None` without a scheme and
/// host.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let (_, after_scheme) = url.split_once("://")?;
    let path_start = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let rest = &after_scheme[path_start..];
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    Some((if path.is_empty() { "/" } else { path }, query))
}

/// `X-Min-Version`: the oldest version of the user's data this read may reflect (a client told
/// of a change reads its own writes). Absent means anything current.
fn min_version(req: &Request) -> AppResult<Version> {
    match req.header("x-min-version").map(str::trim) {
        // Sent empty, it asks for nothing, like an absent header.
        None | Some("") => Ok(Version::ZERO),
        Some(raw) => Version::parse_token(raw).ok_or_else(|| {
            AppError::invalid_parameter(
                "X-Min-Version",
                "must be a version token from meta.version",
            )
        }),
    }
}

fn path_call_id(raw: &str) -> AppResult<CallId> {
    percent_decode(raw)
        .as_deref()
        .and_then(CallId::parse)
        .ok_or(AppError::NotFound)
}

/// Decodes `%XX` escapes in a path segment; `None` for bad escapes or non-UTF-8 results.
fn percent_decode(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

struct HealthData {
    ok: bool,
    version: &'static str,
}
crate::json_object!(HealthData { "ok": ok, "version": version });

/// Both the envelope and the flat `{"ok","version"}` (`openapi.yaml`, `/api/health`), for
/// uptime checkers that read either.
struct Health {
    success: bool,
    ok: bool,
    version: &'static str,
    data: HealthData,
}
crate::json_object!(Health {
    "success": success,
    "ok": ok,
    "version": version,
    "data": data,
});

fn health() -> Response {
    respond::json(
        200,
        &Health {
            success: true,
            ok: true,
            version: VERSION,
            data: HealthData {
                ok: true,
                version: VERSION,
            },
        },
    )
}

#[cfg(test)]
mod tests;
