//! What a record carries beyond what every format logs: only what a
//! format in use writes, so that a request pays for no fact no line shows.
//! The formats in use are `log_format` and each pool's own
//! (`pool.<name>.log_format`): a record is made before it is known which
//! files its line goes to, so it carries what any of them writes.

use super::Template;
use crate::config::{Config, LogFormat};
use std::sync::Arc;

/// What records carry for a configuration's formats, told once per
/// generation of the settings rather than asked of each format per request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captures {
    response_head: bool,
    upstream_fields: bool,
    tcp_info: bool,
    jwt_claims: bool,
    country: bool,
    request_body: bool,
    pool: bool,
    /// Every request field a template names, each once.
    request_fields: Option<Arc<[Box<str>]>>,
}

impl Captures {
    pub fn of(config: &Config) -> Captures {
        let templates: Vec<&Template> = (config.log_formats())
            .filter_map(|f| match f {
                LogFormat::Template(t) => Some(&**t),
                _ => None,
            })
            .collect();
        let any = |names: fn(&Template) -> bool| templates.iter().any(|t| names(t));
        let mut fields: Vec<Box<str>> = Vec::new();
        for field in templates.iter().flat_map(|t| t.request_fields().iter()) {
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }
        Captures {
            // `log_headers` writes it too (combined and JSON).
            response_head: config.log_headers || any(Template::names_sent_fields),
            upstream_fields: any(Template::names_upstream_fields),
            tcp_info: any(Template::names_tcp_info),
            jwt_claims: any(Template::names_jwt_claims),
            country: any(Template::names_country),
            request_body: any(Template::names_request_body),
            // The combined and JSON lines write it with pools defined, and
            // a pool's own file is found by it.
            pool: !config.pools.is_empty() || any(Template::names_pool),
            request_fields: (!fields.is_empty()).then(|| fields.into()),
        }
    }

    /// Whether each response head sent is kept: `log_headers` writes it,
    /// a template its `$sent_http_<name>` fields.
    pub fn response_head(&self) -> bool {
        self.response_head
    }

    /// Whether the fields of each backend's answer are kept: a template
    /// writes its `$upstream_http_<name>`.
    pub fn upstream_fields(&self) -> bool {
        self.upstream_fields
    }

    /// Whether the kernel is asked what it measured of each client
    /// connection: a template writes a `$tcpinfo_*`.
    pub fn tcp_info(&self) -> bool {
        self.tcp_info
    }

    /// Whether a verified token's claims are kept: a template writes a
    /// `$jwt_claim_<name>`.
    pub fn jwt_claims(&self) -> bool {
        self.jwt_claims
    }

    /// Whether each record carries the client's country: a template
    /// writes `$geoip_country_code`.
    pub fn country(&self) -> bool {
        self.country
    }

    /// Whether request bodies read whole are kept: a template writes
    /// `$request_body`.
    pub fn request_body(&self) -> bool {
        self.request_body
    }

    /// Whether records name the pool a request went to.
    pub fn pool(&self) -> bool {
        self.pool
    }

    /// The request fields each record must carry (see
    /// [`RequestFields::take`](super::RequestFields::take)): those the
    /// templates name, each template finding its own among them by name.
    pub fn request_fields(&self) -> Option<&Arc<[Box<str>]>> {
        self.request_fields.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loader;

    fn captures(text: &str) -> Captures {
        let config = Loader::new().file("proxy.conf", text).unwrap().build();
        Captures::of(&config.unwrap())
    }

    fn names(captures: &Captures) -> Vec<&str> {
        let fields = captures.request_fields().into_iter().flat_map(|f| f.iter());
        fields.map(|f| &**f).collect()
    }

    #[test]
    fn a_record_carries_what_the_main_format_or_a_pools_own_writes() {
        let main = "targets = 127.0.0.1:9001\nlog_format = $status \"$http_x_a\" $host\n";
        let alone = captures(main);
        assert_eq!(names(&alone), ["x_a", "host"]);
        assert!(!alone.upstream_fields() && !alone.response_head() && !alone.pool());
        let shop = "pool.shop = 127.0.0.1:9002\npool.shop.path_to_log = shop.log\n\
                    pool.shop.log_format = $http_x_b $http_x_a $upstream_http_x_up \
                    $sent_http_x_sent $tcpinfo_rtt $request_body $jwt_claim_sub\n\
                    pool.blog = 127.0.0.1:9003\npool.blog.path_to_log = blog.log\n\
                    pool.blog.log_format = json\n";
        let both = captures(&format!("{main}{shop}"));
        // Each field once, the main template's first.
        assert_eq!(names(&both), ["x_a", "host", "x_b"]);
        assert!(both.upstream_fields() && both.response_head() && both.tcp_info());
        assert!(both.request_body() && both.jwt_claims() && both.pool());
        // Without a template anywhere, nothing more than every line's.
        let plain = captures("targets = 127.0.0.1:9001\nlog_format = json\n");
        assert_eq!(plain, Captures::default());
        let heads = captures("targets = 127.0.0.1:9001\nlog_headers = true\n");
        assert!(heads.response_head() && heads.request_fields().is_none());
    }
}
