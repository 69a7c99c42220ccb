//! Settings read once per isolate from the Worker's vars (`wrangler.toml` `[vars]`) and
//! secrets (`wrangler secret put`), each named where the README describes what it sets.
//! Built from a lookup function so host tests need no runtime. Empty values count as unset.
//! `Debug` never prints a secret.

use std::fmt;

#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub fn for_tests(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// CORS origins allowed to call the dashboard routes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    #[default]
    None,
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn parse(raw: &str) -> Self {
        let list: Vec<String> = raw
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if list.iter().any(|s| s == "*") {
            AllowedOrigins::Any
        } else if list.is_empty() {
            AllowedOrigins::None
        } else {
            AllowedOrigins::List(list)
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::None => false,
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub jwt_secret: Option<Secret>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// The identity provider's JWKS (`JWT_JWKS_URL`): `https://`, or `http://` on loopback
    /// only (local identity servers in development and tests).
    pub jwt_jwks_url: Option<String>,
    pub admin_token: Option<Secret>,
    pub twilio_auth_token: Option<Secret>,
    pub twilio_auth_token_secondary: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub webhook_secret_secondary: Option<Secret>,
    pub retell_api_key: Option<Secret>,
    pub public_base_url: Option<String>,
    pub allowed_origins: AllowedOrigins,
    pub cache: crate::cache::policy::Policy,
    /// Settings that were present but unusable (the default was used instead); logged once.
    pub warnings: Vec<String>,
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Config {
    /// Reads every setting through `get` (a binding name → its string value).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let text = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let secret = |name: &str| text(name).map(Secret);
        let mut warnings = Vec::new();
        let cache = cache_policy(&text, &mut warnings);
        let jwt_jwks_url = text("JWT_JWKS_URL").and_then(|url| {
            if jwks_url_ok(&url) {
                Some(url)
            } else {
                warnings.push(
                    "JWT_JWKS_URL must be an https:// URL (http:// only on 127.0.0.1 or localhost); \
                     tokens signed with the identity provider's keys are refused until it is"
                        .to_owned(),
                );
                None
            }
        });
        Config {
            jwt_jwks_url,
            cache,
            warnings,
            jwt_secret: secret("JWT_SECRET"),
            jwt_issuer: text("JWT_ISSUER"),
            jwt_audience: text("JWT_AUDIENCE"),
            admin_token: secret("ADMIN_TOKEN"),
            twilio_auth_token: secret("TWILIO_AUTH_TOKEN"),
            twilio_auth_token_secondary: secret("TWILIO_AUTH_TOKEN_SECONDARY"),
            webhook_secret: secret("WEBHOOK_SECRET"),
            webhook_secret_secondary: secret("WEBHOOK_SECRET_SECONDARY"),
            retell_api_key: secret("RETELL_API_KEY"),
            public_base_url: text("PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_owned()),
            allowed_origins: text("ALLOWED_ORIGINS")
                .map(|v| AllowedOrigins::parse(&v))
                .unwrap_or_default(),
        }
    }
}

/// An `https://` URL, or `http://` to a loopback host: keys fetched in the clear from anywhere
/// else could be swapped on the way. Checked by hand (scheme, then an authority of host and
/// optional port, no user info, no spaces) rather than with a URL parser, which would bring
/// IDNA tables into the module; the runtime's `fetch` parses it fully.
fn jwks_url_ok(url: &str) -> bool {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return false;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((inner, after)) => (&authority[..inner.len() + 2], after.strip_prefix(':')),
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    if !(port_ok && host_ok) {
        return false;
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => matches!(
            host.to_ascii_lowercase().as_str(),
            "127.0.0.1" | "localhost" | "[::1]"
        ),
        _ => false,
    }
}

/// Reads the cache settings; a present but invalid value is reported and its default kept.
fn cache_policy(
    text: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> crate::cache::policy::Policy {
    let mut p = crate::cache::policy::Policy::default();
    let mut flag = |name: &str, target: &mut bool| {
        if let Some(v) = text(name) {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => *target = true,
                "false" | "0" | "no" | "off" => *target = false,
                _ => warnings.push(format!("{name}={v:?} is not true/false; using {target}")),
            }
        }
    };
    flag("CACHE_ENABLED", &mut p.enabled);
    flag("CACHE_MEMORY_ENABLED", &mut p.memory_enabled);
    flag("CACHE_KV_ENABLED", &mut p.kv_enabled);
    flag("CACHE_WARM_AFTER_INVALIDATE", &mut p.warm_after_invalidate);
    flag("CACHE_REFRESH_ON_WRITE", &mut p.refresh_on_write);
    flag("CACHE_DEBUG", &mut p.debug);
    let mut number = |name: &str, target: &mut u64, min: u64, max: u64| {
        if let Some(v) = text(name) {
            match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => *target = n,
                _ => warnings.push(format!(
                    "{name}={v:?} is not an integer in {min}..={max}; using {target}"
                )),
            }
        }
    };
    let day = 86_400;
    let mut ttls = [
        u64::from(p.ttl_recordings),
        u64::from(p.ttl_intent),
        u64::from(p.ttl_enhanced),
        u64::from(p.ttl_summary),
    ];
    number("CACHE_TTL_RECORDINGS", &mut ttls[0], 1, day);
    number("CACHE_TTL_INTENT", &mut ttls[1], 1, day);
    number("CACHE_TTL_ENHANCED", &mut ttls[2], 1, day);
    number("CACHE_TTL_SUMMARY", &mut ttls[3], 1, day);
    [
        p.ttl_recordings,
        p.ttl_intent,
        p.ttl_enhanced,
        p.ttl_summary,
    ] = ttls.map(|t| t as u32);
    number(
        "CACHE_MEMORY_MAX_BYTES",
        &mut p.memory_max_bytes,
        64 * 1024,
        96 * 1024 * 1024,
    );
    number(
        "CACHE_MEMORY_MAX_ENTRIES",
        &mut p.memory_max_entries,
        1,
        1_000_000,
    );
    let mut sync_ms = p.sync_ms as u64;
    number("CACHE_SYNC_MS", &mut sync_ms, 0, 60_000);
    p.sync_ms = sync_ms as i64;
    let mut kv_delay = u64::from(p.refresh_kv_delay_ms);
    number("CACHE_REFRESH_KV_DELAY_MS", &mut kv_delay, 0, 10_000);
    p.refresh_kv_delay_ms = kv_delay as u32;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_settings_take_effect_and_bad_ones_fall_back_with_a_warning() {
        let cfg = Config::from_lookup(|name| match name {
            "CACHE_ENABLED" => Some("false".into()),
            "CACHE_KV_ENABLED" => Some("maybe".into()),
            "CACHE_TTL_SUMMARY" => Some("60".into()),
            "CACHE_TTL_INTENT" => Some("-5".into()),
            "CACHE_MEMORY_MAX_ENTRIES" => Some("500".into()),
            _ => None,
        });
        assert!(!cfg.cache.enabled);
        assert!(cfg.cache.kv_enabled, "invalid value keeps the default");
        assert_eq!(cfg.cache.ttl_summary, 60);
        assert_eq!(cfg.cache.ttl_intent, 600);
        assert_eq!(cfg.cache.memory_max_entries, 500);
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        assert!(cfg.warnings.iter().any(|w| w.contains("CACHE_TTL_INTENT")));
    }

    #[test]
    fn empty_values_count_as_unset_and_secrets_never_print() {
        let cfg = Config::from_lookup(|name| match name {
            "JWT_SECRET" => Some("s3cr3t-value".into()),
            "ADMIN_TOKEN" => Some("   ".into()),
            "PUBLIC_BASE_URL" => Some("https://dash.example.com/".into()),
            _ => None,
        });
        assert!(cfg.jwt_secret.is_some());
        assert!(cfg.admin_token.is_none());
        assert_eq!(
            cfg.public_base_url.as_deref(),
            Some("https://dash.example.com")
        );
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }

    #[test]
    fn allowed_origins_are_a_trimmed_list_or_a_wildcard() {
        let list = AllowedOrigins::parse(" https://a.example , http://localhost:5173/ ,");
        assert!(list.allows("https://a.example"));
        assert!(list.allows("http://localhost:5173"));
        assert!(!list.allows("https://evil.example"));
        assert!(AllowedOrigins::parse("*").allows("https://anything.example"));
        assert!(!AllowedOrigins::parse("").allows("https://a.example"));
    }

    #[test]
    fn a_jwks_url_must_be_https_or_loopback_http() {
        let with = |url: &'static str| {
            Config::from_lookup(move |k| (k == "JWT_JWKS_URL").then(|| url.to_owned()))
        };
        for ok in [
            "https://tenant.auth0.com/.well-known/jwks.json",
            "https://x.supabase.co/auth/v1/.well-known/jwks.json",
            "http://127.0.0.1:8788/jwks.json",
            "http://localhost:9999/keys",
            "http://[::1]:8788/jwks.json",
            "https://idp.example:8443/jwks?tenant=x",
        ] {
            let cfg = with(ok);
            assert_eq!(cfg.jwt_jwks_url.as_deref(), Some(ok));
            assert!(cfg.warnings.is_empty());
        }
        for bad in [
            "http://idp.example/jwks.json",
            "ftp://idp.example/jwks.json",
            "not a url",
            "https://",
            "https://user:pass@idp.example/jwks.json",
            "https://idp example/jwks.json",
            "https://idp.example:99999999/jwks.json",
            "https://idp.example:/jwks.json",
            "http://127.0.0.1.evil.example/jwks.json",
            "http://localhost@evil.example/jwks.json",
        ] {
            let cfg = with(bad);
            assert_eq!(cfg.jwt_jwks_url, None, "{bad}");
            assert!(
                cfg.warnings.iter().any(|w| w.contains("JWT_JWKS_URL")),
                "{bad}"
            );
        }
    }
}
