//! What each fuzz target checks, one function per target. Shared by the
//! libFuzzer binaries (`fuzz_targets/*.rs`, run by `scripts/fuzz.sh`) and
//! by `cargo test`, which replays the seeds and every input that once
//! crashed a target (`tests/fuzz_regressions.rs`), so a fix stays fixed.

#![allow(dead_code)]

use inverso::auth::{claimed_user, Credentials, Users};
use inverso::cache::persist::{read_records, LoadLimits};
use inverso::cache::policy::{storable, CacheValid, Settings, Targeting, MAX_TAGS};
use inverso::cache::Entry;
use inverso::config::Loader;
use inverso::http::body::{
    chunk_size_line, decode_complete_chunked, response_forbids_reuse, LAST_CHUNK,
};
use inverso::http::head::{
    check_target_bytes, find_head_end, parse_request, parse_response, RequestLimits,
};
use inverso::http::headers::set_cookie_paths;
use inverso::http::proxy_protocol::{self, V2_MAX};
use inverso::http::{BodyKind, BodyReader, BufConn, Headers, RequestHead, ResponseHead, Version};
use inverso::routes::{is_ambiguous, Asked, Condition, Lookup};
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
    decode_chunked_by(wire, buffer, limit, false)
}

/// [`decode_chunked`], piece by piece or, if `joined`, with the chunks
/// each read brings joined (as request bodies stream to a backend).
fn decode_chunked_by(wire: &[u8], buffer: usize, limit: u64, joined: bool) -> Option<Vec<u8>> {
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
            Ok(None) => return Some(body),
            Err(_) => return None,
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
    // Joined or not, the same body, or none.
    let joined = decode_chunked_by(wire, 8 * buffer, u64::MAX, true);
    assert_eq!(joined.is_some(), streamed.is_some());
    if let (Some(a), Some(b)) = (&joined, &streamed) {
        assert_eq!(a, b);
    }
    if let Some((whole, used)) = decode_complete_chunked(wire, u64::MAX) {
        assert!(used <= wire.len());
        assert_eq!(streamed.as_deref(), Some(&whole[..]));
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
        assert_eq!(decode_chunked(wire, buffer, body.len() as u64 - 1), None);
    }
}

/// Whether a proxy.conf text would make `targets` resolve a host name
/// (anything that is not an IP address literal): DNS is slow and not what
/// is under test, so such inputs are skipped.
fn resolves_names(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        key.trim() == "targets"
            && value.split(',').any(|item| {
                let name = item.split_whitespace().next().unwrap_or_default();
                let host = name.rsplit_once(':').map_or(name, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                !host.is_empty() && host.parse::<std::net::IpAddr>().is_err()
            })
    })
}

/// proxy.conf text through the loader and the typed build.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if resolves_names(text) {
        return;
    }
    let mut loader = Loader::new();
    if loader.file("proxy.conf", text).is_ok() {
        let _ = loader.effective().count();
        let _ = loader.build();
    }
}

/// Routes and the requests they route: lines beginning `route.` are
/// route keys (beside three pools), the others `host target` pairs. No
/// request target a client may send makes routing panic, a rewritten
/// target is a path with no dot-segment, a backend's `Location` brought
/// back under a route is a path, its `Set-Cookie` changes in its `Path`
/// values alone, and a redirect never leaves for a host the client names
/// (no `//` or `\` at its start).
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
    for request in requests {
        // `host target [cookie]`: the cookie for routes' conditions.
        let (host, rest) = request.split_once(' ').unwrap_or(("", request));
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
        };
        // No request, no condition met (a negated one neither); a stored
        // GET never came through a route that sends around the cache.
        let found = |lookup| {
            let index = routes.route_asked(host, target, lookup).ok().flatten();
            index
                .and_then(|i| routes.get(i))
                .and_then(|r| r.condition())
        };
        assert!(found(Lookup::Bare).is_none(), "{request}");
        let stored = found(Lookup::StoredGet);
        assert!(!stored.is_some_and(|c| c.reads_past_the_key()), "{request}");
        let Ok(Some(index)) = routes.route_asked(host, target, Lookup::Request(&asked)) else {
            continue;
        };
        let route = routes.get(index).expect("a route found is there");
        assert!(route.pool <= config.pools.len());
        let met = |c: &Condition| c.met(Lookup::Request(&asked));
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
            let text = answer.text.as_deref().unwrap_or_default();
            let line = text.strip_suffix('\n').unwrap_or(text);
            assert!(!line.chars().any(char::is_control), "{text:?}");
            assert!(route.rewritten(target).is_none() && route.redirect().is_none());
        }
        let path = &target[..target.find('?').unwrap_or(target.len())];
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
            let before: Vec<_> = set_cookie_paths(field).collect();
            let after: Vec<_> = set_cookie_paths(&back).collect();
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
            assert!(
                !location.starts_with("//") && !location.contains('\\'),
                "{location}"
            );
            assert!(relative || location.starts_with("http"), "{location}");
        }
    }
}

/// The cache snapshot loader on arbitrary bytes: it must never panic and
/// never allocate past what the input holds or the limits allow.
pub fn snapshot(data: &[u8]) {
    let limits = LoadLimits {
        max_record_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    let _ = read_records(data, 0, &limits);
    let _ = read_records(data, u64::MAX, &LoadLimits::UNLIMITED);
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
