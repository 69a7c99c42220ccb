//! Settings read once per isolate from the Worker's vars and secrets (API.md's configuration
//! table). Built from a lookup function so host tests need no runtime. Empty values count as
//! unset. `Debug` never prints a secret.

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
    pub admin_token: Option<Secret>,
    pub twilio_auth_token: Option<Secret>,
    pub twilio_auth_token_secondary: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub webhook_secret_secondary: Option<Secret>,
    pub retell_api_key: Option<Secret>,
    pub public_base_url: Option<String>,
    pub allowed_origins: AllowedOrigins,
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
        Config {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
