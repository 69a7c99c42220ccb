//! JSON Web Key Sets (RFC 7517) as identity providers publish them: parsed within bounds, and
//! reduced to the public signing keys this API can check — RSA (RS256, 2048 to 4096 bits),
//! P-256 (ES256) and Ed25519 (EdDSA). Everything else in a set (encryption keys, other curves,
//! keys without a `kid`, keys whose `alg` disagrees with their type) is skipped, not fatal: a
//! provider may publish keys for other consumers beside ours.
//!
//! Key material stays in its base64url JWK form, checked for size here, because that is the
//! form the runtime's WebCrypto `importKey("jwk", …)` takes.

use sha2::{Digest, Sha256};
use std::rc::Rc;

/// A JWKS body larger than this is refused unparsed (providers publish a few KB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// A set listing more keys than this is refused (providers list two to five).
pub const MAX_KEYS: usize = 32;
/// A `kid` longer than this is neither stored nor looked up.
pub const MAX_KID_LEN: usize = 256;
/// RSA moduli accepted, in bits: under 2048 is breakable, over 4096 is a cost to whoever asks.
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 4096;

/// The asymmetric JWS algorithms accepted (RFC 7518 §3.3, §3.4; RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl Algorithm {
    /// The algorithm a JOSE `alg` names, if it is one of ours. Exact and case-sensitive.
    pub fn from_jose(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub fn jose(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// A public key's material, base64url as in its JWK, sizes already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    Rsa { n: String, e: String },
    P256 { x: String, y: String },
    Ed25519 { x: String },
}

/// One usable signing key from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub alg: Algorithm,
    pub material: KeyMaterial,
    /// SHA-256 over the algorithm, kid and material: names this exact key, so a token verified
    /// with it is trusted again only while the set still holds the same key under that kid.
    pub fingerprint: [u8; 32],
}

impl PublicKey {
    /// The signature length this key's algorithm produces, in bytes: a JWS signature of any
    /// other length is refused before the runtime is asked.
    pub fn signature_len(&self) -> usize {
        match &self.material {
            KeyMaterial::Rsa { n, .. } => modulus_bytes(n),
            KeyMaterial::P256 { .. } | KeyMaterial::Ed25519 { .. } => 64,
        }
    }
}

/// The modulus length in bytes (the RS256 signature length) of a checked base64url modulus.
fn modulus_bytes(n: &str) -> usize {
    let raw = crate::base64::decode_url_no_pad(n).unwrap_or_default();
    let leading = raw.iter().take_while(|b| **b == 0).count();
    raw.len().saturating_sub(leading)
}

/// Why a key set was refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksError {
    TooLarge,
    NotAKeySet,
    TooManyKeys,
    NoUsableKey,
}

impl JwksError {
    pub fn describe(self) -> &'static str {
        match self {
            JwksError::TooLarge => "the JWKS body is larger than 64 KiB",
            JwksError::NotAKeySet => "the JWKS body is not a JSON object with a keys array",
            JwksError::TooManyKeys => "the JWKS lists more than 32 keys",
            JwksError::NoUsableKey => {
                "the JWKS holds no RS256, ES256 or EdDSA signing key with a kid"
            }
        }
    }
}

/// The usable keys of one JWKS, and how many listed keys were skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySet {
    keys: Vec<Rc<PublicKey>>,
    pub skipped: usize,
}

/// What looking a token's `kid` up in a set found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Rc<PublicKey>),
    /// The kid is there, but only for another algorithm: algorithm confusion, never a refetch.
    WrongAlgorithm,
    Unknown,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.iter().map(|k| k.as_ref())
    }

    /// The key named `kid` for `alg`. A set may list one kid under several algorithms (RFC 7517
    /// §4.5 only asks that kids differ within a key type); the token's alg picks among them.
    pub fn find(&self, kid: &str, alg: Algorithm) -> Lookup {
        let mut named = false;
        for key in self.keys.iter().filter(|k| k.kid == kid) {
            if key.alg == alg {
                return Lookup::Found(Rc::clone(key));
            }
            named = true;
        }
        if named {
            Lookup::WrongAlgorithm
        } else {
            Lookup::Unknown
        }
    }

    /// True when the set holds exactly this key (same kid, algorithm and material).
    pub fn holds(&self, fingerprint: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| &k.fingerprint == fingerprint)
    }
}

/// A listed key's members, each `None` when absent or `null`; a member of another type than
/// its own makes the key unreadable (skipped), as a derived decoder would.
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl RawJwk {
    fn read(value: &serde_json::Value) -> Option<Self> {
        use crate::json;
        let o = value.as_object()?;
        let member = |name| json::optional(o, name, json::string);
        Some(RawJwk {
            kty: member("kty")?,
            kid: member("kid")?,
            alg: member("alg")?,
            use_: member("use")?,
            key_ops: json::optional(o, "key_ops", json::strings)?,
            crv: member("crv")?,
            n: member("n")?,
            e: member("e")?,
            x: member("x")?,
            y: member("y")?,
        })
    }
}

/// Parses a JWKS body into the keys this API can verify with.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let doc = crate::json::parse(body).map_err(|_| JwksError::NotAKeySet)?;
    let keys = doc
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or(JwksError::NotAKeySet)?;
    if keys.len() > MAX_KEYS {
        return Err(JwksError::TooManyKeys);
    }
    let mut set = KeySet::default();
    for value in keys {
        match RawJwk::read(value).and_then(usable_key) {
            Some(key) if !set.keys.iter().any(|k| k.fingerprint == key.fingerprint) => {
                set.keys.push(Rc::new(key));
            }
            Some(_) => {} // the same key listed twice
            None => set.skipped += 1,
        }
    }
    if set.keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(set)
}

/// A listed key as a [`PublicKey`], or `None` when it is not one we may verify with.
fn usable_key(jwk: RawJwk) -> Option<PublicKey> {
    let kid = jwk
        .kid
        .filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN)?;
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return None;
    }
    let (alg, material) = match (jwk.kty.as_deref()?, jwk.crv.as_deref()) {
        ("RSA", _) => {
            let (n, e) = (jwk.n?, jwk.e?);
            rsa_sizes_ok(&n, &e).then_some(())?;
            (Algorithm::Rs256, KeyMaterial::Rsa { n, e })
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (jwk.x?, jwk.y?);
            (decoded_len(&x) == Some(32) && decoded_len(&y) == Some(32)).then_some(())?;
            (Algorithm::Es256, KeyMaterial::P256 { x, y })
        }
        ("OKP", Some("Ed25519")) => {
            let x = jwk.x?;
            (decoded_len(&x) == Some(32)).then_some(())?;
            (Algorithm::EdDsa, KeyMaterial::Ed25519 { x })
        }
        _ => return None,
    };
    // A key that names an algorithm is for that algorithm only (RFC 7517 §4.4).
    if jwk.alg.as_deref().is_some_and(|a| a != alg.jose()) {
        return None;
    }
    let fingerprint = fingerprint(&kid, alg, &material);
    Some(PublicKey {
        kid,
        alg,
        material,
        fingerprint,
    })
}

fn decoded_len(b64: &str) -> Option<usize> {
    crate::base64::decode_url_no_pad(b64).map(|v| v.len())
}

/// RSA sizes: the modulus 2048–4096 bits, the public exponent odd, at least 3, at most 32 bits.
fn rsa_sizes_ok(n: &str, e: &str) -> bool {
    let (Some(n), Some(e)) = (
        crate::base64::decode_url_no_pad(n),
        crate::base64::decode_url_no_pad(e),
    ) else {
        return false;
    };
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let bits = match n.first() {
        Some(top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    };
    let e = &e[e.iter().take_while(|b| **b == 0).count()..];
    let exponent = e.iter().try_fold(0u64, |acc, b| {
        acc.checked_mul(256)?.checked_add(u64::from(*b))
    });
    (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits)
        && e.len() <= 4
        && exponent.is_some_and(|x| x >= 3 && x % 2 == 1)
}

fn fingerprint(kid: &str, alg: Algorithm, material: &KeyMaterial) -> [u8; 32] {
    let mut h = Sha256::new();
    let parts: Vec<&str> = match material {
        KeyMaterial::Rsa { n, e } => vec![alg.jose(), kid, n, e],
        KeyMaterial::P256 { x, y } => vec![alg.jose(), kid, x, y],
        KeyMaterial::Ed25519 { x } => vec![alg.jose(), kid, x],
    };
    for part in parts {
        h.update((part.len() as u32).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Key sets exported by node's `crypto` (`KeyObject.export({ format: "jwk" })`): see
    /// tests/fixtures/jwks/README.md for the command that made them.
    const FIXTURE: &str = include_str!("../../tests/fixtures/jwks/keys.json");

    fn fixture() -> serde_json::Value {
        serde_json::from_str(FIXTURE).expect("fixture is JSON")
    }

    fn public_set() -> serde_json::Value {
        fixture()["jwks"].clone()
    }

    fn body(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(v).expect("serializes")
    }

    #[test]
    fn a_providers_key_set_yields_its_rsa_p256_and_ed25519_keys_by_kid() {
        let set = parse_jwks(&body(&public_set())).expect("parses");
        assert_eq!(set.len(), 4, "rsa-2048, rsa-4096, p256, ed25519");
        for (kid, alg) in [
            ("rsa-2048", Algorithm::Rs256),
            ("rsa-4096", Algorithm::Rs256),
            ("p256", Algorithm::Es256),
            ("ed25519", Algorithm::EdDsa),
        ] {
            match set.find(kid, alg) {
                Lookup::Found(k) => assert_eq!((k.kid.as_str(), k.alg), (kid, alg)),
                other => panic!("{kid}: {other:?}"),
            }
        }
        let Lookup::Found(rsa) = set.find("rsa-2048", Algorithm::Rs256) else {
            panic!("rsa-2048")
        };
        assert_eq!(rsa.signature_len(), 256);
        let Lookup::Found(big) = set.find("rsa-4096", Algorithm::Rs256) else {
            panic!("rsa-4096")
        };
        assert_eq!(big.signature_len(), 512);
    }

    #[test]
    fn a_kid_asked_for_with_another_algorithm_is_confusion_not_an_unknown_key() {
        let set = parse_jwks(&body(&public_set())).expect("parses");
        assert_eq!(set.find("p256", Algorithm::Rs256), Lookup::WrongAlgorithm);
        assert_eq!(
            set.find("rsa-2048", Algorithm::EdDsa),
            Lookup::WrongAlgorithm
        );
        assert_eq!(set.find("nobody", Algorithm::Rs256), Lookup::Unknown);
    }

    #[test]
    fn keys_too_small_or_too_large_or_with_a_bad_exponent_are_skipped() {
        let fx = fixture();
        let mut keys = vec![fx["rsa1024"].clone(), fx["rsa8192"].clone()];
        let mut even = fx["jwks"]["keys"][0].clone();
        even["e"] = json!("AQAA"); // 65536: even
        even["kid"] = json!("even");
        keys.push(even);
        let mut one = fx["jwks"]["keys"][0].clone();
        one["e"] = json!("AQ"); // 1
        one["kid"] = json!("one");
        keys.push(one);
        let mut short_ec = fx["jwks"]["keys"][2].clone();
        short_ec["x"] = json!("AAAA");
        short_ec["kid"] = json!("short");
        keys.push(short_ec);
        let only_bad = json!({ "keys": keys.clone() });
        assert_eq!(parse_jwks(&body(&only_bad)), Err(JwksError::NoUsableKey));
        keys.push(fx["jwks"]["keys"][3].clone());
        let set = parse_jwks(&body(&json!({ "keys": keys }))).expect("one good key");
        assert_eq!((set.len(), set.skipped), (1, 5));
    }

    #[test]
    fn encryption_keys_other_curves_kidless_keys_and_mislabelled_keys_are_skipped() {
        let good = public_set()["keys"][2].clone();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut k = good.clone();
            f(&mut k);
            k
        };
        let keys = vec![
            with(&|k| k["use"] = json!("enc")),
            with(&|k| k["key_ops"] = json!(["encrypt"])),
            with(&|k| k["crv"] = json!("P-384")),
            with(&|k| {
                k.as_object_mut().map(|o| o.remove("kid"));
            }),
            with(&|k| k["kid"] = json!("")),
            with(&|k| k["kid"] = json!("k".repeat(MAX_KID_LEN + 1))),
            with(&|k| k["alg"] = json!("RS256")),
            with(&|k| k["kty"] = json!("oct")),
            json!("not an object"),
            json!({ "kty": "EC", "crv": "P-256", "kid": "no-coordinates" }),
            // A member of another type than its own: unreadable, so skipped.
            with(&|k| k["kid"] = json!(5)),
            with(&|k| k["key_ops"] = json!("verify")),
            with(&|k| k["key_ops"] = json!(["verify", 1])),
            with(&|k| k["x"] = json!(null)),
        ];
        let n = keys.len();
        let mut all = keys;
        all.push(with(&|k| {
            k["alg"] = json!("ES256");
            k["use"] = json!("sig");
            k["key_ops"] = json!(["verify"]);
        }));
        let set = parse_jwks(&body(&json!({ "keys": all }))).expect("the labelled key");
        assert_eq!((set.len(), set.skipped), (1, n));
    }

    #[test]
    fn oversized_bodies_garbage_and_long_lists_are_refused_whole() {
        assert_eq!(
            parse_jwks(&vec![b' '; MAX_JWKS_BYTES + 1]),
            Err(JwksError::TooLarge)
        );
        for garbage in [
            &b"<html>oops</html>"[..],
            b"{}",
            b"[]",
            b"{\"keys\":{}}",
            b"",
        ] {
            assert_eq!(parse_jwks(garbage), Err(JwksError::NotAKeySet));
        }
        let key = public_set()["keys"][3].clone();
        let many = json!({ "keys": vec![key; MAX_KEYS + 1] });
        assert_eq!(parse_jwks(&body(&many)), Err(JwksError::TooManyKeys));
    }

    #[test]
    fn one_key_listed_twice_is_kept_once_and_fingerprints_name_exact_keys() {
        let key = public_set()["keys"][3].clone();
        let set = parse_jwks(&body(&json!({ "keys": [key.clone(), key.clone()] }))).expect("ok");
        assert_eq!(set.len(), 1);
        let mut renamed = key;
        renamed["kid"] = json!("ed25519-next");
        let both = parse_jwks(&body(
            &json!({ "keys": [public_set()["keys"][3], renamed] }),
        ))
        .expect("ok");
        let fps: Vec<[u8; 32]> = both.keys().map(|k| k.fingerprint).collect();
        assert_ne!(
            fps[0], fps[1],
            "same material under another kid is another key"
        );
        assert!(set.holds(&fps[0]) && !set.holds(&fps[1]));
    }
}
