//! Bearer authentication: HS256 dashboard JWTs and the operator's admin token.
//!
//! [`verify_jwt`] is a pure function of the token, the key, the expectations and `now`. It
//! accepts only `alg: HS256` (so `none` and RS/HS confusion are refused before any key is
//! touched), requires `exp`, honours `nbf`, checks `iss`/`aud` when configured — and refuses a
//! token carrying `aud` when no audience is configured — refuses any `crit`, and compares the
//! MAC in constant time. Written here rather than pulled from a JWT crate because the policy is
//! the point: one algorithm, mandatory expiry, no header-selected keys.

use crate::domain::UserId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Tokens longer than this are refused unparsed: no legitimate dashboard token comes close.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    TooLarge,
    Malformed,
    UnsupportedAlgorithm,
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
            TokenError::UnsupportedAlgorithm => "the bearer token must be signed with HS256",
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

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<serde_json::Value>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iss: Option<String>,
    aud: Option<Audience>,
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

/// Verifies an HS256 JWT and returns its subject.
pub fn verify_jwt(
    token: &str,
    key: &[u8],
    expect: &Expectations<'_>,
    now_secs: i64,
) -> Result<UserId, TokenError> {
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
    if header.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions we do not understand must not be ignored — in any
        // form, `null` included.
        return Err(TokenError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| TokenError::BadSignature)?;
    mac.update(h64.as_bytes());
    mac.update(b".");
    mac.update(c64.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;

    let raw_claims: serde_json::Map<String, serde_json::Value> = decode_json(c64)?;
    // RFC 7519 §4.1.3: a token that names an audience is for that audience only. With none
    // configured we are nobody's audience, so a token meant for another service sharing the
    // secret is refused rather than accepted.
    if expect.audience.is_none() && raw_claims.contains_key("aud") {
        return Err(TokenError::WrongAudience);
    }
    let claims: Claims = serde_json::from_value(serde_json::Value::Object(raw_claims))
        .map_err(|_| TokenError::Malformed)?;
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
    claims
        .sub
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(UserId::parse)
        .ok_or(TokenError::InvalidSubject)
}

/// A token that verified: its subject and the time window it is valid in.
#[derive(Clone)]
struct Verified {
    user: UserId,
    exp: f64,
    nbf: Option<f64>,
}

/// Tokens verified in this isolate, by (key, expectations, token): a dashboard sends the same
/// token on every request, and re-checking its times is all a repeat needs. Bounded.
const MAX_VERIFIED: usize = 10_000;

thread_local! {
    static VERIFIED: std::cell::RefCell<std::collections::HashMap<String, Verified>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// [`verify_jwt`], remembering tokens that verified so a repeat skips the MAC and the JSON.
/// Expiry and `nbf` are checked against `now` every time.
pub fn verify_jwt_cached(
    token: &str,
    key: &[u8],
    expect: &Expectations<'_>,
    now_secs: i64,
) -> Result<UserId, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge);
    }
    let mut cache_key = Vec::with_capacity(key.len() + token.len() + 64);
    for part in [
        key,
        expect.issuer.unwrap_or("").as_bytes(),
        expect.audience.unwrap_or("").as_bytes(),
        token.as_bytes(),
    ] {
        cache_key.extend_from_slice(&(part.len() as u32).to_le_bytes());
        cache_key.extend_from_slice(part);
    }
    let cache_key = hex::encode(Sha256::digest(&cache_key));
    if let Some(v) = VERIFIED.with(|c| c.borrow().get(&cache_key).cloned()) {
        check_window(v.exp, v.nbf, now_secs)?;
        return Ok(v.user);
    }
    let user = verify_jwt(token, key, expect, now_secs)?;
    if let Ok(claims) = token
        .split('.')
        .nth(1)
        .ok_or(TokenError::Malformed)
        .and_then(decode_json::<Claims>)
    {
        if let Some(exp) = claims.exp {
            VERIFIED.with(|c| {
                let mut c = c.borrow_mut();
                if c.len() >= MAX_VERIFIED {
                    c.clear();
                }
                c.insert(
                    cache_key,
                    Verified {
                        user: user.clone(),
                        exp,
                        nbf: claims.nbf,
                    },
                );
            });
        }
    }
    Ok(user)
}

fn decode_json<T: for<'de> Deserialize<'de>>(b64: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
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

/// Signs claims as an HS256 JWT; used by tests and the dev-token helper.
pub fn sign_hs256(claims: &serde_json::Value, key: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{body}");
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC accepts keys of any length; unreachable
    };
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn the_verified_token_cache_never_admits_what_verification_refuses() {
        let with_aud = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60, "aud": "x"}), KEY);
        let expect = Expectations::default();
        for _ in 0..2 {
            assert_eq!(
                verify_jwt_cached(&with_aud, KEY, &expect, NOW),
                Err(TokenError::WrongAudience)
            );
        }
    }

    #[test]
    fn a_remembered_token_still_expires_and_is_tied_to_its_key() {
        let t = sign_hs256(&json!({"sub": "ada", "exp": NOW + 60}), KEY);
        let e = Expectations::default();
        assert!(verify_jwt_cached(&t, KEY, &e, NOW).is_ok());
        assert!(
            verify_jwt_cached(&t, KEY, &e, NOW).is_ok(),
            "served from memory"
        );
        assert_eq!(
            verify_jwt_cached(&t, b"another key", &e, NOW),
            Err(TokenError::BadSignature)
        );
        let strict = Expectations {
            issuer: Some("iss"),
            audience: None,
        };
        assert_eq!(
            verify_jwt_cached(&t, KEY, &strict, NOW),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            verify_jwt_cached(&t, KEY, &e, NOW + 60 + LEEWAY_SECS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_remembered_token_honours_nbf_each_time() {
        let t = sign_hs256(
            &json!({"sub": "ada", "exp": NOW + 600, "nbf": NOW + 100}),
            KEY,
        );
        let e = Expectations::default();
        assert!(verify_jwt_cached(&t, KEY, &e, NOW + 200).is_ok());
        assert_eq!(
            verify_jwt_cached(&t, KEY, &e, NOW),
            Err(TokenError::NotYetValid)
        );
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
