//! The admin listener: `GET /` (a page for people), `GET /metrics` (Prometheus text format),
//! `GET /status` (JSON), `GET /healthz`, `PURGE /path?query` (or `/prefix*`,
//! or `/` with `Surrogate-Key`: by tag, or with `Purge-Regex`: by pattern;
//! soft with `Soft-Purge: 1`), `DELETE /cache`,
//! `GET /cache` and `GET /cache/entries` (what the cache holds), `GET /error_limit`
//! and `DELETE /error_limit/<address>` (the clients refused for their errors), and `GET`/`PUT /targets/<name>` (a target's state:
//! `ready`, `drain`, `maint`). Off unless `admin_port` is set; bound to
//! `admin_bind` (loopback by default) because it can empty the cache and
//! take targets out of rotation.
//!
//! Admin traffic is a scrape every few seconds and an occasional purge: a
//! thread per connection, one request per connection, `Connection: close`.
//!
//! # Layout
//! - `listener`: the thread that accepts, the connection limit, stopping.
//! - `connection`: one connection: read the request, check credentials, reply.
//! - `routing`: which page or action answers a method and path.
//! - `purge`: `PURGE` of a URL, a prefix, tags or a pattern, hard or soft.
//! - `listing`: `GET /cache/entries`.
//! - `targets`: `GET`/`PUT /targets/<id>`.
//! - `refused`: `GET /error_limit`, `DELETE /error_limit/<address>`.
//! - `status`: `GET /status`.
//! - `dashboard`: `GET /`, the same as a page to read in a browser.
//! - `metrics_page`: `GET /metrics`, written with `prometheus`'s pieces.
//! - here: [`Reply`], and the helpers several of them share.

mod connection;
mod dashboard;
mod listener;
mod listing;
mod metrics_page;
mod prometheus;
mod purge;
mod refused;
mod routing;
mod status;
mod targets;

pub use listener::Admin;
pub use metrics_page::metrics_text;
pub use routing::route;
pub use status::status_json;

use crate::http::RequestHead;
use crate::json;

/// An admin response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// For 405: the methods the path allows.
    pub allow: Option<&'static str>,
    /// For 401: ask for a user and password (`admin_auth_basic_user_file`).
    pub challenge: bool,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: None,
            challenge: false,
        }
    }

    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body,
            allow: None,
            challenge: false,
        }
    }

    fn not_allowed(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::text(405, "405 Method Not Allowed\n")
        }
    }
}

/// Whether the request's authority (its Host) is an IP address or
/// `localhost`, with or without a port.
fn host_is_an_address(head: &RequestHead) -> bool {
    let Some(authority) = head.authority() else {
        return true; // HTTP/1.0 without Host: no name at all
    };
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok()
}

/// Strings, comma separated.
fn push_list<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, item);
    }
}
