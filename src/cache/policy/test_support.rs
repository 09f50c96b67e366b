//! Builders the policy tests of several files share: settings, a request,
//! a response, and the freshness `storable` gives.

use super::{storable, CacheValid, IgnoredHeaders, Settings, Targeting};
use crate::http::{Headers, RequestHead, ResponseHead, Version};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(super) fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(3600),
        cache_unlabeled: false,
        stale_if_error: Duration::from_secs(60),
        stale_while_revalidate: Duration::ZERO,
        targeting: Targeting::default(),
        cache_valid: Arc::default(),
        ignored: IgnoredHeaders::default(),
        never_stored: Arc::default(),
        rendered_fields: Arc::default(),
        credential_fields: Arc::default(),
        gunzip: false,
        vary: Default::default(),
    }
}

pub(super) fn get(headers: &[(&str, &str)]) -> RequestHead {
    let mut h = Headers::new();
    h.push("Host", "Example.com");
    for (n, v) in headers {
        h.push(*n, *v);
    }
    RequestHead {
        method: "GET".into(),
        target: "/a?b".into(),
        version: Version::Http11,
        headers: h,
    }
}

pub(super) fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
    let mut r = ResponseHead::new(status);
    for (n, v) in headers {
        r.headers.push(*n, *v);
    }
    r
}

pub(super) fn fresh_for(
    req: &[(&str, &str)],
    status: u16,
    resp: &[(&str, &str)],
) -> Option<Duration> {
    fresh_with(&settings(), req, status, resp)
}

/// The freshness `storable` gives a response under `settings`.
pub(super) fn fresh_with(
    settings: &Settings,
    req: &[(&str, &str)],
    status: u16,
    resp: &[(&str, &str)],
) -> Option<Duration> {
    let lifetime = storable(
        &get(req),
        &response(status, resp),
        SystemTime::now(),
        settings,
    );
    lifetime.map(|l| l.fresh)
}

/// The test settings with `cache_valid` set to `rules`.
pub(super) fn with_cache_valid(rules: &str) -> Settings {
    Settings {
        cache_valid: Arc::new(CacheValid::parse(rules).unwrap()),
        ..settings()
    }
}
