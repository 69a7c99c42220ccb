//! `/webhooks/*`: verify the signature over the raw body, parse, apply in one D1 batch — or,
//! if D1 fails, park the verified delivery and still answer 2xx. A delivery seen before gets
//! the same 2xx and changes nothing.

use super::{require_media_type, respond, App, Request, Response, Services};
use crate::cache::CacheControl;
use crate::clock::Clock;
use crate::error::{AppError, AppResult};
use crate::live::{ChangeKind, LiveFeed, Notification};
use crate::webhooks::parking;
use crate::webhooks::{claim_nonce, form, retell, standard, twilio, Delivery};
use std::cell::RefCell;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// The URL Twilio signed: `PUBLIC_BASE_URL` + path + query when configured (behind a proxy the
/// request URL differs), else the URL as received.
fn public_url(base: Option<&str>, req: &Request) -> String {
    match base {
        Some(base) if req.query.is_empty() => format!("{base}{}", req.path),
        Some(base) => format!("{base}{}?{}", req.path, req.query),
        None => req.url.clone(),
    }
}

fn twiml_ok() -> Response {
    Response {
        status: 200,
        headers: vec![
            ("content-type", "text/xml; charset=utf-8".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body: br#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
            .to_vec()
            .into(),
    }
}

struct Received {
    received: bool,
}
crate::json_object!(Received { "received": received });

fn json_ok() -> Response {
    respond::json(
        200,
        &respond::Envelope {
            success: true,
            data: Received { received: true },
            meta: serde_json::Map::new(),
        },
    )
}

impl<S: Services> App<'_, S> {
    /// Applies a verified delivery; if that fails, parks it for the scheduled replay. Only
    /// when parking fails too does the provider get an error (and retry).
    async fn deliver(&self, delivery: Delivery, note: &RefCell<Option<String>>) -> AppResult<()> {
        // Refresh on write: the batch reads back the owner's landing views if someone here is
        // looking at them (see `cache::landing`).
        let named_owner = delivery.owner().user;
        let refresh = self.reads.refresh_ask(named_owner.as_ref());
        let applied = async {
            let claim = claim_nonce()?;
            crate::http::DeliverySink::ingest(self.writes, &delivery, &claim, &refresh).await
        }
        .await;
        match applied {
            Ok(mut ingested) => {
                if let (true, Some(user)) = (ingested.changed_data(), &ingested.user) {
                    self.reads.invalidate_call(
                        user,
                        ingested.call.as_ref(),
                        ingested.version_before,
                        ingested.version,
                    );
                    if let Some(version) = ingested.version {
                        self.reads.keep_refreshed(
                            user,
                            version,
                            ingested.version_before,
                            ingested.call.as_ref(),
                            std::mem::take(&mut ingested.refresh),
                        );
                        // Told only when someone may be listening (`migrations/0011`): a
                        // socket opened after this batch says hello at this version or newer.
                        if ingested.listening {
                            let calls: Vec<_> = ingested.call.iter().cloned().collect();
                            self.live.notify(
                                user,
                                Notification::new(ChangeKind::Changed, &calls, version),
                            );
                        }
                    }
                }
                Ok(())
            }
            Err(apply_error) => match parking::park(self.parking, &delivery).await {
                Ok(key) => {
                    *note.borrow_mut() = Some(format!(
                        "parked {} delivery {key} for replay: {apply_error}",
                        delivery.provider.as_str()
                    ));
                    Ok(())
                }
                Err(park_error) => Err(AppError::unavailable(format!(
                    "could not apply ({apply_error}) nor park ({park_error}) a delivery"
                ))),
            },
        }
    }

    fn twilio_verified(&self, req: &Request) -> AppResult<Vec<(String, String)>> {
        require_media_type(req, FORM)?;
        let tokens: Vec<&str> = [
            &self.config.twilio_auth_token,
            &self.config.twilio_auth_token_secondary,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose())
        .collect();
        if tokens.is_empty() {
            return Err(AppError::NotConfigured("TWILIO_AUTH_TOKEN"));
        }
        // Twilio signs the decoded parameters, so decoding the form is part of verifying it.
        let params = form::parse(&req.body)
            .map_err(|e| AppError::InvalidRequest(format!("malformed form body: {e:?}")))?;
        let url = public_url(self.config.public_base_url.as_deref(), req);
        twilio::verify(&url, &params, req.header("x-twilio-signature"), &tokens).map_err(|e| {
            match e {
                twilio::TwilioSignatureError::MissingSignature => {
                    AppError::Unauthorized("the X-Twilio-Signature header is required")
                }
                _ => AppError::InvalidSignature,
            }
        })?;
        Ok(params)
    }
}

pub async fn twilio_voice_status<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    note: &RefCell<Option<String>>,
) -> AppResult<Response> {
    let params = app.twilio_verified(req)?;
    let delivery = twilio::voice_status(&params, app.clock.now())?;
    app.deliver(delivery, note).await?;
    Ok(twiml_ok())
}

pub async fn twilio_recording_status<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    note: &RefCell<Option<String>>,
) -> AppResult<Response> {
    let params = app.twilio_verified(req)?;
    let delivery = twilio::recording_status(&params, app.clock.now())?;
    app.deliver(delivery, note).await?;
    Ok(twiml_ok())
}

pub async fn standard_event<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    note: &RefCell<Option<String>>,
) -> AppResult<Response> {
    require_media_type(req, JSON)?;
    let secrets: Vec<&str> = [
        &app.config.webhook_secret,
        &app.config.webhook_secret_secondary,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.expose())
    .collect();
    if secrets.is_empty() {
        return Err(AppError::NotConfigured("WEBHOOK_SECRET"));
    }
    let headers = standard::SignatureHeaders::from_lookup(|name| req.header(name));
    let now = app.clock.now();
    standard::verify(&headers, &req.body, &secrets, now).map_err(|e| match e {
        standard::StandardSignatureError::MissingHeader(_) => AppError::Unauthorized(
            "the webhook-id, webhook-timestamp and webhook-signature headers are required",
        ),
        standard::StandardSignatureError::NoUsableSecret => {
            AppError::NotConfigured("a valid WEBHOOK_SECRET (whsec_…)")
        }
        _ => AppError::InvalidSignature,
    })?;
    let id = headers.id.unwrap_or_default();
    let delivery = standard::parse(id, &req.body, now)?;
    app.deliver(delivery, note).await?;
    Ok(json_ok())
}

pub async fn retell_event<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    note: &RefCell<Option<String>>,
) -> AppResult<Response> {
    require_media_type(req, JSON)?;
    let key = app
        .config
        .retell_api_key
        .as_ref()
        .ok_or(AppError::NotConfigured("RETELL_API_KEY"))?;
    let now = app.clock.now();
    retell::verify(
        &req.body,
        req.header("x-retell-signature"),
        key.expose(),
        now,
    )
    .map_err(|e| match e {
        retell::RetellSignatureError::MissingSignature => {
            AppError::Unauthorized("the x-retell-signature header is required")
        }
        _ => AppError::InvalidSignature,
    })?;
    let delivery = retell::parse(&req.body, now)?;
    app.deliver(delivery, note).await?;
    Ok(json_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str) -> Request {
        let (path, query) = crate::http::split_url(url).expect("absolute");
        Request {
            method: super::super::Method::Post,
            url: url.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: vec![],
            body: vec![],
        }
    }

    #[test]
    fn the_signed_url_keeps_the_query_exactly_as_received() {
        // What a parse-and-print round trip would rewrite (`'` → `%27`, `%7e` → `~`, …)
        // stays as the provider sent and signed it.
        let raw = "https://dash.example.com/webhooks/twilio/voice-status?who=o'brien&x=%7e|^";
        let r = req(raw);
        assert_eq!(public_url(None, &r), raw);
        assert_eq!(
            public_url(Some("https://proxy.example"), &r),
            "https://proxy.example/webhooks/twilio/voice-status?who=o'brien&x=%7e|^"
        );
    }

    #[test]
    fn urls_split_into_path_and_query_without_decoding() {
        assert_eq!(
            crate::http::split_url("https://h:8787/a/b?x=1&y='#frag"),
            Some(("/a/b", "x=1&y='"))
        );
        assert_eq!(crate::http::split_url("http://h"), Some(("/", "")));
        assert_eq!(crate::http::split_url("http://h?q"), Some(("/", "q")));
        assert_eq!(crate::http::split_url("/relative"), None);
    }

    #[test]
    fn the_public_base_url_replaces_scheme_and_host_but_keeps_path_and_query() {
        let r = req("http://127.0.0.1:8787/webhooks/twilio/voice-status?tenant=acme");
        assert_eq!(
            public_url(Some("https://dash.example.com"), &r),
            "https://dash.example.com/webhooks/twilio/voice-status?tenant=acme"
        );
        assert_eq!(public_url(None, &r), r.url);
        let plain = req("http://x/webhooks/retell");
        assert_eq!(
            public_url(Some("https://d.example"), &plain),
            "https://d.example/webhooks/retell"
        );
    }
}
