//! What each fuzz target checks, one function per target. Shared by the
//! libFuzzer binaries (`fuzz_targets/*.rs`, run by `scripts/fuzz.sh`) and
//! by `cargo test`, which replays the seeds and every input that once
//! crashed a target (`tests/fuzz_regressions.rs`), so a fix stays fixed.

#![allow(dead_code)]

use inverso::auth::{claimed_user, Credentials, Users};
use inverso::cache::persist::{read_records, LoadLimits};
use inverso::cache::policy::{storable, CacheValid, Settings, Targeting, MAX_TAGS};
use inverso::cache::Entry;
use inverso::cidr_set::CidrList;
use inverso::config::{InMemory, Loader};
use inverso::field_value::Facts;
use inverso::http::body::{
    chunk_size_line, decode_complete_chunked, last_chunk_with, response_forbids_reuse, LAST_CHUNK,
};
use inverso::http::head::{
    check_target_bytes, find_head_end, parse_request, parse_response, RequestLimits,
};
use inverso::http::headers::set_cookie_attributes;
use inverso::http::proxy_protocol::{self, V2_MAX};
use inverso::http::{BodyKind, BodyReader, BufConn, Headers, RequestHead, ResponseHead, Version};
use inverso::routes::{
    is_ambiguous, other_reading, routing_path, unambiguous_reading, Asked, Condition, Lookup,
};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The request-head path a client's bytes take: find the end of the head
/// (fed whole, and again in two pieces, which must agree), parse and
/// validate it, then decide the body framing.
pub fn request_head(data: &[u8]) {
    let mut scanned = 0;
    let whole = find_head_end(data, &mut scanned);
    // The same bytes arriving in two reads must end the head at the same place.
    if !data.is_empty() {
        let cut = data[0] as usize % data.len();
        let mut scanned = 0;
        let split = match find_head_end(&data[..cut], &mut scanned) {
            Ok(None) => find_head_end(data, &mut scanned),
            other => other,
        };
        assert_eq!(whole, split, "split at {cut}");
    }
    let Ok(Some(len)) = whole else { return };
    assert!(len <= data.len());
    assert!(data[..len].ends_with(b"\r\n\r\n") || len == 2);
    if let Ok(head) = parse_request(&data[..len], &RequestLimits::default()) {
        let _ = head.path_and_query();
        let _ = head.authority();
        let _ = head.wants_keep_alive();
        if let Ok(BodyKind::Chunked) = BodyKind::for_request(&head) {
            assert!(!head.headers.contains("content-length"));
        }
    }
}

/// A backend's response head: find its end, parse it, decide the framing
/// (for a GET and for a HEAD request).
pub fn response_head(data: &[u8]) {
    let mut scanned = 0;
    let Ok(Some(len)) = find_head_end(data, &mut scanned) else {
        return;
    };
    if let Ok(head) = parse_response(&data[..len]) {
        // Three digits from 100: 600-999 are passed on (as a 5xx).
        assert!((100..=999).contains(&head.status));
        let _ = BodyKind::for_response(true, &head);
        let _ = BodyKind::for_response(false, &head);
        let _ = response_forbids_reuse(&head);
        let mut out = Vec::new();
        head.write_start(&mut out);
        assert_eq!(&out[8..13], format!(" {} ", head.status).as_bytes());
        cached(head);
    }
}

/// The cache's view of a response head: whatever it says, an entry made
/// of it and the same entry read back from a snapshot agree (its tags
/// too), and the fields for the cache alone are never in what is served.
fn cached(head: ResponseHead) {
    let settings = Settings {
        ttl: Duration::from_secs(3600),
        stale_if_error: Duration::from_secs(60),
        stale_while_revalidate: Duration::from_secs(30),
        targeting: Targeting {
            surrogate_id: Some(Arc::from("edge")),
            x_accel_expires: true,
            fields: Arc::from(["edge-cache-control".into(), "cdn-cache-control".into()]),
            surrogate_keys: true,
        },
        cache_valid: Arc::new(CacheValid::parse("200 301 10m, any 1m").expect("parses")),
        ..Settings::default()
    };
    let mut request = RequestHead {
        method: "GET".into(),
        target: "/".into(),
        version: Version::Http11,
        headers: Headers::new(),
    };
    request.headers.push("Host", "h");
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let Some(lifetime) = storable(&request, &head, now, &settings) else {
        return;
    };
    let entry = Entry::new(
        "h/".into(),
        head,
        Arc::from(&b""[..]),
        now,
        lifetime,
        &settings,
    );
    let back =
        Entry::from_record(entry.record.clone(), &settings).expect("a stored head reads back");
    assert_eq!(back.record, entry.record);
    let own = &settings.targeting.own_fields();
    assert_eq!(back.served_head(own), entry.served_head(own));
    assert_eq!(back.must_revalidate, entry.must_revalidate);
    assert_eq!(back.stale_while_revalidate, entry.stale_while_revalidate);
    assert_eq!(back.tags(), entry.tags());
    assert!(entry.tags().iter().count() <= MAX_TAGS);
    for line in entry.served_fields(own).split(|&b| b == b'\n') {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        for field in own.iter() {
            assert!(
                !name.eq_ignore_ascii_case(field.as_bytes()),
                "{field} served"
            );
        }
    }
}

fn decode_chunked(wire: &[u8], buffer: usize, limit: u64) -> Option<Vec<u8>> {
    let (body, whole) = decode_chunked_by(wire, buffer, limit, false);
    whole.then_some(body)
}

/// What the chunked decoder gives of `wire`, piece by piece or, if
/// `joined`, with the chunks each read brings joined (as bodies stream
/// through the proxy), and whether it ended without an error.
fn decode_chunked_by(wire: &[u8], buffer: usize, limit: u64, joined: bool) -> (Vec<u8>, bool) {
    let mut conn = BufConn::new(wire, buffer);
    let mut reader = BodyReader::with_limit(BodyKind::Chunked, limit);
    let mut body = Vec::new();
    loop {
        let piece = match joined {
            true => reader.next_joined(&mut conn),
            false => reader.next(&mut conn),
        };
        match piece {
            Ok(Some(piece)) => body.extend_from_slice(piece),
            Ok(None) => return (body, true),
            Err(_) => return (body, false),
        }
        assert!(body.len() as u64 <= limit);
    }
}

/// The chunked decoder, reading through a small buffer so every boundary
/// gets hit (the first byte picks the buffer size). A body that decodes
/// must decode again, to the same bytes, from our own re-encoding of it,
/// and must be refused under a limit one byte smaller. Decoded whole from
/// what arrived (`decode_complete_chunked`), it is the same body, or none.
pub fn chunked(data: &[u8]) {
    let Some((&first, wire)) = data.split_first() else {
        return;
    };
    let buffer = 1 + (first as usize % 32);
    let streamed = decode_chunked(wire, buffer, u64::MAX);
    // Joined or not, the same bytes, up to the same end or error: what a
    // client is relayed before a bad chunk does not depend on how the
    // chunks came.
    let joined = decode_chunked_by(wire, 8 * buffer, u64::MAX, true);
    let one_by_one = decode_chunked_by(wire, buffer, u64::MAX, false);
    assert_eq!(joined, one_by_one);
    if let Some(whole) = decode_complete_chunked(wire, u64::MAX) {
        assert!(whole.used <= wire.len());
        assert_eq!(streamed.as_deref(), Some(&whole.body[..]));
        // The trailer fields kept to pass on (`pass_trailers`) are whole
        // field lines, none that frames the message, and end a body that
        // reads back to the same body and the same fields.
        let trailers = &whole.trailers;
        assert!(trailers.is_empty() || trailers.ends_with(b"\r\n"));
        for line in trailers.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            for framing in [&b"content-length"[..], b"transfer-encoding", b"trailer"] {
                assert!(!name.eq_ignore_ascii_case(framing), "{line:?}");
            }
        }
        let again = [&b"1\r\nx\r\n"[..], &last_chunk_with(trailers)].concat();
        let read = decode_complete_chunked(&again, u64::MAX).expect("our own ending reads");
        assert_eq!((&read.body[..], &read.trailers), (&b"x"[..], trailers));
    }
    let Some(body) = streamed else {
        return;
    };
    let mut again = Vec::new();
    if !body.is_empty() {
        chunk_size_line(body.len(), &mut again);
        again.extend_from_slice(&body);
        again.extend_from_slice(b"\r\n");
    }
    again.extend_from_slice(LAST_CHUNK);
    assert_eq!(
        decode_chunked(&again, 7, u64::MAX).as_deref(),
        Some(&body[..])
    );
    if !body.is_empty() {
        let under = body.len() as u64 - 1;
        assert_eq!(decode_chunked(wire, buffer, under), None);
        // Under a limit too, joined or not, the same bytes before the end.
        assert_eq!(
            decode_chunked_by(wire, 8 * buffer, under, true),
            decode_chunked_by(wire, buffer, under, false)
        );
    }
}

/// Whether a proxy.conf text would make the loader resolve a host name
/// (anything that is not an IP address literal): in `targets`, a pool's
/// targets (`pool.<name> = ...`) or `log_syslog`. DNS is slow, leaves
/// the machine, and is not what is under test, so such inputs are skipped.
fn resolves_names(text: &str) -> bool {
    let named = |host: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        !host.is_empty() && host.parse::<std::net::IpAddr>().is_err()
    };
    text.lines().any(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        let key = key.trim();
        let pool = key.strip_prefix("pool.").is_some_and(|p| !p.contains('.'));
        if key == "log_syslog" {
            // `udp://host:port`, `host:port`, `[v6]:port`, `host`, `unix:PATH`.
            let value = value.trim();
            let rest = value.split_once("://").map_or(value, |(_, rest)| rest);
            let host = match rest.parse::<std::net::SocketAddr>() {
                Ok(_) => "",
                Err(_) => rest,
            };
            return !value.starts_with("unix:") && named(host);
        }
        (key == "targets" || pool)
            && value.split(',').any(|item| {
                let name = item.split_whitespace().next().unwrap_or_default();
                let host = name.rsplit_once(':').map_or(name, |(h, _)| h);
                !name.starts_with("unix:") && named(host)
            })
    })
}

/// proxy.conf text through the loader and the typed build.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lists read from files would read the disk: left to the tests.
    if resolves_names(text) || text.contains("file:") {
        return;
    }
    // `include` lines read these, and none from the disk.
    let files = [
        ("targets.conf", "targets = 127.0.0.1:1\n"),
        ("conf.d/a.conf", "port = 1\n"),
        ("conf.d/b.conf", "include = b.conf\n"),
    ];
    let files = files.iter().map(|(p, t)| (p.to_string(), t.to_string()));
    let mut source = InMemory(files.collect());
    let mut loader = Loader::new();
    if loader
        .file_including("proxy.conf", text, &mut source)
        .is_ok()
    {
        let _ = loader.effective().count();
        let _ = loader.build();
    }
}

/// A `return` text rendered for a request: a fixed one as it is; into
/// markup, no variable's value (the request's cookie, its path) opens a
/// tag the text does not.
fn returned_body(answer: &inverso::routes::Return, head: RequestHead) {
    let mut rendered = Vec::new();
    let Some(body) = answer.body(|| Facts::plain(&head), &mut rendered) else {
        return;
    };
    let text = answer.text.as_ref().expect("a body is a text's");
    if let Some(fixed) = text.text() {
        assert_eq!(body, fixed.as_bytes());
    }
    let markup = answer
        .content_type
        .as_deref()
        .is_some_and(|t| t.contains("html"));
    let tags = |b: &[u8]| b.iter().filter(|&&c| c == b'<').count();
    assert!(
        !markup || tags(body) <= tags(text.source().as_bytes()),
        "{text:?}"
    );
}

/// Routes and the requests they route: lines beginning `route.` are
/// route keys (beside three pools), the others `host target` pairs. No
/// request target a client may send makes routing panic, a rewritten
/// target is a path with no dot-segment, a backend's `Location` brought
/// back under a route is a path, its `Set-Cookie` changes in its `Path`
/// values alone, and a redirect never leaves for a host the client names
/// (no `//` or `\` at its start, a URL's host as written). Each route
/// has the `rate_limit=` its line writes, and only such a line. A
/// `return` text is rendered for each request it answers.
pub fn routes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (keys, requests): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with("route."));
    let conf = format!(
        "targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002\npool.b = 127.0.0.1:9003\n{}\n",
        keys.join("\n")
    );
    let mut loader = Loader::new();
    let Ok(config) = loader.file("proxy.conf", &conf).and_then(|l| l.build()) else {
        return;
    };
    let routes = &config.routes;
    route_limits(&loader, routes);
    for request in requests {
        // `host target [cookie]`: the cookie for routes' conditions; a
        // host after `https://` for a request that came over HTTPS.
        let (host, rest) = request.split_once(' ').unwrap_or(("", request));
        let (host, https) = match host.strip_prefix("https://") {
            Some(host) => (host, true),
            None => (host, false),
        };
        let (target, cookie) = rest.split_once(' ').unwrap_or((rest, ""));
        let valid = check_target_bytes(target.as_bytes()).is_ok()
            && (target.starts_with('/') || target == "*");
        if !valid {
            continue;
        }
        let host = Some(host).filter(|h| !h.is_empty());
        let mut headers = Headers::new();
        if !cookie.is_empty() {
            headers.push("Cookie", cookie);
        }
        let asked = Asked {
            method: "GET",
            target,
            headers: &headers,
            client: std::net::Ipv4Addr::LOCALHOST.into(),
            listener: (std::net::Ipv4Addr::UNSPECIFIED, 8080).into(),
            https,
            geoip: inverso::geoip::Geo::default(),
        };
        // No request, no condition met (a negated one neither) but on the
        // path alone; a stored GET never came through a route that sends
        // around the cache.
        let found = |lookup| {
            let index = routes.route_asked(host, target, lookup).ok().flatten();
            index
                .and_then(|i| routes.get(i))
                .and_then(|r| r.condition())
        };
        let bare = found(Lookup::Bare);
        assert!(
            bare.is_none_or(Condition::reads_the_path_alone),
            "{request}"
        );
        let stored = found(Lookup::StoredGet { https });
        assert!(!stored.is_some_and(|c| c.reads_past_the_key()), "{request}");
        // A GET the cache may answer goes where what is stored for its URL
        // under its scheme is judged to have gone (a snapshot's entry).
        let routed = routes.route_asked(host, target, Lookup::Request(&asked));
        if let Ok(index) = &routed {
            let condition = index
                .and_then(|i| routes.get(i))
                .and_then(|r| r.condition());
            if !condition.is_some_and(Condition::reads_past_the_key) {
                let stored = routes.route_asked(host, target, Lookup::StoredGet { https });
                assert_eq!(stored.as_ref(), Ok(index), "{request}");
            }
        }
        let Ok(Some(index)) = routed else {
            continue;
        };
        let route = routes.get(index).expect("a route found is there");
        assert!(route.pool <= config.pools.len());
        // As routes read it: `*` goes by its host, at `/`.
        let path = match target.starts_with('/') {
            true => &target[..target.find('?').unwrap_or(target.len())],
            false => "/",
        };
        let read = unambiguous_reading(path).expect("a path routed is read one way");
        let met = |c: &Condition| c.met(Lookup::Request(&asked), &read);
        assert!(route.condition().is_none_or(met), "{route} for {request}");
        // A condition is read back as it is written (`check` lists it so,
        // and two routes are one when written alike).
        if let Some(condition) = route.condition() {
            let again = Condition::parse(&condition.to_string());
            assert_eq!(again.as_ref(), Ok(condition), "{condition}");
        }
        if let Some(answer) = route.returned() {
            // A body the proxy writes whole with its length: one line
            // (a bare 2xx's, its status line with its end).
            let text = answer.text.as_ref().map_or("", |t| t.source());
            let line = text.strip_suffix('\n').unwrap_or(text);
            assert!(!line.chars().any(char::is_control), "{text:?}");
            assert!(route.rewritten(target).is_none() && route.redirect().is_none());
            returned_body(
                answer,
                RequestHead {
                    method: "GET".into(),
                    target: target.into(),
                    version: Version::Http11,
                    headers: headers.clone(),
                },
            );
        }
        assert!(!is_ambiguous(path), "{target} was routed");
        if let Some(sent) = route.rewritten(target) {
            let sent_path = &sent[..sent.find('?').unwrap_or(sent.len())];
            assert!(sent.starts_with('/') && !sent.starts_with("//"), "{sent}");
            assert!(!is_ambiguous(sent_path), "{target} rewritten as {sent}");
            assert!(check_target_bytes(sent.as_bytes()).is_ok(), "{sent}");
        }
        // The request's own bytes as a backend's Location, from any host.
        for location in [request, target] {
            if let Some(back) = route.location_back(location, host) {
                let elsewhere = back.starts_with("//") || back.starts_with("/\\");
                assert!(back.starts_with('/') && !elsewhere, "{back}");
            }
        }
        // The request's bytes as a backend's `Set-Cookie`: only `Path`
        // values change, each to a path; every other byte is the field's.
        for field in [request, target, cookie].map(str::as_bytes) {
            let Some(back) = route.set_cookie_back(field) else {
                continue;
            };
            let before: Vec<_> = set_cookie_attributes(field, "path").collect();
            let after: Vec<_> = set_cookie_attributes(&back, "path").collect();
            assert_eq!(before.len(), after.len(), "{request}");
            let (mut was, mut is) = (0, 0);
            for (b, a) in before.into_iter().zip(after) {
                assert_eq!(field[was..b.start], back[is..a.start], "{request}");
                let (old, new) = (&field[b.clone()], &back[a.clone()]);
                let paths = old.starts_with(b"/") && new.starts_with(b"/");
                assert!(old == new || paths, "{request}");
                (was, is) = (b.end, a.end);
            }
            assert_eq!(field[was..], back[is..], "{request}");
        }
        if let Some((_, location)) = route.redirect_for(target) {
            let relative = location.starts_with('/');
            // A `\` may come from the client's path; it goes as `%5C` where
            // the `Location` field is written, so `/\x` cannot become `//x`.
            assert!(!location.starts_with("//"), "{location}");
            assert!(relative || location.starts_with("http"), "{location}");
            // `<to>` in place of the matched prefix: a URL's host as
            // written, then a path, its root's `/` at least (`/` to
            // `https://example.com/`), so no `?` or byte of the client's
            // lengthens the host.
            let (_, to) = route.redirect().expect("a redirect route");
            assert!(location.starts_with(to), "{to} made {location}");
            let site = to.split_once("://").map(|(scheme, after)| {
                let host = after.split('/').next().unwrap_or_default();
                scheme.len() + 3 + host.len()
            });
            if let Some(site) = site.filter(|_| target.starts_with('/')) {
                assert!(location[site..].starts_with('/'), "{to} made {location}");
            }
        }
    }
}

/// A route's own limit, as README's Routing says: each route line with
/// `rate_limit=<N>/s|m|h` has that rate, with `rate_limit_burst=`'s burst
/// or, without it, a second's worth of the rate, and `rate_limit_delay=`'s
/// delay or none; a line without has none;
/// and a route answered before any limit counts (a redirect, a `return`)
/// or that only a backend reaches (`internal`) never loads with one.
fn route_limits(loader: &Loader, routes: &inverso::routes::Routes) {
    use inverso::ratelimit::{Limit, Rate};
    let mut written: Vec<(String, u32, Option<u32>)> = Vec::new();
    for (key, setting) in loader.pool_and_route_settings() {
        if !key.starts_with("route.") {
            continue;
        }
        let words = || setting.value.split_whitespace();
        let option = |name: &str| words().find_map(|w| w.strip_prefix(name));
        let Some(rate) = option("rate_limit=") else {
            continue;
        };
        let rate = Rate::parse(rate).expect("a route that loads has its rate");
        let burst = option("rate_limit_burst=").map_or(rate.one_second(), |b| {
            b.parse().expect("a burst that loads")
        });
        let delay = option("rate_limit_delay=").map(|d| d.parse().expect("a delay that loads"));
        written.push((rate.to_string(), burst, delay));
    }
    let mut limited: Vec<(String, u32, Option<u32>)> = Vec::new();
    for route in routes.iter() {
        let Some(Limit { rate, burst, delay }) = route.rate_limit() else {
            continue;
        };
        assert!(
            route.returned().is_none() && route.redirect().is_none(),
            "{route}"
        );
        assert!(!route.is_internal(), "{route}");
        limited.push((rate.to_string(), burst, delay));
    }
    written.sort();
    limited.sort();
    assert_eq!(written, limited, "the routes' limits are not those written");
}

/// The cache snapshot loader on arbitrary bytes: it must never panic and
/// never allocate past what the input holds or the limits allow.
pub fn snapshot(data: &[u8]) {
    let limits = LoadLimits {
        max_record_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    if let Ok(loaded) = read_records(data, 0, &limits) {
        for record in &loaded.records {
            if let Ok(key) = std::str::from_utf8(&record.key) {
                respelled_for_good(key);
            }
        }
    }
    let _ = read_records(data, u64::MAX, &LoadLimits::UNLIMITED);
    snapshot_keys(data);
}

/// A stored key respelled as a load does (`Cache::load`) is spelled so
/// for good: the next snapshot writes it so, and the next load finds it
/// unchanged.
fn respelled_for_good(key: &str) {
    use inverso::cache::policy::respell_key;
    let once = respell_key(key);
    assert_eq!(respell_key(&once), once, "{key:?}");
}

/// Snapshot keys apart from the format's checksums (which keep mutated
/// records from loading): the input's lines as a key's variant part
/// (`cache_vary`'s `cookie:<name>` among them) respelled for good, and
/// as the `Cookie` fields of a request whose variant key, made as a
/// stored response's is, loads back unchanged.
fn snapshot_keys(data: &[u8]) {
    use inverso::cache::policy::{respell_key, variant_key, CacheVary};
    if let Ok(text) = std::str::from_utf8(data) {
        respelled_for_good(&format!("h/\n{text}"));
    }
    let vary = CacheVary::parse("cookie:lang, cookie:Cur, header:X-Device").expect("parses");
    let mut names = vec!["accept-encoding".to_string()];
    names.extend(vary.names().iter().cloned());
    names.sort();
    let mut headers = Headers::new();
    for line in data.split(|&b| b == b'\n') {
        headers.push("Cookie", line);
    }
    headers.push("X-Device", data);
    let key = variant_key("h/", &names, &headers);
    assert_eq!(respell_key(&key), key);
    assert!(vary.keyed(
        key.split('\n')
            .skip(1)
            .map(|p| p.split('=').next().unwrap_or(p))
    ));
}

/// HTTP Basic sign-in: the first line is an `Authorization` value (a
/// client's), the rest a users file. Credentials split at the first `:`
/// and give back what was encoded; a users file that loads has a user.
/// Passwords are not checked: a hash's cost is the file's, and a fuzzer
/// would spend its time in bcrypt.
pub fn auth(data: &[u8]) {
    let (field, file) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    if let Some(credentials) = Credentials::from_field(field) {
        assert!(!credentials.user().contains(&b':'));
    }
    let mut headers = Headers::default();
    headers.push("Authorization", field);
    let claimed = claimed_user(&headers);
    assert_eq!(claimed.is_some(), Credentials::from_field(field).is_some());
    if let Ok(text) = std::str::from_utf8(file) {
        if let Ok(users) = Users::parse(std::path::Path::new("fuzz"), text) {
            assert!(!users.is_empty());
        }
    }
}

/// The PROXY protocol header parser: a header found is found again in
/// exactly its own bytes and in none of their prefixes; an incomplete one
/// never holds more than the longest accepted; an error stays an error
/// however many bytes follow.
pub fn proxy_header(data: &[u8]) {
    match proxy_protocol::parse(data) {
        Ok(Some(header)) => {
            assert!(header.len <= data.len() && header.len <= V2_MAX);
            let again = proxy_protocol::parse(&data[..header.len]).unwrap().unwrap();
            assert_eq!(again, header);
            // Read off a socket a piece at a time, the header is taken
            // whole and not a byte past it (what follows is a TLS hello).
            assert_eq!(proxy_protocol::header_part(data), header.len);
            for cut in 0..header.len {
                assert_eq!(
                    proxy_protocol::parse(&data[..cut]),
                    Ok(None),
                    "cut at {cut}"
                );
                assert_eq!(
                    proxy_protocol::header_part(&data[..cut]),
                    cut,
                    "cut at {cut}"
                );
            }
        }
        Ok(None) => assert!(data.len() < V2_MAX),
        Err(_) => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n");
            assert!(proxy_protocol::parse(&more).is_err());
        }
    }
}

/// One `rewrite.<name>` rule as the fuzz input wrote it, read by the
/// check on its own (the README's words, not the crate's code): what
/// the rule applied to a request must then be, and make.
struct Written {
    name: String,
    regex: regex::Regex,
    replacement: String,
    flag: Option<String>,
    /// `host=`'s hosts: `(true, ".example.com")` for `*.example.com`,
    /// `(false, "example.com")` for a name.
    hosts: Vec<(bool, String)>,
}

impl Written {
    /// The status of the redirect the rule answers with, `None`: sent on.
    fn redirect(&self) -> Option<u16> {
        match self.flag.as_deref() {
            Some("permanent") => Some(301),
            Some("redirect") => Some(302),
            _ if is_url_written(&self.replacement) => Some(302),
            _ => None,
        }
    }

    /// Whether the replacement writes `$host` (or `${host}`).
    fn names_host(&self) -> bool {
        self.expand(Some("\u{1}"), "http").contains('\u{1}')
    }

    /// The replacement with the request's `host` and `scheme` written in
    /// place of `$host` and `$scheme` (`${host}`, `${scheme}`); every
    /// other variable and `$$` stay as written.
    fn expand(&self, host: Option<&str>, scheme: &str) -> String {
        let r = &self.replacement;
        let mut out = String::new();
        let mut i = 0;
        let name_char = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        while i < r.len() {
            let rest = &r[i..];
            if rest.starts_with("$$") {
                out.push_str("$$");
                i += 2;
                continue;
            }
            let value = |name: &str| match name {
                "host" => Some(host.unwrap_or_default().to_string()),
                "scheme" => Some(scheme.to_string()),
                _ => None,
            };
            let braced = rest.strip_prefix("${").and_then(|b| b.split_once('}'));
            if let Some((name, _)) = braced {
                out.push_str(&value(name).unwrap_or_else(|| format!("${{{name}}}")));
                i += name.len() + 3;
                continue;
            }
            // A bare name runs over every letter, digit and `_` after a
            // letter: written back braced when it is not expanded, so that
            // a value after it (`$request_uri$host`) does not run into it.
            let bare = rest
                .strip_prefix('$')
                .filter(|after| after.starts_with(|c: char| c.is_ascii_alphabetic()));
            if let Some(after) = bare {
                let len = (1..=after.len())
                    .find(|&n| !name_char(after.as_bytes().get(n)))
                    .unwrap_or(after.len());
                let name = &after[..len];
                out.push_str(&value(name).unwrap_or_else(|| format!("${{{name}}}")));
                i += len + 1;
                continue;
            }
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
        out
    }

    /// For a replacement that is a URL: its scheme and host (before any
    /// `$N`), for a request for `host` that came as `scheme`, which every
    /// `Location` it makes starts with.
    fn site(&self, host: Option<&str>, scheme: &str) -> Option<String> {
        if !is_url_written(&self.replacement) {
            return None;
        }
        let mut literal = String::new();
        let expanded = self.expand(host, scheme);
        let mut chars = expanded.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('$', Some('$')) => {
                    chars.next();
                    literal.push('$');
                }
                ('$', _) => break,
                (c, _) => literal.push(c),
            }
        }
        let (scheme, rest) = literal.split_once("://")?;
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        Some(format!("{scheme}://{authority}"))
    }

    /// What the replacement makes of a path (as routes read it) and the
    /// client's `target` (origin-form, as sent): `$N` the group's text
    /// (empty when it took no part; a named one by its name too), `$$` a
    /// dollar, `$request_uri` the target, `$args` (`$query_string`) its
    /// query and `$is_args` a `?`
    /// when it has one (a bare `?` is none); no `?` keeps the client's
    /// query, `?args` puts it after its own with `&`, a `?` at the end
    /// drops it (and is not written), and a replacement that writes the
    /// query (any of those three) has none appended.
    fn made(&self, path: &str, target: &str, host: Option<&str>, scheme: &str) -> String {
        let query = target
            .split_once('?')
            .map(|(_, q)| q)
            .filter(|q| !q.is_empty());
        let captures = self.regex.captures(path);
        let written = &self.expand(host, scheme);
        let (text, mode) = match written.strip_suffix('?') {
            Some(text) => (text, 'd'),
            None if written.contains('?') => (&written[..], 'a'),
            None => (&written[..], 'k'),
        };
        let mut made = String::new();
        let mut writes_query = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                made.push(c);
                continue;
            }
            let name = match chars.next() {
                Some('$') => {
                    made.push('$');
                    continue;
                }
                Some('{') => chars.by_ref().take_while(|&c| c != '}').collect(),
                Some(d) if d.is_ascii_digit() => d.to_string(),
                Some(first) => {
                    let mut name = String::from(first);
                    while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        name.push(c);
                    }
                    name
                }
                None => unreachable!("a rule that loads ends with no lone `$`"),
            };
            match name.as_str() {
                "request_uri" => made.push_str(target),
                "args" | "query_string" => made.push_str(query.unwrap_or_default()),
                "is_args" => made.push_str(if query.is_some() { "?" } else { "" }),
                group => {
                    let named = || (self.regex.capture_names()).position(|g| g == Some(group));
                    let n = (group.parse::<usize>().ok())
                        .or_else(named)
                        .expect("a rule that loads names $1 to $9 or a named group");
                    let group = captures.as_ref().and_then(|c| c.get(n));
                    made.push_str(group.map_or("", |m| m.as_str()));
                    continue;
                }
            }
            writes_query = true;
        }
        match (mode, query) {
            _ if writes_query => {}
            ('k', Some(q)) => made = format!("{made}?{q}"),
            ('a', Some(q)) => made = format!("{made}&{q}"),
            _ => {}
        }
        made
    }
}

fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// A replacement written as a URL: `$scheme://` counts.
fn is_url_written(text: &str) -> bool {
    is_url(text) || text.starts_with("$scheme://") || text.starts_with("${scheme}://")
}

/// nginx's `$host` of a valid authority: without port or trailing dot, in
/// lower case (an IPv6 address as written).
fn dollar_host(authority: &str) -> String {
    let host = match authority.starts_with('[') {
        true => &authority[..authority.find(']').map_or(authority.len(), |i| i + 1)],
        false => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let host = host
        .strip_suffix('.')
        .filter(|h| !h.is_empty())
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// A host as rules compare it: without port or trailing dot, in lower
/// case, an IPv6 address in its one spelling.
fn compared_host(authority: &str) -> String {
    let lower = dollar_host(authority);
    let inner = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    match inner.and_then(|h| h.parse::<std::net::Ipv6Addr>().ok()) {
        Some(address) => format!("[{address}]"),
        None => lower,
    }
}

/// Whether some segment of `path`, decoded as a backend may decode it
/// (every escape, once or twice; `\` a `/`; `;` parameters dropped), is
/// `.` or `..`; or the crate's own reading of such paths
/// (`is_ambiguous`), as sent or as rules read it, says so.
fn dot_segment_however_read(path: &str) -> bool {
    fn decoded(bytes: &[u8]) -> Vec<u8> {
        let hex = |b: u8| (b as char).to_digit(16);
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let pair = (bytes[i] == b'%')
                .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
                .flatten();
            match pair {
                Some((hi, lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        out
    }
    let dots = |bytes: &[u8]| {
        bytes.split(|&b| b == b'/' || b == b'\\').any(|segment| {
            let name = segment.split(|&b| b == b';').next().unwrap_or_default();
            name == b"." || name == b".."
        })
    };
    let once = decoded(path.as_bytes());
    is_ambiguous(path)
        || is_ambiguous(&routing_path(path))
        || dots(path.as_bytes())
        || dots(&once)
        || dots(&decoded(&once))
}

/// `rewrite.<name>` rules and an `auth_request_redirect` URL, through the
/// configuration loader, and the requests they are applied to: lines
/// beginning `rewrite.` or `auth_request_redirect` are keys, the others
/// `host target [field]` requests (`field` is an `X-A` field and the
/// user `$remote_user` names). As the README says:
///
/// - a request is tried on the rules without `host=` and those of the
///   most specific host written that is its own (a name's, else the
///   longest `*.` one's), in the order written, and the first whose
///   pattern matches the path as routes read it (never the query)
///   applies, no other; a path backends read otherwise is refused (400)
///   only for a host some rule is tried on, and then when it holds a
///   dot segment or such an escape, as sent or as rules read it, or when
///   read with `%2F` decoded or `;` parameters dropped another rule
///   (or none) would apply;
/// - a rule that writes `$host` is tried only on a request that names a
///   host;
/// - what the rule makes is the replacement with `$N` (`${N}`) the
///   group's text, `$host` nginx's host of the request (lower case, no
///   port, no final dot), `$scheme` its scheme and `$$` a dollar, then
///   the query: no `?` keeps the client's,
///   `?args` puts it after its own with `&`, a `?` at the end drops it;
/// - `permanent` is a 301, `redirect` a 302, a replacement that is a URL
///   a 302 whatever the flag; anything else is sent on;
/// - sent on, it starts with `/`, holds only what a target may hold, at
///   most 8 KiB, and no `.` or `..` segment however a backend decodes
///   it; a redirect goes to a path on this site (one `/`, not `//` or
///   `/\`) or, from a replacement that is a URL, to the scheme and host
///   written (or the request's), followed by `/`, `?` or nothing: no
///   group makes the host;
/// - otherwise the request is answered 500 (`Unusable`), and only then;
/// - the `auth_request_redirect` URL rendered for the request (after the
///   rule) is visible ASCII without `\` or `#`; it goes to the host
///   written, or is a path that does not start with `//` or `/\`; after
///   the first `?` written a variable is one query value (it adds no
///   `&`, `=`, `?`, ... of its own); a `%` starts an escape;
/// - a request field's `$is_args` and `$args` are those of the query the
///   request goes on with (after the rule, the one it made).
pub fn rewrite(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let is_key = |l: &&str| {
        [
            "rewrite.",
            "auth_request_redirect",
            "location_rewrite",
            "cookie_domain",
            "cookie_path",
        ]
        .iter()
        .any(|k| l.starts_with(k))
    };
    let (keys, requests): (Vec<&str>, Vec<&str>) = text.lines().partition(is_key);
    let conf = format!(
        "targets = 127.0.0.1:9001\npool.sso = 127.0.0.1:9002\nauth_request = sso /check\n{}\n",
        keys.join("\n")
    );
    let mut loader = Loader::new();
    let Ok(config) = loader.file("proxy.conf", &conf).and_then(|l| l.build()) else {
        return;
    };
    let rules: Vec<&inverso::rewrite::Rule> = config.rewrites.iter().collect();
    // Each rule as its line wrote it (the loader drops what follows `#`).
    let mut written = Vec::new();
    for rule in &rules {
        let line = keys.iter().find_map(|k| {
            let k = k.split('#').next().unwrap_or_default();
            let (key, value) = k.split_once('=')?;
            (key.trim() == format!("rewrite.{}", rule.name())).then_some(value)
        });
        let words: Vec<&str> = line.expect("a rule's line").split_whitespace().collect();
        assert_eq!(words[0], rule.pattern());
        assert_eq!(words[1], rule.replacement());
        let mut flag = None;
        let mut hosts = Vec::new();
        for word in &words[2..] {
            match word.strip_prefix("host=") {
                Some(list) => {
                    for host in list.split(',') {
                        hosts.push(match host.strip_prefix("*.") {
                            Some(name) => (true, format!(".{}", compared_host(name))),
                            None => (false, compared_host(host)),
                        })
                    }
                }
                None => flag = Some(word.to_string()),
            }
        }
        assert_eq!(flag.as_deref(), rule.flag(), "{}", rule.name());
        let regex = regex::Regex::new(rule.pattern()).expect("a rule's pattern compiles");
        let written_rule = Written {
            name: rule.name().to_string(),
            regex,
            replacement: rule.replacement().to_string(),
            flag,
            hosts,
        };
        assert_eq!(written_rule.redirect(), rule.redirect(), "{}", rule.name());
        // At load: the replacement starts with `/`, `$N`, or a URL whose
        // host is written (none from a group).
        let r = &written_rule.replacement;
        match written_rule.site(Some("h.example"), "http") {
            Some(site) => {
                let host = site.split_once("://").map_or("", |(_, h)| h);
                assert!(!host.is_empty() && !host.ends_with('@'), "{r}");
            }
            None => assert!(r.starts_with('/') || r.starts_with('$'), "{r}"),
        }
        assert!(!r.contains(['#', '\\', ' ']), "{r}");
        written.push(written_rule);
    }
    let redirect = config.auth_request_redirect.as_ref();
    if let Some(url) = redirect {
        auth_redirect_loaded(url.source());
    }
    for (n, request) in requests.into_iter().enumerate() {
        let (host, rest) = request.split_once(' ').unwrap_or(("", request));
        let (target, field) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut wire = format!("GET {target} HTTP/1.1\r\n");
        if host.is_empty() {
            wire = format!("GET {target} HTTP/1.0\r\n");
        } else {
            wire.push_str(&format!("Host: {host}\r\n"));
        }
        if !field.is_empty() {
            wire.push_str(&format!("X-A: {field}\r\n"));
        }
        wire.push_str("\r\n");
        let Ok(mut head) = parse_request(wire.as_bytes(), &RequestLimits::default()) else {
            continue;
        };
        // The host of an absolute-form target, or else of `Host`.
        let absolute = ["http://", "https://"]
            .iter()
            .find(|s| {
                target
                    .get(..s.len())
                    .is_some_and(|t| t.eq_ignore_ascii_case(s))
            })
            .map(|s| &target[s.len()..]);
        let authority = match absolute {
            Some(rest) => Some(&rest[..rest.find(['/', '?']).unwrap_or(rest.len())]),
            // Sent only when the line names one, without its blanks.
            None => (!host.is_empty()).then(|| host.trim_matches([' ', '\t'])),
        };
        assert_eq!(head.authority(), authority, "{request}");
        let authority = authority.map(str::to_string);
        let sent = head.origin_target().into_owned();
        let https = n % 2 == 1;
        let scheme = if https { "https" } else { "http" };
        let asked = (authority, scheme);
        let (made, refused) = rewritten(&config.rewrites, &rules, &written, asked, &sent);
        if refused {
            continue;
        }
        let client_target = made.map(|to| head.set_path_and_query(&to));
        let facts = Facts {
            head: &head,
            sent_target: client_target.as_deref(),
            client: std::net::Ipv4Addr::new(192, 0, 2, 10).into(),
            peer: ([192, 0, 2, 10], 51_000).into(),
            proxied_to: None,
            proxy_tlvs: None,
            server: (std::net::Ipv4Addr::new(192, 0, 2, 1), 8080).into(),
            user: Some(field).filter(|f| !f.is_empty()),
            jwt_claims: None,
            scheme,
            tls: https.then_some(inverso::http::tls::Agreed {
                protocol: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                resumed: false,
                alpn: Some("http/1.1"),
                group: Some("X25519"),
            }),
            server_name: https.then_some("www.example.com"),
            certificate: None,
            request_id: Some("r-1"),
            trace: None,
            pool: Some("default"),
            connection: Some((7, 3)),
            route_host: None,
            geoip: inverso::geoip::Geo::default(),
            now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        is_args_field(&facts, &head);
        backend_urls_made_the_client_s(&config, &facts, field);
        let Some(url) = redirect else {
            continue;
        };
        let mut out = Vec::new();
        url.render_url(&facts, &mut out);
        auth_redirect_rendered(url.source(), &out, facts.scheme);
    }
}

/// `field` as a backend's `Location`, `Refresh` and `Set-Cookie`, as
/// README says of `location_rewrite` and `cookie_domain`: what replaces
/// a URL's start (or, for a pattern, the URL) is the rule's, its
/// variables' values escaped where a URL cannot hold them (no control
/// byte, space or `\` comes from them), and its groups the URL's own;
/// a cookie keeps every byte but its `Domain` and `Path` values.
fn backend_urls_made_the_client_s(
    config: &inverso::config::Config,
    facts: &Facts<'_>,
    field: &str,
) {
    let rules = &config.location_rewrite;
    let rendered = rules.for_request(facts);
    let unsafe_byte = |b: &u8| b.is_ascii_control() || b" \\".contains(b);
    // A pattern's group may write a byte of the field twice, but never
    // one the field does not have.
    let added = |made: &str| {
        made.bytes()
            .any(|b| unsafe_byte(&b) && !field.as_bytes().contains(&b))
    };
    if let Some(made) = rules.location(&rendered, field) {
        assert!(!added(&made), "{field} made {made}");
        assert!(rules.location(&rendered, field) == Some(made), "one answer");
    }
    if let Some(made) = rules.refresh(&rendered, field) {
        assert!(!added(&made), "{field} made {made}");
        let url = field
            .to_ascii_lowercase()
            .find("url=")
            .expect("a Refresh made has url=");
        assert_eq!(made[..url], field[..url], "{field} made {made}");
    }
    let host = facts.head.authority().map(inverso::variables::host_of);
    if let Some(made) = config.cookie_domain.apply(field.as_bytes(), host) {
        only_values_changed(field.as_bytes(), &made, "domain", b";, ");
    }
    if let Some(made) = config.cookie_path.apply(field.as_bytes()) {
        only_values_changed(field.as_bytes(), &made, "path", b";");
    }
}

/// `made` is `field` (a `Set-Cookie` value) but for the values of its
/// `attribute`s, as many as it had, each with no more control bytes or
/// bytes of `not_in` than it had: a rule's replacement brings none.
fn only_values_changed(field: &[u8], made: &[u8], attribute: &'static str, not_in: &[u8]) {
    let shown = String::from_utf8_lossy(field);
    let before: Vec<_> = set_cookie_attributes(field, attribute).collect();
    let after: Vec<_> = set_cookie_attributes(made, attribute).collect();
    assert_eq!(before.len(), after.len(), "{shown}");
    let (mut was, mut is) = (0, 0);
    for (b, a) in before.into_iter().zip(after) {
        assert_eq!(field[was..b.start], made[is..a.start], "{shown}");
        let unsafe_bytes = |value: &[u8]| {
            let unsafe_byte = |b: &&u8| b.is_ascii_control() || not_in.contains(b);
            value.iter().filter(unsafe_byte).count()
        };
        let (old, new) = (&field[b.clone()], &made[a.clone()]);
        assert!(unsafe_bytes(new) <= unsafe_bytes(old), "{shown}");
        (was, is) = (b.end, a.end);
    }
    assert_eq!(field[was..], made[is..], "{shown}");
}

/// A request field of `$is_args` and `$args`, as README's Templates
/// say of a header field: the query the request goes on with (after a
/// rule, the one it made), `$is_args` a `?` only when that query is not
/// empty, so that `$uri$is_args$args` writes the target back.
fn is_args_field(facts: &Facts<'_>, head: &RequestHead) {
    use inverso::config::FieldFamily;
    use inverso::field_value::FieldValue;
    let value = FieldValue::parse("[$is_args][$args]", FieldFamily::Request).expect("parses");
    let mut out = Vec::new();
    value.render(facts, &mut out);
    let target = head.origin_target();
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let is_args = if query.is_empty() { "" } else { "?" };
    let expected = format!("[{is_args}][{query}]");
    assert_eq!(String::from_utf8_lossy(&out), expected, "{}", head.target);
}

/// The rules applied to one request for `authority` and `target` (its
/// origin-form path and query), checked: the target it goes on with,
/// when a rule made one, and whether the request is answered by the
/// proxy (400 for a path read otherwise, a redirect, a 500).
fn rewritten(
    rewrites: &inverso::rewrite::Rewrites,
    rules: &[&inverso::rewrite::Rule],
    written: &[Written],
    (authority, scheme): (Option<String>, &'static str),
    target: &str,
) -> (Option<String>, bool) {
    use inverso::rewrite::Rewritten;
    let for_host = rewrites.for_request(authority.as_deref(), scheme);
    // A rule that writes `$host` is not tried on a request without one.
    let named = authority
        .as_deref()
        .map(dollar_host)
        .filter(|h| !h.is_empty());
    // The rules this host's requests are tried on: those without `host=`,
    // and those of the most specific host written that is this one.
    let host = authority.as_deref().map(compared_host);
    let rank = |&(wild, ref name): &(bool, String)| match wild {
        false => (2, 0),
        true => (1, name.len()),
    };
    let is_host = |&(wild, ref name): &(bool, String)| match (&host, wild) {
        (None, _) => false,
        (Some(host), false) => host == name,
        (Some(host), true) => host.len() > name.len() && host.ends_with(name.as_str()),
    };
    let best = (written.iter().flat_map(|w| &w.hosts))
        .filter(|h| is_host(h))
        .map(rank)
        .max();
    let taken = |w: &Written| {
        (w.hosts.is_empty() || w.hosts.iter().any(|h| is_host(h) && Some(rank(h)) == best))
            && (named.is_some() || !w.names_host())
    };
    let first = |path: &str| (written.iter()).position(|w| taken(w) && w.regex.is_match(path));
    let path = &target[..target.find('?').unwrap_or(target.len())];
    let read = routing_path(path);
    let some_taken = written.iter().any(taken);
    let ambiguous = target.starts_with('/')
        && some_taken
        && (is_ambiguous(path)
            || is_ambiguous(&read)
            || other_reading(path).is_some_and(|other| first(&other) != first(&read)));
    assert_eq!(
        for_host.ambiguous(target),
        ambiguous,
        "{authority:?} {target}"
    );
    if ambiguous {
        return (None, true);
    }
    let before: Vec<u64> = rules.iter().map(|r| r.applied()).collect();
    let outcome = for_host.apply(target);
    let counted: Vec<usize> = (rules.iter().zip(&before))
        .enumerate()
        .filter(|(_, (r, &b))| r.applied() != b)
        .map(|(i, _)| i)
        .collect();
    let expected = match target.starts_with('/') {
        true => first(&read),
        false => None,
    };
    let Some(index) = expected else {
        assert!(
            matches!(outcome, Ok(None)),
            "{authority:?} {target}: no rule is for it, made {outcome:?}"
        );
        assert!(counted.is_empty());
        return (None, false);
    };
    let rule = &written[index];
    let made = rule.made(&read, target, named.as_deref(), scheme);
    let status = rule.redirect();
    let at = |why: &str| format!("rewrite.{} on {authority:?} {target}: {why}", rule.name);
    let bytes_fit = made.len() <= 8 * 1024 && check_target_bytes(made.as_bytes()).is_ok();
    let made_path = &made[..made.find('?').unwrap_or(made.len())];
    let usable = bytes_fit
        && match status {
            None => made.starts_with('/') && !dot_segment_however_read(made_path),
            Some(_) => match rule.site(named.as_deref(), scheme) {
                Some(site) => (made.strip_prefix(&site))
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?'])),
                // A `\\` goes as `%5C` where `Location` is written.
                None => made.starts_with('/') && !made.starts_with("//"),
            },
        };
    match outcome {
        Err(unusable) => {
            assert_eq!(*unusable.rule, *rule.name, "{}", at("another rule failed"));
            assert!(counted.is_empty());
            assert!(!usable, "{}", at(&format!("refused `{made}` ({unusable})")));
            (None, true)
        }
        Ok(None) => panic!(
            "{}",
            at(&format!("applied no rule, where it makes `{made}`"))
        ),
        Ok(Some(done)) => {
            assert_eq!(counted, [index], "{}", at("counted as another rule"));
            assert!(usable, "{}", at(&format!("made {done:?}")));
            match (done, status) {
                (Rewritten::Internal(to), None) => {
                    assert_eq!(to, made, "{}", at("made another target"));
                    (Some(to), false)
                }
                (Rewritten::Redirect { status, location }, Some(expected)) => {
                    assert_eq!(status, expected, "{}", at("another status"));
                    assert_eq!(location, made, "{}", at("made another Location"));
                    (None, true)
                }
                (done, _) => panic!(
                    "{}",
                    at(&format!("{done:?}, where the status is {status:?}"))
                ),
            }
        }
    }
}

/// An `auth_request_redirect` URL that loaded: a path that starts with
/// one `/` and no variable, or a URL whose host is written; visible ASCII
/// without `\` or `#`.
fn auth_redirect_loaded(source: &str) {
    assert!(
        source
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'#'),
        "{source}"
    );
    match url_host(source) {
        Some(host) => assert!(!host.is_empty() && !host.contains('$'), "{source}"),
        None => assert!(
            source.starts_with('/') && !source.starts_with("//") && !source.starts_with("/$"),
            "{source}"
        ),
    }
}

/// The host (authority) a URL or template starts with after its scheme
/// (`$scheme://` too); `None` for a path.
fn url_host(url: &str) -> Option<&str> {
    let rest = ["http://", "https://", "$scheme://", "${scheme}://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))?;
    Some(&rest[..rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len())])
}

/// `rendered`, the URL a client of `scheme` is sent to by the
/// `auth_request_redirect` template `source`.
fn auth_redirect_rendered(source: &str, rendered: &[u8], scheme: &str) {
    let shown = String::from_utf8_lossy(rendered);
    let fits = |&b: &u8| b.is_ascii_graphic() && b != b'\\' && b != b'#';
    assert!(rendered.iter().all(fits), "{source} made {shown}");
    let rendered = std::str::from_utf8(rendered).expect("ASCII");
    match url_host(source) {
        Some(host) => {
            let written = format!("{scheme}://");
            let prefix = match source.starts_with('$') {
                true => written.as_str(),
                false => &source[..source.find("://").expect("a URL") + 3],
            };
            assert!(rendered.starts_with(prefix), "{source} made {shown}");
            assert_eq!(url_host(rendered), Some(host), "{source} made {shown}");
        }
        None => {
            let elsewhere = rendered.starts_with("//") || rendered.starts_with("/\\");
            assert!(
                rendered.starts_with('/') && !elsewhere,
                "{source} made {shown}"
            );
        }
    }
    // A `%` starts an escape, where the template's own do.
    let escapes = |text: &str| {
        let b = text.as_bytes();
        (0..b.len()).filter(|&i| b[i] == b'%').all(|i| {
            b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        })
    };
    if escapes(source) {
        assert!(escapes(rendered), "{source} made {shown}");
    }
    // After the first `?` written (with no variable before it), each
    // variable is one query value: the delimiters are the template's.
    if let Some(q) = source.find('?').filter(|&q| !source[..q].contains('$')) {
        let (before, query) = source.split_at(q);
        let (head, tail) = rendered.split_at(before.len().min(rendered.len()));
        if !source.starts_with('$') {
            assert_eq!(head, before, "{source} made {shown}");
        }
        for delimiter in ['?', '&', '=', '/', ':', '@', '+', ';', ','] {
            let count = |text: &str| text.matches(delimiter).count();
            assert_eq!(count(tail), count(query), "{source} made {shown}");
        }
    }
}

/// The fields a `range` input fills, in its order: the request's first
/// (`Range`, `If-Range`, `If-None-Match`, `If-Modified-Since`), then the
/// stored response's.
const RANGE_REQUEST_FIELDS: [&str; 4] = ["Range", "If-Range", "If-None-Match", "If-Modified-Since"];
const RANGE_STORED_FIELDS: [&str; 6] = [
    "ETag",
    "Last-Modified",
    "Date",
    "Content-Encoding",
    "Accept-Ranges",
    "Content-Type",
];

/// A head of `start` and the fields named in `names`, each section of
/// `sections` (if any) one or several lines of its field, split at `\n`.
fn range_head(start: &str, names: &[&str], sections: &[&[u8]], skip: Option<&str>) -> Vec<u8> {
    let mut head = start.as_bytes().to_vec();
    for (name, section) in names.iter().zip(sections) {
        if section.is_empty() || Some(*name) == skip {
            continue;
        }
        for line in section.split(|&b| b == b'\n') {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend(line.iter().copied().filter(|&b| b != b'\r'));
            head.extend_from_slice(b"\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A byte position as RFC 9110 §14.1.1 writes it (`1*DIGIT`), of any
/// size: its digits without leading zeros, which order positions as
/// (length, digits); `None` if it is not one.
fn range_position(s: &str) -> Option<(usize, &str)> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    Some((digits.len(), digits))
}

/// A position's value, any past `u128` (and so past any body) as
/// `u128::MAX`.
fn range_value((_, digits): (usize, &str)) -> u128 {
    digits
        .parse()
        .unwrap_or(if digits.is_empty() { 0 } else { u128::MAX })
}

/// What RFC 9110 §14 and the README say a `Range` value of a body of
/// `len > 0` bytes asks for, written apart from `range.rs`: `None` if the
/// set is to be ignored (another unit, a malformed set, more than
/// `MAX_RANGES` ranges); else how many ranges were asked for and the
/// satisfiable ones, clamped to the body, in the order asked.
fn range_model(value: &str, len: u64) -> Option<(usize, Vec<(u64, u64)>)> {
    use inverso::http::range::MAX_RANGES;
    let (unit, set) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.len() > MAX_RANGES {
        return None;
    }
    let len = len as u128;
    let mut spans = Vec::new();
    for spec in &specs {
        let (first, last) = spec.split_once('-')?;
        if first.is_empty() {
            let suffix = range_value(range_position(last)?);
            if suffix > 0 {
                spans.push((len - suffix.min(len), len - 1));
            }
            continue;
        }
        let start = range_position(first)?;
        let end = match last {
            "" => u128::MAX,
            last => {
                let end = range_position(last)?;
                // Last before first: invalid, however large (§14.1.1).
                if end < start {
                    return None;
                }
                range_value(end)
            }
        };
        let start = range_value(start);
        if start < len {
            spans.push((start, end.min(len - 1)));
        }
    }
    let spans = spans
        .into_iter()
        .map(|(s, e)| (s as u64, e as u64))
        .collect();
    Some((specs.len(), spans))
}

/// Whether `a` is one well-formed entity-tag (RFC 9110 §8.8.3).
fn is_entity_tag(a: &str) -> bool {
    let opaque = a.strip_prefix("W/").unwrap_or(a);
    opaque.len() >= 2
        && opaque.starts_with('"')
        && opaque.ends_with('"')
        && !opaque[1..opaque.len() - 1].contains('"')
}

/// The client-controlled range and conditional logic a cache hit answers
/// with (`range::requested`, `Multipart`, `policy::not_modified`). The
/// input: a byte choosing the stored status (its low 3 bits) and how far
/// to shift the next three (the body's length, up to 4 MiB, never
/// allocated past 64 KiB), then sections split at NUL,
/// each one or several lines (split at `\n`) of a field: the request's
/// `Range`, `If-Range`, `If-None-Match`, `If-Modified-Since`, then the
/// stored response's `ETag`, `Last-Modified`, `Date`, `Content-Encoding`,
/// `Accept-Ranges`, `Content-Type`. Heads the parsers refuse are never
/// answered from the cache, and are skipped.
///
/// What is checked is what the README (Cache, **Ranges:**) promises: the
/// answer is the one RFC 9110 §14 gives (a model written apart), every part
/// lies within the body, in the order asked, none overlapping, at most
/// `MAX_RANGES`; 416 only when no range starts within the body; several
/// ranges of a coded body, and an `If-Range` that does not match strongly,
/// get the whole response (and one that does changes nothing); a multipart
/// body is as long as its `Content-Length` says, at most the body and
/// `MAX_RANGES` small heads. And the conditions (RFC 9110 §13.1.2-3,
/// §13.2.2): `*` and a weakly equal entity-tag in `If-None-Match` give a
/// 304, and only they when it is there.
pub fn range(data: &[u8]) {
    use inverso::cache::policy::not_modified;
    use inverso::http::date::parse_http_date;
    use inverso::http::range::{requested, Multipart, Ranged, Span, MAX_RANGES};

    let Some((&[status, a, b, c], rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    // Small lengths are the likelier, up to 4 MiB.
    let raw = u32::from_be_bytes([0, a, b, c]) & 0x3F_FFFF;
    let len = u64::from(raw >> (status >> 3).min(22));
    let status = [200, 200, 200, 200, 206, 204, 304, 404][status as usize % 8];
    let sections: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
    let (asked, kept) = sections.split_at(sections.len().min(4));
    let request_of = |skip| {
        let head = range_head(
            "GET / HTTP/1.1\r\nHost: a\r\n",
            &RANGE_REQUEST_FIELDS,
            asked,
            skip,
        );
        parse_request(&head, &RequestLimits::default()).ok()
    };
    let Some(request) = request_of(None) else {
        return;
    };
    let stored = range_head(
        &format!("HTTP/1.1 {status} X\r\n"),
        &RANGE_STORED_FIELDS,
        kept,
        None,
    );
    let Ok(stored) = parse_response(&stored) else {
        return;
    };
    let (request, stored_head) = (&request.headers, &stored.headers);

    // The conditions.
    let fresh = not_modified(request, &stored);
    if !(200..300).contains(&stored.status) {
        assert!(!fresh, "a 304 for a stored {}", stored.status);
    } else if request.contains("if-none-match") {
        let tags: Vec<&str> = request.quoted_list("if-none-match").collect();
        let etag = stored_head.get_str("etag");
        if tags.contains(&"*") {
            assert!(fresh, "If-None-Match: * of a stored 2xx");
        }
        // Well-formed tags, compared weakly (§8.8.3.2).
        let opaque = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_string();
        if let Some(etag) = etag.filter(|e| is_entity_tag(e)) {
            if tags
                .iter()
                .any(|t| is_entity_tag(t) && opaque(t) == opaque(etag))
            {
                assert!(fresh, "{tags:?} matches {etag}");
            }
            if tags
                .iter()
                .all(|t| is_entity_tag(t) && opaque(t) != opaque(etag))
            {
                assert!(!fresh, "{tags:?} does not match {etag}");
            }
        }
        if etag.is_none() && tags.iter().all(|t| *t != "*") {
            assert!(!fresh, "a tag matched a response without one");
        }
    } else {
        let since: Vec<&[u8]> = request.get_all("if-modified-since").collect();
        let since = match since[..] {
            [one] => std::str::from_utf8(one)
                .ok()
                .and_then(|s| parse_http_date(s.trim())),
            _ => None,
        };
        let modified = (stored_head.get_str("last-modified"))
            .or_else(|| stored_head.get_str("date"))
            .and_then(parse_http_date);
        let expected = matches!((since, modified), (Some(s), Some(m)) if m <= s);
        assert_eq!(
            fresh, expected,
            "If-Modified-Since {since:?}, modified {modified:?}"
        );
    }

    // The range.
    let ranged = requested(request, stored_head, len);
    let ranges: Vec<&[u8]> = request.get_all("range").collect();
    let if_range: Vec<&[u8]> = request.get_all("if-range").collect();
    let refused = stored_head.has_token("accept-ranges", "none");
    // RFC 9110 §13.1.5: strong comparison, of a tag or of a date.
    let strong = match if_range[..] {
        [] => true,
        [one] => std::str::from_utf8(one).is_ok_and(|condition| {
            let condition = condition.trim();
            let etag = stored_head.get_str("etag");
            if condition.starts_with('"') {
                return etag == Some(condition);
            }
            let date_of = |name| stored_head.get_str(name).and_then(parse_http_date);
            match (date_of("last-modified"), date_of("date")) {
                (Some(modified), Some(date)) => {
                    date >= modified + Duration::from_secs(1)
                        && parse_http_date(condition) == Some(modified)
                }
                _ => false,
            }
        }),
        _ => false,
    };
    let coded = (stored_head.get_all("content-encoding"))
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"));
    let model = match ranges[..] {
        [one] if len > 0 && !refused && strong => std::str::from_utf8(one)
            .ok()
            .and_then(|v| range_model(v, len)),
        _ => None,
    };
    let spans: Vec<(u64, u64)> = match &ranged {
        Ranged::Whole => Vec::new(),
        Ranged::Part { start, end } => vec![(*start, *end)],
        Ranged::Parts(spans) => spans.iter().map(|s| (s.start, s.end)).collect(),
        Ranged::Unsatisfiable => Vec::new(),
    };
    if ranged != Ranged::Whole {
        assert!(
            if_range.is_empty() || strong,
            "If-Range {if_range:?} holds weakly"
        );
        assert!(!refused && len > 0);
    }
    match &model {
        None => assert_eq!(ranged, Ranged::Whole, "no range set to answer"),
        Some((asked, model)) => {
            let overlap = (model.iter().enumerate())
                .any(|(i, a)| model[..i].iter().any(|b| a.0 <= b.1 && b.0 <= a.1));
            match model.len() {
                0 if *asked == 0 => assert_eq!(ranged, Ranged::Whole),
                0 => assert_eq!(ranged, Ranged::Unsatisfiable, "nothing starts within {len}"),
                1 => assert_eq!(spans, *model, "one range"),
                _ if overlap || coded => assert_eq!(ranged, Ranged::Whole, "overlap or coded"),
                _ => {
                    assert!(matches!(ranged, Ranged::Parts(_)));
                    assert_eq!(spans, *model, "the parts in the order asked");
                }
            }
        }
    }
    assert!(spans.len() <= MAX_RANGES);
    for (i, &(start, end)) in spans.iter().enumerate() {
        assert!(start <= end && end < len, "{start}-{end} of {len}");
        assert!(
            !spans[..i].iter().any(|&(s, e)| start <= e && s <= end),
            "overlap"
        );
    }
    // An If-Range that holds changes nothing.
    if !if_range.is_empty() && strong {
        let without = request_of(Some("If-Range")).unwrap();
        assert_eq!(ranged, requested(&without.headers, stored_head, len));
    }

    // The multipart body the cache would send.
    let Ranged::Parts(parts) = ranged else { return };
    let content_type = stored_head.get("content-type");
    let boundary = inverso::request_id::generate();
    let multipart = Multipart::new(parts.clone(), len, content_type, boundary.clone());
    let mut sent = 0u64;
    let mut heads = 0u64;
    let mut n = 0;
    for (frame, span) in multipart.parts() {
        assert_eq!(span, parts[n], "the parts in their order");
        let range = format!(
            "Content-Range: bytes {}-{}/{len}\r\n\r\n",
            span.start, span.end
        );
        assert!(
            frame.ends_with(range.as_bytes()),
            "{}",
            String::from_utf8_lossy(frame)
        );
        sent += frame.len() as u64 + span.size();
        heads += frame.len() as u64;
        n += 1;
    }
    assert_eq!(n, parts.len());
    let closing = multipart.closing();
    assert_eq!(closing, format!("\r\n--{boundary}--\r\n").as_bytes());
    sent += closing.len() as u64;
    heads += closing.len() as u64;
    assert_eq!(multipart.content_length(), sent);
    let body: u64 = parts.iter().map(|s: &Span| s.size()).sum();
    assert!(body <= len, "disjoint parts add up to at most the body");
    let frame_room = 110 + boundary.len() as u64 + content_type.map_or(0, |t| t.len() as u64);
    assert!(
        heads <= (parts.len() as u64 + 1) * frame_room,
        "{heads} bytes of heads"
    );
    let mut fields = Vec::new();
    multipart.push_fields(&mut fields);
    let length = format!("Content-Length: {sent}\r\n");
    assert!(fields.ends_with(length.as_bytes()));
    if len <= 65536 {
        let whole: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let slices = multipart.slices(&[b"head"], &whole);
        let out: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(out.len() as u64, 4 + sent);
    }
}

/// The list fields the cache rules read, on either side: two field lines
/// of one of them mean what one line with both values comma-joined means
/// (RFC 9110 §5.3), and the decisions must be the same.
const CACHE_LIST_FIELDS: &[&str] = &[
    "cache-control",
    "pragma",
    "vary",
    "surrogate-control",
    "cdn-cache-control",
    "edge-cache-control",
];

/// `headers` with every line of each of [`CACHE_LIST_FIELDS`] joined into
/// one, where its first stood; `None` when a value would not join to the
/// same list: an empty one (nothing to put between commas), or one whose
/// quotes are left open or escaped, which may swallow the next line's.
fn joined_lists(headers: &Headers) -> Option<Headers> {
    let mut out = Headers::new();
    for (name, value) in headers.iter() {
        let lower = name.to_ascii_lowercase();
        if !CACHE_LIST_FIELDS.contains(&lower.as_str()) {
            out.push(name, value);
            continue;
        }
        if out.contains(&lower) {
            continue;
        }
        let values: Vec<&[u8]> = headers.get_all(&lower).collect();
        let clean = |v: &&[u8]| {
            !v.trim_ascii().is_empty()
                && !v.contains(&b'\\')
                && v.iter().filter(|&&b| b == b'"').count() % 2 == 0
        };
        if values.len() > 1 && !values.iter().all(clean) {
            return None;
        }
        out.push(name, values.join(&b", "[..]));
    }
    Some(out)
}

/// What the cache makes of one request and response, every public
/// decision compared whole.
#[derive(Debug, PartialEq)]
struct CacheDecision {
    request: inverso::cache::policy::CacheControl,
    request_no_cache: bool,
    response: inverso::cache::policy::CacheControl,
    vary: Vec<String>,
    lifetime: Option<inverso::cache::policy::Lifetime>,
    birth: std::time::SystemTime,
}

fn cache_decision(
    request: &RequestHead,
    response: &ResponseHead,
    settings: &Settings,
    times: (std::time::SystemTime, std::time::SystemTime),
) -> CacheDecision {
    use inverso::cache::policy::{birth_time, CacheControl};
    let (request_time, response_time) = times;
    let cc = CacheControl::parse(&request.headers);
    CacheDecision {
        request_no_cache: cc.request_no_cache(&request.headers),
        request: cc,
        response: CacheControl::of_response(&response.headers, &settings.targeting),
        vary: settings.vary_names(response),
        lifetime: storable(request, response, response_time, settings),
        birth: birth_time(response, request_time, response_time),
    }
}

/// Whether a Cache-Control value, read as plainly as possible (no
/// quotes at all, split at every comma), has `directive` as a member.
fn plainly_has(headers: &Headers, directive: &str) -> bool {
    headers.get_all("cache-control").any(|v| {
        !v.contains(&b'"')
            && v.split(|&b| b == b',')
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(directive.as_bytes()))
    })
}

/// The response fields the cache reads (Cache-Control with its
/// directives, Expires, Date, Age, Last-Modified, Vary, the targeted
/// fields, Surrogate-Control, X-Accel-Expires) and the request's
/// Cache-Control and Pragma, through `storable`, `birth_time` and
/// `usable`. The first byte picks the status and settings, the second
/// and third how much later the entry is looked at; then lines of
/// `Name: value`, those after a line `>` for the request.
pub fn cache_rules(data: &[u8]) {
    use inverso::cache::policy::{
        must_revalidate, stale_while_revalidate, usable, CacheControl, Stored, Use,
    };
    const STATUSES: &[u16] = &[200, 203, 204, 206, 301, 304, 404, 410, 500, 503, 599, 600];
    let [flags, later_hi, later_lo, rest @ ..] = data else {
        return;
    };
    let status = STATUSES[usize::from(flags & 0x0f) % STATUSES.len()];
    let mut response = ResponseHead::new(status);
    let mut request = RequestHead {
        method: "GET".into(),
        target: "/".into(),
        version: Version::Http11,
        headers: Headers::new(),
    };
    request.headers.push("Host", "h");
    let mut to_request = false;
    for line in rest.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b">" {
            to_request = true;
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        match to_request {
            true => request.headers.push(name, value),
            false => response.headers.push(name, value),
        }
    }
    let ttl = Duration::from_secs(match flags >> 6 {
        0 => 3600,
        1 => 0,
        2 => 1,
        _ => u64::from(u32::MAX),
    });
    let plain = Settings {
        ttl,
        cache_unlabeled: flags & 0x10 != 0,
        stale_if_error: Duration::from_secs(60),
        stale_while_revalidate: Duration::from_secs(30),
        cache_valid: match flags & 0x20 {
            0 => Arc::default(),
            _ => Arc::new(CacheValid::parse("200 301 10m, any 1m").expect("parses")),
        },
        ..Settings::default()
    };
    let targeted = Settings {
        targeting: Targeting {
            surrogate_id: Some(Arc::from("edge")),
            x_accel_expires: true,
            fields: Arc::from(["edge-cache-control".into(), "cdn-cache-control".into()]),
            surrogate_keys: true,
        },
        ..plain.clone()
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let times = (now - Duration::from_millis(250), now);
    let later = now + Duration::from_secs(u64::from(u16::from_be_bytes([*later_hi, *later_lo])));
    let joined = (
        joined_lists(&request.headers),
        joined_lists(&response.headers),
    );
    for settings in [&plain, &targeted] {
        let decision = cache_decision(&request, &response, settings, times);
        // Two lines of a list field are one comma-joined line.
        if let (Some(req), Some(resp)) = &joined {
            let request = RequestHead {
                headers: req.clone(),
                ..request.clone()
            };
            let response = ResponseHead {
                headers: resp.clone(),
                ..response.clone()
            };
            let again = cache_decision(&request, &response, settings, times);
            assert_eq!(decision, again, "joined lines decide otherwise");
        }
        assert!(decision.birth <= now && decision.birth >= UNIX_EPOCH);
        let cc = &decision.response;
        // Cache-Control's own word, with no field for this cache alone.
        if settings.targeting == Targeting::default() {
            assert_eq!(*cc, CacheControl::parse(&response.headers));
            for directive in ["private", "no-store", "no-cache", "public"] {
                if plainly_has(&response.headers, directive) {
                    let read = [cc.private, cc.no_store, cc.no_cache, cc.public];
                    let at = ["private", "no-store", "no-cache", "public"]
                        .iter()
                        .position(|d| *d == directive);
                    assert!(read[at.unwrap()], "{directive} not read");
                }
            }
        }
        let Some(lifetime) = decision.lifetime else {
            continue;
        };
        // Never fresher than the operator's cap, never for a response
        // that is not for a shared cache.
        assert!(lifetime.fresh <= settings.ttl, "fresh past ttl");
        assert!(!cc.private, "private stored");
        assert!(!cc.no_store || cc.must_understand, "no-store stored");
        assert!(!decision.request.no_store, "request's no-store stored");
        if cc.no_cache {
            assert!(lifetime.fresh.is_zero(), "no-cache fresh");
        }
        if cc.forbids_stale() {
            assert!(lifetime.stale_if_error.is_zero(), "stale when forbidden");
        }
        // What a later request makes of the entry.
        let stored = Stored {
            age: later.duration_since(decision.birth).expect("born before"),
            fresh: lifetime.fresh,
            must_revalidate: must_revalidate(lifetime.fresh, cc, &response),
            stale_while_revalidate: stale_while_revalidate(
                lifetime.fresh,
                cc,
                &response,
                settings.stale_while_revalidate,
            ),
        };
        let req = &decision.request;
        let used = usable(req, decision.request_no_cache, &stored);
        let stale = stored.age >= stored.fresh;
        match used {
            Use::Fresh => assert!(!stale && !decision.request_no_cache),
            Use::AllowedStale => {
                assert!(stale && !stored.must_revalidate && req.max_stale.is_some())
            }
            Use::StaleRevalidating => {
                assert!(stale && stored.age - stored.fresh < stored.stale_while_revalidate)
            }
            Use::Validate => assert!(
                stale
                    || decision.request_no_cache
                    || req.max_age.is_some()
                    || req.min_fresh.is_some(),
                "fresh entry revalidated unasked"
            ),
        }
        if decision.request_no_cache || req.max_age == Some(0) {
            assert_eq!(used, Use::Validate);
        }
    }
    huge_max_age(data, &plain);
}

/// RFC 9111 §1.2.2: a `max-age` past what the cache represents is 2^31
/// seconds, not an error: a response with nothing else to say is fresh
/// for that, capped at `ttl`; a zero one (without a validator) is not
/// stored. The digits are the input's.
fn huge_max_age(data: &[u8], settings: &Settings) {
    let digits: String = data
        .iter()
        .filter(|b| b.is_ascii_digit())
        .take(40)
        .map(|&b| char::from(b))
        .collect();
    if digits.is_empty() {
        return;
    }
    let value = digits.parse::<u128>().map_or(1 << 31, |n| n.min(1 << 31)) as u64;
    let mut response = ResponseHead::new(200);
    response
        .headers
        .push("Cache-Control", format!("max-age={digits}"));
    let mut request = RequestHead {
        method: "GET".into(),
        target: "/".into(),
        version: Version::Http11,
        headers: Headers::new(),
    };
    request.headers.push("Host", "h");
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let lifetime = storable(&request, &response, now, settings);
    let fresh = Duration::from_secs(value).min(settings.ttl);
    match fresh.is_zero() {
        true => assert_eq!(lifetime, None, "max-age={digits}"),
        false => assert_eq!(lifetime.map(|l| l.fresh), Some(fresh), "max-age={digits}"),
    }
}

/// A DER TLV: `tag`, the length in the shortest form, `contents`.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    match len {
        0..=0x7f => out.push(len as u8),
        _ => {
            let bytes = (len as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (4 - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    out.extend_from_slice(contents);
    out
}

/// A certificate's outline around `subject`, the contents of its Name:
/// what the parser walks to reach it, with nothing else of interest.
fn certificate_around(subject: &[u8]) -> Vec<u8> {
    let cn = [der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, b"Issuer CA")].concat();
    let issuer = der(0x31, &der(0x30, &cn));
    let validity = [der(0x17, b"240101000000Z"), der(0x18, b"20991231235959Z")].concat();
    let tbs = [
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &[0x01, 0x02]),
        der(
            0x30,
            &der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
        ),
        der(0x30, &issuer),
        der(0x30, &validity),
        der(0x30, subject),
    ]
    .concat();
    der(0x30, &der(0x30, &tbs))
}

/// RFC 4514's escapes undone: `\XX` a byte, `\c` the character.
fn unescape_dn_value(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let c = bytes.next()?;
        if c.is_ascii_hexdigit() {
            let low = bytes.next()?;
            let hex = [c, low];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A name as the parser writes it for the log and the backends: no
/// control character (C0, DEL, C1: a line break, an escape sequence, in a
/// log line or a header value), and bounded by its DER's length.
fn check_dn(dn: &str, der_len: usize) {
    assert!(
        !dn.chars().any(char::is_control),
        "control character in {dn:?}"
    );
    assert!(
        dn.len() <= 4 * der_len + 8,
        "{} bytes of {der_len}",
        dn.len()
    );
}

/// Certificate DER as `tls::x509` walks it by hand: the end of validity,
/// subject and issuer names, serial number. With a first byte `0x00` the
/// rest is one attribute value put in a certificate's subject (`CN`, a
/// UTF8String), which must read back escaped and unescape to itself;
/// otherwise the input is the DER itself (seeded with real certificates).
pub fn x509(data: &[u8]) {
    use inverso::tls::x509::{issuer, not_after, serial, subject};
    let certificate = match data.split_first() {
        Some((0, value)) => {
            let pair = [der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, value)].concat();
            let certificate = certificate_around(&der(0x31, &der(0x30, &pair)));
            let dn = subject(&certificate).expect("a made certificate reads");
            check_dn(&dn, certificate.len());
            let escaped = dn.strip_prefix("CN=").expect("one CN");
            match std::str::from_utf8(value) {
                Ok(text) => {
                    let back = unescape_dn_value(escaped).expect("escapes complete");
                    assert_eq!(back, text.as_bytes(), "{dn:?}");
                }
                Err(_) => assert!(escaped.starts_with('#')),
            }
            certificate
        }
        _ => data.to_vec(),
    };
    let _ = not_after(&certificate);
    for dn in [subject(&certificate), issuer(&certificate)]
        .into_iter()
        .flatten()
    {
        check_dn(&dn, certificate.len());
    }
    if let Some(serial) = serial(&certificate) {
        let digits = serial.strip_prefix('-').unwrap_or(&serial);
        assert!(!digits.is_empty() && digits.len() <= 2 * certificate.len());
        assert!(digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')));
    }
}

/// Whether a weight (`q=` of RFC 9110 §12.4.2) written `v` is zero:
/// `0`, `0.`, `0.0` up to three zeros.
fn weight_is_zero(v: &str) -> bool {
    let (whole, decimals) = v.split_once('.').unwrap_or((v, ""));
    whole == "0" && decimals.len() <= 3 && decimals.bytes().all(|b| b == b'0')
}

/// The request fields read for features: `X-Forwarded-For` and
/// `X-Forwarded-Proto` from a peer trusted or not (`real_ip_from`),
/// `Cookie` (`cache_bypass_cookies`, and the cookie a sticky pool reads),
/// `Accept-Encoding` with its weights (`gzip`), and the Structured Field
/// Dictionaries a targeted cache-control field is; and the fields a
/// client that is no trusted proxy may not claim (`drop_claims`). The
/// first byte picks the peer; then lines of `Name: value`.
pub fn client_fields(data: &[u8]) {
    use inverso::cache::policy::BypassCookies;
    use inverso::gzip::accepted;
    use inverso::http::structured::{parse_dictionary, Item};
    use inverso::realip::{client_address, client_scheme, Cidr};
    use std::net::IpAddr;
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let peers: [IpAddr; 4] = [
        "10.1.2.3".parse().unwrap(),
        "192.0.2.7".parse().unwrap(),
        "::1".parse().unwrap(),
        "203.0.113.9".parse().unwrap(),
    ];
    let peer = peers[usize::from(pick) % peers.len()];
    let mut headers = Headers::new();
    for line in rest.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
            headers.push(name, line[colon + 1..].trim_ascii());
        }
    }
    // The same fields, every line of a name joined into one; an empty
    // line is no member of a list (and `a, ` no Dictionary).
    let mut joined = Headers::new();
    for (name, _) in headers.iter() {
        if !joined.contains(name) {
            let lines = headers.get_all(name).filter(|v| !v.trim_ascii().is_empty());
            joined.push(name, lines.collect::<Vec<_>>().join(&b", "[..]));
        }
    }

    // The client's address: the peer's own unless it is trusted, else an
    // address the field names; two lines as one joined.
    let trusted: Vec<Cidr> = ["10.0.0.0/8", "::1/128", "192.0.2.0/24"]
        .iter()
        .map(|c| Cidr::parse(c).expect("a block"))
        .collect();
    let trusted = CidrList::from(trusted);
    let address = client_address(peer, &headers, &trusted);
    assert_eq!(address, client_address(peer, &joined, &trusted));
    if !trusted.iter().any(|c| c.contains(peer)) {
        assert_eq!(address, peer);
    } else if address != peer {
        let named = headers
            .get_all("x-forwarded-for")
            .flat_map(|f| f.split(|&b| b == b','))
            .filter_map(|e| std::str::from_utf8(e).ok())
            .any(|e| {
                let e = e.trim();
                let bare = e.trim_start_matches('[');
                let named = |text: &str| text.parse::<IpAddr>().ok();
                let ip = named(e)
                    .or_else(|| named(bare.split(']').next().unwrap_or("")))
                    .or_else(|| named(e.rsplit_once(':').map_or("", |(ip, _)| ip)));
                ip.is_some_and(|ip| ip.to_canonical() == address)
            });
        assert!(named, "{address} named by no element");
    }
    let scheme = client_scheme(peer, false, &headers, &trusted);
    assert!(scheme == "http" || trusted.iter().any(|c| c.contains(peer)));
    assert_eq!(scheme, client_scheme(peer, false, &joined, &trusted));

    // A client's own claims, as README's `real_ip_from` names them, are
    // dropped under any spelling a backend reads alike (case, `_` for
    // `-`); every other field stays, in its order.
    let claims = [
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "front-end-https",
        "x-original-url",
        "x-rewrite-url",
    ];
    let claimed =
        |name: &str| claims.contains(&name.to_ascii_lowercase().replace('_', "-").as_str());
    let mut dropped = headers.clone();
    inverso::realip::drop_claims(&mut dropped);
    let kept: Vec<(&str, &[u8])> = headers.iter().filter(|(n, _)| !claimed(n)).collect();
    assert_eq!(dropped.iter().collect::<Vec<_>>(), kept, "claims dropped");

    // Cookies: the names a pool's sticky cookie is read by bypass too.
    let bypass = BypassCookies::parse("session, wp_*").expect("parses");
    let matched = bypass.matches(&headers);
    if headers.cookie("session").is_some() {
        assert!(matched, "a session cookie not bypassed");
    }

    // gzip: never for a client whose every gzip (or, naming none, every
    // `*`) has weight 0; two lines as one.
    let taken = accepted(&headers);
    assert_eq!(taken, accepted(&joined));
    let elements: Vec<&str> = headers.tokens("accept-encoding").collect();
    let zero = |e: &&str| {
        e.split(';')
            .skip(1)
            .filter_map(|p| p.trim().split_once('='))
            .any(|(q, v)| q.trim().eq_ignore_ascii_case("q") && weight_is_zero(v.trim()))
    };
    let coding = |e: &&str| {
        e.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let gzips: Vec<&&str> = (elements.iter())
        .filter(|e| matches!(coding(e).as_str(), "gzip" | "x-gzip"))
        .collect();
    let stars: Vec<&&str> = elements.iter().filter(|e| coding(e) == "*").collect();
    if !gzips.is_empty() && gzips.iter().all(|e| zero(e)) {
        assert!(!taken, "gzip;q=0 taken");
    }
    if gzips.is_empty() && stars.iter().all(|e| zero(e)) {
        assert!(!taken, "*;q=0 taken");
    }

    // Structured Field Dictionaries (RFC 8941): whatever parses holds
    // only what the grammar allows.
    for name in ["cdn-cache-control", "edge-cache-control"] {
        let Some(dictionary) = parse_dictionary(headers.get_all(name)) else {
            continue;
        };
        assert_eq!(
            Some(&dictionary),
            parse_dictionary(joined.get_all(name)).as_ref()
        );
        for (key, item) in &dictionary {
            let first = key.bytes().next().expect("a key");
            assert!(first.is_ascii_lowercase() || first == b'*', "key {key:?}");
            assert!(key.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'.' | b'*')));
            match item {
                Item::Integer(n) => assert!(n.unsigned_abs() <= 999_999_999_999_999),
                Item::Decimal(d) => assert!(d.is_finite() && d.abs() < 1e12),
                Item::String(s) => assert!(s.bytes().all(|b| (0x20..0x7f).contains(&b))),
                Item::Token(t) => assert!(t.bytes().all(|b| b.is_ascii_graphic())),
                _ => {}
            }
        }
    }
}

/// The `log_format` templates the `log_line` target picks from, beside
/// `combined`, `json` and the input's own: README's nginx `combined`,
/// its `escape=json` example, and every variable that is text quoted
/// after its key, in both escapes ([`LOG_TEXT`]).
fn log_templates() -> [String; 4] {
    let quoted: Vec<String> = LOG_TEXT
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    let json: Vec<String> = LOG_TEXT
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    [
        "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \
         \"$http_referer\" \"$http_user_agent\" rt=$request_time"
            .into(),
        "escape=json {\"time\":\"$time_iso8601\",\"client\":\"$remote_addr\",\
         \"request\":\"$request\",\"status\":$status,\"bytes\":$body_bytes_sent,\
         \"rt\":$request_time,\"agent\":\"$http_user_agent\",\
         \"cache\":\"$upstream_cache_status\"}"
            .into(),
        quoted.join(" "),
        format!("escape=json {{{}}}", json.join(",")),
    ]
}

/// The variables that are text, each under a key of [`log_templates`].
const LOG_TEXT: &[(&str, &str)] = &[
    ("request", "$request"),
    ("method", "$request_method"),
    ("request_uri", "$request_uri"),
    ("uri", "$uri"),
    ("args", "$args"),
    ("protocol", "$server_protocol"),
    ("user", "$remote_user"),
    ("referer", "$http_referer"),
    ("agent", "$http_user_agent"),
    ("id", "$request_id"),
    ("host", "$host"),
    ("x_a", "$http_x_a"),
    ("cookie", "$http_cookie"),
    ("upstream", "$upstream_addr"),
    ("pool", "$pool"),
    ("sni", "$ssl_server_name"),
    ("s_dn", "$ssl_client_s_dn"),
    ("i_dn", "$ssl_client_i_dn"),
    ("serial", "$ssl_client_serial"),
    ("fingerprint", "$ssl_client_fingerprint"),
    ("cert", "$ssl_client_escaped_cert"),
    ("sent_x_b", "$sent_http_x_b"),
    ("upstream_x_a", "$upstream_http_x_a"),
    ("cookie_a", "$cookie_a"),
    ("arg_a", "$arg_a"),
    ("tlv_authority", "$proxy_protocol_tlv_authority"),
    ("tlv_ssl_cn", "$proxy_protocol_tlv_ssl_cn"),
];

/// What a record holds of a client's or backend's bytes, as the log
/// must give it back.
enum Logged {
    /// Exactly this value; none is absent.
    Value(Option<String>),
    /// Absent, or a piece of one of these (less a leading `/`, which
    /// `$request_uri` adds to an absolute-form target without a path;
    /// `$host` is in lower case).
    PieceOf(Vec<String>),
    /// A certificate URL-encoded: nothing left to escape.
    UrlEncoded,
}

/// An access-log line (README's Access log) of a record whose text comes
/// from clients and backends, written in a format the first byte picks:
/// `combined`, `json`, one of [`log_templates`], or a template read from
/// the input (which must parse or be refused with a reason, never
/// panic). The second byte sets what the record has (pools, `log_headers`,
/// TLS, a backend, the status); the rest, split at 0xFE bytes, is the
/// template, then the request line, the Basic user, what a rewrite made,
/// `Referer`, `User-Agent`, a request ID, the TLS server name, the client
/// certificate's subject, issuer, serial and bytes, the request fields
/// (`name:value` lines), the response head's, and a PROXY header's TLVs
/// (as they came: whether they fit is the reader's to find). A part left out is
/// absent; bytes that are not UTF-8 are U+FFFD, as the proxy takes them.
///
/// No value writes into the line a control byte, nor anything outside
/// printable ASCII where values are escaped as `\xHH`, nor, in JSON, a
/// C1 control, a Unicode line end or a bidirectional control: only the
/// template's own text may hold those. Each value is
/// given back by undoing the format's escaping (`\xHH`; JSON strings),
/// breaks out of no quotes, and a syslog datagram holds the line, or
/// what fits of it, on one line.
pub fn log_line(data: &[u8]) {
    use inverso::access_log::{fit_to_datagram, Heads, Record, RequestFields, MAX_DATAGRAM};
    use inverso::config::LogFormat;
    use inverso::http::date::LogClock;
    use inverso::tls::client_cert::ClientCertificate;
    use inverso::upstream_tries::UpstreamTry;
    let [pick, flags, rest @ ..] = data else {
        return;
    };
    let mut parts = rest.split(|&b| b == 0xFE);
    let mut next = || {
        parts
            .next()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    };
    let source = next().unwrap_or_default();
    let own = LogFormat::parse(&source);
    match &own {
        Ok(LogFormat::Template(t)) => {
            assert_eq!(t.source(), source);
            let _ = t.example_line();
        }
        Ok(_) => assert!(source == "combined" || source == "json"),
        Err(e) => assert!(!e.is_empty(), "refused without a reason"),
    }
    let templates = log_templates();
    let format = match pick % 4 {
        0 => LogFormat::Combined,
        1 => LogFormat::Json,
        2 => LogFormat::parse(&templates[usize::from(pick / 4) % templates.len()]).unwrap(),
        _ => match own {
            Ok(format) => format,
            Err(_) => return,
        },
    };

    let request_line = next().unwrap_or_default();
    let remote_user = next();
    let made_target = next();
    let referer = next();
    let user_agent = next();
    // Kept only well-formed (a trusted proxy's); else the proxy makes one.
    let request_id = next().filter(|id| inverso::request_id::is_well_formed(id));
    let server_name = next();
    let (subject, issuer, serial) = (next(), next(), next());
    let certificate_bytes = next().unwrap_or_default();
    let mut headers = Headers::new();
    let mut request_fields = Vec::new();
    for line in next().unwrap_or_default().split('\n') {
        // A parser's fields: a token for a name, the value without OWS.
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim_ascii();
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
            headers.push(name, value);
            request_fields.push((name.to_string(), value.to_string()));
        }
    }
    let response_head = format!("HTTP/1.1 200 OK\r\n{}", next().unwrap_or_default());
    // A version 2 PROXY header's TLVs, as a balancer sent them.
    let proxy_tlvs = next().map(|tlvs| Arc::from(tlvs.into_bytes()));
    let tls = flags & 4 != 0;
    // A verified token's claims, as `$jwt_claim_<name>` reads them.
    let jwt_claims = next()
        .and_then(|text| inverso::json_value::parse(text.as_bytes()).ok())
        .map(Arc::new);
    let record = Record {
        time: UNIX_EPOCH + Duration::from_millis(1_764_444_352_412),
        client: [203, 0, 113, 7].into(),
        peer: Some(([10, 0, 0, 9], 40_001).into()),
        proxied_to: None,
        proxy_tlvs,
        server: Some(([10, 0, 0, 1], 443).into()),
        remote_user,
        jwt_claims,
        request_line,
        made_target,
        status: [200, 404, 502, 499][usize::from(flags >> 6)],
        bytes: 5120,
        referer,
        user_agent,
        cache: Some("MISS"),
        duration: Duration::from_micros(12_345),
        connection: Some((7, 3)),
        head_bytes: 200,
        request_length: Some(120),
        upstream_queue: Some(Duration::ZERO),
        last_try: UpstreamTry {
            upstream: (flags & 8 != 0).then(|| "backend.example:8080".into()),
            status: Some(200),
            connect: Some(Duration::ZERO),
            wait: Some(Duration::from_micros(10_512)),
            response: Some(Duration::from_micros(11_204)),
            bytes_received: Some(5_320),
            response_length: Some(5_120),
            bytes_sent: Some(410),
        },
        earlier_tries: Vec::new(),
        route_host: None,
        gzip_sizes: Some((5_120, 1_536)),
        request_body: None,
        tcp_info: None,
        connection_time: None,
        pipelined: false,
        termination: Default::default(),
        limit_req: None,
        pool: (flags & 16 != 0).then(|| "api".into()),
        show_pool: flags & 1 != 0,
        request_id,
        trace: None,
        heads: (flags & 2 != 0).then(|| {
            Box::new(Heads {
                request: request_fields,
                response: Heads::fields_of(response_head.as_bytes()),
            })
        }),
        fields: format
            .request_fields()
            .map(|names| RequestFields::take(names, &headers)),
        response_head: Some(response_head.as_bytes().to_vec()),
        // The request's fields stand for a backend's: text of any kind.
        upstream_fields: (flags & 8 != 0).then(|| headers.clone()),
        scheme: if tls { "https" } else { "http" },
        tls: tls.then_some(inverso::http::tls::Agreed {
            protocol: "TLSv1.3",
            cipher: "TLS13_AES_128_GCM_SHA256",
            resumed: false,
            alpn: Some("http/1.1"),
            group: Some("X25519"),
        }),
        server_name: server_name.filter(|_| tls).map(Arc::from),
        offered_protocols: None,
        country: None,
        client_certificate: (tls && flags & 32 != 0).then(|| {
            Arc::new(ClientCertificate {
                byte_sequence: certificate_bytes.into(),
                chain: None,
                fingerprint: "3f2a9c".into(),
                subject: subject.map(Box::from),
                issuer: issuer.map(Box::from),
                serial: serial.map(Box::from),
                validity: None,
            })
        }),
    };
    let mut line = String::new();
    record.write_as(&format, &mut line, &mut LogClock::new());

    // The characters a value may not write raw: for `\xHH` escaping,
    // everything outside printable ASCII; for JSON, what README says it
    // escapes. The template's own text may hold them, no value adds one.
    let json = match &format {
        LogFormat::Combined => false,
        LogFormat::Json => true,
        LogFormat::Template(t) => is_escape_json(t.source()),
    };
    let special = |c: char| match json {
        true => c.is_control() || is_unicode_line_end_or_bidi(c),
        false => !(' '..='~').contains(&c),
    };
    let own_text = match &format {
        LogFormat::Template(t) if pick % 4 == 3 => t.source(),
        _ => "",
    };
    let mut seen = Vec::new();
    for c in line.chars().filter(|&c| special(c)) {
        if seen.contains(&c) {
            continue;
        }
        seen.push(c);
        let (written, allowed) = (line.matches(c).count(), own_text.matches(c).count());
        assert!(
            written <= allowed,
            "{c:?} written {written} times, the template has it {allowed}: {line:?}"
        );
    }

    // A syslog datagram holds the line, or as much as fits, on one line.
    for header in [0, 40, 41, MAX_DATAGRAM - 1, MAX_DATAGRAM, MAX_DATAGRAM + 1] {
        let held = fit_to_datagram(&line, header);
        assert!(line.starts_with(held));
        let room = MAX_DATAGRAM.saturating_sub(header);
        assert!(held.len() <= room);
        assert!(
            held.len() == line.len() || held.len() + 4 > room,
            "cut short"
        );
        let ends = |s: &str| s.matches(['\n', '\r']).count();
        assert!(ends(held) <= ends(own_text), "a datagram of two lines");
    }

    // Each value given back from the line. README's `$http_<name>` is the
    // fields of that name, in lower case with `_` for `-` (a field
    // written with `_` too), joined.
    let field_of = |name: &str, join: &str| {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(field, _)| field.to_ascii_lowercase().replace('-', "_") == name)
            .map(|(_, value)| std::str::from_utf8(value).unwrap())
            .collect();
        (!values.is_empty()).then(|| values.join(join))
    };
    let certificate = record.client_certificate.as_deref();
    let of_certificate = |part: fn(&ClientCertificate) -> Option<&str>| {
        Logged::Value(certificate.and_then(part).map(String::from))
    };
    let mut pieces = vec![record.request_line.clone()];
    pieces.extend(record.made_target.clone());
    let mut hosts = vec![record.request_line.to_ascii_lowercase()];
    hosts.extend(field_of("host", ", ").map(|h| h.to_ascii_lowercase()));
    let logged = |key: &str| -> Logged {
        match key {
            "request" => Logged::Value(Some(record.request_line.clone())),
            "method" | "request_uri" | "uri" | "args" | "protocol" => {
                Logged::PieceOf(pieces.clone())
            }
            "host" => Logged::PieceOf(hosts.clone()),
            // Empty is absent, as nginx's.
            "user" => Logged::Value(record.remote_user.clone().filter(|u| !u.is_empty())),
            "referer" => Logged::Value(record.referer.clone()),
            "agent" => Logged::Value(record.user_agent.clone()),
            "id" => Logged::Value(record.request_id.clone()),
            "x_a" => Logged::Value(field_of("x_a", ", ")),
            "cookie" => Logged::Value(field_of("cookie", "; ")),
            "upstream" => Logged::Value(record.last_try.upstream.as_deref().map(String::from)),
            "pool" => Logged::Value(record.pool.as_deref().map(String::from)),
            "sni" => Logged::Value(record.server_name.as_deref().map(String::from)),
            "s_dn" => of_certificate(|c| c.subject.as_deref()),
            "i_dn" => of_certificate(|c| c.issuer.as_deref()),
            "serial" => of_certificate(|c| c.serial.as_deref()),
            "fingerprint" => of_certificate(|c| Some(&c.fingerprint)),
            "cert" => Logged::UrlEncoded,
            "cookie_a" => Logged::Value(
                (field_of("cookie", "; "))
                    .and_then(|c| {
                        inverso::variables::cookie_in(c.as_bytes(), "a").map(<[u8]>::to_vec)
                    })
                    .map(|v| String::from_utf8(v).expect("cut at ASCII")),
            ),
            "arg_a" => Logged::PieceOf(pieces.clone()),
            // The response fields `x_b` names, as the head went out, joined.
            "sent_x_b" => Logged::Value({
                let values: Vec<String> = (Heads::fields_of(response_head.as_bytes()).into_iter())
                    .filter(|(name, _)| inverso::variables::names_field("x_b", name))
                    .map(|(_, value)| value)
                    .collect();
                (!values.is_empty()).then(|| values.join(", "))
            }),
            // The backend's fields `x_a` names, as they came, joined.
            "upstream_x_a" => Logged::Value({
                let values: Vec<String> = (record.upstream_fields.iter().flat_map(Headers::iter))
                    .filter(|(name, _)| inverso::variables::names_field("x_a", name))
                    .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                    .collect();
                (!values.is_empty()).then(|| values.join(", "))
            }),
            "tlv_authority" | "tlv_ssl_cn" => Logged::Value({
                use inverso::http::proxy_tlv::{value, TlvName};
                let name = match key {
                    "tlv_authority" => TlvName::Top(0x02),
                    _ => TlvName::Ssl(0x22),
                };
                let tlvs = record.proxy_tlvs.as_deref();
                let found = tlvs.and_then(|tlvs| value(tlvs, name));
                found.map(|v| String::from_utf8_lossy(&v).into_owned())
            }),
            _ => Logged::Value(None),
        }
    };
    let heads_line = |fields: &[(String, String)]| {
        let lines: Vec<String> = fields.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        lines.join("\r\n")
    };
    match &format {
        LogFormat::Combined => {
            let quoted = combined_start(&line, &record);
            let tail = &quoted[6..];
            let mut extras = tail[0].trim().split(' ');
            for key in ["upstream", "cache", "duration_ms", "upstream_ms"] {
                let field = extras.next().expect("a field");
                assert!(field.starts_with(&format!("{key}=")), "{line}");
            }
            let mut expect = |key: &str, value: Option<&str>| {
                if let Some(value) = value {
                    let field = extras.next().expect("a field");
                    assert_eq!(unescape_log(field.strip_prefix(key).unwrap()), value);
                }
            };
            let pool = record.pool.as_deref().unwrap_or("-");
            expect("pool=", record.show_pool.then_some(pool));
            expect("request_id=", record.request_id.as_deref());
            expect("request_headers=", record.heads.is_some().then_some(""));
            assert_eq!(extras.next(), None, "{line}");
            match &record.heads {
                Some(heads) => {
                    assert_eq!(tail.len(), 5, "{line}");
                    assert_eq!(tail[2], " response_headers=");
                    assert_eq!(unescape_log(tail[1]), heads_line(&heads.request));
                    assert_eq!(unescape_log(tail[3]), heads_line(&heads.response));
                }
                None => assert_eq!(tail.len(), 1, "{line}"),
            }
        }
        LogFormat::Json => {
            let Json::Obj(members) = parse_json(&line) else {
                panic!("not an object: {line}");
            };
            let get = |key: &str| {
                let found = members.iter().find(|(k, _)| k == key);
                found
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no {key}: {line}"))
            };
            let string = |value: Option<&str>| value.map_or(Json::Null, |v| Json::Str(v.into()));
            assert_eq!(*get("request"), string(Some(&record.request_line)));
            assert_eq!(*get("remote_user"), string(record.remote_user.as_deref()));
            assert_eq!(*get("referer"), string(record.referer.as_deref()));
            assert_eq!(*get("user_agent"), string(record.user_agent.as_deref()));
            assert_eq!(
                *get("upstream"),
                string(record.last_try.upstream.as_deref())
            );
            if record.show_pool {
                assert_eq!(*get("pool"), string(record.pool.as_deref()));
            }
            if let Some(id) = &record.request_id {
                assert_eq!(*get("request_id"), string(Some(id)));
            }
            if let Some(heads) = &record.heads {
                for (key, fields) in [
                    ("request_headers", &heads.request),
                    ("response_headers", &heads.response),
                ] {
                    let pairs = fields
                        .iter()
                        .map(|(n, v)| Json::Arr(vec![Json::Str(n.clone()), Json::Str(v.clone())]));
                    assert_eq!(*get(key), Json::Arr(pairs.collect()), "{key}");
                }
            }
        }
        LogFormat::Template(_) if pick % 4 == 3 => {}
        LogFormat::Template(t) if t.source() == templates[0] => {
            let quoted = combined_start(&line, &record);
            assert_eq!(quoted.len(), 7, "{line}");
            assert!(quoted[6].starts_with(" rt="), "{line}");
        }
        LogFormat::Template(t) if t.source() == templates[1] => {
            let Json::Obj(members) = parse_json(&line) else {
                panic!("not an object: {line}");
            };
            let agent = record.user_agent.clone().unwrap_or_default();
            assert!(members.contains(&("agent".into(), Json::Str(agent))));
            let request = Json::Str(record.request_line.clone());
            assert!(members.contains(&("request".into(), request)));
        }
        LogFormat::Template(t) => {
            // Every text variable, quoted after its key.
            let written: Vec<(String, String)> = if json {
                let Json::Obj(members) = parse_json(&line) else {
                    panic!("not an object: {line}");
                };
                let strings = members.into_iter().map(|(key, value)| match value {
                    Json::Str(s) => (key, s),
                    other => panic!("{key} is {other:?}: {line}"),
                });
                strings.collect()
            } else {
                let quoted: Vec<&str> = line.split('"').collect();
                assert_eq!(quoted.len(), 2 * LOG_TEXT.len() + 1, "{line}");
                assert_eq!(quoted[quoted.len() - 1], "");
                let keys = quoted
                    .iter()
                    .step_by(2)
                    .map(|k| k.trim().trim_end_matches('='));
                let values = quoted.iter().skip(1).step_by(2).map(|v| unescape_log(v));
                keys.zip(values).map(|(k, v)| (k.to_string(), v)).collect()
            };
            let keys: Vec<&str> = written.iter().map(|(k, _)| k.as_str()).collect();
            let expected: Vec<&str> = LOG_TEXT.iter().map(|(k, _)| *k).collect();
            assert_eq!(keys, expected, "{}", t.source());
            let absent = if json { "" } else { "-" };
            for (key, value) in &written {
                match logged(key) {
                    Logged::Value(v) => {
                        assert_eq!(value, v.as_deref().unwrap_or(absent), "{key}: {line}")
                    }
                    Logged::PieceOf(haystacks) => {
                        let piece = value.strip_prefix('/').unwrap_or(value);
                        assert!(
                            value == absent || haystacks.iter().any(|h| h.contains(piece)),
                            "{key} {value:?} is no piece of {haystacks:?}"
                        );
                    }
                    Logged::UrlEncoded => {
                        assert!(
                            value == absent || value.starts_with("-----BEGIN%20"),
                            "{value}"
                        );
                        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~%".contains(&b);
                        assert!(value.bytes().all(plain), "{value}");
                    }
                }
            }
        }
    }
}

/// Whether a template begins with `escape=json` and a space, as README's
/// Templates say (nginx's `log_format` takes a tab as a space too).
fn is_escape_json(template: &str) -> bool {
    template
        .strip_prefix("escape=json")
        .is_some_and(|rest| rest.starts_with([' ', '\t']))
}

/// The characters README's JSON lines write as `\uXXXX` though JSON
/// allows them raw: Unicode's line ends and the bidirectional controls.
fn is_unicode_line_end_or_bidi(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The start every combined line has, README's nginx template's too:
/// `addr - user [time] "request" status bytes "referer" "agent"`, its
/// values given back from their escaping; what follows, split at `"`
/// (quotes are escaped inside a value, so each `"` is the line's own).
fn combined_start<'a>(line: &'a str, record: &inverso::access_log::Record) -> Vec<&'a str> {
    let quoted: Vec<&str> = line.split('"').collect();
    assert!(quoted.len() >= 7, "{line}");
    let start: Vec<&str> = quoted[0].split(' ').collect();
    assert_eq!(start.len(), 6, "the user is one field: {line}");
    let user = record.remote_user.as_deref().filter(|u| !u.is_empty());
    assert_eq!(unescape_log(start[2]), user.unwrap_or("-"), "{line}");
    assert_eq!(unescape_log(quoted[1]), record.request_line, "{line}");
    let status_and_bytes = format!(" {} {} ", record.status, record.bytes);
    assert_eq!(quoted[2], status_and_bytes, "{line}");
    assert_eq!(quoted[4], " ", "{line}");
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    assert_eq!(unescape_log(quoted[3]), or_dash(&record.referer), "{line}");
    assert_eq!(
        unescape_log(quoted[5]),
        or_dash(&record.user_agent),
        "{line}"
    );
    quoted
}

/// A value as README's quoted fields escape it (`\xHH` for `"`, `\` and
/// every byte outside printable ASCII), given back: what the `\xHH`
/// stand for, read as UTF-8 (what they escaped was).
fn unescape_log(escaped: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = escaped.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        assert!(
            (0x20..0x7f).contains(&b) && b != b'"',
            "{b:#x} raw in {escaped:?}"
        );
        if b != b'\\' {
            bytes.push(b);
            rest = after;
            continue;
        }
        let hex = |b: u8| matches!(b, b'0'..=b'9' | b'A'..=b'F');
        let [b'x', high, low, tail @ ..] = after else {
            panic!("a `\\` that is no \\xHH in {escaped:?}");
        };
        assert!(hex(*high) && hex(*low), "\\x{high}{low} in {escaped:?}");
        let pair = std::str::from_utf8(&after[1..3]).unwrap();
        bytes.push(u8::from_str_radix(pair, 16).unwrap());
        rest = tail;
    }
    String::from_utf8(bytes).expect("the escaped bytes were UTF-8")
}

/// A JSON value (RFC 8259), as [`parse_json`] reads it.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// As written.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// `text` as one JSON value, read strictly (RFC 8259: no raw control
/// character in a string, no escape but its own, no lone surrogate, no
/// trailing text); panics on anything else.
fn parse_json(text: &str) -> Json {
    let mut at = 0;
    let value = json_value(text, &mut at);
    json_space(text.as_bytes(), &mut at);
    assert_eq!(at, text.len(), "text after the JSON value: {text}");
    value
}

fn json_space(b: &[u8], at: &mut usize) {
    while b.get(*at).is_some_and(|c| b" \t\n\r".contains(c)) {
        *at += 1;
    }
}

fn json_value(text: &str, at: &mut usize) -> Json {
    let b = text.as_bytes();
    json_space(b, at);
    let Some(&first) = b.get(*at) else {
        panic!("a JSON value cut short: {text}");
    };
    let expect = |c: u8, at: &mut usize| {
        json_space(b, at);
        assert_eq!(b.get(*at), Some(&c), "{} at {at} in {text}", c as char);
        *at += 1;
    };
    match first {
        b'{' | b'[' => {
            *at += 1;
            let close = if first == b'{' { b'}' } else { b']' };
            let mut items = Vec::new();
            json_space(b, at);
            if b.get(*at) == Some(&close) {
                *at += 1;
            } else {
                loop {
                    let key = if first == b'{' {
                        json_space(b, at);
                        let Json::Str(key) = json_value(text, at) else {
                            panic!("a key that is no string at {at} in {text}");
                        };
                        expect(b':', at);
                        Some(key)
                    } else {
                        None
                    };
                    items.push((key, json_value(text, at)));
                    json_space(b, at);
                    match b.get(*at) {
                        Some(b',') => *at += 1,
                        Some(&c) if c == close => {
                            *at += 1;
                            break;
                        }
                        other => panic!("{other:?} at {at} in {text}"),
                    }
                }
            }
            if first == b'[' {
                Json::Arr(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Json::Obj(items.into_iter().map(|(k, v)| (k.unwrap(), v)).collect())
            }
        }
        b'"' => {
            *at += 1;
            let mut s = Vec::new();
            loop {
                let Some(&c) = b.get(*at) else {
                    panic!("a string cut short in {text}");
                };
                *at += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let e = b.get(*at).copied();
                        *at += 1;
                        let simple = match e {
                            Some(b'"') => Some(b'"'),
                            Some(b'\\') => Some(b'\\'),
                            Some(b'/') => Some(b'/'),
                            Some(b'b') => Some(8),
                            Some(b'f') => Some(12),
                            Some(b'n') => Some(b'\n'),
                            Some(b'r') => Some(b'\r'),
                            Some(b't') => Some(b'\t'),
                            Some(b'u') => None,
                            other => panic!("escape {other:?} in {text}"),
                        };
                        if let Some(c) = simple {
                            s.push(c);
                            continue;
                        }
                        let unit = |at: &mut usize| {
                            let hex = b.get(*at..*at + 4).expect("four hex digits");
                            *at += 4;
                            let hex = std::str::from_utf8(hex).expect("hex digits");
                            assert!(hex.bytes().all(|h| h.is_ascii_hexdigit()), "{text}");
                            u32::from_str_radix(hex, 16).unwrap()
                        };
                        let mut code = unit(at);
                        if (0xD800..0xDC00).contains(&code) {
                            assert_eq!(b.get(*at..*at + 2), Some(&b"\\u"[..]), "lone surrogate");
                            *at += 2;
                            let low = unit(at);
                            assert!((0xDC00..0xE000).contains(&low), "lone surrogate");
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        }
                        let c = char::from_u32(code).expect("no lone surrogate");
                        s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    c if c < 0x20 => panic!("raw control byte {c:#x} in a string: {text}"),
                    c => s.push(c),
                }
            }
            Json::Str(String::from_utf8(s).expect("UTF-8"))
        }
        b't' | b'f' | b'n' => {
            for (word, value) in [
                ("true", Json::Bool(true)),
                ("false", Json::Bool(false)),
                ("null", Json::Null),
            ] {
                if b[*at..].starts_with(word.as_bytes()) {
                    *at += word.len();
                    return value;
                }
            }
            panic!("no literal at {at} in {text}");
        }
        _ => {
            // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
            let start = *at;
            let digits = |at: &mut usize| {
                let from = *at;
                while b.get(*at).is_some_and(u8::is_ascii_digit) {
                    *at += 1;
                }
                assert!(*at > from, "a number without digits at {from} in {text}");
            };
            if b[*at] == b'-' {
                *at += 1;
            }
            if b.get(*at) == Some(&b'0') {
                *at += 1;
            } else {
                digits(at);
            }
            if b.get(*at) == Some(&b'.') {
                *at += 1;
                digits(at);
            }
            if b.get(*at).is_some_and(|c| matches!(c, b'e' | b'E')) {
                *at += 1;
                if b.get(*at).is_some_and(|c| matches!(c, b'+' | b'-')) {
                    *at += 1;
                }
                digits(at);
            }
            Json::Num(String::from_utf8_lossy(&b[start..*at]).into_owned())
        }
    }
}

/// The HMAC secret of [`jwt`]'s key file.
const JWT_SECRET: &[u8; 32] = b"fuzz-secret-fuzz-secret-fuzz-sec";

/// JSON, JWKS files and tokens: nothing panics; bytes as they come never
/// verify; and a token signed here with the file's key, its header and
/// claims taken from the input (the header before the first newline),
/// is never refused for its signature while its header names HS256 and
/// no `kid`.
pub fn jwt(data: &[u8]) {
    use base64::Engine as _;
    use inverso::auth::jwt::{self, Invalid, Jwks};
    use inverso::json_value::{self, Value};
    let _ = json_value::parse(data);
    let _ = Jwks::parse(data);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let keys = Jwks::parse(format!(r#"{{"kty":"oct","k":"{}"}}"#, b64(JWT_SECRET)).as_bytes())
        .expect("the fuzz key");
    assert!(
        jwt::verify(data, &keys, 0).is_err(),
        "bytes as they came verified"
    );

    let (header, claims) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (&br#"{"alg":"HS256"}"#[..], data),
    };
    let signed = format!("{}.{}", b64(header), b64(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, JWT_SECRET);
    let signature = ring::hmac::sign(&key, signed.as_bytes());
    let token = format!("{signed}.{}", b64(signature.as_ref()));
    let result = jwt::verify(token.as_bytes(), &keys, 1_000);
    let parsed = json_value::parse(header).ok();
    let plain_hs256 = parsed.as_ref().is_some_and(|h| {
        h.get("alg").and_then(Value::as_str) == Some("HS256") && h.get("kid").is_none()
    });
    if plain_hs256 {
        assert_ne!(
            result,
            Err(Invalid::Signature),
            "signed with the key, refused"
        );
    }
    // A token naming no key is never one whose key is unknown.
    if parsed.as_ref().is_some_and(|h| h.get("kid").is_none()) {
        assert!(!jwt::names_unknown_key(token.as_bytes(), &keys));
    }
    if let Ok(verified) = result {
        assert!(plain_hs256 || parsed.is_some_and(|h| h.get("kid").is_some()));
        assert!(matches!(json_value::parse(claims), Ok(Value::Object(_))));
        // `auth_jwt_require` on what the claims say: each of the first
        // claims' own string values is said by it.
        if let Value::Object(members) = &verified.claims {
            for (name, value) in members.iter().take(4) {
                let Some(text) = value.as_str() else { continue };
                let requirement = format!("{name}={text}");
                if let Ok(required) = inverso::auth::jwt_require::Required::parse(&requirement) {
                    let parsed_whole = !requirement.contains(',') && !text.contains('|');
                    let untrimmed = name.trim() == name && text.trim() == text;
                    if parsed_whole && untrimmed && !name.contains('=') {
                        assert!(required.holds(&verified.claims), "{requirement}");
                    }
                }
            }
        }
    }
    let _ = std::str::from_utf8(data).map(inverso::auth::jwt_require::Required::parse);
}

/// OCSP responses as `tls::ocsp` walks them, about a certificate: the
/// input is the certificate's DER and its issuer's, each after its length
/// in two bytes (big-endian), then the response (seeded with good,
/// revoked and expired responses about test certificates). Nothing
/// panics, and a response found good is in date.
pub fn ocsp(data: &[u8]) {
    fn field(data: &[u8]) -> Option<(&[u8], &[u8])> {
        let (len, rest) = data.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let Some((leaf, rest)) = field(data) else {
        return;
    };
    let Some((issuer, response)) = field(rest) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for issuer in [Some(issuer), None] {
        if let Ok(good) = inverso::tls::ocsp::check(response, leaf, issuer, now) {
            assert!(good.this_update <= now + std::time::Duration::from_secs(300));
            assert!(good.next_update.is_none_or(|next| next > now));
        }
    }
}

/// What `sub_filter` rules make of a body, the slow way: at each byte,
/// the first rule (not used yet, with `once`) whose string is there in
/// any case of its ASCII letters, or else the byte as it came.
fn sub_filter_reference(rules: &[(&[u8], &[u8])], once: bool, body: &[u8]) -> Vec<u8> {
    let (mut made, mut used, mut at) = (Vec::new(), vec![false; rules.len()], 0);
    'bytes: while at < body.len() {
        for (i, (from, to)) in rules.iter().enumerate() {
            let here = body.get(at..at + from.len());
            if !used[i] && here.is_some_and(|h| h.eq_ignore_ascii_case(from)) {
                made.extend_from_slice(to);
                at += from.len();
                used[i] = once;
                continue 'bytes;
            }
        }
        made.push(body[at]);
        at += 1;
    }
    made
}

/// The body `sub` makes of `body` fed in pieces of `sizes` (cycled; a
/// 0 feeds an empty piece), the last one saying the body ended or, with
/// `end_apart`, an empty piece after it: every slice handed on is at
/// most [`inverso::sub_filter::SLICE`] and one replacement more.
fn sub_filter_fed(
    mut sub: inverso::sub_filter::Substitution,
    body: &[u8],
    sizes: &[usize],
    end_apart: bool,
) -> Vec<u8> {
    let most = inverso::sub_filter::SLICE + 4096;
    let mut made = Vec::new();
    let mut sink = |slice: &[u8]| {
        assert!(slice.len() <= most, "a slice of {} bytes", slice.len());
        made.extend_from_slice(slice);
    };
    let (mut rest, mut size) = (body, sizes.iter().cycle());
    while !rest.is_empty() {
        let n = size.next().map_or(rest.len(), |&n| n.min(rest.len()));
        let (piece, after) = rest.split_at(n);
        rest = after;
        sub.pass(piece, rest.is_empty() && !end_apart, &mut sink);
    }
    if body.is_empty() || end_apart {
        sub.pass(b"", true, &mut sink);
    }
    made
}

/// `sub_filter` rules and a body: the first line is the setting, then a
/// byte of flags (1: `sub_filter_once`; 2: the end comes as an empty
/// piece of its own), a count of piece sizes (up to 15) and a byte for
/// each (under 200 as it is, else that many KiB past 199), and the body.
/// Parsing never panics; the replacements rendered for a request are the
/// texts written when no variable is named; and the body fed in those
/// pieces is made as it is when fed whole, and as the slow way makes it
/// (the earliest match first, of two at one byte the rule written
/// first, in any case of its letters, each rule once with `once`), in
/// slices of at most `SLICE` bytes and one replacement.
pub fn sub_filter(data: &[u8]) {
    use inverso::sub_filter::SubFilter;
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    let Ok(setting) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(filter) = SubFilter::parse(setting) else {
        return;
    };
    let (flags, rest) = rest.split_first().unwrap_or((&0, &[]));
    let (count, rest) = rest.split_first().unwrap_or((&0, &[]));
    let (sizes, body) = rest.split_at(usize::from(count % 16).min(rest.len()));
    let sizes = piece_sizes(sizes);
    let (once, end_apart) = (flags & 1 == 1, flags & 2 == 2);

    let wire = b"GET /page HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
    let head = parse_request(wire, &RequestLimits::default()).expect("a plain request");
    let facts = Facts::plain(&head);
    let rendered = filter.for_request(&facts);
    if let Some(texts) = filter.rendered_without_request() {
        assert!(texts.texts().eq(rendered.texts()), "{setting}");
    }
    let rules: Vec<(&[u8], &[u8])> = filter.strings().zip(rendered.texts()).collect();
    assert_eq!(rules.len(), filter.strings().count(), "{setting}");

    let whole = sub_filter_fed(filter.substitution(&rendered, once), body, &[], false);
    let pieces = sub_filter_fed(
        filter.substitution(&rendered, once),
        body,
        &sizes,
        end_apart,
    );
    assert!(
        whole == pieces,
        "{setting}: pieces {sizes:?} make another body"
    );
    let slow = sub_filter_reference(&rules, once, body);
    assert!(whole == slow, "{setting}: not what the slow way makes");
}

/// The most a `gunzip` input may decode to: past it, only the slices are
/// checked (a few coded kilobytes can inflate to gigabytes, and each run
/// must stay fast).
const GUNZIP_MOST: u64 = 2 << 20;

/// The two bytes a gzip member begins with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What `Decoder::whole` drains of `coded`, slice by slice, up to an error
/// or past [`GUNZIP_MOST`]: the bytes and the error, if one came. Every
/// slice is at most `SLICE`.
fn gunzip_drained(coded: &[u8]) -> (Vec<u8>, Option<inverso::gunzip::GunzipError>) {
    use inverso::gunzip::{Decoder, SLICE};
    let mut decoder = Decoder::new();
    decoder.feed(coded);
    let mut made = Vec::new();
    loop {
        match decoder.drain(true) {
            Ok((slice, more)) => {
                assert!(slice.len() <= SLICE, "a slice of {} bytes", slice.len());
                made.extend_from_slice(slice);
                if !more || made.len() as u64 > GUNZIP_MOST {
                    return (made, None);
                }
            }
            Err(e) => return (made, Some(e)),
        }
    }
}

/// What the decoder makes of `coded` fed in pieces of `sizes` (cycled; a
/// 0 feeds an empty piece; none: whole), draining after each until no more
/// comes, the last piece saying the body ended or, with `end_apart`, a
/// drain of its own after it. Once ended, another drain makes nothing.
fn gunzip_fed(
    coded: &[u8],
    sizes: &[usize],
    end_apart: bool,
) -> Result<Vec<u8>, inverso::gunzip::GunzipError> {
    use inverso::gunzip::{Decoder, SLICE};
    let mut decoder = Decoder::new();
    let mut made = Vec::new();
    let mut drain_all = |decoder: &mut Decoder, ended: bool| loop {
        let (slice, more) = decoder.drain(ended)?;
        assert!(slice.len() <= SLICE, "a slice of {} bytes", slice.len());
        made.extend_from_slice(slice);
        // Fed whole, the drain that meets an error loses the part of a
        // slice it made; in pieces, that part may have come out.
        let most = GUNZIP_MOST + SLICE as u64;
        assert!(made.len() as u64 <= most, "more than fed whole");
        if !more {
            return Ok(());
        }
    };
    let (mut rest, mut size) = (coded, sizes.iter().cycle());
    while !rest.is_empty() {
        let n = size.next().map_or(rest.len(), |&n| n.min(rest.len()));
        let (piece, after) = rest.split_at(n);
        rest = after;
        decoder.feed(piece);
        drain_all(&mut decoder, rest.is_empty() && !end_apart)?;
    }
    drain_all(&mut decoder, true)?;
    let (after_end, more) = decoder.drain(true)?;
    assert!(after_end.is_empty() && !more, "drained past the end");
    Ok(made)
}

/// `coded` decoded by flate2's own gzip reader, one member at a time (its
/// header and trailer read by flate2, not zlib): the members' bytes, and
/// how many bytes followed the last member that begin no other (left
/// out, as the proxy leaves them out); `None` for an error. Past
/// [`GUNZIP_MOST`], the bytes made so far.
fn gunzip_by_flate2_members(mut rest: &[u8]) -> Option<(Vec<u8>, usize)> {
    use std::io::Read;
    let mut made = Vec::new();
    if rest.is_empty() {
        return Some((made, 0));
    }
    loop {
        let mut member = flate2::bufread::GzDecoder::new(rest);
        let room = GUNZIP_MOST + 1 - made.len() as u64;
        (&mut member).take(room).read_to_end(&mut made).ok()?;
        if made.len() as u64 > GUNZIP_MOST {
            return Some((made, 0));
        }
        rest = member.into_inner();
        if !rest.starts_with(&GZIP_MAGIC) {
            return Some((made, rest.len()));
        }
    }
}

/// `text` split into `members` gzip members (the last one the rest),
/// each at `level`, with `named` a file name, a comment and an extra
/// field in its header; then what `trailing` says: 1, bytes that begin
/// no member; 2, the first member again, cut short; 3, a lone 0x1f.
fn gunzip_coded(text: &[u8], members: usize, level: u32, named: bool, trailing: u8) -> Vec<u8> {
    use flate2::{Compression, GzBuilder};
    use std::io::Write;
    let member = |part: &[u8]| {
        let mut builder = GzBuilder::new();
        if named {
            builder = (builder.filename("page.html"))
                .comment("made by the fuzz target")
                .extra(&b"ab\x04\x00wxyz"[..]);
        }
        let mut encoder = builder.write(Vec::new(), Compression::new(level));
        encoder.write_all(part).expect("to a Vec");
        encoder.finish().expect("to a Vec")
    };
    let step = text.len().div_ceil(members).max(1);
    let mut parts: Vec<&[u8]> = text.chunks(step).collect();
    while parts.len() < members {
        parts.push(b"");
    }
    let coded: Vec<Vec<u8>> = parts.into_iter().map(member).collect();
    let mut all = coded.concat();
    match trailing {
        1 => all.extend([&b"\0"[..], &text[..text.len().min(7)]].concat()),
        2 => all.extend_from_slice(&coded[0][..coded[0].len() - 1]),
        3 => all.push(0x1f),
        _ => {}
    }
    all
}

/// A decoder's outcome told in a line: its length, not its bytes.
fn gunzip_told(outcome: &Result<Vec<u8>, inverso::gunzip::GunzipError>) -> String {
    match outcome {
        Ok(made) => format!("{} bytes", made.len()),
        Err(e) => format!("{e:?}"),
    }
}

/// The sizes of the pieces a body is fed in, a byte each: under 200 as
/// it is, else that many KiB past 199; none (fed whole) when every one
/// is 0.
fn piece_sizes(bytes: &[u8]) -> Vec<usize> {
    let sizes: Vec<usize> = (bytes.iter())
        .map(|&b| match b {
            0..200 => usize::from(b),
            _ => usize::from(b - 199) * 1024,
        })
        .collect();
    match sizes.iter().all(|&n| n == 0) {
        true => Vec::new(),
        false => sizes,
    }
}

/// A decoding error without zlib's words for it, which are not always
/// the same for the same bytes: zlib-rs names a fault found in its fast
/// loop, which large inputs and outputs take and small ones do not,
/// otherwise ("repeated call with bad state" against "invalid distance
/// too far back" or "invalid literal/length code").
fn unworded(e: &inverso::gunzip::GunzipError) -> inverso::gunzip::GunzipError {
    use inverso::gunzip::GunzipError;
    match e {
        GunzipError::Corrupt(_) => GunzipError::Corrupt(String::new()),
        truncated => truncated.clone(),
    }
}

/// The gzip decoder (`gunzip`). The input is a byte of flags (1: the
/// rest is a text to code as gzip, else the coded bytes themselves; 2:
/// the end comes as a drain of its own; 4-8: the level, 0, 1, 6 or 9;
/// 16-32: members less one; 64-128: what follows them, as
/// [`gunzip_coded`] says), a byte of shape (1: headers with names and an
/// extra field; the rest: times the text is repeated, less one, up to
/// 16), a byte for a limit (that fraction of 255 of the decoded length),
/// a count of piece sizes (up to 15) and a byte for each (under 200 as it
/// is, else that many KiB past 199), and the body. Fed in those pieces,
/// the bytes decode as fed whole (the same bytes, or an error both ways),
/// in slices of at most `SLICE`; what decodes is what flate2 makes of it,
/// member by member and, when it succeeds, with `MultiGzDecoder`; a text
/// coded decodes to itself; and `whole` declines exactly the limits the
/// decoded length passes.
pub fn gunzip(data: &[u8]) {
    use inverso::gunzip::{Decoder, GunzipError, SLICE};
    use std::io::Read;
    let [flags, shape, limit, count, rest @ ..] = data else {
        return;
    };
    let (sizes, body) = rest.split_at(usize::from(count % 16).min(rest.len()));
    let sizes = piece_sizes(sizes);
    let end_apart = flags & 2 == 2;
    let made_of_text = flags & 1 == 1;
    let text = body.repeat(usize::from(shape >> 1) % 16 + 1);
    let trailing = flags >> 6;
    let coded = match made_of_text {
        true => {
            let level = [0, 1, 6, 9][usize::from(flags >> 2 & 3)];
            let members = usize::from(flags >> 4 & 3) + 1;
            gunzip_coded(&text, members, level, shape & 1 == 1, trailing)
        }
        false => body.to_vec(),
    };

    let (drained, error) = gunzip_drained(&coded);
    let whole = match Decoder::whole(&coded, GUNZIP_MOST) {
        // `whole` drains in slices sized by the gzip trailer, and so may
        // pass the cap a slice ahead of `drained` on the way to an error
        // (what the slice that meets it made is not handed out).
        Ok(None) => {
            assert!(drained.len() as u64 + SLICE as u64 > GUNZIP_MOST);
            return;
        }
        other => other.map(|made| made.expect("within the limit")),
    };
    let unlimited = Decoder::whole(&coded, u64::MAX).map(|made| made.expect("no limit"));
    assert!(unlimited == whole, "{} unlimited", gunzip_told(&unlimited));
    match &whole {
        Ok(made) => assert!(error.is_none() && made == &drained),
        Err(e) => assert_eq!(Some(unworded(e)), error.as_ref().map(unworded)),
    }
    if made_of_text {
        let expected = match trailing {
            2 => Err(GunzipError::Truncated),
            _ => Ok(text.clone()),
        };
        assert!(whole == expected, "text coded: {}", gunzip_told(&whole));
    }

    // In pieces, as fed whole: the same bytes, or the same kind of error.
    // (Not always zlib's same words for it: see `unworded`.)
    let pieces = gunzip_fed(&coded, &sizes, end_apart);
    assert!(
        pieces.as_ref().map_err(unworded) == whole.as_ref().map_err(unworded),
        "pieces {sizes:?}, end apart {end_apart}: {}, whole {}",
        gunzip_told(&pieces),
        gunzip_told(&whole)
    );

    // A limit declines a body that decodes past it, and only that; one
    // that does not decode is declined or refused, as it passes the limit
    // before its error or not (where, depends on `whole`'s slices).
    let decoded = drained.len() as u64;
    let asked = decoded * u64::from(*limit) / 255;
    for limit in [asked, decoded.saturating_sub(1), decoded] {
        let limited = Decoder::whole(&coded, limit);
        match (&whole, limited) {
            (Ok(made), Ok(None)) => assert!(made.len() as u64 > limit, "declined under {limit}"),
            (Ok(made), Ok(Some(within))) => assert!(*made == within && decoded <= limit),
            (Err(e), Err(refused)) => assert!(unworded(e) == unworded(&refused)),
            (Err(_), Ok(None)) => {}
            (whole, limited) => panic!(
                "under {limit}: {}, unlimited {}",
                gunzip_told(&limited.map(Option::unwrap_or_default)),
                gunzip_told(whole)
            ),
        }
    }

    // flate2's reader, member by member, and, when it takes the bytes,
    // its MultiGzDecoder (which, unlike the proxy and `gzip -d`, refuses
    // bytes after the last member that begin none, and an empty body,
    // which the proxy relays as the empty body it is).
    // Either read stops past GUNZIP_MOST, which the proxy's decoder
    // only passes on its way to an error.
    let past_most = |made: &Vec<u8>| made.len() as u64 > GUNZIP_MOST;
    let by_members = gunzip_by_flate2_members(&coded);
    let ours = whole.as_ref().ok();
    let theirs = by_members.as_ref().map(|(made, _)| made);
    assert!(
        theirs == ours || (theirs.is_some_and(past_most) && ours.is_none()),
        "flate2 member by member: {:?} bytes, ours {}",
        theirs.map(Vec::len),
        gunzip_told(&whole)
    );
    let mut multi = Vec::new();
    let reader = flate2::bufread::MultiGzDecoder::new(&coded[..]);
    let taken = reader.take(GUNZIP_MOST + 1).read_to_end(&mut multi);
    match taken {
        Ok(_) if past_most(&multi) => assert!(ours.is_none(), "MultiGzDecoder makes more"),
        Ok(_) => assert!(
            Some(&multi) == ours,
            "MultiGzDecoder: {} bytes, ours {}",
            multi.len(),
            gunzip_told(&whole)
        ),
        Err(_) => assert!(
            ours.is_none() || coded.is_empty() || by_members.is_some_and(|(_, after)| after > 0),
            "MultiGzDecoder refuses what decodes with nothing after it"
        ),
    }
}

/// A FastCGI server's records turned into the HTTP response the proxy
/// reads (`fastcgi::reply`), on any bytes (or, with a flag, any bytes as
/// a script's output in well-formed records), fed in pieces of every
/// size: it never panics; it reads the same response, or fails, however
/// the bytes are cut; and what it gives is one response whose head
/// parses and whose body, framed as the head says, ends exactly where
/// the bytes do. No output of a script can make two responses of one,
/// or one the proxy would read past.
pub fn fastcgi_reply(data: &[u8]) {
    use inverso::fastcgi::record::{header, push_stream, END_REQUEST, STDOUT};
    use inverso::fastcgi::request::Begun;
    let [flags, count, rest @ ..] = data else {
        return;
    };
    let (sizes, bytes) = rest.split_at(usize::from(count % 16).min(rest.len()));
    let sizes = piece_sizes(sizes);
    let begun = Begun {
        head_only: flags & 1 == 1,
        keep_conn: flags & 2 == 2,
    };
    let wire = match flags & 4 == 4 {
        true => {
            let mut wire = Vec::new();
            push_stream(&mut wire, STDOUT, bytes);
            wire.extend_from_slice(&header(END_REQUEST, 8));
            wire.extend_from_slice(&[0; 8]);
            wire
        }
        false => bytes.to_vec(),
    };
    let whole = fastcgi_read(&wire, begun, &[]);
    let pieces = fastcgi_read(&wire, begun, &sizes);
    assert_eq!(whole, pieces, "fed in pieces of {sizes:?}");
}

/// What [`fastcgi_reply`] compares: `Err` for an error, `Ok(None)` for a
/// reply not ended, else the response's status, fields and body.
type FastcgiRead = Result<Option<(u16, Vec<(String, Vec<u8>)>, Vec<u8>)>, ()>;

fn fastcgi_read(
    wire: &[u8],
    begun: inverso::fastcgi::request::Begun,
    sizes: &[usize],
) -> FastcgiRead {
    let mut decoder = inverso::fastcgi::reply::Decoder::default();
    decoder.begin(begun);
    let mut out = Vec::new();
    let mut rest = wire;
    let mut size = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = size
            .next()
            .map_or(rest.len(), |&n| n.max(1))
            .min(rest.len());
        decoder.feed(&rest[..n]).map_err(|_| ())?;
        rest = &rest[n..];
        let mut buf = [0; 333];
        while decoder.has_output() {
            let got = decoder.take(&mut buf);
            out.extend_from_slice(&buf[..got]);
        }
    }
    if !decoder.is_idle() {
        return Ok(None);
    }
    let head_len = find_head_end(&out, &mut 0)
        .expect("a head the proxy reads")
        .expect("a whole head");
    let head = parse_response(&out[..head_len]).expect("a head the proxy parses");
    let body = &out[head_len..];
    let kind = BodyKind::for_response(begun.head_only, &head).expect("framing the proxy reads");
    let read = match kind {
        BodyKind::Empty => {
            assert!(body.is_empty(), "bytes past a bodiless answer");
            Vec::new()
        }
        BodyKind::Length(n) => {
            assert_eq!(body.len() as u64, n, "a body other than its length");
            body.to_vec()
        }
        BodyKind::Chunked => {
            let whole = decode_complete_chunked(body, u64::MAX).expect("whole chunks");
            assert_eq!(whole.used, body.len(), "bytes past the last chunk");
            whole.body
        }
        BodyKind::UntilClose => panic!("a response framed by its connection's close"),
    };
    assert_eq!(
        head.headers.get_str("connection") == Some("close"),
        !begun.keep_conn,
        "says whether the connection goes on"
    );
    // Framed by a length when the body was whole at the first read, else
    // in chunks: which, depends on how the bytes came.
    let fields = (head.headers.iter())
        .filter(|(name, _)| {
            !name.eq_ignore_ascii_case("transfer-encoding")
                && !name.eq_ignore_ascii_case("content-length")
        })
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_vec()))
        .collect();
    Ok(Some((head.status, fields, read)))
}

/// The bytes a connection begins with, read for a TLS hello's host name
/// and protocols (`stream.<name>.<host>`, `stream.<name>.alpn:<p>`): any
/// bytes, or (first byte odd) any bytes as a hello's extensions, in
/// records of the size the second byte says. What is decided stays
/// decided as more bytes come, a whole hello is never incomplete, and a
/// name or protocol read is one a key can be.
pub fn client_hello(data: &[u8]) {
    use inverso::tls::client_hello::{read, Hello};
    let [flags, record, rest @ ..] = data else {
        return;
    };
    let wire = match flags & 1 == 1 {
        true => wrapped_hello(rest, usize::from(*record).max(1)),
        false => data.to_vec(),
    };
    let whole = read(&wire);
    if flags & 1 == 1 && rest.len() < 8 * 1024 {
        assert_ne!(whole, Hello::Incomplete, "a whole hello");
    }
    if let Hello::Asked(asked) = &whole {
        assert!(
            asked.host.is_some() || !asked.protocols.is_empty(),
            "{asked:?}"
        );
        if let Some(host) = &asked.host {
            assert!(!host.is_empty() && host.len() <= 253, "{host:?}");
            assert!(
                (host.bytes()).all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'.' | b'_')),
                "{host:?}"
            );
            assert!(!host.ends_with('.'), "{host:?}");
        }
        // Protocols a key can name: visible ASCII, at most 16.
        assert!(asked.protocols.len() <= 16, "{asked:?}");
        for protocol in &asked.protocols {
            assert!(
                !protocol.is_empty() && protocol.len() <= 255,
                "{protocol:?}"
            );
            assert!(
                protocol.bytes().all(|b| b.is_ascii_graphic()),
                "{protocol:?}"
            );
        }
    }
    // Every start of it says as much or asks for more.
    let step = (wire.len() / 256).max(1);
    for end in (0..wire.len()).step_by(step) {
        let start = read(&wire[..end]);
        assert!(
            start == Hello::Incomplete || start == whole,
            "{end} of {} bytes: {start:?}, whole {whole:?}",
            wire.len()
        );
    }
}

/// A ClientHello whose extensions are `extensions`, in handshake records
/// of at most `record` bytes.
fn wrapped_hello(extensions: &[u8], record: usize) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(extensions);
    let mut message = vec![1];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    let mut wire = Vec::new();
    for fragment in message.chunks(record) {
        wire.extend_from_slice(&[22, 3, 1]);
        wire.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        wire.extend_from_slice(fragment);
    }
    wire
}

/// What an ACME server, a DNS server or an operator gives the ACME
/// client, the first byte saying which reader takes the rest (see
/// [`ACME_READERS`]): each gives a value within its limits or an error.
pub fn acme(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    ACME_READERS[usize::from(which) % ACME_READERS.len()](rest);
}

/// The readers of [`acme`], by the first byte of the input modulo their
/// number: a seed keeps its reader only while this order does.
const ACME_READERS: &[fn(&[u8])] = &[
    acme_answer,
    acme_endless_answer,
    acme_documents,
    acme_date,
    acme_dns_answer,
    acme_settings,
];

/// Reads of at most `size` bytes each from what `data` is.
struct Trickle<'a> {
    data: &'a [u8],
    size: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.size.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The HTTP client's answer, from a server sending the rest then closing
/// (the first byte: whether it answers a HEAD, and how many bytes a read
/// brings). Read in reads of that size and in reads as large as the
/// client takes, an answer under the head's limit is the same; one read
/// is within the limits, its body too.
fn acme_answer(data: &[u8]) {
    use inverso::acme::http::Answer;
    let Some((&how, wire)) = data.split_first() else {
        return;
    };
    let head_request = how & 1 == 1;
    let size = 1 + usize::from(how >> 1);
    let mut small = Trickle { data: wire, size };
    let trickled = Answer::read(&mut small, head_request, |_| Ok(()));
    let mut whole = std::io::Cursor::new(wire);
    let at_once = Answer::read(&mut whole, head_request, |_| Ok(()));
    if wire.len() <= 16 * 1024 {
        assert_eq!(format!("{trickled:?}"), format!("{at_once:?}"));
    }
    if let Ok(answer) = &at_once {
        acme_answer_holds(answer, wire, head_request);
    }
    // Out of time after the first read (`before_read` failing): an
    // error, or the same answer when one read was enough.
    let mut reads = 0;
    let mut again = Trickle { data: wire, size };
    let timed = Answer::read(&mut again, head_request, |_| {
        reads += 1;
        match reads > 1 {
            true => Err("no answer within 1s".into()),
            false => Ok(()),
        }
    });
    match timed {
        Ok(_) => assert_eq!(format!("{timed:?}"), format!("{trickled:?}")),
        Err(e) => assert!(!e.is_empty()),
    }
}

/// What holds of any answer read: a status of three digits, a body
/// within 256 KiB and none to a HEAD, and `Retry-After` when given as
/// seconds.
fn acme_answer_holds(answer: &inverso::acme::http::Answer, wire: &[u8], head_request: bool) {
    assert!((100..=999).contains(&answer.status), "{}", answer.status);
    assert!(answer.body.len() <= 256 * 1024);
    if head_request {
        assert!(answer.body.is_empty());
    }
    if let Some(after) = answer.retry_after {
        let text = format!("{}", after.as_secs());
        assert!(
            wire.windows(text.len()).any(|w| w == text.as_bytes()),
            "{text}"
        );
    }
    for field in [&answer.nonce, &answer.location].into_iter().flatten() {
        assert_eq!(field.trim(), field);
    }
}

/// An answer that never ends: the rest's first half, then its second
/// half again and again (a body without end, a head without end). The
/// client stops at its limits, having read at most a little past them.
fn acme_endless_answer(data: &[u8]) {
    use inverso::acme::http::Answer;
    let (start, again) = data.split_at(data.len() / 2);
    if again.is_empty() {
        return;
    }
    struct Endless<'a> {
        start: &'a [u8],
        again: &'a [u8],
        at: usize,
        given: usize,
    }
    impl std::io::Read for Endless<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let mut n = 0;
            while n < out.len() {
                let byte = match self.start.get(self.given + n) {
                    Some(&b) => b,
                    None => {
                        let b = self.again[self.at];
                        self.at = (self.at + 1) % self.again.len();
                        b
                    }
                };
                out[n] = byte;
                n += 1;
            }
            self.given += n;
            Ok(n)
        }
    }
    let mut endless = Endless {
        start,
        again,
        at: 0,
        given: 0,
    };
    let answer = Answer::read(&mut endless, false, |_| Ok(()));
    // A head of 16 KiB and a body of 256 KiB, and a read of 8 KiB past
    // each.
    assert!(
        endless.given <= 2 * 16 * 1024 + 256 * 1024 + 2 * 8192,
        "{} bytes read",
        endless.given
    );
    if let Ok(answer) = &answer {
        acme_answer_holds(answer, data, false);
    }
}

/// A JSON document an ACME server answers, as each reader of one takes
/// it: a directory, an order, an authorization (for each challenge
/// type), a renewal information, a problem; what one reads is as the
/// document says it.
fn acme_documents(data: &[u8]) {
    use inverso::acme::http::Url;
    use inverso::acme::order::{
        authorizations, reason, status, url_field, Chosen, Directory, Problem, Window,
    };
    use inverso::json_value::{self, Value};
    let problem = Problem::read(data);
    assert!(!problem.told().is_empty());
    let Ok(document) = json_value::parse(data) else {
        assert!(problem.kind.is_none() && problem.detail.is_none());
        return;
    };
    let text = |name: &str| document.get(name).and_then(Value::as_str);
    assert_eq!(problem.kind.as_deref(), text("type"));
    assert_eq!(problem.detail.as_deref(), text("detail"));
    let url_holds = |url: &Url, given: Option<&str>| {
        assert_eq!(Some(url.text.as_str()), given);
        assert!(url.path.starts_with('/') && !url.host.is_empty() && url.port != 0);
    };
    if let Ok(directory) = Directory::read(&document) {
        url_holds(&directory.new_nonce, text("newNonce"));
        url_holds(&directory.new_account, text("newAccount"));
        url_holds(&directory.new_order, text("newOrder"));
        if let Some(url) = &directory.renewal_info {
            url_holds(url, text("renewalInfo"));
        }
    }
    if let Ok(urls) = authorizations(&document) {
        let listed = document.get("authorizations").and_then(Value::as_array);
        assert_eq!(urls.len(), listed.map_or(0, <[Value]>::len));
    }
    for field in ["finalize", "certificate"] {
        if let Ok(url) = url_field(&document, field, "none") {
            url_holds(&url, text(field));
        }
    }
    for kind in ["http-01", "dns-01", "tls-alpn-01"] {
        match Chosen::read(&document, kind) {
            Ok(Some(chosen)) => {
                assert_eq!(status(&document), "pending");
                assert!(!chosen.token.is_empty());
                assert!(chosen
                    .token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                assert!(chosen.url.path.starts_with('/'));
            }
            Ok(None) => assert_eq!(status(&document), "valid"),
            Err(e) => assert!(!e.is_empty()),
        }
    }
    let after = Some(Duration::from_secs(21600));
    if let Ok(window) = Window::read(&document, after) {
        assert!(window.start <= window.end);
        assert_eq!(window.ask_again, after);
    }
    let said = reason(&document);
    assert!(said.is_empty() || said.starts_with(": "));
}

/// An RFC 3339 date, as a renewal window's ends are read: one read is
/// written as the access log writes it and reads back the same (to the
/// second); and the same text as `Retry-After` is seconds or nothing.
fn acme_date(data: &[u8]) {
    use inverso::acme::http::Answer;
    use inverso::http::date::{format_rfc3339, parse_rfc3339};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(at) = parse_rfc3339(text) {
        let written = format_rfc3339(at);
        let back = parse_rfc3339(&written).expect("a date written reads back");
        let secs =
            |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok();
        assert_eq!(secs(back), secs(at), "{written}");
    }
    if text.contains(['\r', '\n']) {
        return;
    }
    let wire = format!("HTTP/1.1 503 X\r\nRetry-After: {text}\r\nContent-Length: 0\r\n\r\n");
    let mut cursor = std::io::Cursor::new(wire.as_bytes());
    if let Ok(answer) = Answer::read(&mut cursor, false, |_| Ok(())) {
        let seconds = text.trim().parse::<u64>().ok();
        assert_eq!(answer.retry_after, seconds.map(Duration::from_secs));
    }
}

/// A DNS server's answer to an update: the rest, its ID (the first two
/// bytes) asked for, or another. Taken only as an answer, to that ID,
/// saying NOERROR.
fn acme_dns_answer(data: &[u8]) {
    use inverso::acme::dns_update::read_answer;
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    for asked in [id, id.wrapping_add(1)] {
        if read_answer(data, asked).is_ok() {
            assert!(data.len() >= 4);
            assert_eq!(asked, id);
            assert!(data[2] & 0x80 != 0 && data[3] & 0x0f == 0);
        }
    }
}

/// The `acme_*` keys' values, each read by its parser: a value taken is
/// within its limits and reads back the same.
fn acme_settings(data: &[u8]) {
    use inverso::acme::dns_update::TsigKey;
    use inverso::acme::http::Url;
    use inverso::acme::state::from_pem;
    use inverso::acme::{
        parse_dns_server, parse_domains, parse_email, parse_mac_key, parse_zones, Challenge,
    };
    let _ = from_pem(data);
    let Ok(v) = std::str::from_utf8(data) else {
        return;
    };
    let name_holds = |name: &str| {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        assert!(!bare.is_empty() && bare.len() <= 253, "{name:?}");
        assert!(!bare.ends_with('.'), "{name:?}");
        assert!(
            bare.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)),
            "{name:?}"
        );
    };
    if let Ok(key) = TsigKey::parse(v) {
        assert!(!key.secret.is_empty());
        assert!(key.name.len() <= 253, "{key:?}");
        assert_eq!(key.name, key.name.to_ascii_lowercase());
        assert!(!key.name.ends_with('.'), "{key:?}");
    }
    if let Ok(certificates) = parse_domains(v) {
        let mut all = std::collections::HashSet::new();
        for names in &certificates {
            assert!((1..=100).contains(&names.len()));
            for name in names {
                name_holds(name);
                assert!(all.insert(name.clone()), "{name} twice");
            }
        }
        let written: Vec<String> = certificates.iter().map(|names| names.join(",")).collect();
        assert_eq!(parse_domains(&written.join(";")), Ok(certificates));
    }
    if let Ok(zones) = parse_zones(v) {
        zones.iter().for_each(|zone| name_holds(zone));
        assert_eq!(parse_zones(&zones.join(",")), Ok(zones));
    }
    if let Ok(Some(server)) = parse_dns_server(v) {
        assert_eq!(parse_dns_server(&server), Ok(Some(server.clone())));
    }
    if let Ok(Some(email)) = parse_email(v) {
        assert_eq!(parse_email(&email), Ok(Some(email.clone())));
    }
    if let Ok(Some(key)) = parse_mac_key(v) {
        assert!(!key.0.is_empty());
    }
    if let Ok(challenge) = Challenge::parse(v) {
        assert_eq!(Challenge::parse(challenge.name()), Ok(challenge));
    }
    if let Ok(url) = Url::parse(v) {
        assert!(url.path.starts_with('/') && !url.host.is_empty() && url.port != 0);
        assert_eq!(url.text, v);
        assert_eq!(Url::parse(&url.text), Ok(url));
    }
}

/// The name the `dns` target's replies answer (its seeds are replies to
/// the query for it with ID 0x1234).
const SRV_NAME: &str = "_http._tcp.app.test";

/// What a DNS server says to an SRV query (`srv:` targets): the first
/// byte chooses. 0: the rest is a reply to the query for [`SRV_NAME`]
/// with ID 0x1234, read, and the addresses it gives made (every host
/// "resolving" to 127.0.0.1): the records used are each host and port
/// once, by priority, every address is at a used record's port, with a
/// weight a target may have, and the primaries come first.
/// 1: the rest is the text of an `/etc/resolv.conf`.
pub fn dns(data: &[u8]) {
    use inverso::dns::{message, srv};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 1 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = srv::first_nameserver(text);
        }
        return;
    }
    let Ok(reply) = message::parse_reply(rest, 0x1234, SRV_NAME) else {
        return;
    };
    let used = srv::used_records(&reply);
    for pair in used.windows(2) {
        let key = |r: &message::Srv| (r.priority, r.target.clone(), r.port);
        assert!(key(pair[0]) < key(pair[1]), "{reply:?}");
    }
    let local = |_: &str, port: u16| Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))]);
    if let Ok(found) = srv::addresses(SRV_NAME, &reply, &local) {
        for f in &found {
            assert!(
                used.iter().any(|r| r.port == f.addr.port()),
                "{f} {reply:?}"
            );
            let weight = f.weight.unwrap_or_default();
            assert!((1..=inverso::config::MAX_WEIGHT).contains(&weight), "{f}");
        }
        assert!(found.first().is_some_and(|f| !f.backup), "{reply:?}");
        assert!(
            found.windows(2).all(|p| p[0].backup <= p[1].backup),
            "{reply:?}"
        );
    }
}

/// A MaxMind DB file (`geoip_database`): refused, or read; then, whatever
/// its tree and data section hold, every lookup ends with a country of
/// two capitals or none. The addresses looked up are fixed ones (in
/// both families) and the file's own first bytes as one of each.
pub fn geoip(data: &[u8]) {
    use inverso::geoip::GeoIp;
    use std::net::IpAddr;
    let Ok(db) = GeoIp::parse(data.to_vec()) else {
        return;
    };
    let mut own = [0u8; 16];
    for (to, from) in own.iter_mut().zip(data) {
        *to = *from;
    }
    let v4 = [own[0], own[1], own[2], own[3]];
    let addresses: [IpAddr; 5] = [
        IpAddr::from(own),
        IpAddr::from(v4),
        IpAddr::from([192, 0, 2, 1]),
        IpAddr::from([0u8; 16]),
        IpAddr::from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    ];
    for ip in addresses {
        if let Some(country) = db.country(ip) {
            let code = country.as_str();
            assert!(
                code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{code:?}"
            );
        }
    }
    let _ = db.summary();
}
