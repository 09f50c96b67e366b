//! The proxy's own answers to the client (errors, redirects, pages in
//! place of a backend's), and the fields of the request's own that every
//! final response to it carries.

use super::Client;
use crate::config::Config;
use crate::field_value::Answer;
use crate::gzip::ForClient;
use crate::http::edits::Applied;
use crate::metrics::Metrics;
use crate::proxy::{coded_response, OwnText, Shared};
use crate::upstream_tries::UpstreamTry;

impl Client {
    /// Keeps a copy of the response head about to be sent, when the log
    /// wants it (`parts` are written one after the other).
    pub(in crate::proxy) fn note_sent_head(&mut self, parts: &[&[u8]]) {
        self.head_bytes = parts.iter().map(|p| p.len() as u64).sum();
        if let Some(sent) = &mut self.sent_head {
            sent.clear();
            parts.iter().for_each(|p| sent.extend_from_slice(p));
        }
    }

    /// Sends the proxy's own answer for `status` (the `error_pages` page
    /// for it, or a short plain-text one, with the fields
    /// `response_header.*` sets) to a request refused before it could be
    /// parsed, and closes; returns the body size. A HEAD, as far as its
    /// first bytes tell, gets the head alone (see [`Self::send_error_to`]).
    /// Never compressed: the request's `Accept-Encoding` is not known
    /// (and these statuses, 400, 408, 414, 431, are not compressed).
    pub(in crate::proxy) fn refuse_unparsed(&mut self, status: u16, config: &Config) -> u64 {
        let head_request = super::starts_a_head_request(self.conn.buffered());
        self.answer(status, (true, head_request), b"", None, config, None)
    }

    /// `send_error` in answer to a request known to be a HEAD or not: the
    /// answer to a HEAD has the head alone (RFC 9110 §9.3.2), or its body
    /// would be read as the start of the next response on the connection.
    /// Made with the settings of the pool the request went to.
    pub(in crate::proxy) fn send_error_to(
        &mut self,
        status: u16,
        close: bool,
        head_request: bool,
        shared: &Shared,
    ) -> u64 {
        self.send_own(status, close, head_request, b"", None, shared)
    }

    /// `send_error_to` with `fields` (whole lines, CRLF-ended) added to
    /// the head, and `text` as the body when given (see
    /// [`coded_response`]). The cache has no part in it
    /// (`$upstream_cache_status`).
    pub(in crate::proxy) fn send_own(
        &mut self,
        status: u16,
        close: bool,
        head_request: bool,
        fields: &[u8],
        text: Option<OwnText<'_>>,
        shared: &Shared,
    ) -> u64 {
        let config = shared.pool_config(self.route);
        let gzip = self.gzip_of(shared);
        self.answer(status, (close, head_request), fields, text, config, gzip)
    }

    fn answer(
        &mut self,
        status: u16,
        (close, head_request): (bool, bool),
        fields: &[u8],
        text: Option<OwnText<'_>>,
        config: &Config,
        gzip: Option<(ForClient<'_>, &Metrics)>,
    ) -> u64 {
        // A field `response_header.*` sets replaces the answer's own of
        // that name (a redirect's `Location`), as it does a backend's.
        let mut extra = Vec::with_capacity(fields.len());
        let edits = self.response_edits(config, status);
        edits.push_kept(&mut extra, fields, &[]);
        self.push_own_fields(&mut extra, status, None);
        let coding = gzip.map(|(coding, _)| coding);
        let response = coded_response(status, close, &extra, text, (config, edits), coding);
        self.send_response(response, head_request, gzip.map(|(_, counted)| counted))
    }

    /// `send_own` in place of a backend's answer of `status` that the
    /// cache had a part in (`cache`, its `X-Cache`): an `intercept_errors`
    /// page, whose fields say so as the backend's would have.
    pub(in crate::proxy) fn send_in_place(
        &mut self,
        status: u16,
        close: bool,
        head_request: bool,
        mut fields: Vec<u8>,
        cache: Option<&str>,
        shared: &Shared,
    ) -> u64 {
        self.push_own_fields(&mut fields, status, cache);
        let config = shared.pool_config(self.route);
        let gzip = self.gzip_of(shared);
        let coding = gzip.map(|(coding, _)| coding);
        let edits = self.response_edits(config, status);
        let response = coded_response(status, close, &fields, None, (config, edits), coding);
        self.send_response(response, head_request, gzip.map(|(_, counted)| counted))
    }

    /// With `gzip` on for the pool the request went to: how its answers
    /// are compressed for this client, and where that is counted.
    fn gzip_of<'s>(&self, shared: &'s Shared) -> Option<(ForClient<'s>, &'s Metrics)> {
        let gzip = shared.gzip(self.route)?;
        let coding = ForClient {
            gzip,
            coding: gzip.coding_for(self.accepts),
        };
        Some((coding, &shared.metrics))
    }

    fn send_response(
        &mut self,
        response: super::ErrorResponse<'_>,
        head_request: bool,
        gzip: Option<&Metrics>,
    ) -> u64 {
        self.note_sent_head(&[response.head()]);
        // Counted before it goes: a client that has it finds it counted.
        if let (Some(metrics), Some((coding, from)), false) =
            (gzip, response.gzipped_from, head_request)
        {
            self.count_compressed((metrics, coding), from, response.body_len);
        }
        let sent = response.send(self.conn.get_mut(), head_request);
        if sent.is_none() {
            self.head_bytes = 0;
        }
        sent.unwrap_or(0)
    }

    /// Writes the request ID field, if IDs are on, into a response head.
    pub(in crate::proxy) fn push_request_id(&self, head: &mut Vec<u8>) {
        if let Some((name, id)) = &self.request_id {
            for part in [name.as_bytes(), b": ", id.as_bytes(), b"\r\n"] {
                head.extend_from_slice(part);
            }
        }
    }

    /// The `response_header.*` of `config` (the pool's the request was
    /// routed to, or the top level's) as they apply to a response of
    /// `status` to the request being served.
    pub(in crate::proxy) fn response_edits<'c>(
        &self,
        config: &'c Config,
        status: u16,
    ) -> Applied<'c> {
        (config.response_headers).for_response(self.response_edits, status)
    }

    /// Writes the fields of this request's own into the head of a final
    /// response to it, of `status` and with the cache's part in it
    /// (`X-Cache`) when it had one: its ID, its
    /// [`Client::response_fields`], and its [`Client::pending_fields`]
    /// finished.
    pub(in crate::proxy) fn push_own_fields(
        &self,
        head: &mut Vec<u8>,
        status: u16,
        cache: Option<&str>,
    ) {
        self.push_request_id(head);
        head.extend_from_slice(&self.response_fields);
        if !self.pending_fields.is_empty() {
            let answer = Answer {
                status,
                cache,
                last: UpstreamTry {
                    upstream: self.upstream.clone(),
                    status: self.upstream_status,
                    wait: self.upstream_wait,
                    connect: self.upstream_connect,
                    ..UpstreamTry::default()
                },
                earlier: &self.earlier_tries,
                upstream_queue: self.upstream_queue,
                elapsed: self.started.elapsed(),
            };
            for field in &self.pending_fields {
                field.finish(&answer, head);
            }
        }
    }
}
