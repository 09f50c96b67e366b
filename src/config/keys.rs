//! Every key proxy.conf understands: its name, its default (as text,
//! parsed like any other value so defaults cannot drift from the parser),
//! a one-line summary for whoever reads the table (the README's says
//! more), and how its value is parsed into the [`Config`].

use super::values::*;
use super::{
    Balance, Config, FieldFamily, LeastTimeMeasure, LogFormat, PoolRequest, UnresolvedTargets,
};
use crate::auth::jwt_keys::JwtKeys;
use crate::auth::jwt_require::Required;
use crate::cache::policy::{BypassCookies, CacheValid, CacheVary, IgnoredHeaders, IgnoredParams};
use crate::error_pages::ErrorPages;
use crate::field_value::FieldValue;
use crate::patterns::PathPrefixes;
use crate::ratelimit::Rate;
use crate::upstream::hash_on::HashOn;
use crate::upstream::retry_on::RetryOnStatus;
use std::sync::Arc;

/// Below this, `resolve_interval` would have the system resolver asked
/// for every name many times a second, for answers that live seconds.
const MIN_RESOLVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `0` is off; any other interval is at least [`MIN_RESOLVE_INTERVAL`].
fn parse_resolve_interval(v: &str) -> Result<Option<std::time::Duration>, String> {
    match parse_duration(v)? {
        d if d.is_zero() => Ok(None),
        d if d < MIN_RESOLVE_INTERVAL => Err(format!(
            "`{v}` is too short: at least 1s (every name is looked up each interval), or 0 for off"
        )),
        d => Ok(Some(d)),
    }
}

/// `sticky_cookie_max_idle` and `_max_life`, in whole seconds, as the
/// cookie's dates count them; empty or zero is no limit.
fn parse_cookie_lifetime(v: &str) -> Result<Option<u64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    match parse_duration(v)? {
        d if d.is_zero() => Ok(None),
        d if d.as_secs() == 0 => Err(format!(
            "`{v}` is under a second, which the cookie's dates do not count: at least 1s, or 0 \
             for no limit"
        )),
        d => Ok(Some(d.as_secs())),
    }
}

/// `hash_balance_factor`: a percentage of at least 100 (under it, no
/// target could take its share), or empty or 0 for none.
fn parse_hash_balance_factor(v: &str) -> Result<Option<u32>, String> {
    match optional(v, |v| parse_number(v, 0..=100_000))? {
        None | Some(0) => Ok(None),
        Some(f) if f < 100 => Err(format!(
            "`{v}` is under 100: every target would be over its bound (150 lets one take half as \
             much again as the average), or 0 for none"
        )),
        Some(f) => Ok(Some(f)),
    }
}

/// `geoip_database`: the file read whole, now (at start-up and at each
/// reload, so that a weekly `geoipupdate` is taken); empty is none.
/// `brotli_comp_level`: up to [`crate::gzip::MAX_BROTLI_QUALITY`], past
/// which an encoder's memory is too much for a response compressed as it
/// is relayed.
fn brotli_quality(v: &str) -> Result<u32, String> {
    let most = crate::gzip::MAX_BROTLI_QUALITY;
    match parse_number(v, 0..=11)? {
        n if n > most => Err(format!(
            "{n} is above {most}: from 7 on a Brotli encoder holds 8 to 28 MiB for each \
             response it compresses, where 6 holds under 2 MiB (ngx_brotli's 11 is for files \
             compressed ahead: a `files` route sends their .br copies)"
        )),
        n => Ok(n),
    }
}

fn optional_geoip(v: &str) -> Result<Option<Arc<crate::geoip::GeoIp>>, String> {
    match v {
        "" => Ok(None),
        path => match crate::geoip::GeoIp::read(std::path::Path::new(path)) {
            Ok(db) => Ok(Some(Arc::new(db))),
            Err(e) => Err(format!("{}: {e}", super::printable(path))),
        },
    }
}

pub(super) type Apply = fn(&mut Config, &str) -> Result<(), String>;

/// One configuration key.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    pub(super) apply: Apply,
}

/// The keys whose values are secrets, which listings (`inverso check`,
/// pasted into tickets and chats) say are set, not what they are.
pub const SECRET_KEYS: [&str; 3] = ["acme_dns_key", "acme_eab_hmac_key", "secure_link_secret"];

/// Every key proxy.conf understands.
pub const KEYS: &[Key] = &[
    Key {
        name: "port",
        default: "8080",
        help: "listening port",
        apply: |c, v| parse_number(v, 0..=65535).map(|n| c.port = n as u16),
    },
    Key {
        name: "bind",
        default: "0.0.0.0",
        help: "listening address",
        apply: |c, v| {
            v.parse()
                .map(|a| c.bind = a)
                .map_err(|_| format!("`{v}` is not an IP address"))
        },
    },
    // After `bind`, the address of those written as a port alone.
    Key {
        name: "listen",
        default: "",
        help: "more addresses plain HTTP is served on as on `port` (nginx's further `listen` \
               lines, HAProxy's `bind`s), comma separated PORT (on `bind`), ADDR:PORT or \
               [IPv6]:PORT; needs a restart; empty = `bind:port` alone",
        apply: |c, v| super::listeners::parse_listen(v, c.bind).map(|l| c.listen = l),
    },
    // Before `targets`, whose `srv:` names are looked up as it is read.
    Key {
        name: "resolver",
        default: "",
        help: "the DNS server targets written srv:NAME are looked up at, <ip>[:<port>] (port \
               53 by default; Consul's is 8600); empty = the first nameserver of \
               /etc/resolv.conf",
        apply: |c, v| parse_resolver(v).map(|r| c.resolver = r),
    },
    // Before `targets`, which reads it as its names are looked up.
    Key {
        name: "unresolved_targets",
        default: "refuse",
        help: "what a start or reload does with a target written as a name (host:port or \
               srv:NAME) that does not resolve: refuse (the configuration is refused), or wait \
               (it is kept with no address, with a warning, and looked up again every \
               resolve_interval, which it needs, until it does; HAProxy's init-addr none); \
               under either, a reload keeps the running addresses of a name that does not \
               resolve then (HAProxy's init-addr last)",
        apply: |c, v| UnresolvedTargets::parse(v).map(|u| c.unresolved_targets = u),
    },
    Key {
        name: "targets",
        default: "",
        help: "backends, comma separated host:port, unix:PATH or srv:NAME (DNS SRV records: \
               addresses and ports) with optional weight=N, \
               max_conns=N, backup, down, max_fails=N, fail_timeout=D, tls, tls_name=NAME, \
               send_proxy, send_proxy_v2, check_port=N, agent_port=N (agent_addr=IP, \
               agent_inter=D, agent_send=TEXT)",
        apply: |c, v| {
            let (targets, unresolved) =
                parse_targets(v, c.resolver, c.unresolved_targets, &c.last_addresses)?;
            (c.targets, c.unresolved) = (targets, unresolved);
            Ok(())
        },
    },
    Key {
        name: "resolve_interval",
        default: "",
        help: "the longest targets written as names keep their addresses without being \
               resolved again while the proxy runs: host:port names every interval, srv:NAME \
               at its records' TTL, at least 1s and at most this (a changed address takes \
               effect as a reload would); empty or 0 = only at start-up and reload",
        apply: |c, v| optional(v, parse_resolve_interval).map(|d| c.resolve_interval = d.flatten()),
    },
    Key {
        name: "cache_size",
        default: "64MiB",
        help: "cache capacity in bytes; 0 disables the cache",
        apply: |c, v| parse_size(v).map(|n| c.cache_size = n),
    },
    Key {
        name: "cache_disk_dir",
        default: "",
        help: "directory that keeps the responses evicted from memory, one file each, and \
               gives them back on a hit (nginx's proxy_cache_path); empty = memory only",
        apply: |c, v| {
            c.cache_disk_dir = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "cache_disk_size",
        default: "1GiB",
        help: "bytes of files cache_disk_dir keeps at most (nginx's max_size)",
        apply: |c, v| parse_size(v).map(|n| c.cache_disk_size = n),
    },
    Key {
        name: "cache",
        default: "true",
        help: "answer requests from the cache and store their responses (with cache_size > 0); \
               `false` for a pool's, as nginx's proxy_cache off in a location",
        apply: |c, v| parse_bool(v).map(|b| c.cache = b),
    },
    Key {
        name: "ttl",
        default: "1h",
        help: "the longest a response stays fresh in the cache",
        apply: |c, v| parse_duration(v).map(|d| c.ttl = d),
    },
    Key {
        name: "unit_time",
        default: "5s",
        help: "interval of the timer thread: expire entries, write the snapshot",
        apply: |c, v| parse_positive_duration(v).map(|d| c.unit_time = d),
    },
    Key {
        name: "connection_timeout",
        default: "30s",
        help: "idle (unless keepalive_timeout is set), read and write timeout for client \
               sockets (and backend ones, unless backend_timeout is set)",
        apply: |c, v| parse_positive_duration(v).map(|d| c.connection_timeout = d),
    },
    Key {
        name: "keepalive_timeout",
        default: "",
        help: "how long a client connection may sit idle between requests; empty = \
               connection_timeout",
        apply: |c, v| optional(v, parse_positive_duration).map(|d| c.keepalive_timeout = d),
    },
    Key {
        name: "connect_timeout",
        default: "",
        help: "longest opening a backend connection may take; empty = connection_timeout",
        apply: |c, v| optional(v, parse_positive_duration).map(|d| c.connect_timeout = d),
    },
    Key {
        name: "queue_timeout",
        default: "",
        help: "longest a request may wait for a free slot when its targets are at their \
               max_conns; then 503; empty = connect_timeout",
        apply: |c, v| optional(v, parse_positive_duration).map(|d| c.queue_timeout = d),
    },
    Key {
        name: "max_queue",
        default: "",
        help: "most requests waiting at once for a free slot when their targets are at their \
               max_conns; one more is answered 503 at once; 0: none waits; empty = no limit",
        apply: |c, v| {
            optional(v, |v| parse_number(v, 0..=1_000_000)).map(|n| c.max_queue = n.map(|n| n as usize))
        },
    },
    Key {
        name: "backend_timeout",
        default: "",
        help: "longest a backend may keep the proxy waiting: for the response head, on each read \
               of its body and each write of the request; then 504; empty = connection_timeout",
        apply: |c, v| optional(v, parse_positive_duration).map(|d| c.backend_timeout = d),
    },
    Key {
        name: "tunnel_timeout",
        default: "1h",
        help: "how long an upgraded (WebSocket) connection may carry nothing either way before \
               it is closed",
        apply: |c, v| parse_positive_duration(v).map(|d| c.tunnel_timeout = d),
    },
    Key {
        name: "path_to_persistence",
        default: "cache.bin",
        help: "cache snapshot file; empty = no persistence",
        apply: |c, v| {
            c.path_to_persistence = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "path_to_log",
        default: "",
        help: "file that receives the same log lines as stdout; empty = none",
        apply: |c, v| {
            c.path_to_log = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "pid_file",
        default: "",
        help: "file the process writes its ID to once it listens, and removes when it stops, \
               as nginx's pid: for init scripts, logrotate and `inverso signal`; a change waits \
               for a restart; empty = none",
        apply: |c, v| {
            c.pid_file = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "error_pages",
        default: "",
        help: "directory of <status>.html bodies for the proxy's own errors (502.html, 503.html, \
               ...), read at start-up and reload; empty = plain-text bodies",
        apply: |c, v| {
            ErrorPages::load(v)
                .map(|pages| c.error_pages = pages)
                .map_err(|e| e.to_string())
        },
    },
    Key {
        name: "intercept_errors",
        default: "false",
        help: "a backend's answer with a 4xx or 5xx status that error_pages has a page for goes \
               to the client as that page, its own body and fields dropped, as nginx's \
               proxy_intercept_errors; such answers are not stored",
        apply: |c, v| parse_bool(v).map(|b| c.intercept_errors = b),
    },
    Key {
        name: "pass_trailers",
        default: "false",
        help: "true: the trailer fields of a backend's chunked response (sent after its \
               body: a checksum, Server-Timing) go on to the client, as nginx's \
               proxy_pass_trailers and HAProxy's way, and a client's `TE: trailers` and the \
               trailer fields of its chunked upload to the backend; fields that frame, route, \
               authenticate or describe the content stay behind (RFC 9110 §6.5.1)",
        apply: |c, v| parse_bool(v).map(|b| c.pass_trailers = b),
    },
    Key {
        name: "fastcgi_root",
        default: "",
        help: "the directory a `fastcgi` target's scripts are under: DOCUMENT_ROOT, and \
               SCRIPT_FILENAME is it and the request's path (nginx's `root` with \
               $document_root$fastcgi_script_name; HAProxy's fcgi-app `docroot`), as the \
               FastCGI server sees it (it need not exist here); an absolute path",
        apply: |c, v| parse_fastcgi_root(v).map(|root| c.fastcgi.root = root),
    },
    Key {
        name: "fastcgi_index",
        default: "",
        help: "the script a path ending in / names (index.php), as nginx's fastcgi_index; \
               empty = none",
        apply: |c, v| parse_fastcgi_index(v).map(|index| c.fastcgi.index = index),
    },
    Key {
        name: "fastcgi_script",
        default: "",
        help: "the one script every request runs, whatever its path (a front controller: \
               /index.php), as nginx's try_files ... /index.php; REQUEST_URI keeps the \
               request's; empty = the script the path names",
        apply: |c, v| parse_fastcgi_script(v).map(|script| c.fastcgi.script = script),
    },
    Key {
        name: "fastcgi_split_path_info",
        default: "",
        help: "a regular expression with two groups that splits the path into SCRIPT_NAME and \
               PATH_INFO (^(.+\\.php)(/.*)$), as nginx's fastcgi_split_path_info; empty = the \
               whole path is the script's",
        apply: |c, v| parse_split_path_info(v).map(|re| c.fastcgi.split_path_info = re),
    },
    Key {
        name: "fastcgi_keep_conn",
        default: "false",
        help: "true: a FastCGI server is asked to keep each connection for the next request \
               (FCGI_KEEP_CONN), as nginx's fastcgi_keep_conn; PHP-FPM then gives each kept \
               connection a child of its own: set the targets' max_conns below its \
               pm.max_children; false: a connection per request",
        apply: |c, v| parse_bool(v).map(|b| c.fastcgi.keep_conn = b),
    },
    Key {
        name: "fastcgi_params",
        default: "",
        help: "more variables a FastCGI server is sent, NAME=value, comma-separated \
               (APP_ENV=production, HTTPS=on), as nginx's fastcgi_param; one of a name the \
               proxy sends replaces it, and NAME= takes it out",
        apply: |c, v| parse_fastcgi_params(v).map(|params| c.fastcgi.params = params),
    },
    Key {
        name: "max_connections",
        default: "10000",
        help: "most client connections served at once; more get 503",
        apply: |c, v| parse_number(v, 1..=1_000_000).map(|n| c.max_connections = n as usize),
    },
    Key {
        name: "max_connections_per_client",
        default: "0",
        help: "connections one client address may hold at once; more get 503; 0 = no limit",
        apply: |c, v| {
            parse_number(v, 0..=1_000_000).map(|n| c.max_connections_per_client = n as usize)
        },
    },
    Key {
        name: "upstream_keepalive",
        default: "128",
        help: "idle keep-alive connections kept per target; 0 = close after each request",
        apply: |c, v| parse_number(v, 0..=100_000).map(|n| c.upstream_keepalive = n as usize),
    },
    Key {
        name: "upstream_keepalive_requests",
        default: "1000",
        help: "requests one connection to a backend carries before it is closed (nginx's \
               upstream keepalive_requests, HAProxy's max-reuse); 0 = no limit",
        apply: |c, v| {
            parse_number(v, 0..=1_000_000_000)
                .map(|n| c.upstream_keepalive_requests = (n > 0).then_some(n))
        },
    },
    Key {
        name: "upstream_keepalive_time",
        default: "1h",
        help: "longest a connection to a backend is kept open for more requests, counted from \
               its opening (nginx's upstream keepalive_time); 0 = no limit",
        apply: |c, v| {
            parse_duration(v).map(|d| c.upstream_keepalive_time = (!d.is_zero()).then_some(d))
        },
    },
    Key {
        name: "max_object_size",
        default: "",
        help: "largest response body stored in the cache; empty = cache_size / 8",
        apply: |c, v| optional(v, parse_size).map(|n| c.max_object_size = n),
    },
    Key {
        name: "cache_unlabeled",
        default: "false",
        help: "cache responses that carry no freshness information for ttl",
        apply: |c, v| parse_bool(v).map(|b| c.cache_unlabeled = b),
    },
    Key {
        name: "cache_valid",
        default: "",
        help: "lifetimes by status for responses that say nothing of their freshness, as nginx's \
               proxy_cache_valid: `200 301 302 10m, 404 1m, any 30s` (capped by ttl); empty = none",
        apply: |c, v| CacheValid::parse(v).map(|r| c.cache_valid = Arc::new(r)),
    },
    Key {
        name: "cache_ignore_headers",
        default: "",
        help: "response fields the cache does not read when deciding whether and how long to \
               store, as nginx's proxy_ignore_headers: Cache-Control, Expires, Set-Cookie, Vary, \
               X-Accel-Expires, Surrogate-Control (micro-caching: `Cache-Control, Expires, \
               Set-Cookie` with cache_valid = 200 1s); clients still get them; empty = none",
        apply: |c, v| IgnoredHeaders::parse(v).map(|i| c.cache_ignore_headers = i),
    },
    Key {
        name: "stale_if_error",
        default: "1h",
        help: "how long an expired entry may be served when no backend answers",
        apply: |c, v| parse_duration(v).map(|d| c.stale_if_error = d),
    },
    Key {
        name: "stale_while_revalidate",
        default: "0",
        help: "how long an expired entry may be served while one request revalidates it, for \
               responses that do not say (nginx's proxy_cache_use_stale updating); 0 = only when \
               they say",
        apply: |c, v| parse_duration(v).map(|d| c.stale_while_revalidate = d),
    },
    Key {
        name: "surrogate_id",
        default: "inverso",
        help: "the name the cache gives itself in Surrogate-Capability and answers to in targeted \
               Surrogate-Control directives, which then go before Cache-Control; empty = \
               Surrogate-Control is neither read nor removed",
        apply: |c, v| optional(v, parse_device_token).map(|id| c.surrogate_id = id),
    },
    Key {
        name: "x_accel_expires",
        default: "true",
        help: "read nginx's X-Accel-Expires from backends: a lifetime for the cache alone, before \
               Cache-Control; removed from responses",
        apply: |c, v| parse_bool(v).map(|b| c.x_accel_expires = b),
    },
    Key {
        name: "surrogate_keys",
        default: "true",
        help: "read Surrogate-Key from backends: the tags a response is stored with, for a \
               PURGE by tag on the admin listener (Fastly's surrogate keys); removed from \
               responses. false = passed through, for a CDN in front that reads it",
        apply: |c, v| parse_bool(v).map(|b| c.surrogate_keys = b),
    },
    Key {
        name: "targeted_cache_control",
        default: "",
        help: "targeted cache-control fields (RFC 9213) read before Surrogate-Control and \
               Cache-Control, the first one present and valid winning: CDN-Cache-Control, or a \
               name of your own ending in -Cache-Control (removed from responses; \
               CDN-Cache-Control is passed on); empty = none",
        apply: |c, v| parse_targeted_fields(v).map(|f| c.targeted_cache_control = f),
    },
    Key {
        name: "ignore_client_cache_control",
        default: "false",
        help: "answer GET and HEAD from the cache whatever their Cache-Control and Pragma say \
               (a browser's reload, no-cache, max-age=0), as nginx and Varnish do; those fields \
               are then not sent to backends either",
        apply: |c, v| parse_bool(v).map(|b| c.ignore_client_cache_control = b),
    },
    Key {
        name: "cache_status",
        default: "",
        help: "the cache's name in an RFC 9211 Cache-Status field on every response with the cache \
               on (`inverso; hit; ttl=42`, `inverso; fwd=uri-miss; fwd-status=200`), beside \
               X-Cache; empty = not written",
        apply: |c, v| optional(v, parse_cache_name).map(|n| c.cache_status = n),
    },
    Key {
        name: "cache_min_uses",
        default: "1",
        help: "requests for a URL before its response is stored (nginx's proxy_cache_min_uses): \
               URLs asked for once do not push out the ones asked for all the time",
        apply: |c, v| parse_number(v, 1..=1_000_000).map(|n| c.cache_min_uses = n),
    },
    Key {
        name: "cache_bypass_cookies",
        default: "",
        help: "cookie names (a trailing * matches a prefix; a lone * any cookie) whose requests \
               are neither answered from the cache nor stored, as nginx's proxy_cache_bypass and \
               proxy_no_cache on $cookie_: `wordpress_logged_in_*, wp-postpass_*`; empty = none",
        apply: |c, v| BypassCookies::parse(v).map(|b| c.cache_bypass_cookies = b),
    },
    Key {
        name: "cache_vary",
        default: "",
        help: "cookies and request fields every stored response is keyed on besides its own \
               Vary, as nginx's proxy_cache_key with $cookie_lang added: `cookie:lang, \
               cookie:currency, header:X-Device`; at most 8; empty = none",
        apply: |c, v| CacheVary::parse(v).map(|n| c.cache_vary = n),
    },
    Key {
        name: "cache_key_ignore_params",
        default: "",
        help: "query parameters left out of the cache key (a trailing * matches a prefix), \
               as Varnish's and nginx's recipes for tracking parameters: `utm_*, gclid, \
               fbclid`; backends still get the query as sent; empty = none",
        apply: |c, v| IgnoredParams::parse(v).map(|p| c.cache_key_ignore_params = p),
    },
    Key {
        name: "balance",
        default: "round_robin",
        help: "round_robin, weighted_round_robin, least_conn, least_time, ip_hash, uri_hash, \
               hash or random_two",
        apply: |c, v| Balance::parse(v).map(|b| c.balance = b),
    },
    Key {
        name: "hash_on",
        default: "",
        help: "what balance = hash hashes: header:<Name>, cookie:<name> or query:<name>; \
               requests without it go round robin; empty = none (set with balance = hash only)",
        apply: |c, v| optional(v, HashOn::parse).map(|h| c.hash_on = h),
    },
    Key {
        name: "least_time_measure",
        default: "header",
        help: "what balance = least_time times each answer by: header (to the response head) \
               or last_byte (to the response's end, for backends whose answers differ most in \
               how long their bodies take); last_byte with balance = least_time only",
        apply: |c, v| LeastTimeMeasure::parse(v).map(|m| c.least_time_measure = m),
    },
    Key {
        name: "hash_balance_factor",
        default: "",
        help: "under ip_hash, uri_hash and hash, a target with more requests in flight than this \
               percentage of the average (by weight) is passed over for the next on the ring, \
               as HAProxy's hash-balance-factor (150: half as much again); at least 100; empty \
               or 0 = keys go to their target however busy",
        apply: |c, v| parse_hash_balance_factor(v).map(|f| c.hash_balance_factor = f),
    },
    Key {
        name: "max_fails",
        default: "1",
        help: "failures within fail_timeout that take a target out of rotation; 0 = never \
               (a target's own max_fails=N overrides it)",
        apply: |c, v| parse_max_fails(v).map(|n| c.max_fails = n),
    },
    Key {
        name: "fail_timeout",
        default: "10s",
        help: "window for counting max_fails, and how long a failed target stays out \
               (a target's own fail_timeout=D overrides it)",
        apply: |c, v| parse_fail_timeout(v).map(|d| c.fail_timeout = d),
    },
    Key {
        name: "retries",
        default: "",
        help: "other targets tried when one fails; empty = every other target",
        apply: |c, v| optional(v, |v| parse_number(v, 0..=1000)).map(|n| c.retries = n),
    },
    Key {
        name: "retry_timeout",
        default: "0",
        help: "how long after the first try a failed request may still go on to another \
               target, as nginx's proxy_next_upstream_timeout: bounds the wait of a request \
               whose targets time out one after another; 0 = no limit",
        apply: |c, v| parse_duration(v).map(|d| c.retry_timeout = d),
    },
    Key {
        name: "retry_on_status",
        default: "",
        help: "response statuses that send an idempotent request with a buffered body on to \
               another target, as HAProxy's retry-on (e.g. `502, 503, 504`; every 5xx, and 401, \
               403, 404, 408, 425, 429); a listed 5xx counts toward max_fails; empty = none",
        apply: |c, v| RetryOnStatus::parse(v).map(|s| c.retry_on_status = s),
    },
    Key {
        name: "slow_start",
        default: "0s",
        help: "how long a target back in rotation (after failing, or set ready again through the \
               admin listener) takes to get its whole share of requests, growing from none, as \
               HAProxy's slowstart (not with ip_hash, uri_hash or hash); 0 = at once",
        apply: |c, v| parse_duration(v).map(|d| c.slow_start = d),
    },
    Key {
        name: "health_check_path",
        default: "",
        help: "path probed with GET on every target; empty = no active checks (but \
               health_check_tcp's)",
        apply: |c, v| {
            if !v.is_empty() && !v.starts_with('/') {
                return Err(format!("`{v}` must be a path starting with /"));
            }
            // What inverso itself would accept as a request-target: a probe
            // the backend must refuse as malformed tests nothing.
            if crate::http::head::check_target_bytes(v.as_bytes()).is_err() {
                return Err(format!(
                    "`{}` is not a valid request path (spaces, control or non-ASCII characters, a bad %-escape, a #fragment)",
                    v.escape_debug()
                ));
            }
            c.health_check_path = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    Key {
        name: "health_check_method",
        default: "GET",
        help: "the probes' method: GET, HEAD (for a backend that logs or renders every GET; \
               not with health_check_expect_body) or OPTIONS (HAProxy's bare option httpchk)",
        apply: |c, v| {
            c.health_check_method = match v {
                "GET" => "GET",
                "HEAD" => "HEAD",
                "OPTIONS" => "OPTIONS",
                _ => {
                    return Err(format!(
                        "`{}`: GET, HEAD or OPTIONS (in capitals, as methods are written)",
                        v.escape_debug()
                    ))
                }
            };
            Ok(())
        },
    },
    Key {
        name: "health_check_tcp",
        default: "false",
        help: "probe every target by connecting (to a unix: target's socket too) and closing \
               at once, nothing sent, as HAProxy's plain check: for backends with no health \
               endpoint; not with health_check_path",
        apply: |c, v| parse_bool(v).map(|b| c.health_check_tcp = b),
    },
    Key {
        name: "health_check_udp",
        default: "false",
        help: "probe every target by sending health_check_send as a datagram and waiting for \
               one back (holding health_check_expect, when set), as nginx Plus's \
               `health_check udp`: for the targets of a udp stream (DNS, syslog, RADIUS); not \
               with health_check_path or health_check_tcp",
        apply: |c, v| parse_bool(v).map(|b| c.health_check_udp = b),
    },
    Key {
        name: "health_check_send",
        default: "",
        help: "what a probe sends: once connected under health_check_tcp (HAProxy's tcp-check \
               send: PING\\r\\n to Redis), or as its datagram under health_check_udp; text, \
               \\r \\n \\t, \\xHH for any byte, \\\\ for a backslash; at most 1232 bytes; \
               empty = nothing sent",
        apply: |c, v| optional(v, super::values::escaped::parse).map(|b| c.health_check_send = b),
    },
    Key {
        name: "health_check_expect",
        default: "",
        help: "what the reply to a probe under health_check_tcp or health_check_udp must hold \
               (HAProxy's tcp-check expect string: +PONG, role:master, a banner's 220), \
               written as health_check_send is; empty = any reply, or, by connecting, none",
        apply: |c, v| optional(v, super::values::escaped::parse).map(|b| c.health_check_expect = b),
    },
    Key {
        name: "health_check_conversation",
        default: "",
        help: "under health_check_tcp, a probe's exchange in steps, as HAProxy's tcp-check \
               rules: `expect 220 | send EHLO inverso.check\\r\\n | expect 250 | send \
               QUIT\\r\\n`; each expect reads what came since the last send; texts written \
               as health_check_send is (a | is \\x7c); 1 to 16 steps; not beside \
               health_check_send or health_check_expect; empty = none",
        apply: |c, v| {
            optional(v, super::values::conversation::parse)
                .map(|steps| c.health_check_conversation = steps)
        },
    },
    Key {
        name: "health_check_host",
        default: "",
        help: "Host the probes send (a backend that checks Host answers 400 to an address); \
               empty = the target as written in targets",
        apply: |c, v| optional(v, parse_host).map(|h| c.health_check_host = h),
    },
    Key {
        name: "health_check_port",
        default: "",
        help: "port the probes go to on each target's address, in the clear and without a \
               PROXY header, as HAProxy's check port and nginx Plus's health_check port=: a \
               health endpoint on a management port; empty = each target's own port",
        apply: |c, v| optional(v, |v| parse_number(v, 1..=u16::MAX)).map(|p| c.health_check_port = p),
    },
    Key {
        name: "health_check_expect_status",
        default: "",
        help: "statuses a probe must get, comma separated, each one or a range (`200`, \
               `200-299, 301`), as HAProxy's http-check expect status; empty = any 2xx or 3xx",
        apply: |c, v| parse_status_ranges(v).map(|r| c.health_check_expect_status = r.into()),
    },
    Key {
        name: "health_check_expect_body",
        default: "",
        help: "text a probe's body must hold (in its first 64 KiB), as HAProxy's http-check \
               expect string; empty = the body is not read",
        apply: |c, v| parse_expected_body(v).map(|b| c.health_check_expect_body = b),
    },
    Key {
        name: "health_check_disable_on_404",
        default: "false",
        help: "true: a target whose probe is answered 404 stays up but is given no new \
               request (clients a sticky_cookie ties to it still come), until a probe passes \
               again, as HAProxy's http-check disable-on-404: an application about to stop \
               answers its health path 404 and is drained",
        apply: |c, v| parse_bool(v).map(|b| c.health_check_disable_on_404 = b),
    },
    Key {
        name: "health_check_interval",
        default: "5s",
        help: "time between two probes of a target",
        apply: |c, v| parse_positive_duration(v).map(|d| c.health_check_interval = d),
    },
    Key {
        name: "health_check_fast_interval",
        default: "",
        help: "time between two probes of a target on its way down (a probe failed, fewer than \
               health_check_fall in a row) or up (a probe passed, fewer than health_check_rise), \
               as HAProxy's fastinter; empty = health_check_interval",
        apply: |c, v| {
            optional(v, parse_positive_duration).map(|d| c.health_check_fast_interval = d)
        },
    },
    Key {
        name: "health_check_down_interval",
        default: "",
        help: "time between two probes of a target that is down, as HAProxy's downinter; empty \
               = health_check_interval",
        apply: |c, v| {
            optional(v, parse_positive_duration).map(|d| c.health_check_down_interval = d)
        },
    },
    Key {
        name: "health_check_timeout",
        default: "",
        help: "longest a whole probe may take, connecting (within connect_timeout) and reading \
               the reply, as HAProxy's timeout check; empty = the smaller of backend_timeout \
               and health_check_interval",
        apply: |c, v| optional(v, parse_positive_duration).map(|d| c.health_check_timeout = d),
    },
    Key {
        name: "health_check_rise",
        default: "2",
        help: "good probes in a row that bring a target back",
        apply: |c, v| parse_number(v, 1..=1000).map(|n| c.health_check_rise = n as u32),
    },
    Key {
        name: "health_check_fall",
        default: "3",
        help: "failed probes in a row that take a target out",
        apply: |c, v| parse_number(v, 1..=1000).map(|n| c.health_check_fall = n as u32),
    },
    Key {
        name: "shutdown_timeout",
        default: "10s",
        help: "on SIGINT/SIGTERM, how long requests in flight may take to finish",
        apply: |c, v| parse_duration(v).map(|d| c.shutdown_timeout = d),
    },
    Key {
        name: "worker_scheduling",
        default: "normal",
        help: "`batch` runs connection threads under SCHED_BATCH (a woken thread does not preempt the running one): no measurable gain since workers yield, a longer tail at high concurrency",
        apply: |c, v| {
            c.batch_scheduling = match v {
                "normal" => false,
                "batch" => true,
                other => return Err(format!("`{other}` is not `normal` or `batch`")),
            };
            Ok(())
        },
    },
    Key {
        name: "worker_priority",
        default: "",
        help: "nice value (-20..=19) of connection threads, as nginx's worker_priority; below 0 needs CAP_SYS_NICE or RLIMIT_NICE; needs a restart; empty = the process's own",
        apply: |c, v| optional(v, |v| parse_number(v, -20..=19)).map(|n| c.worker_priority = n),
    },
    Key {
        name: "defer_accept",
        default: "true",
        help: "accept a connection once its first bytes have arrived (Linux TCP_DEFER_ACCEPT, nginx's `listen ... deferred`): one wake-up per new connection, not two; a client that says nothing holds no thread for its first second",
        apply: |c, v| parse_bool(v).map(|b| c.defer_accept = b),
    },
    Key {
        name: "reuse_port",
        default: "false",
        help: "bind the listeners with SO_REUSEPORT (nginx's `listen ... reuseport`), so a new inverso can start on the same port and the old one be stopped without refusing a connection; needs a restart",
        apply: |c, v| parse_bool(v).map(|b| c.reuse_port = b),
    },
    Key {
        name: "tls_port",
        default: "",
        help: "port that takes HTTPS: TLS 1.2 and 1.3 with the certificates of \
               tls_certificates, on `bind`; empty = off",
        apply: |c, v| optional_port(v).map(|port| c.tls_port = port),
    },
    Key {
        name: "tls_certificates",
        default: "",
        help: "comma separated PEM files, each a certificate chain and its private key, or \
               the chain with ` key=<file>` naming the key's, and ` ocsp=<file>` its OCSP \
               response to staple (else <chain>.ocsp when there is one), a key neither in \
               the chain's file nor named read from <chain>.key, else <name>.key for a \
               <name>.crt; or directories of such files (those ending in .pem or .crt, by \
               name); a client gets the first valid for the name it asks (SNI), else the \
               first; read again on reload",
        apply: |c, v| {
            let (files, served) = parse_certificates(v)?;
            c.tls_certificates = files;
            c.tls_served = served;
            Ok(())
        },
    },
    Key {
        name: "acme_domains",
        default: "",
        help: "host names of the certificates inverso gets from acme_directory (Let's Encrypt) \
               itself, a certificate's names comma separated, `;` between certificates; proves \
               each name by HTTP-01 on `port` (which the names' port 80 must reach), serves them \
               on tls_port and renews each when a third of its lifetime is left; no wildcards; \
               empty = off",
        apply: |c, v| crate::acme::parse_domains(v).map(|d| c.acme_keys.certificates = d),
    },
    Key {
        name: "acme_directory",
        default: crate::acme::LETS_ENCRYPT,
        help: "the ACME server's directory URL: https:// (http:// to this machine alone); \
               Let's Encrypt's staging server for trials: \
               https://acme-staging-v02.api.letsencrypt.org/directory",
        apply: |c, v| {
            crate::acme::http::Url::parse(v)?;
            c.acme_keys.directory = v.to_string();
            Ok(())
        },
    },
    Key {
        name: "acme_email",
        default: "",
        help: "the address the ACME server's account gives, for its notices; empty = none",
        apply: |c, v| crate::acme::parse_email(v).map(|e| c.acme_keys.email = e),
    },
    Key {
        name: "acme_state_dir",
        default: "acme",
        help: "the directory the ACME account's key and the certificate are kept in (a folder \
               per ACME server), made if missing, readable by inverso's user alone",
        apply: |c, v| match optional_path(v) {
            Some(dir) => {
                c.acme_keys.state_dir = dir;
                Ok(())
            }
            None => Err("cannot be empty: the certificate must be kept somewhere".into()),
        },
    },
    Key {
        name: "acme_directory_ca",
        default: "",
        help: "PEM file of the authorities trusted for an https acme_directory instead of the \
               system's (a company's own ACME server); empty = the system's",
        apply: |c, v| {
            c.acme_keys.directory_ca = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "acme_challenge",
        default: "http-01",
        help: "how each name of acme_domains is proven: http-01, a token asked for on port 80 \
               of the name (`port`), tls-alpn-01, a TLS handshake on its port 443 (tls_port), \
               for a site that has no port 80, or dns-01, a TXT record written by a DNS update \
               (acme_dns_server), for wildcards and names not reachable from the Internet",
        apply: |c, v| crate::acme::Challenge::parse(v).map(|ch| c.acme_keys.challenge = ch),
    },
    Key {
        name: "acme_dns_server",
        default: "",
        help: "dns-01: the primary server of the zones of acme_dns_zone, as host:port (53 \
               unless given), which takes DNS updates (RFC 2136) signed with acme_dns_key; \
               empty = none",
        apply: |c, v| crate::acme::parse_dns_server(v).map(|s| c.acme_keys.dns_server = s),
    },
    Key {
        name: "acme_dns_zone",
        default: "",
        help: "dns-01: the zones the names of acme_domains are in, comma separated, where \
               their _acme-challenge.<name> TXT records are written (each in the longest zone \
               it is under); empty = none",
        apply: |c, v| crate::acme::parse_zones(v).map(|z| c.acme_keys.dns_zones = z),
    },
    Key {
        name: "acme_dns_key",
        default: "",
        help: "dns-01: the TSIG key updates are signed with, as nsupdate -y takes it: \
               [hmac-sha256:|hmac-sha512:]name:secret (base64, as tsig-keygen writes it); a \
               secret: keep the file readable by inverso's user alone; empty = none",
        apply: |c, v| {
            let key = (!v.trim().is_empty()).then(|| crate::acme::dns_update::TsigKey::parse(v));
            key.transpose().map(|k| c.acme_keys.dns_key = k)
        },
    },
    Key {
        name: "acme_dns_wait",
        default: "30s",
        help: "dns-01: how long after a record is written its validation is asked for, for \
               the zone's other servers to take it from the primary",
        apply: |c, v| parse_duration(v).map(|d| c.acme_keys.dns_wait = d),
    },
    Key {
        name: "acme_eab_kid",
        default: "",
        help: "External Account Binding: the key ID a CA that asks for one (ZeroSSL, Google \
               Trust Services) gives for an account made on its site, with acme_eab_hmac_key; \
               empty = none (Let's Encrypt asks for none)",
        apply: |c, v| {
            c.acme_keys.eab_kid = Some(v.trim()).filter(|v| !v.is_empty()).map(String::from);
            Ok(())
        },
    },
    Key {
        name: "acme_eab_hmac_key",
        default: "",
        help: "External Account Binding: the MAC key (base64url) given with acme_eab_kid; \
               empty = none",
        apply: |c, v| crate::acme::parse_mac_key(v).map(|k| c.acme_keys.eab_mac_key = k),
    },
    Key {
        name: "tls_protocols",
        default: "TLSv1.2, TLSv1.3",
        help: "the TLS versions tls_port speaks, as nginx's ssl_protocols: TLSv1.2, TLSv1.3 \
               or both (TLSv1.3 alone refuses clients that cannot speak it, as compliance \
               rules may ask); nothing older is offered",
        apply: |c, v| crate::tls::TlsVersions::parse(v).map(|t| c.tls_protocols = t),
    },
    Key {
        name: "tls_ciphers",
        default: "",
        help: "the cipher suites tls_port offers, in our order of preference, as nginx's \
               ssl_ciphers (and TLS 1.3's Ciphersuites) and HAProxy's ciphers and \
               ciphersuites: OpenSSL's names (ECDHE-ECDSA-AES128-GCM-SHA256, \
               TLS_AES_128_GCM_SHA256) or IANA's, separated by colons; a name of a suite \
               rustls lacks is skipped with a warning, and a TLS version none of whose suites \
               is named keeps all of its own; empty = all",
        apply: |c, v| {
            c.tls_choice = with_suites(&c.tls_choice, v, "tls_ciphers")?;
            Ok(())
        },
    },
    Key {
        name: "tls_prefer_server_ciphers",
        default: "false",
        help: "true: the cipher suite agreed on tls_port is the first of tls_ciphers' order \
               the client offers (nginx's ssl_prefer_server_ciphers on, HAProxy's default); \
               false: the first of the client's order offered here, as nginx's default and \
               Mozilla's guidelines (a phone that prefers ChaCha20 gets it)",
        apply: |c, v| parse_bool(v).map(|b| c.tls_choice.prefer_own_order = b),
    },
    Key {
        name: "tls_groups",
        default: "",
        help: "the key exchange groups tls_port offers, as nginx's ssl_ecdh_curve and \
               HAProxy's curves: X25519, prime256v1 (P-256), secp384r1 (P-384), separated by \
               colons (the client's order chooses among them); empty = all three",
        apply: |c, v| {
            c.tls_choice = c.tls_choice.clone().with_groups(v)?;
            Ok(())
        },
    },
    Key {
        name: "tls_session_tickets",
        default: "true",
        help: "false: no session tickets on tls_port (nginx's ssl_session_tickets off, as \
               Mozilla's guidelines set it, HAProxy's no-tls-tickets): a returning client \
               resumes from the proxy's memory alone, and nothing a client holds can resume \
               a session after the ticket key would have changed",
        apply: |c, v| parse_bool(v).map(|b| c.tls_session_tickets = b),
    },
    Key {
        name: "tls_strict_sni",
        default: "false",
        help: "true: a client on tls_port that names no host a certificate of \
               tls_certificates is valid for (or no host at all: a scan by address) is refused \
               at the handshake instead of given the first certificate, as HAProxy's \
               strict-sni and nginx's ssl_reject_handshake",
        apply: |c, v| parse_bool(v).map(|b| c.tls_strict_sni = b),
    },
    Key {
        name: "tls_verify_client",
        default: "off",
        help: "ask clients on tls_port for a certificate of their own, issued by an \
               authority of tls_client_ca (mutual TLS): on refuses a client without one at \
               the handshake, optional serves it without; the backend gets the certificate \
               in Client-Cert (RFC 9440)",
        apply: |c, v| crate::tls::VerifyClient::parse(v).map(|m| c.tls_verify_client = m),
    },
    Key {
        name: "tls_client_ca",
        default: "",
        help: "PEM file of the authorities whose certificates clients may show \
               (tls_verify_client); read again on reload",
        apply: |c, v| {
            c.tls_client_ca = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "tls_client_crl",
        default: "",
        help: "PEM file of certificate revocation lists: a client certificate in one is \
               refused, as is one whose issuer has no list in the file; read again on reload; \
               empty = none",
        apply: |c, v| {
            c.tls_client_crl = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "backend_tls_verify",
        default: "true",
        help: "check the certificate of each target with `tls`: issued by a trusted authority \
               (backend_tls_ca) and valid for the target's host or tls_name=; false takes any \
               certificate (nginx's proxy_ssl_verify off)",
        apply: |c, v| parse_bool(v).map(|b| c.backend_tls_keys.verify = b),
    },
    Key {
        name: "backend_tls_ca",
        default: "",
        help: "PEM file of the certificates trusted to issue backends' certificates; empty = \
               the system's (SSL_CERT_FILE, or /etc/ssl/certs); read again on reload",
        apply: |c, v| {
            c.backend_tls_keys.ca = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "backend_tls_protocols",
        default: "TLSv1.2, TLSv1.3",
        help: "the TLS versions offered to targets with `tls`, as nginx's proxy_ssl_protocols: \
               TLSv1.2, TLSv1.3 or both; nothing older is offered",
        apply: |c, v| {
            crate::tls::TlsVersions::parse(v).map(|t| c.backend_tls_keys.protocols = t)
        },
    },
    Key {
        name: "backend_tls_ciphers",
        default: "",
        help: "the cipher suites offered to targets with `tls`, most preferred first, as \
               nginx's proxy_ssl_ciphers: named as tls_ciphers names them; empty = all",
        apply: |c, v| {
            c.backend_tls_keys.choice = with_suites(&c.backend_tls_keys.choice, v, "backend_tls_ciphers")?;
            Ok(())
        },
    },
    Key {
        name: "backend_tls_groups",
        default: "",
        help: "the key exchange groups offered to targets with `tls`, most preferred first, \
               as nginx's proxy_ssl_conf_command Groups: named as tls_groups names them; \
               empty = all three",
        apply: |c, v| {
            c.backend_tls_keys.choice = c.backend_tls_keys.choice.clone().with_groups(v)?;
            Ok(())
        },
    },
    Key {
        name: "backend_tls_certificate",
        default: "",
        help: "client certificate shown to backends over TLS that ask for one: a PEM chain and \
               its key, or the chain with ` key=<file>`; empty = none",
        apply: |c, v| {
            c.backend_tls_keys.certificate = backend_certificate(v)?;
            Ok(())
        },
    },
    Key {
        name: "admin_port",
        default: "",
        help: "port of the admin listener (/metrics, /status, /healthz, purge); empty = off",
        apply: |c, v| optional_port(v).map(|port| c.admin_port = port),
    },
    Key {
        name: "admin_bind",
        default: "127.0.0.1",
        help: "address of the admin listener",
        apply: |c, v| {
            v.parse()
                .map(|a| c.admin_bind = a)
                .map_err(|_| format!("`{v}` is not an IP address"))
        },
    },
    Key {
        name: "admin_auth_basic_user_file",
        default: "",
        help: "an htpasswd file (as auth_basic_user_file) of the users the admin listener asks \
               to sign in, but for GET /healthz; empty = none: admin_bind is its only guard",
        apply: |c, v| optional_users(v).map(|users| c.admin_auth_users = users),
    },
    Key {
        name: "state_file",
        default: "",
        help: "file the targets' drain and maintenance states set through the admin listener \
               are written to, and read back at start-up, so a restart keeps them; empty = off",
        apply: |c, v| {
            c.state_file = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "log_format",
        default: "combined",
        help: "access-log format: combined, json, or a template of nginx-style $variables",
        apply: |c, v| LogFormat::parse(v).map(|f| c.log_format = f),
    },
    Key {
        name: "log_headers",
        default: "false",
        help: "add the request and response heads to each access-log record",
        apply: |c, v| parse_bool(v).map(|b| c.log_headers = b),
    },
    Key {
        name: "log_skip_paths",
        default: "",
        help: "path prefixes whose answers below 400 are not logged (a balancer's health checks), \
               compared with the path as sent: `/healthz, /ready`; errors are; empty = none",
        apply: |c, v| PathPrefixes::parse(v).map(|p| c.log_skip_paths = p),
    },
    Key {
        name: "log_skip_statuses",
        default: "",
        help: "statuses whose answers are not logged, each one or a range: `200-399` logs \
               the errors alone; empty = none",
        apply: |c, v| parse_status_ranges(v).map(|r| c.log_skip_statuses = r.into()),
    },
    Key {
        name: "log_syslog",
        default: "",
        help: "also send each access-log line to syslog, one RFC 3164 datagram each: \
               udp://host:port, host:port, [IPv6]:port (port 514 when left out) or unix:PATH \
               (/dev/log), as nginx's access_log syslog:server=; empty = off",
        apply: |c, v| {
            optional(v, crate::access_log::SyslogTarget::parse).map(|t| c.log_syslog = t)
        },
    },
    Key {
        name: "log_syslog_facility",
        default: "local7",
        help: "the facility of log_syslog's messages: kern ... cron, local0 to local7 (nginx's \
               names)",
        apply: |c, v| {
            crate::access_log::Facility::parse(v).map(|f| c.log_syslog_facility = f)
        },
    },
    Key {
        name: "log_syslog_tag",
        default: "inverso",
        help: "the tag of log_syslog's messages: 1 to 32 letters, digits or _",
        apply: |c, v| crate::access_log::parse_tag(v).map(|t| c.log_syslog_tag = t),
    },
    Key {
        name: "via",
        default: "true",
        help: "add `Via: 1.1 inverso` to requests to backends (RFC 9110); false leaves Via as it \
               came, as nginx and HAProxy do (an nginx origin does not gzip requests with Via \
               unless gzip_proxied says so)",
        apply: |c, v| parse_bool(v).map(|b| c.via = b),
    },
    Key {
        name: "gzip",
        default: "false",
        help: "compress responses of the gzip_types for clients that take gzip, as nginx's \
               gzip on and HAProxy's compression; a cached response is compressed once, not \
               at every hit",
        apply: |c, v| parse_bool(v).map(|b| c.gzip = b),
    },
    Key {
        name: "gzip_types",
        default: crate::gzip::DEFAULT_TYPES,
        help: "media types compressed with gzip (`text/*` matches a prefix, a lone * any type)",
        apply: |c, v| crate::gzip::MediaTypes::parse(v).map(|t| c.gzip_types = t),
    },
    Key {
        name: "gzip_min_length",
        default: "256",
        help: "responses whose Content-Length is under this go uncompressed",
        apply: |c, v| parse_size(v).map(|n| c.gzip_min_length = n),
    },
    Key {
        name: "gzip_comp_level",
        default: "1",
        help: "gzip level, 1 (fastest) to 9 (smallest)",
        apply: |c, v| parse_number(v, 1..=9).map(|n| c.gzip_comp_level = n),
    },
    Key {
        name: "brotli",
        default: "false",
        help: "compress responses with Brotli (br) for clients that take it, by the rules of \
               gzip, its gzip_types and gzip_min_length, as nginx's ngx_brotli module; br \
               goes to a client that weighs it no lower than gzip",
        apply: |c, v| parse_bool(v).map(|b| c.brotli = b),
    },
    Key {
        name: "brotli_comp_level",
        default: "2",
        help: "Brotli quality, 0 (fastest) to 6, as ngx_brotli's brotli_comp_level (7 to 11 \
               are refused: each response compressed would hold 8 to 28 MiB)",
        apply: |c, v| brotli_quality(v).map(|n| c.brotli_comp_level = n),
    },
    Key {
        name: "gunzip",
        default: "false",
        help: "decode gzip-coded responses for clients that do not take gzip, as nginx's gunzip \
               on: a backend or a cache that keeps pages compressed still serves curl and \
               scripts",
        apply: |c, v| parse_bool(v).map(|b| c.gunzip = b),
    },
    Key {
        name: "request_id_header",
        default: "",
        help: "a header field carrying an ID for each request (e.g. X-Request-ID): sent to the \
               backend, returned to the client and logged; an ID from a real_ip_from proxy is \
               kept; empty = no IDs",
        apply: |c, v| optional(v, parse_field_name).map(|n| c.request_id_header = n),
    },
    Key {
        name: "trace_context",
        default: "off",
        help: "W3C trace context (traceparent), as nginx's otel_trace_context: propagate \
               continues a client's trace (or begins one) and sends the backend the proxy's span \
               as its parent; inject begins a new one for every request; extract reads the \
               client's for the log alone; off",
        apply: |c, v| crate::trace_context::TraceMode::parse(v).map(|m| c.trace_context = m),
    },
    Key {
        name: "otel_exporter",
        default: "",
        help: "an OpenTelemetry collector's OTLP/HTTP URL (http://host[:4318][/v1/traces]) that \
               each traced request's span is sent to, as nginx's otel_exporter; needs \
               trace_context; empty = no spans sent",
        apply: |c, v| optional(v, crate::otel::Collector::parse).map(|o| c.otel_exporter = o),
    },
    Key {
        name: "otel_service_name",
        default: "inverso",
        help: "the service.name the spans sent to otel_exporter are of, as nginx's \
               otel_service_name",
        apply: |c, v| crate::otel::parse_service_name(v).map(|n| c.otel_service_name = n),
    },
    Key {
        name: "sticky_cookie",
        default: "",
        help: "a cookie naming the target that served a client, which then keeps serving it while \
               it can; empty = no stickiness",
        apply: |c, v| optional(v, parse_cookie_name).map(|n| c.sticky_cookie = n),
    },
    Key {
        name: "sticky_cookie_attributes",
        default: "",
        help: "what the sticky_cookie's Set-Cookie says besides `Path=/; HttpOnly`: Secure, \
               SameSite=Strict|Lax|None, Max-Age=<duration>, Domain=<name>, Partitioned, \
               `;`-separated (HAProxy's `secure`, `domain`, `attr`); empty = nothing more",
        apply: |c, v| parse_cookie_attributes(v).map(|a| c.sticky_cookie_attributes = a),
    },
    Key {
        name: "cookie_flags",
        default: "",
        help: "flags given to the backends' cookies on their way to clients, as nginx's \
               proxy_cookie_flags: comma separated rules, each a cookie name (a trailing * for a \
               prefix, a lone * for every cookie) and its flags, secure, httponly, \
               samesite=strict|lax|none, nosecure, nohttponly, nosamesite: `* secure httponly \
               samesite=lax`; the first rule naming a cookie applies; empty = none",
        apply: |c, v| crate::cookie_flags::CookieFlags::parse(v).map(|f| c.cookie_flags = f),
    },
    Key {
        name: "cookie_domain",
        default: "",
        help: "the Domain of the backends' cookies replaced on their way to clients, as \
               nginx's proxy_cookie_domain, for a backend that names its own host in them: \
               comma separated rules `<from> <to>`, `app.internal example.com` or \
               `app.internal $host`; the first rule naming the domain applies; `~pattern` \
               (`~*` in any case), a regular expression, replaces a value it matches whole, its \
               groups named $1 to $9; empty = none",
        apply: |c, v| crate::cookie_rewrite::CookieDomains::parse(v).map(|d| c.cookie_domain = d),
    },
    Key {
        name: "cookie_path",
        default: "",
        help: "the Path of the backends' cookies replaced on their way to clients, as nginx's \
               proxy_cookie_path, for a backend that writes its own base path in them: comma \
               separated rules `<from> <to>`, `/app/ /`; the first rule whose path begins the \
               cookie's replaces that start; `~pattern` (`~*` in any case), a regular \
               expression, replaces a path it matches whole, its groups named $1 to $9; empty = \
               none",
        apply: |c, v| crate::cookie_rewrite::CookiePaths::parse(v).map(|p| c.cookie_path = p),
    },
    Key {
        name: "location_rewrite",
        default: "",
        help: "the start of the URL in a backend's Location and Refresh replaced, as nginx's \
               proxy_redirect, for a backend that writes its own address or scheme in its \
               redirects: comma separated rules `<from> <to>`, `http://app.internal:8080/ \
               $scheme://$host/` or `http:// https://`; the first rule whose start the URL has \
               applies; the replacement may name the request's $scheme, $host, $http_host, \
               $server_port and $server_name; `~pattern` (`~*` in any case), a regular \
               expression, replaces a URL it matches whole, its groups named $1 to $9; empty = \
               none",
        apply: |c, v| {
            crate::location_rewrite::LocationRewrite::parse(v).map(|r| c.location_rewrite = r)
        },
    },
    Key {
        name: "sub_filter",
        default: "",
        help: "strings replaced in the bodies of responses of the sub_filter_types as they are \
               relayed, as nginx's sub_filter: comma separated rules `<find> <replacement>`, \
               each quoted ('...' or \"...\") when it holds a space, a comma or a quote, \
               `'http://app.internal:8080/' 'https://$host/'`; found in any case; the \
               replacement may name $scheme, $host, $http_host, $server_port and \
               $server_name; `#` is written \\x23; backends are asked for uncompressed \
               bodies; empty = none",
        apply: |c, v| crate::sub_filter::SubFilter::parse(v).map(|s| c.sub_filter = s),
    },
    Key {
        name: "sub_filter_types",
        default: "text/html",
        help: "media types whose bodies sub_filter rewrites (`text/*` matches a prefix, a lone \
               * any type)",
        apply: |c, v| crate::gzip::MediaTypes::parse(v).map(|t| c.sub_filter_types = t),
    },
    Key {
        name: "sub_filter_once",
        default: "true",
        help: "each sub_filter rule replaces its first match in a body alone, as nginx's \
               default; false replaces every match",
        apply: |c, v| parse_bool(v).map(|b| c.sub_filter_once = b),
    },
    Key {
        name: "sub_filter_last_modified",
        default: "false",
        help: "a body sub_filter rewrote keeps the backend's Last-Modified, its ETag weakened; \
               false removes both, as nginx does by default",
        apply: |c, v| parse_bool(v).map(|b| c.sub_filter_last_modified = b),
    },
    Key {
        name: "sticky_cookie_nocache",
        default: "false",
        help: "a response that sets the sticky_cookie is marked `Cache-Control: private` unless it \
               is already private or no-store, so that no shared cache in front stores the cookie \
               and sends every client to one target (HAProxy's `nocache`)",
        apply: |c, v| parse_bool(v).map(|b| c.sticky_cookie_nocache = b),
    },
    Key {
        name: "sticky_cookie_max_idle",
        default: "",
        help: "a client that made no request for this long is balanced afresh, whatever its \
               sticky_cookie names: the cookie carries the date it was last refreshed (HAProxy's \
               `maxidle`); empty or 0 = no limit",
        apply: |c, v| parse_cookie_lifetime(v).map(|d| c.sticky_cookie_lifetimes.max_idle = d),
    },
    Key {
        name: "sticky_cookie_max_life",
        default: "",
        help: "a client stuck to a target for this long is balanced afresh, however busy: the \
               cookie carries the date it was first set (HAProxy's `maxlife`); empty or 0 = no \
               limit",
        apply: |c, v| parse_cookie_lifetime(v).map(|d| c.sticky_cookie_lifetimes.max_life = d),
    },
    Key {
        name: "rate_limit",
        default: "",
        help: "requests one client address may make over time (`10/s`, `600/m`); more get 429; \
               empty = no limit",
        apply: |c, v| optional(v, Rate::parse).map(|r| c.rate_limit = r),
    },
    Key {
        name: "rate_limit_burst",
        default: "",
        help: "requests past rate_limit a client may make at once; empty = one second's worth",
        apply: |c, v| {
            optional(v, |v| parse_number(v, 0..=1_000_000)).map(|n| c.rate_limit_burst = n)
        },
    },
    Key {
        name: "rate_limit_delay",
        default: "",
        help: "of the burst, how many requests pass at once; the others wait their turn at the \
               rate (nginx's `delay=`; 0: nginx's limit_req without nodelay); empty = all of \
               them (nodelay)",
        apply: |c, v| {
            optional(v, |v| parse_number(v, 0..=1_000_000)).map(|n| c.rate_limit_delay = n)
        },
    },
    Key {
        name: "rate_limit_dry_run",
        default: "false",
        help: "true: the rate limits count requests but refuse and delay none; those they would \
               are counted in /metrics and said in the log at most once a minute (nginx's \
               limit_req_dry_run), to try a limit on real traffic first",
        apply: |c, v| parse_bool(v).map(|b| c.rate_limit_dry_run = b),
    },
    Key {
        name: "rate_limit_key",
        default: "address",
        help: "what rate_limit counts requests by: `address` (the client's), or `header:<Name>`, \
               `cookie:<name>` or `query:<name>` (an API key), by address where a request has none",
        apply: |c, v| {
            let key = match v.trim() {
                "" | "address" => None,
                v => Some(HashOn::parse(v).map_err(|e| format!("{e}, or `address`"))?),
            };
            c.rate_limit_key = key;
            Ok(())
        },
    },
    Key {
        name: "error_limit",
        default: "",
        help: "client errors (4xx answers) one client address may cause over time (`60/m`), as \
               HAProxy's http_err_rate deny and fail2ban: past it, its requests are refused \
               429 until it stops for a while; empty = no limit",
        apply: |c, v| optional(v, Rate::parse).map(|r| c.error_limit = r),
    },
    Key {
        name: "error_limit_statuses",
        default: "",
        help: "the statuses error_limit counts, as HAProxy's http-err-codes: `400-404, 500-599`; \
               empty = 400 to 499 but 429 and 499",
        apply: |c, v| parse_status_ranges(v).map(|r| c.error_limit_statuses = r.into()),
    },
    Key {
        name: "error_limit_except_from",
        default: "",
        help: "client addresses and blocks error_limit never refuses nor counts, as HAProxy's \
               `track-sc0 src unless { src -f allowlist }`: a monitoring host, a scanner of your \
               own; the client as logged; empty = none",
        apply: |c, v| parse_cidrs(v).map(|list| c.error_limit_except_from = list.into()),
    },
    Key {
        name: "max_header_size",
        default: "16KiB",
        help: "largest request head (request line + fields); larger gets 431",
        apply: |c, v| {
            parse_size_in(v, 1024..=MAX_HEADER_SIZE_CEILING).map(|n| c.max_header_size = n as usize)
        },
    },
    Key {
        name: "max_headers",
        default: "100",
        help: "most header fields in a request; more gets 431",
        apply: |c, v| {
            parse_number(v, 1..=crate::http::head::MAX_HEADERS as u64)
                .map(|n| c.max_headers = n as usize)
        },
    },
    Key {
        name: "max_uri_length",
        default: "8KiB",
        help: "longest request-target; longer gets 414",
        apply: |c, v| {
            parse_size_in(v, 1..=MAX_HEADER_SIZE_CEILING).map(|n| c.max_uri_length = n as usize)
        },
    },
    Key {
        name: "underscores_in_headers",
        default: "false",
        help: "forward request header fields whose name has an underscore (else they are dropped)",
        apply: |c, v| parse_bool(v).map(|b| c.underscores_in_headers = b),
    },
    Key {
        name: "real_ip_from",
        default: "",
        help: "addresses and blocks (10.0.0.0/8) of proxies in front whose X-Forwarded-For names the client (for the log and ip_hash) and whose X-Forwarded-Proto: https is passed on; empty = none",
        apply: |c, v| parse_cidrs(v).map(|list| c.real_ip_from = list.into()),
    },
    Key {
        name: "geoip_database",
        default: "",
        help: "a MaxMind DB file (GeoLite2-Country, GeoIP2-City, DB-IP's country lite) naming each \
               client's country (after real_ip_from and proxy_protocol) for `if country` \
               conditions and $geoip_country_code; read whole into memory at start-up and \
               reload; empty = none",
        apply: |c, v| optional_geoip(v).map(|db| c.geoip = db),
    },
    Key {
        name: "proxy_protocol",
        default: "false",
        help: "every client connection starts with a PROXY protocol header (v1 or v2; on tls_port before the TLS hello) naming the client (v2: and whether it came over TLS), as sent by HAProxy's send-proxy or an AWS NLB; one without is closed",
        apply: |c, v| parse_bool(v).map(|b| c.proxy_protocol = b),
    },
    Key {
        name: "redirect_to_https",
        default: "false",
        help: "answer requests that came over plain HTTP (as X-Forwarded-Proto tells backends: \
               https only when a real_ip_from proxy or a PROXY v2 header says so) with a \
               redirect to https://host/path (301 for GET and HEAD, 308 for the rest); they \
               reach no backend",
        apply: |c, v| parse_bool(v).map(|b| c.redirect_to_https = b),
    },
    Key {
        name: "redirect_to_https_except",
        default: "",
        help: "path prefixes served over plain HTTP all the same, compared with the path as \
               sent: `/healthz, /.well-known/acme-challenge/`; empty = none",
        apply: |c, v| PathPrefixes::parse(v).map(|p| c.redirect_to_https_except = p),
    },
    Key {
        name: "allow_from",
        default: "",
        help: "client addresses and blocks (10.0.0.0/8) that may send requests, others get 403; \
               the client as logged (after real_ip_from and proxy_protocol); empty = every client",
        apply: |c, v| parse_cidrs(v).map(|list| c.allow_from = list.into()),
    },
    Key {
        name: "deny_from",
        default: "",
        help: "client addresses and blocks refused 403, even if allow_from lists them; the client \
               as logged; empty = none",
        apply: |c, v| parse_cidrs(v).map(|list| c.deny_from = list.into()),
    },
    Key {
        name: "auth_basic",
        default: "",
        help: "the realm (a short text) clients are asked to sign in to with HTTP Basic \
               authentication, as nginx's auth_basic; a request without a user and password \
               of auth_basic_user_file gets 401; empty or `off` = no sign-in",
        apply: |c, v| parse_realm(v).map(|realm| c.auth_basic = realm),
    },
    Key {
        name: "auth_basic_user_file",
        default: "",
        help: "who may sign in: an htpasswd file of `user:hash` lines (bcrypt, SHA-crypt or \
               MD5-crypt), read at start-up and reload; empty = none",
        apply: |c, v| optional_users(v).map(|users| c.auth_users = users),
    },
    Key {
        name: "auth_basic_except_from",
        default: "",
        help: "client addresses and blocks that need not sign in, as nginx's `satisfy any` with \
               `allow`: the office's network, a monitoring host; the client as logged; empty = none",
        apply: |c, v| parse_cidrs(v).map(|list| c.auth_basic_except_from = list.into()),
    },
    Key {
        name: "auth_request",
        default: "",
        help: "`<pool> <path>`: each request is first asked of that pool with a GET of path \
               carrying the client's fields (nginx's auth_request, Traefik's forwardAuth); a 2xx \
               lets it through, any other answer goes to the client as it came; empty or off = off",
        apply: |c, v| parse_auth_request(v).map(|a| c.auth_request = a),
    },
    Key {
        name: "mirror",
        default: "",
        help: "a pool that gets a copy of each request sent to a backend, its answer dropped \
               (nginx's mirror: a new version tried on real traffic); empty or off = none",
        apply: |c, v| {
            c.mirror = match v.trim() {
                "" | "off" => None,
                name => Some(name.into()),
            };
            Ok(())
        },
    },
    Key {
        name: "auth_request_headers",
        default: "",
        help: "fields of the auth_request pool's 2xx sent on to the backend with the request \
               (`Remote-User, Remote-Groups`); the client's own of those names never are",
        apply: |c, v| parse_auth_fields(v).map(|f| c.auth_request_headers = f),
    },
    Key {
        name: "auth_request_cache",
        default: "0",
        help: "how long a 2xx of the auth_request pool is taken again for the same question (the \
               same pool, client address, scheme, method, URL and fields: its cookies and \
               credentials), unasked; a session revoked meanwhile still passes that long; 0 = \
               asked every time",
        apply: |c, v| parse_duration(v).map(|d| c.auth_request_cache = d),
    },
    Key {
        name: "auth_request_redirect",
        default: "",
        help: "where a client the auth_request pool answers 401 is sent instead, with a 302 (nginx's \
               `error_page 401 =302`): a path or an http(s) URL with variables, each written after \
               the `?` as one query value (`/oauth2/start?rd=$request_uri`); empty = the 401 \
               goes to the client as it came",
        apply: |c, v| parse_auth_redirect(v).map(|r| c.auth_request_redirect = r),
    },
    Key {
        name: "auth_jwt",
        default: "",
        help: "the realm of a token asked for: a request without `Authorization: Bearer` and a \
               JSON Web Token signed by a key of auth_jwt_key_file, not expired, gets 401, as \
               nginx Plus's auth_jwt; empty or `off` = none asked for",
        apply: |c, v| parse_realm(v).map(|realm| c.auth_jwt = realm),
    },
    Key {
        name: "auth_jwt_key_file",
        default: "",
        help: "the keys a token must be signed by: a JWKS file (RFC 7517), as an identity \
               provider publishes it, read at start-up and reload; empty = none",
        apply: |c, v| optional_jwks(v).map(|keys| c.auth_jwt_keys = keys.map(JwtKeys::File)),
    },
    Key {
        name: "auth_jwt_key_request",
        default: "",
        help: "`<pool> <path>`: the keys a token must be signed by, fetched with a GET of path \
               from that pool (an identity provider's jwks_uri, or its OpenID discovery \
               document, whose jwks_uri of the same host is then asked), as nginx Plus's \
               auth_jwt_key_request, and again every auth_jwt_key_cache; the last set that came \
               is kept while a fetch fails; instead of auth_jwt_key_file; empty = none",
        apply: |c, v| PoolRequest::parse(v).map(|asked| c.auth_jwt_key_request = asked),
    },
    Key {
        name: "auth_jwt_key_cache",
        default: "",
        help: "how long keys auth_jwt_key_request fetched are used before they are fetched \
               again (sooner, 5s after the last fetch at most, when a token names a key they \
               lack: the provider rotated its keys); at least 1s; empty = as long as the key \
               set's Cache-Control max-age (or Expires) says, 30s to 24h, else 10m",
        apply: |c, v| {
            let parse = |v: &str| {
                let every = parse_duration(v)?;
                if every < std::time::Duration::from_secs(1) {
                    return Err("less than 1s: keys would be fetched for every request".into());
                }
                Ok(every)
            };
            optional(v, parse).map(|every| c.auth_jwt_key_cache = every)
        },
    },
    Key {
        name: "auth_jwt_require",
        default: "",
        help: "what a valid token's claims must say, or its request is refused 403 \
               (insufficient_scope): `<claim>=<value>[|<value>...]`, comma separated, all \
               required (`scope=orders:read, realm_access.roles=admin|auditor`); `scope` and \
               `scp` are lists of words, an array any of its items; needs auth_jwt; empty = none",
        apply: |c, v| {
            let parse = |v: &str| Required::parse(v).map(Arc::new);
            optional(v, parse).map(|r| c.auth_jwt_require = r)
        },
    },
    Key {
        name: "auth_jwt_header",
        default: "",
        help: "a field the token comes in, its whole value, in place of Authorization: Bearer \
               (nginx Plus's `auth_jwt ... token=$http_<name>`): Cloudflare Access's \
               Cf-Access-Jwt-Assertion, Google IAP's X-Goog-Iap-Jwt-Assertion; needs auth_jwt; \
               empty = Authorization",
        apply: |c, v| optional(v, parse_field_name).map(|n| c.auth_jwt_header = n),
    },
    Key {
        name: "auth_jwt_cookie",
        default: "",
        help: "a cookie the token may come in instead, for a request without an Authorization \
               field (a browser's, whose script cannot set one), as nginx Plus's \
               `auth_jwt ... token=$cookie_<name>`; needs auth_jwt; empty = none",
        apply: |c, v| optional(v, parse_cookie_name).map(|n| c.auth_jwt_cookie = n),
    },
    Key {
        name: "auth_jwt_issuer",
        default: "",
        help: "the issuer a token must name (`iss`), as the provider writes it \
               (`https://id.example.com/realms/x`); needs auth_jwt; empty = any",
        apply: |c, v| optional(v, |v| Ok(v.into())).map(|i| c.auth_jwt_issuer = i),
    },
    Key {
        name: "auth_jwt_audience",
        default: "",
        help: "an audience a token must name (`aud`): this application's, so that a token the \
               provider issued for another is refused; needs auth_jwt; empty = any",
        apply: |c, v| optional(v, |v| Ok(v.into())).map(|a| c.auth_jwt_audience = a),
    },
    Key {
        name: "auth_jwt_leeway",
        default: "0s",
        help: "how far past its expiry (exp) or before its start (nbf) a token is still taken, \
               as nginx Plus's auth_jwt_leeway: the provider's clock and this machine's may \
               disagree; at most 10m",
        apply: |c, v| {
            let leeway = parse_duration(v)?;
            if leeway > std::time::Duration::from_secs(600) {
                return Err("more than 10m: a token would outlive its expiry by that much".into());
            }
            c.auth_jwt_leeway = leeway;
            Ok(())
        },
    },
    Key {
        name: "secure_link",
        default: "",
        help: "where a request's signed hash and, after a comma, its expiry time are read from, \
               as nginx's secure_link (`$arg_md5,$arg_expires`): a request whose hash is not the \
               MD5 of secure_link_md5 gets 403, one whose time has passed 410; empty = off",
        apply: |c, v| {
            let parse = |v: &str| FieldValue::parse(v, FieldFamily::Request);
            optional(v, parse).map(|link| c.secure_link = link)
        },
    },
    Key {
        name: "secure_link_md5",
        default: "",
        help: "what a secure link's hash is of, as nginx's secure_link_md5: a text with \
               variables and the expiry time as $secure_link_expires \
               (`$secure_link_expires$uri$remote_addr s3cret`); empty = none",
        apply: |c, v| {
            let parse = crate::secure_link::SignedText::parse;
            optional(v, parse).map(|signed| c.secure_link_md5 = signed)
        },
    },
    Key {
        name: "secure_link_secret",
        default: "",
        help: "a secret word for links signed in their path, as nginx's secure_link_secret: \
               /<prefix>/<hash>/<link>, the hash the MD5 in hex of the link (as sent, its query \
               included) and the word; the request goes on as /<prefix>/<link>, any other gets \
               403; not with secure_link; empty = off",
        apply: |c, v| {
            if v.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err("one word of visible ASCII characters".into());
            }
            c.secure_link_secret = (!v.is_empty()).then(|| v.into());
            Ok(())
        },
    },
    Key {
        name: "keepalive_requests",
        default: "1000",
        help: "requests served on one client connection, the last answered with Connection: close; 0 = no limit",
        apply: |c, v| parse_number(v, 0..=u64::MAX).map(|n| c.keepalive_requests = n),
    },
    Key {
        name: "max_body_size",
        default: "0",
        help: "largest request body; larger gets 413; 0 = unlimited",
        apply: |c, v| parse_size(v).map(|n| c.max_body_size = n),
    },
    Key {
        name: "limit_rate",
        default: "0",
        help: "most bytes a second a response is sent to its client at (`100KiB` or \
               `100KiB/s`), after limit_rate_after, as nginx's limit_rate; 0 = no limit",
        apply: |c, v| parse_rate(v).map(|n| c.pacing.rate = n),
    },
    Key {
        name: "limit_rate_after",
        default: "0",
        help: "bytes of a response sent at full speed before limit_rate applies, as nginx's \
               limit_rate_after",
        apply: |c, v| parse_size(v).map(|n| c.pacing.after = n),
    },
    Key {
        name: "request_buffer_size",
        default: "64KiB",
        help: "request bodies up to this are read whole before a backend is contacted (a slow \
               upload holds no backend connection, and the request may be retried; a chunked one \
               goes with a Content-Length); larger ones stream; 0 = every body streams",
        apply: |c, v| {
            parse_size_in(v, 0..=MAX_BODY_BUFFER).map(|n| c.request_buffer_size = n)
        },
    },
    Key {
        name: "request_buffer_dir",
        default: "",
        help: "a directory where request bodies larger than request_buffer_size are read whole, \
               each in a file of its own with no name, before a backend is contacted (nginx's \
               client_body_temp_path); needs max_body_size; empty = they stream",
        apply: |c, v| {
            optional(v, |v| {
                let dir = std::path::PathBuf::from(v);
                crate::spool::check_dir(&dir)
                    .map_err(|e| format!("{v}: cannot write a request body there: {e}"))?;
                Ok(dir)
            })
            .map(|dir| c.request_buffer_dir = dir)
        },
    },
    Key {
        name: "response_buffer_size",
        default: "64KiB",
        help: "response bodies with a Content-Length up to this (and chunked ones that arrived \
               whole) are read whole before the client gets any, so a slow reader holds no backend \
               connection; larger ones, and ones still arriving, stream; 0 = every body streams",
        apply: |c, v| parse_size_in(v, 0..=MAX_BODY_BUFFER).map(|n| c.response_buffer_size = n),
    },
    Key {
        name: "client_header_timeout",
        default: "10s",
        help: "the longest a whole request head may take to arrive; then 408 and close",
        apply: |c, v| parse_positive_duration(v).map(|d| c.client_header_timeout = d),
    },
    Key {
        name: "client_body_timeout",
        default: "30s",
        help: "the longest a client may pause while sending a request body; then 408 and close",
        apply: |c, v| parse_positive_duration(v).map(|d| c.client_body_timeout = d),
    },
];

/// The largest `request_buffer_size` and `response_buffer_size` accepted:
/// each connection may hold that much of a body.
const MAX_BODY_BUFFER: u64 = 64 << 20;

/// The largest `max_header_size` (and `max_uri_length`) accepted: a head is
/// buffered whole, so this bounds the memory one connection can make us hold.
pub const MAX_HEADER_SIZE_CEILING: u64 = 1 << 20;

pub(super) fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// `choice` with the suites of `list` (`key`'s value), each name of a
/// suite this build lacks warned of: a list written for OpenSSL is read
/// as OpenSSL reads it, but the operator learns what it does not offer.
fn with_suites(
    choice: &crate::tls::suites::TlsChoice,
    list: &str,
    key: &str,
) -> Result<crate::tls::suites::TlsChoice, String> {
    let (choice, skipped) = choice.clone().with_suites(list)?;
    for name in skipped {
        log::warn!(
            "{key}: `{}` is no cipher suite this build offers (rustls: ECDHE with AES-GCM or \
             ChaCha20-Poly1305): skipped",
            crate::config::printable(&name)
        );
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_secret_key_is_a_key() {
        for secret in SECRET_KEYS {
            assert!(KEYS.iter().any(|k| k.name == secret), "{secret}");
        }
    }
}
