//! Answering from a stored response: its 200, 304, 206 (one part or
//! several) or 416, head and body in one `writev`.

use super::{decoded, Answering, Status};
use crate::access_log::{By, Stage, Termination};
use crate::cache::policy;
use crate::cache::Entry;
use crate::digits::push_field;
use crate::gunzip;
use crate::gzip::{self, Gzip};
use crate::http::body::forbids_content_length;
use crate::http::conn::write_all_vectored_counting;
use crate::http::date::format_http_date;
use crate::http::range::{self, Multipart, Ranged};
use crate::pace::Paced;
use crate::proxy::cache_status::{self, Member};
use crate::proxy::relay::push_connection_header;
use crate::proxy::{Client, Outcome, Refusal};
use std::borrow::Cow;
use std::io::{IoSlice, Write as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

/// The status line of a 206, of one part or several.
const PARTIAL_CONTENT: &[u8] = b"HTTP/1.1 206 Partial Content\r\n";

/// Fields a 304 made from a stored response carries (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "last-modified",
    "vary",
];

/// Answers from a stored response: its head, then Age, X-Cache, the
/// fields `response_header.*` sets, `own` (fields for this client alone,
/// each line ending in CRLF) and framing, then the shared body (or the
/// parts cut from it, between their multipart frames), in one `writev`. A
/// client's own conditional request that the entry satisfies gets a 304.
/// The fields those keys name are left out of the stored head as it goes.
/// With `gzip`, a whole body of a type it lists goes compressed to a
/// client that takes it, from the entry's compressed copy.
pub(super) fn serve_entry(
    client: &mut Client,
    answering: &Answering<'_>,
    entry: &Arc<Entry>,
    status: Status,
    upstream: Option<Arc<str>>,
    own: &[u8],
) -> Result<Outcome, Refusal> {
    let Answering {
        request,
        keep_alive,
        cache,
        shutting_down,
        own_fields,
        pacing,
        edits: _,
        gzip,
        cache_name: _,
        metrics,
        takes,
        gunzip: _,
        lacks_gzip: _,
        ttl: _,
    } = *answering;
    let keep_alive = keep_alive && !shutting_down.load(Ordering::Relaxed);
    // The rate the backend set for the stored answer (`X-Accel-Limit-Rate`),
    // not one a backend's failed answer set before a stale one is served.
    client.pacing = pacing.as_backend_says(&entry.head.headers);
    let counter = match status {
        Status::Hit => &cache.stats.hits,
        Status::Stale => &cache.stats.stale,
        Status::Revalidated => &cache.stats.revalidated,
        Status::Miss | Status::Filled { .. } => &cache.stats.misses,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    // `gunzip`: coded, for a client that takes no gzip.
    let decoding = decoded::decodes(answering, entry);
    let not_modified = policy::not_modified(&request.headers, &entry.head);
    if decoding && !not_modified {
        let how = (status, keep_alive);
        return decoded::serve_decoded(client, answering, entry, how, upstream, own);
    }
    let whole = &entry.record.body;
    let len = whole.len() as u64;
    // Compressed for some clients: it says so in Vary to every client,
    // and goes compressed to this one if it takes gzip.
    let coding = gzip.filter(|g| g.suits(entry.head.status, &entry.head.headers, Some(len)));
    let ranged = match not_modified {
        true => Ranged::Whole,
        false => ranged_of(answering, entry, coding, len),
    };
    // The fields `response_header.*` decides by the status are those of
    // the status served.
    let code = match (not_modified, &ranged) {
        (true, _) => 304,
        (false, Ranged::Whole) => entry.head.status,
        (false, Ranged::Part { .. } | Ranged::Parts(_)) => 206,
        (false, Ranged::Unsatisfiable) => 416,
    };
    let answering = &answering.at(code);
    let edits = answering.edits;
    // Decoded for the clients that take no gzip, as it is not for this
    // one: it says so in Vary too.
    let decoded_for_others = !decoding && decoded::varies(answering, entry);
    let replaced: &[&str] = match coding {
        Some(_) if takes.is_some() => &gzip::REPLACED_FIELDS,
        Some(_) => &["vary"],
        None if decoding => &gzip::REPLACED_FIELDS,
        None if decoded_for_others => &["vary"],
        None => &[],
    };
    // With fields set, removed or replaced, room for them and for the
    // stored head, which may be copied here (see `Ranged::Whole`): still
    // the one allocation a hit makes.
    let room = if edits.is_empty() && replaced.is_empty() {
        128
    } else {
        256 + entry.record.head.len() + edits.set_lines().len() + own.len()
    } + client.response_fields.len();
    let mut tail = Vec::with_capacity(room);
    // Several parts go out from the stored body (see `Multipart`).
    let mut multipart = None;
    // The body goes compressed: counted as it goes.
    let mut compressed_from = None;
    let (head, body): (Cow<'_, [u8]>, &[u8]) = if not_modified {
        let mut head = b"HTTP/1.1 304 Not Modified\r\n".to_vec();
        let kept = |name: &[u8]| {
            !edits.edits(name)
                && !replaced
                    .iter()
                    .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
        };
        (entry.head.headers).write_named_where(NOT_MODIFIED_FIELDS, kept, &mut head);
        // What the 200 would say of its validator and variants (RFC
        // 9110 §15.4.5).
        if coding.is_some() {
            gzip::push_vary(&mut head, &entry.head.headers);
            if takes.is_some() {
                gzip::push_weak_etag(&mut head, &entry.head.headers);
            }
        }
        if decoding {
            gunzip::push_decoded_fields(&mut head, &entry.head.headers);
        } else if decoded_for_others {
            gzip::push_vary(&mut head, &entry.head.headers);
        }
        (head.into(), b"")
    } else {
        match ranged {
            Ranged::Whole => {
                let compressed = coding.zip(takes).and_then(|(gzip, takes)| {
                    let (compressed, made) =
                        entry.compressed(takes, |body| gzip.compress_to_keep(takes, body))?;
                    if made {
                        cache.reweigh(entry);
                    }
                    Some((takes, compressed))
                });
                // Uncompressed while another hit makes the copy: only
                // Vary is replaced then.
                let replaced: &[&str] = match (compressed, coding) {
                    (Some(_), _) => &gzip::REPLACED_FIELDS,
                    (None, Some(_)) => &["vary"],
                    (None, None) if decoded_for_others => &["vary"],
                    (None, None) => &[],
                };
                let sent = compressed.map_or(&whole[..], |(_, copy)| copy);
                let body: &[u8] = if request.is_head() { b"" } else { sent };
                if !request.is_head() {
                    compressed_from = compressed.map(|(takes, _)| (takes, len));
                }
                let served = entry.served_head(own_fields);
                // With an edited or replaced field stored, the head goes
                // less that field's lines, copied to the start of `tail`
                // (room was made for it) rather than into an allocation
                // of its own.
                let stored = &entry.head.headers;
                let replacing = replaced.iter().any(|name| stored.contains(name));
                let head = if edits.touches(&served) || replacing {
                    edits.push_kept(&mut tail, &served, replaced);
                    Cow::Borrowed(&b""[..])
                } else {
                    served
                };
                match compressed {
                    Some((takes, _)) => {
                        gzip::push_compressed_fields(&mut tail, &entry.head.headers, takes)
                    }
                    None if coding.is_some() || decoded_for_others => {
                        gzip::push_vary(&mut tail, &entry.head.headers)
                    }
                    None => {}
                }
                if !forbids_content_length(entry.head.status) {
                    push_field(&mut tail, "Content-Length", sent.len() as u64);
                }
                if entry.head.status == 200
                    && compressed.is_none()
                    && range::worth_announcing(&entry.head.headers, len)
                {
                    tail.extend_from_slice(b"Accept-Ranges: bytes\r\n");
                }
                (head, body)
            }
            Ranged::Part { start, end } => {
                let head = part_head(answering, entry, coding, (start, end, len), &mut tail);
                (head.into(), &whole[start as usize..=end as usize])
            }
            Ranged::Parts(spans) => {
                let stored = &entry.head.headers;
                // Unique, and unguessable (a keyed hash of a counter):
                // no stored body holds it, by chance or by design.
                let boundary = crate::request_id::generate();
                let parts = Multipart::new(spans, len, stored.get("content-type"), boundary);
                parts.push_fields(&mut tail);
                let mut head = PARTIAL_CONTENT.to_vec();
                // Each part says the stored type; the response, its own,
                // and the Vary its 200 would.
                let fields = entry.served_fields(own_fields);
                let varies = coding.is_some() || decoded_for_others;
                let replaced: &[&str] = match varies {
                    true => &["content-type", "content-range", "vary"],
                    false => &["content-type", "content-range"],
                };
                edits.push_kept(&mut head, &fields, replaced);
                if varies {
                    gzip::push_vary(&mut tail, &entry.head.headers);
                }
                multipart = Some(parts);
                (head.into(), b"")
            }
            Ranged::Unsatisfiable => {
                let mut head = b"HTTP/1.1 416 Range Not Satisfiable\r\n".to_vec();
                let now = format_http_date(SystemTime::now());
                let _ = write!(head, "Date: {now}\r\nContent-Range: bytes */{len}\r\n");
                head.extend_from_slice(b"Content-Length: 0\r\n");
                (head.into(), b"")
            }
        }
    };
    let ending = Ending {
        status,
        own,
        code,
        keep_alive,
    };
    ending.push(&mut tail, client, answering, entry);
    client.note_sent_head(&[&head, &tail]);
    // Counted before it goes: a client that has it finds it counted.
    if let Some((coding, len)) = compressed_from {
        client.count_compressed((metrics, coding), len, body.len() as u64);
    }
    let pacing = client.pacing;
    let out = &mut Paced::new(client.conn.get_mut(), pacing);
    let (written, result) = match &multipart {
        None => write_all_vectored_counting(
            out,
            &mut [IoSlice::new(&head), IoSlice::new(&tail), IoSlice::new(body)],
        ),
        Some(parts) => write_all_vectored_counting(out, &mut parts.slices(&[&head, &tail], whole)),
    };
    // A client gone before a byte went out is logged 499; one gone in the
    // middle, as what it got (as a relayed response cut short is): the
    // status and the body bytes that went out. Either is its `CD`.
    if result.is_err() {
        client.ended(Termination::new(By::Client, Stage::Data));
    }
    if result.is_err() && written == 0 {
        return Err(Refusal::silent());
    }
    let sent = written.saturating_sub(head.len() + tail.len());
    Ok(Outcome {
        status: code,
        bytes: sent as u64,
        upstream,
        keep_alive: keep_alive && result.is_ok(),
        cache: Some(status.name()),
        linger: result.is_ok(),
    })
}

/// The parts of `entry` (`len` bytes long, served with `coding`) the
/// request asks for.
fn ranged_of(answering: &Answering<'_>, entry: &Entry, coding: Option<&Gzip>, len: u64) -> Ranged {
    let request = answering.request;
    let dated_if_range = answering.dated_if_range(coding);
    match entry.head.status == 200 && !request.is_head() && !dated_if_range {
        true => range::requested(&request.headers, &entry.head.headers, len),
        false => Ranged::Whole,
    }
}

/// The head of a 206 of bytes `start..=end` of `entry`'s `len`, a hit's
/// or a streamed miss's (see [`StreamedPart`]): the stored status line
/// replaced, its fields but the ones this part says itself; its framing,
/// and the `Vary` its 200 would say with `coding` or `gunzip` (RFC 9110
/// §15.3.7), go in `tail`.
///
/// [`StreamedPart`]: super::streamed::StreamedPart
pub(super) fn part_head(
    answering: &Answering<'_>,
    entry: &Entry,
    coding: Option<&Gzip>,
    (start, end, len): (u64, u64, u64),
    tail: &mut Vec<u8>,
) -> Vec<u8> {
    let _ = write!(
        tail,
        "Content-Range: bytes {start}-{end}/{len}\r\nContent-Length: {}\r\n",
        end - start + 1
    );
    let mut head = PARTIAL_CONTENT.to_vec();
    let fields = entry.served_fields(answering.own_fields);
    // A part goes only to a client that takes gzip when `gunzip` decodes
    // the entry for the others.
    let varies = coding.is_some() || decoded::varies(answering, entry);
    let replaced: &[&str] = match varies {
        true => &["content-range", "vary"],
        false => &["content-range"],
    };
    answering.edits.push_kept(&mut head, &fields, replaced);
    if varies {
        gzip::push_vary(tail, &entry.head.headers);
    }
    head
}

/// What ends the head of an answer made from an entry, whatever its
/// status: Age, X-Cache, Cache-Status, the fields `response_header.*`
/// sets, `own` (fields for this client alone, each line ending in CRLF),
/// and `Connection`.
pub(super) struct Ending<'a> {
    pub(super) status: Status,
    pub(super) own: &'a [u8],
    /// The status code sent.
    pub(super) code: u16,
    pub(super) keep_alive: bool,
}

impl Ending<'_> {
    pub(super) fn push(
        self,
        tail: &mut Vec<u8>,
        client: &Client,
        answering: &Answering<'_>,
        entry: &Entry,
    ) {
        let Ending {
            status,
            own,
            code,
            keep_alive,
        } = self;
        let edits = answering.edits;
        let age = entry.age(SystemTime::now()).as_secs();
        push_field(tail, "Age", age);
        tail.extend_from_slice(b"X-Cache: ");
        tail.extend_from_slice(status.name().as_bytes());
        tail.extend_from_slice(b"\r\n");
        if let Some(name) = answering.cache_name {
            // Its freshness as it is used: capped by `ttl` as it is now.
            let ttl = entry.fresh_lifetime().min(answering.ttl).as_secs() as i64 - age as i64;
            // A revalidation or a refetch went on because what was stored
            // had gone stale (RFC 9211 §2.2's `fwd=stale`).
            let member = match status {
                Status::Hit | Status::Stale => Member::Hit { ttl },
                Status::Revalidated => Member::Forwarded {
                    fwd: "stale",
                    status: 304,
                    stored: Some(ttl),
                },
                Status::Miss => Member::Forwarded {
                    fwd: "stale",
                    status: entry.head.status,
                    stored: Some(ttl),
                },
                Status::Filled { fwd } => Member::Forwarded {
                    fwd,
                    status: entry.head.status,
                    stored: Some(ttl),
                },
            };
            cache_status::push(tail, name, member);
        }
        edits.push_set_lines(tail);
        // A 304's cookies for this client are the backend's too: gone when
        // `Set-Cookie` is removed.
        edits.push_kept(tail, own, &[]);
        client.push_own_fields(tail, code, Some(status.name()));
        push_connection_header(tail, keep_alive, answering.request.version);
        tail.extend_from_slice(b"\r\n");
    }
}
