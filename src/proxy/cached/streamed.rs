//! One range of a 200 being stored, sent as its body streams in.

use super::answer::{part_head, Ending};
use super::ranges::asks_a_range;
use super::withhold::CLIENT_CONDITIONS;
use super::{Answering, Status};
use crate::cache::Entry;
use crate::gzip::Gzip;
use crate::http::range::{self, Ranged};
use crate::http::BodyKind;
use crate::proxy::origin::Fetched;
use crate::proxy::relay::{self, Relay, Tee};
use crate::proxy::{Client, Outcome, Refusal, Shared};
use std::sync::atomic::Ordering;

/// A withheld range miss whose one part goes out as the body streams
/// into the cache, as nginx's range filter sends one range of a body of
/// known length, rather than once the body is whole (a player asking
/// `bytes=0-` of a large video would wait for all of it): its 206 is the
/// one a hit would get then. Bytes past the part are read on into the
/// cache, not sent; a body cut short cuts the response, and nothing is
/// stored.
pub(super) struct StreamedPart<'a> {
    answering: &'a Answering<'a>,
    /// The answer as it will be stored, without its body.
    bodiless: &'a Entry,
    /// Bytes `start..=end` of `len`.
    span: (u64, u64, u64),
    /// With `gzip`, as for the entry: its Vary says it is compressed for
    /// some clients.
    coding: Option<&'a Gzip>,
    /// Why the request went on (`Cache-Status`).
    fwd: &'static str,
}

impl<'a> StreamedPart<'a> {
    /// The part, when the 200 being stored says its length, the request
    /// asks one satisfiable range its `If-Range` (if any) lets through,
    /// and no condition of its own that could make the answer a 304
    /// (those stay the entry's to evaluate). `None` for anything else,
    /// cut from the entry once stored (see [`Withheld`]).
    ///
    /// [`Withheld`]: super::withhold::Withheld
    pub(super) fn of(
        answering: &'a Answering<'a>,
        bodiless: &'a Entry,
        fetched: &Fetched<'_>,
        fwd: &'static str,
    ) -> Option<StreamedPart<'a>> {
        let request = answering.request;
        let head = &bodiless.head;
        let conditional = (CLIENT_CONDITIONS.iter()).any(|name| request.headers.contains(name));
        // A body `sub_filter` rewrites has its length once it is whole,
        // and one `gunzip` decodes for this client has no ranges.
        let rewritten =
            fetched.substitution.is_some() || super::decoded::decodes(answering, bodiless);
        if !asks_a_range(request) || conditional || head.status != 200 || rewritten {
            return None;
        }
        let Ok(BodyKind::Length(len)) = BodyKind::for_response(false, &fetched.response) else {
            return None;
        };
        // As `serve_entry` would answer once it is stored.
        let coding = (answering.gzip).filter(|g| g.suits(head.status, &head.headers, Some(len)));
        if answering.dated_if_range(coding) {
            return None;
        }
        match range::requested(&request.headers, &head.headers, len) {
            Ranged::Part { start, end } => Some(StreamedPart {
                answering,
                bodiless,
                span: (start, end, len),
                coding,
                fwd,
            }),
            _ => None,
        }
    }

    /// Sends the 206 a hit would send (with `X-Cache: MISS`), and the
    /// part's bytes as they come, while `tee` takes the whole body
    /// (see [`relay::relay_part`]).
    pub(super) fn stream(
        self,
        client: &mut Client,
        fetched: Fetched<'_>,
        tee: &mut Tee<'_>,
        shared: &Shared,
    ) -> Result<Outcome, Refusal> {
        let StreamedPart {
            answering,
            bodiless: entry,
            span,
            coding,
            fwd,
        } = self;
        let keep_alive = answering.keep_alive && !answering.shutting_down.load(Ordering::Relaxed);
        client.pacing = (answering.pacing).as_backend_says(&entry.head.headers);
        // Never stored, but this client's own.
        let mut cookies = Vec::new();
        (fetched.response.headers).write_named(&["set-cookie"], &mut cookies);
        let mut tail = Vec::with_capacity(256);
        let answering = &answering.at(206);
        let mut head = part_head(answering, entry, coding, span, &mut tail);
        let ending = Ending {
            status: Status::Filled { fwd },
            own: &cookies,
            code: 206,
            keep_alive,
        };
        ending.push(&mut tail, client, answering, entry);
        head.extend_from_slice(&tail);
        let how = Relay {
            keep_alive,
            ..answering.as_miss()
        };
        let (start, end, _) = span;
        let part = (head, relay::Window::of(start, end));
        let streamed = relay::relay_part(client, fetched, &how, part, tee, shared);
        if streamed.is_ok() {
            answering.cache.stats.misses.fetch_add(1, Ordering::Relaxed);
        }
        streamed
    }
}
