//! The route table: every path the API serves, written as `openapi.yaml` writes it, and the
//! methods it allows there. Routing and the 405 answers both come from this one table: a path
//! that matches a row is served if the row allows the method and answered 405 with the row's
//! `Allow` otherwise, so a new route cannot answer 404 to a method it lacks.

use super::Method;

/// What a request is for, once its path matched a row; the handler is chosen from this and
/// the method (see `App::route`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Health,
    Calls,
    Call,
    CallEnhanced,
    IntentSummary,
    IntentAnalysis,
    CacheStats,
    CacheKeys,
    CacheWarm,
    CachePurge,
    LiveTickets,
    Live,
    TwilioVoiceStatus,
    TwilioRecordingStatus,
    Events,
    Retell,
    AdminParked,
    AdminRequeueParked,
    AdminPhoneNumber,
}

/// One row: a path whose `{…}` segments match any one segment, and its `Allow` header.
#[derive(Debug)]
pub struct Route {
    pub id: RouteId,
    pub path: &'static str,
    /// The methods served here, as the `Allow` header lists them (`OPTIONS` on every row: the
    /// CORS preflight is answered for any path).
    pub allow: &'static str,
}

const READ: &str = "GET, HEAD, OPTIONS";
const POST: &str = "POST, OPTIONS";

pub const ROUTES: &[Route] = &[
    Route {
        id: RouteId::Health,
        path: "/api/health",
        allow: READ,
    },
    Route {
        id: RouteId::Calls,
        path: "/api/webhook-calls",
        allow: READ,
    },
    Route {
        id: RouteId::Call,
        path: "/api/webhook-calls/{callId}",
        allow: "GET, HEAD, DELETE, OPTIONS",
    },
    Route {
        id: RouteId::CallEnhanced,
        path: "/api/webhook-calls/{callId}/enhanced",
        allow: READ,
    },
    Route {
        id: RouteId::IntentSummary,
        path: "/api/intent-analysis",
        allow: READ,
    },
    Route {
        id: RouteId::IntentAnalysis,
        path: "/api/intent-analysis/{callId}",
        allow: READ,
    },
    Route {
        id: RouteId::CacheStats,
        path: "/api/cache/stats",
        allow: READ,
    },
    Route {
        id: RouteId::CacheKeys,
        path: "/api/cache/keys",
        allow: READ,
    },
    Route {
        id: RouteId::CacheWarm,
        path: "/api/cache/warm",
        allow: POST,
    },
    Route {
        id: RouteId::CachePurge,
        path: "/api/cache/purge",
        allow: POST,
    },
    Route {
        id: RouteId::LiveTickets,
        path: "/api/live/tickets",
        allow: POST,
    },
    Route {
        id: RouteId::Live,
        path: "/api/live",
        allow: READ,
    },
    Route {
        id: RouteId::TwilioVoiceStatus,
        path: "/webhooks/twilio/voice-status",
        allow: POST,
    },
    Route {
        id: RouteId::TwilioRecordingStatus,
        path: "/webhooks/twilio/recording-status",
        allow: POST,
    },
    Route {
        id: RouteId::Events,
        path: "/webhooks/events",
        allow: POST,
    },
    Route {
        id: RouteId::Retell,
        path: "/webhooks/retell",
        allow: POST,
    },
    Route {
        id: RouteId::AdminParked,
        path: "/api/admin/parked",
        allow: READ,
    },
    Route {
        id: RouteId::AdminRequeueParked,
        path: "/api/admin/parked/requeue",
        allow: POST,
    },
    Route {
        id: RouteId::AdminPhoneNumber,
        path: "/api/admin/phone-numbers/{e164}",
        allow: "PUT, DELETE, OPTIONS",
    },
];

impl Route {
    /// Whether this row serves `method` (HEAD wherever GET is).
    pub fn allows(&self, method: Method) -> bool {
        method != Method::Other && self.allow.split(", ").any(|m| m == method.as_str())
    }

    /// The value of this row's one `{…}` segment in `segments`, if it has one and they match.
    fn matches<'a>(&self, segments: &[&'a str]) -> Option<Option<&'a str>> {
        let pattern = self.path.trim_start_matches('/').split('/');
        if pattern.clone().count() != segments.len() {
            return None;
        }
        let mut param = None;
        for (want, &got) in pattern.zip(segments) {
            if want.starts_with('{') {
                param = Some(got);
            } else if want != got {
                return None;
            }
        }
        Some(param)
    }
}

/// The row `segments` (a path split at `/`, without the leading one) matches, and the value
/// of its `{…}` segment.
pub fn find<'a>(segments: &[&'a str]) -> Option<(&'static Route, Option<&'a str>)> {
    ROUTES
        .iter()
        .find_map(|route| route.matches(segments).map(|param| (route, param)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<&str> {
        path.trim_start_matches('/').split('/').collect()
    }

    #[test]
    fn every_row_is_found_by_its_own_path_and_only_that_row() {
        for route in ROUTES {
            let path = route
                .path
                .replace("{callId}", "CA123")
                .replace("{e164}", "+14155550100");
            let (found, param) = find(&segments(&path)).expect(route.path);
            assert_eq!(found.id, route.id, "{}", route.path);
            assert_eq!(param.is_some(), route.path.contains('{'), "{}", route.path);
        }
    }

    #[test]
    fn every_row_allows_options_and_head_exactly_where_it_allows_get() {
        for route in ROUTES {
            assert!(route.allows(Method::Options), "{}", route.path);
            assert_eq!(
                route.allows(Method::Get),
                route.allows(Method::Head),
                "{}",
                route.path
            );
            assert!(!route.allows(Method::Other), "{}", route.path);
        }
    }

    #[test]
    fn a_path_segment_longer_or_shorter_than_a_row_matches_no_row() {
        for path in [
            "/api",
            "/api/webhook-calls/CA1/enhanced/more",
            "/api/cache",
            "/webhooks/twilio",
            "/api/admin/phone-numbers",
        ] {
            assert!(find(&segments(path)).is_none(), "{path}");
        }
    }

    /// The methods `openapi.yaml` documents under `path`, upper-case.
    fn documented_methods(spec: &str, path: &str) -> Option<Vec<String>> {
        let start = spec.find(&format!("\n  {path}:\n"))? + path.len() + 5;
        let methods = spec[start..]
            .lines()
            .take_while(|line| line.is_empty() || line.starts_with("   "))
            .filter_map(|line| line.strip_prefix("    ")?.strip_suffix(':'))
            .filter(|key| !key.starts_with(' '))
            .filter(|key| ["get", "post", "put", "delete", "patch"].contains(key))
            .map(str::to_uppercase)
            .collect();
        Some(methods)
    }

    #[test]
    fn every_row_is_a_path_openapi_yaml_documents_with_the_same_methods() {
        let spec = include_str!("../../openapi.yaml");
        for route in ROUTES {
            let mut documented = documented_methods(spec, route.path)
                .unwrap_or_else(|| panic!("{} is served but not in openapi.yaml", route.path));
            if documented.iter().any(|m| m == "GET") {
                documented.push("HEAD".into());
            }
            documented.push("OPTIONS".into());
            let mut allowed: Vec<String> = route.allow.split(", ").map(Into::into).collect();
            documented.sort();
            allowed.sort();
            assert_eq!(allowed, documented, "{}", route.path);
        }
    }
}
