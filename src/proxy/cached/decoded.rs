//! A stored gzip-coded answer served decoded (`gunzip`) to a client that
//! takes no gzip: whole with its length when it decodes within
//! `response_buffer_size`, else decoded as it goes out, in chunks (to an
//! HTTP/1.0 client, ended by the close). The stored copy stays the coded
//! one, for every client that takes gzip; it is decoded again at each
//! such hit, as nginx's `gunzip` does. No range is cut from it: ranges
//! are of the coded bytes (a `Range` gets the whole, as through nginx).

use super::answer::Ending;
use super::{Answering, Status};
use crate::access_log::{By, Stage, Termination};
use crate::cache::Entry;
use crate::digits::push_field;
use crate::gunzip::{self, Decoder, WriteCut};
use crate::gzip;
use crate::http::body::forbids_content_length;
use crate::http::conn::write_all_vectored_counting;
use crate::http::Version;
use crate::pace::Paced;
use crate::proxy::{Client, Outcome, Refusal};
use std::io::IoSlice;
use std::sync::Arc;

/// Whether `entry` goes decoded to the clients that take no gzip: then
/// it says `Vary: Accept-Encoding` to every client.
pub(super) fn varies(answering: &Answering<'_>, entry: &Entry) -> bool {
    answering.gunzip && gunzip::decodes(entry.head.status, &entry.head.headers)
}

/// Whether `entry` goes decoded to this client.
pub(super) fn decodes(answering: &Answering<'_>, entry: &Entry) -> bool {
    answering.lacks_gzip && varies(answering, entry)
}

/// Answers with `entry` decoded (its `200`, not a `304`: see
/// `answer::serve_entry`), `keep_alive` as the request allows.
pub(super) fn serve_decoded(
    client: &mut Client,
    answering: &Answering<'_>,
    entry: &Arc<Entry>,
    (status, keep_alive): (Status, bool),
    upstream: Option<Arc<str>>,
    own: &[u8],
) -> Result<Outcome, Refusal> {
    let request = answering.request;
    let code = entry.head.status;
    let answering = &answering.at(code);
    let has_body = !request.is_head() && !forbids_content_length(code);
    let whole = match has_body {
        true => Decoder::whole(&entry.record.body, client.response_buffer),
        false => Ok(None),
    };
    // What the backend sent, stored as it came: its clients that take
    // gzip have it as it is, this one cannot.
    let undecodable = |e: gunzip::GunzipError, upstream| {
        log::warn!("a cached answer does not decode for a client without gzip: {e}");
        Refusal {
            upstream,
            ..Refusal::new(502, keep_alive)
        }
    };
    let whole = whole.map_err(|e| undecodable(e, upstream.clone()))?;
    // Past the buffer: decoded as it goes, its length unknown.
    let streams = has_body && whole.is_none();
    let chunked = streams && request.version == Version::Http11;
    let keep_alive = keep_alive && (chunked || !streams);
    let mut head = Vec::with_capacity(256 + entry.record.head.len() + own.len());
    let served = entry.served_head(answering.own_fields);
    (answering.edits).push_kept(&mut head, &served, &gzip::REPLACED_FIELDS);
    gunzip::push_decoded_fields(&mut head, &entry.head.headers);
    match &whole {
        Some(body) => push_field(&mut head, "Content-Length", body.len() as u64),
        None if chunked => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        None => {}
    }
    let ending = Ending {
        status,
        own,
        code,
        keep_alive,
    };
    ending.push(&mut head, client, answering, entry);
    client.note_sent_head(&[&head]);
    let pacing = client.pacing;
    let out = &mut Paced::new(client.conn.get_mut(), pacing);
    let (written, result) = match streams {
        true => gunzip::write_decoded(out, &head, &entry.record.body, chunked),
        false => {
            let body = whole.as_deref().unwrap_or_default();
            let slices = &mut [IoSlice::new(&head), IoSlice::new(body)];
            let (written, result) = write_all_vectored_counting(out, slices);
            (written, result.map_err(WriteCut::Client))
        }
    };
    let sent = written.saturating_sub(head.len()) as u64;
    match &result {
        Ok(()) => {}
        // Gone before a byte went out: logged 499; in the middle, as what
        // it got (see `answer::serve_entry`).
        Err(WriteCut::Client(_)) => {
            client.ended(Termination::new(By::Client, Stage::Data));
            if written == 0 {
                return Err(Refusal::silent());
            }
        }
        Err(WriteCut::Corrupt(e)) if written == 0 => return Err(undecodable(e.clone(), upstream)),
        Err(WriteCut::Corrupt(e)) => {
            log::warn!("a cached answer stopped decoding for a client without gzip: {e}");
            client.ended(Termination::new(By::Proxy, Stage::Data));
        }
    }
    Ok(Outcome {
        status: code,
        bytes: sent,
        upstream,
        keep_alive: keep_alive && result.is_ok(),
        cache: Some(status.name()),
        linger: result.is_ok(),
    })
}
