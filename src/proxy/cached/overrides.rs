//! Method override fields (`X-HTTP-Method-Override` and kin), which
//! make a GET something else to some backends.

use crate::cache::policy;
use crate::http::headers::read_alike;
use crate::http::RequestHead;

/// Fields some frameworks (Play 1, and any that reads them whatever the
/// method) take a request for the method they name by: a `GET` with
/// `X-HTTP-Method-Override: DELETE` is a `DELETE` to them, answered with
/// a 404 or 405 perhaps, which stored under the `GET`'s key would be what
/// everyone gets ("cache-poisoned denial of service"). Such a request is
/// not the `GET` the key stands for.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The values of the [`METHOD_OVERRIDES`] fields `head` carries, in
/// either spelling (with `underscores_in_headers`, `X_HTTP_Method` reaches
/// a CGI backend as `X-HTTP-Method`).
fn method_overrides(head: &RequestHead) -> impl Iterator<Item = &[u8]> {
    (head.headers.iter_bytes())
        .filter(|(name, _)| (METHOD_OVERRIDES.iter()).any(|m| read_alike(m.as_bytes(), name)))
        .map(|(_, value)| value)
}

/// Whether `head` carries a method override.
pub(super) fn overrides_method(head: &RequestHead) -> bool {
    method_overrides(head).next().is_some()
}

/// Whether `head` carries a method override that names a method other
/// than a safe one (any case, as frameworks read it): a `GET` that says
/// `X-HTTP-Method-Override: GET` is a `GET` to every backend, and
/// invalidates nothing (RFC 9111 §4.4), or any client could empty the
/// cache of any page.
pub(in crate::proxy) fn overrides_to_unsafe(head: &RequestHead) -> bool {
    method_overrides(head).any(|value| {
        let method = String::from_utf8_lossy(value.trim_ascii()).to_ascii_uppercase();
        policy::is_unsafe(&method)
    })
}
