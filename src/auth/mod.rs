//! Bearer authentication: dashboard JWTs and the operator's admin token.
//!
//! A dashboard token is accepted in one of two ways, either enough on its own:
//! - **HS256** with the shared `JWT_SECRET` ([`verify_jwt`], a pure function);
//! - **RS256, ES256 or EdDSA** with the identity provider's public key named by the token's
//!   `kid` in the JWKS at `JWT_JWKS_URL` ([`jwks`] parses the set within bounds, [`keyring`]
//!   caches and refreshes it, the runtime's WebCrypto checks the signature).
//!
//! The token's `alg` picks the way, and must be one the chosen key is for: `none`, an HS256
//! token presented with a public key's `kid` (checked against the secret, never the key), or
//! an RS256 token against an EC key are all refused. Every way then applies the same claim
//! rules: `exp` required, `nbf` honoured (30 s leeway), `iss`/`aud` checked when configured —
//! and a token carrying `aud` refused when no audience is configured — and any `crit` refused.
//! Written here rather than pulled from a JWT crate because the policy is the point: a fixed
//! list of algorithms, mandatory expiry, keys chosen by us and never by the token's header.
//!
//! [`verify_bearer`] remembers verified tokens per isolate (bounded), tied to the exact secret
//! or key that verified them, so a repeat costs a hash and a time check, and a token stops
//! working the moment its key leaves the provider's set.

pub mod jwks;
pub mod keyring;

use crate::domain::UserId;
use hmac::{Hmac, Mac};
use jwks::{Algorithm, PublicKey};
use keyring::KeyMiss;
use sha2::{Digest, Sha256};
use std::rc::Rc;
use subtle::ConstantTimeEq;

/// Tokens longer than this are refused unparsed: no legitimate dashboard token comes close
/// (an RS256 token with a 4096-bit key and a generous set of claims is under 2 KB).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    TooLarge,
    Malformed,
    UnsupportedAlgorithm,
    MissingKeyId,
    UnknownKey,
    WrongKeyType,
    BadSignature,
    MissingExpiry,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    InvalidSubject,
}

impl TokenError {
    /// The message a client sees; specific enough to debug a token, silent about the key.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::TooLarge => "the bearer token is too large",
            TokenError::Malformed => "the bearer token is not a well-formed JWT",
            TokenError::UnsupportedAlgorithm => {
                "the bearer token's alg is not accepted: HS256 with the shared secret, or RS256, ES256 or EdDSA with a key from the identity provider's JWKS"
            }
            TokenError::MissingKeyId => "the bearer token has no kid naming its signing key",
            TokenError::UnknownKey => {
                "the bearer token's kid names no key in the identity provider's JWKS"
            }
            TokenError::WrongKeyType => {
                "the bearer token's alg is not the one its key (kid) is for"
            }
            TokenError::BadSignature => "the bearer token's signature does not verify",
            TokenError::MissingExpiry => "the bearer token has no exp claim",
            TokenError::Expired => "the bearer token has expired",
            TokenError::NotYetValid => "the bearer token is not valid yet (nbf)",
            TokenError::WrongIssuer => "the bearer token's issuer is not accepted",
            TokenError::WrongAudience => "the bearer token's audience is not accepted",
            TokenError::InvalidSubject => "the bearer token's sub is not a valid user id",
        }
    }
}

/// What a token must carry besides a valid signature.
#[derive(Debug, Clone, Default)]
pub struct Expectations<'a> {
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// The JOSE header, as a map: what matters is which names are *present* (`"crit": null` is
/// still a `crit`).
type Header = serde_json::Map<String, serde_json::Value>;

enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims this worker reads, each checked for its type (a wrong one makes the token
/// malformed; absent and `null` are `None`): read from the claims' JSON object by hand, as a
/// derived decoder would read them, without one.
struct Claims<'a> {
    sub: Option<&'a serde_json::Value>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iss: Option<String>,
    aud: Option<Audience>,
}

impl<'a> Claims<'a> {
    fn read(raw: &'a serde_json::Map<String, serde_json::Value>) -> Result<Self, TokenError> {
        use crate::json;
        use serde_json::Value;
        let field = |name, read: fn(&Value) -> Option<_>| {
            json::optional(raw, name, read).ok_or(TokenError::Malformed)
        };
        // An audience is a string or an array of strings; anything else is malformed.
        let audience = |v: &Value| match v {
            Value::String(s) => Some(Audience::One(s.clone())),
            v => json::strings(v).map(Audience::Many),
        };
        Ok(Claims {
            sub: raw.get("sub").filter(|v| !v.is_null()),
            exp: field("exp", Value::as_f64)?,
            nbf: field("nbf", Value::as_f64)?,
            iss: json::optional(raw, "iss", json::string).ok_or(TokenError::Malformed)?,
            aud: json::optional(raw, "aud", audience).ok_or(TokenError::Malformed)?,
        })
    }
}

/// `exp` and `nbf` against `now`, with the leeway.
fn check_window(exp: f64, nbf: Option<f64>, now_secs: i64) -> Result<(), TokenError> {
    let now = now_secs as f64;
    if now >= exp + LEEWAY_SECS as f64 {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| now + (LEEWAY_SECS as f64) < nbf) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// A compact JWS split into its parts, the header decoded, the signature not yet checked.
struct Parsed<'t> {
    header: Header,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t str,
    claims64: &'t str,
    signature_ok: bool,
    signature: Vec<u8>,
}

impl Parsed<'_> {
    fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(serde_json::Value::as_str)
    }
}

/// Splits and decodes a token. `alg` is judged by the caller first, then `crit`, so the error
/// for a token of a refused algorithm is always that (whatever else is wrong with it).
fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = decode_json(h64)?;
    let signature = crate::base64::decode_url_no_pad(s64);
    Ok(Parsed {
        header,
        signing_input: &token[..h64.len() + 1 + c64.len()],
        claims64: c64,
        signature_ok: signature.is_some(),
        signature: signature.unwrap_or_default(),
    })
}

/// The header rules every algorithm shares, judged after `alg`: no `crit` in any form, and a
/// signature that is valid base64url.
fn checked_header(parsed: &Parsed<'_>) -> Result<(), TokenError> {
    if parsed.header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions we do not understand must not be ignored — in any
        // form, `null` included.
        return Err(TokenError::Malformed);
    }
    if !parsed.signature_ok {
        return Err(TokenError::Malformed);
    }
    Ok(())
}

/// A token's claims once its signature verified: the subject and the window it is valid in.
#[derive(Debug, Clone)]
struct Checked {
    user: UserId,
    exp: f64,
    nbf: Option<f64>,
}

/// The claim rules every algorithm shares.
fn check_claims(
    c64: &str,
    expect: &Expectations<'_>,
    now_secs: i64,
) -> Result<Checked, TokenError> {
    let raw_claims: serde_json::Map<String, serde_json::Value> = decode_json(c64)?;
    // RFC 7519 §4.1.3: a token that names an audience is for that audience only. With none
    // configured we are nobody's audience, so a token meant for another service sharing the
    // secret (or the identity provider) is refused rather than accepted.
    if expect.audience.is_none() && raw_claims.contains_key("aud") {
        return Err(TokenError::WrongAudience);
    }
    let claims = Claims::read(&raw_claims)?;
    let exp = claims.exp.ok_or(TokenError::MissingExpiry)?;
    check_window(exp, claims.nbf, now_secs)?;
    if let Some(issuer) = expect.issuer {
        if claims.iss.as_deref() != Some(issuer) {
            return Err(TokenError::WrongIssuer);
        }
    }
    if let Some(audience) = expect.audience {
        let ok = match &claims.aud {
            Some(Audience::One(a)) => a == audience,
            Some(Audience::Many(list)) => list.iter().any(|a| a == audience),
            None => false,
        };
        if !ok {
            return Err(TokenError::WrongAudience);
        }
    }
    let user = claims
        .sub
        .and_then(serde_json::Value::as_str)
        .and_then(UserId::parse)
        .ok_or(TokenError::InvalidSubject)?;
    Ok(Checked {
        user,
        exp,
        nbf: claims.nbf,
    })
}

/// Verifies an HS256 JWT against `key` and returns its subject.
pub fn verify_jwt(
    token: &str,
    key: &[u8],
    expect: &Expectations<'_>,
    now_secs: i64,
) -> Result<UserId, TokenError> {
    verify_hs256(token, key, expect, now_secs).map(|c| c.user)
}

fn verify_hs256(
    token: &str,
    key: &[u8],
    expect: &Expectations<'_>,
    now_secs: i64,
) -> Result<Checked, TokenError> {
    hs256_checked(&parse(token)?, key, expect, now_secs)
}

fn hs256_checked(
    parsed: &Parsed<'_>,
    key: &[u8],
    expect: &Expectations<'_>,
    now_secs: i64,
) -> Result<Checked, TokenError> {
    if parsed.alg() != Some("HS256") {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    checked_header(parsed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| TokenError::BadSignature)?;
    mac.update(parsed.signing_input.as_bytes());
    mac.verify_slice(&parsed.signature)
        .map_err(|_| TokenError::BadSignature)?;
    check_claims(parsed.claims64, expect, now_secs)
}

/// The identity provider's public keys, and a way to check a signature with one.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait PublicKeys {
    /// False when no JWKS is configured: then only HS256 tokens are accepted.
    fn configured(&self) -> bool;
    /// The key `kid` names for `alg`.
    async fn key(&self, kid: &str, alg: Algorithm, now_ms: i64) -> Result<Rc<PublicKey>, KeyMiss>;
    /// Whether `signature` over `signing_input` verifies with `key` (false on any failure).
    async fn verify(&self, key: &PublicKey, signing_input: &[u8], signature: &[u8]) -> bool;
}

/// A deployment without `JWT_JWKS_URL`.
pub struct NoPublicKeys;

impl PublicKeys for NoPublicKeys {
    fn configured(&self) -> bool {
        false
    }
    async fn key(&self, _: &str, _: Algorithm, _: i64) -> Result<Rc<PublicKey>, KeyMiss> {
        Err(KeyMiss::Unknown)
    }
    async fn verify(&self, _: &PublicKey, _: &[u8], _: &[u8]) -> bool {
        false
    }
}

/// Everything a dashboard token may be verified with.
pub struct Verifiers<'a, K: PublicKeys> {
    /// `JWT_SECRET`, for HS256.
    pub secret: Option<&'a [u8]>,
    /// The JWKS, for RS256, ES256 and EdDSA.
    pub keys: &'a K,
    pub expect: Expectations<'a>,
}

/// Which secret or key verified a remembered token.
#[derive(Clone, PartialEq, Eq)]
enum Signer {
    /// SHA-256 of the HS256 secret.
    Secret([u8; 32]),
    Key {
        kid: String,
        alg: Algorithm,
        fingerprint: [u8; 32],
    },
}

/// A token verified in this isolate: what it proved, with what, and against which
/// expectations.
#[derive(Clone)]
struct Verified {
    checked: Checked,
    signer: Signer,
    issuer: Option<Box<str>>,
    audience: Option<Box<str>>,
}

/// Tokens verified in this isolate, by the token itself: a dashboard sends the same token on
/// every request, and re-checking its expectations, times and signer is all a repeat needs.
/// Looking one up hashes the token once (SipHash, well under a microsecond for a few hundred
/// bytes, where SHA-256 in wasm took several). Bounded in count and in bytes.
const MAX_VERIFIED: usize = 10_000;
const MAX_VERIFIED_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Remembered {
    by_token: crate::indexed::IndexedMap<String, Verified>,
    token_bytes: usize,
}

thread_local! {
    static VERIFIED: std::cell::RefCell<Remembered> = std::cell::RefCell::new(Remembered::default());
    /// The last HS256 secret's digest: the secret is the same on every request of an isolate,
    /// so checking a remembered token's signer costs a comparison, not a SHA-256.
    static SECRET_DIGEST: std::cell::RefCell<Option<SecretDigest>> =
        const { std::cell::RefCell::new(None) };
}

/// A secret, and its SHA-256.
type SecretDigest = (Box<[u8]>, [u8; 32]);

fn secret_digest(secret: &[u8]) -> [u8; 32] {
    SECRET_DIGEST.with(|memo| {
        if let Some((known, digest)) = &*memo.borrow() {
            if **known == *secret {
                return *digest;
            }
        }
        let digest: [u8; 32] = Sha256::digest(secret).into();
        *memo.borrow_mut() = Some((secret.into(), digest));
        digest
    })
}

/// Verifies a dashboard bearer token with whichever of `v` its `alg` calls for, and returns
/// its subject. Tokens that verified are remembered (see the module docs).
pub async fn verify_bearer<K: PublicKeys>(
    token: &str,
    v: &Verifiers<'_, K>,
    now_secs: i64,
) -> Result<UserId, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge);
    }
    let now_ms = now_secs.saturating_mul(1000);
    // Only what a repeat needs leaves the map: the expectations are compared in place.
    let remembered = VERIFIED.with(|c| {
        c.borrow()
            .by_token
            .get(token)
            .filter(|hit| {
                hit.issuer.as_deref() == v.expect.issuer
                    && hit.audience.as_deref() == v.expect.audience
            })
            .map(|hit| (hit.checked.clone(), hit.signer.clone()))
    });
    if let Some((checked, signer)) = remembered {
        let still_trusted = match &signer {
            Signer::Secret(digest) => v.secret.map(secret_digest).as_ref() == Some(digest),
            Signer::Key {
                kid,
                alg,
                fingerprint,
            } => {
                v.keys.configured()
                    && v.keys
                        .key(kid, *alg, now_ms)
                        .await
                        .is_ok_and(|k| &k.fingerprint == fingerprint)
            }
        };
        if still_trusted {
            check_window(checked.exp, checked.nbf, now_secs)?;
            return Ok(checked.user);
        }
        VERIFIED.with(|c| {
            let mut c = c.borrow_mut();
            if c.by_token.remove(token).is_some() {
                c.token_bytes = c.token_bytes.saturating_sub(token.len());
            }
        });
    }
    let (checked, signer) = verify_fresh(token, v, now_ms, now_secs).await?;
    let user = checked.user.clone();
    VERIFIED.with(|c| {
        let mut c = c.borrow_mut();
        if c.by_token.len() >= MAX_VERIFIED || c.token_bytes + token.len() > MAX_VERIFIED_BYTES {
            *c = Remembered::default();
        }
        let verified = Verified {
            checked,
            signer,
            issuer: v.expect.issuer.map(Into::into),
            audience: v.expect.audience.map(Into::into),
        };
        if c.by_token.insert(token.to_owned(), verified).is_none() {
            c.token_bytes += token.len();
        }
    });
    Ok(user)
}

async fn verify_fresh<K: PublicKeys>(
    token: &str,
    v: &Verifiers<'_, K>,
    now_ms: i64,
    now_secs: i64,
) -> Result<(Checked, Signer), TokenError> {
    let parsed = parse(token)?;
    match parsed.alg() {
        Some("HS256") => {
            let secret = v.secret.ok_or(TokenError::UnsupportedAlgorithm)?;
            let checked = hs256_checked(&parsed, secret, &v.expect, now_secs)?;
            Ok((checked, Signer::Secret(secret_digest(secret))))
        }
        alg => {
            let alg = alg
                .and_then(Algorithm::from_jose)
                .filter(|_| v.keys.configured())
                .ok_or(TokenError::UnsupportedAlgorithm)?;
            checked_header(&parsed)?;
            let kid = parsed
                .header
                .get("kid")
                .and_then(serde_json::Value::as_str)
                .filter(|k| !k.is_empty() && k.len() <= jwks::MAX_KID_LEN)
                .ok_or(TokenError::MissingKeyId)?;
            let key = v.keys.key(kid, alg, now_ms).await.map_err(|m| match m {
                KeyMiss::Unknown => TokenError::UnknownKey,
                KeyMiss::WrongAlgorithm => TokenError::WrongKeyType,
            })?;
            if parsed.signature.len() != key.signature_len()
                || !v
                    .keys
                    .verify(&key, parsed.signing_input.as_bytes(), &parsed.signature)
                    .await
            {
                return Err(TokenError::BadSignature);
            }
            let checked = check_claims(parsed.claims64, &v.expect, now_secs)?;
            Ok((
                checked,
                Signer::Key {
                    kid: key.kid.clone(),
                    alg,
                    fingerprint: key.fingerprint,
                },
            ))
        }
    }
}

/// A base64url JSON object: a token's header or claims.
fn decode_json(b64: &str) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
    let bytes = crate::base64::decode_url_no_pad(b64).ok_or(TokenError::Malformed)?;
    match crate::json::parse(&bytes) {
        Ok(serde_json::Value::Object(members)) => Ok(members),
        _ => Err(TokenError::Malformed),
    }
}

/// The token after `Bearer ` in an `Authorization` header value.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two secrets in time independent of where they differ and of their lengths.
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.ct_eq(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, sign_hs256};
    use ::base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ::base64::Engine;
    use jwks::KeyMaterial;
    use serde_json::json;
    use std::cell::{Cell, RefCell};

    const KEY: &[u8] = b"test-secret";
    const NOW: i64 = 1_800_000_000;

    fn verify(token: &str) -> Result<UserId, TokenError> {
        verify_jwt(token, KEY, &Expectations::default(), NOW)
    }

    fn forged(header: &str, claims: &serde_json::Value, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            sig
        )
    }

    #[test]
    fn a_valid_token_yields_its_subject() {
        let t = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60}), KEY);
        assert_eq!(verify(&t).map(|u| u.to_string()), Ok("ada".to_owned()));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let t = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60}), b"other");
        assert_eq!(verify(&t), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused_even_without_a_signature() {
        let t = forged(
            r#"{"alg":"none"}"#,
            &json!({"sub": "ada", "exp": NOW + 60}),
            "",
        );
        assert_eq!(verify(&t), Err(TokenError::UnsupportedAlgorithm));
    }

    #[test]
    fn algorithm_confusion_with_rs256_or_hs512_is_refused() {
        for alg in ["RS256", "HS512", "hs256", "ES256"] {
            let t = forged(
                &format!(r#"{{"alg":"{alg}"}}"#),
                &json!({"sub": "ada", "exp": NOW + 60}),
                "c2ln",
            );
            assert_eq!(verify(&t), Err(TokenError::UnsupportedAlgorithm), "{alg}");
        }
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let t = sign_hs256(&json!({"sub": "ada"}), KEY);
        assert_eq!(verify(&t), Err(TokenError::MissingExpiry));
    }

    #[test]
    fn an_expired_token_is_refused_after_the_leeway() {
        let within = sign_hs256(&json!({"sub": "ada", "exp": NOW - LEEWAY_SECS + 1}), KEY);
        let past = sign_hs256(&json!({"sub": "ada", "exp": NOW - LEEWAY_SECS}), KEY);
        assert!(verify(&within).is_ok());
        assert_eq!(verify(&past), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_before_its_nbf_is_refused() {
        let t = sign_hs256(
            &json!({"sub": "ada", "exp": NOW + 600, "nbf": NOW + 300}),
            KEY,
        );
        assert_eq!(verify(&t), Err(TokenError::NotYetValid));
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let expect = Expectations {
            issuer: Some("https://auth.example"),
            audience: Some("dashboard"),
        };
        let good = sign_hs256(
            &json!({"sub": "ada", "exp": NOW + 60, "iss": "https://auth.example", "aud": ["x", "dashboard"]}),
            KEY,
        );
        let wrong_iss = sign_hs256(
            &json!({"sub": "ada", "exp": NOW + 60, "iss": "https://evil", "aud": "dashboard"}),
            KEY,
        );
        let no_aud = sign_hs256(
            &json!({"sub": "ada", "exp": NOW + 60, "iss": "https://auth.example"}),
            KEY,
        );
        assert!(verify_jwt(&good, KEY, &expect, NOW).is_ok());
        assert_eq!(
            verify_jwt(&wrong_iss, KEY, &expect, NOW),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            verify_jwt(&no_aud, KEY, &expect, NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn a_claim_of_the_wrong_type_makes_the_token_malformed_and_null_is_absent() {
        let expect = Expectations {
            issuer: None,
            audience: Some("dashboard"),
        };
        let claims = |extra: serde_json::Value| {
            let mut c = json!({"sub": "ada", "exp": NOW + 60, "aud": "dashboard"});
            for (k, v) in extra.as_object().into_iter().flatten() {
                c[k] = v.clone();
            }
            sign_hs256(&c, KEY)
        };
        for bad in [
            json!({"exp": "soon"}),
            json!({"nbf": true}),
            json!({"iss": 1}),
            json!({"aud": 7}),
            json!({"aud": ["dashboard", 7]}),
            json!({"aud": {"a": "dashboard"}}),
        ] {
            assert_eq!(
                verify_jwt(&claims(bad.clone()), KEY, &expect, NOW),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        assert!(verify_jwt(
            &claims(json!({"nbf": null, "iss": null})),
            KEY,
            &expect,
            NOW
        )
        .is_ok());
        assert!(verify_jwt(
            &claims(json!({"aud": ["x", "dashboard"]})),
            KEY,
            &expect,
            NOW
        )
        .is_ok());
        assert_eq!(
            verify_jwt(&claims(json!({"exp": null})), KEY, &expect, NOW),
            Err(TokenError::MissingExpiry)
        );
    }

    #[test]
    fn a_subject_that_is_not_a_user_id_is_refused() {
        for sub in [json!("a:b"), json!(""), json!(42), json!(null)] {
            let t = sign_hs256(&json!({"sub": sub, "exp": NOW + 60}), KEY);
            assert_eq!(verify(&t), Err(TokenError::InvalidSubject), "{sub}");
        }
    }

    #[test]
    fn malformed_and_oversized_tokens_are_refused_before_verification() {
        assert_eq!(verify("abc"), Err(TokenError::Malformed));
        assert_eq!(verify("a.b.c.d"), Err(TokenError::Malformed));
        assert_eq!(verify("!!.??.**"), Err(TokenError::Malformed));
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_LEN + 1)),
            Err(TokenError::TooLarge)
        );
        let crit = forged(
            r#"{"alg":"HS256","crit":["x"]}"#,
            &json!({"sub": "ada", "exp": NOW + 60}),
            "",
        );
        assert_eq!(verify(&crit), Err(TokenError::Malformed));
    }

    #[test]
    fn a_null_crit_is_refused_like_any_other_crit() {
        let crit = forged(
            r#"{"alg":"HS256","crit":null}"#,
            &json!({"sub": "ada", "exp": NOW + 60}),
            "",
        );
        assert_eq!(verify(&crit), Err(TokenError::Malformed));
    }

    #[test]
    fn a_token_with_an_audience_is_refused_when_none_is_configured() {
        for aud in [json!("billing-service"), json!(["dashboard"]), json!(null)] {
            let t = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60, "aud": aud}), KEY);
            assert_eq!(verify(&t), Err(TokenError::WrongAudience), "aud {aud}");
        }
        let plain = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60}), KEY);
        assert!(verify(&plain).is_ok());
    }

    fn hs_only(key: &[u8]) -> Verifiers<'_, NoPublicKeys> {
        Verifiers {
            secret: Some(key),
            keys: &NoPublicKeys,
            expect: Expectations::default(),
        }
    }

    fn bearer<K: PublicKeys>(
        t: &str,
        v: &Verifiers<'_, K>,
        now: i64,
    ) -> Result<String, TokenError> {
        block_on(verify_bearer(t, v, now)).map(|u| u.to_string())
    }

    #[test]
    fn the_verified_token_cache_never_admits_what_verification_refuses() {
        let with_aud = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60, "aud": "x"}), KEY);
        for _ in 0..2 {
            assert_eq!(
                bearer(&with_aud, &hs_only(KEY), NOW),
                Err(TokenError::WrongAudience)
            );
        }
    }

    #[test]
    fn a_remembered_token_still_expires_and_is_tied_to_its_key() {
        let t = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60}), KEY);
        assert!(bearer(&t, &hs_only(KEY), NOW).is_ok());
        assert!(bearer(&t, &hs_only(KEY), NOW).is_ok(), "served from memory");
        assert_eq!(
            bearer(&t, &hs_only(b"another key"), NOW),
            Err(TokenError::BadSignature)
        );
        let strict = Verifiers {
            expect: Expectations {
                issuer: Some("iss"),
                audience: None,
            },
            ..hs_only(KEY)
        };
        assert_eq!(bearer(&t, &strict, NOW), Err(TokenError::WrongIssuer));
        assert_eq!(
            bearer(&t, &hs_only(KEY), NOW + 60 + LEEWAY_SECS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_remembered_token_honours_nbf_each_time() {
        let t = sign_hs256(
            &json!({"sub": "ada", "exp": NOW + 600, "nbf": NOW + 100}),
            KEY,
        );
        assert!(bearer(&t, &hs_only(KEY), NOW + 200).is_ok());
        assert_eq!(bearer(&t, &hs_only(KEY), NOW), Err(TokenError::NotYetValid));
    }

    /// The identity provider's keys, with a stand-in signature scheme (SHA-256 over the key's
    /// fingerprint and the input, stretched to the algorithm's length): these tests are about
    /// which key and which rules, while WebCrypto's real verification is exercised end to end.
    struct FakeKeys {
        set: RefCell<jwks::KeySet>,
        checks: Cell<u32>,
    }

    impl FakeKeys {
        fn from_fixture() -> Self {
            let fx: serde_json::Value = serde_json::from_str(FIXTURE).expect("json");
            let body = serde_json::to_vec(&fx["jwks"]).expect("json");
            Self {
                set: RefCell::new(jwks::parse_jwks(&body).expect("parses")),
                checks: Cell::new(0),
            }
        }

        fn key(&self, kid: &str, alg: Algorithm) -> Rc<PublicKey> {
            match self.set.borrow().find(kid, alg) {
                jwks::Lookup::Found(k) => k,
                other => panic!("{kid}: {other:?}"),
            }
        }

        fn only(&self, kids: &[&str]) {
            let fx: serde_json::Value = serde_json::from_str(FIXTURE).expect("json");
            let keys: Vec<_> = fx["jwks"]["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .filter(|k| kids.contains(&k["kid"].as_str().unwrap_or_default()))
                .cloned()
                .collect();
            let body = serde_json::to_vec(&json!({ "keys": keys })).expect("json");
            *self.set.borrow_mut() = jwks::parse_jwks(&body).expect("parses");
        }
    }

    fn fake_signature(key: &PublicKey, input: &[u8]) -> Vec<u8> {
        let block = Sha256::new()
            .chain_update(key.fingerprint)
            .chain_update(input)
            .finalize();
        block
            .iter()
            .copied()
            .cycle()
            .take(key.signature_len())
            .collect()
    }

    impl PublicKeys for FakeKeys {
        fn configured(&self) -> bool {
            true
        }
        async fn key(&self, kid: &str, alg: Algorithm, _: i64) -> Result<Rc<PublicKey>, KeyMiss> {
            match self.set.borrow().find(kid, alg) {
                jwks::Lookup::Found(k) => Ok(k),
                jwks::Lookup::WrongAlgorithm => Err(KeyMiss::WrongAlgorithm),
                jwks::Lookup::Unknown => Err(KeyMiss::Unknown),
            }
        }
        async fn verify(&self, key: &PublicKey, input: &[u8], signature: &[u8]) -> bool {
            self.checks.set(self.checks.get() + 1);
            fake_signature(key, input) == signature
        }
    }

    /// A token with this header, signed (in the stand-in scheme) by `signer`.
    fn signed_by(
        header: serde_json::Value,
        claims: serde_json::Value,
        signer: &PublicKey,
    ) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = URL_SAFE_NO_PAD.encode(fake_signature(signer, input.as_bytes()));
        format!("{input}.{sig}")
    }

    fn with_keys(keys: &FakeKeys) -> Verifiers<'_, FakeKeys> {
        Verifiers {
            secret: Some(KEY),
            keys,
            expect: Expectations::default(),
        }
    }

    const FIXTURE: &str = include_str!("../../tests/fixtures/jwks/keys.json");

    #[test]
    fn rs256_es256_and_eddsa_tokens_verify_with_the_key_their_kid_names() {
        let keys = FakeKeys::from_fixture();
        for (kid, alg) in [
            ("rsa-2048", "RS256"),
            ("rsa-4096", "RS256"),
            ("p256", "ES256"),
            ("ed25519", "EdDSA"),
        ] {
            let key = keys.key(kid, Algorithm::from_jose(alg).expect("ours"));
            let t = signed_by(
                json!({"alg": alg, "kid": kid}),
                json!({"sub": kid, "exp": NOW + 60}),
                &key,
            );
            assert_eq!(
                bearer(&t, &with_keys(&keys), NOW).as_deref(),
                Ok(kid),
                "{alg}"
            );
        }
    }

    #[test]
    fn either_the_secret_or_the_key_set_alone_is_enough() {
        let keys = FakeKeys::from_fixture();
        let ed = keys.key("ed25519", Algorithm::EdDsa);
        let asym = signed_by(
            json!({"alg": "EdDSA", "kid": "ed25519"}),
            json!({"sub": "ada", "exp": NOW + 60}),
            &ed,
        );
        let hs = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60}), KEY);
        let keys_only = Verifiers {
            secret: None,
            ..with_keys(&keys)
        };
        assert!(bearer(&asym, &keys_only, NOW).is_ok());
        assert_eq!(
            bearer(&hs, &keys_only, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        assert!(bearer(&hs, &hs_only(KEY), NOW).is_ok());
        assert_eq!(
            bearer(&asym, &hs_only(KEY), NOW),
            Err(TokenError::UnsupportedAlgorithm),
            "no JWKS configured"
        );
    }

    #[test]
    fn an_hs256_token_naming_a_public_keys_kid_is_checked_against_the_secret_only() {
        let keys = FakeKeys::from_fixture();
        // The classic confusion: HMAC keyed with the public key's own bytes.
        let KeyMaterial::Rsa { n, .. } = &keys.key("rsa-2048", Algorithm::Rs256).material.clone()
        else {
            panic!("rsa")
        };
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"rsa-2048"}"#);
        let body = URL_SAFE_NO_PAD.encode(json!({"sub": "ada", "exp": NOW + 60}).to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(n.as_bytes()).expect("any length");
        mac.update(format!("{header}.{body}").as_bytes());
        let forged = format!(
            "{header}.{body}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(
            bearer(&forged, &with_keys(&keys), NOW),
            Err(TokenError::BadSignature)
        );
        let keys_only = Verifiers {
            secret: None,
            ..with_keys(&keys)
        };
        assert_eq!(
            bearer(&forged, &keys_only, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(keys.checks.get(), 0, "no public key was ever consulted");
    }

    #[test]
    fn none_and_a_key_of_another_type_are_refused_before_any_signature_check() {
        let keys = FakeKeys::from_fixture();
        let claims = json!({"sub": "ada", "exp": NOW + 60});
        let none = forged(r#"{"alg":"none","kid":"ed25519"}"#, &claims, "");
        assert_eq!(
            bearer(&none, &with_keys(&keys), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        // RS256 against the EC key, signed in the stand-in scheme by that EC key.
        let ec = keys.key("p256", Algorithm::Es256);
        let confused = signed_by(json!({"alg": "RS256", "kid": "p256"}), claims.clone(), &ec);
        assert_eq!(
            bearer(&confused, &with_keys(&keys), NOW),
            Err(TokenError::WrongKeyType)
        );
        for alg in ["PS256", "ES384", "RS512", "rs256", "EdDSA "] {
            let t = forged(
                &format!(r#"{{"alg":"{alg}","kid":"p256"}}"#),
                &claims,
                "c2ln",
            );
            assert_eq!(
                bearer(&t, &with_keys(&keys), NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        assert_eq!(keys.checks.get(), 0);
    }

    #[test]
    fn a_token_without_a_kid_or_with_an_unknown_one_or_a_wrong_length_signature_is_refused() {
        let keys = FakeKeys::from_fixture();
        let ed = keys.key("ed25519", Algorithm::EdDsa);
        let claims = json!({"sub": "ada", "exp": NOW + 60});
        let no_kid = signed_by(json!({"alg": "EdDSA"}), claims.clone(), &ed);
        assert_eq!(
            bearer(&no_kid, &with_keys(&keys), NOW),
            Err(TokenError::MissingKeyId)
        );
        let long_kid = signed_by(
            json!({"alg": "EdDSA", "kid": "k".repeat(300)}),
            claims.clone(),
            &ed,
        );
        assert_eq!(
            bearer(&long_kid, &with_keys(&keys), NOW),
            Err(TokenError::MissingKeyId)
        );
        let unknown = signed_by(
            json!({"alg": "EdDSA", "kid": "retired"}),
            claims.clone(),
            &ed,
        );
        assert_eq!(
            bearer(&unknown, &with_keys(&keys), NOW),
            Err(TokenError::UnknownKey)
        );
        let good = signed_by(json!({"alg": "EdDSA", "kid": "ed25519"}), claims, &ed);
        let short = format!("{}A", &good[..good.len() - 8]);
        assert_eq!(
            bearer(&short, &with_keys(&keys), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            keys.checks.get(),
            0,
            "lengths are judged before the runtime is asked"
        );
        let other = keys.key("p256", Algorithm::Es256);
        let wrong = signed_by(
            json!({"alg": "EdDSA", "kid": "ed25519"}),
            json!({"sub": "ada", "exp": NOW + 60}),
            &other,
        );
        assert_eq!(
            bearer(&wrong, &with_keys(&keys), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn key_set_tokens_follow_the_same_claim_rules_as_hs256_ones() {
        let keys = FakeKeys::from_fixture();
        let rsa = keys.key("rsa-2048", Algorithm::Rs256);
        let t = |claims: serde_json::Value| {
            signed_by(json!({"alg": "RS256", "kid": "rsa-2048"}), claims, &rsa)
        };
        let v = with_keys(&keys);
        assert_eq!(
            bearer(&t(json!({"sub": "ada"})), &v, NOW),
            Err(TokenError::MissingExpiry)
        );
        assert_eq!(
            bearer(&t(json!({"sub": "ada", "exp": NOW - 60})), &v, NOW),
            Err(TokenError::Expired)
        );
        assert_eq!(
            bearer(
                &t(json!({"sub": "ada", "exp": NOW + 600, "nbf": NOW + 300})),
                &v,
                NOW
            ),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            bearer(
                &t(json!({"sub": "ada", "exp": NOW + 60, "aud": "someone"})),
                &v,
                NOW
            ),
            Err(TokenError::WrongAudience),
            "an audience with none configured"
        );
        let strict = Verifiers {
            expect: Expectations {
                issuer: Some("https://idp.example/"),
                audience: Some("dashboard"),
            },
            ..with_keys(&keys)
        };
        let good = t(
            json!({"sub": "ada", "exp": NOW + 60, "iss": "https://idp.example/", "aud": ["api", "dashboard"]}),
        );
        assert!(bearer(&good, &strict, NOW).is_ok());
        let wrong_iss = t(
            json!({"sub": "ada", "exp": NOW + 60, "iss": "https://evil.example/", "aud": "dashboard"}),
        );
        assert_eq!(
            bearer(&wrong_iss, &strict, NOW),
            Err(TokenError::WrongIssuer)
        );
        let crit = signed_by(
            json!({"alg": "RS256", "kid": "rsa-2048", "crit": ["exp"]}),
            json!({"sub": "ada", "exp": NOW + 60}),
            &rsa,
        );
        assert_eq!(bearer(&crit, &v, NOW), Err(TokenError::Malformed));
        assert_eq!(
            bearer(&t(json!({"sub": "a:b", "exp": NOW + 60})), &v, NOW),
            Err(TokenError::InvalidSubject)
        );
    }

    #[test]
    fn a_remembered_key_set_token_skips_the_signature_check_until_its_key_leaves_the_set() {
        let keys = FakeKeys::from_fixture();
        let ed = keys.key("ed25519", Algorithm::EdDsa);
        let t = signed_by(
            json!({"alg": "EdDSA", "kid": "ed25519"}),
            json!({"sub": "ada", "exp": NOW + 60}),
            &ed,
        );
        for _ in 0..5 {
            assert!(bearer(&t, &with_keys(&keys), NOW).is_ok());
        }
        assert_eq!(keys.checks.get(), 1, "verified once, then remembered");
        keys.only(&["p256"]); // the provider retired the key
        assert_eq!(
            bearer(&t, &with_keys(&keys), NOW),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            bearer(&t, &with_keys(&keys), NOW + 60 + LEEWAY_SECS),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn a_remembered_secret_token_stops_working_when_the_secret_changes_or_goes() {
        let t = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60}), KEY);
        let keys = FakeKeys::from_fixture();
        assert!(bearer(&t, &with_keys(&keys), NOW).is_ok());
        let rotated = Verifiers {
            secret: Some(&b"rotated"[..]),
            ..with_keys(&keys)
        };
        assert_eq!(bearer(&t, &rotated, NOW), Err(TokenError::BadSignature));
        let gone = Verifiers {
            secret: None,
            ..with_keys(&keys)
        };
        assert_eq!(
            bearer(&t, &gone, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn tokens_node_signed_split_into_the_signed_input_and_a_signature_of_their_keys_length() {
        let fx: serde_json::Value = serde_json::from_str(FIXTURE).expect("json");
        let keys = FakeKeys::from_fixture();
        for (kid, alg) in [
            ("rsa-2048", Algorithm::Rs256),
            ("rsa-4096", Algorithm::Rs256),
            ("p256", Algorithm::Es256),
            ("ed25519", Algorithm::EdDsa),
        ] {
            let token = fx["tokens"][kid].as_str().expect("token");
            let parsed = parse(token).expect("parses");
            assert_eq!(parsed.alg(), Some(alg.jose()));
            assert_eq!(parsed.header.get("kid").and_then(|k| k.as_str()), Some(kid));
            assert!(parsed.signature_ok);
            assert_eq!(
                parsed.signature.len(),
                keys.key(kid, alg).signature_len(),
                "{kid}"
            );
            assert_eq!(
                parsed.signing_input,
                token.rsplit_once('.').expect("dots").0
            );
            assert_eq!(
                check_claims(parsed.claims64, &Expectations::default(), 1_800_000_100)
                    .map(|c| c.user.to_string()),
                Ok("ada".to_owned())
            );
        }
    }

    #[test]
    fn bearer_tokens_are_found_whatever_the_scheme_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn admin_secrets_match_only_exactly() {
        assert!(secrets_match("tok", "tok"));
        assert!(!secrets_match("tok", "tok2"));
        assert!(!secrets_match("", "tok"));
    }
}
