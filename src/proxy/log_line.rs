//! The request fields the access log shows ([`LogLine`]).

use super::Shared;
use crate::access_log::RequestFields;
use crate::auth;
use crate::http::{Headers, RequestHead};
use crate::json_value::Value;
use crate::variables;
use std::sync::Arc;

/// The request fields the access log shows.
pub(super) struct LogLine {
    pub(super) request_line: String,
    /// The user `Authorization: Basic` claims, right password or not.
    pub(super) remote_user: Option<String>,
    /// The verified token's claims, when a `log_format` template names
    /// one.
    pub(super) jwt_claims: Option<Arc<Value>>,
    pub(super) referer: Option<String>,
    pub(super) user_agent: Option<String>,
    /// With `log_headers`: the request's fields.
    pub(super) headers: Option<Vec<(String, String)>>,
    /// Those a `log_format` template names, the main one or a pool's.
    pub(super) fields: Option<RequestFields>,
    /// Its path is one `log_skip_paths` lists.
    pub(super) quiet_path: bool,
}

impl LogLine {
    pub(super) fn raw(request_line: String) -> Self {
        LogLine {
            request_line,
            remote_user: None,
            jwt_claims: None,
            referer: None,
            user_agent: None,
            headers: None,
            fields: None,
            quiet_path: false,
        }
    }

    pub(super) fn of(head: &RequestHead, shared: &Shared) -> Self {
        let config = &shared.config;
        let headers = config.log_headers.then(|| {
            head.headers
                .iter()
                .map(|(name, value)| (name.to_string(), logged_value(name, value)))
                .collect()
        });
        LogLine {
            request_line: [head.method.as_str(), &head.target, head.version.as_str()].join(" "),
            // Taken before the request is checked or forwarded: a 401's
            // line names the user refused. No field, no allocation.
            remote_user: crate::auth::claimed_user(&head.headers),
            jwt_claims: None,
            referer: logged_field(&head.headers, "referer"),
            user_agent: logged_field(&head.headers, "user_agent"),
            headers,
            fields: (shared.log_captures.request_fields())
                .map(|names| RequestFields::take(names, &head.headers)),
            quiet_path: !config.log_skip_paths.is_empty() && {
                let target = head.path_and_query();
                let path = target.split('?').next().unwrap_or_default();
                config.log_skip_paths.matches(path)
            },
        }
    }
}

/// A request field's value as `log_headers` writes it: credentials
/// redacted (see [`auth::redacted`]).
fn logged_value(name: &str, value: &[u8]) -> String {
    let value = String::from_utf8_lossy(value);
    match auth::is_credentials_field(name) {
        true => auth::redacted(&value),
        false => value.into_owned(),
    }
}

/// The fields `$http_<name>` reads (`_` for `-`, as nginx), trimmed and
/// joined with `, `, as every other `$http_` variable's; obs-text (not
/// UTF-8) logged as U+FFFD rather than lost.
fn logged_field(headers: &Headers, name: &str) -> Option<String> {
    let named = (headers.iter_bytes()).filter(|(field, _)| variables::names_field(name, field));
    named.fold(None, |joined, (_, value)| {
        let value = value.trim_ascii();
        // Text, as nearly every value is, checked a word at a time; only
        // another is read character by character for what to replace.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        Some(match joined {
            Some(joined) => format!("{joined}, {value}"),
            None => value.into_owned(),
        })
    })
}
