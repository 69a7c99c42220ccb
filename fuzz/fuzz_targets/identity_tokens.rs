//! The identity provider's inputs: JWKS bodies (from the provider, or shelved in KV) and
//! tokens checked against a key set. Nothing may panic; a parsed set holds only keys within
//! the bounds; a token is accepted only under one of the accepted algorithms with a key of
//! that algorithm.
#![no_main]

use call_dashboard_worker::auth::jwks::{parse_jwks, Algorithm, KeySet, Lookup, PublicKey};
use call_dashboard_worker::auth::keyring::KeyMiss;
use call_dashboard_worker::auth::{verify_bearer, Expectations, PublicKeys, Verifiers};
use libfuzzer_sys::fuzz_target;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A key set and a stand-in verifier that accepts a signature whose first byte is even: the
/// fuzzer reaches the claim rules without forging real signatures.
struct Keys(KeySet);

impl PublicKeys for Keys {
    fn configured(&self) -> bool {
        true
    }
    async fn key(&self, kid: &str, alg: Algorithm, _: i64) -> Result<Rc<PublicKey>, KeyMiss> {
        match self.0.find(kid, alg) {
            Lookup::Found(k) => Ok(k),
            Lookup::WrongAlgorithm => Err(KeyMiss::WrongAlgorithm),
            Lookup::Unknown => Err(KeyMiss::Unknown),
        }
    }
    async fn verify(&self, key: &PublicKey, _: &[u8], signature: &[u8]) -> bool {
        assert_eq!(signature.len(), key.signature_len());
        signature.first().is_some_and(|b| b % 2 == 0)
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

const SEED_SET: &str = include_str!("../../tests/fixtures/jwks/keys.json");

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = parse_jwks(data) {
        assert!(!set.is_empty() && set.len() <= call_dashboard_worker::auth::jwks::MAX_KEYS);
        for key in set.keys() {
            assert!(!key.kid.is_empty() && key.kid.len() <= call_dashboard_worker::auth::jwks::MAX_KID_LEN);
            if key.alg == Algorithm::Rs256 {
                assert!((256..=512).contains(&key.signature_len()));
            }
            assert!(matches!(set.find(&key.kid, key.alg), Lookup::Found(_)));
        }
    }
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let fixture: serde_json::Value = serde_json::from_str(SEED_SET).expect("fixture");
    let body = serde_json::to_vec(&fixture["jwks"]).expect("json");
    let keys = Keys(parse_jwks(&body).expect("fixture set"));
    let v = Verifiers {
        secret: Some(b"fuzz-secret"),
        keys: &keys,
        expect: Expectations::default(),
    };
    if block_on(verify_bearer(token, &v, 1_800_000_100)).is_ok() {
        let alg = token.split('.').next().and_then(|h| {
            use base64::Engine;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok()?;
            let header: serde_json::Value = serde_json::from_slice(&raw).ok()?;
            header.get("alg")?.as_str().map(str::to_owned)
        });
        assert!(matches!(alg.as_deref(), Some("HS256" | "RS256" | "ES256" | "EdDSA")), "{alg:?}");
    }
});
